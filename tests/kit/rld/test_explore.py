"""kit.rld.explore against hand formulas: targets in numpy, per-class gradients in closed form, cosines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kit.rld import explore as ex

torch.set_num_threads(1)

WRONG, RIGHT = ex.PRESET_WRONG_TEACHER, ex.PRESET_RIGHT_TEACHER


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def renorm(z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """softmax over the kept classes, 0 elsewhere (naive loop)."""
    out = np.zeros_like(z)
    total = sum(math.exp(z[c]) for c in range(z.size) if keep[c])
    for c in range(z.size):
        if keep[c]:
            out[c] = math.exp(z[c]) / total
    return out


# --- targets -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau,tau_a", [(4.0, 4.0), (2.0, 1.0)])
def test_method_targets_match_hand_computation(tau, tau_a):
    t, y = np.array(WRONG["teacher_logits"]), WRONG["label"]
    v = ex.method_targets(t, y, tau, tau_a)
    np.testing.assert_allclose(v["teacher"], softmax(t), atol=1e-12)
    np.testing.assert_allclose(v["kd"], softmax(t / tau), atol=1e-12)
    assert v["top_class"] == 2 and v["teacher_right"] is False
    swapped = t.copy()
    swapped[0], swapped[2] = t[2], t[0]  # fox (top, 4.0) <-> cat (true, 3.0)
    np.testing.assert_allclose(v["la_logits"], swapped)
    np.testing.assert_allclose(v["la"], softmax(swapped / tau), atol=1e-12)
    p = softmax(t / tau)
    np.testing.assert_allclose(v["dkd_binary"], [p[y], 1 - p[y]], atol=1e-12)
    np.testing.assert_allclose(v["dkd_nontarget"], renorm(t / tau, np.arange(5) != y), atol=1e-12)
    pa = softmax(t / tau_a)
    np.testing.assert_allclose(v["scd_binary"], [pa.max(), 1 - pa.max()], atol=1e-12)
    assert v["true_class_target"] == pytest.approx({"CE": 1.0, "DKD": p[y], "RLD": pa[2]})
    np.testing.assert_array_equal(v["mask"], [True, False, True, False, False])
    np.testing.assert_allclose(v["mcd"], renorm(t / tau, ~v["mask"]), atol=1e-12)
    assert v["mcd"][~v["mask"]].sum() == pytest.approx(1.0)


def test_targets_mask_ties_and_label_ranked_last():
    t = np.array([1.0, 3.0, 1.0, 0.5])
    v = ex.method_targets(t, 0, 4.0, 4.0)  # class 2 ties with y: masked (>=)
    np.testing.assert_array_equal(v["mask"], [True, True, True, False])
    np.testing.assert_allclose(v["mcd"], [0, 0, 0, 1.0])
    last = ex.method_targets(t, 3, 4.0, 4.0)  # y ranked last: every class masked, nothing passed on
    assert last["mask"].all()
    np.testing.assert_array_equal(last["mcd"], np.zeros(4))
    assert np.isfinite(np.concatenate([np.ravel(x) for x in last.values() if isinstance(x, np.ndarray)])).all()


def test_right_teacher_rld_targets_equal_dkd_targets():
    v = ex.method_targets(RIGHT["teacher_logits"], RIGHT["label"], 4.0, 4.0)
    assert v["teacher_right"]
    np.testing.assert_allclose(v["scd_binary"], v["dkd_binary"])
    np.testing.assert_allclose(v["mcd"], v["dkd_nontarget"])
    np.testing.assert_allclose(v["la"], v["kd"])


# --- gradients ---------------------------------------------------------------------------------------------
def hand_gradients(s, t, y, tau, tau_a, alpha, beta):
    """Closed forms of dL/dz^s: CE p - e_y; KD tau (q^s - q^t); binary KL (TCKD / SCD)
    tau (p_y - target)(e_y - p) / (1 - p_y); renormalised KL (NCKD / MCD) tau (p~^s - p~^t) on kept classes."""
    C = s.size
    e_y = np.eye(C)[y]
    swap = t.copy()
    m = int(np.argmax(t))
    swap[m], swap[y] = t[y], t[m]

    def binary(target, temp):
        p = softmax(s / temp)
        return temp * (p[y] - target) * (e_y - p) / (1 - p[y])

    def masked(keep):
        return tau * (renorm(s / tau, keep) - renorm(t / tau, keep))

    mask = t >= t[y]
    g = {
        "CE": softmax(s) - e_y,
        "KD": tau * (softmax(s / tau) - softmax(t / tau)),
        "LA": tau * (softmax(s / tau) - softmax(swap / tau)),
        "TCKD": alpha * binary(softmax(t / tau)[y], tau),
        "NCKD": beta * masked(np.arange(C) != y),
        "SCD": alpha * binary(softmax(t / tau_a)[m], tau_a),
        "MCD": beta * (masked(~mask) if not mask.all() else np.zeros(C)),
    }
    g["DKD"] = g["TCKD"] + g["NCKD"]
    g["RLD"] = g["SCD"] + g["MCD"]
    return g


@pytest.mark.parametrize("preset", [WRONG, RIGHT])
def test_per_class_gradients_match_closed_forms(preset):
    s, t, y = (np.array(preset["student_logits"]), np.array(preset["teacher_logits"]), preset["label"])
    hyper = dict(temperature=3.0, alpha_temperature=1.5, alpha=1.5, beta=3.0)
    got = ex.per_class_gradients(s, t, y, **hyper)
    want = hand_gradients(s, t, y, 3.0, 1.5, 1.5, 3.0)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-10, err_msg=name)
    mask = t >= t[y]
    assert np.abs(got["MCD"][mask]).max() == 0.0 < np.abs(got["MCD"][~mask]).min()  # masked: no MCD gradient


def test_objective_gradients_combine_the_terms():
    s, t, y = np.array(WRONG["student_logits"]), np.array(WRONG["teacher_logits"]), WRONG["label"]
    got = ex.per_class_gradients(s, t, y, part="objective")
    h = hand_gradients(s, t, y, 4.0, 4.0, 1.0, 8.0)
    np.testing.assert_allclose(got["CE"], h["CE"], atol=1e-10)
    np.testing.assert_allclose(got["KD"], 0.1 * h["CE"] + 0.9 * h["KD"], atol=1e-10)
    np.testing.assert_allclose(got["DKD"], h["CE"] + h["DKD"], atol=1e-10)
    np.testing.assert_allclose(got["RLD"], h["CE"] + h["RLD"], atol=1e-10)
    np.testing.assert_allclose(got["LA"], h["LA"], atol=1e-10)  # LA has no CE term


def test_right_teacher_rld_gradient_equals_dkd():
    s, t = np.random.default_rng(0).normal(size=7), np.random.default_rng(1).normal(size=7)
    y = int(np.argmax(t))
    g = ex.per_class_gradients(s, t, y)
    np.testing.assert_allclose(g["RLD"], g["DKD"], atol=1e-12)


def test_gradient_cosines_match_numpy():
    s, t, y = np.array(WRONG["student_logits"]), np.array(WRONG["teacher_logits"]), WRONG["label"]
    cos = ex.gradient_cosines(s, t, y, beta=4.0)
    h = hand_gradients(s, t, y, 4.0, 4.0, 1.0, 4.0)
    for name in ("KD", "DKD", "LA", "RLD", "TCKD", "NCKD", "SCD", "MCD"):
        ce, g = h["CE"], h[name]
        assert cos[name] == pytest.approx(ce @ g / np.linalg.norm(ce) / np.linalg.norm(g), abs=1e-10), name
    assert ex.cosine(np.zeros(3), np.ones(3)) == 0.0


def test_wrong_teacher_conflict_kd_not_rld():
    """arXiv:2408.07703's conflict: with a wrong teacher, KD's gradient opposes CE's; RLD's true-class part
    (SCD) follows CE. The full RLD cosine is near 0 here (MCD re-ranks the kept wrong classes, a direction
    CE is nearly orthogonal to), but well above KD's and DKD's."""
    s, t, y = np.array(WRONG["student_logits"]), np.array(WRONG["teacher_logits"]), WRONG["label"]
    cos = ex.gradient_cosines(s, t, y)
    g = ex.per_class_gradients(s, t, y)
    assert cos["KD"] < -0.25 and cos["TCKD"] < -0.9
    assert cos["SCD"] > 0.9
    assert cos["RLD"] > cos["KD"] + 0.2 and cos["RLD"] > cos["DKD"] + 0.15
    assert g["KD"][y] > 0 > g["RLD"][y]  # KD pushes the true logit down, RLD pushes it up (as CE)
    flat = np.array([2.0, 0.0, 0.0, 0.0, 0.0])  # a student without an opinion on the wrong classes
    cos_flat = ex.gradient_cosines(flat, t, y)
    assert cos_flat["KD"] < 0 < cos_flat["RLD"]
    right = ex.gradient_cosines(s, RIGHT["teacher_logits"], y)
    assert right["KD"] > 0 and right["SCD"] > 0.9


def test_gradients_reject_bad_input():
    s, t = WRONG["student_logits"], WRONG["teacher_logits"]
    with pytest.raises(ValueError, match="student_logits"):
        ex.per_class_gradients(s[:4], t, 0)
    with pytest.raises(ValueError, match="label"):
        ex.per_class_gradients(s, t, 5)
    with pytest.raises(ValueError, match="label"):
        ex.method_targets(t, -1)
    with pytest.raises(ValueError, match="label"):
        ex.method_targets(t, 1.0)
    with pytest.raises(ValueError, match="teacher_logits"):
        ex.method_targets([[1.0, 2.0]], 0)
    with pytest.raises(ValueError, match="teacher_logits"):
        ex.method_targets([1.0, float("nan")], 0)
    with pytest.raises(ValueError, match="temperature"):
        ex.method_targets(t, 0, temperature=0.0)
    with pytest.raises(ValueError, match="beta"):
        ex.per_class_gradients(s, t, 0, beta=-1.0)
    with pytest.raises(ValueError, match="part"):
        ex.per_class_gradients(s, t, 0, part="both")


# --- sweep and grid ----------------------------------------------------------------------------------------
def _rows():
    acc = {  # (error, method) -> accuracy per seed 0, 1, 2
        (0.1, "kd"): [0.90, 0.92, 0.91], (0.1, "dkd"): [0.93, 0.92, 0.94], (0.1, "rld"): [0.93, 0.93, 0.95],
        (0.3, "kd"): [0.80, 0.82, 0.78], (0.3, "dkd"): [0.79, 0.80, 0.81], (0.3, "rld"): [0.85, 0.86, 0.84],
        (0.0, "rld"): [0.96],
    }
    return [{"teacher_error": e, "method": m, "seed": i, "accuracy": a}
            for (e, m), accs in acc.items() for i, a in enumerate(accs)]


def test_sweep_table_means_stds_and_paired_differences():
    sw = ex.sweep_table(_rows())
    np.testing.assert_array_equal(sw["teacher_errors"], [0.0, 0.1, 0.3])
    assert sw["methods"] == ["kd", "dkd", "rld"]
    np.testing.assert_allclose(sw["mean"]["kd"][1:], [0.91, 0.80])
    assert np.isnan(sw["mean"]["kd"][0]) and sw["n"]["kd"][0] == 0
    np.testing.assert_allclose(sw["std"]["dkd"][1:], [0.01, 0.01])  # sample std (ddof=1)
    np.testing.assert_allclose(sw["mean"]["rld"], [0.96, (0.93 + 0.93 + 0.95) / 3, 0.85])
    assert sw["std"]["rld"][0] == 0.0 and sw["n"]["rld"][0] == 1
    d = sw["differences"]
    assert set(d) == {"rld - dkd", "rld - kd"}
    diff = np.array([0.85, 0.86, 0.84]) - np.array([0.79, 0.80, 0.81])
    assert d["rld - dkd"]["mean"][2] == pytest.approx(diff.mean())
    assert d["rld - dkd"]["std"][2] == pytest.approx(diff.std(ddof=1))
    assert d["rld - kd"]["mean"][1] == pytest.approx(np.mean([0.03, 0.01, 0.04]))
    assert np.isnan(d["rld - kd"]["mean"][0]) and d["rld - kd"]["n"][0] == 0


def test_sweep_table_rejects_bad_rows():
    rows = _rows()
    with pytest.raises(ValueError, match="duplicate"):
        ex.sweep_table(rows + rows[:1])
    with pytest.raises(ValueError, match="rows"):
        ex.sweep_table([])
    with pytest.raises(ValueError, match="accuracy"):
        ex.sweep_table([{**rows[0], "accuracy": float("nan")}])
    with pytest.raises(ValueError, match="rows"):
        ex.sweep_table([{"method": "kd", "seed": 0, "accuracy": 0.9}])


def test_alpha_beta_grid_from_dict_and_arrays():
    alphas, betas, acc = ex.alpha_beta_grid({(1.0, 8.0): [0.9, 0.8], (0.5, 8.0): 0.7, (1.0, 2.0): 0.6})
    np.testing.assert_array_equal(alphas, [0.5, 1.0])
    np.testing.assert_array_equal(betas, [2.0, 8.0])
    assert acc[1, 1] == pytest.approx(0.85) and acc[0, 1] == 0.7 and acc[1, 0] == 0.6
    assert np.isnan(acc[0, 0])
    a, b, m = ex.alpha_beta_grid(([1, 2], [3, 4, 5], np.arange(6).reshape(2, 3)))
    assert m.shape == (2, 3) and m[1, 2] == 5
    with pytest.raises(ValueError, match="grid"):
        ex.alpha_beta_grid(([1, 2], [3], np.zeros((2, 2))))
    with pytest.raises(ValueError, match="grid"):
        ex.alpha_beta_grid({1.0: 0.5})


def test_gradient_readout_and_its_tables():
    from kit.rld.report import gradient_markdown

    hyper = {"temperature": 4.0}
    examples = {"wrong teacher": ex.PRESET_WRONG_TEACHER, "right teacher": ex.PRESET_RIGHT_TEACHER}
    rows, true_class = ex.gradient_readout(examples, **hyper)
    w = ex.PRESET_WRONG_TEACHER
    assert rows["wrong teacher"] == ex.gradient_cosines(w["student_logits"], w["teacher_logits"], w["label"], **hyper)
    per = ex.per_class_gradients(w["student_logits"], w["teacher_logits"], w["label"], **hyper)
    assert true_class["wrong teacher"]["KD"] == float(per["KD"][w["label"]])
    assert set(true_class["right teacher"]) == {"CE", "KD", "DKD", "LA", "RLD"}
    md = gradient_markdown(rows, true_class)
    assert "**cos(grad CE, grad term)**" in md and f"{true_class['wrong teacher']['RLD']:+.3f}" in md
    with pytest.raises(ValueError, match="at least one"):
        gradient_markdown({}, {})
