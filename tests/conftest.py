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
