"""kit.rld.mistakes: the teacher's mistakes, a student's SGD steps on one of them, the counts over all of them; and
the committed digits teacher (kit.rld.assets) they are measured on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kit.rld import assets, checks
from kit.rld.data import digits_split
from kit.rld.mistakes import mistake_outcomes, student_steps, teacher_mistakes

torch.set_num_threads(1)


def linear(weight, bias=None) -> nn.Linear:
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(w)
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


# A 3-class teacher that reads its input as logits: right on items 0 and 2, wrong (with margins 3 and 1) on 1 and 3.
TEACHER = linear(np.eye(3))
X = torch.tensor([[5.0, 0.0, 0.0], [0.0, 4.0, 1.0], [0.0, 0.0, 2.0], [2.0, 0.0, 1.0]])
Y = torch.tensor([0, 2, 2, 2])


@pytest.fixture(scope="module")
def committed():
    return teacher_mistakes(assets.load_teacher(), digits_split(0).test)


# --- teacher_mistakes --------------------------------------------------------------------------------------
def test_mistakes_are_exactly_the_misclassified_items_most_confident_first():
    m = teacher_mistakes(TEACHER, TensorDataset(X, Y))
    assert list(m.index) == [1, 3] and len(m) == 2 and m.n_items == 4
    np.testing.assert_array_equal(m.labels, [2, 2])
    np.testing.assert_array_equal(m.teacher_class, [1, 0])
    np.testing.assert_allclose(m.margin, [3.0, 1.0])
    np.testing.assert_allclose(m.teacher_logits, X[[1, 3]].numpy())
    assert torch.equal(m.inputs, X[[1, 3]])
    one = teacher_mistakes(TEACHER, (X, Y), k=1)
    assert list(one.index) == [1]
    item = m.item(1)
    assert (item["index"], item["label"], item["teacher_class"]) == (3, 2, 0) and item["margin"] == 1.0


def test_mistakes_of_a_perfect_teacher_are_empty():
    m = teacher_mistakes(TEACHER, (X[[0, 2]], Y[[0, 2]]))
    assert len(m) == 0 and m.n_items == 2 and m.teacher_logits.shape == (0, 3)


def test_committed_teacher_mistakes_are_misclassified(committed):
    record = assets.committed_record()
    assert len(committed) == len(record["test_mistakes"]) == 14
    assert sorted(committed.index.tolist()) == record["test_mistakes"]
    teacher = assets.load_teacher()
    with torch.no_grad():
        pred = teacher(committed.inputs).argmax(1).numpy()
    assert (pred != committed.labels).all() and (pred == committed.teacher_class).all()
    assert (np.diff(committed.margin) <= 0).all() and (committed.margin > 0).all()
    x, y = digits_split(0).test.tensors
    assert torch.equal(x[committed.index], committed.inputs) and (y[committed.index].numpy() == committed.labels).all()
    assert not teacher.training


def test_mistakes_bad_inputs():
    with pytest.raises(ValueError, match="empty dataset"):
        teacher_mistakes(TEACHER, (X[:0], Y[:0]))
    with pytest.raises(ValueError, match="k must be None or an int >= 1"):
        teacher_mistakes(TEACHER, (X, Y), k=0)
    with pytest.raises(ValueError, match=r"labels \[N\]"):
        teacher_mistakes(TEACHER, (X, Y[:3]))
    with pytest.raises(ValueError, match="TensorDataset"):
        teacher_mistakes(TEACHER, X)
    with pytest.raises(ValueError, match="C > every label"):
        teacher_mistakes(TEACHER, (X, torch.tensor([0, 5, 2, 2])))
    m = teacher_mistakes(TEACHER, (X, Y))
    with pytest.raises(ValueError, match=r"i must be in \[0, 2\) \(2 teacher mistakes\), got 2"):
        m.item(2)
    with pytest.raises(ValueError, match="int index"):
        m.item(0.5)
    empty = teacher_mistakes(TEACHER, (X[[0]], Y[[0]]))
    with pytest.raises(ValueError, match="no teacher mistakes to index"):
        empty.item(0)
    with pytest.raises(ValueError, match="empty set"):
        mistake_outcomes(empty)


# --- student_steps -----------------------------------------------------------------------------------------
def test_steps_deterministic_under_a_seed_and_move_the_logits(committed):
    m = committed.item(0)
    a = student_steps(None, m["x"], m["teacher_logits"], m["label"], steps=5, seed=3)
    b = student_steps(None, m["x"], m["teacher_logits"], m["label"], steps=5, seed=3)
    c = student_steps(None, m["x"], m["teacher_logits"], m["label"], steps=5, seed=4)
    assert set(a) == {"kd", "rld"} and a["kd"].shape == (6, 10) and a["kd"].dtype == np.float64
    for method in a:
        np.testing.assert_array_equal(a[method], b[method])
        assert np.abs(np.diff(a[method], axis=0)).max(axis=1).min() > 1e-6  # every step changes the logits
    np.testing.assert_array_equal(a["kd"][0], a["rld"][0])  # both from the same start
    assert not np.allclose(a["kd"][0], c["kd"][0])  # another seed, another start


def test_steps_leave_the_given_student_alone():
    student = linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    before = {k: v.clone() for k, v in student.state_dict().items()}
    student_steps(student, [1.0, 0.0], [0.0, 3.0], 0, steps=3, lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_kd_pulls_towards_the_wrong_teacher_rld_keeps_the_true_class():
    # the student reads x = e_0 as logits [1, 0, 0]: the true class 0 on top; the teacher is sure of class 1
    student = linear(np.eye(3), [0.0, 0.0, 0.0])
    teacher, x, y = [0.0, 5.0, -5.0], [1.0, 0.0, 0.0], 0
    out = student_steps(student, x, teacher, y, methods=("kd", "rld", "ce"), steps=10, lr=0.1)
    np.testing.assert_allclose(out["kd"][0], [1.0, 0.0, 0.0], atol=1e-6)
    wrong_margin = out["kd"][:, 1] - out["kd"][:, 0]  # z_wrong - z_true under KD
    assert (np.diff(wrong_margin) > 0).all() and wrong_margin[-1] > 0  # grows every step, and wins
    assert int(np.argmax(out["rld"][-1])) == 0 and (out["rld"][:, 0] > out["rld"][:, 1]).all()
    assert out["rld"][-1, 0] - out["rld"][-1, 1] > out["rld"][0, 0] - out["rld"][0, 1]  # RLD widens the true lead
    assert int(np.argmax(out["ce"][-1])) == 0


def test_steps_follow_the_hyper_parameters():
    student = linear(np.eye(3), [0.0, 0.0, 0.0])
    base = student_steps(student, [1.0, 0.0, 0.0], [0.0, 5.0, -5.0], 0, steps=2, lr=0.1)
    hot = student_steps(student, [1.0, 0.0, 0.0], [0.0, 5.0, -5.0], 0, steps=2, lr=0.1, temperature=1.0, beta=2.0)
    assert not np.allclose(base["kd"], hot["kd"]) and not np.allclose(base["rld"], hot["rld"])


def test_steps_bad_inputs():
    student = linear(np.eye(3), [0.0, 0.0, 0.0])
    args = (student, [1.0, 0.0, 0.0], [0.0, 5.0, -5.0])
    with pytest.raises(ValueError, match=r"label must be in \[0, 3\)"):
        student_steps(*args, 3)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        student_steps(*args, 0, steps=0)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        student_steps(*args, 0, lr=0.0)
    with pytest.raises(ValueError, match="methods must name"):
        student_steps(*args, 0, methods=("kd", "nope"))
    with pytest.raises(ValueError, match="methods must name"):
        student_steps(*args, 0, methods=())
    with pytest.raises(ValueError, match="unknown hyper-parameters"):
        student_steps(*args, 0, gamma=1.0)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        student_steps(*args, 0, temperature=0.0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        student_steps(*args, 0, beta=-1.0)
    with pytest.raises(ValueError, match="teacher_logits"):
        student_steps(student, [1.0, 0.0, 0.0], [float("nan"), 1.0, 0.0], 0)
    with pytest.raises(ValueError, match=r"student: expected logits \[1, 4\]"):
        student_steps(student, [1.0, 0.0, 0.0], [0.0, 5.0, -5.0, 1.0], 0)


# --- mistake_outcomes --------------------------------------------------------------------------------------
def test_outcomes_count_what_the_steps_end_on():
    student = linear(np.eye(3), [0.0, 0.0, 0.0])
    m = teacher_mistakes(TEACHER, (X, Y))
    out = mistake_outcomes(m, student, methods=("kd", "rld"), steps=4, lr=0.1)
    assert out["n_mistakes"] == 2 and out["steps"] == 4 and out["lr"] == 0.1
    for r, i in zip(out["digits"], range(2)):
        item = m.item(i)
        traj = student_steps(student, item["x"], item["teacher_logits"], item["label"], steps=4, lr=0.1)
        assert r["final_top1"] == {k: int(np.argmax(v[-1])) for k, v in traj.items()}
        assert r["start_top1"] == int(np.argmax(traj["kd"][0]))
    for k in ("kd", "rld"):
        assert out["true_top1"][k] == sum(r["final_top1"][k] == r["label"] for r in out["digits"])
        assert out["teacher_top1"][k] == sum(r["final_top1"][k] == r["teacher_class"] for r in out["digits"])
        assert out["true_top1_rate"][k] == out["true_top1"][k] / 2


def test_checks_are_one_module_for_the_series():
    import kit.rld.explore as ex
    import kit.rld.losses as losses

    assert ex.as_logit_vector is checks.as_logit_vector and ex.check_label is checks.check_label
    assert losses.check_positive is checks.check_positive and losses.check_weight is checks.check_weight
    for module in (ex, losses):
        assert not any(hasattr(module, n) for n in ("_positive", "_non_negative", "_real", "_is_real",
                                                     "_check_positive", "_check_weight", "_check_logits"))
