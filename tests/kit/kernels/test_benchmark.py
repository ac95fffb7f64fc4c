"""benchmarks/kit_kernels.py runs end to end at tiny sizes, and its memory accounting of part 2 is the arithmetic of
the stores: per-head float16 maps of every layer and step vs float32 step sums of the captured words."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
REPO = Path(__file__).resolve().parents[3]


def test_benchmark_runs_and_its_store_sizes_are_the_arithmetic(tmp_path):
    out = tmp_path / "kernels.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "kit_kernels.py"), "--device", "cpu", "--threads", "1",
           "--n", "300", "--d", "48", "--batch", "8", "--steps", "2", "--repeats", "1", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "GPU only: not run (no CUDA device)" in proc.stdout
    report = json.loads(out.read_text())
    den = report["denoise"]
    assert set(den) == {"torch", "sdpa"}
    assert den["torch"]["max_abs_err"] < 1e-5 and den["sdpa"]["max_abs_err"] < 1e-5
    queries = 5 * 64 * 64 + 5 * 32 * 32 + 5 * 16 * 16 + 8 * 8  # SD 1.5's 16 cross-attention layers
    held = report["capture"]["held_mib"]
    mib = 2**20
    assert held["per-head store"] * mib == pytest.approx(2 * queries * 8 * 77 * 2)  # steps x Q x heads x K x fp16
    assert held["head-mean store"] * mib == pytest.approx(2 * queries * 77 * 2)
    assert held["capture store"] * mib == pytest.approx(queries * 4 * 4)  # Q x 4 words x float32, whatever the steps
    assert set(report["capture"]["ms_per_step"]) == {"diffusers default", "recording, per-head",
                                                     "capture (kit.kernels)"}
