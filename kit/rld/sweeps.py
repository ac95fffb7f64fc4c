"""The RLD series' sweeps (arXiv:2408.07703): students distilled from teachers of growing error (the paper's Fig. 4)
and over the loss weights alpha / beta (its sensitivity figure), built from :mod:`kit.rld.experiment`'s teachers and
students."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from kit.core import RunDir
from kit.rld.config import RLDConfig
from kit.rld.experiment import load_data, train_student, train_teacher

__all__ = ["teacher_error_sweep", "alpha_beta_sweep"]


def teacher_error_sweep(cfg: RLDConfig, run: RunDir, levels: Sequence[float] | None = None,
                        methods: Sequence[str] | None = None, seeds: Sequence[int] | None = None
                        ) -> list[dict[str, Any]]:
    """Return rows {level, teacher_error, teacher_test_acc, method, seed, accuracy} over teachers of growing error.

    Digits only: ``cfg.sweep_knob == "noisy"`` trains each teacher on the student's images with pair-flip label
    noise ``level``; ``"pool"`` on ``level`` pool images. The paper's Fig. 4 plots RLD's gain over DKD against the
    teacher's training accuracy.
    """
    if cfg.dataset != "digits":
        raise ValueError("the teacher-error sweep is defined on the offline digits (dataset='digits')")
    rows = []
    for level in (cfg.sweep_levels if levels is None else levels):
        if cfg.sweep_knob == "noisy":
            data = load_data(cfg, teacher_data="noisy", label_noise=float(level))
            tag = f"noise{level:g}"
        else:
            data = load_data(cfg, teacher_data="pool", teacher_n=int(level))
            tag = f"pool{int(level)}"
        sub = run.sub(f"sweep_{tag}")
        teacher = train_teacher(replace(cfg, seed=cfg.seed), sub.sub("teacher"), data)
        for seed in (cfg.sweep_seeds if seeds is None else seeds):
            for method in (cfg.sweep_methods if methods is None else methods):
                s = train_student(cfg, sub.sub(f"{method}_seed{seed}"), method, seed, teacher.model, data)
                rows.append({"level": float(level), "teacher_error": teacher.error_on_student_train,
                             "teacher_test_acc": teacher.test_acc, "method": method, "seed": seed,
                             "accuracy": s.best_acc, "last_accuracy": s.last_acc})
    run.record("sweep", rows)
    return rows


def alpha_beta_sweep(cfg: RLDConfig, run: RunDir, alphas: Sequence[float] | None = None,
                     betas: Sequence[float] | None = None, seeds: Sequence[int] | None = None,
                     teacher: nn.Module | None = None, method: str = "rld") -> dict[tuple[float, float], list[float]]:
    """Return {(alpha, beta): [best test accuracy per seed]} of ``method`` students ("rld": alpha weights SCD and
    beta MCD; "dkd": TCKD and NCKD) over the grid, all distilled from one teacher (the paper's alpha / beta
    sensitivity figure). ``teacher`` None trains ``cfg``'s teacher in ``run``; the grid defaults to
    ``cfg.grid_alphas`` x ``cfg.grid_betas`` and ``cfg.grid_seeds``. Feed the result to
    :func:`kit.rld.explore.alpha_beta_grid` (or ``widgets.rld.alpha_beta_heatmap``).
    """
    if method not in ("rld", "dkd"):
        raise ValueError(f"method must be 'rld' or 'dkd' (the methods weighted by alpha and beta), got {method!r}")
    alphas = cfg.grid_alphas if alphas is None else alphas
    betas = cfg.grid_betas if betas is None else betas
    seeds = cfg.grid_seeds if seeds is None else seeds
    if not alphas or not betas or not seeds:
        raise ValueError(f"alphas, betas and seeds must each name at least one value, got {alphas}, {betas}, "
                         f"{seeds}")
    data = load_data(cfg)
    if teacher is None:
        teacher = train_teacher(cfg, run.sub("teacher"), data).model
    grid: dict[tuple[float, float], list[float]] = {}
    for a in alphas:
        for b in betas:
            weights = {"alpha": float(a), "beta": float(b)} if method == "rld" else {"dkd_alpha": float(a),
                                                                                     "dkd_beta": float(b)}
            point = replace(cfg, **weights)
            for seed in seeds:
                s = train_student(point, run.sub(f"{method}_alpha{a:g}_beta{b:g}_seed{seed}"), method, seed,
                                  teacher, data)
                grid.setdefault((float(a), float(b)), []).append(s.best_acc)
    run.record("alpha_beta", [{"method": method, "alpha": a, "beta": b, "accuracies": v}
                              for (a, b), v in grid.items()])
    return grid

