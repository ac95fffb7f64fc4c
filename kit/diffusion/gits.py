"""GITS: geometry-inspired time scheduling (Sec. 4 of arXiv:2405.11326).

Sampling trajectories are so regular (they hug their chords and share one shape) that a time schedule fitted on a
few dozen "warmup" trajectories transfers to new noises. The search:

1. solve the probability-flow ODE for the warmup noises on a fine base grid (EDM rho=7, Karras et al. 2022,
   arXiv:2206.00364) with an accurate teacher solver, keeping every state x_k and the raw ODE direction
   ``eps_k = (x_k - D(x_k, sigma_k)) / sigma_k``  (`teacher_trajectory`);
2. cost of jumping from grid point i to grid point j > i with one Euler step from the teacher state,
   ``x_hat = x_i + (sigma_j - sigma_i) * eps_i``, compared with the teacher state x_j  (`cost_matrix`);
3. dynamic programming over increasing index paths 0 -> G-1 with a given number of steps (`dp_path`).

The cost matrix is computed once per model and base grid (`gits_search`), after which schedules for any NFE,
solver or weighting coefficient cost only a DP (`GITSSearch.schedule`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kit.diffusion.geometry import chord_deviation
from kit.diffusion.schedules import edm_sigmas
from kit.diffusion.solvers import CountingDenoiser, sample, steps_for_nfe

Tensor = torch.Tensor
Denoiser = Callable[[Tensor, Tensor], Tensor]

METRICS = ("l2", "l1", "dev")
# Largest number of float64 elements of Euler predictions held at once in `cost_matrix`.
_CHUNK_ELEMENTS = 1 << 24


def _check_grid(grid: Tensor) -> Tensor:
    if not isinstance(grid, torch.Tensor) or grid.ndim != 1 or grid.numel() < 2:
        raise ValueError("grid must be a 1-D tensor of at least 2 sigmas")
    g = grid.to(torch.float64)
    if not torch.isfinite(g).all() or not (g[:-1] > g[1:]).all() or g[-1] < 0:
        raise ValueError("grid must be finite, strictly decreasing and non-negative (sigma_max first)")
    return g


def _check_warmup(x_warmup: Tensor) -> None:
    if not isinstance(x_warmup, torch.Tensor) or x_warmup.ndim < 2 or x_warmup.shape[0] < 1:
        raise ValueError("x_warmup must be a tensor [B, ...] of starting states (grid[0] * noise)")
    if not torch.isfinite(x_warmup).all():
        raise ValueError("x_warmup contains NaN or inf")


def teacher_trajectory(
    denoiser: Denoiser, x_warmup: Tensor, grid: Tensor, solver: str = "ipndm"
) -> tuple[Tensor, Tensor]:
    """Return (xs [G, B, ...], eps [G-1, B, ...]): teacher states on the grid and the raw ODE directions there.

    ``x_warmup`` [B, ...] is the already-scaled start ``grid[0] * z``. The ODE is solved on all G grid points with
    ``solver`` (iPNDM, 4th-order Adams-Bashforth with fixed coefficients, by default); ``eps[k] = (xs[k] -
    D(xs[k], grid[k])) / grid[k]`` is the plain denoiser direction at each teacher state, not the multistep
    combination the solver stepped with (so the solver must record D at its own states: not ``"unipc"``).
    Runs without autograd: a denoiser that is not ``no_grad`` itself (a guided text-to-image model) would otherwise
    keep every network call's activations alive through xs and eps, gigabytes for a UNet.
    """
    grid = _check_grid(grid)
    _check_warmup(x_warmup)
    if solver == "unipc":
        raise ValueError(
            "solver 'unipc' records D at its predicted points, not at xs; use another teacher solver"
        )
    with torch.no_grad():
        _, xs, denoised = sample(denoiser, x_warmup, grid, solver=solver, return_trajectory=True)
    G = grid.numel()
    if xs.shape[0] != G or denoised.shape[0] != G - 1:
        raise ValueError(
            f"solver {solver!r} returned {xs.shape[0]} states and {denoised.shape[0]} denoiser outputs; "
            f"expected {G} and {G - 1}"
        )
    s = grid[:-1].to(xs.dtype).reshape(-1, *([1] * (xs.ndim - 1)))
    eps = (xs[:-1] - denoised) / s
    return xs, eps


def cost_matrix(
    denoiser: Denoiser,
    x_warmup: Tensor,
    grid: Tensor,
    teacher_solver: str = "ipndm",
    metric: str = "dev",
) -> Tensor:
    """Return C [G, G] float64: the local error of one Euler step between every pair of grid points.

    For i < j: ``x_hat = xs[i] + (grid[j] - grid[i]) * eps[i]`` from the teacher (`teacher_trajectory`), and
    C[i, j] is the batch mean of
    - ``"l2"``: ||x_hat - xs[j]||_2,
    - ``"l1"``: ||x_hat - xs[j]||_1 (sum over dimensions),
    - ``"dev"``: dev(x_hat) - dev(xs[j]), the perpendicular distances to each teacher chord xs[0] -> xs[-1]
      (signed: negative when the Euler step lands closer to the chord than the teacher).
    Entries on and below the diagonal are +inf (no backward or zero steps).
    """
    xs, eps = teacher_trajectory(denoiser, x_warmup, _check_grid(grid), solver=teacher_solver)
    return cost_matrix_from_teacher(xs, eps, grid, metric=metric)


def cost_matrix_from_teacher(xs: Tensor, eps: Tensor, grid: Tensor, metric: str = "dev") -> Tensor:
    """Return C [G, G] float64 (see `cost_matrix`) from teacher states xs [G, B, ...] and directions eps [G-1, B, ...]."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    grid = _check_grid(grid)
    G = grid.numel()
    if xs.ndim < 3 or xs.shape[0] != G:
        raise ValueError(f"xs must have shape [G={G}, B, ...], got {tuple(xs.shape)}")
    if eps.shape != (G - 1,) + tuple(xs.shape[1:]):
        raise ValueError(f"eps must have shape {(G - 1,) + tuple(xs.shape[1:])}, got {tuple(eps.shape)}")
    B = xs.shape[1]
    x = xs.reshape(G, B, -1).to(torch.float64)
    e = eps.reshape(G - 1, B, -1).to(torch.float64)
    if not torch.isfinite(x).all() or not torch.isfinite(e).all():
        raise ValueError("the teacher trajectory contains NaN or inf")
    start, end = x[0], x[-1]
    dev_teacher = chord_deviation(x, start, end) if metric == "dev" else None  # [G, B]

    cost = torch.full((G, G), float("inf"), dtype=torch.float64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, x[0].numel()))
    for i in range(G - 1):
        for j0 in range(i + 1, G, chunk):
            js = torch.arange(j0, min(G, j0 + chunk))
            h = (grid[js] - grid[i]).reshape(-1, 1, 1)
            x_hat = x[i][None] + h * e[i][None]  # [J, B, d]
            if metric == "l2":
                c = (x_hat - x[js]).norm(dim=-1)
            elif metric == "l1":
                c = (x_hat - x[js]).abs().sum(dim=-1)
            else:
                c = chord_deviation(x_hat, start, end) - dev_teacher[js]
            cost[i, js] = c.mean(dim=1)
    return cost


def dp_path(cost: Tensor, n_steps: int, coeff: float = 1.15) -> list[int]:
    """Return the grid indices [0, p_1, ..., G-1] (n_steps + 1 of them, increasing) of the cheapest schedule.

    Minimises ``sum_{m=0}^{n_steps-1} coeff**m * cost[p_m, p_{m+1}]``, where m = 0 is the first (highest-sigma)
    step; only entries above the diagonal of ``cost`` [G, G] are read. This is the recursion
    ``V[i, 1] = C[i, G-1]``, ``V[j, k] = min_{j<i} C[j, i] + coeff * V[i, k-1]`` (Sec. 4 of arXiv:2405.11326),
    so coeff > 1 makes later (low-sigma) steps costlier and pushes the schedule's resolution toward sigma -> 0.
    Ties go to the smallest index.
    """
    if not isinstance(cost, torch.Tensor | np.ndarray):
        raise ValueError(f"cost must be a [G, G] tensor, got {type(cost).__name__}")
    c = torch.as_tensor(cost).detach().to(torch.float64).cpu().numpy()
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"cost must be a square [G, G] matrix with G >= 2, got shape {c.shape}")
    G = c.shape[0]
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer):
        raise ValueError(f"n_steps must be an int, got {n_steps!r}")
    if not 1 <= n_steps <= G - 1:
        raise ValueError(f"n_steps must be between 1 and G-1 = {G - 1}, got {n_steps}")
    coeff = float(coeff)
    if not np.isfinite(coeff) or coeff <= 0:
        raise ValueError(f"coeff must be a positive finite number, got {coeff}")
    upper = np.triu(np.ones((G, G), dtype=bool), k=1)
    if np.isnan(c[upper]).any() or np.isneginf(c[upper]).any():
        raise ValueError("cost has NaN or -inf above the diagonal")
    c = np.where(upper, c, np.inf)

    last = G - 1
    V = np.full((n_steps + 1, G), np.inf)  # V[k, i]: cheapest k-step path from i to the last index
    choice = np.full((n_steps + 1, G), -1, dtype=np.int64)
    V[1] = c[:, last]
    V[1, last] = np.inf
    for k in range(2, n_steps + 1):
        total = c + coeff * V[k - 1][None, :]  # total[j, i] = C[j, i] + coeff * V[i, k-1]
        choice[k] = np.argmin(total, axis=1)
        V[k] = total[np.arange(G), choice[k]]
    if not np.isfinite(V[n_steps, 0]):
        raise ValueError("no finite-cost path: cost has +inf above the diagonal on every route")
    path = [0]
    for k in range(n_steps, 1, -1):
        path.append(int(choice[k, path[-1]]))
    path.append(last)
    return path


@dataclass
class GITSSearch:
    """The result of one GITS search: base grid, cost matrix and the search cost; gives schedules by DP.

    grid [G] float64 base sigmas (sigma_max first), cost [G, G] float64 (`cost_matrix`). teacher_calls is the
    number of batched denoiser calls the teacher made and teacher_evaluations = calls * batch size (per-sample
    network evaluations); seconds is the wall time of teacher plus cost matrix. teacher_xs / teacher_eps are kept
    only when asked for (they hold G copies of the warmup batch).
    """

    grid: Tensor
    cost: Tensor
    metric: str
    teacher_solver: str
    teacher_calls: int
    teacher_evaluations: int
    seconds: float
    teacher_xs: Tensor | None = None
    teacher_eps: Tensor | None = None

    def path(self, n_steps: int, coeff: float = 1.15) -> list[int]:
        """Return the grid indices [n_steps + 1] of the cheapest n_steps-step schedule (`dp_path`)."""
        return dp_path(self.cost, n_steps, coeff=coeff)

    def schedule(self, nfe: int, solver: str = "ipndm", coeff: float = 1.15) -> Tensor:
        """Return sigmas [K+1] float64: the GITS schedule for ``solver`` at ``nfe`` (K = steps_for_nfe(solver, nfe))."""
        return self.grid[self.path(steps_for_nfe(solver, nfe), coeff=coeff)].clone()


def gits_search(
    denoiser: Denoiser,
    x_warmup: Tensor,
    grid_steps: int = 60,
    metric: str = "dev",
    teacher_solver: str = "ipndm",
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    grid: Tensor | None = None,
    keep_teacher: bool = False,
) -> GITSSearch:
    """Return a `GITSSearch`: teacher run and cost matrix on the base grid, computed once.

    Base grid: EDM rho-schedule with grid_steps + 1 points from sigma_max to sigma_min (or ``grid`` itself).
    ``x_warmup`` [B, ...] must already be scaled to the first sigma: ``grid[0] * z``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if grid is None:
        if isinstance(grid_steps, bool) or not isinstance(grid_steps, int) or grid_steps < 1:
            raise ValueError(f"grid_steps must be a positive int, got {grid_steps!r}")
        grid = edm_sigmas(grid_steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
    grid = _check_grid(grid)
    _check_warmup(x_warmup)
    counter = CountingDenoiser(denoiser)
    t0 = time.perf_counter()
    xs, eps = teacher_trajectory(counter, x_warmup, grid, solver=teacher_solver)
    cost = cost_matrix_from_teacher(xs, eps, grid, metric=metric)
    seconds = time.perf_counter() - t0
    calls = int(counter.calls)
    return GITSSearch(
        grid=grid,
        cost=cost,
        metric=metric,
        teacher_solver=teacher_solver,
        teacher_calls=calls,
        teacher_evaluations=calls * int(x_warmup.shape[0]),
        seconds=seconds,
        teacher_xs=xs if keep_teacher else None,
        teacher_eps=eps if keep_teacher else None,
    )


def gits_schedule(
    denoiser: Denoiser,
    x_warmup: Tensor,
    nfe: int,
    solver: str = "ipndm",
    coeff: float = 1.15,
    metric: str = "dev",
    grid_steps: int = 60,
    teacher_solver: str = "ipndm",
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
) -> Tensor:
    """Return sigmas [K+1] float64: a GITS schedule for ``solver`` at ``nfe`` (one-shot `gits_search` + DP)."""
    search = gits_search(
        denoiser,
        x_warmup,
        grid_steps=grid_steps,
        metric=metric,
        teacher_solver=teacher_solver,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
    )
    return search.schedule(nfe, solver=solver, coeff=coeff)
