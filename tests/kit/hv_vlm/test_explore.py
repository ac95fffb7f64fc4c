"""The hv_vlm explore logic (arXiv:2407.21788 views): pairs are deterministic, marks sit on the letters they name,
a drawing becomes a sample of the generator's look, the sweep and the threshold curve agree with independent counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.handwriting import ATTRIBUTES, Writers, style_differences, verification_pairs
from kit.hv_vlm import explore as ex
from kit.hv_vlm.examiner import ScriptedBackend, decision_metrics
from kit.hv_vlm.metrics import decisions_metrics, pair_metrics
from kit.hv_vlm.model import SiameseVerifier, same_writer_probability
from kit.hv_vlm.offline_examiner import OfflineExaminer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def writers() -> Writers:
    return Writers(30, seed=3, noise=1.8)


@pytest.fixture(scope="module")
def model() -> SiameseVerifier:
    torch.manual_seed(0)
    return SiameseVerifier(width=4).eval()


@pytest.fixture(scope="module")
def examiner(writers) -> OfflineExaminer:
    """Fitted on 60 pairs of 30 writers x 3 samples at noise 1.8."""
    images = np.concatenate([writers.sample(w, 3, np.random.default_rng([0, w])) for w in range(30)])
    pairs = verification_pairs(np.repeat(np.arange(30), 3), 0)[:60]
    return OfflineExaminer().fit(images[pairs[:, 0]], images[pairs[:, 1]], pairs[:, 2])


# ------------------------------------------------------------------------------------------ pairs
def test_writer_pair_is_deterministic_and_matches_the_data_sets_draws(writers):
    images, boxes, styles = ex.writer_pair(writers, 4, 9, 2, 0, seed=5)
    assert images.shape == (2, 64, 64) and images.dtype == np.uint8 and boxes.shape == (2, 3, 4)
    again, _, _ = ex.writer_pair(writers, 4, 9, 2, 0, seed=5)
    np.testing.assert_array_equal(images, again)
    drawn = writers.sample(4, 3, np.random.default_rng([5, 4, 1]))  # how load_data draws writer 4's samples
    np.testing.assert_array_equal(images[0], drawn[2])
    assert styles == (writers.style(4), writers.style(9))
    same, _, (sa, sb) = ex.writer_pair(writers, 4, 4, 0, 1)
    assert sa == sb and not np.array_equal(same[0], same[1])  # one writer, two different samples
    with pytest.raises(ValueError, match="two different samples"):
        ex.writer_pair(writers, 4, 4, 1, 1)


def test_compare_pair_with_the_offline_examiner(model, examiner, writers):
    images, boxes, (sa, sb) = ex.writer_pair(writers, 0, 1)
    v = ex.compare_pair(model, examiner, images[0], images[1], boxes[0], boxes[1], sa, sb)
    assert v.same_writer is False and v.decision in ("same", "different")
    assert v.correct == (v.decision == "different")
    assert v.p_same == pytest.approx(same_writer_probability(model, images[0], images[1]))
    assert v.assessment is not None and v.assessment.decision == v.decision
    assert set(v.claimed) <= set(ATTRIBUTES) and v.claimed
    assert v.style_gaps == pytest.approx(style_differences(sa, sb))
    assert v.faithfulness["n_claims"] == len(v.claimed)
    # the explanation's paragraphs carry the examiner's headings and the polarity of their claims
    headings = [s.heading for s in v.sections]
    assert headings[0] == "Slant" and headings[-1] == "Overall"
    slant = v.sections[0]
    assert slant.attributes == ("slant",) and slant.polarity == v.claimed["slant"]
    assert (slant.polarity == "differ") == v.assessment.differs["slant"]
    same = ex.compare_pair(None, examiner, images[0], images[0])
    assert same.p_same is None and same.same_writer is None and same.correct is None and same.marks() == []


def test_explanation_sections_read_vlm_style_markdown():
    text = ("**Slant:** The slant differs: the known leans right.\n\n### Spacing\nSpacing is consistent.\n\n"
            "Overall, the writers look alike.")
    s = ex.explanation_sections(text)
    assert [x.heading for x in s] == ["Slant", "Spacing", ""]
    assert (s[0].polarity, s[1].polarity, s[2].polarity) == ("differ", "similar", None)
    assert s[1].body == "Spacing is consistent." and s[1].attributes == ("spacing",)
    v = ex.compare_pair(None, ScriptedBackend([text, "No."]), np.full((32, 32), 250, np.uint8),
                        np.full((32, 32), 250, np.uint8))
    assert v.decision == "different" and v.assessment is None and v.claimed == {"slant": "differ",
                                                                                  "spacing": "similar"}


# ------------------------------------------------------------------------------------------ marks
def test_feature_marks_sit_on_the_letters_they_name(writers):
    _, boxes, _ = ex.writer_pair(writers, 2, 3)
    b = boxes[0]
    marks = ex.feature_marks(list(ATTRIBUTES), b)
    assert {m[2] for m in marks} == set(ATTRIBUTES)
    for x, y, attr, letter in marks:
        if attr == "spacing":  # between two neighbouring letters' centres
            k = "and".index(letter[0])
            assert letter in ("a-n", "n-d")
            assert 0.5 * (b[k, 0] + b[k, 2]) <= x <= 0.5 * (b[k + 1, 0] + b[k + 1, 2])
            continue
        x0, y0, x1, y1 = b["and".index(letter)]
        assert x0 <= x <= x1 and y0 <= y <= y1, (attr, letter)
    assert [m[3] for m in ex.feature_marks({"slant": "differ"}, b)] == ["d"]
    baseline = ex.feature_marks(["baseline"], b)
    assert [m[3] for m in baseline] == list("and") and all(y > 0.5 * (b[i, 1] + b[i, 3])
                                                            for i, (_, y, _, _) in enumerate(baseline))
    with pytest.raises(ValueError, match="unknown attribute"):
        ex.feature_marks(["colour"], b)
    with pytest.raises(ValueError, match="letter boxes"):
        ex.feature_marks(["slant"], b[:2])


# ------------------------------------------------------------------------------------------ drawings
def test_drawn_strokes_become_a_sample_with_ink_where_drawn():
    # an "n"-like arch on the left and a tall stroke on the right, in canvas pixels (y down)
    strokes = [[(20, 150), (40, 90), (60, 150)], [(200, 150), (200, 30)]]
    img = ex.drawn_to_image(strokes)
    assert img.shape == (64, 64) and img.dtype == np.uint8
    assert img.max() >= 245 and img.min() <= 40  # the generator's paper and ink
    ink = img < 128
    rows, cols = np.nonzero(ink)
    assert 0.6 * 64 <= cols.max() - cols.min() + 1 <= 0.8 * 64  # fitted like the generator's words
    assert abs(0.5 * (cols.min() + cols.max()) - 31.5) <= 1.5
    right = ink[:, cols.max() - 2:]
    assert right.any(0).sum() <= 4 and right.any(1).sum() > 20  # the tall stroke stays a thin vertical line
    assert not ink[:, 32:cols.max() - 3].any()  # nothing drawn between the arch and the stroke
    big = ex.drawn_to_image(strokes, size=128)
    assert big.shape == (128, 128)
    thick = ex.drawn_to_image(strokes, pen_width=4.0)
    assert (thick < 128).sum() > ink.sum() * 1.5
    dot = ex.drawn_to_image([[(5, 5)]])
    assert (dot < 200).sum() >= 1 and dot[32, 32] < 200


def test_drawn_raster_matches_its_strokes():
    import cv2

    rgba = np.zeros((120, 240, 4), np.uint8)  # transparent canvas, black ink: alpha is the ink
    cv2.polylines(rgba, [np.array([[20, 100], [60, 30], [100, 100]], np.int32)], False, (0, 0, 0, 255), 9)
    cv2.line(rgba, (200, 100), (200, 10), (0, 0, 0, 255), 9)
    a = ex.drawn_to_image(rgba) < 128
    grey = np.where(rgba[..., 3] > 0, 0, 255).astype(np.uint8)  # the same drawing, dark ink on white
    b = ex.drawn_to_image(grey) < 128
    assert abs(int(a.sum()) - int(b.sum())) <= 0.1 * a.sum()
    s = ex.drawn_to_image([[(20, 100), (60, 30), (100, 100)], [(200, 100), (200, 10)]]) < 128
    assert (a & s).sum() >= 0.6 * s.sum()  # skeleton redrawn with the one pen: close to the strokes
    boxes = ex.ink_letter_boxes(np.where(a, 20, 250).astype(np.uint8))
    assert boxes.shape == (3, 4) and (boxes[:, 2] > boxes[:, 0]).all() and (np.diff(boxes[:, 0]) > 0).all()


@pytest.mark.parametrize("drawing", [[], [[]], [[], []], np.zeros((50, 80, 4), np.uint8),
                                     np.full((50, 80), 255, np.uint8)])
def test_drawn_to_image_refuses_an_empty_drawing(drawing):
    with pytest.raises(ValueError, match="no ink"):
        ex.drawn_to_image(drawing)


def test_drawn_to_image_refuses_bad_input():
    with pytest.raises(ValueError, match=r"stroke 0 must be a list of \(x, y\)"):
        ex.drawn_to_image([[(1, 2, 3)]])
    with pytest.raises(ValueError, match="uint8"):
        ex.drawn_to_image(np.zeros((20, 20, 4), np.float32))
    with pytest.raises(ValueError, match="size"):
        ex.drawn_to_image([[(0, 0), (5, 5)]], size=8)


# ------------------------------------------------------------------------------------------ sweeps and curves
def test_noise_sweep_small_run(model, examiner):
    r = ex.noise_sweep(model, examiner, noises=(0.3, 2.6), n_writers=8, samples_per_writer=3, n_examiner_pairs=16,
                       progress=False)
    assert r["noises"] == [0.3, 2.6] and list(r["labels"]) == ["siamese", "hog_cosine", "examiner"]
    for key in ("accuracy", "f1"):
        assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in r[key].values())
    assert r["accuracy"]["hog_cosine"][0] > r["accuracy"]["hog_cosine"][1]  # more noise, harder
    assert r["accuracy"]["examiner"][0] > 0.5  # fitted at noise 1.8, its thresholds kept (16 pairs: coarse)
    assert r["coverage"]["examiner"] == [1.0, 1.0] and r["n_pairs"] == 8 * 3 * 2 and r["n_examiner_pairs"] == 16
    assert r["examples"].shape == (2, 4, 64, 64) and len(r["example_titles"]) == 4
    # the same writers' same draw, scaled: the two samples of writer 0 are closer at low noise
    gap = [np.abs(e[0].astype(int) - e[1]).mean() for e in r["examples"]]
    assert gap[0] < gap[1]
    alone = ex.noise_sweep(None, None, noises=(0.3,), n_writers=8, samples_per_writer=3, progress=False)
    assert list(alone["labels"]) == ["hog_cosine"] and alone["accuracy"]["hog_cosine"] == r["accuracy"][
        "hog_cosine"][:1]
    assert ex.first_below([0.6, 1.0, 1.4], [0.9, 0.69, 0.8]) == 1.0 and ex.first_below([1], [0.8]) is None


def test_threshold_curve_matches_pair_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.5 * y + 0.6 * rng.random(200), 0, 1)
    c = ex.threshold_curve(s, y, np.linspace(0, 1.2, 13))
    for k, t in enumerate(c["thresholds"]):
        m = pair_metrics(s, y, t)
        for key in ("accuracy", "precision", "recall", "f1"):
            assert c[key][k] == pytest.approx(m[key])
    assert c["recall"][0] == 1.0 and c["precision"][-1] == 0.0  # nothing called same above every score
    with pytest.raises(ValueError, match="one length"):
        ex.threshold_curve(s, y[:5], [0.5])


def test_confusion_matrices():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    pred = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    m = ex.confusion_matrix(pred, y)
    np.testing.assert_array_equal(m, [[3, 1], [1, 3]])
    np.testing.assert_array_equal(ex.confusion_from_metrics(decisions_metrics(pred, y), y), m)
    d = ["same", "different", "unknown", "different", "both", "different", "same", "same"]
    c = ex.decision_confusion(d, y)
    np.testing.assert_array_equal(c, [[2, 1, 0, 1], [1, 2, 1, 0]])
    dm = decision_metrics(d, y)
    assert c[:, 2].sum() == dm["n_unknown"] and c[:, 3].sum() == dm["n_both"]
    with pytest.raises(ValueError, match="decisions must be in"):
        ex.decision_confusion(["maybe"] * 8, y)
