"""The Triton kernels (imported only when one is used; see :mod:`kit.kernels.dispatch`).

Whether they compile for the GPU or run in Triton's interpreter (``TRITON_INTERPRET=1``, CPU tensors) is fixed when
this module is first imported.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kit.kernels.dispatch import triton_interpreting

__all__ = ["empirical_denoise_triton", "cross_attention_capture_triton", "CAPTURE_MAX_KEYS", "CAPTURE_MAX_HEAD_DIM"]

CAPTURE_MAX_KEYS = 256  # the whole key set sits in one tile; longer key sets use the reference
CAPTURE_MAX_HEAD_DIM = 256
INTERPRETED = triton_interpreting()  # how this module's kernels are built (fixed at import)


@triton.jit
def _empirical_kernel(x_ptr, y_ptr, hsq_ptr, inv_s2_ptr, acc_ptr, m_ptr, l_ptr,
                      B, N, D, n_splits, stride_x, stride_y,
                      BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
                      PRECISION: tl.constexpr):
    # Program (pid_b, pid_s): rows pid_b * BLOCK_B ..., data points of split pid_s (of n_splits; a split may be
    # empty, its statistics then say so: m = -inf, l = 0). Streams the split in tiles of BLOCK_N points: logits
    # over the full feature dimension (BLOCK_K at a time), an online softmax update, then the weighted sum added
    # to this split's fp32 accumulator in the workspace (BLOCK_D features at a time).
    pid_b = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    inv_s2 = tl.load(inv_s2_ptr + rows, mask=row_ok, other=0.0)
    n_per_split = tl.cdiv(tl.cdiv(N, BLOCK_N), n_splits) * BLOCK_N
    n_start = pid_s * n_per_split
    n_stop = tl.minimum(n_start + n_per_split, N)
    m_i = tl.full([BLOCK_B], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_B], tl.float32)
    acc_rows = (pid_s * B + rows).to(tl.int64) * D
    for n0 in range(n_start, n_stop, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < n_stop
        y_rows = cols.to(tl.int64) * stride_y
        s = tl.zeros([BLOCK_B, BLOCK_N], tl.float32)
        for k0 in range(0, D, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_ok = ks < D
            xt = tl.load(x_ptr + rows[:, None] * stride_x + ks[None, :], mask=row_ok[:, None] & k_ok[None, :],
                         other=0.0)
            yt = tl.load(y_ptr + y_rows[None, :] + ks[:, None], mask=col_ok[None, :] & k_ok[:, None], other=0.0)
            s += tl.dot(xt, yt, input_precision=PRECISION)
        hsq = tl.load(hsq_ptr + cols, mask=col_ok, other=0.0)
        logits = (s - hsq[None, :]) * inv_s2[:, None]
        logits = tl.where(col_ok[None, :], logits, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(logits, 1))
        alpha = tl.exp(m_i - m_new)  # 0 on the first tile
        p = tl.exp(logits - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < D
            yv = tl.load(y_ptr + y_rows[:, None] + ds[None, :], mask=col_ok[:, None] & d_ok[None, :], other=0.0)
            a_ptrs = acc_ptr + acc_rows[:, None] + ds[None, :]
            a_ok = row_ok[:, None] & d_ok[None, :]
            a = tl.load(a_ptrs, mask=a_ok, other=0.0)
            a = a * alpha[:, None] + tl.dot(p.to(yv.dtype), yv, input_precision=PRECISION)
            tl.store(a_ptrs, a, mask=a_ok)
        tl.debug_barrier()
        m_i = m_new
    tl.store(m_ptr + pid_s * B + rows, m_i, mask=row_ok)
    tl.store(l_ptr + pid_s * B + rows, l_i, mask=row_ok)


def _splits(b: int, n: int, device: torch.device) -> int:
    """Return how many data splits run side by side: about two programs per SM (rows in blocks of 32), at most 16."""
    row_blocks = triton.cdiv(b, 32)
    if device.type == "cuda":
        target = 2 * torch.cuda.get_device_properties(device).multi_processor_count
    else:  # the interpreter: two splits, so that the combine step is exercised
        target = 2 * row_blocks
    return max(1, min(16, triton.cdiv(n, 64), triton.cdiv(target, row_blocks)))


# Tile shapes tried on the GPU, the fastest kept per (B, N, D, dtype); the workspace is zeroed before each trial.
# (BLOCK_B, BLOCK_N, BLOCK_K, BLOCK_D, warps, stages)
_EMPIRICAL_CONFIGS = [(16, 64, 64, 64, 4, 2), (32, 64, 64, 64, 4, 2), (64, 64, 32, 64, 4, 2),
                      (64, 128, 32, 64, 8, 2), (128, 64, 32, 64, 8, 2), (32, 128, 64, 64, 8, 2)]
_empirical_tuned = triton.autotune(
    configs=[triton.Config(dict(BLOCK_B=bb, BLOCK_N=bn, BLOCK_K=bk, BLOCK_D=bd), num_warps=w, num_stages=st)
             for bb, bn, bk, bd, w, st in _EMPIRICAL_CONFIGS],
    key=["B", "N", "D"], reset_to_zero=["acc_ptr"])(_empirical_kernel)


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs: three tf32 products per dot recover fp32 accuracy on tensor cores (plain tf32 would round the
    # logits, which are divided by sigma^2, far too coarsely); half inputs multiply natively with fp32 accumulation.
    return "tf32x3" if dtype == torch.float32 else "tf32"


def empirical_denoise_triton(xc: Tensor, data: Tensor, half_sq: Tensor, inv_s2: Tensor,
                             splits: int | None = None) -> Tensor:
    """Return the empirical denoiser's weighted mean [B, d] (as :func:`kit.kernels.reference.empirical_denoise_torch`).

    Extra memory: a float32 workspace of ``splits`` x B x d (``splits`` <= 16) and 2 x splits x B statistics; the
    [B, N] weights never exist.
    """
    b, d = xc.shape
    n = data.shape[0]
    y = data if data.dtype == xc.dtype and data.device == xc.device else data.to(device=xc.device, dtype=xc.dtype)
    x = xc.contiguous()
    y = y.contiguous()
    hsq = half_sq.to(device=x.device, dtype=torch.float32).contiguous()
    inv = inv_s2.to(device=x.device, dtype=torch.float32).contiguous()
    s = _splits(b, n, x.device) if splits is None else max(1, min(int(splits), triton.cdiv(n, 64)))
    acc = torch.zeros(s, b, d, dtype=torch.float32, device=x.device)
    m = torch.empty(s, b, dtype=torch.float32, device=x.device)
    l_ = torch.empty(s, b, dtype=torch.float32, device=x.device)
    args = (x, y, hsq, inv, acc, m, l_, b, n, d, s, x.stride(0), y.stride(0))
    if INTERPRETED:  # one tile shape (the interpreter's time is spent per operation, not per tile)
        block_b = 16 if b <= 16 else 32
        _empirical_kernel[(triton.cdiv(b, block_b), s)](*args, BLOCK_B=block_b, BLOCK_N=64, BLOCK_K=64, BLOCK_D=64,
                                                         PRECISION=_precision(x.dtype))
    else:
        _empirical_tuned[lambda meta: (triton.cdiv(b, meta["BLOCK_B"]), s)](*args, PRECISION=_precision(x.dtype))
    top = m.amax(0)  # combine the splits: rescale each to the common max
    w = torch.exp(m - top)
    out = (w[:, :, None] * acc).sum(0) / (w * l_).sum(0)[:, None]
    return out.to(xc.dtype)


@triton.jit
def _capture_kernel(q_ptr, k_ptr, v_ptr, o_ptr, tok_ptr, acc_ptr,
                    H, Q, K, DH, T, row_offset, n_rows, scale, inv_h,
                    sq_b, sq_h, sq_q, sk_b, sk_h, sk_k, sv_b, sv_h, sv_k, so_b, so_h, so_q,
                    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_DH: tl.constexpr, BLOCK_T: tl.constexpr,
                    CAPTURE: tl.constexpr, PRECISION: tl.constexpr):
    # Program (pid_q, b): BLOCK_Q queries of batch row b, every head in turn. All K keys fit one tile, so each
    # head's softmax is exact in one pass; the token columns are recomputed from the same scores' statistics and
    # averaged over heads in registers, then added once to the accumulator.
    pid_q = tl.program_id(0)
    b = tl.program_id(1)
    qs = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_ok = qs < Q
    ks = tl.arange(0, BLOCK_K)
    k_ok = ks < K
    ds = tl.arange(0, BLOCK_DH)
    d_ok = ds < DH
    ts = tl.arange(0, BLOCK_T)
    t_ok = ts < T
    tok = tl.load(tok_ptr + ts, mask=t_ok, other=0)
    cap = tl.zeros([BLOCK_Q, BLOCK_T], tl.float32)
    for h in range(H):
        q_base = q_ptr + b * sq_b + h * sq_h
        k_base = k_ptr + b * sk_b + h * sk_h
        qt = tl.load(q_base + qs[:, None] * sq_q + ds[None, :], mask=q_ok[:, None] & d_ok[None, :], other=0.0)
        kt = tl.load(k_base + ks[None, :] * sk_k + ds[:, None], mask=k_ok[None, :] & d_ok[:, None], other=0.0)
        s = tl.dot(qt, kt, input_precision=PRECISION) * scale  # [BLOCK_Q, BLOCK_K]
        s = tl.where(k_ok[None, :], s, float("-inf"))
        mx = tl.max(s, 1)
        p = tl.exp(s - mx[:, None])
        den = tl.sum(p, 1)
        p = p / den[:, None]
        vt = tl.load(v_ptr + b * sv_b + h * sv_h + ks[:, None] * sv_k + ds[None, :],
                     mask=k_ok[:, None] & d_ok[None, :], other=0.0)
        o = tl.dot(p.to(vt.dtype), vt, input_precision=PRECISION)
        tl.store(o_ptr + b * so_b + h * so_h + qs[:, None] * so_q + ds[None, :], o.to(o_ptr.dtype.element_ty),
                 mask=q_ok[:, None] & d_ok[None, :])
        if CAPTURE:
            kt_tok = tl.load(k_base + tok[None, :] * sk_k + ds[:, None], mask=t_ok[None, :] & d_ok[:, None],
                             other=0.0)
            st = tl.dot(qt, kt_tok, input_precision=PRECISION) * scale  # [BLOCK_Q, BLOCK_T]
            cap += tl.exp(st - mx[:, None]) / den[:, None]
    if CAPTURE:
        r = b - row_offset
        ok = q_ok[:, None] & t_ok[None, :] & (r >= 0) & (r < n_rows)
        a_ptrs = acc_ptr + r * Q * T + qs[:, None] * T + ts[None, :]
        a = tl.load(a_ptrs, mask=ok, other=0.0)
        tl.store(a_ptrs, a + cap * inv_h, mask=ok)


def capture_meta(dtype: torch.dtype, head_dim: int, n_keys: int, n_tokens: int) -> dict:
    """Return the capture kernel's tile sizes and launch options for these sizes (what the launcher uses and what
    :mod:`kit.kernels.compile_check` compiles)."""
    block_dh = max(16, triton.next_power_of_2(head_dim))
    return dict(BLOCK_Q=64 if block_dh <= 128 else 32, BLOCK_K=max(16, triton.next_power_of_2(n_keys)),
                BLOCK_DH=block_dh, BLOCK_T=max(16, triton.next_power_of_2(n_tokens)), PRECISION=_precision(dtype),
                num_warps=8 if block_dh >= 256 else 4,
                # the head loop pipelined over 2 stages fits shared memory in half precision; float32's tf32x3
                # operands need 1 (compiled for sm_80 / sm_90: 131 KB at head_dim 256, against 475 KB with 2)
                num_stages=1 if dtype == torch.float32 else 2)


def cross_attention_capture_triton(q: Tensor, k: Tensor, v: Tensor, scale: float, tokens: Tensor,
                                   accum: Tensor | None, row_offset: int = 0) -> Tensor:
    """Fused softmax attention with in-place token capture (as
    :func:`kit.kernels.reference.cross_attention_capture_torch` without a mask); needs K <= 256, head_dim <= 256."""
    bsz, heads, n_q, dh = q.shape
    n_k = k.shape[2]
    if n_k > CAPTURE_MAX_KEYS or dh > CAPTURE_MAX_HEAD_DIM or v.shape[-1] != dh:
        raise ValueError(f"the fused capture kernel takes K <= {CAPTURE_MAX_KEYS} keys and head_dim <= "
                         f"{CAPTURE_MAX_HEAD_DIM} (v's the same); got K={n_k}, head_dim={dh}, v {v.shape[-1]}")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty(bsz, heads, n_q, dh, dtype=q.dtype, device=q.device)
    capture = accum is not None and tokens.numel() > 0
    tok = tokens.to(device=q.device, dtype=torch.int32).contiguous() if capture else \
        torch.zeros(1, dtype=torch.int32, device=q.device)
    acc = accum if capture else torch.zeros(1, dtype=torch.float32, device=q.device)
    n_tok = int(tok.numel()) if capture else 1
    meta = capture_meta(q.dtype, dh, n_k, n_tok)
    grid = (triton.cdiv(n_q, meta["BLOCK_Q"]), bsz)
    _capture_kernel[grid](q, k, v, out, tok, acc, heads, n_q, n_k, dh, n_tok, int(row_offset),
                          int(accum.shape[0]) if capture else 0, float(scale), 1.0 / heads,
                          q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
                          v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
                          CAPTURE=capture, **meta)
    return out


