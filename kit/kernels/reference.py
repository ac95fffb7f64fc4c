"""Plain torch implementations of the kernels: the references the Triton kernels are tested against, and what runs
on CPU and wherever Triton does not.

Both are written to bound memory the way the fused kernels do, with torch's own matmuls doing the arithmetic:
the empirical denoiser streams the data in chunks with a running log-sum-exp (never a [B, N] tensor), the cross
attention capture runs ``scaled_dot_product_attention`` for the rows it does not capture and explicit float32
softmax attention, query chunk by query chunk, for the rows it does, keeping only the requested token columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["empirical_denoise_torch", "empirical_denoise_sdpa", "cross_attention_capture_torch",
           "data_statistics", "data_chunks"]


def data_statistics(data: Tensor, block: int = 1024) -> tuple[Tensor, Tensor]:
    """Return (mean [d], |y_i - mean|^2 / 2 [N]), both float64, computed block by block (no float64 data copy)."""
    n, d = data.shape
    total = torch.zeros(d, dtype=torch.float64, device=data.device)
    for start in range(0, n, block):
        total += data[start:start + block].sum(0, dtype=torch.float64)
    mean = total / n
    half_sq = [0.5 * (data[start:start + block].to(torch.float64) - mean).pow(2).sum(1)
               for start in range(0, n, block)]
    return mean, torch.cat(half_sq)


def data_chunks(data: Tensor, half_sq: Tensor, like: Tensor, chunk_size: int
                ) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield (start, data rows [c, d], their half_sq [c]) in ``like``'s dtype and device, ``chunk_size`` rows at a
    time (a view of ``data`` when nothing changes)."""
    for start in range(0, data.shape[0], chunk_size):
        y = data[start:start + chunk_size].to(device=like.device, dtype=like.dtype)
        yield start, y, half_sq[start:start + chunk_size].to(device=like.device, dtype=like.dtype)


def empirical_denoise_torch(xc: Tensor, data: Tensor, half_sq: Tensor, inv_s2: Tensor,
                            chunk_size: int = 4096) -> Tensor:
    """Return sum_i softmax_i((xc . y_i - half_sq_i) * inv_s2) y_i [B, d] with a streaming log-sum-exp.

    ``xc`` [B, d]: centred queries; ``data`` [N, d]; ``half_sq`` [N]: |y_i - mean|^2 / 2; ``inv_s2`` [B]: 1 / sigma^2.
    Only [B, chunk_size] logits are alive at a time (a running max, normaliser and weighted sum carry the rest).
    """
    inv = inv_s2.to(dtype=xc.dtype)[:, None]
    run_max = torch.full((xc.shape[0], 1), -math.inf, dtype=xc.dtype, device=xc.device)
    run_norm = torch.zeros_like(run_max)
    run_sum = torch.zeros_like(xc)
    for _, y, hsq in data_chunks(data, half_sq, xc, chunk_size):
        logits = (xc @ y.T - hsq) * inv  # [B, c]
        new_max = torch.maximum(run_max, logits.amax(1, keepdim=True))
        rescale = torch.exp(run_max - new_max)  # 0 on the first chunk (exp(-inf))
        w = torch.exp(logits - new_max)
        run_norm = run_norm * rescale + w.sum(1, keepdim=True)
        run_sum = run_sum * rescale + w @ y
        run_max = new_max
    return run_sum / run_norm


def empirical_denoise_sdpa(xc: Tensor, data: Tensor, half_sq: Tensor, inv_s2: Tensor) -> Tensor:
    """The same weighted mean through ``scaled_dot_product_attention``: one query per row, one key per data point.

    The per-key bias and the per-row 1 / sigma^2 ride in one extra feature: q = [xc, 1] / sigma^2 and
    k = [y, -half_sq], so q . k is the logit and no [B, N] bias exists. Costs one [N, d + 1] copy of the data.
    """
    dtype = xc.dtype
    y = data.to(device=xc.device, dtype=dtype)
    inv = inv_s2.to(dtype=dtype)[:, None]
    q = torch.cat([xc, torch.ones_like(xc[:, :1])], 1) * inv  # [B, d + 1]
    k = torch.cat([y, -half_sq.to(device=xc.device, dtype=dtype)[:, None]], 1)  # [N, d + 1]
    out = F.scaled_dot_product_attention(q[None, None], k[None, None], y[None, None], scale=1.0)
    return out[0, 0]


def _check_capture_args(q: Tensor, k: Tensor, v: Tensor, tokens: Tensor, accum: Tensor | None,
                        row_offset: int) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"q, k, v must be [B, heads, L, head_dim], got shapes {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if k.shape[:3] != v.shape[:3] or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not fit together "
                         "(same batch and heads; k and v the same keys; q and k the same head_dim)")
    n_keys = k.shape[2]
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= n_keys):
        raise ValueError(f"tokens must be in [0, {n_keys}), got {tokens.tolist()}")
    if accum is None:
        return
    if accum.dtype != torch.float32 or accum.ndim != 3 or accum.shape[1:] != (q.shape[2], tokens.numel()):
        raise ValueError(f"accum must be float32 [rows, Q, T] = [rows, {q.shape[2]}, {tokens.numel()}], got "
                         f"{accum.dtype} {tuple(accum.shape)}")
    if row_offset < 0 or row_offset + accum.shape[0] > q.shape[0]:
        raise ValueError(f"accum rows [{row_offset}, {row_offset + accum.shape[0]}) do not fit a batch of "
                         f"{q.shape[0]}")


def cross_attention_capture_torch(q: Tensor, k: Tensor, v: Tensor, scale: float, tokens: Tensor,
                                  accum: Tensor | None, row_offset: int = 0, mask: Tensor | None = None,
                                  query_chunk: int = 1024) -> Tensor:
    """Return softmax(q k^T scale + mask) v [B, heads, Q, dv] and add, in place, the head-averaged probabilities of
    the ``tokens`` columns to ``accum`` [rows, Q, T] (float32; batch rows ``row_offset`` ... ``+ rows``).

    Rows outside the accumulator take ``scaled_dot_product_attention``; the captured rows are computed explicitly,
    ``query_chunk`` queries at a time, with float32 scores and softmax (as diffusers' processor with
    ``upcast_softmax``), so each probability is formed once and the transient is [rows, heads, query_chunk, K]
    rather than [B, heads, Q, K] per call.
    """
    if accum is None or tokens.numel() == 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    bsz, heads, n_q, _ = q.shape
    r0, r1 = row_offset, row_offset + accum.shape[0]
    m = None if mask is None else mask.expand(bsz, heads, n_q, k.shape[2])
    out = torch.empty(bsz, heads, n_q, v.shape[-1], dtype=q.dtype, device=q.device)
    for rows in (slice(0, r0), slice(r1, bsz)):
        if rows.stop > rows.start:
            out[rows] = F.scaled_dot_product_attention(q[rows], k[rows], v[rows],
                                                       attn_mask=None if m is None else m[rows], scale=scale)
    idx = tokens.to(q.device)
    kr, vr = k[r0:r1].float(), v[r0:r1]
    for start in range(0, n_q, query_chunk):
        stop = min(start + query_chunk, n_q)
        scores = (q[r0:r1, :, start:stop].float() @ kr.transpose(-1, -2)) * scale  # [rows, heads, c, K]
        if m is not None:
            scores = scores + m[r0:r1, :, start:stop].float()
        probs = scores.softmax(dim=-1)
        out[r0:r1, :, start:stop] = probs.to(vr.dtype) @ vr
        accum[:, start:stop] += probs[..., idx].mean(dim=1)
    return out
