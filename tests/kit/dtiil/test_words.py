"""D-TIIL word step: caption runs, the largest mask region, crops, run prediction and the scorers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.shapes import Scene, ShapeObject, caption, render
from kit.dtiil import words as W

TWO = "a big red circle left of a small blue square"


def _spacy_or_skip():
    if W._spacy_nlp() is None:
        pytest.skip("spaCy's en_core_web_sm is not installed")


# ------------------------------------------------------------------------------------------------------- runs
def test_fallback_runs_of_a_two_object_caption_skip_the_relation():
    runs = W.caption_runs(TWO, backend="fallback")
    assert [r.text for r in runs] == ["big red circle", "small blue square"]
    assert runs[0] == W.Run("big red circle", ("big", "red", "circle"), 1, 4)
    assert (runs[1].start, runs[1].end) == (7, 10)
    assert all("left" not in r.words and "of" not in r.words for r in runs)  # "left" is ADV, "of" a stop word


@pytest.mark.parametrize("rel", ["right of", "above", "below"])
def test_other_relations_never_join_a_run(rel):
    text = f"a small green cross {rel} a big white triangle"
    runs = W.caption_runs(text, backend="fallback")
    assert [r.text for r in runs] == ["small green cross", "big white triangle"]


def test_punctuation_stays_in_runs_as_the_code_does_but_punctuation_only_runs_are_dropped():
    three = "a big red circle, a small blue square and a big white cross"
    assert [r.text for r in W.caption_runs(three, backend="fallback")] == [
        "big red circle ,", "small blue square", "big white cross"]
    assert [r.text for r in W.caption_runs(", ; a circle", backend="fallback")] == ["circle"]


def test_unknown_words_are_nouns_and_case_is_kept():
    runs = W.caption_runs("A Big Red zebra above the photo", backend="fallback")
    assert [r.text for r in runs] == ["Big Red zebra", "photo"]


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_caption_raises(text):
    with pytest.raises(ValueError, match="empty"):
        W.caption_runs(text, backend="fallback")


@pytest.mark.parametrize("text", ["a of and above", ", .", "left of the"])
def test_caption_without_content_word_raises(text):
    with pytest.raises(ValueError, match="no content word"):
        W.caption_runs(text, backend="fallback")


def test_bad_backend_and_types_raise():
    with pytest.raises(ValueError, match="backend"):
        W.caption_runs(TWO, backend="nltk")
    with pytest.raises(ValueError, match="str"):
        W.caption_runs(["a", "circle"])  # type: ignore[arg-type]


def test_auto_backend_is_the_fallback_without_spacy_model():
    if W._spacy_nlp() is not None:
        pytest.skip("spaCy's en_core_web_sm is installed, so auto uses it")
    assert W.caption_runs(TWO) == W.caption_runs(TWO, backend="fallback")
    with pytest.raises(ImportError, match="en_core_web_sm"):
        W.caption_runs(TWO, backend="spacy")


def test_spacy_backend_finds_the_object_phrases():
    _spacy_or_skip()
    texts = [r.text for r in W.caption_runs(TWO, backend="spacy")]
    assert any("red circle" in t for t in texts) and any("blue square" in t for t in texts)


def test_run_prompts_use_the_template():
    runs = W.caption_runs(TWO, backend="fallback")
    assert W.run_prompts(runs) == ["A photo of big red circle", "A photo of small blue square"]
    assert W.run_prompts(runs, "{} here") == ["big red circle here", "small blue square here"]
    with pytest.raises(ValueError, match="template"):
        W.run_prompts(runs, "no slot")


# -------------------------------------------------------------------------------------------- region and crop
def test_largest_region_keeps_the_bigger_blob_and_its_exact_box():
    m = np.zeros((20, 30), bool)
    m[2:5, 3:6] = True          # 9 pixels
    m[10:16, 12:20] = True      # 48 pixels
    region, box = W.largest_region(m)
    assert box == (12, 10, 20, 16)
    assert region.sum() == 48 and region[10:16, 12:20].all()


def test_largest_region_is_8_connected():
    m = np.zeros((12, 12), bool)
    m[np.arange(6), np.arange(6)] = True   # a diagonal of 6 pixels: one component under 8-connectivity
    m[9:11, 9:11] = True                   # a 4-pixel square
    region, box = W.largest_region(m.astype(np.uint8))
    assert region.sum() == 6 and box == (0, 0, 6, 6)


def test_largest_region_of_an_empty_mask_is_the_whole_image():
    region, box = W.largest_region(np.zeros((7, 9), bool))
    assert box == (0, 0, 9, 7) and not region.any() and region.shape == (7, 9)
    with pytest.raises(ValueError, match="2-D"):
        W.largest_region(np.zeros((2, 3, 4), bool))


def test_crop_is_the_box_slice_and_checks_bounds():
    img = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(W.crop(img, (2, 3, 7, 9)), img[3:9, 2:7])
    with pytest.raises(ValueError, match="bbox"):
        W.crop(img, (2, 3, 13, 9))
    with pytest.raises(ValueError, match="uint8"):
        W.crop(img.astype(np.float32), (0, 0, 2, 2))


# ------------------------------------------------------------------------------------------------ predict_run
class _Recorder:
    """A scorer that records its inputs and prefers texts containing ``word``."""

    def __init__(self, word):
        self.word, self.images, self.texts = word, None, None

    def __call__(self, images, texts):
        self.images, self.texts = images, texts
        return np.array([[float(self.word in t) for t in texts]] * len(images))


def test_predict_run_scores_the_crop_of_the_largest_region_against_every_run_prompt():
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), bool)
    mask[4:9, 5:12] = True
    mask[0, 0] = True
    rec = _Recorder("square")
    pred = W.predict_run(rec, img, mask, TWO, backend="fallback")
    assert pred.index == 1 and pred.run.text == "small blue square" and pred.bbox == (5, 4, 12, 9)
    np.testing.assert_array_equal(rec.images[0], img[4:9, 5:12])
    assert rec.texts == ["A photo of big red circle", "A photo of small blue square"]
    np.testing.assert_array_equal(pred.scores, [0.0, 1.0])


def test_predict_run_resizes_a_smaller_mask_and_checks_the_scorer_output():
    img = np.zeros((16, 16, 3), np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    assert W.predict_run(_Recorder("circle"), img, mask, TWO, backend="fallback").bbox == (8, 4, 12, 8)
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        W.predict_run(lambda ims, txts: np.zeros((1, 3)), img, mask, TWO, backend="fallback")


def _two_object_scene():
    return Scene((ShapeObject("circle", "red", "big", 0.28, 0.5),
                  ShapeObject("square", "blue", "small", 0.75, 0.45)))


@pytest.mark.parametrize("k", [0, 1])
def test_oracle_scorer_names_the_object_under_the_mask(k):
    scene = _two_object_scene()
    image, masks = render(scene)
    assert caption(scene) == TWO
    pred = W.predict_run(W.OracleScorer(), image, masks[k], TWO, backend="fallback")
    assert pred.run.text == ["big red circle", "small blue square"][k]


def test_oracle_scorer_counts_matching_words_and_prefers_fewer_words_on_ties():
    image, masks = render(Scene((ShapeObject("circle", "red", "small", 0.5, 0.5),)))
    _, box = W.largest_region(masks[0])
    s = W.OracleScorer()([W.crop(image, box)], ["A photo of big red circle", "A photo of red circle",
                                                 "A photo of small red circle", "A photo of blue square"])
    assert s.shape == (1, 4)
    np.testing.assert_allclose(s[0], [2 - 0.003, 2 - 0.002, 3 - 0.003, 0 - 0.002])
    assert s[0, 1] > s[0, 0]


# ------------------------------------------------------------------------------------------------------- CLIP
VOCAB = ["a", "photo", "of", "big", "small", "red", "blue", "circle", "square"]


@pytest.fixture(scope="module")
def tiny_clip(make_tiny_clip):
    from transformers import CLIPProcessor

    model, tok, image_processor = make_tiny_clip(VOCAB)
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tok)


def test_clip_scorer_returns_cosine_similarities_of_the_projected_embeddings(tiny_clip):
    model, proc = tiny_clip
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(20, 28, 3), (32, 32, 3)]]
    texts = ["A photo of big red circle", "A photo of small blue square", "A photo of circle"]
    s = W.ClipScorer(model=model, processor=proc)(images, texts)
    assert s.shape == (2, 3)
    pix = proc.image_processor(images=images, return_tensors="pt")["pixel_values"]
    tok = proc.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        img = model.visual_projection(model.vision_model(pixel_values=pix).pooler_output)
        txt = model.text_projection(model.text_model(**tok).pooler_output)
    img, txt = img.double().numpy(), txt.double().numpy()
    want = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (txt / np.linalg.norm(txt, axis=1)[:, None]).T
    np.testing.assert_allclose(s, want, atol=1e-5)
    assert not np.allclose(s[:, 0], s[:, 1])


def test_clip_scorer_works_in_predict_run(tiny_clip):
    model, proc = tiny_clip
    image, masks = render(_two_object_scene())
    pred = W.predict_run(W.ClipScorer(model=model, processor=proc), image, masks[1], TWO, backend="fallback")
    assert pred.scores.shape == (2,) and pred.index in (0, 1)


def test_clip_scorer_without_a_local_model_raises_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="could not load the CLIP model"):
        W.ClipScorer(str(tmp_path / "no-such-clip"))
    with pytest.raises(ValueError, match="both model and processor"):
        W.ClipScorer(model=object())
