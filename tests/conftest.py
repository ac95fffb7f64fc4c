"""Test-wide settings: no network for this process or any process it starts, one thread per worker, CPU only."""

from __future__ import annotations

import os
import runpy
import tempfile
from pathlib import Path

import pytest

_GUARD_DIR = Path(__file__).parent / "_netguard"
_LOG = Path(tempfile.gettempdir()) / f"kit-netguard-{os.getpid()}.log"

os.environ["KIT_BLOCK_NETWORK"] = "1"
os.environ["KIT_NETGUARD_LOG"] = str(_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_GUARD_DIR), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("KIT_DEVICE", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("KIT_NUM_THREADS", "1")
runpy.run_path(str(_GUARD_DIR / "sitecustomize.py"))  # the same guard, in this process

import torch  # noqa: E402

torch.set_num_threads(1)
if not torch.cuda.is_available():
    # kit.kernels' Triton kernels run in Triton's interpreter on CPU tensors (the kernel tests force them with
    # KIT_KERNELS=triton); the mode is fixed when kit.kernels._triton is first imported, so it is set here, first.
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _no_network_attempts():
    """Fail any test during which some process tried to reach a non-loopback address (even if it was caught)."""
    _LOG.unlink(missing_ok=True)
    yield
    if _LOG.exists():
        attempts = _LOG.read_text()
        _LOG.unlink(missing_ok=True)
        pytest.fail(f"network access attempted during the test:\n{attempts}")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _explicit_nonlocal_attention(model, x):
    """softmax_j(theta_i . phi_j) [N, N_kv] of ``model.nonlocal_block``, computed here in float64 numpy from the
    block's own theta / phi conv weights on its input captured by a forward hook (phi max-pooled by 2 when the block
    sub-samples): the independent reference for the attention that kit returns."""
    import numpy as np
    import torch.nn.functional as F

    block, seen = model.nonlocal_block, {}
    h = block.register_forward_hook(lambda m, i, o: seen.setdefault("x", i[0]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    with torch.no_grad():
        z = seen["x"].double()
        theta = F.conv3d(z, block.theta.weight.double(), block.theta.bias.double())
        phi = F.conv3d(z, block.phi.weight.double())
        if block.sub_sample:
            phi = F.max_pool3d(phi, 2)
    logits = theta[0].reshape(theta.shape[1], -1).numpy().T @ phi[0].reshape(phi.shape[1], -1).numpy()
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def explicit_nonlocal_attention():
    """The function ``(model, x [1, 1, D, H, W]) -> attention [N, N_kv]`` (see :func:`_explicit_nonlocal_attention`)."""
    return _explicit_nonlocal_attention
