"""hv_vlm views on small real inputs (an untrained Siamese ResNet-18 at width 4, an offline examiner
fitted on 60 pairs, a tiny evaluation): every control changes what it drives, in place, and the numbers shown are
kit.hv_vlm's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.handwriting import ATTRIBUTES, Writers, style_differences, verification_pairs
from kit.hv_vlm import explore as ex
from kit.hv_vlm.examiner import ScriptedBackend
from kit.hv_vlm.model import SiameseVerifier, same_writer_probability
from kit.hv_vlm.offline_examiner import OfflineExaminer

torch.set_num_threads(1)
STROKES = [[[20, 150], [40, 90], [60, 150]], [[90, 150], [110, 90], [130, 150]], [[200, 150], [200, 30]]]


@pytest.fixture(scope="module")
def writers() -> Writers:
    return Writers(30, seed=3, noise=1.8)


@pytest.fixture(scope="module")
def model() -> SiameseVerifier:
    torch.manual_seed(0)
    return SiameseVerifier(width=4).eval()


@pytest.fixture(scope="module")
def examiner(writers) -> OfflineExaminer:
    images = np.concatenate([writers.sample(w, 3, np.random.default_rng([0, w])) for w in range(30)])
    pairs = verification_pairs(np.repeat(np.arange(30), 3), 0)[:60]
    return OfflineExaminer().fit(images[pairs[:, 0]], images[pairs[:, 1]], pairs[:, 2])


@pytest.fixture(scope="module")
def evaluation(model, examiner):
    from kit.hv_vlm.config import preset
    from kit.hv_vlm.experiment import evaluate, load_data

    cfg = preset("tiny", n_writers=30, samples_per_writer=4, device="cpu")
    data = load_data(cfg, train=False)
    return evaluate(cfg, model, data, examiner=examiner, n_examiner_pairs=20, progress=False), data


# --------------------------------------------------------------------------------------------------- pair viewer
def test_pair_viewer_follows_the_controls(model, examiner, writers):
    from widgets.hv_vlm import DIFFER_COLOUR, PairViewer

    view = PairViewer(model, examiner, writers, wa=0, wb=1)
    fig, meter = view.figure, view.meter
    images, boxes, (sa, sb) = ex.writer_pair(writers, 0, 1, 0, 1)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), images[0])
    np.testing.assert_array_equal(np.asarray(fig.data[4].z), images[1])
    assert fig.layout.annotations[0].text == "Known: writer 0, sample 0"
    assert fig.layout.annotations[1].text == "Questioned: writer 1, sample 1"
    v = view.view
    assert "different writers" in view.readout.value and v.decision in view.readout.value
    assert f"P(same) <b>{same_writer_probability(model, images[0], images[1]):.2f}</b>" in view.readout.value
    # red dots: one per mark of every attribute the explanation says differs, on each image
    differ = [m for m in v.marks("known") if v.claimed[m[2]] == "differ"]
    assert len(fig.data[2].x) == len(differ) > 0 and fig.data[2].marker.color == DIFFER_COLOUR
    assert len(fig.data[3].x) == len(v.marks("known")) - len(differ)
    assert len(fig.data[6].x) == len(differ) and all("claims differ" in t for t in fig.data[6].text)
    assert len([x for x in fig.data[1].x if x is None]) == 3  # three letter boxes
    # the meter: true gaps, coloured by the claims, the faithfulness scores in its title
    np.testing.assert_allclose(meter.data[0].y, [style_differences(sa, sb)[a] for a in ATTRIBUTES])
    colours = dict(zip(ATTRIBUTES, meter.data[0].marker.color))
    assert all((colours[a] == DIFFER_COLOUR) == (v.claimed.get(a) == "differ") for a in ATTRIBUTES)
    assert f"precision {v.faithfulness['precision']:.2f}" in meter.layout.title.text
    # the explanation per feature heading, differing headings highlighted, and the examiner's measurements
    assert "<b style='color:#d62728'>Slant</b>" in view.explanation.value or v.claimed["slant"] == "similar"
    assert "Overall" in view.explanation.value and "parsed as" in view.explanation.value
    assert "measurements" in view.measurements.value and "x-height" in view.measurements.value
    view.writer_a.value = 7
    assert view.figure is fig and fig.layout.annotations[0].text == "Known: writer 7, sample 0"
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), ex.writer_pair(writers, 7, 1, 0, 1)[0][0])
    view.same.value = True  # writer B follows A, a second sample of the same writer
    assert view.writer_b.value == 7 and view.writer_b.disabled and view.view.same_writer is True
    assert fig.layout.annotations[1].text == "Questioned: writer 7, sample 1"
    assert "truth: <b>same writer</b>" in view.readout.value
    np.testing.assert_allclose(meter.data[0].y, 0.0)  # one writer: no true gaps
    view.sample_b.value = 3
    np.testing.assert_array_equal(np.asarray(fig.data[4].z), ex.writer_pair(writers, 7, 7, 0, 3)[0][1])
    view.writer_a.value = 2
    assert view.writer_b.value == 2 and fig.layout.annotations[1].text == "Questioned: writer 2, sample 3"


def test_pair_viewer_draw_your_own_and_backends(model, examiner, writers):
    from widgets.hv_vlm import DrawCanvas, PairViewer

    scripted = ScriptedBackend(["Slant: the slant differs.\n\nSpacing: the spacing is consistent.", "No."])
    view = PairViewer(model, {"offline": examiner, "scripted": scripted}, writers, wa=3, wb=4)
    assert view.widget.children[0].children[0] is view.backend
    view.backend.value = "scripted"
    assert view.view.claimed == {"slant": "differ", "spacing": "similar"} and view.view.assessment is None
    assert [m[2] for m in view.view.marks("known")] == ["slant", "spacing", "spacing"]
    assert len(view.figure.data[2].x) == 1 and len(view.figure.data[3].x) == 2 and view.measurements.value == ""
    view.backend.value = "offline"
    known = np.asarray(view.figure.data[0].z).copy()
    view.mode.value = "draw your own"
    assert view._canvas_box.layout.display is None and view._pickers.layout.display == "none"
    assert "write <b>and</b> on the canvas" in view.readout.value  # nothing drawn yet: nothing compared
    view.canvas.strokes = STROKES  # what the browser's canvas syncs
    np.testing.assert_array_equal(np.asarray(view.figure.data[4].z), ex.drawn_to_image(STROKES))
    np.testing.assert_array_equal(np.asarray(view.figure.data[0].z), known)  # writer A's sample stays
    assert view.figure.layout.annotations[1].text == "Questioned: your drawing"
    assert view.view.same_writer is None and view.view.faithfulness is None
    assert "needs two synthetic writers" in view.meter.layout.title.text
    assert len([x for x in view.figure.data[5].x if x is None]) == 3  # boxes guessed from the drawing's ink
    view.canvas.clear()
    assert view.canvas.strokes == [] and "write <b>and</b>" in view.readout.value
    view.mode.value = "writer samples"
    assert view.figure.layout.annotations[1].text == "Questioned: writer 4, sample 1"
    with pytest.raises(ValueError, match="ChatBackend"):
        PairViewer(model, {}, writers)
    assert isinstance(view.canvas, DrawCanvas)


def test_draw_canvas_traitlet_to_image():
    from widgets.hv_vlm import DrawCanvas

    canvas = DrawCanvas(canvas_width=300, canvas_height=160)
    state = canvas.get_state()
    assert state["strokes"] == [] and state["canvas_width"] == 300 and "render" in state["_esm"]
    assert canvas.widget is canvas and not canvas.has_ink
    with pytest.raises(ValueError, match="no ink"):
        canvas.image()
    canvas.set_state({"strokes": STROKES})  # as the front end sends it
    assert canvas.has_ink
    img = canvas.image(64)
    assert img.shape == (64, 64) and img.dtype == np.uint8 and (img < 128).any()
    np.testing.assert_array_equal(img, ex.drawn_to_image(STROKES, 64))
    assert canvas.image(96).shape == (96, 96)
    with pytest.raises(ValueError, match="canvas"):
        DrawCanvas(canvas_width=10)


# --------------------------------------------------------------------------------------------------- results
def test_noise_slider_moves_the_marker_and_the_examples(model, examiner):
    from widgets.hv_vlm import NoiseSlider

    sweep = ex.noise_sweep(model, examiner, noises=(0.3, 1.4, 2.6), n_writers=8, samples_per_writer=3,
                           n_examiner_pairs=16, progress=False)
    view = NoiseSlider(sweep)
    fig = view.figure
    assert [t.name for t in fig.data[:3]] == ["Siamese ResNet-18", "HOG cosine", "examiner: offline-examiner"]
    assert list(fig.data[1].y) == sweep["accuracy"]["hog_cosine"] and fig.data[4].name == "chance"
    assert list(fig.data[4].y) == [0.5, 0.5]
    marker = fig.data[3]
    assert list(marker.x) == [0.3] * 3 and list(marker.y) == [sweep["accuracy"][m][0] for m in view.methods]
    np.testing.assert_array_equal(np.asarray(view.examples.data[1].z), sweep["examples"][0, 1])
    view.slider.value = 2.6
    assert view.figure is fig and list(fig.data[3].x) == [2.6] * 3
    assert fig.data[3].y[1] == sweep["accuracy"]["hog_cosine"][2]
    np.testing.assert_array_equal(np.asarray(view.examples.data[1].z), sweep["examples"][2, 1])
    assert "noise 2.6" in view.readout.value and "coverage" in view.readout.value
    notes = {a.text for a in fig.layout.annotations}
    for m, x in view.first_below.items():
        assert (x is None) or f"{sweep['labels'][m]} < 0.7 at noise {x:g}" in notes
    assert view.first_below["siamese"] == 0.3  # an untrained model is at chance from the start


def test_verdict_dashboard(evaluation):
    from widgets.hv_vlm import VerdictDashboard

    result, data = evaluation
    view = VerdictDashboard(result, data=data)
    names = list(view.confusion)
    assert names == ["Siamese ResNet-18", "HOG cosine", "examiner: offline-examiner"]
    y = result["examiner_pairs"][:, 2]
    for m in view.confusion.values():
        assert m.sum() == len(y) and m[1].sum() == y.sum()
    exam = view.confusion[names[2]]
    assert exam.shape == (2, 4) and np.trace(exam[:, :2]) / exam.sum() == pytest.approx(
        result["examiner_row"]["accuracy"])
    np.testing.assert_array_equal(np.asarray(view.confusion_figure.data[2].z), exam)
    assert "coverage <b>1.00</b>" in view.coverage.value and "0 Unknown, 0 Both" in view.coverage.value
    scores, labels = result["scores"]["siamese"], data.pairs["test"][:, 2]
    np.testing.assert_allclose(view.figure.data[0].x, scores[labels == 1])
    np.testing.assert_allclose(view.figure.data[1].x, scores[labels == 0])
    base = view.readout.value
    view.threshold.value = 0.0  # everything called "same writer"
    assert view.figure.data[2].x == (0.0, 0.0) and view.readout.value != base
    m = view.at_threshold()
    assert m["recall"] == 1.0 and m["accuracy"] == pytest.approx(labels.mean())
    assert f"accuracy <b>{m['accuracy']:.3f}</b>" in view.readout.value
    assert list(view.figure.data[-1].y) == [m[k] for k in ("accuracy", "precision", "recall", "f1")]
    faith = view.faithfulness_figure
    assert faith is not None and faith.data[0].x == tuple(result["faithfulness"]["per_attribute"])
    assert np.array_equal(VerdictDashboard(result).labels, labels)  # evaluate stores the test labels
    bare = {**result, "scores": {"siamese": result["scores"]["siamese"]}}
    unlabelled = VerdictDashboard(bare)  # scores without labels: one grey histogram
    assert unlabelled.labels is None and len(unlabelled.figure.data) == 2
    assert "pass data= or labels=" in unlabelled.readout.value
    with pytest.raises(ValueError, match="one label per test pair"):
        VerdictDashboard(result, labels=[1, 0])


def test_results_table_and_training_curves(evaluation):
    from widgets.hv_vlm import TrainingCurves, results_table

    result, _ = evaluation
    text = results_table(result)
    assert "ours (synthetic writers)" in text and "paper (CEDAR AND)" in text
    assert text.index("ours (synthetic writers)") < text.index("paper (CEDAR AND)")
    assert "GPT-4o, 0-shot CoT" in text and "examiner: offline-examiner" in text and "&ndash;" in text
    curve = TrainingCurves()
    curve({"step": 10, "kind": "train", "loss": 0.7, "lr": 1e-3, "samples": 640})
    curve({"step": 20, "kind": "eval", "val_accuracy": 0.6, "val_f1": 0.55, "val_auc": 0.6})
    curve({"step": 40, "kind": "eval", "val_accuracy": 0.7, "val_f1": 0.5, "val_auc": 0.7})
    curve.flush()
    assert [t.name for t in curve.figure.data] == ["loss", "eval/val_accuracy", "eval/val_f1"]
    assert curve.figure.data[2].yaxis == "y2" and curve.figure.data[0].yaxis == "y"
    assert curve.best == (20, 0.55) and "best F1 <b>0.550</b> at step 20" in curve.readout.value


# --------------------------------------------------------------------------------------------------- the canvas in node
_NODE_CHECK = r"""
import { readFileSync } from "node:fs";
const source = readFileSync(process.argv[2], "utf8");
const { default: widget } = await import("data:text/javascript;base64," + Buffer.from(source).toString("base64"));
function element(tag) {
  const listeners = {};
  return {
    tag, style: {}, children: [], listeners, textContent: "",
    appendChild(c) { this.children.push(c); },
    addEventListener(name, fn) { listeners[name] = fn; },
    getContext() {
      const ops = new Proxy({}, { get: (t, k) => (k in t ? t[k] : () => {}), set: (t, k, v) => { t[k] = v; return true; } });
      return ops;
    },
    getBoundingClientRect() { return { left: 10, top: 20, width: this.width / 2, height: this.height / 2 }; },
    setPointerCapture() {},
    click() { listeners.click(); },
  };
}
globalThis.document = { createElement: element };
const state = { strokes: [], canvas_width: 300, canvas_height: 160, line_width: 7 };
const handlers = {};
let saves = 0;
const model = {
  get: (k) => state[k], set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
  save_changes: () => { saves += 1; }, on: (e, f) => { (handlers[e] ||= []).push(f); },
  off: (e, f) => { handlers[e] = (handlers[e] || []).filter((g) => g !== f); },
};
const el = element("div");
const cleanup = widget.render({ model, el });
const root = el.children[0];
const canvas = root.children[0];
const [undo, clear] = root.children[1].children;
const ev = (x, y) => ({ clientX: x, clientY: y, pointerId: 1, preventDefault() {} });
canvas.listeners.pointerdown(ev(20, 30));
canvas.listeners.pointermove(ev(30, 40));
canvas.listeners.pointermove(ev(30.1, 40));  // under a canvas pixel: not a new point
canvas.listeners.pointerup(ev(40, 50));
canvas.listeners.pointerdown(ev(60, 30));
canvas.listeners.pointerup(ev(60, 30));
const drawn = JSON.parse(JSON.stringify(state.strokes));
undo.click();
const afterUndo = state.strokes.length;
clear.click();
cleanup();
console.log(JSON.stringify({ drawn, afterUndo, afterClear: state.strokes.length, saves,
  size: [canvas.width, canvas.height], touchAction: canvas.style.touchAction,
  left: Object.values(handlers).reduce((n, h) => n + h.length, 0) }));
"""


def test_draw_canvas_front_end_records_strokes(tmp_path):
    """widgets/hv_vlm_draw.js run in node against a fake DOM and widget model: pointer strokes (canvas pixels, the
    canvas shown at half size) are appended to ``strokes``, Undo drops the last, Clear all."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "check.mjs"
    script.write_text(_NODE_CHECK)
    js = Path(__file__).resolve().parents[2] / "widgets" / "hv_vlm_draw.js"
    done = subprocess.run([node, str(script), str(js)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["drawn"] == [[[20, 20], [40, 40]], [[100, 20]]], got  # the first move is kept, the tiny one dropped
    assert (got["afterUndo"], got["afterClear"], got["saves"]) == (1, 0, 4)
    assert got["size"] == [300, 160] and got["touchAction"] == "none" and got["left"] == 0
