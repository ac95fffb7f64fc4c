"""The numbers behind the facesem views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.faces import TAU, random_identity, render_face
from kit.facesem import explore as xp
from kit.facesem.graph import hex_marginals, is_legal
from kit.facesem.models import build_detector

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_detector("so").eval()


def test_node_view_reads_one_scores_vector_two_ways(model):
    face = render_face(random_identity(np.random.default_rng(0)))
    v = xp.node_view(model, face)
    with torch.no_grad():
        f = model(xp.to_input(face))
    np.testing.assert_allclose(v.graph, hex_marginals(f)[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.sigmoid, torch.sigmoid(f)[0].numpy(), rtol=1e-6)
    assert v.sigmoid_legal == bool(is_legal((v.sigmoid >= 0.5).astype(int))[0])
    assert v.sigmoid_legal == (v.violations == [])
    assert len(v.top) == 5 and abs(sum(p for _, p in v.top)) <= 1.0
    with pytest.raises(ValueError, match="12-node"):
        xp.node_view(build_detector("binary").eval(), face)


def test_violations_name_the_broken_rule():
    on = np.zeros(12, int)
    on[[2, 6]] = 1  # expression and eye, no fake
    assert xp.violations(on) == ["expression without fake"]
    on = np.zeros(12, int)
    on[7] = 1
    assert xp.violations(on) == ["eyebrow with no attribute"]


def test_strength_sweep_and_traces(model):
    rng = np.random.default_rng(1)
    sw = xp.strength_sweep(model, "so", random_identity(rng), "smile", [0.0, 0.5, 1.0])
    assert sw["images"].shape == (3, 48, 48, 3) and sw["p_fake"].shape == (3,) and sw["tau"] == TAU
    hist = [{"step": 5, "kind": "train", "lambda1": 1.0, "lambda2": 1.1, "lambda3": 0.9, "L1": 0.7, "L2": 0.3,
             "L3": 0.4}, {"step": 5, "kind": "eval", "val_auc": 0.6}]
    tr = xp.lambda_trace(hist)
    assert tr["step"].tolist() == [5] and tr["lambda2"][0] == 1.1
    with pytest.raises(ValueError, match="Auto-lambda"):
        xp.lambda_trace([{"step": 1, "kind": "train", "loss": 1.0}])
    rows = [{"mode": "so", "protocol": "p1", "auc": 0.8}, {"mode": "so", "protocol": "p1", "auc": 0.6},
            {"mode": "binary", "protocol": "p1", "auc": 0.7}]
    pm = xp.protocol_matrix(rows)
    assert pm["modes"] == ["so", "binary"] and pm["values"][0, 0] == pytest.approx(0.7)
    assert pm["std"][0, 0] == pytest.approx(np.std([0.8, 0.6], ddof=1)) and pm["std"][1, 0] == 0.0
    with pytest.raises(ValueError, match="uint8 RGB"):
        xp.to_input(np.zeros((4, 4), np.uint8))


def test_gradcam_weights_the_last_block_by_the_targets_gradient(model):
    face = render_face(random_identity(np.random.default_rng(2)))
    cam = xp.gradcam(model, "so", face, node=0)
    assert cam.shape == (48, 48) and cam.dtype == np.float32 and 0 <= cam.min() and cam.max() <= 1
    # the same map, computed without hooks: activations of the feature block, gradient of the fake marginal
    x = xp.to_input(face)
    a = model.backbone.features(x).detach().requires_grad_(True)
    target = hex_marginals(model.head(model.dropout(a.mean(dim=(2, 3)))))[0, 0]
    g = torch.autograd.grad(target, a)[0]
    ref = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    ref = torch.nn.functional.interpolate(ref, size=(48, 48), mode="bilinear", align_corners=False)[0, 0]
    ref = (ref / ref.max()).detach().numpy() if float(ref.max()) > 0 else ref.detach().numpy()
    np.testing.assert_allclose(cam, ref, atol=1e-5)
    with pytest.raises(ValueError, match="node must be"):
        xp.gradcam(model, "so", face, node=12)
