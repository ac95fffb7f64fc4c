"""Text-to-image pipeline on tiny random components: hand-written DDIM + guidance and VE-Euler loops as
references, determinism, output types, step counts, the latent (VAE) path and loading an SD-like folder."""

import json

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from kit.diffusion.t2i import (  # noqa: E402
    T2IOutput,
    TextToImagePipeline,
    build_unet,
    default_scheduler,
    from_pretrained_sd,
    tiny_unet_config,
)
from kit.diffusion.text import build_text_encoder, build_tokenizer, tiny_text_config  # noqa: E402

torch.set_num_threads(1)

WORDS = ["a", "big", "red", "blue", "circle", "square"]
PROMPTS = ["a big red circle", "a blue square"]


def _text(hidden=32, max_length=8):
    tok = build_tokenizer(WORDS, max_length=max_length)
    torch.manual_seed(0)
    enc = build_text_encoder(tiny_text_config(len(tok), hidden_size=hidden, layers=1, heads=2,
                                              max_length=max_length)).eval()
    return tok, enc


def _unet(in_channels=3, sample_size=16):
    torch.manual_seed(1)
    unet = build_unet(sample_size=sample_size, in_channels=in_channels, block_out_channels=(16, 32),
                      cross_attention_dim=32, attention_head_dim=4).eval()
    with torch.no_grad():  # a random UNet's output is tiny; make it visibly input-dependent
        unet.conv_out.weight.mul_(20.0)
    return unet


@pytest.fixture(scope="module")
def parts():
    tok, enc = _text()
    return {"unet": _unet(), "text_encoder": enc, "tokenizer": tok}


@pytest.fixture()
def pipe(parts):
    return TextToImagePipeline(**parts)


class _Calls:
    """Forward pre-hook recording the batch size of every UNet call."""

    def __init__(self, unet):
        self.batches = []
        self.handle = unet.register_forward_pre_hook(lambda m, args: self.batches.append(args[0].shape[0]))

    def close(self):
        self.handle.remove()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_unet_config_blocks_and_cross_attention_resolutions():
    cfg = tiny_unet_config(sample_size=32, block_out_channels=(16, 32, 32), attention_head_dim=4)
    assert cfg["down_block_types"] == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert cfg["up_block_types"] == ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    unet = diffusers.UNet2DConditionModel(**cfg).eval()
    seen = set()
    hooks = [m.register_forward_pre_hook(lambda mod, args, kw: seen.add(args[0].shape[1]), with_kwargs=True)
             for n, m in unet.named_modules() if n.endswith("attn2")]
    with torch.no_grad():
        out = unet(torch.randn(1, 3, 32, 32), 10, encoder_hidden_states=torch.randn(1, 5, 64)).sample
    for h in hooks:
        h.remove()
    assert out.shape == (1, 3, 32, 32)
    assert seen == {16 * 16, 8 * 8}


def test_unet_config_norm_groups_and_bad_input():
    assert tiny_unet_config(block_out_channels=(48, 96, 96))["norm_num_groups"] == 24
    assert tiny_unet_config()["norm_num_groups"] == 32
    for kw in (dict(block_out_channels=(64,)), dict(sample_size=30), dict(norm_num_groups=5),
               dict(attention_head_dim=3), dict(in_channels=0)):
        with pytest.raises(ValueError):
            tiny_unet_config(**kw)


def _guided_eps(unet, x, t, cond, uncond, w):
    with torch.no_grad():
        e_c = unet(x, t, encoder_hidden_states=cond).sample
        e_u = unet(x, t, encoder_hidden_states=uncond).sample
    return e_u + w * (e_c - e_u)


def test_ddim_path_matches_hand_written_ddim_with_guidance(pipe, parts):
    unet, tok, enc = parts["unet"], parts["tokenizer"], parts["text_encoder"]
    n, w = 4, 2.5
    noise = torch.randn(2, 3, 16, 16, generator=_gen(3))
    out = pipe(PROMPTS, num_inference_steps=n, guidance_scale=w, latents=noise, negative_prompt="a square",
               output_type="pt")
    # reference: DDIM (eta = 0) from the formula, two separate UNet calls per step
    ids = lambda ps: tok(ps, padding="max_length", max_length=8, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        cond, uncond = enc(ids(PROMPTS))[0], enc(ids(["a square"] * 2))[0]
    abar = default_scheduler().alphas_cumprod.to(torch.float64)
    ts = [int(t) for t in np.arange(0, 1000, 1000 // n)[::-1]]  # 750, 500, 250, 0
    x = noise.double()
    for i, t in enumerate(ts):
        eps = _guided_eps(unet, x.float(), torch.tensor(t), cond, uncond, w).double()
        a, a_prev = abar[t], (abar[ts[i + 1]] if i + 1 < n else torch.tensor(1.0, dtype=torch.float64))
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    # float32 scheduler arithmetic and batched vs separate UNet calls: small differences, amplified by 20x
    rel = (out.latents.double() - x).norm() / x.norm()
    assert rel < 1e-4
    torch.testing.assert_close(out.images, ((x.float() + 1) / 2).clamp(0, 1), rtol=1e-3, atol=2e-3)


def test_solver_path_matches_hand_written_ve_euler(parts):
    unet, tok, enc = parts["unet"], parts["tokenizer"], parts["text_encoder"]
    sched = diffusers.DDPMScheduler(beta_schedule="linear")
    pipe = TextToImagePipeline(**parts, scheduler=sched, solver="euler")
    abar = sched.alphas_cumprod.to(torch.float64)
    steps = [999, 600, 200, 20]  # on the table: the timesteps are integers
    sigmas = ((1 - abar[steps]) / abar[steps]).sqrt()
    noise = torch.randn(2, 3, 16, 16, generator=_gen(4))
    w = 3.0
    out = pipe(PROMPTS, guidance_scale=w, sigmas=sigmas, latents=noise, output_type="pt")
    ids = lambda ps: tok(ps, padding="max_length", max_length=8, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        cond, uncond = enc(ids(PROMPTS))[0], enc(ids(["", ""]))[0]
    x = noise.double() * sigmas[0]
    for i, t in enumerate(steps[:-1]):
        s, s_next = sigmas[i], sigmas[i + 1]
        eps = _guided_eps(unet, (x / (1 + s**2).sqrt()).float(), torch.tensor([float(t)] * 2), cond, uncond, w)
        x = x + (s_next - s) * eps.double()  # dx/dsigma = (x - D) / sigma = eps
    assert out.images.shape == (2, 3, 16, 16)
    rel = (out.latents.double() - x).norm() / x.norm()  # float32 in the pipeline: x starts at sigma ~157
    assert rel < 1e-4


def test_seeded_determinism_and_seed_dependence(pipe):
    a = pipe(PROMPTS, num_inference_steps=3, generator=_gen(0), output_type="np").images
    b = pipe(PROMPTS, num_inference_steps=3, generator=_gen(0), output_type="np").images
    c = pipe(PROMPTS, num_inference_steps=3, generator=_gen(1), output_type="np").images
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


@pytest.mark.parametrize("solver", [None, "dpmpp2m", "euler"])
@pytest.mark.parametrize("w", [1.0, 3.0])
def test_unet_calls_and_batches_follow_steps_and_guidance(pipe, parts, solver, w):
    calls = _Calls(parts["unet"])
    try:
        out = pipe(PROMPTS, num_inference_steps=3, guidance_scale=w, generator=_gen(), output_type="pt",
                   solver=solver)
    finally:
        calls.close()
    assert calls.batches == [4 if w > 1 else 2] * 3
    assert out.images.shape == (2, 3, 16, 16)
    assert 0 <= out.images.min() and out.images.max() <= 1


def test_guidance_changes_the_result(pipe):
    a = pipe(PROMPTS, num_inference_steps=2, guidance_scale=1.0, generator=_gen(), output_type="latent").images
    b = pipe(PROMPTS, num_inference_steps=2, guidance_scale=4.0, generator=_gen(), output_type="latent").images
    assert (a - b).abs().max() > 1e-3


def test_output_types(pipe):
    kw = dict(num_inference_steps=2, output_type="np")
    arr = pipe(PROMPTS, generator=_gen(), **kw).images
    pil = pipe(PROMPTS, generator=_gen(), **{**kw, "output_type": "pil"}).images
    pt = pipe(PROMPTS, generator=_gen(), **{**kw, "output_type": "pt"})
    assert isinstance(pt, T2IOutput) and pt.images.shape == (2, 3, 16, 16)
    assert arr.shape == (2, 16, 16, 3) and arr.dtype == np.float32
    np.testing.assert_allclose(arr, pt.images.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert isinstance(pil, list) and len(pil) == 2 and pil[0].size == (16, 16) and pil[0].mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pil[1]), np.round(arr[1] * 255).astype(np.uint8))
    torch.testing.assert_close(pt.images, ((pt.latents + 1) / 2).clamp(0, 1))


def test_single_prompt_and_explicit_size(parts):
    pipe = TextToImagePipeline(**parts, solver="dpmpp2m")
    out = pipe("a red square", num_inference_steps=2, height=32, width=16, generator=_gen(), output_type="pt")
    assert out.images.shape == (1, 3, 32, 16)


def test_scheduler_path_with_explicit_sigmas(parts):
    sched = diffusers.EulerDiscreteScheduler(beta_schedule="linear")
    pipe = TextToImagePipeline(**parts, scheduler=sched)
    abar = sched.alphas_cumprod.to(torch.float64)
    sig = ((1 - abar[[900, 400, 100, 10]]) / abar[[900, 400, 100, 10]]).sqrt()
    calls = _Calls(parts["unet"])
    try:
        out = pipe(PROMPTS, sigmas=sig, generator=_gen(), output_type="pt")
    finally:
        calls.close()
    assert len(calls.batches) == 3 and out.images.shape == (2, 3, 16, 16)
    torch.testing.assert_close(sched.sigmas.double(), sig, rtol=1e-5, atol=1e-6)


def test_vae_latent_path(parts):
    torch.manual_seed(2)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
                                  sample_size=16).eval()
    unet = _unet(in_channels=4, sample_size=8)
    pipe = TextToImagePipeline(unet, parts["text_encoder"], parts["tokenizer"], vae=vae)
    assert pipe.vae_scale_factor == 2 and pipe.scheduler.config.beta_schedule == "scaled_linear"
    out = pipe(PROMPTS, num_inference_steps=2, generator=_gen(), output_type="pt")
    assert out.latents.shape == (2, 4, 8, 8) and out.images.shape == (2, 3, 16, 16)
    with torch.no_grad():
        dec = vae.decode(out.latents / vae.config.scaling_factor).sample
    torch.testing.assert_close(out.images, ((dec + 1) / 2).clamp(0, 1))
    with pytest.raises(ValueError, match="multiples of 4"):
        pipe(PROMPTS, num_inference_steps=1, height=18)


def test_components_round_trip_and_to(pipe):
    comps = pipe.components
    assert set(comps) == {"unet", "text_encoder", "tokenizer", "scheduler", "vae", "solver", "schedule"}
    other = TextToImagePipeline.from_components(comps, solver="heun")
    assert other.unet is pipe.unet and other.solver == "heun" and other.to("cpu") is other
    assert other.device == torch.device("cpu")


def test_bad_input_raises(pipe, parts):
    with pytest.raises(ValueError, match="solver"):
        TextToImagePipeline(**parts, solver="rk4")
    with pytest.raises(ValueError, match="schedule"):
        TextToImagePipeline(**parts, schedule="cosine")
    with pytest.raises(ValueError, match="output_type"):
        pipe(PROMPTS, output_type="jpg")
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(PROMPTS, num_inference_steps=0)
    with pytest.raises(ValueError, match="negative_prompt"):
        pipe(PROMPTS, num_inference_steps=1, negative_prompt=["a", "b", "c"])
    with pytest.raises(ValueError, match="prompt"):
        pipe([], num_inference_steps=1)
    with pytest.raises(ValueError, match="latents"):
        pipe(PROMPTS, num_inference_steps=1, latents=torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="range"):
        pipe(PROMPTS, solver="euler", sigmas=[500.0, 1.0, 0.5])


def _tiny_clip_tokenizer(folder):
    """A real CLIPTokenizer from a hand-written byte-pair vocabulary (letters, words, two merges)."""
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + "</w>": len(letters) + i for i, c in enumerate(letters)})
    merges = ["r e", "re d</w>"]
    vocab["re"], vocab["red</w>"] = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)


def test_from_pretrained_sd_tiny_folder(tmp_path, parts):
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = _tiny_clip_tokenizer(tmp_path / "raw")
    torch.manual_seed(5)
    enc = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id)).eval()
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                                  sample_size=16).eval()
    unet = _unet(in_channels=4, sample_size=8)
    sched = default_scheduler(latent=True)
    root = tmp_path / "sd"
    for sub, obj in (("unet", unet), ("text_encoder", enc), ("vae", vae), ("tokenizer", tok),
                     ("scheduler", sched)):
        obj.save_pretrained(root / sub)
    loaded = from_pretrained_sd(str(root), local_files_only=True)
    ref = TextToImagePipeline(unet, enc, tok, scheduler=sched, vae=vae)
    kw = dict(num_inference_steps=2, output_type="pt")
    a = loaded(["a red cat"], generator=_gen(), **kw).images
    b = ref(["a red cat"], generator=_gen(), **kw).images
    assert a.shape == (1, 3, 16, 16) and type(loaded.scheduler).__name__ == "DDIMScheduler"
    torch.testing.assert_close(a, b)
    # an explicit tokenizer replaces the folder's (here: the same one re-loaded by the caller)
    explicit = from_pretrained_sd(str(root), tokenizer=tok, local_files_only=True)
    torch.testing.assert_close(explicit(["a red cat"], generator=_gen(), **kw).images, b)
    with pytest.raises(ValueError, match="model_id_or_path"):
        from_pretrained_sd("")
    # the editing series' loader: the folder as is, an LCM folder with its LCMScheduler, or the ShapesWorld model
    import shutil

    from kit.diffusion.t2i import load_editing_pipeline

    plain = load_editing_pipeline(str(root))
    assert type(plain.scheduler).__name__ == "DDIMScheduler" and plain.unet.dtype == torch.float32
    torch.testing.assert_close(plain(["a red cat"], generator=_gen(), **kw).images, b)
    shutil.copytree(root, tmp_path / "tiny-lcm")
    assert type(load_editing_pipeline(str(tmp_path / "tiny-lcm")).scheduler).__name__ == "LCMScheduler"
    shapes = load_editing_pipeline(None)
    assert shapes.vae is None and shapes.solver is None


def test_ddim_path_equals_diffusers_stable_diffusion_pipeline(parts):
    """Same components, scheduler config, prompts, noise and guidance: diffusers' own pipeline gives the same
    latents (its VAE is required by the constructor but unused with output_type="latent")."""
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=3, block_out_channels=(8,),
                                  down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                                  norm_num_groups=4, sample_size=16).eval()
    cfg = diffusers.DDIMScheduler(beta_schedule="linear", clip_sample=False, steps_offset=1).config
    sd = diffusers.StableDiffusionPipeline(vae=vae, scheduler=diffusers.DDIMScheduler.from_config(cfg),
                                           safety_checker=None, feature_extractor=None,
                                           requires_safety_checker=False, **parts)
    sd.set_progress_bar_config(disable=True)
    ours = TextToImagePipeline(**parts, scheduler=diffusers.DDIMScheduler.from_config(cfg), vae=vae)
    kw = dict(num_inference_steps=3, guidance_scale=2.0, output_type="latent", negative_prompt=["a square", ""])
    want = sd(PROMPTS, generator=_gen(7), height=16, width=16, **kw).images
    got = ours(PROMPTS, generator=_gen(7), **kw).images
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_pooled_text_path_is_diffusers_text_addition_embedding_and_is_checked():
    from kit.diffusion.t2i import tiny_unet_config

    assert "addition_embed_type" not in tiny_unet_config(sample_size=16, block_out_channels=(16, 32))
    cfg = tiny_unet_config(sample_size=16, block_out_channels=(16, 32), cross_attention_dim=32, pooled_text_heads=4)
    assert cfg["addition_embed_type"] == "text" and cfg["addition_embed_type_num_heads"] == 4
    with pytest.raises(ValueError, match="pooled_text_heads"):
        tiny_unet_config(sample_size=16, block_out_channels=(16, 32), cross_attention_dim=32, pooled_text_heads=5)
