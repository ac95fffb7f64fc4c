"""Self-supervised objectives compared in arXiv:2405.18320 (handwriting verification), as tensor functions.

Joint-embedding losses on two views' embeddings ``z1, z2 [N, d]``: VICReg (arXiv:2105.04906), Barlow Twins
(arXiv:2103.03230), SimCLR's NT-Xent (arXiv:2002.05709), BYOL (arXiv:2006.07733), SimSiam (arXiv:2011.10566)
and MoCo's InfoNCE against a memory queue (arXiv:1911.05722) with the momentum-encoder helpers; the
ResNet-VAE's Gaussian-likelihood ELBO with a Monte-Carlo KL; and ``collapse_report``, the alarm for collapsed
embeddings. Every function checks shapes and finiteness and raises ``ValueError`` rather than returning a NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["vicreg_loss", "barlow_twins_loss", "nt_xent_loss", "negative_cosine", "byol_loss", "simsiam_loss",
           "moco_loss", "MemoryQueue", "momentum_update", "cosine_momentum", "vae_loss", "collapse_report"]

_LOG_2PI = math.log(2.0 * math.pi)


def _check_pair(z1: torch.Tensor, z2: torch.Tensor, names: tuple[str, str] = ("z1", "z2"),
                min_batch: int = 1) -> None:
    for name, z in zip(names, (z1, z2)):
        if z.ndim != 2:
            raise ValueError(f"{name} must be [N, d], got shape {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError(f"{name} contains NaN or inf")
    if z1.shape != z2.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if z1.shape[0] < min_batch:
        raise ValueError(f"batch size must be >= {min_batch} (the loss needs statistics over the batch), "
                         f"got {z1.shape[0]}")


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """Off-diagonal entries [d * (d - 1)] of a square matrix [d, d]."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> dict[str, torch.Tensor]:
    """Scalars {loss, invariance, variance, covariance} of VICReg (arXiv:2105.04906) on z1, z2 [N, d].

    invariance = mean squared difference over all elements; variance = 0.5 * (v(z1) + v(z2)) with v(Z) =
    mean_j relu(1 - sqrt(Var(Z_j) + 1e-4)) (unbiased variance); covariance = c(z1) + c(z2) with c(Z) = sum of
    squared off-diagonal entries of Cov(Z) = Zc^T Zc / (N - 1), divided by d. The three terms are returned
    unweighted; ``loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance`` (lambda = mu
    = 25, nu = 1 as in arXiv:2105.04906 and the VICReg run of arXiv:2405.18320).
    """
    _check_pair(z1, z2, min_batch=2)
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)

    def variance(z: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - torch.sqrt(z.var(dim=0, unbiased=True) + 1e-4)).mean()

    def covariance(z: torch.Tensor) -> torch.Tensor:
        zc = z - z.mean(dim=0)
        cov = zc.T @ zc / (n - 1)
        return _off_diagonal(cov).pow(2).sum() / d

    var = 0.5 * (variance(z1) + variance(z2))
    cov = covariance(z1) + covariance(z2)
    loss = sim_coeff * invariance + std_coeff * var + cov_coeff * cov
    return {"loss": loss, "invariance": invariance, "variance": var, "covariance": cov}


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5
                      ) -> dict[str, torch.Tensor]:
    """Scalars {loss, on_diag, off_diag} of Barlow Twins on projections z1, z2 [N, d] (arXiv:2103.03230).

    Each branch is standardised over the batch as a non-affine batch norm does, ``(z - mean) / sqrt(var +
    eps)`` with the biased variance and ``eps = 1e-5``; the cross-correlation is ``c = z1n^T z2n / N`` [d, d];
    ``on_diag = sum_i (1 - c_ii)^2``, ``off_diag = sum_{i != j} c_ij^2``, ``loss = on_diag + lambd *
    off_diag``.
    """
    _check_pair(z1, z2, min_batch=2)
    n = z1.shape[0]

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)

    c = standardise(z1).T @ standardise(z2) / n
    on_diag = (1.0 - torch.diagonal(c)).pow(2).sum()
    off_diag = _off_diagonal(c).pow(2).sum()
    return {"loss": on_diag + lambd * off_diag, "on_diag": on_diag, "off_diag": off_diag}


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Scalar NT-Xent (SimCLR, arXiv:2002.05709) of two views' projections z1, z2 [N, d].

    All 2N embeddings are anchors; logits are cosine similarities / temperature to the other 2N - 1 embeddings
    (self-similarity excluded), the positive is the same image's other view, and the cross-entropy is averaged
    over the 2N anchors.
    """
    _check_pair(z1, z2)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    idx = torch.arange(n, device=z.device)
    targets = torch.cat([idx + n, idx])
    return F.cross_entropy(logits, targets)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Scalar ``-mean cos(p, stop_grad(z))`` of p and z [N, d]: SimSiam's D (arXiv:2011.10566)."""
    _check_pair(p, z, ("p", "z"))
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Scalar symmetrised BYOL loss (arXiv:2006.07733) of predictions p1, p2 and targets z1, z2 [N, d].

    BYOL's normalised MSE ``||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z)``, batch-averaged, summed over both
    directions as in the paper (``L + L~``): ``mean(2 - 2 cos(p1, sg z2)) + mean(2 - 2 cos(p2, sg z1))``, so
    it lies in [0, 8].
    """
    _check_pair(p1, z2, ("p1", "z2"))
    _check_pair(p2, z1, ("p2", "z1"))
    return (2.0 + 2.0 * negative_cosine(p1, z2)) + (2.0 + 2.0 * negative_cosine(p2, z1))


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Scalar SimSiam loss ``0.5 * (D(p1, z2) + D(p2, z1))`` in [-1, 1], stop-grad on z (arXiv:2011.10566)."""
    _check_pair(p1, z2, ("p1", "z2"))
    _check_pair(p2, z1, ("p2", "z1"))
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


def moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07
              ) -> torch.Tensor:
    """Scalar InfoNCE of MoCo (arXiv:1911.05722): queries q [N, d], keys k [N, d], negatives queue [K, d].

    q, k and the queue rows are L2-normalised; k and the queue get no gradient. Logits are
    ``[q.k, q.queue^T] / temperature`` [N, 1 + K] and the positive is column 0.
    """
    _check_pair(q, k, ("q", "k"))
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must be [K, {q.shape[1]}], got shape {tuple(queue.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    negatives = F.normalize(queue.detach(), dim=1)
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ negatives.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


class MemoryQueue(nn.Module):
    """MoCo's first-in-first-out dictionary of ``size`` L2-normalised keys [size, dim] (arXiv:1911.05722).

    Starts as random normalised Gaussian vectors (seeded by ``generator``); ``enqueue(keys)`` overwrites the
    oldest entries. ``queue`` is a buffer, so it moves with ``.to(device)`` and is saved in the state dict.
    """

    def __init__(self, dim: int, size: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"dim and size must be >= 1, got dim={dim}, size={size}")
        self.dim, self.size = int(dim), int(size)
        self.register_buffer("queue", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Nothing; overwrites the oldest entries with normalised keys [n, dim] (last ``size`` if more)."""
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys must be [n, {self.dim}], got shape {tuple(keys.shape)}")
        keys = F.normalize(keys.detach()[-self.size:], dim=1).to(self.queue)
        idx = (int(self.ptr) + torch.arange(keys.shape[0], device=self.queue.device)) % self.size
        self.queue[idx] = keys
        self.ptr.fill_((int(self.ptr) + keys.shape[0]) % self.size)

    def forward(self) -> torch.Tensor:
        """The current keys [size, dim]."""
        return self.queue


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """Nothing; sets each target parameter to ``m * target + (1 - m) * online`` in place (BYOL/MoCo EMA)."""
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1], got {m}")
    online_params, target_params = list(online.parameters()), list(target.parameters())
    if len(online_params) != len(target_params):
        raise ValueError(f"online and target must have the same parameters, got {len(online_params)} and "
                         f"{len(target_params)} tensors")
    for po, pt in zip(online_params, target_params):
        if po.shape != pt.shape:
            raise ValueError(f"online and target parameter shapes differ: {tuple(po.shape)} vs "
                             f"{tuple(pt.shape)}")
        pt.mul_(m).add_(po.detach(), alpha=1.0 - m)


def cosine_momentum(step: int, total: int, base: float = 0.996) -> float:
    """Target momentum at ``step`` of ``total``: ``1 - (1 - base) (cos(pi step / total) + 1) / 2`` (BYOL).

    Goes from ``base`` at step 0 to 1 at ``step = total`` (arXiv:2006.07733, Sec. 3.2); later steps give 1.
    """
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    t = min(step, total) / total
    return 1.0 - (1.0 - base) * (math.cos(math.pi * t) + 1.0) / 2.0


def vae_loss(x: torch.Tensor, x_hat_mean: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor,
             z: torch.Tensor, log_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scalars {loss, kl, recon} of the ResNet-VAE ELBO of arXiv:2405.18320 on images x, x_hat_mean [B, ...].

    ``recon`` is the batch-mean log-likelihood ``sum_pixels log Normal(x; x_hat_mean, exp(log_scale))`` with
    one learnable global log-scale (a scalar tensor); ``kl`` is the single-sample Monte-Carlo KL of the sample
    z [B, L]: ``sum_dims log Normal(z; mu, exp(0.5 log_var)) - log Normal(z; 0, 1)``, batch-mean; ``loss = kl
    - recon`` (the negative ELBO, batch-mean).
    """
    if x.shape != x_hat_mean.shape or x.ndim < 2:
        raise ValueError(f"x and x_hat_mean must have the same [B, ...] shape, got {tuple(x.shape)} and "
                         f"{tuple(x_hat_mean.shape)}")
    if mu.ndim != 2 or mu.shape != log_var.shape or mu.shape != z.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu, log_var, z must all be [B={x.shape[0]}, L], got {tuple(mu.shape)}, "
                         f"{tuple(log_var.shape)}, {tuple(z.shape)}")
    if log_scale.numel() != 1:
        raise ValueError(f"log_scale must be a single number, got shape {tuple(log_scale.shape)}")
    for name, t in (("x", x), ("x_hat_mean", x_hat_mean), ("mu", mu), ("log_var", log_var), ("z", z),
                    ("log_scale", log_scale)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf")
    log_scale = log_scale.reshape(())
    sq = (x - x_hat_mean).pow(2) * torch.exp(-2.0 * log_scale)
    recon = (-0.5 * sq - log_scale - 0.5 * _LOG_2PI).flatten(1).sum(dim=1)
    log_q = (-0.5 * (z - mu).pow(2) * torch.exp(-log_var) - 0.5 * log_var - 0.5 * _LOG_2PI).sum(dim=1)
    log_p = (-0.5 * z.pow(2) - 0.5 * _LOG_2PI).sum(dim=1)
    kl = log_q - log_p
    return {"loss": (kl - recon).mean(), "kl": kl.mean(), "recon": recon.mean()}


def collapse_report(z: torch.Tensor, target_std: float | None = None, std_tol: float = 0.01,
                    rank_tol: float = 0.05) -> dict:
    """Collapse alarm of z [N, d]: {std_per_dim [d], mean_std, frac_collapsed, collapsed, effective_rank}.

    A dimension is collapsed when its (unbiased) std over the batch is at most ``std_tol * target_std``;
    ``target_std`` defaults to the embedding's root-mean-square value, which makes the test scale-free (a
    batch whose rows are all nearly the same vector is collapsed however large it is); pass ``target_std=1``
    for VICReg's absolute variance target (arXiv:2105.04906). ``effective_rank`` is exp of the entropy of the
    normalised singular values of the centred batch (Roy & Vetterli, 2007), in [0, min(N - 1, d)].
    ``collapsed`` is True when over half the dimensions are collapsed or the effective rank is below
    ``max(1.5, rank_tol * min(N - 1, d))`` (all embeddings on one line: dimensional collapse).
    """
    if z.ndim != 2:
        raise ValueError(f"z must be [N, d], got shape {tuple(z.shape)}")
    if z.shape[0] < 2:
        raise ValueError(f"collapse_report needs a batch of >= 2 embeddings, got {z.shape[0]}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or inf")
    z = z.detach().double()
    n, d = z.shape
    std = z.std(dim=0, unbiased=True)
    ref = float(z.pow(2).mean().sqrt()) if target_std is None else float(target_std)
    is_collapsed = std <= std_tol * ref
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    if float(s.sum()) <= 1e-12 * max(ref, 1e-300):
        eff_rank = 0.0
    else:
        p = s / s.sum()
        p = p[p > 0]
        eff_rank = float(torch.exp(-(p * p.log()).sum()))
    frac = float(is_collapsed.double().mean())
    rank_floor = max(1.5, rank_tol * min(n - 1, d))
    return {"std_per_dim": std.float(), "mean_std": float(std.mean()), "frac_collapsed": frac,
            "collapsed": bool(frac > 0.5 or eff_rank < rank_floor), "effective_rank": eff_rank}
