"""hv_vlm entry points: presets, writer-disjoint data, fresh training pairs, training, the evaluation table, and the
CEDAR AND path on a fixture in its published layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kit.core import RunDir
from kit.data.handwriting import Writers
from kit.hv_vlm.config import preset
from kit.hv_vlm.experiment import RandomPairs, balanced_subset, check_unseen, evaluate, load_data, train
from kit.hv_vlm.model import SiameseVerifier
from kit.hv_vlm.report import format_table, make_examiner, table_rows

SMALL = dict(n_writers=30, samples_per_writer=4, steps=4, batch_size=8, eval_every=2, width=4, device="cpu")


@pytest.fixture(scope="module")
def small():
    cfg = preset("tiny", **SMALL)
    return cfg, load_data(cfg)


def test_presets_and_bad_values():
    assert preset("tiny").writer_seed != preset("lite").writer_seed  # CI evaluates on people the model never saw
    full = preset("full", data_dir="/x")
    assert (full.width, full.batch_size, full.lr, full.patience, full.min_delta) == (64, 256, 1e-3, 10, 0.001)
    with pytest.raises(ValueError, match="data_dir"):
        preset("full")
    for bad, match in [({"label_fraction": 0}, "label_fraction"), ({"data": "iam"}, "data must"),
                       ({"pretrained": True}, "width=64"), ({"samples_per_writer": 1}, "samples_per_writer"),
                       ({"noise": -1}, "noise")]:
        with pytest.raises(ValueError, match=match):
            preset("tiny", **bad)
    with pytest.raises(ValueError, match="no_such_key"):
        preset("tiny", no_such_key=1)


def test_data_is_writer_disjoint_and_paired_fifty_fifty(small):
    cfg, d = small
    w = d.writers
    assert not set(w["train_all"]) & set(w["val"]) and not set(w["val"]) & set(w["test"])
    assert not set(w["train_all"]) & set(w["test"]) and set(w["train"]) <= set(w["train_all"])
    for name, pairs in d.pairs.items():
        assert pairs[:, 2].mean() == 0.5
        both = d.writer_of[pairs[:, :2]]
        assert np.isin(both, w[name]).all()  # every pair stays inside its split
        assert ((both[:, 0] == both[:, 1]) == (pairs[:, 2] == 1)).all()
    assert d.images.shape == (30 * 4, 64, 64) and d.x.shape == (120, 1, 64, 64)
    assert d.boxes.shape == (120, 3, 4)
    # deterministic: the same config builds the same images and pairs
    again = load_data(preset("tiny", **SMALL))
    assert np.array_equal(again.images, d.images) and np.array_equal(again.pairs["test"], d.pairs["test"])
    # evaluation data: test writers and a few labelled training writers only
    ev = load_data(cfg, train=False)
    assert set(ev.writer_of) <= set(w["test"]) | set(w["train"]) and "val" not in ev.pairs
    ten = load_data(preset("tiny", label_fraction=0.1, **SMALL))
    assert len(ten.writers["train"]) == round(0.1 * len(ten.writers["train_all"]))


def test_random_pairs_draw_half_same_and_half_different_writers():
    writer_of = np.repeat(np.arange(5), 3)
    x = torch.arange(15, dtype=torch.float32)[:, None, None, None].expand(15, 1, 2, 2)
    torch.manual_seed(0)
    rp = RandomPairs(x, np.arange(15), writer_of, 10)
    a, b, y = rp(0)
    ia, ib = a[:, 0, 0, 0].long().numpy(), b[:, 0, 0, 0].long().numpy()
    assert y.tolist() == [1] * 5 + [0] * 5
    assert (writer_of[ia[:5]] == writer_of[ib[:5]]).all() and (ia[:5] != ib[:5]).all()
    assert (writer_of[ia[5:]] != writer_of[ib[5:]]).all()
    with pytest.raises(ValueError, match="2 writers"):
        RandomPairs(x, np.arange(15), np.zeros(15), 4)


def test_balanced_subset():
    pairs = np.column_stack([np.arange(20), np.arange(20), np.tile([1, 0], 10)])
    sub = balanced_subset(pairs, 8, seed=1)
    assert len(sub) == 8 and sub[:, 2].sum() == 4 and len(np.unique(sub[:, 0])) == 8


def test_train_is_seeded_keeps_the_best_and_resumes(small, tmp_path):
    cfg, d = small
    a = train(cfg, data=d, progress=False)
    b = train(cfg, data=d, progress=False)
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v)
    assert a.steps == 4 and a.best_step in (2, 4) and set(a.metrics) == {"val_accuracy", "val_f1", "val_auc"}
    run = RunDir(tmp_path / "r")
    first = train(cfg, run=run, data=d, progress=False)
    again = train(cfg, run=run, data=d, progress=False)  # finished: returned, not trained again
    assert again.best_step == first.best_step and again.history == first.history


def test_evaluate_table_examiner_and_faithfulness(small):
    cfg, d = small
    model = SiameseVerifier(width=4)
    res = evaluate(cfg, model, d, examiner="offline", n_examiner_pairs=12, progress=False)
    methods = [r["method"] for r in table_rows(res)]
    assert methods[:4] == ["Siamese ResNet-18", "raw-pixel cosine", "HOG cosine",
                           "HOG + logistic regression, 10% writers"]
    assert methods[-1] == "examiner: offline-examiner"
    ex = res["examiner_row"]
    assert ex["n_pairs"] == 12 and 0 <= ex["coverage"] <= 1
    assert len(res["verdicts"]) == 12 and set(res["same_pairs"]) == {"Siamese ResNet-18", "HOG cosine",
                                                                      "examiner: offline-examiner"}
    f = res["faithfulness"]
    assert f["n_pairs"] == 12 and 0 <= f["chance_precision"] <= 1
    assert "Siamese ResNet-18" in format_table(table_rows(res))
    none = evaluate(cfg, model, d, examiner=None, progress=False)
    assert "examiner_row" not in none and len(none["rows"]) == 5
    with pytest.raises(ValueError, match="examiner must"):
        make_examiner("gemini")


def test_evaluating_a_model_on_its_own_training_writers_is_refused(small):
    cfg, d = small
    check_unseen(d, [999], cfg.writer_seed, cfg.writer_seed)
    with pytest.raises(ValueError, match="trained the model"):
        check_unseen(d, d.writers["test"][:2], cfg.writer_seed, cfg.writer_seed)
    check_unseen(d, d.writers["test"], cfg.writer_seed, cfg.writer_seed + 1)  # another population: fine


def test_cedar_and_folder_runs_end_to_end(tmp_path):
    pop = Writers(8, seed=9, noise=1.0)
    for w in range(8):
        for k, img in enumerate(pop.sample(w, 3, np.random.default_rng(w))):
            # CEDAR AND crops are wider than tall and of varying size
            Image.fromarray(np.pad(img, ((0, 0), (20, 20)), constant_values=250)).save(
                tmp_path / f"{w + 1:04d}a_num{k + 1}.png")
    cfg = preset("tiny", data="cedar", data_dir=str(tmp_path), split=(0.5, 0.25, 0.25), **{
        k: v for k, v in SMALL.items() if k not in ("n_writers", "samples_per_writer")})
    d = load_data(cfg)
    assert d.source == "cedar" and d.images.shape == (24, 64, 64) and d.population is None
    assert set(d.writer_of) == {f"{w:04d}" for w in range(1, 9)}
    res = train(cfg, data=d, progress=False)
    ev = evaluate(cfg, res.model, d, examiner="offline", n_examiner_pairs=4, progress=False)
    assert "faithfulness" not in ev and ev["examiner_row"]["n_pairs"] == 4
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_data(preset("tiny", data="cedar", data_dir=str(tmp_path / "missing")))
