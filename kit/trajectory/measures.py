"""Trajectory measurements of ODE-based diffusion sampling (Sec. 3 and Fig. 4 of arXiv:2405.11326).

Everything is in the variance-exploding (EDM) view: ``x_sigma = x_0 + sigma * n`` and the probability-flow ODE
``dx/dsigma = eps(x, sigma) = (x - D(x, sigma)) / sigma``. A *sampling trajectory* is the sequence of ODE states
``xs [n+1, B, ...]`` at the noise levels ``sigmas [n+1]``; the *denoising trajectory* is ``denoised [n, B, ...]``
with ``denoised[i] = D(xs[i], sigmas[i])``.

The paper's observations measured here:
- every trajectory stays very close to the straight line (chord) from its start to its end (`chord_deviation`);
- after removing the chord direction, two principal components explain almost all of what is left, so each
  trajectory lives in ~3 dimensions (`project_trajectory`, `explained_variance_after_chord`);
- the denoising trajectory reaches the final sample far earlier than the sampling trajectory does
  (``dist_d_end`` vs ``dist_x_end`` in `trajectory_stats`).

All results are float64.
"""

from __future__ import annotations

import torch

from kit.diffusion.geometry import _as_float64, chord_deviation

Tensor = torch.Tensor

# Relative size (w.r.t. the chord length) below which a residual counts as exactly zero.
_REL_TOL = 1e-12


def _mean_std(v: Tensor) -> tuple[Tensor, Tensor]:
    """Return (mean [T], std [T]) over the batch axis of v [T, B] (population std, 0 for B = 1)."""
    return v.mean(dim=1), v.std(dim=1, unbiased=False)


def trajectory_stats(xs: Tensor, denoised: Tensor, sigmas: Tensor) -> dict[str, Tensor]:
    """Return per-sigma batch mean and std of the paper's trajectory measurements (Sec. 3 of arXiv:2405.11326).

    xs [n+1, B, ...] sampling trajectory, denoised [n, B, ...] with denoised[i] = D(xs[i], sigmas[i]),
    sigmas [n+1] strictly decreasing with sigmas[:n] > 0. The measurements are taken at the n points that have a
    denoiser output, i.e. at ``sigmas[:n]`` (key ``"sigma"`` [n]). With ``x_end = xs[-1]`` and
    ``eps = (x - D) / sigma``, for each name below the dict holds ``name + "_mean"`` [n] and ``name + "_std"`` [n]:

    - ``dev_x``: perpendicular distance of x_sigma to the chord xs[0] -> xs[-1];
    - ``dev_d``: the same for D(x_sigma, sigma);
    - ``dist_x_end``: ||x_sigma - x_end||;  ``dist_d_end``: ||D(x_sigma, sigma) - x_end||;
    - ``cos_eps``: cos(eps, x_sigma - x_end) (near 1: the ODE direction points at the final sample);
    - ``norm_x``, ``norm_d``, ``norm_eps``: L2 norms of x_sigma, D and eps.

    Also ``"chord"`` [B]: ||xs[0] - xs[-1]|| per sample, and ``"chord_mean"`` (0-d).
    """
    xs = _as_float64("xs", xs)
    denoised = _as_float64("denoised", denoised)
    sigmas = _as_float64("sigmas", sigmas)
    if xs.ndim < 3:
        raise ValueError(f"xs must have shape [n+1, B, ...], got {tuple(xs.shape)}")
    n = xs.shape[0] - 1
    if n < 1:
        raise ValueError("xs must hold at least two points (n+1 >= 2)")
    if denoised.shape != (n,) + tuple(xs.shape[1:]):
        raise ValueError(
            f"denoised must have shape {(n,) + tuple(xs.shape[1:])} (xs without its last point), "
            f"got {tuple(denoised.shape)}"
        )
    if sigmas.shape != (n + 1,):
        raise ValueError(f"sigmas must have shape [{n + 1}] (one per point of xs), got {tuple(sigmas.shape)}")
    if not (sigmas[:-1] > sigmas[1:]).all() or not (sigmas[:n] > 0).all():
        raise ValueError("sigmas must be strictly decreasing with sigmas[:-1] > 0")

    B = xs.shape[1]
    x_all = xs.reshape(n + 1, B, -1)
    x = x_all[:n]
    d = denoised.reshape(n, B, -1)
    start, end = x_all[0], x_all[-1]
    s = sigmas[:n].reshape(n, 1, 1)
    eps = (x - d) / s
    to_end = x - end[None]

    norm_eps = eps.norm(dim=-1)
    dist_x_end = to_end.norm(dim=-1)
    denom = norm_eps * dist_x_end
    # cos is undefined only where x == x_end or eps == 0; report 1 there would be a lie, so require it nonzero.
    if (denom <= 0).any():
        raise ValueError("cos(eps, x - x_end) is undefined: eps or x - x_end is exactly zero at some point")
    per_point = {
        "dev_x": chord_deviation(x, start, end),
        "dev_d": chord_deviation(d, start, end),
        "dist_x_end": dist_x_end,
        "dist_d_end": (d - end[None]).norm(dim=-1),
        "cos_eps": (eps * to_end).sum(-1) / denom,
        "norm_x": x.norm(dim=-1),
        "norm_d": d.norm(dim=-1),
        "norm_eps": norm_eps,
    }
    out: dict[str, Tensor] = {"sigma": sigmas[:n].clone()}
    for name, v in per_point.items():
        out[name + "_mean"], out[name + "_std"] = _mean_std(v)
    chord = (start - end).norm(dim=-1)
    out["chord"] = chord
    out["chord_mean"] = chord.mean()
    return out


def _chord_residual(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return (rel [T, d] = x - x_end, u1 [d] unit chord start - end, residual [T, d] = rel without its u1 part)."""
    rel = x - x[-1]
    chord = rel[0]
    length = chord.norm()
    if length <= 0:
        raise ValueError("the trajectory starts and ends at the same point: the chord has zero length")
    u1 = chord / length
    residual = rel - (rel @ u1)[:, None] * u1[None]
    return rel, u1, residual


def _explained_ratio(singular_values: Tensor, residual: Tensor, chord_len: Tensor, k: int = 2) -> Tensor:
    """Return the top-k share [k] of residual energy explained by the given singular values (zero-padded)."""
    energy = (singular_values**2).sum()
    if energy <= (_REL_TOL * chord_len) ** 2 * residual.shape[0]:
        raise ValueError(
            "the trajectory is a straight line (no residual after removing the chord): "
            "explained variance is undefined"
        )
    top = torch.zeros(k, dtype=torch.float64)
    m = min(k, singular_values.numel())
    top[:m] = singular_values[:m] ** 2 / energy
    return top


def project_trajectory(xs_one: Tensor, center: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Return (coords [T, 3], explained_variance_ratio [2], basis [3, d]) of one trajectory (Fig. 4, 2405.11326).

    xs_one [T, ...] (trailing dims flattened to d >= 3), ordered from the start (highest sigma) to the end.
    - ``u1 = (x_start - x_end) / ||x_start - x_end||`` (the unit chord, pointing from the end to the start);
    - the chord component is removed from every ``x - x_end`` and PCA is run on that residual: its top two right
      singular vectors, Gram-Schmidt-orthogonalised against u1, are u2 and u3. PCA is *uncentred* by default
      (second moments about the chord, which the residual touches at both ends); ``center=True`` subtracts the
      residual's mean first (ordinary PCA). The ratio is each PC's share of the residual's total energy;
    - ``coords = (x - x_end) @ basis.T``, so coords[-1] = 0 and coords[0] = (chord length, 0, 0);
    - sign convention, so that trajectories of different samples share an orientation: u2 and u3 are flipped to
      make the mean coordinate along each positive; when that mean is ~0 (an S-shaped, antisymmetric profile) the
      first moment ``sum_t (t - (T-1)/2) * coord_t`` is made positive instead (the coordinate grows toward the end).
    ``x_end + coords @ basis`` reconstructs the trajectory exactly when it lies in the 3-D span.
    Raises ValueError for a zero-length chord or a trajectory with no off-chord residual.
    """
    x = _as_float64("xs_one", xs_one)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"xs_one must have shape [T, ...] with T >= 2, got {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1)
    d = x.shape[1]
    if d < 3:
        raise ValueError(f"xs_one must have at least 3 dimensions per point for a 3-D projection, got d={d}")
    rel, u1, residual = _chord_residual(x)
    pca_in = residual - residual.mean(0, keepdim=True) if center else residual
    _, svals, vh = torch.linalg.svd(pca_in, full_matrices=False)
    ratio = _explained_ratio(svals, pca_in, rel[0].norm())

    # u2, u3: top right singular vectors made exactly orthogonal to u1 (and each other). Vectors for zero
    # singular values may carry a u1 component, so fall back to coordinate axes if one degenerates.
    basis = [u1]
    candidates = list(vh) + list(torch.eye(d, dtype=torch.float64))
    for v in candidates:
        if len(basis) == 3:
            break
        w = v.clone()
        for b in basis:
            w = w - (w @ b) * b
        norm = w.norm()
        if norm > 0.5:
            basis.append(w / norm)
    basis_t = torch.stack(basis)
    coords = rel @ basis_t.T
    centred_index = torch.arange(x.shape[0], dtype=torch.float64) - (x.shape[0] - 1) / 2
    for k in (1, 2):
        c = coords[:, k]
        score = c.mean()
        if score.abs() <= 1e-8 * c.abs().max():  # antisymmetric profile: fall back to the first moment
            score = (c * centred_index).mean()
        if score < 0:
            coords[:, k] = -c
            basis_t[k] = -basis_t[k]
    return coords, ratio, basis_t


def explained_variance_after_chord(xs: Tensor, k: int = 2, center: bool = False) -> Tensor:
    """Return ratio [B, k]: share of each trajectory's off-chord residual explained by its top-k PCs.

    xs [T, B, ...] sampling trajectories (start first). For each sample the chord component (x_start - x_end
    direction) is removed from ``x - x_end`` and the top-k squared singular values of the residual are divided by
    its total energy (uncentred; ``center=True`` for ordinary PCA), as in `project_trajectory`. Values near 1 mean
    the trajectory lives in the (k+1)-dimensional span of chord and PCs (Sec. 3 of arXiv:2405.11326).
    """
    xs = _as_float64("xs", xs)
    if xs.ndim < 3 or xs.shape[0] < 2:
        raise ValueError(f"xs must have shape [T, B, ...] with T >= 2, got {tuple(xs.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    T, B = xs.shape[:2]
    flat = xs.reshape(T, B, -1)
    out = torch.empty(B, k, dtype=torch.float64)
    for b in range(B):
        rel, _, residual = _chord_residual(flat[:, b])
        pca_in = residual - residual.mean(0, keepdim=True) if center else residual
        svals = torch.linalg.svdvals(pca_in)
        out[b] = _explained_ratio(svals, pca_in, rel[0].norm(), k=k)
    return out


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """The sliced 2-Wasserstein distance between two equally sized sample sets ``x``, ``y`` [n, ...]: the root mean,
    over ``n_projections`` random unit directions (seeded), of the squared 1-D W2 between the projected sets (sorted
    projections matched in order). A distribution-level distance: it does not pair sample i of ``x`` with sample i
    of ``y``, so it sees whether few-step samples land where the exact ones do as a set."""
    a, b = x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double()
    if a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"x and y must be sample sets of one shape [n >= 2, ...], got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], n_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = torch.sort(a @ dirs, dim=0).values, torch.sort(b @ dirs, dim=0).values
    return float(((pa - pb) ** 2).mean().sqrt())
