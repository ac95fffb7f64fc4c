"""The RLD mistake explorer without a browser: pick a teacher mistake, move the step slider and the refinery's
controls, and compare what is drawn with `kit.rld.mistakes` computed here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import widgets.rld as wr
from kit.rld.assets import load_teacher
from kit.rld.data import digits_split
from kit.rld.mistakes import student_steps, teacher_mistakes
from widgets.rld_mistakes import MistakeExplorer

torch.set_num_threads(1)
STEPS = 20


@pytest.fixture(scope="module")
def mistakes():
    return teacher_mistakes(load_teacher(), digits_split(0).test)


@pytest.fixture()
def view(mistakes):
    return MistakeExplorer(mistakes, steps=STEPS)


def line(view, method, c) -> np.ndarray:
    return np.array(view.figure.data[view.trace[(method, c)]].y, dtype=float)


def bars(view, method) -> np.ndarray:
    return np.array(view.figure.data[view.trace[(method, "bars")]].y, dtype=float)


def test_loads_the_teachers_most_confident_mistake(view, mistakes):
    m = mistakes.item(0)
    assert len(view.digit.options) == len(mistakes) == 14
    assert view.digit.options[0][0].startswith(f"test digit #{m['index']}: a {m['label']} the teacher reads as "
                                               f"{m['teacher_class']}")
    np.testing.assert_allclose(view.refinery.teacher_logits, m["teacher_logits"], atol=1e-12)
    assert view.refinery.label == m["label"] and view.refinery.class_names == [str(c) for c in range(10)]
    np.testing.assert_allclose(np.array(view.figure.data[0].z), m["x"].reshape(8, 8).numpy(), atol=1e-7)
    # the refinery panels show this digit's KD target and RLD's refined targets
    targets = view.refinery.values
    assert targets["top_class"] == m["teacher_class"] and not targets["teacher_right"]
    assert int(np.argmax(targets["kd"])) == m["teacher_class"]
    assert targets["mask"][m["teacher_class"]] and targets["mcd"][m["teacher_class"]] == 0.0


def test_trajectories_are_the_kit_steps_and_make_the_point(view, mistakes):
    m = mistakes.item(0)
    want = student_steps(None, m["x"], view.refinery.teacher_logits, m["label"], steps=STEPS,
                         **view.refinery.hyper)
    for method in ("kd", "rld"):
        np.testing.assert_allclose(view.trajectories[method], want[method])
        for c in range(10):
            np.testing.assert_allclose(line(view, method, c), want[method][:, c])
        colors = {c: view.figure.data[view.trace[(method, c)]].line.color for c in range(10)}
        assert colors[m["label"]] == wr.LABEL_COLOR and colors[m["teacher_class"]] == wr.WRONG_COLOR
    # after the last step KD's student sits on the teacher's wrong class, RLD's on the true class
    assert view.final_top1 == {"kd": m["teacher_class"], "rld": m["label"]}


def test_step_slider_moves_bars_marker_and_titles(view):
    np.testing.assert_allclose(bars(view, "kd"), view.trajectories["kd"][0])
    view.step.value = STEPS
    for j, method in enumerate(("kd", "rld")):
        np.testing.assert_allclose(bars(view, method), view.trajectories[method][STEPS])
        assert view.figure.layout.shapes[j].x0 == STEPS
    titles = [a.text for a in view.figure.layout.annotations]
    assert "KD at step 20: top-1 9" in titles and "RLD at step 20: top-1 4" in titles
    assert "step 20 of 20" in view.status.value and "(the teacher's class)" in view.status.value
    assert "(the true class)" in view.status.value
    view.step.value = 3
    np.testing.assert_allclose(bars(view, "rld"), view.trajectories["rld"][3])


def test_dropdown_loads_another_mistake(view, mistakes):
    view.step.value = STEPS
    view.digit.value = 5
    m = mistakes.item(5)
    assert view.refinery.label == m["label"] and int(np.argmax(view.refinery.teacher_logits)) == m["teacher_class"]
    want = student_steps(None, m["x"], view.refinery.teacher_logits, m["label"], steps=STEPS)
    np.testing.assert_allclose(view.trajectories["rld"], want["rld"])
    np.testing.assert_allclose(bars(view, "kd"), want["kd"][STEPS])  # the chosen step is kept
    view.load(2)
    assert view.digit.value == 2 and view.refinery.label == mistakes.item(2)["label"]


def test_refinery_controls_recompute_the_steps(view):
    before = {k: v.copy() for k, v in view.trajectories.items()}
    view.refinery.temperature.value = 1.0
    assert not np.allclose(before["kd"], view.trajectories["kd"])
    beta_before = view.trajectories["rld"].copy()
    view.refinery.beta.value = 2.0
    assert not np.allclose(beta_before, view.trajectories["rld"])
    label_before = view.trajectories["rld"].copy()
    view.refinery.label_dropdown.value = 0
    assert view.refinery.label == 0 and not np.allclose(label_before, view.trajectories["rld"])
    colors = [view.figure.data[view.trace[("rld", c)]].line.color for c in range(10)]
    assert colors[0] == wr.LABEL_COLOR


def test_wrong_number_of_logits_is_reported_not_raised(view):
    kept = view.trajectories["kd"].copy()
    view.refinery.logits_text.value = "1, 2, 3"
    assert "10 classes" in view.status.value
    np.testing.assert_array_equal(view.trajectories["kd"], kept)


def test_bad_inputs(mistakes):
    teacher = load_teacher()
    x = digits_split(0).test.tensors[0][:5]
    with torch.no_grad():
        right_only = teacher_mistakes(teacher, (x, teacher(x).argmax(1)))  # labelled by the teacher: no mistakes
    assert len(right_only) == 0
    with pytest.raises(ValueError, match="at least one teacher mistake"):
        MistakeExplorer(right_only)
    with pytest.raises(ValueError, match="class_names"):
        MistakeExplorer(mistakes, class_names=["a", "b"])
    with pytest.raises(ValueError, match="methods"):
        MistakeExplorer(mistakes, methods=())
    view = MistakeExplorer(mistakes, steps=2)
    with pytest.raises(ValueError, match=r"i must be in \[0, 14\)"):
        view.load(14)
