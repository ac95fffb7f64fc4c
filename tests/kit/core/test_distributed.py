"""fit on 1 and on 2 CPU processes (gloo) via `accelerate launch --multi_gpu --num_processes 2` with CUDA hidden.

accelerate 1.15+ runs `--cpu --num_processes 2` only through mpirun, so the torchrun path with KIT_DEVICE=cpu is used;
Accelerator(cpu=True) then selects the MULTI_CPU (gloo) backend. Checked: equal weights on both ranks, one set of
files, and the same run as one process: the same lr at every step (the schedule steps once per optimizer step),
the same samples seen (batch_size is the global batch) and the same weights."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("ddp_fit_script.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "KIT_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}


def _accelerate() -> str:
    found = Path(sys.executable).parent / "accelerate"
    return str(found) if found.exists() else shutil.which("accelerate")


@pytest.mark.slow
def test_two_processes_run_the_one_process_schedule(tmp_path):
    proc = subprocess.run(
        [_accelerate(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
         str(SCRIPT), str(tmp_path / "run"), str(tmp_path / "two")],
        capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = dict(re.findall(r"RANK (\d) WORLD 2 DIGEST ([0-9a-f]+)", proc.stdout))
    assert set(found) == {"0", "1"}, proc.stdout
    assert found["0"] == found["1"]
    files = sorted(str(p.relative_to(tmp_path / "run")) for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert files == ["checkpoints/step_00000008.safetensors", "checkpoints/step_00000012.safetensors",
                     "metrics.json"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"rank": 0}

    one = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run1"), str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    ref = json.loads((tmp_path / "one.rank0.json").read_text())
    assert ref["world"] == 1
    expected_lr = [0.1 * min(1.0, (s + 1) / 3) * 0.1 ** sum(s >= m for m in (6, 10)) for s in range(1, 13)]
    assert ref["lr"] == pytest.approx(expected_lr)
    assert ref["samples"] == 12 * 8 and ref["samples_logged"] == [8 * k for k in range(1, 13)]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"two.rank{rank}.json").read_text())
        assert got["world"] == 2
        assert got["lr"] == pytest.approx(ref["lr"], rel=1e-12)
        assert got["samples"] == ref["samples"] and got["samples_logged"] == ref["samples_logged"]
        # each process took half of every global batch and DDP averaged the gradients: the one-process update
        for a, b in zip(got["params"], ref["params"]):
            assert a == pytest.approx(b, abs=1e-5)
