"""The authors' per-pair recipe (lr rule with aliases, DKD's beta), the logit-standardization recipe, seeded
teachers, ImageNet's V1 teachers and the alpha / beta grid."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from kit.core import RunDir
from kit.rld import config, sweeps
from kit.rld import experiment as exp
from kit.rld.config import RLDConfig
from kit.rld.explore import alpha_beta_grid
from kit.rld.losses import distillation_objective, logit_standardization_hyper
from kit.rld.recipes import CIFAR100_PAIRS, canonical_network, pair_recipe

# (teacher, student) -> (SOLVER.LR, DKD.BETA), typed in by hand from zju-SWJ/RLD configs/cifar100/dkd/*.yaml
# (a config without DKD.BETA uses cfg.py's 8).
AUTHORS_CIFAR = {
    ("resnet56", "resnet20"): (0.05, 2.0),
    ("resnet110", "resnet20"): (0.05, 2.0),
    ("resnet110", "resnet32"): (0.05, 2.0),
    ("resnet32x4", "resnet8x4"): (0.05, 8.0),
    ("resnet32x4", "ShuffleV2"): (0.01, 8.0),
    ("resnet32x4", "wrn_16_2"): (0.05, 8.0),
    ("resnet32x4", "wrn_40_2"): (0.05, 8.0),
    ("vgg13", "vgg8"): (0.05, 6.0),
    ("vgg13", "MobileNetV2"): (0.01, 6.0),
    ("wrn_40_2", "wrn_16_2"): (0.05, 6.0),
    ("wrn_40_2", "wrn_40_1"): (0.05, 6.0),
    ("wrn_40_2", "resnet8x4"): (0.05, 6.0),
    ("wrn_40_2", "MobileNetV2"): (0.01, 6.0),
    ("ResNet50", "MobileNetV2"): (0.01, 8.0),
}


# ---------------------------------------------------------------- lr rule and per-pair table


@pytest.mark.parametrize("student", ["MobileNetV2", "ShuffleV2", "mobile_half", "shufflenet_v2"])
def test_light_students_get_lr_001_under_any_name(student):
    # a pair of the authors' table, and one they never ran: the rule holds for both
    assert config.preset("full", teacher="resnet32x4", student=student).lr == 0.01
    assert config.preset("full", teacher="resnet56", student=student).lr == 0.01
    # a config built directly at lr 0.05 still trains the student at 0.01 (the authors assert it)
    assert exp.student_lr(RLDConfig(dataset="cifar100", student=student, lr=0.05)) == 0.01
    assert exp.student_lr(RLDConfig(dataset="imagenet", student=student, lr=0.2)) == 0.2  # CIFAR-100 only


def test_other_students_keep_lr_005():
    for student in ("resnet8x4", "vgg8", "wrn_16_2", "resnet20"):
        assert config.preset("full", teacher="resnet32x4", student=student).lr == 0.05
        assert exp.student_lr(config.preset("full", teacher="resnet32x4", student=student)) == 0.05
    assert config.preset("full", student="MobileNetV2", lr=0.003).lr == 0.003  # an explicit lr is kept


def test_train_student_uses_the_lr_of_the_rule_for_an_alias(monkeypatch, tmp_path):
    seen = {}

    def fake_fit(cfg, model, params, data, epochs, lr, run, loss_fn, eval_fn, callbacks, seed, desc):
        seen["lr"] = lr
        return SimpleNamespace(model=model, seconds=0.0, history=[{"kind": "eval", "step": 1, "test_acc": 0.5}])

    monkeypatch.setattr(exp, "_sgd_fit", fake_fit)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    data = exp.SeriesData(TensorDataset(x, y), TensorDataset(x, y), TensorDataset(x, y), 100)
    cfg = RLDConfig(dataset="cifar100", teacher="resnet20", student="MobileNetV2", lr=0.05, device="cpu")
    exp.train_student(cfg, RunDir(tmp_path), "ce", 0, None, data)
    assert seen["lr"] == 0.01


@pytest.mark.parametrize(("teacher", "student"), list(AUTHORS_CIFAR))
def test_per_pair_lr_and_dkd_beta_match_the_authors_configs(teacher, student):
    lr, beta = AUTHORS_CIFAR[(teacher, student)]
    cfg = config.preset("full", teacher=teacher, student=student)
    assert (cfg.lr, cfg.dkd_beta) == (lr, beta)
    recipe = pair_recipe(teacher, student)
    assert recipe is not None and (recipe.lr, recipe.dkd_beta) == (lr, beta)
    assert recipe.rld_alpha is None and recipe.rld_beta is None  # TODO(paper): not in the authors' repository
    assert (cfg.alpha, cfg.beta) == (1.0, 8.0)  # RLD: cfg.py's defaults


def test_the_table_holds_exactly_the_authors_pairs():
    want = {(canonical_network(t), canonical_network(s)) for t, s in AUTHORS_CIFAR}
    assert set(CIFAR100_PAIRS) == want
    assert pair_recipe("resnet56", "vgg8") is None


@pytest.mark.parametrize(("teacher", "student", "beta"), [
    ("resnet56", "resnet20", 2.0), ("vgg13", "vgg8", 6.0), ("wrn_40_2", "wrn_16_2", 6.0),
    ("resnet32x4", "resnet8x4", 8.0)])
def test_dkd_trains_with_the_pairs_beta_and_rld_with_its_own(teacher, student, beta):
    cfg = config.preset("full", teacher=teacher, student=student)
    dkd, rld = exp.loss_hyper(cfg, "dkd"), exp.loss_hyper(cfg, "rld")
    assert (dkd["alpha"], dkd["beta"]) == (1.0, beta)
    assert (rld["alpha"], rld["beta"]) == (1.0, 8.0)
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 100), torch.randn(6, 100), torch.arange(6)
    out = distillation_objective("dkd", s, t, y, 1000, **dkd)  # past the warm-up
    want = torch.nn.functional.cross_entropy(s, y) + out["tckd"] + beta * out["nckd"]
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    assert config.preset("full", teacher=teacher, student=student, dkd_beta=3.0).dkd_beta == 3.0  # override wins


def test_imagenet_preset_reads_its_pair():
    r34 = config.preset("imagenet")
    assert (r34.teacher, r34.student, r34.lr, r34.batch_size, r34.epochs, r34.temperature, r34.warmup) == (
        "resnet34", "resnet18", 0.2, 512, 100, 1.0, 1)
    assert (r34.dkd_beta, r34.beta, r34.kd_ce_weight, r34.kd_weight) == (0.5, 0.5, 1.0, 0.5)
    assert [round(m * r34.epochs) for m in r34.lr_milestones] == [30, 60, 90]
    mv1 = config.preset("imagenet", teacher="ResNet50", student="MobileNetV1")
    assert (mv1.dkd_beta, mv1.beta, mv1.alpha, mv1.kd_ce_weight, mv1.kd_weight) == (2.0, 2.0, 1.0, 0.5, 0.5)
    assert r34.teacher_pretrained and r34.teacher_error_samples == 10_000


# ---------------------------------------------------------------- logit standardization, the authors' recipe


def _zscore(z):
    return (z - z.mean()) / (1e-7 + z.std(ddof=1))


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def test_logit_standardization_sets_tau_2_and_scales_weights_by_9():
    base = {"alpha": 1.0, "beta": 6.0, "temperature": 4.0, "kd_ce_weight": 0.1, "kd_weight": 0.9}
    dkd = logit_standardization_hyper("dkd", base)
    assert (dkd["alpha"], dkd["beta"], dkd["temperature"], dkd["logit_standardization"]) == (9.0, 54.0, 2.0, True)
    rld = logit_standardization_hyper("rld", base | {"beta": 8.0, "alpha_temperature": 1.0})
    assert (rld["alpha"], rld["beta"], rld["temperature"], rld["alpha_temperature"]) == (9.0, 72.0, 2.0, 2.0)
    kd = logit_standardization_hyper("kd", base)
    assert (kd["kd_weight"], kd["kd_ce_weight"], kd["temperature"]) == (9.0, 0.1, 2.0)  # set to 9, not 0.9 x 9
    la = logit_standardization_hyper("la", base)
    assert (la["temperature"], la["kd_weight"], la["alpha"], la["beta"]) == (2.0, 0.9, 1.0, 6.0)
    rc = logit_standardization_hyper("rc", base)
    assert (rc["rc_kd_weight"], rc["rc_weight"]) == pytest.approx((9.0, 0.9))
    assert logit_standardization_hyper("ce", base)["logit_standardization"] is False
    with pytest.raises(ValueError, match="'lr'"):
        logit_standardization_hyper("lr", base)


def test_logit_standardization_recipe_against_a_hand_computation():
    s = np.array([[2.0, -1.0, 0.5, 3.0, -2.0], [0.1, 0.4, -0.3, 1.2, 0.0]])
    t = np.array([[1.0, 0.0, 4.0, 2.0, -1.0], [3.0, -2.0, 0.5, 0.2, 1.0]])
    y = np.array([3, 0])
    cfg = config.preset("full", teacher="vgg13", student="vgg8", logit_standardization=True)
    args = (torch.tensor(s), torch.tensor(t), torch.tensor(y))
    ce = float(np.mean([-np.log(_softmax(s[i])[y[i]]) for i in range(2)]))  # CE on the raw logits
    tckd, nckd, kd = [], [], []
    for i in range(2):
        ps, pt = _softmax(_zscore(s[i]) / 2.0), _softmax(_zscore(t[i]) / 2.0)  # tau 2 after z-scoring
        yi = y[i]
        tckd.append(4.0 * _kl(np.array([pt[yi], 1.0 - pt[yi]]), np.array([ps[yi], 1.0 - ps[yi]])))
        rest = [c for c in range(5) if c != yi]
        nckd.append(4.0 * _kl(pt[rest] / pt[rest].sum(), ps[rest] / ps[rest].sum()))
        kd.append(4.0 * _kl(pt, ps))
    # vgg13 -> vgg8: DKD beta 6, so with the recipe alpha 1 x 9 and beta 6 x 9
    dkd = distillation_objective("dkd", *args, 1000, **exp.loss_hyper(cfg, "dkd"))
    assert dkd["loss"].item() == pytest.approx(ce + 9.0 * np.mean(tckd) + 54.0 * np.mean(nckd), rel=1e-6)
    out_kd = distillation_objective("kd", *args, 1000, **exp.loss_hyper(cfg, "kd"))
    assert out_kd["loss"].item() == pytest.approx(0.1 * ce + 9.0 * np.mean(kd), rel=1e-6)
    # without the flag, nothing changes: tau 4, DKD beta 6, no z-scoring
    plain = exp.loss_hyper(config.preset("full", teacher="vgg13", student="vgg8"), "dkd")
    assert (plain["temperature"], plain["beta"], plain["logit_standardization"]) == (4.0, 6.0, False)


# ---------------------------------------------------------------- seeded teachers


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_initial_weights_follow_the_seed():
    cfg0 = RLDConfig(dataset="cifar100", teacher="resnet20", seed=0)
    first = _state(exp.build_teacher(cfg0, 100))
    torch.manual_seed(123)  # whatever ran before must not matter
    torch.rand(1000)
    again = _state(exp.build_teacher(cfg0, 100))
    other = _state(exp.build_teacher(RLDConfig(dataset="cifar100", teacher="resnet20", seed=1), 100))
    assert _same(first, again)
    assert not _same(first, other)


def test_train_teacher_on_cifar_starts_from_the_seeded_init(monkeypatch, tmp_path):
    starts = []

    def fake_fit(cfg, model, params, data, epochs, lr, run, loss_fn, eval_fn, callbacks, seed, desc):
        starts.append((_state(model), lr))
        return SimpleNamespace(model=model)

    monkeypatch.setattr(exp, "_sgd_fit", fake_fit)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    data = exp.SeriesData(TensorDataset(x, y), TensorDataset(x, y), TensorDataset(x, y), 100)
    for seed in (0, 0, 1):
        torch.manual_seed(1000 + len(starts))  # a different global RNG state before every call
        cfg = RLDConfig(dataset="cifar100", teacher="resnet20", seed=seed, device="cpu", teacher_lr=0.05)
        exp.train_teacher(cfg, RunDir(tmp_path / str(len(starts))), data)
    assert _same(starts[0][0], starts[1][0]) and not _same(starts[0][0], starts[2][0])
    assert starts[0][1] == 0.05  # the teacher's own lr, not the student's


def test_teacher_error_on_a_seeded_subset():
    data = TensorDataset(torch.arange(50.0)[:, None], torch.zeros(50, dtype=torch.long))
    cfg = RLDConfig(teacher_error_samples=10, seed=3)
    a, b = exp.teacher_error_subset(cfg, data), exp.teacher_error_subset(cfg, data)
    assert len(a) == 10 and list(a.indices) == list(b.indices) and len(set(a.indices)) == 10
    assert exp.teacher_error_subset(RLDConfig(), data) is data
    with pytest.raises(ValueError, match="teacher_error_samples"):
        RLDConfig(teacher_error_samples=0)


# ---------------------------------------------------------------- ImageNet teachers


def test_imagenet_teachers_are_torchvision_v1(monkeypatch):
    import torchvision

    from kit.rld.models import imagenet_model

    calls = []
    for name in ("resnet34", "resnet50"):
        monkeypatch.setattr(torchvision.models, name, lambda _n=name, **kw: calls.append((_n, kw)) or _n)
    assert imagenet_model("ResNet50", pretrained=True) == "resnet50"  # the authors' name resolves
    imagenet_model("resnet34", pretrained=True)
    assert calls == [("resnet50", {"weights": "IMAGENET1K_V1"}), ("resnet34", {"weights": "IMAGENET1K_V1"})]


# ---------------------------------------------------------------- alpha / beta grid


def test_alpha_beta_sweep_feeds_the_heatmap_grid(tmp_path):
    cfg = config.preset("tiny", epochs=2, teacher_epochs=2)
    run = RunDir(tmp_path)
    grid = sweeps.alpha_beta_sweep(cfg, run, alphas=(1.0, 2.0), betas=(8.0,), seeds=(0,))
    assert set(grid) == {(1.0, 8.0), (2.0, 8.0)} and all(len(v) == 1 and 0 <= v[0] <= 1 for v in grid.values())
    alphas, betas, acc = alpha_beta_grid(grid)
    assert acc.shape == (2, 1) and not any(math.isnan(v) for v in acc.ravel())
    assert {(r["alpha"], r["beta"]) for r in run.metrics["alpha_beta"]} == set(grid)
    with pytest.raises(ValueError, match="'rld' or 'dkd'"):
        sweeps.alpha_beta_sweep(cfg, run, method="kd")
    with pytest.raises(ValueError, match="at least one"):
        sweeps.alpha_beta_sweep(cfg, run, alphas=())
