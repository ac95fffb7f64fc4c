"""RLD series entry points: config, data (digits knobs, CIFAR-100 and ImageNet layouts), distiller, training."""

from __future__ import annotations

import pickle
import statistics

import numpy as np
import pytest
import torch

from kit.core import RunDir
from kit.rld import config
from kit.rld.data import (
    DIGIT_PAIRS,
    CifarDataset,
    cifar100_datasets,
    digits_split,
    imagenet_datasets,
    pair_flip_labels,
    teacher_training_set,
)
from kit.rld.experiment import Distiller, _lr_lambda, accuracy_table, make_mlp, train
from kit.rld.report import sweep_summary
from kit.rld.sweeps import teacher_error_sweep


def test_presets_follow_the_paper_recipe():
    full = config.preset("full")
    assert (full.epochs, full.lr, full.batch_size, full.weight_decay, full.momentum) == (240, 0.05, 64, 5e-4, 0.9)
    assert [round(m * full.epochs) for m in full.lr_milestones] == [150, 180, 210]
    assert (full.alpha, full.beta, full.temperature, full.warmup, full.ce_weight) == (1.0, 8.0, 4.0, 20, None)
    assert (full.teacher, full.student, full.dkd_alpha, full.dkd_beta) == ("resnet32x4", "resnet8x4", 1.0, 8.0)
    assert config.preset("tiny").warmup == 100 // 12
    with pytest.raises(ValueError, match="unknown methods"):
        config.preset("tiny", methods=("ce", "fitnet"))
    with pytest.raises(ValueError, match="label_noise"):
        config.preset("tiny", label_noise=1.5)


def test_lr_schedule_steps_down_at_milestones():
    f = _lr_lambda([10, 20], 0.1)
    assert [f(0), f(9), f(10), f(19), f(20), f(100)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_digits_split_and_knobs():
    s = digits_split(seed=0)
    assert (len(s.student), len(s.test), len(s.pool)) == (300, 597, 900)
    a = {tuple(r.tolist()) for r in s.student.tensors[0]}
    b = {tuple(r.tolist()) for r in s.test.tensors[0]}
    assert len(a & b) <= 2  # disjoint up to the few duplicate images the digits set contains
    assert float(s.student.tensors[0].max()) == 1.0 and float(s.student.tensors[0].min()) == 0.0
    y = torch.arange(10).repeat(300)
    assert torch.equal(pair_flip_labels(y, 0.0), y)
    flipped = pair_flip_labels(y, 1.0)
    partner = dict(DIGIT_PAIRS) | {b: a for a, b in DIGIT_PAIRS}
    assert flipped.tolist() == [partner.get(v, v) for v in y.tolist()]
    noisy = pair_flip_labels(y, 0.3, seed=5)
    rate = float((noisy != y).float().mean())
    assert 0.25 < rate < 0.35 and torch.equal(noisy, pair_flip_labels(y, 0.3, seed=5))
    pool = teacher_training_set(s, "pool", 120, 0.0)
    assert len(pool) == 120 and torch.equal(pool.tensors[0], s.pool.tensors[0][:120])
    noisy_set = teacher_training_set(s, "noisy", 0, 0.4)
    assert torch.equal(noisy_set.tensors[0], s.student.tensors[0])
    assert 0.25 < float((noisy_set.tensors[1] != s.student.tensors[1]).float().mean()) < 0.5
    with pytest.raises(ValueError, match="teacher_n must be in"):
        teacher_training_set(s, "pool", 5000, 0.0)


def _write_cifar100(root, n=6):
    rng = np.random.default_rng(0)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    data = {}
    for split in ("train", "test"):
        images = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[split] = images
        with open(folder / split, "wb") as f:
            pickle.dump({b"data": images, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
    return data


def test_cifar100_reads_the_published_layout(tmp_path):
    raw = _write_cifar100(tmp_path)
    train, test = cifar100_datasets(tmp_path)
    assert len(train) == 6 and len(test) == 6
    x, y = test[2]
    assert x.shape == (3, 32, 32) and int(y) == 2
    expected = (raw["test"][2][1024] / 255.0 - 0.4867) / 0.2565  # green plane, pixel (0, 0)
    assert float(x[1, 0, 0]) == pytest.approx(expected, abs=1e-5)
    torch.manual_seed(0)
    a = train[0][0]
    torch.manual_seed(0)
    assert torch.equal(a, train[0][0])  # augmentation draws from the seeded torch RNG
    with pytest.raises(FileNotFoundError, match=r"cifar100 train files \['train'\] not found"):
        cifar100_datasets(tmp_path / "nothing")
    with pytest.raises(ValueError, match="images must be"):
        CifarDataset(np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2), train=False)


def test_imagenet_layout(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="ImageNet folders"):
        imagenet_datasets(tmp_path)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            (tmp_path / split / wnid).mkdir(parents=True)
            Image.new("RGB", (300, 260), (10, 200, 30)).save(tmp_path / split / wnid / "a.JPEG")
    train, val = imagenet_datasets(tmp_path)
    assert train.classes == ["n01440764", "n01443537"] and val[0][0].shape == (3, 224, 224)


def test_distiller_keeps_the_teacher_frozen():
    teacher = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    d = Distiller(make_mlp([4, 6, 3]), teacher, "rld", {}, steps_per_epoch=2)
    d.train()
    assert d.student.training and not d.teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    out = d(x, y, step=3)
    out["loss"].backward()
    assert all(p.grad is not None for p in d.student.parameters())
    assert d(x).shape == (5, 3)
    with pytest.raises(ValueError, match="needs a teacher"):
        Distiller(make_mlp([4, 3]), None, "kd", {}, 1)


def test_train_small_and_resume(tmp_path):
    cfg = config.preset("tiny", epochs=4, teacher_epochs=5, methods=("ce", "kd", "rld"), seeds=(0, 1))
    run = RunDir(tmp_path)
    res = train(cfg, run)
    assert [(s.method, s.seed) for s in res.students] == [(m, s) for s in (0, 1) for m in ("ce", "kd", "rld")]
    assert 0.0 <= res.teacher.error_on_student_train <= 1.0
    for s in res.students:
        evals = [e["test_acc"] for e in s.history if e["kind"] == "eval"]
        assert len(evals) == 4 and s.best_acc == max(evals) and s.last_acc == evals[-1]
    rows = accuracy_table(res.students)
    kd = [s.best_acc for s in res.students if s.method == "kd"]
    row = next(r for r in rows if r["method"] == "kd")
    assert row["best_mean"] == pytest.approx(statistics.fmean(kd)) and row["best_std"] == pytest.approx(
        statistics.stdev(kd))
    again = train(cfg, run)  # every run resumes from its final checkpoint: same numbers, no new training
    assert [s.best_acc for s in again.students] == [s.best_acc for s in res.students]


def test_sweep_rows_and_summary(tmp_path):
    cfg = config.preset("tiny", epochs=3, teacher_epochs=4, sweep_levels=(0.0, 0.4), sweep_methods=("dkd", "rld"))
    rows = teacher_error_sweep(cfg, RunDir(tmp_path))
    assert {(r["level"], r["method"]) for r in rows} == {(0.0, "dkd"), (0.0, "rld"), (0.4, "dkd"), (0.4, "rld")}
    summary = sweep_summary(rows)
    for s in summary:
        acc = {r["method"]: r["accuracy"] for r in rows if r["level"] == s["level"]}
        assert s["rld_minus_dkd"] == pytest.approx(acc["rld"] - acc["dkd"])
    noisy = [r for r in rows if r["level"] == 0.4][0]["teacher_error"]
    clean = [r for r in rows if r["level"] == 0.0][0]["teacher_error"]
    assert noisy > clean
    with pytest.raises(ValueError, match="digits"):
        teacher_error_sweep(config.preset("full"), RunDir(tmp_path / "x"))


def test_each_method_gets_its_own_ce_weight():
    from kit.rld.experiment import loss_hyper
    from kit.rld.losses import distillation_objective

    cfg = config.preset("tiny")
    s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    ce = torch.nn.functional.cross_entropy(s, y)
    kd = distillation_objective("kd", s, t, y, 1000, **loss_hyper(cfg, "kd"))
    assert kd["loss"].item() == pytest.approx(0.1 * ce.item() + 0.9 * kd["kd"].item(), rel=1e-5)
    la = distillation_objective("la", s, t, y, 1000, **loss_hyper(cfg, "la"))
    assert la["loss"].item() == pytest.approx(la["la"].item(), rel=1e-6)  # LA: the swapped KD term, no CE
    rld = distillation_objective("rld", s, t, y, 1000, **loss_hyper(cfg, "rld"))
    assert rld["loss"].item() == pytest.approx(ce.item() + rld["scd"].item() + 8 * rld["mcd"].item(), rel=1e-5)


def test_sweep_report_compares_rld_with_la():
    from kit.rld.report import sweep_markdown

    rows = [{"level": lv, "teacher_error": e, "teacher_test_acc": 0.9, "method": m, "seed": 0, "accuracy": a}
            for lv, e, accs in ((0.0, 0.01, {"dkd": 0.95, "la": 0.94, "rld": 0.95}),
                                (0.4, 0.45, {"dkd": 0.60, "la": 0.90, "rld": 0.80}))
            for m, a in accs.items()]
    summary = sweep_summary(rows)
    assert [round(r["rld_minus_la"], 6) for r in summary] == [0.01, -0.1]
    md = sweep_markdown(rows)
    assert "RLD − LA (pt)" in md and "| -10.0 |" in md and "RLD − KD (pt)" in md  # KD did not run: a dash
    assert "RLD − LA" not in sweep_markdown([r for r in rows if r["method"] != "la"])
