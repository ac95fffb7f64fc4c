"""The ShapesWorld image-text scorer: shapes, preprocessing, training pairs, committed weights, save / load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.shapes import BACKGROUND, Scene, ShapeObject, caption, render, tokenize
from kit.dtiil import scorer as S
from kit.dtiil.words import predict_run


@pytest.fixture(scope="module")
def committed():
    return S.load_shapes_scorer()


def test_forward_and_score_shapes_and_ranges():
    torch.manual_seed(0)
    m = S.ShapesScorer().eval()
    ids, off = m.tokenize(["A photo of big red circle", "a zebra", ""])
    assert ids.tolist()[:4] == [m.index["a"], m.index["photo"], m.index["of"], m.index["big"]]
    assert ids.tolist()[-1] == 0 and off.tolist() == [0, 6, 8]                  # "zebra" -> <unk>
    logits = m(torch.rand(5, 3, 32, 32), ids, off)
    assert logits.shape == (5, 3)
    emb = m.encode_image(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    s = m.score([np.zeros((10, 14, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)],
                ["A photo of circle", "square"])
    assert s.shape == (2, 2) and np.all(np.abs(s) <= 1 + 1e-6)
    with pytest.raises(ValueError, match="32, 32"):
        m.encode_image(torch.rand(2, 3, 16, 16))


def test_prepare_images_keeps_the_scale_and_centres_crops():
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    piece = rng.integers(0, 256, (10, 6, 3), dtype=np.uint8)
    x = S.prepare_images([full, piece])
    torch.testing.assert_close(x[0], torch.from_numpy(full).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(x[1, :, 11:21, 13:19], torch.from_numpy(piece).permute(2, 0, 1).float() / 255)
    bg = torch.tensor(BACKGROUND, dtype=torch.float32) / 255
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[11:21, 13:19] = False
    torch.testing.assert_close(x[1][:, outside], bg[:, None].expand(3, int(outside.sum())))
    half = S.prepare_images([np.full((20, 12, 3), 200, np.uint8)], canvas=64)[0]     # from a 64 x 64 image
    assert half[0, 11:21, 13:19].gt(0.5).all() and half[0].gt(0.5).sum() == 10 * 6


def test_training_pairs_are_one_attribute_twins():
    pairs = S.scorer_training_pairs(60, np.random.default_rng(3))
    assert len(pairs) == 60 and len(pairs.images) == 60
    again = S.scorer_training_pairs(60, np.random.default_rng(3))
    assert again.texts == pairs.texts
    assert all(np.array_equal(a, b) for a, b in zip(again.images, pairs.images))
    n_crops = 0
    for k in range(0, 60, 2):
        a, b = tokenize(pairs.texts[k]), tokenize(pairs.texts[k + 1])
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
        if pairs.objects[k] is not None:
            n_crops += 1
            assert pairs.texts[k].startswith("A photo of ") and set(a[3:]) <= set(pairs.objects[k])
            assert sum(x != y for x, y in zip(pairs.objects[k], pairs.objects[k + 1])) == 1
            assert pairs.images[k].shape[0] < 32 and pairs.images[k].dtype == np.uint8
    assert 10 <= n_crops < 30


def test_positive_pairs_follow_what_the_phrases_say():
    crops = [np.zeros((8, 8, 3), np.uint8)] * 4
    pairs = S.ScorerPairs(
        crops + [np.zeros((32, 32, 3), np.uint8)] * 2,
        ["A photo of big red circle", "A photo of circle", "A photo of small red circle", "A photo of square",
         "a big red circle", "a big red circle"],
        [("big", "red", "circle"), ("small", "blue", "circle"), ("small", "red", "circle"),
         ("big", "red", "square"), None, None])
    pos = S.positive_pairs(pairs)
    want = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0],
                         [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(pos, want)
    assert torch.equal(S.positive_pairs(pairs, [3, 0]), torch.eye(2, dtype=torch.bool))


def test_committed_weights_pick_the_right_phrase_on_held_out_crops(committed):
    acc = S.evaluate_shapes_scorer(committed, n=20, seed=7)
    assert acc["one_word"] >= 0.8, acc
    assert acc["run_choice"] >= 0.8, acc


@pytest.mark.parametrize("k", [0, 1])
def test_committed_scorer_names_the_object_under_the_mask(committed, k):
    scene = Scene((ShapeObject("triangle", "green", "big", 0.3, 0.3),
                   ShapeObject("cross", "white", "small", 0.7, 0.7)))
    image, masks = render(scene)
    pred = predict_run(committed, image, masks[k], caption(scene), backend="fallback")
    assert pred.run.text == ["big green triangle", "small white cross"][k]


def test_committed_weights_are_small_float16():
    from safetensors.torch import load_file

    size = sum(p.stat().st_size for p in S.ASSET_DIR.iterdir())
    assert size < 1_000_000
    assert {t.dtype for t in load_file(S.ASSET_DIR / "scorer.safetensors").values()} == {torch.float16}


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    m = S.ShapesScorer().eval()
    m1 = S.load_shapes_scorer(S.save_scorer(m, tmp_path / "a", metadata={"note": 1}))
    for k, v in m.state_dict().items():
        torch.testing.assert_close(m1.state_dict()[k], v.half().float(), rtol=0, atol=0)
    m2 = S.load_shapes_scorer(S.save_scorer(m1, tmp_path / "b"))
    for k, v in m1.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v)
    texts, crops = ["A photo of red circle", "A photo of square"], [np.full((9, 9, 3), 90, np.uint8)]
    np.testing.assert_array_equal(m1.score(crops, texts), m2.score(crops, texts))
    assert not list(tmp_path.glob("*/*.tmp"))
    assert m1.canvas == 32 and S.load_shapes_scorer(tmp_path / "b", canvas=64).canvas == 64


def test_load_from_a_missing_folder_names_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m kit.dtiil.scorer --out kit/assets/dtiil_scorer"):
        S.load_shapes_scorer(tmp_path)


def test_training_is_deterministic_for_a_seed():
    a, log_a = S.train_shapes_scorer(steps=3, batch=8, seed=5, progress=False)
    b, log_b = S.train_shapes_scorer(steps=3, batch=8, seed=5, progress=False)
    c, _ = S.train_shapes_scorer(steps=3, batch=8, seed=6, progress=False)
    assert log_a["loss"] == log_b["loss"] and len(log_a["loss"]) == 3 and log_a["pool"] == 24
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v)
    assert not torch.equal(c.state_dict()["word_bag.weight"], a.state_dict()["word_bag.weight"])
    assert not a.training
    with pytest.raises(ValueError, match="even"):
        S.train_shapes_scorer(steps=1, batch=7, progress=False)
