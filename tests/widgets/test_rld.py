"""RLD widgets without a browser: build, move controls, press presets, compare the drawn bars with numbers
computed here (numpy formulas, or `kit.rld.explore` where the formula is tested there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import widgets.rld as wr
from kit.rld import explore as ex

torch.set_num_threads(1)

WRONG, RIGHT = ex.PRESET_WRONG_TEACHER, ex.PRESET_RIGHT_TEACHER


def softmax(z) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max())
    return e / e.sum()


def bars(w, name: str) -> np.ndarray:
    return np.array(w.figure.data[w.trace[name]].y, dtype=float)


# --- refinery explorer -------------------------------------------------------------------------------------
def test_explorer_bars_equal_targets_and_follow_sliders():
    w = wr.RefineryExplorer()
    t = np.array(WRONG["teacher_logits"])
    np.testing.assert_allclose(bars(w, "teacher"), softmax(t), atol=1e-12)
    np.testing.assert_allclose(bars(w, "kd"), softmax(t / 4.0), atol=1e-12)
    assert list(w.figure.data[w.trace["kd"]].x) == list(WRONG["class_names"])
    np.testing.assert_allclose(bars(w, "scd_binary"), [softmax(t / 4).max(), 1 - softmax(t / 4).max()])
    w.temperature.value = 2.0
    w.alpha_temperature.value = 1.0
    np.testing.assert_allclose(bars(w, "kd"), softmax(t / 2.0), atol=1e-12)
    np.testing.assert_allclose(bars(w, "scd_binary"), [softmax(t).max(), 1 - softmax(t).max()], atol=1e-12)
    w.teacher_sliders[3].value = 5.0  # "car" becomes the teacher's top class
    t[3] = 5.0
    want = ex.method_targets(t, 0, 2.0, 1.0)
    np.testing.assert_allclose(w.teacher_logits, t)
    for name in ("teacher", "kd", "la", "dkd_binary", "scd_binary", "dkd_nontarget", "mcd"):
        np.testing.assert_allclose(bars(w, name), want[name], atol=1e-12, err_msg=name)
    assert w.logits_text.value.split(", ")[3] == "5"
    assert "car" in w.status.value and "wrong" in w.status.value


def test_explorer_masked_classes_greyed():
    w = wr.RefineryExplorer()
    w.label_dropdown.value = 1  # label "dog" (2.0): cat 3, fox 4 and dog itself are masked
    mask = np.array([True, True, True, False, False])
    colors = np.array(w.figure.data[w.trace["mcd"]].marker.color)
    assert (colors[mask] == wr.GREY).all() and (colors[~mask] != wr.GREY).all()
    t = np.array(WRONG["teacher_logits"])
    np.testing.assert_allclose(bars(w, "mcd"), np.where(mask, 0.0, softmax(np.where(mask, -np.inf, t / 4))))
    np.testing.assert_allclose(bars(w, "mcd_masked"), np.where(mask, softmax(t / 4), 0.0))
    assert w.figure.data[w.trace["mcd_masked"]].marker.color == wr.GREY
    w.label_dropdown.value = 4  # truck, ranked last: all masked, MCD passes nothing on
    assert bars(w, "mcd").sum() == 0.0 and "Every class is masked" in w.status.value


def test_explorer_presets_and_text_box():
    w = wr.RefineryExplorer()
    w.right_button.click()
    np.testing.assert_allclose(w.teacher_logits, RIGHT["teacher_logits"])
    np.testing.assert_allclose(bars(w, "mcd"), bars(w, "dkd_nontarget"))  # right teacher: RLD == DKD
    np.testing.assert_allclose(bars(w, "scd_binary"), bars(w, "dkd_binary"))
    w.wrong_button.click()
    np.testing.assert_allclose(w.teacher_logits, WRONG["teacher_logits"])
    w.logits_text.value = "0.5, 2, -1"
    assert w.class_names == ["class 0", "class 1", "class 2"] and len(w.teacher_sliders) == 3
    np.testing.assert_allclose(bars(w, "teacher"), softmax([0.5, 2, -1]), atol=1e-12)
    w.logits_text.value = "1, oops"
    assert "oops" in w.status.value
    np.testing.assert_allclose(w.teacher_logits, [0.5, 2, -1])  # unchanged
    w.set_logits([20.0, -20.0], 1)  # outside the default slider range: new sliders cover it
    np.testing.assert_allclose(w.teacher_logits, [20.0, -20.0])


def test_explorer_bad_input():
    with pytest.raises(ValueError, match="class_names"):
        wr.RefineryExplorer([1.0, 2.0, 3.0], 0, class_names=["a", "b"])
    with pytest.raises(ValueError, match="label"):
        wr.RefineryExplorer([1.0, 2.0, 3.0], 3)
    with pytest.raises(ValueError, match="label"):
        wr.RefineryExplorer([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="logits"):
        wr.RefineryExplorer([1.0], 0)
    w = wr.RefineryExplorer()
    with pytest.raises(ValueError, match="class_names"):
        w.set_logits([1.0, 2.0, 3.0], 0, class_names=["a"])


# --- gradient view -----------------------------------------------------------------------------------------
def test_gradient_view_bars_and_cosines():
    w = wr.GradientView()
    s, t = np.array(WRONG["student_logits"]), np.array(WRONG["teacher_logits"])
    y = WRONG["label"]
    onehot = np.eye(5)[y]
    data = {d.name: d for d in w.figure.data}
    np.testing.assert_allclose(data["CE"].y, softmax(s) - onehot, atol=1e-12)
    np.testing.assert_allclose(data["KD"].y, 4.0 * (softmax(s / 4) - softmax(t / 4)), atol=1e-12)
    cos = data["cosine"]
    ce = softmax(s) - onehot
    kd = softmax(s / 4) - softmax(t / 4)
    i_kd = list(cos.y).index("KD")
    assert cos.x[i_kd] == pytest.approx(ce @ kd / np.linalg.norm(ce) / np.linalg.norm(kd), abs=1e-10)
    for name, c, col in zip(cos.y, cos.x, cos.marker.color):
        assert (col == wr.WRONG_COLOR) == (c < 0), name
    assert cos.x[i_kd] < 0 and "KD</td><td style='text-align:right'>-0." in w.table.value
    assert "down (against CE)" in w.table.value  # KD pushes the true logit down


def test_gradient_view_controls_update():
    w = wr.GradientView()
    w.student_sliders[0].value = -1.0
    w.beta.value = 2.0
    s = np.array(WRONG["student_logits"])
    s[0] = -1.0
    t, y = np.array(WRONG["teacher_logits"]), WRONG["label"]
    want = ex.per_class_gradients(s, t, y, temperature=4.0, alpha_temperature=4.0, alpha=1.0, beta=2.0)
    data = {d.name: d for d in w.figure.data}
    for name in ex.GRADIENT_METHODS:
        np.testing.assert_allclose(data[name].y, want[name], atol=1e-12, err_msg=name)
    w.part.value = "objective"
    ce = softmax(s) - np.eye(5)[y]
    np.testing.assert_allclose(w.figure.data[1].y, 0.1 * ce + 0.9 * 4 * (softmax(s / 4) - softmax(t / 4)),
                               atol=1e-12)
    w.right_button.click()
    assert w.cosines["SCD"] == pytest.approx(w.cosines["TCKD"])  # right teacher: SCD is TCKD
    np.testing.assert_allclose(w.student_logits, RIGHT["student_logits"])


def test_gradient_view_bad_input():
    with pytest.raises(ValueError, match="student_logits"):
        wr.GradientView([0.0, 1.0], [1.0, 2.0, 3.0], 0)
    with pytest.raises(ValueError, match="label"):
        wr.GradientView([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], 7)
    with pytest.raises(ValueError, match="teacher_logits"):
        wr.GradientView([0.0, 1.0, 2.0])


# --- static figures ----------------------------------------------------------------------------------------
def _rows():
    accs = {("kd", 0.0): [0.95, 0.93], ("dkd", 0.0): [0.96, 0.96], ("rld", 0.0): [0.96, 0.97],
            ("kd", 0.2): [0.80, 0.84], ("dkd", 0.2): [0.78, 0.80], ("rld", 0.2): [0.86, 0.88]}
    return [{"teacher_error": e, "method": m, "seed": i, "accuracy": a}
            for (m, e), v in accs.items() for i, a in enumerate(v)]


def test_sweep_figure_panels():
    fig = wr.sweep_figure(_rows())
    by_name = {d.name: d for d in fig.data}
    np.testing.assert_allclose(by_name["rld"].y, [0.965, 0.87])
    np.testing.assert_allclose(by_name["kd"].error_y.array, [np.std([0.95, 0.93], ddof=1),
                                                             np.std([0.80, 0.84], ddof=1)])
    np.testing.assert_allclose(by_name["rld - dkd"].y, [0.005, 0.08])
    np.testing.assert_allclose(by_name["rld - kd"].y, [0.025, 0.05])
    assert by_name["rld - kd"].xaxis == "x2" and by_name["kd"].xaxis == "x"
    with pytest.raises(ValueError, match="sweep"):
        wr.sweep_figure("rows")


def test_alpha_beta_heatmap_and_table():
    grid = {(0.5, 2.0): 0.70, (0.5, 8.0): 0.75, (1.0, 2.0): 0.72, (1.0, 8.0): [0.80, 0.78]}
    fig = wr.alpha_beta_heatmap(grid)
    np.testing.assert_allclose(np.array(fig.data[0].z, dtype=float), [[0.70, 0.75], [0.72, 0.79]])
    box = fig.layout.shapes[0]
    assert (box.x0 + 0.5, box.y0 + 0.5) == (1, 1)  # best cell: alpha 1, beta 8
    with pytest.raises(ValueError, match="grid"):
        wr.alpha_beta_heatmap(([1.0], [2.0], [[float("nan")]]))
    table = wr.accuracy_table_html(_rows(), scale=100, digits=1)
    assert "<b>87.0 ± 1.4 (2)</b>" in table and "82.0 ± 2.8 (2)" in table
    assert table.count("<tr>") == 3
