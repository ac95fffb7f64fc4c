"""Seeding: one call seeds Python, NumPy and torch, and RNG states can be captured and restored."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Return a CPU ``torch.Generator`` seeded with ``seed`` after seeding python, numpy and torch globally."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def rng_state_tensors() -> dict[str, torch.Tensor]:
    """Return the python, numpy and torch RNG states as plain tensors (so they fit in a safetensors file)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    out = {
        "rng.torch": torch.get_rng_state().clone(),
        "rng.python": torch.tensor([py_version, *py_state, -1 if py_gauss is None else 1], dtype=torch.int64),
        "rng.python_gauss": torch.tensor([0.0 if py_gauss is None else py_gauss], dtype=torch.float64),
        "rng.numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "rng.numpy_meta": torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        "rng.numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
    }
    if np_name != "MT19937":  # pragma: no cover - numpy's legacy global RNG is always MT19937
        raise ValueError(f"unexpected numpy global RNG {np_name!r}")
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = state.clone()
    return out


def restore_rng_state_tensors(tensors: dict[str, torch.Tensor]) -> None:
    """Restore the RNG states written by :func:`rng_state_tensors` (missing entries are left untouched)."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8).cpu())
    if "rng.python" in tensors:
        values = tensors["rng.python"].tolist()
        gauss = None if values[-1] < 0 else float(tensors["rng.python_gauss"][0])
        random.setstate((values[0], tuple(values[1:-1]), gauss))
    if "rng.numpy_keys" in tensors:
        keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
        pos, has_gauss = (int(v) for v in tensors["rng.numpy_meta"].tolist())
        np.random.set_state(("MT19937", keys, pos, has_gauss, float(tensors["rng.numpy_gauss"][0])))
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [tensors[k].to(torch.uint8).cpu() for k in cuda]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
