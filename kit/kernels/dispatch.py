"""Which implementation runs: the torch reference, SDPA, or the Triton kernel.

``KIT_KERNELS`` chooses for the whole process: ``auto`` (the default) takes the Triton kernel for CUDA tensors
when Triton imports and the kernel passed its first-use check on that device (an operation with several forms
then keeps the fastest at the caller's size, :func:`fastest`), and the torch reference everywhere else; ``torch`` forces the reference; ``triton`` forces the kernel (on CPU tensors it then needs
``TRITON_INTERPRET=1`` in the environment before the kernels are first used, as the tests do); ``sdpa`` asks for
the ``scaled_dot_product_attention`` form where an operation has one (the empirical denoiser), the reference
elsewhere. A ``backend=`` argument of an operation overrides the variable for that call.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from collections.abc import Callable, Hashable, Mapping

import torch

__all__ = ["BACKENDS", "requested_backend", "triton_available", "triton_interpreting", "resolve_backend",
           "fastest"]

BACKENDS = ("auto", "torch", "sdpa", "triton")

# Per (operation, device) verdict of the first-use check of the Triton kernel on that device (True: it matched
# the reference and may be picked automatically).
_VERIFIED: dict[tuple[str, str], bool] = {}
# (operation, problem key) -> the implementation measured fastest for it (see fastest())
_FASTEST: dict[tuple[str, Hashable], str] = {}


def requested_backend(backend: str | None = None) -> str:
    """Return the backend asked for: ``backend`` when given, else ``KIT_KERNELS`` (default ``auto``)."""
    name = os.environ.get("KIT_KERNELS", "auto") if backend is None else backend
    name = str(name).strip().lower() or "auto"
    if name not in BACKENDS:
        source = "backend" if backend is not None else "KIT_KERNELS"
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return name


def triton_available() -> bool:
    """Return whether the ``triton`` package can be imported (without importing it)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """Return whether Triton kernels run in the interpreter (``TRITON_INTERPRET=1``, CPU tensors allowed)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in {"1", "true", "yes", "on"}


def resolve_backend(op: str, device: torch.device, backend: str | None = None,
                    check: Callable[[torch.device], bool] | None = None, has_sdpa: bool = False) -> str:
    """Return the implementation that runs ``op`` on ``device``: ``"torch"``, ``"sdpa"`` or ``"triton"``.

    ``check(device)`` runs the kernel once against the reference on a small problem; under ``auto`` the kernel is
    taken on a CUDA device only when the check passed there (a failed check warns once and keeps the reference).
    A forced ``triton`` that cannot run raises a ``ValueError`` saying why.
    """
    name = requested_backend(backend)
    device = torch.device(device)
    if name == "sdpa":
        return "sdpa" if has_sdpa else "torch"
    if name == "torch":
        return "torch"
    if name == "triton":
        if not triton_available():
            raise ValueError(f"the Triton backend of {op} was asked for (KIT_KERNELS=triton or backend='triton') but "
                             "the triton package is not installed")
        if device.type != "cuda" and not triton_interpreting():
            raise ValueError(f"the Triton backend of {op} needs CUDA tensors, or TRITON_INTERPRET=1 in the environment "
                             f"(set before the kernels are first used) to run on {device.type} tensors")
        return "triton"
    # auto
    if device.type != "cuda" or not triton_available():
        return "torch"
    key = (op, str(device))
    if key not in _VERIFIED:
        ok = True
        if check is not None:
            try:
                ok = bool(check(device))
            except Exception as err:  # a compiler or driver failure: keep the reference
                warnings.warn(f"kit.kernels: the Triton kernel of {op} failed on {device} ({err}); using the torch "
                              "reference", RuntimeWarning, stacklevel=3)
                ok = False
            else:
                if not ok:
                    warnings.warn(f"kit.kernels: the Triton kernel of {op} did not match the torch reference on "
                                  f"{device}; using the reference", RuntimeWarning, stacklevel=3)
        _VERIFIED[key] = ok
    return "triton" if _VERIFIED[key] else "torch"


def fastest(op: str, key: Hashable, candidates: Mapping[str, Callable[[], object]],
            sync: Callable[[], object] | None = None, repeats: int = 3) -> str:
    """Return the name of the fastest of ``candidates`` (zero-argument calls doing the same work) for problem
    ``key``, timing them once per (``op``, ``key``) and remembering the answer for the process.

    Each candidate runs once untimed (compilation, autotuning, caches), then ``repeats`` times round-robin; the
    smallest median wins. ``sync`` (e.g. ``torch.cuda.synchronize``) runs after each call. A candidate that raises
    is dropped; if all raise, the first one's error propagates.
    """
    if (op, key) in _FASTEST:
        return _FASTEST[(op, key)]
    if not candidates:
        raise ValueError(f"fastest() needs at least one candidate for {op}")
    alive, first_error = {}, None
    for name, fn in candidates.items():
        try:
            fn()
            if sync is not None:
                sync()
            alive[name] = fn
        except Exception as err:  # e.g. out of memory for one form: the others still compete
            first_error = first_error or err
    if not alive:
        raise first_error
    times: dict[str, list[float]] = {name: [] for name in alive}
    for _ in range(max(1, repeats)):
        for name, fn in alive.items():
            t0 = time.perf_counter()
            fn()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - t0)
    best = min(times, key=lambda n: sorted(times[n])[len(times[n]) // 2])
    _FASTEST[(op, key)] = best
    return best
