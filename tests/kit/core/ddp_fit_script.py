"""Run by test_distributed.py under `accelerate launch --num_processes 2 --cpu`: fit on a toy regression."""

import hashlib
import os
import sys

import torch
from torch.utils.data import TensorDataset

from kit.core import RunDir, fit

torch.set_num_threads(1)
out = sys.argv[1]
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 4, generator=g)
y = x.sum(1, keepdim=True)
torch.manual_seed(5)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
run = RunDir(out)
res = fit(model, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), TensorDataset(x, y), max_steps=8,
          batch_size=8, run=run, checkpoint_every=4, progress=False, log_every=4)
rank = int(os.environ.get("RANK", "0"))
run.record("rank", rank)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in res.model.parameters())).hexdigest()
print(f"RANK {rank} WORLD {os.environ.get('WORLD_SIZE')} DIGEST {digest}", flush=True)
