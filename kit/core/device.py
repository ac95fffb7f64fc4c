"""Device selection: ``"auto"`` picks CUDA, then Apple MPS, then the CPU; ``KIT_DEVICE`` overrides."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_VALID = ("auto", "cpu", "cuda", "mps")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device to run on.

    ``"auto"`` resolves to ``cuda`` when available, then ``mps``, then ``cpu``. The environment variable
    ``KIT_DEVICE`` (e.g. ``KIT_DEVICE=cpu``) overrides ``"auto"`` so a notebook can be forced onto one device
    without editing it. An explicit device such as ``"cuda:1"`` is returned as given, after checking it exists.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        name = os.environ.get("KIT_DEVICE", "auto").strip().lower() or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in _VALID:
        raise ValueError(f"device must be one of {_VALID} (optionally with ':index'), got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {device!r} was requested but MPS is not available on this machine")
    return torch.device(name)


def set_threads(num_threads: int | None = None) -> int:
    """Return the number of CPU threads torch now uses, after setting it.

    ``num_threads`` None reads ``KIT_NUM_THREADS`` (the test suite sets 1 per worker); when that is unset too the
    torch default is kept. On a shared 2-core machine oversubscribed threads make small models many times slower.
    """
    if num_threads is None:
        env = os.environ.get("KIT_NUM_THREADS")
        num_threads = int(env) if env else None
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        torch.set_num_threads(int(num_threads))
    return torch.get_num_threads()


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``with eval_mode(model):`` runs the block with ``model`` in eval mode and restores its train / eval mode
    afterwards (also when the block raises), so a helper that looks at a model leaves it as it found it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
