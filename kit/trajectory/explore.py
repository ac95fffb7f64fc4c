"""Numbers behind the trajectory widgets (arXiv:2405.11326): sampled trajectories, the chord + 2-PC
projection with the step points of several schedules, per-sigma statistics, schedule curves and displayable
cost matrices.

Thin wrappers over `kit.diffusion` and `kit.trajectory.{measures, gits}`; results are numpy float64 so that
the widgets can plot them directly. No plotting here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from kit.diffusion.schedules import get_schedule
from kit.diffusion.solvers import check_sigmas, sample, steps_for_nfe
from kit.trajectory.gits import GITSSearch, cost_matrix_from_teacher
from kit.trajectory.measures import explained_variance_after_chord, project_trajectory, trajectory_stats

__all__ = [
    "boomerang_summary",
    "boomerangs",
    "explore_regularity",
    "explored_denoiser",
    "explored_name",
    "gits_on_trajectory",
    "BASELINE_SCHEDULES",
    "cost_for_metric",
    "log_abs_cost",
    "projection_with_steps",
    "regularity_summary",
    "sample_trajectories",
    "schedule_curves",
    "stats_vs_sigma",
    "weighted_path_cost",
]

Tensor = torch.Tensor
Denoiser = Callable[[Tensor, Tensor], Tensor]
BASELINE_SCHEDULES = ("edm", "logsnr", "time_uniform")
# Relative tolerance for a schedule sigma to count as inside the teacher's sigma range.
_RANGE_RTOL = 1e-9


def _as_tensor(name: str, a: Any) -> Tensor:
    """Return `a` (numpy array, tensor or nested sequence) as a finite float64 CPU tensor."""
    try:
        t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: expected an array or tensor, got {type(a).__name__} ({err})") from err
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name}: expected real numbers, got dtype {t.dtype}")
    t = t.detach().cpu().to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return t


def _numpy(d: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in d.items()}


def sample_trajectories(
    denoiser: Denoiser, n: int, dim_shape: Sequence[int], sigmas: Any, solver: str = "heun", seed: int = 0
) -> dict[str, np.ndarray]:
    """Return {"xs" [T, n, *dim_shape], "denoised" [T-1, n, ...], "sigmas" [T], "noise" [n, *dim_shape]}.

    Solves the probability-flow ODE in float64 from ``x = sigmas[0] * noise`` (noise ~ N(0, I) from a CPU
    generator seeded with ``seed``) along ``sigmas`` [T] with `kit.diffusion.solvers.sample`;
    ``denoised[i] = D(xs[i], sigmas[i])`` (the first-stage evaluation for two-stage solvers such as Heun).
    All numpy float64.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n: expected a positive int (number of trajectories), got {n!r}")
    shape = tuple(dim_shape) if isinstance(dim_shape, Sequence) else None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in shape):
        raise ValueError(f"dim_shape: expected a non-empty sequence of positive ints, got {dim_shape!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    sig = torch.tensor(check_sigmas(_as_tensor("sigmas", sigmas)), dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(int(n), *(int(s) for s in shape), generator=gen, dtype=torch.float64)
    _, xs, denoised = sample(denoiser, sig[0] * noise, sig, solver=solver, return_trajectory=True)
    return _numpy({"xs": xs, "denoised": denoised, "sigmas": sig, "noise": noise})


def _points_at(coords: Tensor, log_teacher: Tensor, log_query: Tensor, method: str) -> Tensor:
    """Return the teacher coordinates [Q, 3] at the query log-sigmas (teacher log-sigmas decreasing)."""
    # Flip to increasing log sigma for searchsorted / interpolation.
    lt, c = log_teacher.flip(0), coords.flip(0)
    if method == "nearest":
        idx = (log_query[:, None] - lt[None, :]).abs().argmin(dim=1)
        return c[idx]
    hi = torch.searchsorted(lt, log_query).clamp(1, lt.numel() - 1)
    lo = hi - 1
    w = ((log_query - lt[lo]) / (lt[hi] - lt[lo])).clamp(0.0, 1.0)[:, None]
    return (1.0 - w) * c[lo] + w * c[hi]


def projection_with_steps(
    xs_teacher_one: Any,
    teacher_sigmas: Any,
    schedules: Mapping[str, Any],
    method: str = "interp",
    center: bool = False,
) -> dict[str, Any]:
    """Return the chord + 2-PC coordinates of one teacher trajectory and of each schedule's steps on it.

    xs_teacher_one [T, ...] (trailing dims flattened to d >= 3) is one accurately solved trajectory at
    teacher_sigmas [T] (strictly decreasing, > 0). Coordinates come from `measures.project_trajectory`
    (Fig. 4 of arXiv:2405.11326): (x - x_end) on u1 = unit chord and on u2, u3 = the top-2 PCs of the
    off-chord residual.

    For each schedule (name -> sigmas [K+1] inside the teacher's sigma range) the step points are the
    *teacher* curve at those sigmas, i.e. where an exact solver would stand (not a coarse solver's states):
    - ``method="interp"`` (default): linear interpolation in log sigma between the two neighbouring teacher
      points; since the projection is linear this equals projecting the interpolated state. A sigma on the
      teacher grid (e.g. a GITS schedule, a subset of the grid) gives that grid point exactly;
    - ``method="nearest"``: the teacher point nearest in log sigma.

    Returns {"coords" [T, 3], "explained" [2] (share of off-chord energy per PC), "teacher_sigmas" [T],
    "chord" (float, ||x_start - x_end||), "method", "schedules": {name: {"sigmas" [K+1], "coords" [K+1, 3]}}}.
    """
    if method not in ("interp", "nearest"):
        raise ValueError(f"method: expected 'interp' or 'nearest', got {method!r}")
    xs = _as_tensor("xs_teacher_one", xs_teacher_one)
    sig = _as_tensor("teacher_sigmas", teacher_sigmas)
    if xs.ndim < 2:
        raise ValueError(f"xs_teacher_one: expected one trajectory [T, d], got shape {tuple(xs.shape)}")
    if sig.ndim != 1 or sig.numel() != xs.shape[0]:
        raise ValueError(
            f"teacher_sigmas: expected shape [{xs.shape[0]}] (one per point), got {tuple(sig.shape)}"
        )
    if sig.numel() < 2 or (sig <= 0).any() or not (sig[:-1] > sig[1:]).all():
        raise ValueError("teacher_sigmas: expected strictly decreasing positive sigmas")
    if not isinstance(schedules, Mapping):
        raise ValueError(f"schedules: expected a dict name -> sigmas, got {type(schedules).__name__}")
    coords, ratio, _ = project_trajectory(xs, center=center)
    log_t = sig.log()
    lo, hi = float(sig[-1]), float(sig[0])
    steps: dict[str, dict[str, np.ndarray]] = {}
    for name, s in schedules.items():
        q = _as_tensor(f"schedules[{name!r}]", s).reshape(-1)
        if q.numel() < 1 or (q <= 0).any():
            raise ValueError(f"schedules[{name!r}]: expected positive sigmas, got {q.tolist()}")
        if float(q.min()) < lo * (1 - _RANGE_RTOL) or float(q.max()) > hi * (1 + _RANGE_RTOL):
            raise ValueError(
                f"schedules[{name!r}]: sigmas must lie in the teacher range [{lo:g}, {hi:g}], "
                f"got [{float(q.min()):g}, {float(q.max()):g}]"
            )
        pts = _points_at(coords, log_t, q.log(), method)
        steps[str(name)] = {"sigmas": q.numpy(), "coords": pts.numpy()}
    return {
        "coords": coords.numpy(),
        "explained": ratio.numpy(),
        "teacher_sigmas": sig.numpy(),
        "chord": float(coords[0, 0]),
        "method": method,
        "schedules": steps,
    }


def stats_vs_sigma(xs: Any, denoised: Any, sigmas: Any) -> dict[str, np.ndarray]:
    """Return per-sigma trajectory statistics as numpy arrays, plus explained variance after chord removal.

    xs [T, B, ...], denoised [T-1, B, ...], sigmas [T] as for `measures.trajectory_stats`; all its keys stay:
    "sigma" [T-1] and "<name>_mean" / "<name>_std" [T-1] for name in dev_x, dev_d, dist_x_end, dist_d_end,
    cos_eps, norm_x, norm_d, norm_eps; "chord" [B]; "chord_mean". Added: "explained" [B, 2] (share of each
    trajectory's off-chord energy along its top two PCs, `measures.explained_variance_after_chord`) and
    "explained_top2" [B] (their sum).
    """
    x = _as_tensor("xs", xs)
    out = _numpy(trajectory_stats(x, _as_tensor("denoised", denoised), _as_tensor("sigmas", sigmas)))
    ratio = explained_variance_after_chord(x, k=2).numpy()
    out["explained"] = ratio
    out["explained_top2"] = ratio.sum(axis=1)
    return out


def schedule_curves(
    nfe: int, solver: str, search: GITSSearch, coeff: float = 1.15, names: Sequence[str] = BASELINE_SCHEDULES
) -> dict[str, np.ndarray]:
    """Return {name: sigmas [K+1]} for each baseline in ``names`` plus "gits", K = steps_for_nfe(solver, nfe).

    The baselines (`kit.diffusion.schedules.get_schedule`) span the search's base-grid range
    [grid[-1], grid[0]]; "gits" is ``search.schedule(nfe, solver, coeff)``, a subset of that grid chosen by
    dynamic programming.
    """
    if not isinstance(search, GITSSearch):
        raise ValueError(f"search: expected a GITSSearch, got {type(search).__name__}")
    if isinstance(names, str):
        raise ValueError(f"names: expected a sequence of schedule names, got the string {names!r}")
    k = steps_for_nfe(solver, nfe)
    grid = search.grid
    if k > grid.numel() - 1:
        raise ValueError(
            f"nfe: {nfe} needs {k} steps but the base grid has only {grid.numel() - 1} intervals"
        )
    s_min, s_max = float(grid[-1]), float(grid[0])
    if s_min <= 0:
        raise ValueError(f"search: the base grid ends at sigma {s_min:g}; baselines need sigma_min > 0")
    out = {str(n): get_schedule(n, k, sigma_min=s_min, sigma_max=s_max).numpy() for n in names}
    out["gits"] = search.schedule(nfe, solver=solver, coeff=coeff).numpy()
    return out


def cost_for_metric(search: GITSSearch, metric: str) -> Tensor:
    """Return the cost matrix C [G, G] of ``search`` for ``metric``; other metrics need the kept teacher.

    The search's own metric returns ``search.cost``; any other metric is recomputed from the teacher states
    saved by ``gits_search(..., keep_teacher=True)`` with `gits.cost_matrix_from_teacher` (no denoiser calls).
    """
    if not isinstance(search, GITSSearch):
        raise ValueError(f"search: expected a GITSSearch, got {type(search).__name__}")
    if metric == search.metric:
        return search.cost
    if search.teacher_xs is None or search.teacher_eps is None:
        raise ValueError(
            f"metric: {metric!r} differs from the search's {search.metric!r} and the search kept no teacher; "
            "run gits_search(..., keep_teacher=True)"
        )
    return cost_matrix_from_teacher(search.teacher_xs, search.teacher_eps, search.grid, metric=metric)


def log_abs_cost(cost: Any) -> tuple[np.ndarray, float]:
    """Return (z [G, G], eps): ``log10(|C| + eps)`` above the diagonal, NaN elsewhere and where C is inf.

    "dev" costs are signed, so the magnitude is shown on a log scale and the sign must be read elsewhere (the
    widget puts the signed value in the hover). ``eps = 1e-6 * max |C|`` over the finite upper entries (a
    floor of 1e-300 when they are all zero) keeps exact zeros finite.
    """
    c = _as_numpy_cost(cost)
    upper = np.triu(np.ones(c.shape, dtype=bool), k=1) & np.isfinite(c)
    if not upper.any():
        raise ValueError("cost: no finite entry above the diagonal")
    mag = np.abs(c[upper])
    eps = max(1e-6 * float(mag.max()), 1e-300)
    z = np.full(c.shape, np.nan)
    z[upper] = np.log10(mag + eps)
    return z, eps


def _as_numpy_cost(cost: Any) -> np.ndarray:
    if isinstance(cost, torch.Tensor):
        c = cost.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            c = np.asarray(cost, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cost: expected a square matrix, got {type(cost).__name__}") from err
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"cost: expected a square [G, G] matrix with G >= 2, got shape {c.shape}")
    if np.isnan(c).any():
        raise ValueError("cost: contains NaN")
    return c


def weighted_path_cost(cost: Any, path: Sequence[int], coeff: float) -> float:
    """Return sum_m coeff**m * C[path[m], path[m+1]]: the objective `gits.dp_path` minimises."""
    c = _as_numpy_cost(cost)
    if len(path) < 2 or any(b <= a for a, b in zip(path[:-1], path[1:])):
        raise ValueError(f"path: expected at least two strictly increasing indices, got {list(path)}")
    return float(sum(coeff**m * c[a, b] for m, (a, b) in enumerate(zip(path[:-1], path[1:]))))


def regularity_summary(stats: Mapping[str, Any], dim: int, sigma_max: float,
                       probe_sigmas: Sequence[float] = (2.0, 1.0, 0.5)) -> dict[str, Any]:
    """Return the paper's regularities as numbers from `stats_vs_sigma` output (arXiv:2405.11326, Sec. 3).

    - ``chord_mean`` vs ``chord_expected`` = sigma_max * sqrt(dim) (the start sigma_max * z is far from the data);
    - ``max_dev_x``: the largest mean deviation of x_sigma from its chord, and ``sigma_at_max_dev``;
    - ``explained_top2_mean`` / ``_min``: share of the off-chord energy in two PCs (3-D trajectories);
    - ``min_cos``: the smallest mean cos(eps, x - x_end) (the ODE direction points at the end);
    - ``distance_to_end``: for each probe sigma (nearest grid point), the mean distance of D(x_sigma) and of
      x_sigma to the final sample: the denoising trajectory is there long before the sampling trajectory.
    """
    sig = np.asarray(stats["sigma"], dtype=float)
    dev = np.asarray(stats["dev_x_mean"], dtype=float)
    i = int(np.argmax(dev))
    probes = {}
    for p in probe_sigmas:
        j = int(np.argmin(np.abs(np.log(sig / float(p)))))
        probes[f"{sig[j]:.3g}"] = {"D": float(stats["dist_d_end_mean"][j]), "x": float(stats["dist_x_end_mean"][j])}
    return {
        "chord_mean": float(stats["chord_mean"]),
        "chord_expected": float(sigma_max * np.sqrt(dim)),
        "max_dev_x": float(dev[i]),
        "sigma_at_max_dev": float(sig[i]),
        "explained_top2_mean": float(np.mean(stats["explained_top2"])),
        "explained_top2_min": float(np.min(stats["explained_top2"])),
        "min_cos": float(np.min(stats["cos_eps_mean"])),
        "distance_to_end": probes,
    }


def explored_denoiser(cfg: Any):
    """The denoiser 03_explore looks at, as a :class:`kit.trajectory.experiment.DenoiserCase`: the diffusers model of
    ``cfg.pretrained`` when given; else the KDE-smoothed exact denoiser of CIFAR-10 under ``cfg.data_dir`` when given;
    else that of the digits (offline)."""
    import dataclasses

    from kit.trajectory.experiment import build_denoisers

    if cfg.pretrained:
        return build_denoisers(dataclasses.replace(cfg, denoisers=("pretrained",)))[0]
    dataset = "cifar10" if cfg.data_dir else "digits"
    return build_denoisers(dataclasses.replace(cfg, denoisers=("kde",), dataset=dataset))[0]


def explored_name(case: Any) -> str:
    """Return the name 03_explore records its regularity under: "digits" (the offline default), "cifar10" (the KDE
    denoiser of CIFAR-10 under ``data_dir``) or the case's own name ("pretrained")."""
    if case.name == "kde":
        return "digits" if tuple(case.shape) == (64,) else "cifar10"
    return case.name


def boomerangs(xs: Any, denoised: Any, n: int | None = None) -> dict[str, np.ndarray]:
    """The paper's overlay of many trajectories (Fig. 4 of arXiv:2405.11326): each sampling trajectory ``xs[:, i]``
    in its own chord + 2-PC frame (`measures.project_trajectory`), divided by its chord length so that every one runs
    from (1, 0, 0) to the origin, and its denoising trajectory ``denoised[:, i]`` in the same frame.

    xs [T, B, ...], denoised [T-1, B, ...]; returns {"x" [n, T, 3], "D" [n, T-1, 3], "explained" [n, 2], "chord" [n]}
    for the first ``n`` trajectories (default all). Similar curves for every sample are the regularity GITS relies on.
    """
    x = _as_tensor("xs", xs)
    d = _as_tensor("denoised", denoised)
    if x.ndim < 3 or d.shape[1:] != x.shape[1:] or d.shape[0] != x.shape[0] - 1:
        raise ValueError(f"xs must be [T, B, ...] and denoised [T-1, B, ...], got {tuple(x.shape)} and "
                         f"{tuple(d.shape)}")
    b = x.shape[1] if n is None else min(int(n), x.shape[1])
    if b < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out_x, out_d, expl, chords = [], [], [], []
    for i in range(b):
        xi = x[:, i].reshape(x.shape[0], -1)
        coords, ratio, basis = project_trajectory(xi)
        chord = float(coords[0, 0])
        di = (d[:, i].reshape(d.shape[0], -1) - xi[-1]) @ basis.T
        out_x.append((coords / chord).numpy())
        out_d.append((di / chord).numpy())
        expl.append(ratio.numpy())
        chords.append(chord)
    return {"x": np.stack(out_x), "D": np.stack(out_d), "explained": np.stack(expl), "chord": np.array(chords)}


def boomerang_summary(b: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Return {"n", "max_distance_to_mean_curve", "explained_top2_min"} of :func:`boomerangs` output: how far any
    point of any unit-chord trajectory lies from the mean curve (small: every sample traces the same boomerang)."""
    x = np.asarray(b["x"], dtype=float)
    return {"n": int(len(x)), "max_distance_to_mean_curve": float(np.abs(x - x.mean(0)).max()),
            "explained_top2_min": float(np.asarray(b["explained"]).sum(1).min())}


def explore_regularity(case: Any, n: int, seed: int, steps: int = 200
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Return (trajectories, statistics, summary) of ``n`` Heun trajectories of ``case`` (a
    :class:`~kit.trajectory.experiment.DenoiserCase`) over ``steps`` EDM steps of its sigma range:
    :func:`sample_trajectories`, :func:`stats_vs_sigma` and :func:`regularity_summary` (03_explore, section 2)."""
    from kit.diffusion.schedules import edm_sigmas

    traj = sample_trajectories(case.denoiser, n, case.shape, edm_sigmas(steps, case.sigma_min, case.sigma_max),
                               solver="heun", seed=seed)
    stats = stats_vs_sigma(traj["xs"], traj["denoised"], traj["sigmas"])
    return traj, stats, regularity_summary(stats, dim=int(np.prod(case.shape)), sigma_max=case.sigma_max)


def gits_on_trajectory(case: Any, xs_one: Any, sigmas: Any, nfe: int, cfg: Any, n_warmup: int = 64
                       ) -> tuple[GITSSearch, dict[str, Any], dict[str, Any]]:
    """Return (GITS search, projection, record) for 03_explore's section 3: GITS searched on ``n_warmup`` noises of
    seed ``cfg.seed + 1000`` (disjoint from the explored ones; ``cfg.grid_steps``, ``cfg.gits_metric``, teacher
    kept for the cost-matrix view), and :func:`projection_with_steps` of one teacher trajectory ``xs_one`` [T, ...]
    at ``sigmas`` [T] with the ``nfe``-step EDM, logSNR and GITS (iPNDM, ``cfg.coeff``) schedules on it. The record
    holds the GITS and EDM sigmas, the search's seconds and its network evaluations."""
    from kit.trajectory.gits import gits_search

    g = torch.Generator().manual_seed(cfg.seed + 1000)
    warm = case.sigma_max * torch.randn(n_warmup, *case.shape, generator=g, dtype=torch.float64)
    search = gits_search(case.denoiser, warm, grid_steps=cfg.grid_steps, metric=cfg.gits_metric, keep_teacher=True,
                         sigma_min=case.sigma_min, sigma_max=case.sigma_max)
    lo, hi = case.sigma_min, case.sigma_max
    steps = {name: get_schedule(name, nfe, sigma_min=lo, sigma_max=hi) for name in ("edm", "logsnr")}
    steps["gits"] = search.schedule(nfe, solver="ipndm", coeff=cfg.coeff)
    record = {"nfe": nfe, "sigmas": steps["gits"].tolist(), "edm_sigmas": steps["edm"].tolist(),
              "search_seconds": round(search.seconds, 3), "network_evaluations": search.teacher_evaluations}
    return search, projection_with_steps(xs_one, sigmas, steps), record
