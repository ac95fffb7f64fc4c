"""D-TIIL's localiser: Align, Diff, Bin and the whole pipeline, each against an independent computation."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from kit.data.shapes import Scene, ShapeObject, render  # noqa: E402
from kit.dtiil.localize import (  # noqa: E402
    LocalizeOptions,
    _training_target,
    align,
    binarize,
    caption_embedding,
    consistency_score,
    image_latents,
    localize,
    noise_difference,
    unet_restored,
)

torch.set_num_threads(1)
CAPTION = "a big red circle"          # the image below
WRONG = "a big blue circle"           # a text-side swap of the colour
FAST = dict(align_steps=3, align_batch=2, n_noise=2, inpaint_steps=3, embed_lr=1e-2)


@pytest.fixture(scope="module")
def pipe():
    from kit.diffusion.t2i import load_shapes_pipeline

    return load_shapes_pipeline(solver=None)


@pytest.fixture(scope="module")
def image():
    return render(Scene((ShapeObject("circle", "red", "big", 0.35, 0.5),)), 32)[0]


def _state(unet):
    return {k: v.clone() for k, v in unet.state_dict().items()}


def test_training_target_is_the_schedulers_velocity(pipe):
    z0, noise = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    t = torch.tensor([5, 400, 990])
    z_t, target = _training_target(pipe, z0, noise, t)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    torch.testing.assert_close(z_t, pipe.scheduler.add_noise(z0, noise, t))
    torch.testing.assert_close(target, pipe.scheduler.get_velocity(z0, noise, t))


def test_align_lowers_its_loss_and_leaves_the_unet_alone(pipe, image):
    z0, e_t = image_latents(pipe, image), caption_embedding(pipe, WRONG)
    before, flags = _state(pipe.unet), [p.requires_grad for p in pipe.unet.parameters()]
    res = align(pipe, z0, e_t, steps=40, batch=4, lr=1e-2, seed=0)
    # the same (t, noise) draws scored with the start and the end embedding: the end one reconstructs better
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    from kit.dtiil.localize import _denoising_loss

    with torch.no_grad():
        start = _denoising_loss(pipe, z0, e_t, 64, g1).item()
        end = _denoising_loss(pipe, z0, res.embeds, 64, g2).item()
    assert end < start
    assert len(res.losses) == 40 and not res.unet_losses
    assert not torch.equal(res.embeds, e_t)
    for k, v in pipe.unet.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert [p.requires_grad for p in pipe.unet.parameters()] == flags
    assert all(p.grad is None for p in pipe.unet.parameters())


def test_unet_tuning_changes_weights_and_unet_restored_undoes_it(pipe, image):
    z0, e_t = image_latents(pipe, image), caption_embedding(pipe, CAPTION)
    before = _state(pipe.unet)
    with unet_restored(pipe.unet):
        res = align(pipe, z0, e_t, steps=1, unet_steps=2, unet_lr=1e-3, seed=0)
        changed = any(not torch.equal(v, before[k]) for k, v in pipe.unet.state_dict().items())
    assert changed and len(res.unet_losses) == 2
    for k, v in pipe.unet.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert not pipe.unet.training


def test_diff_of_an_embedding_with_itself_is_zero_and_its_mask_empty(pipe, image):
    z0, e = image_latents(pipe, image), caption_embedding(pipe, CAPTION)
    d = noise_difference(pipe, z0, e, e, n=3, seed=0)
    assert d.per_seed.shape == (3, 32, 32)
    assert float(d.per_seed.abs().max()) == 0.0
    assert not binarize(d.map, 0.15).any() and not binarize(d.map, 0.0).any()


def _lms_eps(pipe, z0, emb, noise, steps=10, strength=0.5, w=7.0):
    """An independent single-row DiffEdit loop (no batching): the last step's guided epsilon."""
    from diffusers import LMSDiscreteScheduler

    s = LMSDiscreteScheduler.from_config(pipe.scheduler.config)
    s.set_timesteps(steps)
    ts = s.timesteps[steps - round(steps * strength):]
    x = s.add_noise(z0, noise, ts[:1])
    unc = pipe.encode_prompt([""])
    for t in ts:
        xin = s.scale_model_input(x, t)
        with torch.no_grad():
            u = pipe.unet(xin, t, encoder_hidden_states=unc).sample
            c = pipe.unet(xin, t, encoder_hidden_states=emb).sample
        v = u + w * (c - u)
        a = s.alphas_cumprod[int(t)]
        eps = a.sqrt() * v + (1 - a).sqrt() * xin        # v-prediction -> epsilon at the VP point
        x = s.step(v, t, x).prev_sample
    return eps


def test_diff_matches_a_hand_loop_per_seed(pipe, image):
    z0 = image_latents(pipe, image)
    ea, eb = caption_embedding(pipe, CAPTION), caption_embedding(pipe, WRONG)
    d = noise_difference(pipe, z0, ea, eb, n=2, seed=3)
    noise = torch.randn((2, *z0.shape[1:]), generator=torch.Generator().manual_seed(3))
    for k in range(2):
        e1 = _lms_eps(pipe, z0, ea, noise[k:k + 1])
        e2 = _lms_eps(pipe, z0, eb, noise[k:k + 1])
        want = (e1 - e2).pow(2).sum(1).sqrt()[0]
        torch.testing.assert_close(d.per_seed[k], want, rtol=1e-4, atol=1e-4)
    m = d.per_seed.mean(0)
    torch.testing.assert_close(d.map, (m - m.min()) / (m.max() - m.min()))


def test_binarize_is_opencvs_blur_then_threshold():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    m = rng.random((16, 16)).astype(np.float32)
    blurred = ndimage.gaussian_filter(m * 255, sigma=1.0, truncate=2.0, mode="mirror")   # 5 x 5, reflect-101
    for tau in (0.2, 0.5, 0.7):
        np.testing.assert_array_equal(binarize(m, tau), blurred > 255 * tau)
    big = binarize(m, 0.5, (32, 32))
    assert big.shape == (32, 32) and big.dtype == bool
    np.testing.assert_array_equal(big[::2, ::2], binarize(m, 0.5))


def test_masks_are_binary_and_monotone_in_the_threshold():
    m = np.random.default_rng(1).random((32, 32))
    masks = [binarize(m, t) for t in np.linspace(0, 0.95, 12)]
    assert all(x.dtype == bool for x in masks)
    for lo, hi in zip(masks, masks[1:]):
        assert not (hi & ~lo).any()          # a higher threshold never adds a pixel
    with pytest.raises(ValueError, match="tau"):
        binarize(m, 1.5)
    with pytest.raises(ValueError, match=r"\[h, w\]"):
        binarize(np.zeros((2, 3, 4)), 0.3)


def test_consistency_score_embedding(pipe):
    e = caption_embedding(pipe, CAPTION)
    assert consistency_score(pipe, CAPTION, e, e) == pytest.approx(100.0)
    other = caption_embedding(pipe, WRONG)
    n = len(pipe.tokenizer(CAPTION)["input_ids"])
    a, b = e[0, :n].mean(0), other[0, :n].mean(0)
    want = 100 * max(0.0, float(a @ b / (a.norm() * b.norm())))
    assert consistency_score(pipe, CAPTION, e, other) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="scorer"):
        consistency_score(pipe, CAPTION, e, other, kind="clip")


def test_localize_shapes_seeded_and_restores_the_unet(pipe, image):
    before = _state(pipe.unet)
    a = localize(pipe, image, WRONG, seed=1, unet_steps=2, unet_lr=1e-3, **FAST)
    b = localize(pipe, image, WRONG, seed=1, unet_steps=2, unet_lr=1e-3, **FAST)
    for k, v in pipe.unet.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert a.mask.shape == a.heatmap.shape == a.first_mask.shape == (32, 32)
    assert a.mask.dtype == bool and a.first_mask.dtype == bool
    assert 0 <= a.heatmap.min() and a.heatmap.max() <= 1
    assert 0 <= a.score <= 100
    assert np.asarray(a.edited_image).shape == (32, 32, 3)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    assert set(a.stage_seconds) >= {"align", "diff", "inpaint"}
    assert len(a.align_losses["first"]) == FAST["align_steps"] and len(a.align_losses["second_unet"]) == 2
    np.testing.assert_array_equal(a.rebinarize(a.options.tau2), a.mask)


def test_localize_first_step_only_and_pil_input(pipe, image):
    from PIL import Image

    r = localize(pipe, Image.fromarray(image), WRONG, first_step_only=True, **FAST)
    assert r.edited_image is not None and np.array_equal(np.asarray(r.edited_image), image)
    assert r.stage_seconds["inpaint"] == 0.0


def test_localize_bad_inputs(pipe, image):
    with pytest.raises(ValueError, match="caption"):
        localize(pipe, image, "   ", **FAST)
    with pytest.raises(ValueError, match="image"):
        localize(pipe, [[1, 2, 3]], CAPTION, **FAST)
    with pytest.raises(ValueError, match="image"):
        localize(pipe, image.astype(np.float32), CAPTION, **FAST)
    with pytest.raises(ValueError, match="unknown localize options"):
        localize(pipe, image, CAPTION, align_stpes=3)
    with pytest.raises(ValueError, match="zebra"):
        localize(pipe, image, "a big zebra", **FAST)
    with pytest.raises(ValueError, match="content word"):
        localize(pipe, image, "a and of", **FAST)
    with pytest.raises(ValueError, match="final_map_on"):
        LocalizeOptions(final_map_on="middle")


def test_consistency_score_clip_kind_uses_any_scorer(pipe, image):
    e = caption_embedding(pipe, CAPTION)
    seen = {}

    def scorer(images, texts):
        seen["args"] = (images[0].shape, list(texts))
        return np.array([[0.42]])

    r = consistency_score(pipe, CAPTION, e, e, kind="clip", image=image, scorer=scorer)
    assert r == pytest.approx(42.0) and seen["args"] == ((32, 32, 3), [CAPTION])
    assert consistency_score(pipe, CAPTION, e, e, kind="clip", image=image,
                             scorer=lambda i, t: np.array([[-0.3]])) == 0.0
