"""What the trajectory notebooks display and record, built in kit: 01's training summary, 02's tables and sentences,
03's regularity list (kit.trajectory.experiment / report), checked on small hand-made inputs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kit.trajectory.evaluation import paper_setting_rows
from kit.trajectory.experiment import TrainResult, pretrained_summary, train_summary
from kit.trajectory.report import (
    claims_markdown,
    error_tables_markdown,
    fid_markdown,
    regularity_markdown,
    search_cost_markdown,
    train_markdown,
)


def _result() -> TrainResult:
    gap = {"sigma": [0.01, 0.1, 1.0, 10.0, 30.0], "gap": [0.01, 0.08, 0.2, 0.1, 0.4],
           "learned": [0.01, 0.1, 0.4, 0.5, 0.6], "optimal": [0.0, 0.0, 0.3, 0.45, 0.5]}
    history = [{"kind": "train", "loss": 2.0}, {"kind": "eval", "loss": 9.0}, {"kind": "train", "loss": 0.7}]
    return TrainResult(None, "digits", SimpleNamespace(history=history, step=600, seconds=12.345), gap)


def test_train_summary_keeps_01s_keys_and_says_where_the_net_is_nearest_the_optimum():
    s = train_summary(_result())
    assert s["final_loss"] == 0.7 and s["steps"] == 600 and s["seconds"] == 12.3
    assert s["gap_at_sigma_0.01"] == 0.01 and s["gap_at_sigma_1"] == 0.2 and s["max_gap"] == 0.4
    assert s["gap_over_learned_at_smallest_sigma"] == pytest.approx(1.0)
    assert s["min_gap_over_learned"] == pytest.approx(0.2) and s["sigma_at_min_gap_over_learned"] == 10.0
    text = train_markdown({"digits": s})
    assert "100 % of its error at the smallest sigma and" in text and "20 % at its closest (sigma 10)" in text
    den = SimpleNamespace(unet=SimpleNamespace(parameters=lambda: [SimpleNamespace(numel=lambda: 7)] * 3),
                          sigma_min=0.01, sigma_max=50.0)
    assert pretrained_summary(den, "m") == {"id": "m", "parameters": 21, "sigma_range": [0.01, 50.0]}


def _row(den, schedule, nfe, error, variant=None, coeff=None):
    return {"denoiser": den, "solver": "euler", "schedule": schedule, "nfe": nfe, "metric": None, "coeff": coeff,
            "variant": variant, "error": error}


def test_error_tables_and_search_cost():
    rows = [_row("kde", "edm", 4, 1.0), _row("kde", "gits", 4, 0.5, "paper", 1.15),
            _row("kde", "gits", 4, 0.4, "sweep", 1.0), _row("gmm2d", "edm", 4, 2.0)]
    assert paper_setting_rows(rows) == [rows[0], rows[1], rows[3]]
    text = error_tables_markdown(rows, 1.15)
    assert text.index("#### kde (digits, smoothed)") < text.index("#### gmm2d (2-D ring")
    assert "| euler | GITS (paper: coeff 1.15) | **0.5** |" in text and "| euler | GITS best of sweep | 0.4 |" in text
    cost = {"kde": {"network_evaluations": 3840, "teacher_calls": 60, "seconds": 1.5, "metric": "dev"}}
    table = search_cost_markdown(cost, {"kde": {"error_vs_half_steps": 0.00123}})
    assert "| kde | 3840 | 60 | 1.5 | dev | 1.23e-03 |" in table
    assert "| kde | 3840 | 60 | 1.5 | dev | n/a |" in search_cost_markdown(cost, {})


def test_claims_and_fid_sentences():
    c = {"nfes": [5, 6], "cells": 14, "wins_vs_recommended": 9, "median_ratio_to_recommended": 0.88,
         "wins_vs_recommended_sw": 8, "cells_sw": 14, "wins_vs_best_fixed": 0, "median_ratio_to_best_fixed": 1.87}
    text = claims_markdown({"kde": c})
    assert "9 of 14" in text and "by FID" not in text and "real model" not in text
    real = {"pretrained": {**c, "wins_vs_recommended_fid": 10, "cells_fid": 14}}
    text = claims_markdown({"kde": c}, real)
    assert "and the real model" in text and "**pretrained**" in text and "by FID 10 of 14" in text
    assert "not computed (no weights)" in fid_markdown({"fid": None, "reason": "no weights"})
    assert "in the error rows" in fid_markdown({"fid": "computed", "reason": None, "between": "x and y"})
    assert "`fid=False`" in fid_markdown(None)


def test_regularity_markdown():
    s = {"chord_mean": 640.2, "chord_expected": 640.0, "max_dev_x": 1.234, "sigma_at_max_dev": 2.5,
         "explained_top2_mean": 0.995, "explained_top2_min": 0.99, "min_cos": 0.97,
         "distance_to_end": {"2": {"D": 1.0, "x": 5.0}}}
    text = regularity_markdown(s)
    assert "- chord length 640.2 (sigma_max x sqrt(d) = 640.0)" in text and "99.50%" in text
    assert text.endswith("- at sigma = 2: D(x_sigma) is 1.00 from the final sample, x_sigma 5.00")
