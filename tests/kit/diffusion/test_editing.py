"""Editing tools of the text-to-image core: prompt embeddings, per-row guidance and latent hooks in the pipeline,
image encoding, DDIM inversion (exact on a model whose data is one point), null-text inversion and RePaint-style
inpainting."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")

from kit.diffusion.editing import (  # noqa: E402
    ddim_grid,
    ddim_invert,
    ddim_step,
    encode_image,
    inpaint,
    null_text_invert,
    reconstruct,
)
from kit.diffusion.t2i import TextToImagePipeline, build_unet, default_scheduler  # noqa: E402
from kit.diffusion.text import build_text_encoder, build_tokenizer, tiny_text_config  # noqa: E402

torch.set_num_threads(1)
WORDS = ["a", "big", "red", "blue", "circle", "square"]


@pytest.fixture(scope="module")
def parts():
    tok = build_tokenizer(WORDS, max_length=8)
    torch.manual_seed(0)
    enc = build_text_encoder(tiny_text_config(len(tok), hidden_size=32, layers=1, heads=2, max_length=8)).eval()
    torch.manual_seed(1)
    unet = build_unet(sample_size=16, in_channels=3, block_out_channels=(16, 32), cross_attention_dim=32,
                      attention_head_dim=4).eval()
    with torch.no_grad():
        unet.conv_out.weight.mul_(20.0)
    return {"unet": unet, "text_encoder": enc, "tokenizer": tok}


@pytest.fixture()
def pipe(parts):
    return TextToImagePipeline(**parts)


class PointUNet(torch.nn.Module):
    """An exact epsilon-prediction model for data that is one image x*: eps(x_t, t) = (x_t - sqrt(a_t) x*) /
    sqrt(1 - a_t). Every DDIM path of it is exact, so inversion followed by sampling must return the image."""

    def __init__(self, x_star: torch.Tensor, scheduler, cross_dim: int = 32):
        super().__init__()
        self.register_buffer("x_star", x_star)
        self.abar = scheduler.alphas_cumprod.to(torch.float64)
        self.w = torch.nn.Parameter(torch.zeros(()))  # gives the module a device and a dtype
        self.config = SimpleNamespace(sample_size=x_star.shape[-1], in_channels=x_star.shape[1],
                                      block_out_channels=(8, 16), cross_attention_dim=cross_dim)
        self.calls = 0

    @property
    def dtype(self):
        return torch.float32

    def forward(self, x, t, encoder_hidden_states=None):
        self.calls += 1
        a = self.abar[t.long().cpu()].float().view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(x - a.sqrt() * self.x_star) / (1 - a).sqrt())


def _image(seed=0, size=16):
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _psnr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))


# --- the pipeline's new inputs ------------------------------------------------------------------------------------

def test_prompt_embeds_give_the_same_images_as_prompts(pipe):
    prompts = ["a big red circle", "a blue square"]
    a = pipe(prompts, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
    b = pipe(prompt_embeds=pipe.encode_prompt(prompts), negative_prompt_embeds=pipe.encode_prompt(["", ""]),
             num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver", [None, "dpmpp2m"])
def test_per_row_guidance_equals_separate_runs(pipe, solver):
    prompts = ["a big red circle", "a blue square"]
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    both = pipe(prompts, num_inference_steps=4, guidance_scale=[1.0, 3.0], latents=noise, output_type="latent",
                solver=solver).images
    src = pipe(prompts[0], num_inference_steps=4, guidance_scale=1.0, latents=noise[:1], output_type="latent",
               solver=solver).images
    tgt = pipe(prompts[1], num_inference_steps=4, guidance_scale=3.0, latents=noise[1:], output_type="latent",
               solver=solver).images
    scale = float(both.abs().max())  # float32 round-off of a batch-size-dependent conv, relative to the values
    torch.testing.assert_close(both, torch.cat([src, tgt]), rtol=0, atol=1e-5 * scale)
    assert (both[1] - src[0]).abs().max() > 1e-2 * scale  # the rows really differ


@pytest.mark.parametrize("solver", [None, "euler", "dpmpp2m", "unipc"])
def test_callback_runs_before_the_model_and_its_return_replaces_the_latents(parts, solver):
    pipe = TextToImagePipeline(**parts, scheduler=default_scheduler())
    order = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, a: order.append("model"))
    first = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    other = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))

    def swap(i, t, x):
        order.append(f"hook{i}")
        if i == 0:  # replace the start point: the run must equal one started there
            return other * (x.abs().mean() / first.abs().mean())  # keep the path's scale (VE on the solver path)
        return None

    try:
        hooked = pipe("a big red circle", num_inference_steps=3, guidance_scale=1.0, latents=first, callback=swap,
                      output_type="latent", solver=solver).images
    finally:
        handle.remove()
    plain = pipe("a big red circle", num_inference_steps=3, guidance_scale=1.0, latents=other,
                 output_type="latent", solver=solver).images
    assert order[:2] == ["hook0", "model"]
    torch.testing.assert_close(hooked, plain, rtol=0, atol=1e-5 * float(plain.abs().max()))
    with pytest.raises(ValueError, match="callback must return None or a tensor of shape"):
        pipe("a big red circle", num_inference_steps=2, callback=lambda i, t, x: x[:, :1], solver=solver)


def test_per_step_negative_embeddings(pipe):
    cond, null = pipe.encode_prompt(["a red circle"]), pipe.encode_prompt([""])
    kw = dict(num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="latent", solver=None)
    one = pipe(prompt_embeds=cond, negative_prompt_embeds=null, **kw).images
    kw["generator"] = torch.Generator().manual_seed(0)
    per_step = pipe(prompt_embeds=cond, negative_prompt_embeds=[null] * 3, **kw).images
    torch.testing.assert_close(one, per_step, rtol=0, atol=0)
    kw["generator"] = torch.Generator().manual_seed(0)
    changed = pipe(prompt_embeds=cond, negative_prompt_embeds=[null, null, cond], **kw).images
    assert (changed - one).abs().max() > 1e-4  # the last step's entry is used at the last step
    with pytest.raises(ValueError, match="holds 2 steps for 3 steps"):
        pipe(prompt_embeds=cond, negative_prompt_embeds=[null] * 2, **kw)
    with pytest.raises(ValueError, match="needs the scheduler path"):
        pipe(prompt_embeds=cond, negative_prompt_embeds=[null] * 3, num_inference_steps=3, solver="euler")


def test_bad_embedding_and_guidance_inputs(pipe):
    cond = pipe.encode_prompt(["a red circle"])
    with pytest.raises(ValueError, match="exactly one of prompt"):
        pipe("a red circle", prompt_embeds=cond, num_inference_steps=1)
    with pytest.raises(ValueError, match="exactly one of prompt"):
        pipe(num_inference_steps=1)
    with pytest.raises(ValueError, match=r"prompt_embeds must be a tensor \[B, L, 32\]"):
        pipe(prompt_embeds=torch.zeros(1, 8, 7), num_inference_steps=1)
    with pytest.raises(ValueError, match="negative_prompt_embeds must have prompt_embeds' shape"):
        pipe(prompt_embeds=cond, negative_prompt_embeds=torch.zeros(2, 8, 32), num_inference_steps=1)
    with pytest.raises(ValueError, match="one number or one per prompt"):
        pipe(["a", "b"], guidance_scale=[1.0, 2.0, 3.0], num_inference_steps=1)
    with pytest.raises(ValueError, match="finite"):
        pipe("a", guidance_scale=float("nan"), num_inference_steps=1)


def test_guided_denoiser_takes_embeddings_and_per_row_scales(pipe):
    prompts = ["a big red circle", "a blue square"]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 5
    by_text = pipe.guided_denoiser(prompts, guidance_scale=[1.0, 3.0])(x, 5.0)
    by_embeds = pipe.guided_denoiser(prompt_embeds=pipe.encode_prompt(prompts), guidance_scale=[1.0, 3.0])(x, 5.0)
    torch.testing.assert_close(by_text, by_embeds)
    alone = pipe.guided_denoiser(prompts[0], guidance_scale=1.0)(x[:1], 5.0)
    torch.testing.assert_close(by_text[:1], alone, rtol=0, atol=1e-5 * float(alone.abs().max()))


# --- image encoding --------------------------------------------------------------------------------------------

def test_encode_image_pixel_space_and_conversions(pipe):
    img = _image()
    x = encode_image(pipe, img)
    torch.testing.assert_close(x, torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1)
    torch.testing.assert_close(encode_image(pipe, Image.fromarray(img)), x)
    torch.testing.assert_close(encode_image(pipe, [Image.fromarray(img)] * 2), torch.cat([x, x]))
    gray = encode_image(pipe, Image.fromarray(img).convert("L"))  # converted to RGB: three equal channels
    assert gray.shape == (1, 3, 16, 16) and torch.equal(gray[:, 0], gray[:, 1])
    with pytest.raises(ValueError, match="expects 16x16"):
        encode_image(pipe, _image(size=20))
    assert encode_image(pipe, _image(size=20), resize=True).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="uint8"):
        encode_image(pipe, img.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        encode_image(pipe, img[..., :2].copy())
    with pytest.raises(ValueError, match="PIL image, a uint8 array or a float tensor"):
        encode_image(pipe, "image.png")


def test_encode_image_latent_space_is_the_vae_posterior_mean(parts):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                        sample_size=32).eval()
    torch.manual_seed(1)
    unet = build_unet(sample_size=16, in_channels=4, block_out_channels=(16, 32), cross_attention_dim=32,
                      attention_head_dim=4).eval()
    pipe = TextToImagePipeline(unet, parts["text_encoder"], parts["tokenizer"], vae=vae)
    img = _image(size=32)
    z = encode_image(pipe, img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    torch.testing.assert_close(z, expected)


# --- DDIM grid, step, inversion --------------------------------------------------------------------------------

def test_ddim_grid_matches_diffusers_ddim(pipe):
    from diffusers import DDIMScheduler

    grid = ddim_grid(pipe, 10)
    ref = DDIMScheduler.from_config(pipe.scheduler.config)
    ref.set_timesteps(10)
    assert torch.equal(grid.timesteps, ref.timesteps) and len(grid) == 10
    assert grid.abar[:-1].tolist() == pytest.approx(ref.alphas_cumprod[ref.timesteps].double().tolist())
    assert float(grid.abar[-1]) == pytest.approx(float(ref.final_alpha_cumprod))
    with pytest.raises(ValueError, match="num_inference_steps"):
        ddim_grid(pipe, 0)


@pytest.mark.parametrize("pred", ["epsilon", "sample"])
def test_ddim_step_there_and_back_with_the_same_prediction_is_exact(pred):
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, 4, generator=g,
                                                                                       dtype=torch.float64)
    a, b = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    y, x0 = ddim_step(out, x, a, b, pred)
    if pred == "epsilon":  # hand formula: x0 = (x - sqrt(1-a) eps) / sqrt(a)
        torch.testing.assert_close(x0, (x - (1 - a).sqrt() * out) / a.sqrt())
        back, _ = ddim_step(out, y, b, a, pred)
    else:
        back, _ = ddim_step(x0, y, b, a, pred)
    torch.testing.assert_close(back, x)


def test_ddim_step_v_prediction_matches_the_hand_formula():
    g = torch.Generator().manual_seed(1)
    x, v = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(1, 3, 4, 4, generator=g,
                                                                                   dtype=torch.float64)
    a, b = torch.tensor(0.4, dtype=torch.float64), torch.tensor(0.9, dtype=torch.float64)
    y, x0 = ddim_step(v, x, a, b, "v_prediction")
    x0_hand = a.sqrt() * x - (1 - a).sqrt() * v
    eps_hand = a.sqrt() * v + (1 - a).sqrt() * x
    torch.testing.assert_close(x0, x0_hand)
    torch.testing.assert_close(y, b.sqrt() * x0_hand + (1 - b).sqrt() * eps_hand)


def test_inversion_then_sampling_returns_the_image_for_an_exact_model(parts):
    img = _image(4)
    x_star = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    sched = default_scheduler()
    pipe = TextToImagePipeline(PointUNet(x_star, sched), parts["text_encoder"], parts["tokenizer"], scheduler=sched)
    inv = ddim_invert(pipe, img, "a red circle", num_inference_steps=25)
    assert inv.latents.shape == (26, 1, 3, 16, 16) and torch.equal(inv.latents[0], x_star)
    assert float((inv.noise - x_star).abs().mean()) > 0.1  # it went somewhere
    out = reconstruct(pipe, inv, 1.0, output_type="np").images[0]
    assert _psnr(np.round(out * 255), img) > 45
    with pytest.raises(ValueError, match="exactly one of image and latents"):
        ddim_invert(pipe, None, "a red circle")


@pytest.mark.slow
def test_null_text_inversion_lowers_the_guided_reconstruction_error():
    """On the committed ShapesWorld model (a trained one: a random UNet's guided error is beyond any null text)."""
    from kit.data.shapes import caption, render, sample_scene
    from kit.diffusion.t2i import load_shapes_pipeline

    pipe = load_shapes_pipeline()
    scene = sample_scene(np.random.default_rng(3), 2)
    img, _ = render(scene)
    kw = dict(num_inference_steps=15, guidance_scale=3.0)
    plain = null_text_invert(pipe, img, caption(scene), inner_steps=0, **kw)
    tuned = null_text_invert(pipe, img, caption(scene), inner_steps=10, **kw)
    assert len(tuned.null_embeds) == 15 and tuned.null_embeds[0].shape == plain.null_embeds[0].shape
    assert torch.equal(tuned.latents, plain.latents)  # the same pivot
    assert all(a <= b * (1 + 1e-6) for a, b in zip(tuned.losses, plain.losses))
    rec_plain = reconstruct(pipe, plain, 3.0, output_type="np").images[0]
    rec_tuned = reconstruct(pipe, tuned, 3.0, output_type="np").images[0]
    # measured: 23.5 dB with the plain null text, 26.4 dB after null-text inversion (15 steps, guidance 3)
    assert _psnr(np.round(rec_tuned * 255), img) > _psnr(np.round(rec_plain * 255), img) + 2.0


# --- inpainting ------------------------------------------------------------------------------------------------

def test_inpaint_keeps_the_known_region_and_fills_the_hole(parts):
    img = _image(6)
    x_star = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    sched = default_scheduler()
    unet = PointUNet(x_star, sched)
    pipe = TextToImagePipeline(unet, parts["text_encoder"], parts["tokenizer"], scheduler=sched)
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    hole = img.copy()
    hole[mask] = 0
    out = inpaint(pipe, hole, mask, "a red circle", num_inference_steps=10, guidance_scale=1.0,
                  generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    out = np.round(out * 255)
    assert np.array_equal(out[~mask], hole[~mask].astype(float))
    assert _psnr(out[mask], img[mask]) > 40  # the model knows only x*: the hole is filled with x*
    calls = unet.calls
    inpaint(pipe, hole, mask, "a red circle", num_inference_steps=10, guidance_scale=1.0, resample=3)
    assert unet.calls - calls == 30  # three passes per step
    with pytest.raises(ValueError, match="mask must be 16x16"):
        inpaint(pipe, hole, mask[:8], "a red circle")
    with pytest.raises(ValueError, match="resample"):
        inpaint(pipe, hole, mask, "a red circle", resample=0)
