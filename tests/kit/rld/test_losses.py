"""Distillation losses against independent numpy loops, hand formulas and autograd properties."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from kit.rld.losses import (
    METHODS,
    DistillHyper,
    distillation_objective,
    dkd_loss,
    dkd_parts,
    kd_loss,
    la_loss,
    lr_loss,
    lr_parts,
    mcd_loss,
    rc_loss,
    rld_loss,
    rld_mask,
    rld_parts,
    scd_loss,
    standardize_logits,
    swap_teacher_logits,
    warmup_factor,
)

torch.set_num_threads(1)

B, C = 7, 5


# ---------------------------------------------------------------- independent numpy references


def np_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def np_kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def ref_kd(s, t, tau):
    return np.mean([tau**2 * np_kl(np_softmax(t[i] / tau), np_softmax(s[i] / tau)) for i in range(len(s))])


def ref_tckd_nckd(s, t, y, tau):
    tckd, nckd = [], []
    for i in range(len(s)):
        pt, ps = np_softmax(t[i] / tau), np_softmax(s[i] / tau)
        tckd.append(tau**2 * np_kl([pt[y[i]], 1 - pt[y[i]]], [ps[y[i]], 1 - ps[y[i]]]))
        keep = [c for c in range(s.shape[1]) if c != y[i]]
        nckd.append(tau**2 * np_kl(np_softmax(t[i, keep] / tau), np_softmax(s[i, keep] / tau)))
    return np.mean(tckd), np.mean(nckd)


def ref_scd(s, t, y, tau_a):
    out = []
    for i in range(len(s)):
        m = int(np.argmax(t[i]))
        pt, ps = np_softmax(t[i] / tau_a), np_softmax(s[i] / tau_a)
        out.append(tau_a**2 * np_kl([pt[m], 1 - pt[m]], [ps[y[i]], 1 - ps[y[i]]]))
    return np.mean(out)


def ref_mcd(s, t, y, tau):
    out = []
    for i in range(len(s)):
        keep = [c for c in range(s.shape[1]) if t[i, c] < t[i, y[i]]]  # strictly below the label
        out.append(
            0.0 if not keep else tau**2 * np_kl(np_softmax(t[i, keep] / tau), np_softmax(s[i, keep] / tau))
        )
    return np.mean(out)


def ref_swap(t, y):
    out = t.copy()
    for i in range(len(t)):
        m = int(np.argmax(t[i]))
        out[i, m], out[i, y[i]] = t[i, y[i]], t[i, m]
    return out


def ref_ce(s, y):
    return np.mean([-math.log(np_softmax(s[i])[y[i]]) for i in range(len(s))])


def ref_ls(z, eps=1e-7):
    return np.stack([(row - row.mean()) / (eps + row.std(ddof=1)) for row in z])


def ref_lr(s, t, y):
    right = [i for i in range(len(s)) if int(np.argmax(t[i])) == y[i]]
    wrong = [i for i in range(len(s)) if i not in right]
    ce = np.mean([-math.log(np_softmax(s[i])[y[i]]) for i in right]) if right else 0.0
    mse_r = np.mean([(s[i] - t[i]) ** 2 for i in right]) if right else 0.0
    errs = []
    for i in wrong:
        pt = np_softmax(t[i])
        e = 0.8 / (pt.max() - pt[y[i]] + 1)
        target = e * pt + (1 - e) * np.eye(s.shape[1])[y[i]]
        errs.append((np_softmax(s[i]) - target) ** 2)
    return ce, mse_r, (np.mean(errs) if errs else 0.0)


def ref_rc(s, y, tau):
    r = s.copy()
    for i in range(len(s)):
        r[i, y[i]] = s[i, y[i]] + s[i].max()
    return ref_kd(s, r, tau)


# ---------------------------------------------------------------- data


def _data(seed=0):
    """Return numpy student/teacher logits [7, 5] and labels: rows 0-2 teacher right, 3-6 wrong, 6 y last."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 2, (B, C))
    t = rng.normal(0, 3, (B, C))
    order = np.argsort(-t, axis=1)  # classes from the teacher's top to its bottom
    ranks = [0, 0, 0, 1, 2, 3, 4]  # teacher's rank of the label in each row
    y = np.array([order[i, r] for i, r in enumerate(ranks)])
    return s, t, y


def _torch(*arrays, grad=False):
    out = [torch.tensor(a, dtype=torch.float64 if a.dtype.kind == "f" else torch.int64) for a in arrays]
    if grad:
        out[0].requires_grad_(True)
    return out


# ---------------------------------------------------------------- each loss vs numpy


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_kd_matches_numpy(tau):
    s, t, _ = _data()
    got = kd_loss(*_torch(s, t), temperature=tau)
    assert got.shape == () and got.dtype == torch.float64
    assert got.item() == pytest.approx(ref_kd(s, t, tau), rel=1e-12)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_dkd_parts_match_numpy(tau):
    s, t, y = _data(1)
    tckd, nckd = dkd_parts(*_torch(s, t, y), temperature=tau)
    ref_t, ref_n = ref_tckd_nckd(s, t, y, tau)
    assert tckd.item() == pytest.approx(ref_t, rel=1e-10)
    assert nckd.item() == pytest.approx(ref_n, rel=1e-10)
    total = dkd_loss(*_torch(s, t, y), alpha=0.5, beta=3.0, temperature=tau)
    assert total.item() == pytest.approx(0.5 * ref_t + 3.0 * ref_n, rel=1e-10)


@pytest.mark.parametrize("tau_a", [1.0, 4.0])
def test_scd_matches_numpy(tau_a):
    s, t, y = _data(2)
    got = scd_loss(*_torch(s, t, y), alpha_temperature=tau_a)
    assert got.item() == pytest.approx(ref_scd(s, t, y, tau_a), rel=1e-10)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_mcd_matches_numpy(tau):
    s, t, y = _data(3)
    got = mcd_loss(*_torch(s, t, y), temperature=tau)
    assert got.item() == pytest.approx(ref_mcd(s, t, y, tau), rel=1e-10)


def test_rld_loss_is_weighted_sum_of_numpy_parts():
    s, t, y = _data(4)
    got = rld_loss(*_torch(s, t, y), alpha=2.0, beta=5.0, temperature=3.0, alpha_temperature=1.5)
    want = 2.0 * ref_scd(s, t, y, 1.5) + 5.0 * ref_mcd(s, t, y, 3.0)
    assert got.item() == pytest.approx(want, rel=1e-10)
    scd, mcd = rld_parts(*_torch(s, t, y), temperature=3.0, alpha_temperature=1.5)
    assert scd.item() == pytest.approx(ref_scd(s, t, y, 1.5), rel=1e-10)
    assert mcd.item() == pytest.approx(ref_mcd(s, t, y, 3.0), rel=1e-10)


def test_scd_hand_computed_five_classes():
    # teacher top class m = 0, label y = 1, tau_a = 1:
    # p^t_m = e^3 / (e^3 + e + 1 + 1 + e^-1) = 0.797941274,  p^s_y = e^2 / (e + e^2 + 1 + e^-1 + e^0.5) = 0.563021232
    # SCD = 0.797941 ln(0.797941/0.563021) + 0.202059 ln(0.202059/0.436979) = 0.122403021
    zs = torch.tensor([[1.0, 2.0, 0.0, -1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    zt = torch.tensor([[3.0, 1.0, 0.0, 0.0, -1.0]], dtype=torch.float64)
    loss = scd_loss(zs, zt, torch.tensor([1]), alpha_temperature=1.0)
    print(f"SCD = {loss.item():.9f} (hand: 0.122403021)")
    assert loss.item() == pytest.approx(0.122403021, abs=1e-9)
    loss.backward()
    # dL/dz^s_y = tau_a (p^s_y - p^t_m) = 0.563021232 - 0.797941274
    assert zs.grad[0, 1].item() == pytest.approx(0.563021232 - 0.797941274, abs=1e-9)


def test_scd_gradient_on_true_class_is_hand_formula():
    s, t, y = _data(5)
    tau_a = 2.5
    zs, zt, yt = _torch(s, t, y, grad=True)
    scd_loss(zs, zt, yt, alpha_temperature=tau_a).backward()
    for i in range(B):
        ps_y = np_softmax(s[i] / tau_a)[y[i]]
        pt_m = np_softmax(t[i] / tau_a).max()
        assert zs.grad[i, y[i]].item() == pytest.approx(tau_a * (ps_y - pt_m) / B, rel=1e-9, abs=1e-15)


# ---------------------------------------------------------------- RLD structure


@pytest.mark.parametrize("alpha,beta,tau", [(1.0, 8.0, 4.0), (0.3, 2.0, 1.0)])
def test_rld_equals_dkd_when_teacher_always_right(alpha, beta, tau):
    s, t, _ = _data(6)
    y = t.argmax(axis=1)
    args = _torch(s, t, y)
    rld = rld_loss(*args, alpha=alpha, beta=beta, temperature=tau, alpha_temperature=tau)
    dkd = dkd_loss(*args, alpha=alpha, beta=beta, temperature=tau)
    assert rld.item() == pytest.approx(dkd.item(), rel=1e-12)
    assert rld.item() > 0.1
    # with a wrong teacher the two differ
    s, t, y = _data(6)
    args = _torch(s, t, y)
    assert abs(rld_loss(*args).item() - dkd_loss(*args).item()) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mcd_exactly_zero_when_label_ranked_last(dtype):
    zt = torch.tensor([[3.0, 1.0, 0.5, 2.0, -4.0], [0.0, 1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    zs = torch.randn(2, 5, dtype=dtype, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    y = torch.tensor([4, 0])
    assert rld_mask(zt, y).all()
    loss = mcd_loss(zs, zt, y)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(zs.grad, torch.zeros_like(zs))


def test_mask_includes_ties_and_is_teacher_only():
    zt = torch.tensor([[2.0, 5.0, 5.0, 1.0, 5.0], [1.0, 1.0, 0.0, 1.0, -1.0], [0.0, 3.0, 1.0, 2.0, 1.0]])
    y = torch.tensor([1, 0, 2])
    want = [[c for c in range(5) if zt[i, c] >= zt[i, y[i]]] for i in range(3)]
    mask = rld_mask(zt, y)
    assert mask.dtype == torch.bool and mask.shape == (3, 5)
    for i in range(3):
        assert torch.nonzero(mask[i]).flatten().tolist() == want[i]
    assert mask[0].tolist() == [False, True, True, False, True]  # tied classes 2 and 4 enter the mask
    # the MCD of the tied example matches the reference that keeps only the strictly lower classes
    zs = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = mcd_loss(zs, zt.double(), y)
    assert got.item() == pytest.approx(ref_mcd(zs.numpy(), zt.double().numpy(), y.numpy(), 4.0), rel=1e-10)


def test_masked_classes_get_zero_mcd_gradient():
    s, t, y = _data(7)
    zs, zt, yt = _torch(s, t, y, grad=True)
    mcd_loss(zs, zt, yt).backward()
    mask = rld_mask(zt, yt)
    assert torch.equal(zs.grad[mask], torch.zeros(int(mask.sum()), dtype=torch.float64))
    kept = (~mask).sum(1)
    for i in range(B):
        if kept[i] >= 2:  # a free class can still move: its gradient is non-zero
            assert (zs.grad[i][~mask[i]].abs() > 0).all()


def test_teacher_gets_no_gradient():
    s, t, y = _data(8)
    zs, zt, yt = _torch(s, t, y, grad=True)
    zt.requires_grad_(True)
    out = distillation_objective("rld", zs, zt, yt, epoch=30)
    out["loss"].backward()
    assert zt.grad is None and zs.grad is not None


# ---------------------------------------------------------------- baselines and LS


def test_swap_and_la_match_numpy():
    s, t, y = _data(9)
    swapped = swap_teacher_logits(*_torch(t, y))
    np.testing.assert_array_equal(swapped.numpy(), ref_swap(t, y))
    np.testing.assert_array_equal(swapped.numpy()[:3], t[:3])  # teacher right: unchanged
    assert (swapped.argmax(1).numpy() == y).all()
    got = la_loss(*_torch(s, t, y), temperature=4.0)
    assert got.item() == pytest.approx(ref_kd(s, ref_swap(t, y), 4.0), rel=1e-12)


def test_standardize_matches_numpy():
    z = np.random.default_rng(10).normal(3, 5, (B, C))
    np.testing.assert_allclose(standardize_logits(torch.tensor(z)).numpy(), ref_ls(z), rtol=1e-12)
    const = standardize_logits(torch.full((2, 4), 7.0, dtype=torch.float64))
    assert torch.equal(const, torch.zeros(2, 4, dtype=torch.float64))


def test_lr_and_rc_match_numpy():
    s, t, y = _data(11)
    ce, mse_r, mse_w = lr_parts(*_torch(s, t, y))
    ref = ref_lr(s, t, y)
    for got, want in zip((ce, mse_r, mse_w), ref):
        assert got.item() == pytest.approx(want, rel=1e-10)
    assert lr_loss(*_torch(s, t, y)).item() == pytest.approx(ref[0] + 4 * ref[1] + ref[2], rel=1e-10)
    # all-right teacher: the wrong-sample term is 0
    y_right = t.argmax(axis=1)
    assert lr_parts(*_torch(s, t, y_right))[2].item() == 0.0
    zs, yt = _torch(s, y)
    assert rc_loss(zs, yt, temperature=4.0).item() == pytest.approx(ref_rc(s, y, 4.0), rel=1e-10)


# ---------------------------------------------------------------- objective


def test_warmup_factor():
    assert [warmup_factor(e, 20) for e in (1, 10, 20, 40)] == [0.05, 0.5, 1.0, 1.0]
    assert warmup_factor(1, 0) == 1.0
    with pytest.raises(ValueError, match="epoch is counted from 1"):
        warmup_factor(0, 20)


def test_objective_matches_numpy_for_every_method():
    s, t, y = _data(12)
    args = _torch(s, t, y)
    ce = ref_ce(s, y)
    warm = 5 / 20
    tckd, nckd = ref_tckd_nckd(s, t, y, 4.0)
    lr = ref_lr(s, t, y)
    want = {
        "ce": ce,
        "kd": 0.1 * ce + 0.9 * ref_kd(s, t, 4.0),
        "dkd": ce + warm * (1.0 * tckd + 8.0 * nckd),
        "rld": ce + warm * (1.0 * ref_scd(s, t, y, 4.0) + 8.0 * ref_mcd(s, t, y, 4.0)),
        "la": ref_kd(s, ref_swap(t, y), 4.0),
        "lr": lr[0] + 4 * lr[1] + lr[2],
        "rc": ce + ref_kd(s, t, 4.0) + 0.1 * ref_rc(s, y, 4.0),
    }
    assert set(want) == set(METHODS)
    for method in METHODS:
        out = distillation_objective(method, *args, epoch=5)
        assert out["loss"].shape == () and out["loss"].requires_grad is False  # no grad-requiring inputs
        assert out["loss"].item() == pytest.approx(want[method], rel=1e-10), method
    parts = distillation_objective("rld", *args, epoch=5)
    assert set(parts) == {"loss", "ce", "scd", "mcd"}
    assert parts["mcd"].item() == pytest.approx(ref_mcd(s, t, y, 4.0), rel=1e-10)  # unweighted component
    assert set(distillation_objective("dkd", *args, epoch=5)) == {"loss", "ce", "tckd", "nckd"}
    # alpha_temperature=None is tau_a = tau (--same-t); an explicit one changes only the SCD
    sep = distillation_objective("rld", *args, epoch=50, temperature=2.0, alpha_temperature=1.0)
    assert sep["loss"].item() == pytest.approx(
        ce + ref_scd(s, t, y, 1.0) + 8 * ref_mcd(s, t, y, 2.0), rel=1e-10
    )
    # an explicit ce_weight overrides every method's own CE weight
    la_ce = distillation_objective("la", *args, epoch=5, ce_weight=0.5)
    assert la_ce["loss"].item() == pytest.approx(0.5 * ce + want["la"], rel=1e-10)


def test_objective_with_logit_standardization():
    s, t, y = _data(13)
    out = distillation_objective(
        "rld", *_torch(s, t, y), epoch=40, temperature=2.0, logit_standardization=True
    )
    ss, ts = ref_ls(s), ref_ls(t)
    want = ref_ce(s, y) + ref_scd(ss, ts, y, 2.0) + 8.0 * ref_mcd(ss, ts, y, 2.0)  # CE on the raw logits
    assert out["loss"].item() == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="not defined for method 'lr'"):
        distillation_objective("lr", *_torch(s, t, y), epoch=1, logit_standardization=True)


def test_distill_hyper_is_frozen_and_forwards():
    s, t, y = _data(14)
    hyper = DistillHyper(beta=2.0, temperature=3.0)
    got = hyper.objective("dkd", *_torch(s, t, y), 7)
    want = distillation_objective("dkd", *_torch(s, t, y), 7, beta=2.0, temperature=3.0)
    assert got["loss"].item() == want["loss"].item()
    with pytest.raises(dataclasses.FrozenInstanceError):
        hyper.beta = 1.0
    with pytest.raises(ValueError, match="temperature must be a positive"):
        DistillHyper(temperature=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_for_extreme_logits(dtype):
    zs = torch.tensor(
        [[1e4, -1e4, 0.0, 5.0, -1e4], [-1e4, -1e4, -1e4, -1e4, 1e4], [0.0, 1e4, 1e4, -1e4, 3.0]]
    )
    zt = torch.tensor([[-1e4, 1e4, 2.0, -1e4, 0.0], [1e4, -1e4, 0.0, 1.0, -1e4], [1e4, 1e4, -1e4, 0.0, 2.0]])
    y = torch.tensor([0, 4, 3])  # student wrong with certainty, teacher wrong/right, label ranked last
    for method in METHODS:
        for ls in (False, True) if method != "lr" else (False,):
            s = zs.to(dtype).requires_grad_(True)
            out = distillation_objective(method, s, zt.to(dtype), y, epoch=30, logit_standardization=ls)
            out["loss"].backward()
            assert all(torch.isfinite(v) for v in out.values()), (method, ls)
            assert torch.isfinite(s.grad).all(), (method, ls)
    assert (
        rld_loss(zs.to(dtype), zt.to(dtype), y).item() > 1e3
    )  # finite yet large: a confidently wrong student


# ---------------------------------------------------------------- bad input


def test_unknown_method_lists_methods():
    s, t, y = _torch(*_data())
    with pytest.raises(ValueError, match=r"method must be one of \('ce', 'kd'"):
        distillation_objective("fitnet", s, t, y, epoch=1)
    with pytest.raises(ValueError, match="logits_teacher is required"):
        distillation_objective("kd", s, None, y, epoch=1)
    assert distillation_objective("ce", s, None, y, epoch=1)["loss"].item() == pytest.approx(
        ref_ce(*_data()[::2])
    )


_S = torch.zeros(4, 3)


@pytest.mark.parametrize(
    "s,t,y,match",
    [
        (torch.zeros(4), _S, torch.zeros(4, dtype=torch.long), "logits_student must be 2-D"),
        (_S, torch.zeros(4, 3, 1), torch.zeros(4, dtype=torch.long), "logits_teacher must be 2-D"),
        (_S, torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), "must have the same shape"),
        (_S, _S, torch.tensor([0, 1, 2, 3]), r"target must lie in \[0, 3\), got values in \[0, 3\]"),
        (_S, _S, torch.tensor([0, -1, 2, 0]), r"target must lie in \[0, 3\)"),
        (_S, _S, torch.zeros(3, dtype=torch.long), "target has 3 entries but the logits have batch size 4"),
        (_S, _S, torch.zeros(4), "target must have an integer dtype"),
        (_S, _S, torch.zeros(4, dtype=torch.bool), "target must have an integer dtype"),
        (_S, _S, torch.zeros(4, 1, dtype=torch.long), "target must be 1-D"),
        (torch.full((4, 3), float("nan")), _S, torch.zeros(4, dtype=torch.long), "NaN or infinite"),
        (_S.long(), _S, torch.zeros(4, dtype=torch.long), "floating-point"),
        (
            torch.zeros(4, 1),
            torch.zeros(4, 1),
            torch.zeros(4, dtype=torch.long),
            "at least 1 row and 2 classes",
        ),
    ],
)
def test_bad_input_raises(s, t, y, match):
    for fn in (dkd_loss, rld_loss, scd_loss, mcd_loss, la_loss, lr_loss):
        with pytest.raises(ValueError, match=match):
            fn(s, t, y)
    with pytest.raises(ValueError, match=match):
        distillation_objective("rld", s, t, y, epoch=1)


def test_bad_hyper_parameters_raise():
    s, t, y = _torch(*_data())
    with pytest.raises(ValueError, match="temperature must be a positive finite number, got 0"):
        kd_loss(s, t, temperature=0)
    with pytest.raises(ValueError, match="alpha_temperature must be a positive"):
        scd_loss(s, t, y, alpha_temperature=-1.0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        rld_loss(s, t, y, beta=float("nan"))
    with pytest.raises(ValueError, match="epoch is counted from 1"):
        distillation_objective("dkd", s, t, y, epoch=0)
