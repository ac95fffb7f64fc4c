"""facesem views on small real inputs (12 procedural faces, an untrained "so" detector on the small CNN): every
control changes what it drives, in place, and the numbers shown are kit.facesem.explore's."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from PIL import Image

from kit.data.faces import EDITS, TAU, make_faces, random_identity, render_face
from kit.facesem import explore as ex
from kit.facesem.graph import CHILDREN, NODES
from kit.facesem.models import build_detector

torch.set_num_threads(1)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_detector("so").eval()


@pytest.fixture(scope="module")
def faces():
    return make_faces(12, seed=0, size=48)


def _constant(model, bias: dict[int, float]):
    """A copy of ``model`` whose scores are the same for every face: -5 on each node but those in ``bias``."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.fill_(-5.0)
        for i, b in bias.items():
            m.head.bias[i] = b
    return m


# --------------------------------------------------------------------------------------------------- label graph
def test_label_dag_nodes_readout_and_face(model, faces):
    from widgets.facesem import TRUTH_STYLE, LabelDAG

    dag = LabelDAG(model, faces, index=0)
    fig = dag.figure
    nodes = fig.data[1]
    v = ex.node_view(model, faces.images[0])
    n_edges = sum(len(c) for c in CHILDREN.values())  # 29: fake -> 5 attributes, 24 attribute -> region
    np.testing.assert_allclose(nodes.marker.color, v.graph, rtol=1e-6)
    np.testing.assert_allclose(dag.view.sigmoid, v.sigmoid, rtol=1e-6)
    assert list(nodes.y) == [2] + [1] * 5 + [0] * 6 and nodes.x[0] == 2.5 and len(fig.data[0].x) == 3 * n_edges
    assert all(f"{p:.2f}" in t and n in t for n, p, t in zip(NODES, v.graph, nodes.text))
    truth = faces.labels[0]
    assert list(nodes.marker.line.color) == [TRUTH_STYLE[int(t)][0] for t in truth]
    assert list(nodes.marker.line.width) == [TRUTH_STYLE[int(t)][1] for t in truth]
    assert [t.name for t in fig.data[2:]] == [s[2] for s in TRUTH_STYLE.values()]
    np.testing.assert_array_equal(_png(dag.image.value), faces.images[0])
    assert f"edit <b>{faces.edit[0]}</b>, strength {faces.strength[0]:.2f}" in dag.readout.value
    assert ("legal</b>" in dag.readout.value) and (v.graph_legal == ("illegal" not in dag.readout.value))
    assert all(f"<b>{p:.3f}</b>" in dag.top.value for _, p in v.top) and dag.top.value.count("<li>") == 5

    dag.set_readout("independent sigmoids")  # same NodeView, the other field
    assert dag.figure is fig and dag.toggle.value == "independent sigmoids"
    np.testing.assert_allclose(nodes.marker.color, v.sigmoid, rtol=1e-6)
    assert "independent sigmoids" in dag.readout.value and "independent sigmoids" in fig.layout.title.text
    dag.toggle.value = "graph marginals"  # the toggle itself drives it
    np.testing.assert_allclose(nodes.marker.color, v.graph, rtol=1e-6)

    k = next(i for i in range(1, 12) if faces.labels[i].tolist() != truth.tolist())
    dag.slider.value = k  # the slider drives face, nodes, outlines and read-out
    w = ex.node_view(model, faces.images[k])
    np.testing.assert_allclose(nodes.marker.color, w.graph, rtol=1e-6)
    assert list(nodes.marker.line.color) == [TRUTH_STYLE[int(t)][0] for t in faces.labels[k]]
    np.testing.assert_array_equal(_png(dag.image.value), faces.images[k])
    assert f"<b>face {k}</b>" in dag.readout.value and f"generator {faces.generator[k] or 'none'}" in dag.readout.value
    dag.show(3)
    assert dag.index == 3 and np.allclose(dag.view.scores, ex.node_view(model, faces.images[3]).scores, rtol=1e-6)

    with pytest.raises(ValueError, match="12-node detector"):
        LabelDAG(build_detector("binary").eval(), faces)
    with pytest.raises(ValueError, match="read-out must be one of"):
        dag.set_readout("softmax")
    with pytest.raises(ValueError, match="0 <= index < 12"):
        dag.show(12)
    with pytest.raises(ValueError, match="threshold"):
        LabelDAG(model, faces, threshold=1.0)


def test_label_dag_illegal_sigmoid_set_in_red(model, faces):
    from widgets.facesem import LabelDAG

    dag = LabelDAG(_constant(model, {6: 5.0}), faces)  # sigmoids: eye on, nothing else
    v = dag.view
    assert not v.sigmoid_legal and v.violations == ["eye with no attribute"] and v.graph_legal
    assert "<b style='color:#2ca02c'>legal</b>" in dag.readout.value and "none (real)" in dag.readout.value
    dag.set_readout("independent sigmoids")
    assert "illegal</b>" in dag.readout.value and "<li>eye with no attribute</li>" in dag.readout.value
    assert "color:#d62728" in dag.readout.value and "<b>eye</b>" in dag.figure.data[1].text[6]
    # eye's mass split over three parents: each parent's marginal < 0.5, so the thresholded marginals break the graph
    split = LabelDAG(_constant(model, {0: 5.0, 1: -1.5, 2: -1.5, 3: -1.5, 6: 5.0}), faces)
    assert not split.view.graph_legal and split.probabilities[1] < 0.5 < split.probabilities[6]
    assert "illegal</b>" in split.readout.value and "<li>eye with no attribute</li>" in split.readout.value
    clean = LabelDAG(_constant(model, {}), faces, index=2)
    clean.set_readout("independent sigmoids")
    assert clean.view.sigmoid_legal and "illegal" not in clean.readout.value


# --------------------------------------------------------------------------------------------------- threshold
def test_threshold_slider_curve_face_and_tau(model):
    from widgets.facesem import ThresholdSlider

    who = random_identity(np.random.default_rng(3))
    ts = ThresholdSlider(model, "so", who)
    fig, curve, point = ts.figure, ts.figure.data[1], ts.figure.data[2]
    assert ts.edit == "age" and ts.strength == 0.5
    sweep = ex.strength_sweep(model, "so", who, "age")
    np.testing.assert_allclose(curve.x, np.linspace(0, 1, 11))
    np.testing.assert_allclose(curve.y, sweep["p_fake"], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), render_face(who, "age", 0.5))
    p = ex.strength_sweep(model, "so", who, "age", [0.5])["p_fake"][0]
    assert list(point.x) == [0.5] and point.y[0] == pytest.approx(p, rel=1e-5)
    assert f"P(fake) = <b>{p:.3f}</b>" in ts.readout.value and "fake</b> by definition" in ts.readout.value
    rect, line = fig.layout.shapes
    assert (rect.x0, rect.x1, line.x0, line.x1, line.line.dash) == (TAU, 1.0, TAU, TAU, "dash")
    assert fig.layout.annotations[2].text == "tau: fake by definition"

    swept = ts.sweep
    ts.slider.value = 0.2  # strength: the face and the marker move, the curve stays
    assert ts.sweep is swept and "real</b> by definition" in ts.readout.value
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), render_face(who, "age", 0.2))
    assert list(point.x) == [0.2]
    ts.dropdown.value = "smile"  # edit: the curve is recomputed
    assert ts.sweep is not swept and fig.layout.annotations[1].text.endswith("smile (so)")
    np.testing.assert_allclose(curve.y, ex.strength_sweep(model, "so", who, "smile")["p_fake"], rtol=1e-5)
    ts.set("identity", 0.7)  # other=None: the identity edit moves towards random_identity(default_rng(1))
    other = random_identity(np.random.default_rng(1))
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), render_face(who, "identity", 0.7, 48, other))
    np.testing.assert_allclose(curve.y, ex.strength_sweep(model, "so", who, "identity", other=other)["p_fake"],
                               rtol=1e-5)
    assert list(point.x) == [0.7] and fig.layout.annotations[0].text == "identity, s = 0.70"

    with pytest.raises(ValueError, match="mode must be one of"):
        ThresholdSlider(model, "hex", who)
    with pytest.raises(ValueError, match="does not fit mode 'binary'"):
        ThresholdSlider(model, "binary", who)
    with pytest.raises(ValueError, match="edit must be one of"):
        ts.set("hat", 0.5)
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        ts.set("age", 1.5)
    with pytest.raises(ValueError, match="non-empty subset"):
        ThresholdSlider(model, "so", who, edits=())
    assert ThresholdSlider(model, "so", who, edits=EDITS[1:2]).dropdown.options == ("smile",)


# --------------------------------------------------------------------------------------------------- Auto-lambda
def test_lambda_trace_live_and_replayed():
    from widgets.facesem import LambdaTrace

    history = [{"step": 5, "kind": "train", "loss": 1.5, "lr": 1e-3, "lambda1": 1.0, "lambda2": 1.02, "lambda3": 0.97,
                "L1": 0.7, "L2": 0.3, "L3": 0.4},
               {"step": 10, "kind": "train", "loss": 1.2, "lr": 1e-3, "lambda1": 0.98, "lambda2": 1.05,
                "lambda3": 0.95, "L1": 0.6, "L2": 0.25, "L3": 0.35},
               {"step": 10, "kind": "eval", "val_auc": 0.6, "val_acc": 0.55}]
    live = LambdaTrace()
    assert len(live.figure.data) == 0
    live(history[0])
    live.flush()
    names = [t.name for t in live.figure.data]
    assert names[:3] == ["lambda L1 (real/fake)", "lambda L2 (attributes)", "lambda L3 (regions)"] and len(names) == 6
    assert {t.yaxis for t in live.figure.data[:3]} == {"y"} and {t.yaxis for t in live.figure.data[3:]} == {"y2"}
    replayed = LambdaTrace.from_history(history)
    tr = ex.lambda_trace(history)
    for k, trace in zip(["lambda1", "lambda2", "lambda3", "L1", "L2", "L3"], replayed.figure.data):
        np.testing.assert_allclose(trace.y, tr[k])
        np.testing.assert_array_equal(trace.x, tr["step"])
    assert replayed.figure.data[3].line.dash == "dot" and replayed.figure.data[0].line.color == \
        replayed.figure.data[3].line.color
    assert len(LambdaTrace(history).figure.data) == 6
    with pytest.raises(ValueError, match="Auto-lambda"):
        LambdaTrace.from_history([{"step": 1, "kind": "train", "loss": 1.0}])
    with pytest.raises(ValueError, match="list of event dicts"):
        LambdaTrace.from_history({"step": 1})


# --------------------------------------------------------------------------------------------------- protocols
def test_protocol_heatmap_cells_and_metric_switch():
    from widgets.facesem import ProtocolHeatmap

    rows = [{"mode": "so", "protocol": "in_distribution", "auc": 0.9, "acc": 0.8, "impossible_rate": 0.0},
            {"mode": "so", "protocol": "in_distribution", "auc": 0.8, "acc": 0.7, "impossible_rate": 0.0},
            {"mode": "so", "protocol": "protocol1", "auc": 0.7, "acc": 0.6, "impossible_rate": 0.1},
            {"mode": "binary", "protocol": "in_distribution", "auc": 0.85, "acc": 0.75},
            {"mode": "binary", "protocol": "protocol1", "auc": None, "acc": 0.5}]
    hm = ProtocolHeatmap(rows)
    trace = hm.figure.data[0]
    m = ex.protocol_matrix(rows, "auc")
    assert list(trace.y) == ["so", "binary"] and list(trace.x) == ["in_distribution", "protocol1"]
    assert trace.z[0][0] == pytest.approx(m["values"][0, 0]) and trace.z[1][1] is None
    assert trace.text[0][0] == f"{0.85:.3f} ± {np.std([0.9, 0.8], ddof=1):.3f}" and trace.text[1][1] == "n/a"
    assert list(hm.dropdown.options) == ["auc", "acc", "impossible_rate"]
    hm.dropdown.value = "acc"
    assert hm.figure.data[0] is trace and trace.z[1][1] == pytest.approx(0.5) and trace.text[1][1] == "0.500 ± 0.000"
    assert "acc" in hm.figure.layout.title.text
    hm.set_value("impossible_rate")
    np.testing.assert_allclose(np.asarray(trace.z[0], float), ex.protocol_matrix(rows, "impossible_rate")["values"][0])
    assert trace.reversescale and trace.z[1][0] is None
    with pytest.raises(ValueError, match="value must be one of the metrics in rows"):
        ProtocolHeatmap(rows, value="f1")
    with pytest.raises(ValueError, match="value must be one of"):
        ProtocolHeatmap(rows[3:], value="impossible_rate")
    with pytest.raises(ValueError, match="'mode', 'protocol'"):
        ProtocolHeatmap([{"auc": 0.5}])
