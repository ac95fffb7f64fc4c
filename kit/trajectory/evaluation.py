"""``evaluate``: sample error of every solver x time schedule x NFE against an accurate ODE solution, GITS included."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from kit.core import RunDir
from kit.diffusion.schedules import edm_sigmas, get_schedule
from kit.diffusion.solvers import sample, steps_for_nfe
from kit.trajectory.config import TrajectoryConfig
from kit.trajectory.experiment import (
    EVAL_SEED_OFFSET,
    WARMUP_SEED_OFFSET,
    DenoiserCase,
    build_denoisers,
    load_trained,
    train,
)
from kit.trajectory.gits import GITSSearch, cost_matrix_from_teacher, gits_search
from kit.trajectory.measures import sliced_wasserstein

Tensor = torch.Tensor

# The schedule each solver is usually run with (and the paper's baselines): EDM rho=7 for the sigma-space solvers,
# logSNR-uniform for the lambda-space multistep solvers, VP time-quadratic for DEIS.
EXACT_DENOISERS = ("kde", "empirical", "gmm2d")  # denoisers whose ODE the reference solves exactly
CLAIM_NFES = (5, 6)  # the budgets where the paper reports GITS's largest gains
RECOMMENDED_SCHEDULE = {"euler": "edm", "heun": "edm", "dpm2": "edm", "ipndm": "edm", "dpmpp2m": "logsnr",
                        "dpmpp3m": "logsnr", "unipc": "logsnr", "deis": "time_quadratic"}


@dataclass
class EvalResult:
    """Rows {denoiser, solver, schedule, nfe, coeff, error, basin}, the GITS searches and a summary."""

    rows: list[dict[str, Any]]
    searches: dict[str, GITSSearch]
    summary: dict[str, Any]
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: list[DenoiserCase] = field(default_factory=list)


def noises(case: DenoiserCase, n: int, seed: int, sigma_max: float) -> Tensor:
    """Return ``sigma_max * z`` [n, *shape] float64 with z ~ N(0, I) drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return sigma_max * torch.randn((n, *case.shape), generator=g, dtype=torch.float64)


def fixed_schedule(name: str, n_steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Return the named baseline schedule [n_steps + 1] between sigma_max and sigma_min."""
    return get_schedule(name, n_steps, sigma_min=sigma_min, sigma_max=sigma_max)


def _mean_l2(a: Tensor, b: Tensor) -> float:
    return float((a - b).reshape(a.shape[0], -1).norm(dim=1).mean())


def searches_for_case(cfg: TrajectoryConfig, case: DenoiserCase) -> dict[str, GITSSearch]:
    """Return {metric: GITSSearch} for the case's primary metric and ``cfg.gits_metric_sweep``.

    The teacher (the only network cost) runs once; other metrics reuse its states (`cost_matrix_from_teacher`).
    """
    warm = noises(case, cfg.n_warmup, cfg.seed + WARMUP_SEED_OFFSET, case.sigma_max)
    first = gits_search(case.denoiser, warm, grid_steps=cfg.grid_steps, metric=case.metric,
                        sigma_min=case.sigma_min, sigma_max=case.sigma_max, keep_teacher=True)
    out = {case.metric: first}
    for m in cfg.gits_metric_sweep:
        if m not in out:
            cost = cost_matrix_from_teacher(first.teacher_xs, first.teacher_eps, first.grid, metric=m)
            out[m] = dataclasses.replace(first, cost=cost, metric=m)
    for s in out.values():  # the teacher states are not needed any more
        s.teacher_xs = s.teacher_eps = None
    return out


@torch.no_grad()
def evaluate_case(cfg: TrajectoryConfig, case: DenoiserCase, progress: Any = None
                  ) -> tuple[list[dict], dict[str, GITSSearch], dict]:
    """Return (rows, {metric: GITS search}, reference info) for one denoiser.

    Each row is {denoiser, solver, schedule, nfe, metric, coeff, variant, error, sw, basin}: ``error`` the mean L2
    distance of each few-step sample to its reference (same noise), ``sw`` the sliced Wasserstein distance between
    the two sample sets (a distribution-level distance). GITS rows carry
    ``variant="paper"`` for the paper's setting (the case's primary metric at ``cfg.coeff``) and ``"sweep"``
    for the other metrics and coeffs; ``basin`` is the share of samples ending nearest to the same training
    point as the reference (memorising denoisers only).
    """
    lo, hi = case.sigma_min, case.sigma_max
    x0 = noises(case, cfg.n_eval, cfg.seed + EVAL_SEED_OFFSET, hi)
    ref = sample(case.denoiser, x0, edm_sigmas(cfg.ref_steps, lo, hi), "heun")
    half = sample(case.denoiser, x0, edm_sigmas(max(cfg.ref_steps // 2, 1), lo, hi), "heun")
    ref_info = {"steps": cfg.ref_steps, "error_vs_half_steps": _mean_l2(ref, half)}
    ref_basin = None if case.data is None else case.data.nearest_index(ref)
    searches = searches_for_case(cfg, case)
    coeffs = sorted(set(cfg.coeff_sweep) | {cfg.coeff})
    base = {"denoiser": case.name, "metric": None, "coeff": None, "variant": None}
    rows = []
    for solver in cfg.solvers:
        for nfe in cfg.nfes:
            try:
                steps = steps_for_nfe(solver, nfe)
            except ValueError:  # e.g. heun at odd NFE: no step count spends exactly nfe
                rows.append({**base, "solver": solver, "schedule": None, "nfe": nfe, "error": None, "sw": None,
                             "basin": None})
                continue
            plans = [({"schedule": name}, fixed_schedule(name, steps, lo, hi)) for name in cfg.schedules]
            for m, search in searches.items():
                for c in coeffs:
                    variant = "paper" if (m == case.metric and c == cfg.coeff) else "sweep"
                    plans.append(({"schedule": "gits", "metric": m, "coeff": c, "variant": variant},
                                  search.schedule(nfe, solver=solver, coeff=c)))
            for fields, sigmas in plans:
                x = sample(case.denoiser, x0, sigmas, solver)
                basin = None
                if ref_basin is not None:
                    basin = float((case.data.nearest_index(x) == ref_basin).double().mean())
                rows.append({**base, **fields, "solver": solver, "nfe": nfe, "error": _mean_l2(x, ref),
                             "sw": sliced_wasserstein(x, ref, seed=cfg.seed), "basin": basin})
            if progress is not None:
                progress.update(1)
    return rows, searches, ref_info


def summarize(rows: list[dict]) -> dict[str, Any]:
    """Return per denoiser: GITS in the paper's setting (``variant == "paper"``) vs the solver's recommended
    schedule and vs the best fixed schedule of each (solver, NFE) cell, with win counts; also the best GITS
    variant of the metric x coeff sweep ("best_variant" = "metric@coeff")."""
    out: dict[str, Any] = {}
    cells: dict[tuple, dict] = {}
    for r in rows:
        if r["error"] is None:
            continue
        c = cells.setdefault((r["denoiser"], r["solver"], r["nfe"]), {"fixed": {}, "gits": {}})
        if r["schedule"] == "gits":
            c["gits"][f"{r['metric']}@{r['coeff']}"] = r["error"]
            if r["variant"] == "paper":
                c["paper"] = r["error"]
        else:
            c["fixed"][r["schedule"]] = r["error"]
    sws: dict[tuple, dict] = {}
    for r in rows:
        if r["error"] is not None and r.get("sw") is not None and (r["schedule"] != "gits" or r["variant"] == "paper"):
            sws.setdefault((r["denoiser"], r["solver"], r["nfe"]), {})[r["schedule"]] = r["sw"]
    for (den, solver, nfe), c in sorted(cells.items()):
        if not c["fixed"] or "paper" not in c:
            continue
        best_name = min(c["fixed"], key=c["fixed"].get)
        best, gits = c["fixed"][best_name], c["paper"]
        best_variant = min(c["gits"], key=c["gits"].get)
        rec_name = RECOMMENDED_SCHEDULE[solver]
        rec = c["fixed"].get(rec_name)
        d = out.setdefault(den, {"cells": [], "cells_total": 0, "wins": 0, "wins_best_variant": 0,
                                 "wins_vs_recommended": 0, "cells_with_recommended": 0})
        d["cells"].append({"solver": solver, "nfe": nfe, "recommended": rec_name, "recommended_error": rec,
                           "best_fixed": best_name, "best_fixed_error": best, "gits_error": gits,
                           "ratio_to_best_fixed": gits / best if best > 0 else math.inf,
                           "best_variant": best_variant, "gits_best_variant_error": c["gits"][best_variant],
                           "gits_sw": sws.get((den, solver, nfe), {}).get("gits"),
                           "recommended_sw": sws.get((den, solver, nfe), {}).get(rec_name)})
        d["cells_total"] += 1
        d["wins"] += gits < best
        d["wins_best_variant"] += c["gits"][best_variant] < best
        if rec is not None:
            d["cells_with_recommended"] += 1
            d["wins_vs_recommended"] += gits < rec
    return out


def claims(summary: dict[str, Any], nfes: tuple[int, ...] = CLAIM_NFES,
           denoisers: tuple[str, ...] = EXACT_DENOISERS) -> dict[str, dict[str, Any]]:
    """What GITS (the paper's setting) does at ``nfes`` on each exact denoiser of ``summary``: the cells, how many it
    wins against the solver's recommended schedule (L2 to the reference and sliced Wasserstein) and against the best
    fixed schedule, and the median error ratios GITS / recommended and GITS / best fixed (below 1: GITS better)."""
    out = {}
    for den in denoisers:
        if den not in summary:
            continue
        cs = [c for c in summary[den]["cells"] if c["nfe"] in nfes and c["recommended_error"] is not None]
        if not cs:
            continue
        to_rec = [c["gits_error"] / c["recommended_error"] for c in cs]
        sw = [c for c in cs if c.get("gits_sw") is not None and c.get("recommended_sw") is not None]
        out[den] = {"nfes": list(nfes), "cells": len(cs), "wins_vs_recommended": sum(r < 1 for r in to_rec),
                    "median_ratio_to_recommended": _median(to_rec),
                    "wins_vs_recommended_sw": sum(c["gits_sw"] < c["recommended_sw"] for c in sw),
                    "cells_sw": len(sw),
                    "wins_vs_best_fixed": sum(c["ratio_to_best_fixed"] < 1 for c in cs),
                    "median_ratio_to_best_fixed": _median([c["ratio_to_best_fixed"] for c in cs])}
    return out


def _median(v: list[float]) -> float:
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def evaluate(cfg: TrajectoryConfig, run: RunDir, model: torch.nn.Module | None = None,
             train_run: RunDir | None = None) -> EvalResult:
    """Return an :class:`EvalResult` for every denoiser in ``cfg.denoisers``; records everything in ``run``.

    The "trained" denoiser is ``model`` if given, else loaded from ``train_run`` (01_train's output), else trained
    (or resumed) in ``run.sub("model_digits")``.
    """
    from tqdm.auto import tqdm

    if "trained" in cfg.denoisers and model is None:
        if train_run is not None and train_run.latest_checkpoint() is not None:
            model = load_trained(cfg, train_run)
        else:
            model = train(cfg, run.sub("model_digits"), dataset="digits").model
    cases = build_denoisers(cfg, trained=model)
    rows, searches, refs = [], {}, {}
    n_cells = len(cases) * len(cfg.solvers) * len(cfg.nfes)
    t0 = time.perf_counter()
    with tqdm(total=n_cells, desc="solver x NFE cells") as bar:
        for case in cases:
            r, case_searches, ref = evaluate_case(cfg, case, bar)
            rows += r
            searches[case.name] = case_searches[case.metric]
            refs[case.name] = ref
    summary = summarize(rows)
    run.record("errors", rows)
    run.record("reference", refs)
    run.record("gits_search", {k: {"teacher_calls": s.teacher_calls, "network_evaluations": s.teacher_evaluations,
                                   "seconds": round(s.seconds, 3), "metric": s.metric,
                                   "grid_points": int(s.grid.numel())} for k, s in searches.items()})
    run.record("gits_wins", {k: {"cells": v["cells_total"], "vs_recommended_schedule": v["wins_vs_recommended"],
                                 "vs_best_fixed_schedule": v["wins"],
                                 "vs_best_fixed_best_gits_variant": v["wins_best_variant"]} for k, v in summary.items()})
    run.record("gits_claims", claims(summary))
    run.record("evaluate_seconds", round(time.perf_counter() - t0, 2))
    return EvalResult(rows, searches, summary, refs, cases)
