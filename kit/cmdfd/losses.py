"""The losses of cross-modal correlation distillation (arXiv:2404.19171), as the authors' code computes them.

Per frame t, the frozen teachers give content posteriors p_t (ASR, from audio) and q_t (VSR, from the mouth); the
student gives post-cross-attention audio and visual embeddings a_t and v_t.

- target ``r_t = 1 - D_t``: with ``kind="paper"``, D_t = (mean_c p log(p / q + 1e-10) + mean_c q log(q / p + 1e-10)) / 2,
  the symmetric KL *averaged* over the classes that the code calls JS (so r is near 1 for any pair of
  flat-ish posteriors, and can leave [0, 1]: it is clamped there for the BCE); with ``kind="js"`` [PROPOSED, ours],
  D_t = JS(p_t, q_t) / ln 2, the true Jensen-Shannon divergence in bits, in [0, 1].
- student ``c_t = (cos(a_t, v_t) + 1) / 2``.
- CD: BCE(c_t, r_t) over every frame of every clip, real and fake.
- JC: per clip delta = sigmoid(||r - c||_2 over time); a real clip pays delta^2, a fake max(0, margin - delta)^2
  (margin 1.0 in the code; delta >= 0.5 always, so the fake term is at most (margin - 0.5)^2).
- CE: per-frame 2-class cross-entropy with the clip's label on every frame.

``total_loss`` = w_ce CE + w_cd CD + w_jc JC (all weights 1 in the code).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["KINDS", "correlation_target", "student_correlation", "cd_loss", "jc_loss", "ce_loss", "total_loss",
           "correlation_matrix", "student_correlation_matrix"]

KINDS = ("paper", "js")
_EPS = 1e-10


def _check_posteriors(p: torch.Tensor, q: torch.Tensor) -> None:
    try:
        ok = p.ndim >= 1 and q.ndim >= 1 and p.shape[-1] == q.shape[-1] and torch.broadcast_shapes(p.shape, q.shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"p and q must be posteriors of one shape [..., C] (or broadcastable), got {tuple(p.shape)} "
                         f"and {tuple(q.shape)}")


def correlation_target(p: torch.Tensor, q: torch.Tensor, kind: str = "paper") -> torch.Tensor:
    """r = 1 - D [...] of teacher posteriors ``p``, ``q`` [..., C] (the last axis sums to 1); ``kind`` in ``KINDS``."""
    _check_posteriors(p, q)
    if kind == "paper":
        d = 0.5 * ((p * torch.log(p / q + _EPS)).mean(-1) + (q * torch.log(q / p + _EPS)).mean(-1))
    elif kind == "js":
        m = 0.5 * (p + q)

        def kl(a: torch.Tensor) -> torch.Tensor:
            return torch.where(a > 0, a * (torch.log(a.clamp_min(1e-30)) - torch.log(m.clamp_min(1e-30))), 0.0).sum(-1)

        d = 0.5 * (kl(p) + kl(q)) / math.log(2.0)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return 1.0 - d


def correlation_matrix(p: torch.Tensor, q: torch.Tensor, kind: str = "paper") -> torch.Tensor:
    """[..., T, T] with entry (i, j) = r(p_i, q_j): audio frame i against video frame j (the diagonal is r_t)."""
    if p.shape != q.shape or p.ndim < 2:
        raise ValueError(f"p and q must be [..., T, C] of one shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return correlation_target(p.unsqueeze(-2), q.unsqueeze(-3), kind)


def student_correlation(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """c = (cos(a_t, v_t) + 1) / 2 [...] of embeddings ``a``, ``v`` [..., D]."""
    if a.shape != v.shape:
        raise ValueError(f"audio and visual embeddings must share a shape, got {tuple(a.shape)} and {tuple(v.shape)}")
    return (F.cosine_similarity(a, v, dim=-1) + 1.0) / 2.0


def student_correlation_matrix(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[..., T, T] with entry (i, j) = (cos(a_i, v_j) + 1) / 2."""
    if a.shape != v.shape or a.ndim < 2:
        raise ValueError(f"a and v must be [..., T, D] of one shape, got {tuple(a.shape)} and {tuple(v.shape)}")
    return (F.normalize(a, dim=-1) @ F.normalize(v, dim=-1).transpose(-1, -2) + 1.0) / 2.0


def _mask(c: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(c) if mask is None else mask.to(c)


def cd_loss(c: torch.Tensor, r: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """BCE(c_t, r_t) averaged over the valid frames (``mask`` [B, T] of 1 / 0; None: all); r is a fixed target,
    clamped to [0, 1]."""
    if c.shape != r.shape:
        raise ValueError(f"c and r must share a shape, got {tuple(c.shape)} and {tuple(r.shape)}")
    m = _mask(c, mask)
    bce = F.binary_cross_entropy(c.clamp(1e-6, 1 - 1e-6), r.detach().clamp(0.0, 1.0), reduction="none")
    return (bce * m).sum() / m.sum().clamp_min(1.0)


def jc_loss(c: torch.Tensor, r: torch.Tensor, label: torch.Tensor, margin: float = 1.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over clips of delta^2 (real, label 0) or max(0, margin - delta)^2 (fake, label 1), delta =
    sigmoid(||(r - c) * mask||_2 over the clip's frames); ``c``, ``r`` [B, T], ``label`` [B]."""
    if c.shape != r.shape or c.ndim != 2 or label.shape != c.shape[:1]:
        raise ValueError(f"c and r must be [B, T] and label [B], got {tuple(c.shape)}, {tuple(r.shape)}, "
                         f"{tuple(label.shape)}")
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    m = _mask(c, mask)
    delta = torch.sigmoid((((r.detach() - c) * m) ** 2).sum(-1).sqrt())
    y = label.to(c)
    return ((1 - y) * delta ** 2 + y * (margin - delta).clamp_min(0.0) ** 2).mean()


def ce_loss(logits: torch.Tensor, label: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame cross-entropy of ``logits`` [B, T, 2] with the clip's ``label`` [B] on each valid frame."""
    if logits.ndim != 3 or logits.shape[-1] != 2 or label.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [B, T, 2] and label [B], got {tuple(logits.shape)} and {tuple(label.shape)}")
    m = _mask(logits[..., 0], mask)
    ce = F.cross_entropy(logits.flatten(0, 1), label.long()[:, None].expand(-1, logits.shape[1]).flatten(),
                         reduction="none").view_as(m)
    return (ce * m).sum() / m.sum().clamp_min(1.0)


def total_loss(logits: torch.Tensor, a: torch.Tensor, v: torch.Tensor, label: torch.Tensor,
               p: torch.Tensor | None = None, q: torch.Tensor | None = None, *, w_ce: float = 1.0, w_cd: float = 1.0,
               w_jc: float = 1.0, margin: float = 1.0, kind: str = "paper", mask: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
    """{"loss", "ce", "cd", "jc", "c", "r"}: L = w_ce CE + w_cd CD + w_jc JC; the CD and JC terms need the teachers'
    posteriors ``p``, ``q`` [B, T, C] (a zero weight skips them; then "cd" / "jc" are 0)."""
    ce = ce_loss(logits, label, mask)
    c = student_correlation(a, v)
    zero = logits.new_zeros(())
    out = {"ce": ce, "cd": zero, "jc": zero, "c": c.detach(), "r": None}
    if w_cd or w_jc:
        if p is None or q is None:
            raise ValueError("the CD and JC terms need the teachers' posteriors p and q")
        r = correlation_target(p, q, kind)
        out["r"] = r.detach()
        if w_cd:
            out["cd"] = cd_loss(c, r, mask)
        if w_jc:
            out["jc"] = jc_loss(c, r, label, margin, mask)
    out["loss"] = w_ce * ce + w_cd * out["cd"] + w_jc * out["jc"]
    return out
