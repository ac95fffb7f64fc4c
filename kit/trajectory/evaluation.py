"""``evaluate``: sample error of every solver x time schedule x NFE against an accurate ODE solution, GITS included."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from kit.core import RunDir, pick_device
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
from kit.trajectory.fid import fid_against, inception_features, inception_weights_path
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


def paper_setting_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the rows of the fixed schedules and of GITS in the paper's setting (``variant == "paper"``): the
    comparison the paper makes, without the GITS rows of the metric x coeff sweep."""
    return [r for r in rows if r["schedule"] != "gits" or r.get("variant") == "paper"]


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
def evaluate_case(cfg: TrajectoryConfig, case: DenoiserCase, progress: Any = None,
                  fid_feature: torch.nn.Module | None = None) -> tuple[list[dict], dict[str, GITSSearch], dict]:
    """Return (rows, {metric: GITS search}, reference info) for one denoiser.

    Each row is {denoiser, solver, schedule, nfe, metric, coeff, variant, error, sw, basin}: ``error`` the mean L2
    distance of each few-step sample to its reference (same noise), ``sw`` the sliced Wasserstein distance between
    the two sample sets (a distribution-level distance). GITS rows carry
    ``variant="paper"`` for the paper's setting (the case's primary metric at ``cfg.coeff``) and ``"sweep"``
    for the other metrics and coeffs; ``basin`` is the share of samples ending nearest to the same training
    point as the reference (memorising denoisers only). With ``fid_feature`` (:func:`kit.trajectory.fid.
    inception_features`) and images [C, H, W] in [-1, 1], the rows of :func:`paper_setting_rows` also carry ``fid``:
    torchmetrics' FID between the few-step and the reference samples.
    """
    lo, hi = case.sigma_min, case.sigma_max
    x0 = noises(case, cfg.n_eval, cfg.seed + EVAL_SEED_OFFSET, hi)
    ref = sample(case.denoiser, x0, edm_sigmas(cfg.ref_steps, lo, hi), "heun")
    half = sample(case.denoiser, x0, edm_sigmas(max(cfg.ref_steps // 2, 1), lo, hi), "heun")
    ref_info = {"steps": cfg.ref_steps, "error_vs_half_steps": _mean_l2(ref, half)}
    ref_basin = None if case.data is None else case.data.nearest_index(ref)
    searches = searches_for_case(cfg, case)
    fid = None
    if fid_feature is not None and len(case.shape) == 3:
        fid = fid_against(ref, fid_feature, device=pick_device(cfg.device))
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
                row = {**base, **fields, "solver": solver, "nfe": nfe, "error": _mean_l2(x, ref),
                       "sw": sliced_wasserstein(x, ref, seed=cfg.seed), "basin": basin}
                if fid is not None and row["variant"] != "sweep":
                    row["fid"] = fid(x)
                rows.append(row)
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
    dist: dict[str, dict[tuple, dict]] = {"sw": {}, "fid": {}}  # distribution-level distances, paper setting
    for r in paper_setting_rows(rows):
        for key, by_cell in dist.items():
            if r["error"] is not None and r.get(key) is not None:
                by_cell.setdefault((r["denoiser"], r["solver"], r["nfe"]), {})[r["schedule"]] = r[key]
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
        cell = {"solver": solver, "nfe": nfe, "recommended": rec_name, "recommended_error": rec,
                "best_fixed": best_name, "best_fixed_error": best, "gits_error": gits,
                "ratio_to_best_fixed": gits / best if best > 0 else math.inf,
                "best_variant": best_variant, "gits_best_variant_error": c["gits"][best_variant]}
        for key, by_cell in dist.items():
            values = by_cell.get((den, solver, nfe), {})
            if key == "sw" or values:
                cell[f"gits_{key}"], cell[f"recommended_{key}"] = values.get("gits"), values.get(rec_name)
        d["cells"].append(cell)
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
    wins against the solver's recommended schedule (L2 to the reference, sliced Wasserstein, and FID where the cells
    have it: ``wins_vs_recommended_fid`` of ``cells_fid``) and against the best fixed schedule, and the median error
    ratios GITS / recommended and GITS / best fixed (below 1: GITS better)."""
    out = {}
    for den in denoisers:
        if den not in summary:
            continue
        cs = [c for c in summary[den]["cells"] if c["nfe"] in nfes and c["recommended_error"] is not None]
        if not cs:
            continue
        to_rec = [c["gits_error"] / c["recommended_error"] for c in cs]
        out[den] = {"nfes": list(nfes), "cells": len(cs), "wins_vs_recommended": sum(r < 1 for r in to_rec),
                    "median_ratio_to_recommended": _median(to_rec)}
        for key in ("sw", "fid"):
            both = [c for c in cs if c.get(f"gits_{key}") is not None and c.get(f"recommended_{key}") is not None]
            if key == "sw" or both:
                out[den][f"wins_vs_recommended_{key}"] = sum(c[f"gits_{key}"] < c[f"recommended_{key}"] for c in both)
                out[den][f"cells_{key}"] = len(both)
        out[den].update({"wins_vs_best_fixed": sum(c["ratio_to_best_fixed"] < 1 for c in cs),
                         "median_ratio_to_best_fixed": _median([c["ratio_to_best_fixed"] for c in cs])})
    return out


def _median(v: list[float]) -> float:
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def fid_setup(cfg: TrajectoryConfig) -> tuple[torch.nn.Module | None, dict[str, Any] | None]:
    """Return (the Inception feature extractor or None, what to record as "fid"; None when ``cfg.fid`` is off).

    The record says whether FID is computed and, if not, why (``fid: null`` and ``reason``): the evaluation then
    ranks the image samples by the sliced Wasserstein distance alone."""
    if not cfg.fid:
        return None, None
    feature, reason = inception_features()
    return feature, {"fid": "computed" if feature is not None else None, "reason": reason,
                     "weights": str(inception_weights_path()),
                     "between": "the few-step samples and the reference (exact-ODE) samples from the same noises, "
                                "per solver x schedule x NFE cell (the paper-setting rows)",
                     "distribution_metric": "fid" if feature is not None else "sliced_wasserstein"}


def evaluate(cfg: TrajectoryConfig, run: RunDir, model: torch.nn.Module | None = None,
             train_run: RunDir | None = None) -> EvalResult:
    """Return an :class:`EvalResult` for every denoiser in ``cfg.denoisers``; records everything in ``run``.

    The "trained" denoiser is ``model`` if given, else loaded from ``train_run`` (01_train's output), else trained
    (or resumed) in ``run.sub("model_digits")``. With ``cfg.fid`` (the full preset) image samples are also scored
    by FID where torchmetrics' Inception weights are on this machine (:func:`fid_setup`).
    """
    from tqdm.auto import tqdm

    if "trained" in cfg.denoisers and model is None:
        if train_run is not None and train_run.latest_checkpoint() is not None:
            model = load_trained(cfg, train_run)
        else:
            model = train(cfg, run.sub("model_digits"), dataset="digits").model
    cases = build_denoisers(cfg, trained=model)
    fid_feature, fid_record = fid_setup(cfg)
    if fid_record is not None:
        run.record("fid", fid_record)
    rows, searches, refs = [], {}, {}
    n_cells = len(cases) * len(cfg.solvers) * len(cfg.nfes)
    t0 = time.perf_counter()
    with tqdm(total=n_cells, desc="solver x NFE cells") as bar:
        for case in cases:
            r, case_searches, ref = evaluate_case(cfg, case, bar, fid_feature=fid_feature)
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
    if "pretrained" in summary:  # the real model (full preset): the same headline on its own ODE
        run.record("gits_claims_pretrained", claims(summary, denoisers=("pretrained",)))
    run.record("evaluate_seconds", round(time.perf_counter() - t0, 2))
    return EvalResult(rows, searches, summary, refs, cases)
