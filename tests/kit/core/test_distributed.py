"""fit on 2 CPU processes (gloo) via `accelerate launch --multi_gpu --num_processes 2` with CUDA hidden:

accelerate 1.15 runs `--cpu --num_processes 2` only through mpirun, so the torchrun path with KIT_DEVICE=cpu is used;
Accelerator(cpu=True) then selects the MULTI_CPU (gloo) backend. Equal weights on both ranks, one set of files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_process_fit_has_equal_weights_and_one_set_of_files(tmp_path):
    accelerate = Path(sys.executable).parent / "accelerate"
    if not accelerate.exists():
        accelerate = shutil.which("accelerate")
    script = Path(__file__).with_name("ddp_fit_script.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KIT_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
         str(script), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = dict(re.findall(r"RANK (\d) WORLD 2 DIGEST ([0-9a-f]+)", proc.stdout))
    assert set(found) == {"0", "1"}, proc.stdout
    assert found["0"] == found["1"]
    files = sorted(str(p.relative_to(tmp_path / "run")) for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert files == ["checkpoints/step_00000004.safetensors", "checkpoints/step_00000008.safetensors",
                     "metrics.json"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"rank": 0}
