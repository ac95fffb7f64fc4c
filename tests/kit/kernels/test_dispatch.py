"""Which implementation runs: KIT_KERNELS, the CPU fallback, and the first-use check on CUDA."""

import warnings

import pytest
import torch

from kit.kernels import dispatch
from kit.kernels.dispatch import resolve_backend


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("KIT_KERNELS", raising=False)
    monkeypatch.setattr(dispatch, "_VERIFIED", {})


def test_cpu_tensors_take_the_reference_by_default():
    assert resolve_backend("op", torch.device("cpu")) == "torch"
    assert resolve_backend("op", torch.device("cpu"), has_sdpa=True) == "torch"


def test_environment_variable_and_argument(monkeypatch):
    monkeypatch.setenv("KIT_KERNELS", "torch")
    assert resolve_backend("op", torch.device("cuda")) == "torch"  # forced reference even on CUDA
    monkeypatch.setenv("KIT_KERNELS", "sdpa")
    assert resolve_backend("op", torch.device("cpu"), has_sdpa=True) == "sdpa"
    assert resolve_backend("op", torch.device("cpu"), has_sdpa=False) == "torch"
    assert resolve_backend("op", torch.device("cpu"), backend="torch", has_sdpa=True) == "torch"  # argument wins
    monkeypatch.setenv("KIT_KERNELS", "Triton ")
    assert dispatch.requested_backend() == "triton"
    monkeypatch.setenv("KIT_KERNELS", "cuda")
    with pytest.raises(ValueError, match="KIT_KERNELS must be one of"):
        resolve_backend("op", torch.device("cpu"))


def test_forced_triton_without_cuda_or_interpreter_says_why(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        resolve_backend("empirical_denoise", torch.device("cpu"), backend="triton")
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    with pytest.raises(ValueError, match="not installed"):
        resolve_backend("empirical_denoise", torch.device("cpu"), backend="triton")


def test_without_triton_auto_falls_back_cleanly_on_cuda(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)

    def never(device):
        raise AssertionError("the check must not run without triton")

    assert resolve_backend("op", torch.device("cuda"), check=never) == "torch"


def test_first_use_check_decides_once_per_device(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    calls = []

    def passes(device):
        calls.append(device)
        return True

    assert resolve_backend("a", torch.device("cuda:0"), check=passes) == "triton"
    assert resolve_backend("a", torch.device("cuda:0"), check=passes) == "triton"
    assert len(calls) == 1
    with pytest.warns(RuntimeWarning, match="did not match"):
        assert resolve_backend("b", torch.device("cuda:0"), check=lambda d: False) == "torch"

    def broken(device):
        raise RuntimeError("no kernel image")

    with pytest.warns(RuntimeWarning, match="no kernel image"):
        assert resolve_backend("c", torch.device("cuda:0"), check=broken) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided: no second warning
        assert resolve_backend("c", torch.device("cuda:0"), check=broken) == "torch"


def test_public_calls_on_cpu_never_load_triton_by_default(monkeypatch):
    import sys

    from kit.kernels import cross_attention_capture, empirical_denoise

    monkeypatch.delitem(sys.modules, "kit.kernels._triton", raising=False)
    empirical_denoise(torch.randn(3, 4), torch.randn(5, 4), 1.0)
    cross_attention_capture(torch.randn(1, 1, 4, 8), torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8), tokens=[1],
                            accum=torch.zeros(1, 4, 1))
    assert "kit.kernels._triton" not in sys.modules


def test_fastest_times_once_per_problem_and_drops_failing_candidates(monkeypatch):
    import time

    monkeypatch.setattr(dispatch, "_FASTEST", {})
    calls = {"slow": 0, "quick": 0}

    def slow():
        calls["slow"] += 1
        time.sleep(0.02)

    def quick():
        calls["quick"] += 1

    def broken():
        raise RuntimeError("out of memory")

    assert dispatch.fastest("op", ("k", 1), {"slow": slow, "broken": broken, "quick": quick}, repeats=3) == "quick"
    assert calls == {"slow": 4, "quick": 4}  # one untimed call each, then 3 timed rounds
    assert dispatch.fastest("op", ("k", 1), {"slow": slow}) == "quick"  # remembered: not timed again
    assert calls["slow"] == 4
    with pytest.raises(RuntimeError, match="out of memory"):
        dispatch.fastest("op", ("k", 2), {"broken": broken})
    with pytest.raises(ValueError, match="candidate"):
        dispatch.fastest("op", ("k", 3), {})


def test_auto_on_a_verified_device_keeps_the_fastest_form(monkeypatch):
    """The CUDA branch of auto, run on CPU tensors: the kernel (interpreted) counts as verified, and the denoiser
    times its three forms once for this problem and answers with the fastest, which gives the same result."""
    import kit.kernels as kk

    pytest.importorskip("triton")
    monkeypatch.setattr(dispatch, "_FASTEST", {})
    monkeypatch.setattr(kk, "resolve_backend", lambda *a, **k: "triton")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    g = torch.Generator().manual_seed(0)
    data, x = torch.randn(200, 24, generator=g), torch.randn(5, 24, generator=g)
    got = kk.empirical_denoise(x, data, 0.8)
    want = kk.empirical_denoise(x, data, 0.8, backend="torch")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    ((op, key), choice), = dispatch._FASTEST.items()
    assert op == "empirical_denoise" and key == ("cpu", "torch.float32", 200, 24, 8) and \
        choice in {"triton", "torch", "sdpa"}
    # the interpreter is orders of magnitude slower than torch's matmuls: it cannot be the fastest here
    assert choice != "triton"
