"""PIE-Bench / ParallelEdits real-image metrics on tiny random models (no downloads)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from kit.data.benchmarks import rle_decode
from kit.multiedits import metrics as M

H = W = 32
VOCAB = ["a", "photo", "of", "cat", "dog", "red", "blue", "car", "man", "sitting", "standing", "ducks"]


def _img(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _box_mask(h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[8:20, 10:24] = True
    return m


# ------------------------------------------------------------------------------------------------- tiny models
@pytest.fixture(scope="module")
def clip(make_tiny_clip):
    return M.ClipBundle(*make_tiny_clip(VOCAB))


@pytest.fixture(scope="module")
def vit():
    from transformers import ViTConfig

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                    intermediate_size=32)
    return M.build_dino(cfg)


# --------------------------------------------------------------------------------------------- unedited region
def _hand_masked(a, b, mask):
    keep = (~mask).astype(np.float64)[..., None]
    return a.astype(np.float64) / 255 * keep, b.astype(np.float64) / 255 * keep


def test_unedited_region_mse_and_psnr_match_hand_formula_on_masked_images():
    a, b, mask = _img(1), _img(2), _box_mask()
    x, y = _hand_masked(a, b, mask)
    mse = np.mean((x - y) ** 2)  # over every pixel and channel, zeros of the edited part included (PnPInversion)
    s = M.unedited_region_scores(a, b, mask)
    assert set(s) == {"psnr", "ssim", "mse"}
    assert s["mse"] == pytest.approx(mse, rel=1e-6)
    assert s["psnr"] == pytest.approx(10 * np.log10(1 / mse), rel=1e-6)


def test_unedited_region_ignores_the_edited_pixels_only():
    a, mask = _img(3), _box_mask()
    b = a.copy()
    b[mask] = 255 - b[mask]  # differs only inside the edited region
    s = M.unedited_region_scores(a, b, mask)
    assert s["mse"] == 0.0 and s["psnr"] == math.inf and s["ssim"] == pytest.approx(1.0, abs=1e-6)
    b[0, 0] = 255 - b[0, 0]  # one unedited pixel changes -> the scores see it
    assert M.unedited_region_scores(a, b, mask)["mse"] > 0


def _hand_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """numpy SSIM map [H, W, C]: 11-tap Gaussian (sigma 1.5) over reflect-padded images."""
    r = np.arange(-5, 6)
    g = np.exp(-(r / 1.5) ** 2 / 2)
    g /= g.sum()

    def blur(z):
        z = np.pad(z, ((5, 5), (5, 5), (0, 0)), mode="reflect")
        z = sum(g[i] * z[i:i + z.shape[0] - 10] for i in range(11))
        return sum(g[i] * z[:, i:i + z.shape[1] - 10] for i in range(11))

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = blur(x), blur(y)
    vx, vy = np.maximum(blur(x * x) - mx ** 2, 0), np.maximum(blur(y * y) - my ** 2, 0)
    cxy = blur(x * y) - mx * my
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


def test_unedited_region_ssim_matches_hand_gaussian_ssim_and_skimage_interior():
    from skimage.metrics import structural_similarity

    a, b, mask = _img(4, 48, 40), _img(5, 48, 40), np.zeros((48, 40), bool)
    mask[10:30, 5:20] = True
    b = ((a.astype(int) + b.astype(int)) // 2).astype(np.uint8)  # correlated, SSIM well away from 0
    x, y = _hand_masked(a, b, mask)
    s = M.unedited_region_scores(a, b, mask)["ssim"]
    ssim_map = _hand_ssim_map(x, y)
    assert s == pytest.approx(ssim_map.mean(), abs=1e-5)  # every pixel counts, border included (torchmetrics)
    # the hand map is skimage's Gaussian SSIM away from the border, where padding plays no part
    _, full = structural_similarity(x, y, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    np.testing.assert_allclose(ssim_map[5:-5, 5:-5], full[5:-5, 5:-5], atol=1e-6)


def test_unedited_region_accepts_pil_and_01_masks_identically():
    a, b, mask = _img(6), _img(7), _box_mask()
    s1 = M.unedited_region_scores(a, b, mask)
    s2 = M.unedited_region_scores(Image.fromarray(a), Image.fromarray(b), mask.astype(np.uint8))
    assert s1 == pytest.approx(s2)


def test_full_mask_gives_nan_and_rle_border_is_forced():
    a, b = _img(8), _img(9)
    full = rle_decode([0, H * W], (H, W), force_border=True)
    s = M.unedited_region_scores(a, b, full, lpips_model=lambda x, y: torch.zeros(1))
    assert set(s) == {"psnr", "ssim", "mse", "lpips"} and all(math.isnan(v) for v in s.values())
    # a PIE mask with the forced 1-px border: the border pixels no longer count in the unedited part
    m = rle_decode([5 * W + 5, 3], (H, W), force_border=True)
    c = a.copy()
    c[0, :] = 0
    c[:, -1] = 0
    assert M.unedited_region_scores(a, c, m)["mse"] == 0.0


def test_lpips_model_gets_masked_inputs_scaled_to_minus1_1():
    a, b, mask = _img(10), _img(11), _box_mask()
    seen = []

    def fake(x, y):
        seen.append((x.clone(), y.clone()))
        return torch.tensor([[[[0.25]]]])

    s = M.unedited_region_scores(a, b, mask, lpips_model=fake)
    assert s["lpips"] == pytest.approx(0.25)
    x, y = seen[0]
    assert x.shape == (1, 3, H, W)
    hx, hy = _hand_masked(a, b, mask)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), hx * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(y[0].permute(1, 2, 0).numpy(), hy * 2 - 1, atol=1e-6)
    assert float(x[0, :, 10, 12].min()) == -1.0  # the edited part is black, i.e. -1


def test_build_lpips_random_squeeze_runs_offline_and_is_zero_on_identical_images():
    torch.manual_seed(0)
    net = M.build_lpips("squeeze", pretrained=False)
    a, b, mask = _img(12), _img(13), _box_mask()
    same = M.unedited_region_scores(a, a, mask, lpips_model=net)["lpips"]
    diff = M.unedited_region_scores(a, b, mask, lpips_model=net)["lpips"]
    assert same == pytest.approx(0.0, abs=1e-7) and abs(diff) > 1e-6  # random heads may be negative
    with pytest.raises(ValueError, match="net must be"):
        M.build_lpips("resnet", pretrained=False)


@pytest.mark.parametrize(
    "edited, source, mask, match",
    [
        (_img(1, 32, 32), _img(2, 32, 30), np.zeros((32, 32), bool), "differ in size"),
        (_img(1), _img(2), np.zeros((16, 16), bool), "does not match the image size"),
        (_img(1), _img(2), np.full((H, W), 0.5), "only 0 and 1"),
        (_img(1), _img(2), np.zeros((H, W, 2)), r"\[H, W\] array"),
        (_img(1).astype(np.float32), _img(2), np.zeros((H, W), bool), "must be uint8"),
        (_img(1)[..., :2], _img(2), np.zeros((H, W), bool), r"shape \[H, W, 3\]"),
        ("x.png", _img(2), np.zeros((H, W), bool), "PIL image or a uint8 array"),
    ],
)
def test_unedited_region_rejects_bad_inputs_by_name(edited, source, mask, match):
    with pytest.raises(ValueError, match=match):
        M.unedited_region_scores(edited, source, mask)


def test_nanmean_ignores_nan_and_none():
    assert M.nanmean([1.0, float("nan"), 3.0, None]) == 2.0
    assert math.isnan(M.nanmean([float("nan")])) and math.isnan(M.nanmean([]))
    rows = [{"psnr": 10.0, "ssim": float("nan"), "id": "a"}, {"psnr": 20.0, "ssim": 0.5, "id": "b"}]
    assert M.nanmean_rows(rows) == {"psnr": 15.0, "ssim": 0.5}


# ------------------------------------------------------------------------------------------- structure distance
def _hand_keys(img: np.ndarray, model, size: int, pixel_range: float) -> torch.Tensor:
    """Keys of the last layer recomputed from the hidden states: k_proj(layernorm_before(h_{L-1}))."""
    x = M._dino_input(img, size, pixel_range)
    with torch.no_grad():
        hs = model(pixel_values=x, output_hidden_states=True).hidden_states
        layer = M._vit_layers(model)[-1]
        return M._last_key_projection(model)(layer.layernorm_before(hs[-2]))[0]


def test_dino_self_similarity_is_cosine_of_last_layer_keys(vit):
    img = _img(20)
    sim = M.dino_key_self_similarity(img, vit, size=32)
    assert sim.shape == (1 + 16, 1 + 16)  # CLS + (32/8)^2 patches
    k = _hand_keys(img, vit, 32, 255.0).double()
    k = k / k.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(sim.double(), k @ k.T, atol=1e-5, rtol=1e-5)
    assert torch.allclose(torch.diagonal(sim), torch.ones(17), atol=1e-5)


def test_dino_input_resizes_and_normalises_raw_pixels_like_pnpinversion():
    img = np.full((40, 60, 3), 255, np.uint8)
    x = M._dino_input(img, 32, 255.0)
    assert x.shape == (1, 3, 32, 48)  # shorter side -> size, aspect kept
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), (255 - np.array(M.IMAGENET_MEAN)) / M.IMAGENET_STD, rtol=1e-5)
    np.testing.assert_allclose(M._dino_input(img, 32, 1.0)[0, :, 0, 0].numpy(),
                               (1 - np.array(M.IMAGENET_MEAN)) / M.IMAGENET_STD, rtol=1e-5)


def test_structure_distance_is_mse_of_self_similarities(vit):
    a, b = _img(21), _img(22)
    d = M.structure_distance(a, b, vit, size=32)
    sa, sb = M.dino_key_self_similarity(a, vit, size=32), M.dino_key_self_similarity(b, vit, size=32)
    assert d == pytest.approx(float(((sa - sb) ** 2).mean()), rel=1e-6) and d > 0
    assert M.structure_distance(a, a, vit, size=32) == 0.0
    # a larger input size interpolates the position embeddings: (48/8)^2 + 1 tokens
    assert M.dino_key_self_similarity(a, vit, size=48).shape == (37, 37)
    with pytest.raises(ValueError, match="differ in size"):
        M.structure_distance(a, _img(1, 16, 16), vit, size=32)
    with pytest.raises(ValueError, match="ViTModel"):
        M.structure_distance(a, b, torch.nn.Linear(2, 2), size=32)


# ----------------------------------------------------------------------------------------------------------- CLIP
def _tm_clip_score(img: np.ndarray, text: str, clip) -> float:
    """torchmetrics' own clip_score on the same tiny model, through its callable-model hook."""
    from torchmetrics.functional.multimodal import clip_score

    class Proc:
        def __call__(self, text=None, images=None, **kw):
            if images is not None:
                return clip.image_processor(images=[i.permute(1, 2, 0).numpy() for i in images], return_tensors="pt")
            return clip.tokenizer(text, padding=True, return_tensors="pt")

    class Model(torch.nn.Module):  # torchmetrics wants tensors from get_*_features; transformers 5 wraps them
        def __init__(self):
            super().__init__()
            self.inner, self.config = clip.model, clip.model.config

        def get_image_features(self, *a, **k):
            return M._features(self.inner.get_image_features(*a, **k))

        def get_text_features(self, *a, **k):
            return M._features(self.inner.get_text_features(*a, **k))

    t = torch.from_numpy(img).permute(2, 0, 1)
    with torch.no_grad():
        return float(clip_score(t, text, model_name_or_path=lambda: (Model(), Proc())))


def test_clip_score_matches_torchmetrics_and_hand_cosine(clip):
    img, text = _img(30), "a photo of a red car"
    s = M.clip_score(img, text, clip)
    e_i, e_t = M.clip_image_embeds([img], clip)[0], M.clip_text_embeds([text], clip)[0]
    cos = float(e_i @ e_t / (e_i.norm() * e_t.norm()))
    assert s == pytest.approx(100 * max(cos, 0.0), abs=1e-4)
    assert s == pytest.approx(_tm_clip_score(img, text, clip), abs=1e-3)
    assert M.clip_image_embeds([img, _img(31)], clip).shape == (2, 8)


def test_clip_score_is_clamped_at_zero(clip, monkeypatch):
    monkeypatch.setattr(M, "clip_image_embeds", lambda ims, c: torch.tensor([[1.0, 0.0]]))
    monkeypatch.setattr(M, "clip_text_embeds", lambda ts, c: torch.tensor([[-1.0, 0.2]]))
    assert M.clip_score(_img(1), "a cat", clip) == 0.0
    monkeypatch.setattr(M, "clip_text_embeds", lambda ts, c: torch.tensor([[3.0, 4.0]]))
    assert M.clip_score(_img(1), "a cat", clip) == pytest.approx(60.0)


def test_clip_score_edited_part_scores_the_masked_image(clip, monkeypatch):
    img, mask, text = _img(32), _box_mask(), "a blue dog"
    masked = (img * mask[..., None]).astype(np.uint8)
    assert M.clip_score(img, text, clip, mask=mask) == pytest.approx(M.clip_score(masked, text, clip), abs=1e-5)
    seen = []
    real = M.clip_image_embeds
    monkeypatch.setattr(M, "clip_image_embeds", lambda ims, c: seen.extend(ims) or real(ims, c))
    M.clip_score(img, text, clip, mask=mask)
    np.testing.assert_array_equal(seen[0], masked)
    assert seen[0][~mask].max() == 0 and np.array_equal(seen[0][mask], img[mask])
    assert math.isnan(M.clip_score(img, text, clip, mask=np.zeros((H, W), bool)))
    with pytest.raises(ValueError, match="does not match the image size"):
        M.clip_score(img, text, clip, mask=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="text must be a string"):
        M.clip_score(img, ["a cat"], clip)


def test_directional_clip_matches_hand_formula(clip, monkeypatch):
    ei = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # edit, source (unnormalised)
    et = torch.tensor([[0.0, 0.0, 5.0], [0.0, 3.0, 0.0]])  # target, source prompt
    monkeypatch.setattr(M, "clip_image_embeds", lambda ims, c: ei)
    monkeypatch.setattr(M, "clip_text_embeds", lambda ts, c: et)
    d_i, d_t = np.array([1.0, -1.0, 0.0]), np.array([0.0, -1.0, 1.0])  # after unit normalisation
    want = d_i @ d_t / (np.linalg.norm(d_i) * np.linalg.norm(d_t))
    assert M.directional_clip(_img(1), _img(2), "a dog", "a cat", clip) == pytest.approx(want)  # 0.5
    monkeypatch.setattr(M, "clip_text_embeds", lambda ts, c: torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))
    assert math.isnan(M.directional_clip(_img(1), _img(2), "a cat", "a cat", clip))


def test_directional_clip_on_the_tiny_model(clip):
    a, b = _img(40), _img(41)
    d = M.directional_clip(a, b, "a photo of a dog", "a photo of a cat", clip)
    ei = M.clip_image_embeds([a, b], clip)
    et = M.clip_text_embeds(["a photo of a dog", "a photo of a cat"], clip)
    ei, et = ei / ei.norm(dim=-1, keepdim=True), et / et.norm(dim=-1, keepdim=True)
    want = torch.nn.functional.cosine_similarity(ei[0] - ei[1], et[0] - et[1], dim=0)
    assert -1 <= d <= 1 and d == pytest.approx(float(want), abs=1e-5)
    with pytest.raises(ValueError, match="target_prompt must be a string"):
        M.directional_clip(a, b, None, "a cat", clip)


def _controlled_embeddings(monkeypatch, img_vecs, text_vecs):
    """Images are told apart by their first pixel (0 = edit, 1 = source); texts by name."""
    def img_embeds(ims, c):
        return torch.stack([torch.tensor(img_vecs[int(im[0, 0, 0])], dtype=torch.float32) for im in ims])

    def txt_embeds(ts, c):
        return torch.stack([torch.tensor(text_vecs[t], dtype=torch.float32) for t in ts])

    monkeypatch.setattr(M, "clip_image_embeds", img_embeds)
    monkeypatch.setattr(M, "clip_text_embeds", txt_embeds)
    edit, src = np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8)
    src[0, 0, 0] = 1
    return edit, src


def test_aspect_accuracy_rules_on_controlled_embeddings(clip, monkeypatch):
    # axes: 0 "cat", 1 "dog", 2 "hat", 3 "ducks"; the edit shows a dog with no hat and few ducks
    edit, src = _controlled_embeddings(
        monkeypatch,
        {0: [0.1, 1.0, 0.1, 0.3], 1: [1.0, 0.1, 0.8, 0.5]},
        {"cat": [1, 0, 0, 0], "dog": [0, 1, 0, 0], "hat": [0, 0, 1, 0], "ducks": [0, 0, 0, 1]},
    )
    aspects = [("swap", "cat", "dog"), ("delete", "hat", ""), ("add", "", "ducks"), ("swap", "dog", "cat")]
    out = M.aspect_accuracy_clip(edit, src, aspects, clip)
    # edit (unit) vs source (unit) cosines per text
    ue, us = np.array([0.1, 1.0, 0.1, 0.3]), np.array([1.0, 0.1, 0.8, 0.5])
    ue, us = ue / np.linalg.norm(ue), us / np.linalg.norm(us)
    want_ok = [ue[1] > ue[0], ue[2] < us[2], ue[3] > us[3], ue[0] > ue[1]]
    assert out["ok"] == want_ok == [True, True, False, False]
    assert out["accuracy"] == 0.5
    assert out["sims"][1] == pytest.approx((ue[2], us[2]))


def test_aspect_accuracy_reads_edit_actions(clip, monkeypatch):
    from kit.multiedits.aspects import EditAction, aspects

    edit, src = _controlled_embeddings(
        monkeypatch, {0: [0.0, 1.0, 1.0], 1: [1.0, 0.0, 0.0]},
        {"man sitting": [1, 0, 0], "man standing": [0, 1, 0], "ducks on the water": [0, 0, 1]},
    )
    acts = [EditAction("man standing", 2, "man sitting", 5), EditAction("ducks on the water", 11, "+", 2)]
    assert M.aspect_accuracy_clip(edit, src, acts, clip)["ok"] == [True, True]
    asp = aspects(acts, {"man": ["standing"], "ducks": []})
    assert M.aspect_accuracy_clip(edit, src, asp, clip)["accuracy"] == 1.0


def test_aspect_accuracy_on_the_tiny_model_and_bad_aspects(clip):
    a, b = _img(50), _img(51)
    out = M.aspect_accuracy_clip(a, b, [("swap", "cat", "dog"), ("add", "", "red car")], clip)
    assert len(out["ok"]) == 2 and out["accuracy"] in (0.0, 0.5, 1.0)
    assert all(isinstance(v, bool) for v in out["ok"])
    with pytest.raises(ValueError, match="non-empty sequence"):
        M.aspect_accuracy_clip(a, b, [], clip)
    with pytest.raises(ValueError, match="kind must be one of"):
        M.aspect_accuracy_clip(a, b, [("recolor", "red", "blue")], clip)
    with pytest.raises(ValueError, match=r"\(swap\) needs non-empty text"):
        M.aspect_accuracy_clip(a, b, [("swap", "", "blue")], clip)
    with pytest.raises(ValueError, match="must be \\(kind, source_text, target_text\\)"):
        M.aspect_accuracy_clip(a, b, ["swap cat dog"], clip)


# ---------------------------------------------------------------------------------------- AspAcc with a VLM judge
LLAVA_WORDS = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "Yes", "No", "yes", "no", "Does",
               "this", "image", "show", "red", "blue", "circle", "square", "?", "Answer", "or", "no."]
LLAVA_TEMPLATE = ("{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
                  "{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
                  "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def _llava_parts(words=LLAVA_WORDS, chat_template=LLAVA_TEMPLATE):
    """A tiny random LLaVA (CLIP vision tower + Llama) and its processor, built offline as transformers' tests do."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>")
    tok.add_tokens(["<image>"], special_tokens=True)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 16},
                                                             crop_size={"height": 16, "width": 16}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          chat_template=chat_template, image_token="<image>", num_additional_image_tokens=1)
    cfg = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, image_size=16, patch_size=8),
                      text_config=LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                                              num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                              max_position_embeddings=64),
                      image_token_id=vocab["<image>"], vision_feature_layer=-1,
                      vision_feature_select_strategy="default")
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(cfg).eval(), proc


@pytest.fixture(scope="module")
def llava_judge():
    return M.VLMJudge(*_llava_parts())


def test_aspect_questions_ask_what_each_kind_of_edit_must_show():
    qs = M.aspect_questions([("swap", "red circle", "blue circle"), ("add", "", "a square"),
                             ("delete", "the dog", "")])
    assert qs == [[("Does this image show blue circle? Answer yes or no.", True),
                   ("Does this image show red circle? Answer yes or no.", False)],
                  [("Does this image show a square? Answer yes or no.", True)],
                  [("Does this image show the dog? Answer yes or no.", False)]]
    with pytest.raises(ValueError, match="must contain"):
        M.aspect_questions([("add", "", "a square")], template="Is it there?")
    with pytest.raises(ValueError, match="non-empty sequence"):
        M.aspect_questions([])


def test_aspect_accuracy_vlm_needs_every_answer_right():
    shown = {"blue circle", "a square"}  # what a perfect judge sees in the edit

    def judge(image, question):
        assert image.shape == (H, W, 3)
        phrase = question.split("show ", 1)[1].split("?")[0]
        return 0.9 if phrase in shown else 0.1

    aspects = [("swap", "red circle", "blue circle"), ("add", "", "a square"), ("delete", "the dog", ""),
               ("swap", "green cross", "blue circle"), ("delete", "a square", ""), ("swap", "blue circle", "white")]
    out = M.aspect_accuracy_vlm(_img(60), aspects, judge)
    # swap done; added; deleted; swap done (its source is gone); deletion failed (still shown); swap failed
    assert out["ok"] == [True, True, True, True, False, False]
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["answers"][0] == [("Does this image show blue circle? Answer yes or no.", 0.9),
                                 ("Does this image show red circle? Answer yes or no.", 0.1)]
    # the threshold is where yes begins
    assert M.aspect_accuracy_vlm(_img(60), [("add", "", "a square")], judge, threshold=0.95)["ok"] == [False]
    with pytest.raises(ValueError, match="threshold"):
        M.aspect_accuracy_vlm(_img(60), aspects, judge, threshold=1.0)
    with pytest.raises(ValueError, match="probability of yes"):
        M.aspect_accuracy_vlm(_img(60), aspects, lambda im, q: 3.0)
    with pytest.raises(ValueError, match="edited must be"):
        M.aspect_accuracy_vlm("edit.png", aspects, judge)


def test_vlm_judge_reads_p_yes_from_the_next_token_of_a_tiny_llava(llava_judge):
    judge = llava_judge
    img = _img(61)
    question = "Does this image show red circle? Answer yes or no."
    prompt = judge.prompt(question)
    assert prompt == f"USER: <image> {question} ASSISTANT:"
    p = judge(img, question)
    assert 0.0 < p < 1.0 and judge(img, question) == p  # deterministic
    # independently: the full softmax over the vocabulary, yes-words' mass against no-words' mass
    inputs = judge.processor(images=img, text=prompt, return_tensors="pt")
    with torch.no_grad():
        probs = judge.model(**inputs).logits[0, -1].double().softmax(-1)
    vocab = judge.processor.tokenizer.get_vocab()
    p_yes = float(probs[vocab["Yes"]] + probs[vocab["yes"]])
    p_no = float(probs[vocab["No"]] + probs[vocab["no"]])
    assert p == pytest.approx(p_yes / (p_yes + p_no), rel=1e-5)
    # a different image changes the answer's probability (the image reaches the language model)
    assert judge(_img(62), question) != pytest.approx(p, rel=1e-9)
    out = M.aspect_accuracy_vlm(img, [("swap", "red circle", "blue circle")], judge)
    assert len(out["answers"][0]) == 2 and isinstance(out["ok"][0], bool)
    with pytest.raises(ValueError, match="question must be"):
        judge(img, " ")


def test_vlm_judge_refuses_processors_it_cannot_read():
    model, proc = _llava_parts(words=[w for w in LLAVA_WORDS if w not in ("No", "no")])
    with pytest.raises(ValueError, match="distinct first tokens for yes and no"):
        M.VLMJudge(model, proc)
    model, proc = _llava_parts(chat_template=None)
    with pytest.raises(ValueError, match="no chat template"):
        M.VLMJudge(model, proc)


def test_build_vlm_judge_loads_a_saved_model_through_the_auto_classes(tmp_path, llava_judge):
    llava_judge.model.save_pretrained(tmp_path)
    llava_judge.processor.save_pretrained(tmp_path)
    judge = M.build_vlm_judge(str(tmp_path), device="cpu")
    question = "Does this image show blue circle? Answer yes or no."
    assert judge(_img(63), question) == pytest.approx(llava_judge(_img(63), question), rel=1e-6)
