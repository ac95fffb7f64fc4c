"""Run by test_distributed.py, alone or under `accelerate launch --num_processes N`: fit on a toy regression with
a warm-up + milestone schedule; writes what each process saw (lr per step, samples, weights) to a JSON file."""

import hashlib
import json
import os
import sys

import torch
from torch.utils.data import TensorDataset

from kit.core import RunDir, fit

torch.set_num_threads(1)
out, report = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 4, generator=g)
y = x.sum(1, keepdim=True)
torch.manual_seed(5)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
run = RunDir(out)
events = []


def schedule(step):  # 3 warm-up steps, then x0.1 at steps 6 and 10 (epochs of 8 steps would be 1.25 here)
    return min(1.0, (step + 1) / 3) * 0.1 ** sum(step >= m for m in (6, 10))


res = fit(model, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), TensorDataset(x, y), max_steps=12,
          batch_size=8, run=run, checkpoint_every=4, progress=False, log_every=1, callbacks=[events.append],
          optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
          scheduler=lambda o: torch.optim.lr_scheduler.LambdaLR(o, schedule))
rank = int(os.environ.get("RANK", "0"))
run.record("rank", rank)
params = [p.detach().flatten().tolist() for p in res.model.parameters()]
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in res.model.parameters())).hexdigest()
with open(f"{report}.rank{rank}.json", "w") as f:
    json.dump({"lr": [e["lr"] for e in events if e["kind"] == "train"], "samples": res.samples_seen,
               "samples_logged": [e["samples"] for e in events if e["kind"] == "train"], "params": params,
               "world": int(os.environ.get("WORLD_SIZE", "1"))}, f)
print(f"RANK {rank} WORLD {os.environ.get('WORLD_SIZE')} DIGEST {digest}", flush=True)
