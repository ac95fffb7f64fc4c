"""The sslhv table: means and sample stds over seeds, the paper's ordering test, the label-efficiency curves, and the
build that writes them (one tiny seed, resumed from its cache)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kit.sslhv import report

torch.set_num_threads(1)


def _unit(acc):
    return {"test": {"accuracy": acc, "f1": acc, "auc": acc}, "intra": 0.9, "inter": 0.5, "intra_2d": 0.4,
            "inter_2d": 0.1}


def _report(acc_vicreg, acc_sup10, acc_sup100=(0.9, 0.9)):
    per = {}
    for s, (v, a, b) in enumerate(zip(acc_vicreg, acc_sup10, acc_sup100)):
        per[str(s)] = {"baselines": {"rows": {"hog_cosine": {"accuracy": 0.7, "intra": 0.8, "inter": 0.7}}},
                       "supervised_0.1": {"test": {"accuracy": a}}, "supervised_1": {"test": {"accuracy": b}},
                       "vicreg": {**_unit(v), "finetuned": {"0.1": {"test": {"accuracy": v + 0.01}, "kept_frozen": s == 1}},
                                  "label_efficiency": {"0.1": v, "1": v + 0.05}},
                       "vae": _unit(0.6)}
    return {"per_seed": per, "seeds": list(range(len(acc_vicreg))), "finetune_method": "vicreg",
            "config": {"label_fraction": 0.1}}


def test_summary_is_the_mean_and_sample_std_over_seeds_beside_the_paper():
    rows = {r["key"]: r for r in report.summary_rows(_report((0.8, 0.7), (0.75, 0.72)))}
    v = rows["vicreg"]
    assert v["accuracy"] == pytest.approx(0.75) and v["accuracy_std"] == pytest.approx(np.std([0.8, 0.7], ddof=1))
    assert v["paper_accuracy"] == 0.78 and v["paper_intra"] == 0.69 and v["accuracy_per_seed"] == [0.8, 0.7]
    assert rows["finetuned"]["kept_frozen"] == [False, True] and rows["finetuned"]["accuracy"] == pytest.approx(0.76)
    assert rows["supervised_1"]["paper_accuracy"] == 0.84
    text = report.format_table(report.summary_rows(_report((0.8, 0.7), (0.75, 0.72))))
    assert "0.750 ± 0.071" in text and "| VICReg (frozen, 10 %) |" in text


def test_ordering_reads_the_best_frozen_method_against_supervised():
    o = report.ordering(report.summary_rows(_report((0.8, 0.7), (0.75, 0.72))))
    assert o["best"] == "vicreg" and o["beats_supervised_10"] and o["seeds_won"] == 1
    assert o["gap_to_supervised_100"] == pytest.approx(0.15)
    o = report.ordering(report.summary_rows(_report((0.55, 0.5), (0.75, 0.72))))
    assert o["best"] == "vae" and not o["beats_supervised_10"] and o["seeds_won"] == 0


def test_label_efficiency_curves():
    c = report.label_efficiency(_report((0.8, 0.7), (0.75, 0.72)))
    assert c["frozen VICReg"] == {"0.1": 0.8, "1": pytest.approx(0.85)}
    assert c["fine-tuned VICReg"] == {"0.1": pytest.approx(0.81)} and c["supervised"] == {"0.1": 0.75, "1": 0.9}


def test_build_writes_weights_and_results_and_resumes(tmp_path):
    from kit.sslhv.assets import build, committed_config, load_method

    kw = dict(seeds=(0,), methods=("vicreg",), work=tmp_path / "work", out=tmp_path / "out", preset_name="tiny",
              steps=4)
    import kit.sslhv.assets as assets

    old = assets.TRAIN_FRACTIONS, assets.HEAD_FRACTIONS
    assets.TRAIN_FRACTIONS, assets.HEAD_FRACTIONS = (0.3, 1.0), (0.3, 1.0)
    try:
        rep = build(**kw)
        cached = sorted(p.name for p in (tmp_path / "work").iterdir())
        assert cached == ["s0_baselines.json", "s0_supervised_0.3.json", "s0_supervised_1.json", "s0_vicreg.json"]
        again = build(**kw)  # every unit from the cache: identical numbers
    finally:
        assets.TRAIN_FRACTIONS, assets.HEAD_FRACTIONS = old
    assert again["per_seed"] == json.loads(json.dumps(rep["per_seed"]))
    from kit.sslhv.assets import available_methods

    assert available_methods(tmp_path / "out") == ["vicreg"]
    m = load_method("vicreg", tmp_path / "out")
    assert m.name == "vicreg" and not m.training
    from kit.sslhv.assets import load_supervised

    sup = load_supervised(tmp_path / "out")
    assert not sup.training and sup.head.project.out_features == 64
    assert committed_config(tmp_path / "out").steps == 4
    unit = rep["per_seed"]["0"]["vicreg"]
    assert set(unit["label_efficiency"]) == {"0.3", "1"} and set(unit["finetuned"]) == {"0.3", "1"}
    with pytest.raises(FileNotFoundError, match="python -m kit.sslhv.assets"):
        load_method("vae", tmp_path / "out")
    with pytest.raises(ValueError, match="method must"):
        load_method("dino", tmp_path / "out")
