"""facesem training and evaluation on tiny procedural faces: the protocols' data, each mode's head and loss, Auto-
lambda in the loop, and the scores read the way each detector means them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.facesem import experiment as ex
from kit.facesem.models import build_detector, head_size

torch.set_num_threads(1)


def cfg_(**kw):
    base = dict(n_train=120, n_val=60, n_test=80, n_identities=30, steps=4, batch_size=16, eval_every=2,
                device="cpu")
    return ex.preset("tiny", **{**base, **kw})


def test_protocol_data_hold_out_what_they_say():
    p1 = ex.make_data(cfg_(protocol="protocol1"))
    assert set(p1["train"].generator) <= {"", "A", "B"} and set(p1["test"].generator) <= {"", "C"}
    p2 = ex.make_data(cfg_(protocol="protocol2", held_out="pose"))
    assert "pose" not in set(p2["train"].edit) and set(p2["test"].edit[p2["test"].is_fake == 1]) == {"pose"}
    d = ex.make_data(cfg_())
    assert not np.array_equal(d["train"].images[:5], d["test"].images[:5])


def test_method_classes():
    d = ex.make_data(cfg_())
    c, methods = ex.method_classes(d["train"])
    fake = d["train"].is_fake == 1
    assert (c[~fake] == 0).all() and (c[fake] >= 1).all() and len(methods) == c.max()
    assert all("/" in m for m in methods)
    c2, _ = ex.method_classes(d["test"], methods)
    assert c2.max() <= len(methods)


@pytest.mark.parametrize("mode", ["so", "sigmoid", "binary", "multiclass"])
def test_each_mode_trains_and_evaluates(mode):
    d = ex.make_data(cfg_())
    r = ex.train(cfg_(mode=mode), d, progress=False)
    ev = ex.evaluate(r.model, mode, d["test"])
    assert 0 <= ev["auc"] <= 1 and ev["n"] == 80
    train_events = [h for h in r.history if h["kind"] == "train"]
    if mode == "so":
        assert len(r.lambdas) == 4 and {"lambda1", "L3"} <= set(train_events[-1])
        assert ev["map_impossible_rate"] == 0.0
    else:
        assert r.lambdas == []
    if mode in ("so", "sigmoid"):
        assert 0 <= ev["impossible_rate"] <= 1


def test_fake_scores_per_mode():
    s = torch.tensor([[2.0, -1.0, 0.5]])
    assert ex.fake_scores(s[:, :1], "binary")[0] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())
    assert ex.fake_scores(s, "multiclass")[0] == pytest.approx(1 - torch.softmax(s, 1)[0, 0].item())
    f = torch.randn(3, 12)
    from kit.facesem.graph import hex_marginals

    np.testing.assert_allclose(ex.fake_scores(f, "so"), hex_marginals(f)[:, 0].numpy())


def test_models_and_bad_config():
    assert head_size("so") == 12 and head_size("multiclass", 5) == 6
    m = build_detector("binary")
    assert m(torch.rand(2, 3, 48, 48)).shape == (2, 1)
    with pytest.raises(ValueError, match="n_methods"):
        head_size("multiclass")
    with pytest.raises(ValueError, match="faces must be"):
        m(torch.rand(2, 1, 48, 48))
    with pytest.raises(ValueError, match="backbone must be"):
        build_detector("so", "resnet")
    with pytest.raises(ValueError, match="protocol must be"):
        ex.preset("tiny", protocol="cross")
    with pytest.raises(ValueError, match="held_out"):
        ex.preset("tiny", held_out="beard")


def test_full_backbones_build_offline():
    x = build_detector("so", "clip_vit_b32")
    assert x(torch.rand(1, 3, 224, 224)).shape == (1, 12)


def test_augmented_batches_degrade_some_faces_and_train():
    d = ex.make_data(cfg_())
    classes, _ = ex.method_classes(d["train"])
    plain = ex._Batches(d["train"], classes, 64, seed=3)(0)[0]
    aug = ex._Batches(d["train"], classes, 64, seed=3, augment=1.0)(0)[0]
    changed = [not torch.equal(a, b) for a, b in zip(plain, aug)]
    assert sum(changed) >= 48  # every face degraded (a JPEG at 90 may leave a rare face as it was)
    r = ex.train(cfg_(augment=0.3), d, progress=False)
    assert 0 <= ex.evaluate(r.model, "so", d["test"])["auc"] <= 1
    with pytest.raises(ValueError, match="augment"):
        ex.preset("tiny", augment=1.5)
