"""The NL-RAN series' entry points: config checks, data of a run, training with the best epoch kept, BatchNorm
re-estimation before validation, prediction, explanation scores and the committed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.nlran.config import preset
from kit.nlran.experiment import (
    comparison_rows,
    evaluate,
    load_data,
    predict,
    train_model,
)
from kit.nlran.scores import explanation_scores

torch.set_num_threads(1)


def small(**kw):
    base = dict(n_train=12, n_val=6, n_test=6, epochs=2, batch_size=4, device="cpu")
    return preset("tiny", **{**base, **kw})


def test_config_rejects_bad_values_with_the_valid_options():
    with pytest.raises(ValueError, match="data must be one of"):
        preset("tiny", data="dicom")
    with pytest.raises(ValueError, match="needs data_dir"):
        preset("tiny", data="ccccii")
    with pytest.raises(ValueError, match="needs data_dir"):
        preset("full")
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['vgg'\]"):
        preset("tiny", baselines=("vgg",))
    with pytest.raises(ValueError, match="norm must be one of"):
        preset("tiny", norm="layer")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        preset("tiny", epochs=0)
    with pytest.raises(ValueError, match="unknown NLRANConfig fields"):
        preset("tiny", epoch=3)
    full = preset("full", data_dir="/data/ccccii")
    assert full.size == (64, 128, 128) and full.model_preset == "full" and full.split == (3263, 408, 408)
    assert preset("full", data="phantom").size == (64, 64, 64)
    assert preset("tiny").model_preset == "tiny"


def test_phantom_data_are_disjoint_balanced_and_deterministic():
    cfg = small()
    a, b = load_data(cfg), load_data(cfg)
    assert (len(a.train), len(a.val), len(a.test)) == (12, 6, 6)
    x, y = a.train[0]
    assert x.shape == (1, 32, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(a.test[3][0], b.test[3][0])
    assert not torch.equal(a.train[0][0], a.test[0][0])  # different seeds per split
    assert np.bincount(a.train.labels, minlength=3).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="cubes"):
        load_data(small(size=(32, 32, 48)))


def test_real_data_paths_name_the_missing_folder(tmp_path):
    cfg = preset("tiny", data="ccccii", data_dir=str(tmp_path / "missing"), size=(16, 16, 16))
    with pytest.raises(FileNotFoundError, match="missing"):
        load_data(cfg)


def test_training_keeps_the_best_epoch_and_predicts_in_eval_mode():
    cfg = small(epochs=3)
    data = load_data(cfg)
    tm = train_model(cfg, data, "nlran")
    aucs = [e["val_auc"] for e in tm.history]
    assert len(aucs) == 3 and tm.best_val_auc == pytest.approx(max(aucs))
    assert tm.best_epoch == int(np.argmax(aucs)) + 1 and tm.params > 0 and tm.seconds > 0
    assert not tm.model.training
    y, p = predict(tm.model, data.val)
    assert p.shape == (6, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert tm.model.training is False
    # the kept weights are the best epoch's: re-measuring the validation AUC gives the recorded best
    from kit.nlran.metrics import classification_report

    assert classification_report(y, p)["auc_macro"] == pytest.approx(tm.best_val_auc, abs=1e-6)
    rows = comparison_rows({"nlran": {"trained": tm, "test": evaluate(tm.model, data.test)}})
    assert rows[0]["model"] == "nlran" and 0 <= rows[0]["auc_macro"] <= 1


def test_interrupted_and_rerun_training_return_the_uninterrupted_result(tmp_path):
    from kit.core import RunDir

    cfg = small(epochs=4)
    data = load_data(cfg)
    full = train_model(cfg, data, "nlran_no_nl", run=RunDir(tmp_path / "full"))

    def interrupt(event):  # 3 steps per epoch: stop in the middle of epoch 3
        if event["kind"] == "train" and event["step"] == 7:
            raise KeyboardInterrupt

    run = RunDir(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, data, "nlran_no_nl", run=run, callbacks=[interrupt])
    resumed = train_model(cfg, data, "nlran_no_nl", run=run)
    again = train_model(cfg, data, "nlran_no_nl", run=run)  # a finished run, started again
    for tm in (resumed, again):
        assert (tm.best_epoch, tm.best_val_auc) == (full.best_epoch, pytest.approx(full.best_val_auc, abs=1e-9))
        assert [e["epoch"] for e in tm.history] == [1, 2, 3, 4]
        assert [e["val_auc"] for e in tm.history] == pytest.approx([e["val_auc"] for e in full.history], abs=1e-6)
        for k, v in full.model.state_dict().items():
            torch.testing.assert_close(tm.model.state_dict()[k], v, rtol=0, atol=1e-5)
    # the returned weights are the best epoch's, whichever epoch that was
    y, p = predict(again.model, data.val)
    from kit.nlran.metrics import classification_report

    assert classification_report(y, p)["auc_macro"] == pytest.approx(full.best_val_auc, abs=1e-6)


def test_batchnorm_statistics_are_re_estimated_before_validation(monkeypatch):
    import kit.nlran.experiment as ex

    calls = []
    real = ex._recalibrate
    monkeypatch.setattr(ex, "_recalibrate", lambda *a, **k: (calls.append(1), real(*a, **k)))
    cfg = small(epochs=2)
    train_model(cfg, load_data(cfg), "nlran_no_nl")
    assert len(calls) == 2
    calls.clear()
    cfg = small(epochs=2, norm="group")  # no BatchNorm: nothing to re-estimate
    train_model(cfg, load_data(cfg), "nlran_no_nl")
    assert calls == []


def test_explanation_scores_cover_every_map_and_only_volumes_with_lesions():
    from kit.nlran.models import nlran3d

    cfg = small()
    data = load_data(cfg)
    torch.manual_seed(0)
    model = nlran3d("tiny").eval()
    scores = explanation_scores(model, data.test, n=3)
    assert set(scores) == {"AM1", "AM2", "AM3", "CAM", "Grad-CAM"}
    for v in scores.values():
        assert v["volumes"] == 3 and 0 <= v["pointing"] <= 1 and 0 <= v["top10"] <= 1 and 0 <= v["auroc"] <= 1
    lung = explanation_scores(model, data.test, n=3, within="lung")
    assert set(lung) == set(scores) and lung["AM1"]["auroc"] != scores["AM1"]["auroc"]
    with pytest.raises(ValueError, match="within must be"):
        explanation_scores(model, data.test, n=3, within="body")
    with pytest.raises(ValueError, match="lesion masks"):
        explanation_scores(model, torch.utils.data.TensorDataset(torch.zeros(2, 1, 32, 32, 32)), n=2)


def test_committed_models_load_and_meet_the_bar_on_held_out_phantoms():
    from kit.nlran.weights import committed_results, load_committed

    results = committed_results()
    rows = {r["model"]: r for r in results["rows"]}
    assert set(rows) == {"nlran", "nlran_no_nl", "resnet18", "resnet18_cbam"}
    assert rows["nlran"]["auc_macro"] >= 0.9 and rows["nlran"]["train_seconds"] <= 300
    model = load_committed("nlran")
    cfg = preset("tiny", device="cpu")
    test = load_data(cfg).test
    sub = torch.utils.data.Subset(test, range(12))
    sub.labels = test.labels[:12]
    rep = evaluate(model, sub)
    assert rep["accuracy"] >= 0.75  # the same phantoms the committed numbers were measured on
    with pytest.raises(ValueError, match="unknown model"):
        load_committed("vgg")
    with pytest.raises(FileNotFoundError, match="python -m kit.nlran.assets"):
        load_committed("nlran", folder="/nonexistent")
    with pytest.raises(FileNotFoundError, match="python -m kit.nlran.study"):
        load_committed("nlran", folder="/nonexistent", layout="arrangement")
    with pytest.raises(ValueError, match="layout"):
        load_committed("nlran", layout="lobar")


def test_cli_train_entry_point_writes_weights_and_the_test_report(tmp_path):
    from kit.core import RunDir
    from kit.nlran.experiment import train
    from kit.nlran.weights import load_committed

    cfg = small(epochs=1)
    tm = train(cfg, RunDir(tmp_path))
    run = RunDir(tmp_path)
    assert run.metrics["trained"]["model"] == "nlran" and 0 <= run.metrics["test"]["auc_macro"] <= 1
    model = load_committed("nlran", folder=tmp_path)  # the saved weights load back into the tiny layout
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tm.model.eval()(x))


def test_training_moves_the_augmentation_epoch_of_real_data():
    from kit.nlran.experiment import SeriesData

    cfg = small(epochs=2)
    d = load_data(cfg)
    calls = []

    class Tracked(torch.utils.data.Dataset):  # stands in for CCCIIDataset(augment=True)
        labels = d.train.labels

        def __len__(self):
            return len(d.train)

        def __getitem__(self, i):
            return d.train[i]

        def set_epoch(self, e):
            calls.append(e)

    train_model(cfg, SeriesData(Tracked(), d.val, d.test, "tracked"), "nlran_no_nl")
    assert calls == [0, 1]  # fit tells the set each epoch before reading it


def test_heatmap_comparison_scores_both_regions_and_its_verdict_follows_the_scores():
    from kit.nlran.baselines import build_model
    from kit.nlran.models import nlran3d
    from kit.nlran.report import heatmap_markdown
    from kit.nlran.scores import heatmap_comparison

    data = load_data(small())
    torch.manual_seed(0)
    models = {"nlran": nlran3d("tiny").eval(), "resnet18": build_model("resnet18").eval()}
    out = heatmap_comparison(models, data.test, n=2)
    for within in ("volume", "lung"):
        assert set(out[within]) == {"AM1", "AM2", "AM3", "CAM", "Grad-CAM", "resnet18 CAM"}
        assert out[within]["AM1"] == explanation_scores(models["nlran"], data.test, 2, within=within)["AM1"]
        for m, beats in out["am1_beats_cam"][within].items():
            assert beats == (out[within]["AM1"][m] > out[within]["CAM"][m])
    masks = [data.test.phantom(i).lesion_mask for i in range(len(data.test))]
    assert out["lesion_share"] == pytest.approx(float(np.mean([m.mean() for m in masks if m.any()][:2])))
    table = heatmap_markdown(out)
    assert table.count("\n| volume |") == 6 and table.count("\n| lung |") == 6 and "2 test volumes" in table


def test_report_rows_and_the_comparison_table_carry_the_report_numbers():
    from kit.nlran.experiment import REPORT_KEYS, report_rows
    from kit.nlran.metrics import classification_report
    from kit.nlran.report import comparison_markdown

    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.array([[.7, .2, .1], [.2, .5, .3], [.1, .3, .6], [.3, .4, .3], [.6, .3, .1], [.2, .2, .6]])
    rep = classification_report(y, p)
    rows = report_rows({"a": rep}, {"a": {"params": 1234, "train_seconds": 5.0}})
    assert rows == [{"model": "a", **{k: rep[k] for k in REPORT_KEYS}, "params": 1234, "train_seconds": 5.0}]
    md = comparison_markdown(rows, "t")
    assert f"| a | {rep['auc_macro']:.3f} | {rep['auc_micro']:.3f} | {rep['accuracy']:.3f} |" in md and "1,234" in md
