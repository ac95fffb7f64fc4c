"""The Triton kernels compile for NVIDIA GPUs (sm_80, ahead of time, no GPU needed): the denoiser in float32 /
float16 / bfloat16, the capture (half precision, its auto dtypes) at SD's largest head size, within sm_80's shared
memory: what the interpreter tests cannot see. `python -m kit.kernels.compile_check` checks every configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
REPO = Path(__file__).resolve().parents[3]


def test_kernels_compile_for_sm80_and_fit_its_shared_memory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")  # a fresh cache: really compile
    out = tmp_path / "compile.json"
    proc = subprocess.run([sys.executable, "-m", "kit.kernels.compile_check", "--arch", "80", "--quick", "--json",
                           str(out)], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    rows = json.loads(out.read_text()) if out.exists() else []
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {(r["kernel"], r["dtype"]) for r in rows} == {("empirical", "fp32"), ("empirical", "fp16"),
                                                         ("empirical", "bf16"), ("capture", "fp16"), ("capture", "bf16")}
    assert all(r["ok"] for r in rows)
    capture = [r for r in rows if r["kernel"] == "capture"]
    assert all(r["fits"] and r["shared"] <= 166912 for r in capture)


def test_the_check_refuses_interpreted_kernels():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "kit.kernels.compile_check", "--quick"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 2 and "unset TRITON_INTERPRET" in proc.stderr
