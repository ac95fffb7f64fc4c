"""Exact (closed-form) denoisers in the EDM / variance-exploding convention ``x = x0 + sigma * n``.

Every denoiser is a callable ``D(x, sigma) -> x0_hat`` with ``x [B, ...]`` (any trailing shape, flattened to
``d`` internally) and ``sigma`` a python float or a tensor of shape ``[B]`` (or 0-dim). ``D`` is the posterior
mean ``E[x0 | x]`` (Tweedie), so the probability-flow ODE of Karras et al. 2022 (arXiv:2206.00364, Eq. 1 with
s(t) = 1, sigma(t) = t) reads ``dx/dsigma = (x - D(x, sigma)) / sigma``.

Analytic models (Gaussian, Gaussian mixture) compute in float64 and cast back to ``x``'s dtype; the empirical
(finite training set) denoiser computes in ``x``'s dtype, streaming over the data in chunks.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from kit.kernels.reference import data_chunks, data_statistics

__all__ = [
    "as_sigma_batch",
    "GaussianDenoiser",
    "GaussianMixtureDenoiser",
    "EmpiricalDenoiser",
]

_LOG_2PI = math.log(2.0 * math.pi)


def as_sigma_batch(x: Tensor, sigma: float | Tensor, *, allow_zero: bool = False) -> Tensor:
    """Return sigma as a tensor [B] with x's dtype and device, after checking it.

    ``x [B, ...]``; ``sigma`` is a python/numpy real, a 0-dim tensor or a tensor [B]. Raises ``ValueError``
    naming ``sigma`` when it is NaN/inf, <= 0 (< 0 with ``allow_zero``), or its batch size differs from x.
    """
    if not isinstance(x, Tensor) or x.ndim < 1:
        raise ValueError(f"x must be a tensor [B, ...] with a batch dimension, got {type(x).__name__}")
    batch = x.shape[0]
    if isinstance(sigma, Tensor):
        if sigma.ndim == 0:
            s = sigma.reshape(1).expand(batch)
        elif sigma.ndim == 1 and sigma.shape[0] == batch:
            s = sigma
        else:
            raise ValueError(
                f"sigma must be a float, a 0-dim tensor or a tensor of shape [B] = [{batch}], "
                f"got shape {list(sigma.shape)}"
            )
        s = s.to(dtype=x.dtype, device=x.device)
    elif isinstance(sigma, Real) and not isinstance(sigma, bool):
        s = torch.full((batch,), float(sigma), dtype=x.dtype, device=x.device)
    else:
        raise ValueError(f"sigma must be a float or a tensor [B], got {type(sigma).__name__}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"sigma must be finite, got {s.tolist() if s.numel() <= 8 else 'non-finite values'}")
    bad = (s < 0) if allow_zero else (s <= 0)
    if bool(bad.any()):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"sigma must be {bound} (in x's dtype {x.dtype}), got min {s.min().item():.3g}")
    return s


def _flatten(x: Tensor, dim: int, name: str = "x") -> Tensor:
    """Return x [B, ...] viewed as [B, d], checking that the trailing size equals dim."""
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape [B, ...] with trailing size {dim}, got {list(x.shape)}")
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != dim:
        raise ValueError(f"{name} must have trailing size d = {dim}, got shape {list(x.shape)}")
    return flat


def _check_finite(t: Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (no NaN/inf)")


class GaussianDenoiser:
    """Optimal denoiser of Gaussian data N(mean, cov), via one eigendecomposition cov = U diag(lam) U^T."""

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        mean = torch.as_tensor(mean)
        cov = torch.as_tensor(cov)
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape [d], got {list(mean.shape)}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape [d, d] = [{d}, {d}], got {list(cov.shape)}")
        _check_finite(mean, "mean")
        _check_finite(cov, "cov")
        self.dtype = mean.dtype if mean.is_floating_point() else torch.float64
        self.dim = d
        self.mean = mean.to(torch.float64)
        cov64 = cov.to(torch.float64)
        if not torch.allclose(cov64, cov64.T, rtol=1e-6, atol=1e-10):
            raise ValueError("cov must be symmetric")
        lam, u = torch.linalg.eigh(0.5 * (cov64 + cov64.T))
        if float(lam.min()) < -1e-8 * max(float(lam.abs().max()), 1.0):
            raise ValueError(f"cov must be positive semi-definite, min eigenvalue {float(lam.min()):.3g}")
        self.eigvals = lam.clamp_min(0.0)  # [d]
        self.eigvecs = u  # [d, d], columns are eigenvectors

    def _basis(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        return self.mean.to(device), self.eigvals.to(device), self.eigvecs.to(device)

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return D(x, sigma) = mean + cov (cov + sigma^2 I)^-1 (x - mean), shape and dtype of x [B, ...]."""
        s = as_sigma_batch(x, sigma).to(torch.float64)
        mean, lam, u = self._basis(x.device)
        z = (_flatten(x, self.dim).to(torch.float64) - mean) @ u  # [B, d] in the eigenbasis
        shrink = lam / (lam + s[:, None] ** 2)  # [B, d]
        out = mean + (shrink * z) @ u.T
        return out.reshape(x.shape).to(x.dtype)

    def ode_solution(self, x: Tensor, sigma_from: float | Tensor, sigma_to: float | Tensor) -> Tensor:
        """Return the exact probability-flow ODE map x(sigma_from) -> x(sigma_to), shape of x [B, ...].

        ``mean + U diag(sqrt((lam + s_to^2) / (lam + s_from^2))) U^T (x - mean)``; sigma_to may be 0.
        """
        s0 = as_sigma_batch(x, sigma_from).to(torch.float64)
        s1 = as_sigma_batch(x, sigma_to, allow_zero=True).to(torch.float64)
        mean, lam, u = self._basis(x.device)
        z = (_flatten(x, self.dim).to(torch.float64) - mean) @ u
        ratio = torch.sqrt((lam + s1[:, None] ** 2) / (lam + s0[:, None] ** 2))
        out = mean + (ratio * z) @ u.T
        return out.reshape(x.shape).to(x.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Return n samples [n, d] of the data distribution N(mean, cov), in the mean's dtype."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        out = self.mean + (z * self.eigvals.sqrt()) @ self.eigvecs.T
        return out.to(self.dtype)


class GaussianMixtureDenoiser:
    """Optimal denoiser of a Gaussian mixture sum_k pi_k N(mu_k, S_k).

    Each covariance is stored as ``S_k = Q_k diag(lam_k) Q_k^T + v_k (I - Q_k Q_k^T)`` with orthonormal
    ``Q_k [d, r]``: full covariances have r = d (eigendecomposition), low-rank ones ``F F^T + v I`` have
    r = rank(F), so every term below costs O(B d r) instead of O(B d^2).
    """

    def __init__(self, weights: Tensor, means: Tensor, covs: Tensor) -> None:
        weights, means, covs = (torch.as_tensor(t) for t in (weights, means, covs))
        k, d = self._check_weights_means(weights, means)
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape [K, d, d] = [{k}, {d}, {d}], got {list(covs.shape)}")
        _check_finite(covs, "covs")
        c64 = covs.to(torch.float64)
        if not torch.allclose(c64, c64.transpose(1, 2), rtol=1e-6, atol=1e-10):
            raise ValueError("covs must be symmetric")
        lam, q = torch.linalg.eigh(0.5 * (c64 + c64.transpose(1, 2)))
        if float(lam.min()) < -1e-8 * max(float(lam.abs().max()), 1.0):
            raise ValueError(f"covs must be positive semi-definite, min eigenvalue {float(lam.min()):.3g}")
        self._setup(weights, means, q, lam.clamp_min(0.0), torch.zeros(k, dtype=torch.float64))

    @classmethod
    def low_rank(
        cls, weights: Tensor, means: Tensor, factors: Tensor, noise_var: float | Tensor
    ) -> GaussianMixtureDenoiser:
        """Return a mixture with covariances S_k = F_k F_k^T + noise_var I; factors [K, d, r], noise_var > 0.

        Only the thin SVD of each F_k (an r x r problem) is needed, so d = 3072 stays cheap.
        """
        weights, means, factors = (torch.as_tensor(t) for t in (weights, means, factors))
        k, d = cls._check_weights_means(weights, means)
        if factors.ndim != 3 or factors.shape[:2] != (k, d):
            raise ValueError(f"factors must have shape [K, d, r] = [{k}, {d}, r], got {list(factors.shape)}")
        _check_finite(factors, "factors")
        v = torch.as_tensor(noise_var, dtype=torch.float64).reshape(-1)
        if v.numel() not in (1, k) or not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
            raise ValueError(f"noise_var must be finite and > 0 (scalar or [K]), got {noise_var}")
        v = v.expand(k).clone()
        q, sv, _ = torch.linalg.svd(factors.to(torch.float64), full_matrices=False)  # q [K, d, r]
        obj = cls.__new__(cls)
        obj._setup(weights, means, q, sv**2 + v[:, None], v)
        return obj

    @staticmethod
    def _check_weights_means(weights: Tensor, means: Tensor) -> tuple[int, int]:
        if means.ndim != 2:
            raise ValueError(f"means must have shape [K, d], got {list(means.shape)}")
        k, d = means.shape
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape [K] = [{k}], got {list(weights.shape)}")
        _check_finite(weights, "weights")
        _check_finite(means, "means")
        if bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return k, d

    def _setup(self, weights: Tensor, means: Tensor, q: Tensor, lam: Tensor, v: Tensor) -> None:
        self.dtype = means.dtype if means.is_floating_point() else torch.float64
        self.num_components, self.dim = means.shape
        w = weights.to(torch.float64)
        self.log_weights = torch.log(w / w.sum())  # [K], -inf for empty components
        self.means = means.to(torch.float64)  # [K, d]
        self.bases = q  # [K, d, r], orthonormal columns
        self.eigvals = lam  # [K, r], variances along the basis
        self.noise_var = v  # [K], variance on the orthogonal complement (0 for full covariances)
        self.rank = q.shape[2]

    def _log_density_and_mean(self, x: Tensor, s2: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Return log N(x; mu_k, S_k + s2 I) [B] and the component posterior mean [B, d]."""
        mu, q = self.means[k].to(x.device), self.bases[k].to(x.device)
        lam, v = self.eigvals[k].to(x.device), self.noise_var[k].to(x.device)
        z = x - mu  # [B, d]
        p = z @ q  # [B, r]
        var_q = lam + s2[:, None]  # [B, r]
        maha = (p**2 / var_q).sum(1)
        logdet = torch.log(var_q).sum(1)
        post = mu + ((lam / var_q) * p) @ q.T
        if self.rank < self.dim:
            z_perp = z - p @ q.T  # computed explicitly: no |z|^2 - |p|^2 cancellation
            c = v + s2  # [B]
            maha = maha + (z_perp**2).sum(1) / c
            logdet = logdet + (self.dim - self.rank) * torch.log(c)
            post = post + (v / c)[:, None] * z_perp
        return -0.5 * (maha + logdet + self.dim * _LOG_2PI), post

    def responsibilities(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return posterior component probabilities r_k(x) [B, K] (float64) under noise level sigma."""
        return self._evaluate(x, sigma)[0]

    def _evaluate(self, x: Tensor, sigma: float | Tensor) -> tuple[Tensor, Tensor]:
        s2 = as_sigma_batch(x, sigma).to(torch.float64) ** 2
        xf = _flatten(x, self.dim).to(torch.float64)
        logits, posts = [], []
        for k in range(self.num_components):
            logp, post = self._log_density_and_mean(xf, s2, k)
            logits.append(logp + self.log_weights[k].to(x.device))
            posts.append(post)
        resp = torch.softmax(torch.stack(logits, 1), dim=1)  # log-sum-exp normalisation, [B, K]
        return resp, torch.stack(posts, 1)  # [B, K], [B, K, d]

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return D(x, sigma) = sum_k r_k(x) [mu_k + S_k (S_k + s^2 I)^-1 (x - mu_k)], shape/dtype of x."""
        resp, posts = self._evaluate(x, sigma)
        out = torch.einsum("bk,bkd->bd", resp, posts)
        return out.reshape(x.shape).to(x.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Return n samples [n, d] of the mixture, in the means' dtype."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)  # [n]
        z_q = torch.randn(n, self.rank, generator=generator, dtype=torch.float64)
        q = self.bases[comp]  # [n, d, r]
        out = self.means[comp] + torch.einsum("ndr,nr->nd", q, z_q * self.eigvals[comp].sqrt())
        if self.rank < self.dim:
            z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
            z_perp = z - torch.einsum("ndr,nr->nd", q, torch.einsum("ndr,nd->nr", q, z))
            out = out + self.noise_var[comp].sqrt()[:, None] * z_perp
        return out.to(self.dtype)


class EmpiricalDenoiser:
    """Optimal denoiser of a finite training set {y_i}: a softmax-weighted mean streamed over data chunks.

    ``D(x, s) = sum_i softmax_i(-|x - y_i|^2 / 2 s^2) y_i``. Write ``x_c = x - m`` and ``y_c = y - m`` with the
    data mean m; then ``|x - y|^2 = |x_c|^2 - 2 x_c.y_c + |y_c|^2`` and every term that does not depend on i
    (``|x_c|^2`` and ``x_c.m`` in ``x_c.y_c = x_c.y - x_c.m``) cancels in the softmax, leaving the logits
    ``(x_c.y_i - |y_c,i|^2 / 2) / s^2``: one matmul per chunk against the stored data, with ``|y_c,i|^2``
    precomputed in float64 (centring keeps float32 logits small and accurate). A streaming log-sum-exp
    (running max, running normaliser, running weighted sum) keeps only [B, chunk_size] logits alive, so the
    extra memory of a call is O(B chunk_size + B d) when x has the data's dtype and device (otherwise each
    chunk is also cast, O(chunk_size d)). ``bandwidth = h > 0`` gives the denoiser of the KDE-smoothed data
    (each y_i blurred by N(0, h^2 I)): ``D_h(x, s) = D(x, t) + (h^2 / t^2)(x - D(x, t))``, t^2 = s^2 + h^2.
    """

    def __init__(
        self,
        data: Tensor,
        bandwidth: float = 0.0,
        chunk_size: int = 4096,
        device: torch.device | str | None = None,
    ) -> None:
        data = torch.as_tensor(data)
        if data.ndim < 2 or data.shape[0] < 1:
            raise ValueError(f"data must have shape [N, ...] with N >= 1, got {list(data.shape)}")
        if not data.is_floating_point():
            raise ValueError(f"data must be a floating-point tensor, got {data.dtype}")
        _check_finite(data, "data")
        if not (isinstance(bandwidth, Real) and math.isfinite(bandwidth) and bandwidth >= 0):
            raise ValueError(f"bandwidth must be a finite float >= 0, got {bandwidth}")
        if isinstance(chunk_size, bool) or not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size}")
        flat = data.reshape(data.shape[0], -1)
        if device is not None:
            flat = flat.to(device)
        self.num_points, self.dim = flat.shape
        self.sample_shape = tuple(data.shape[1:])
        self.bandwidth = float(bandwidth)
        self.chunk_size = chunk_size
        self.data = flat  # [N, d], a view of the caller's tensor when no device move is needed
        # Mean and centred half squared norms in float64, block by block (no float64 copy of the data).
        self.data_mean, self.half_sq_norms = data_statistics(flat)  # [d], [N]: |y_i - m|^2 / 2

    def _centred_queries(self, x: Tensor) -> Tensor:
        xf = _flatten(x, self.dim)
        if not xf.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
        return xf - self.data_mean.to(device=x.device, dtype=x.dtype)

    def _denoise_empirical(self, xc: Tensor, s: Tensor) -> Tensor:
        """Return sum_i softmax_i(logits) y_i [B, d] for centred queries xc [B, d] and sigma s [B].

        Runs :func:`kit.kernels.empirical_denoise`'s chosen implementation (``KIT_KERNELS``): on CUDA the fastest
        of the Triton kernel, the chunked loop and SDPA at this size; the chunked torch reference elsewhere.
        """
        from kit.kernels import empirical_denoise_centred

        return empirical_denoise_centred(xc, self.data, self.half_sq_norms, s, chunk_size=self.chunk_size)

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return D(x, sigma) [B, ...] (x's shape and dtype): the empirical or KDE-smoothed posterior mean."""
        s = as_sigma_batch(x, sigma)
        xc = self._centred_queries(x)
        t = torch.sqrt(s**2 + self.bandwidth**2) if self.bandwidth > 0 else s
        den = self._denoise_empirical(xc, t)  # D_emp(x, t) [B, d]
        if self.bandwidth > 0:
            xf = x.reshape(den.shape)
            den = den + (self.bandwidth**2 / t**2)[:, None] * (xf - den)
        return den.reshape(x.shape)

    def nearest_index(self, x: Tensor) -> Tensor:
        """Return the index [B] (int64) of the nearest training point to each x [B, ...] in L2."""
        xc = self._centred_queries(x)
        best_score = torch.full((xc.shape[0],), -math.inf, dtype=xc.dtype, device=xc.device)
        best_idx = torch.zeros(xc.shape[0], dtype=torch.long, device=xc.device)
        for start, y, half_sq in data_chunks(self.data, self.half_sq_norms, xc, self.chunk_size):
            score, idx = (xc @ y.T - half_sq).max(1)  # argmax of x_c.y - |y_c|^2/2 == argmin of |x - y|
            better = score > best_score
            best_score = torch.where(better, score, best_score)
            best_idx = torch.where(better, idx + start, best_idx)
        return best_idx
