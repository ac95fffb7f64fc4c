"""Fused GPU kernels with a torch reference beside each; :mod:`kit.kernels.dispatch` picks which runs.

- :func:`empirical_denoise`: the optimal denoiser of a finite data set, D(x; sigma) = sum_i softmax_i(-|x - y_i|^2 /
  2 sigma^2) y_i, i.e. attention of the queries x over the data with a per-key bias. The Triton kernel streams the
  data in tiles with an online softmax (one pass for the weights and the weighted sum, fp32 accumulation); the
  reference is the chunked torch loop; ``KIT_KERNELS=sdpa`` runs it through ``scaled_dot_product_attention``.
- :func:`cross_attention_capture`: softmax attention that also adds the head-averaged probabilities of a few
  requested key columns (prompt tokens) to an accumulator, in place; what a word heat map needs, without a
  [B, heads, Q, K] probability tensor per layer and step.

``KIT_KERNELS`` = ``auto`` (default: on CUDA, when Triton imports and the kernel matched the reference there on
first use, the kernel, or for the denoiser the fastest of its forms timed once at the caller's size; the reference
elsewhere), ``torch``, ``triton`` (with ``TRITON_INTERPRET=1`` also on CPU
tensors) or ``sdpa``. Measured ratios are in ``benchmarks/kit_kernels.py`` and ``kit/kernels/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from kit.kernels.dispatch import (
    BACKENDS,
    fastest,
    requested_backend,
    resolve_backend,
    triton_available,
    triton_interpreting,
)
from kit.kernels.reference import (
    cross_attention_capture_torch,
    data_statistics,
    empirical_denoise_sdpa,
    empirical_denoise_torch,
)

__all__ = [
    "BACKENDS",
    "empirical_denoise",
    "empirical_denoise_centred",
    "cross_attention_capture",
    "data_statistics",
    "requested_backend",
    "resolve_backend",
    "triton_available",
    "triton_interpreting",
]


def _sigma_batch(sigma: float | Tensor, x: Tensor) -> Tensor:
    """Return sigma as a checked (B,) float64 tensor (:func:`kit.diffusion.denoisers.as_sigma_batch`'s rules)."""
    from kit.diffusion.denoisers import as_sigma_batch  # imported here: kit.diffusion imports kit.kernels

    return as_sigma_batch(x, sigma).to(torch.float64)


def _check_denoise(x: Tensor, data: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ValueError(f"x must be a tensor (B, d), got {tuple(x.shape) if isinstance(x, Tensor) else type(x)}")
    if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[0] < 1:
        raise ValueError(f"data must be a tensor (N, d) with N >= 1, got "
                         f"{tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__}")
    if x.shape[1] != data.shape[1]:
        raise ValueError(f"x has d = {x.shape[1]} features but data has {data.shape[1]}")
    if not (x.is_floating_point() and data.is_floating_point()):
        raise ValueError(f"x and data must be floating point, got {x.dtype} and {data.dtype}")


def _denoise_check(device: torch.device) -> bool:
    """First-use check of the Triton denoiser on ``device``: a small problem against the reference."""
    from kit.kernels._triton import empirical_denoise_triton

    g = torch.Generator().manual_seed(0)
    data = torch.randn(300, 96, generator=g).to(device)
    x = torch.randn(20, 96, generator=g).to(device)
    mean, half_sq = data_statistics(data)
    xc = x - mean.float()
    inv = torch.full((20,), 1 / 4.0, device=device)
    want = empirical_denoise_torch(xc, data, half_sq, inv)
    got = empirical_denoise_triton(xc, data, half_sq, inv)
    return bool(torch.allclose(got, want, rtol=1e-3, atol=1e-3))


def empirical_denoise(x: Tensor, data: Tensor, sigma: float | Tensor, *, data_mean: Tensor | None = None,
                      half_sq_norms: Tensor | None = None, chunk_size: int = 4096,
                      backend: str | None = None) -> Tensor:
    """Return D(x; sigma) = sum_i softmax_i(-|x - y_i|^2 / (2 sigma^2)) y_i, shape (B, d), in x's dtype.

    ``x`` (B, d), ``data`` (N, d) (the rows y_i), ``sigma`` a float or a (B,) tensor (> 0). The logits are formed
    around the data mean m: -|x - y|^2 / 2 = (x - m).y - |y - m|^2 / 2 + (terms that do not depend on i), which keeps
    float32 logits accurate at small sigma. ``data_mean`` (d,) and ``half_sq_norms`` (N,) = |y_i - m|^2 / 2 may be
    passed precomputed (as :func:`data_statistics` returns them; :class:`kit.diffusion.EmpiricalDenoiser` keeps
    them), else they are computed here, O(N d). ``chunk_size``: data points per step of the torch reference.
    ``backend``: None (``KIT_KERNELS``), ``"auto"``, ``"torch"``, ``"sdpa"`` or ``"triton"``.
    """
    _check_denoise(x, data)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    s = _sigma_batch(sigma, x)
    if (data_mean is None) != (half_sq_norms is None):
        raise ValueError("pass data_mean and half_sq_norms together (data_statistics(data) gives both), or neither")
    if data_mean is None:
        data_mean, half_sq_norms = data_statistics(data)
    elif data_mean.shape != (data.shape[1],) or half_sq_norms.shape != (data.shape[0],):
        raise ValueError(f"data_mean must be ({data.shape[1]},) and half_sq_norms ({data.shape[0]},), got "
                         f"{tuple(data_mean.shape)} and {tuple(half_sq_norms.shape)}")
    xc = x - data_mean.to(device=x.device, dtype=x.dtype)
    return empirical_denoise_centred(xc, data, half_sq_norms, s, chunk_size=chunk_size, backend=backend)


def empirical_denoise_centred(xc: Tensor, data: Tensor, half_sq_norms: Tensor, sigma: Tensor, *,
                              chunk_size: int = 4096, backend: str | None = None) -> Tensor:
    """Return sum_i softmax_i((xc . y_i - half_sq_norms_i) / sigma^2) y_i (B, d) for queries already centred on the
    data mean (``xc = x - m``) and sigma a checked (B,) tensor: :func:`empirical_denoise` after its checks, for
    callers that keep the statistics (:class:`kit.diffusion.EmpiricalDenoiser`)."""
    inv_s2 = 1.0 / sigma.to(device=xc.device, dtype=torch.float64) ** 2
    which = resolve_backend("empirical_denoise", xc.device, backend, check=_denoise_check, has_sdpa=True)
    if which == "triton" and xc.dtype == torch.float64:
        which = "torch"  # the kernel accumulates in float32; float64 callers keep float64

    def run(name: str) -> Tensor:
        if name == "triton":
            from kit.kernels._triton import empirical_denoise_triton

            return empirical_denoise_triton(xc, data, half_sq_norms, inv_s2)
        if name == "sdpa":
            return empirical_denoise_sdpa(xc, data, half_sq_norms, inv_s2)
        return empirical_denoise_torch(xc, data, half_sq_norms, inv_s2, chunk_size)

    if which == "triton" and requested_backend(backend) == "auto":
        # auto on CUDA: the kernel matched the reference; keep whichever form is fastest on this device at this
        # size (the rule), measured once per (device, dtype, N, d, batch rounded up to a power of two)
        which = fastest("empirical_denoise", _denoise_key(xc, data), _denoise_candidates(run, xc, data),
                        sync=lambda: torch.cuda.synchronize(xc.device))
    return run(which)


SDPA_MAX_BYTES = 1 << 30  # the SDPA form copies the data with one extra feature; larger copies are not tried


def _denoise_key(xc: Tensor, data: Tensor) -> tuple:
    b = xc.shape[0]
    return (str(xc.device), str(xc.dtype), data.shape[0], data.shape[1], 1 << max(0, (b - 1).bit_length()))


def _denoise_candidates(run, xc: Tensor, data: Tensor) -> dict:
    names = ["triton", "torch"]
    if data.shape[0] * (data.shape[1] + 1) * xc.element_size() <= SDPA_MAX_BYTES:
        names.append("sdpa")
    return {n: (lambda n=n: run(n)) for n in names}


def _capture_check(device: torch.device) -> bool:
    """First-use check of the Triton capture kernel on ``device``: SD-like half-precision shapes, small."""
    from kit.kernels._triton import cross_attention_capture_triton

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 40, generator=g).to(device=device, dtype=torch.float16) for n in (70, 77, 77))
    tokens = torch.tensor([1, 4, 76])
    want_acc = torch.zeros(1, 70, 3, device=device)
    got_acc = torch.zeros_like(want_acc)
    want = cross_attention_capture_torch(q, k, v, 40**-0.5, tokens, want_acc, row_offset=1)
    got = cross_attention_capture_triton(q, k, v, 40**-0.5, tokens, got_acc, row_offset=1)
    return bool(torch.allclose(got.float(), want.float(), atol=2e-2) and torch.allclose(got_acc, want_acc, atol=1e-3))


def _as_tokens(tokens: Sequence[int] | Tensor) -> Tensor:
    if isinstance(tokens, Tensor):
        if tokens.ndim != 1 or tokens.is_floating_point():
            raise ValueError(f"tokens must be a 1-D integer tensor or a sequence of ints, got {tokens.dtype} "
                             f"{tuple(tokens.shape)}")
        return tokens.to(torch.long)
    items = list(tokens)
    if any(isinstance(t, bool) or not isinstance(t, int) for t in items):
        raise ValueError(f"tokens must be ints, got {items!r}")
    return torch.tensor(items, dtype=torch.long)


def cross_attention_capture(q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None,
                            tokens: Sequence[int] | Tensor = (), accum: Tensor | None = None, row_offset: int = 0,
                            mask: Tensor | None = None, backend: str | None = None) -> Tensor:
    """Return softmax(q k^T * scale + mask) v, shape (B, heads, Q, dv), and add to ``accum`` in place the
    head-averaged probabilities of the key columns ``tokens``.

    ``q`` (B, heads, Q, d), ``k`` and ``v`` (B, heads, K, d); ``scale`` default 1 / sqrt(d). ``accum``: float32
    (rows, Q, T), contiguous, T = len(tokens), for batch rows ``row_offset`` ... ``row_offset + rows`` (e.g. the
    conditional half of a guided batch); ``accum[r, i, j] += mean_h p[row_offset + r, h, i, tokens[j]]``. Calling it
    once per denoising step sums the maps over steps. The fused kernel needs no mask, K <= 256, d <= 256 and half
    precision (float32 only with ``backend="triton"`` / ``KIT_KERNELS=triton``); other calls run the reference (explicit float32 attention in query chunks for the captured rows, SDPA for the rest).
    """
    idx = _as_tokens(tokens)
    if isinstance(row_offset, bool) or not isinstance(row_offset, int):
        raise ValueError(f"row_offset must be an int, got {row_offset!r}")
    from kit.kernels.reference import _check_capture_args

    _check_capture_args(q, k, v, idx, accum, row_offset)
    if accum is not None and not accum.is_contiguous():
        raise ValueError("accum must be contiguous (it is updated in place)")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    which = resolve_backend("cross_attention_capture", q.device, backend, check=_capture_check)
    # The kernel is for half-precision UNets (Stable Diffusion on a GPU). Float32 runs it only when forced: its
    # tf32x3 dots cost about a minute of compilation at head_dim 160 (kit.kernels.compile_check), for a rare case.
    half = q.dtype in (torch.float16, torch.bfloat16)
    if which == "triton" and mask is None and (half or (q.dtype == torch.float32
                                                         and requested_backend(backend) == "triton")):
        from kit.kernels._triton import CAPTURE_MAX_HEAD_DIM, CAPTURE_MAX_KEYS, cross_attention_capture_triton

        if k.shape[2] <= CAPTURE_MAX_KEYS and q.shape[-1] <= CAPTURE_MAX_HEAD_DIM and v.shape[-1] == q.shape[-1]:
            return cross_attention_capture_triton(q, k, v, float(scale), idx, accum, row_offset)
    return cross_attention_capture_torch(q, k, v, float(scale), idx, accum, row_offset, mask)
