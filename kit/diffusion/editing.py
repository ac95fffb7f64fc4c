"""Real-image editing tools for :class:`kit.diffusion.t2i.TextToImagePipeline`: image encoding, DDIM inversion,
null-text inversion and masked (RePaint-style) inpainting.

All of them walk the same deterministic DDIM grid (Song et al., arXiv:2010.02502) built from the pipeline's
``alphas_cumprod``: :func:`ddim_grid` gives the timesteps a ``DDIMScheduler`` with the pipeline scheduler's config
would use, and the noise level ``abar`` before each of them. With ``out`` the model's prediction at ``(x_t, t)``
(epsilon, v or sample, as the scheduler's ``prediction_type`` says) converted to ``(x0_hat, eps_hat)``:

- sampling step  x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps_hat   (eta = 0);
- inversion step x_next = sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps_hat, with the prediction made at the
  less noisy point and the timestep sampling uses for that transition: the usual approximation
  eps(x_next, t) ~ eps(x_t, t) (Dhariwal & Nichol, arXiv:2105.05233, App. F; as null-text inversion's code does).

Null-text inversion (Mokady et al., arXiv:2211.09794) then optimises one unconditional embedding per step so that
guided sampling from the inverted noise retraces the unguided inversion path; :func:`reconstruct` samples with
them. :func:`inpaint` keeps the known region of an image by replacing it, before every step, with the image noised
to that step (Lugmayr et al., RePaint, arXiv:2201.09865), with RePaint's resampling (``resample`` > 1 goes back one
step with fresh noise and denoises again, so the generated region harmonises with the known one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["encode_image", "ddim_grid", "ddim_step", "eps_from_output", "DDIMGrid", "Inversion", "ddim_invert", "null_text_invert",
           "reconstruct", "inpaint"]


def _pixels(image: Any, size: tuple[int, int] | None, channels: int, resize: bool) -> Tensor:
    """Return images as float32 [B, C, H, W] in [0, 1] from PIL image(s), uint8 arrays [H, W, C] / [B, H, W, C] or a
    float tensor [B, C, H, W] in [0, 1]."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(channels)
    if isinstance(image, Image.Image) or (isinstance(image, (list, tuple)) and image
                                          and all(isinstance(i, Image.Image) for i in image)):
        images = [image] if isinstance(image, Image.Image) else list(image)
        if mode is None:
            raise ValueError(f"PIL images need a model with 1 or 3 channels, this one has {channels}")
        arrays = []
        for im in images:
            im = im.convert(mode)
            if size is not None and im.size != (size[1], size[0]):
                if not resize:
                    raise ValueError(f"image is {im.size[0]}x{im.size[1]} (WxH); the model expects "
                                     f"{size[1]}x{size[0]}: pass resize=True or resize it first")
                im = im.resize((size[1], size[0]), Image.BICUBIC)
            a = np.asarray(im, dtype=np.uint8)
            arrays.append(a[..., None] if a.ndim == 2 else a)
        image = np.stack(arrays)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 [H, W, C] or [B, H, W, C], got dtype {image.dtype}")
        a = image[None] if image.ndim == 3 else image
        if a.ndim != 4 or a.shape[-1] != channels:
            raise ValueError(f"an image array must be [H, W, {channels}] or [B, H, W, {channels}] uint8, got "
                             f"shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255.0
    elif isinstance(image, Tensor):
        x = image[None] if image.ndim == 3 else image
        if x.ndim != 4 or x.shape[1] != channels or not x.is_floating_point():
            raise ValueError(f"an image tensor must be float [B, {channels}, H, W] in [0, 1], got "
                             f"{tuple(image.shape)} {image.dtype}")
        if x.min() < 0 or x.max() > 1:
            raise ValueError("an image tensor must hold values in [0, 1]")
        x = x.float()
    else:
        raise ValueError(f"image must be a PIL image, a uint8 array or a float tensor, got {type(image).__name__}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        if not resize:
            raise ValueError(f"image is {x.shape[-2]}x{x.shape[-1]} (HxW); the model expects {size[0]}x{size[1]}: "
                             "pass resize=True or resize it first")
        x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return x


@torch.no_grad()
def encode_image(pipe, image: Any, *, resize: bool = False, height: int | None = None,
                 width: int | None = None) -> Tensor:
    """Return the model-space latents [B, c, h, w] of ``image``: ``2 x - 1`` in pixel space, the VAE posterior mean
    times ``scaling_factor`` in latent space. ``image``: PIL image(s), uint8 [H, W, C] / [B, H, W, C] or float
    [B, C, H, W] in [0, 1]; a wrong size is refused (or resized with ``resize=True``), PIL modes are converted."""
    h, w = pipe._size(height, width)
    f = pipe.vae_scale_factor
    channels = 3 if pipe.vae is not None else pipe.unet.config.in_channels
    x = _pixels(image, (h * f, w * f), channels, resize).to(pipe.device)
    x = 2.0 * x - 1.0
    if pipe.vae is None:
        return x
    z = pipe.vae.encode(x.to(pipe.vae.dtype)).latent_dist.mean
    return z.float() * pipe.vae.config.scaling_factor


@dataclass
class DDIMGrid:
    """The deterministic DDIM grid: ``timesteps`` [n] (descending, as sampling visits them) and ``abar`` [n + 1]:
    ``abar[i]`` the noise level at ``timesteps[i]`` and ``abar[n]`` the clean end (the scheduler's final alpha)."""

    timesteps: Tensor
    abar: Tensor

    def __len__(self) -> int:
        return len(self.timesteps)


def ddim_grid(pipe, num_inference_steps: int) -> DDIMGrid:
    """Return the :class:`DDIMGrid` a ``DDIMScheduler`` with the pipeline scheduler's config uses for
    ``num_inference_steps`` steps."""
    from diffusers import DDIMScheduler

    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(num_inference_steps)
    ts = sched.timesteps.clone()
    abar_all = sched.alphas_cumprod.to(torch.float64)
    levels = [abar_all[int(t)] for t in ts] + [torch.as_tensor(sched.final_alpha_cumprod, dtype=torch.float64)]
    return DDIMGrid(ts, torch.stack(levels))


def _x0_eps(out: Tensor, x: Tensor, abar: Tensor, prediction_type: str) -> tuple[Tensor, Tensor]:
    a, s = abar.sqrt().to(x.dtype), (1 - abar).sqrt().to(x.dtype)
    if prediction_type == "epsilon":
        return (x - s * out) / a, out
    if prediction_type == "v_prediction":
        return a * x - s * out, a * out + s * x
    if prediction_type == "sample":
        return out, (x - a * out) / s
    raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}")


def eps_from_output(out: Tensor, x: Tensor, abar: Tensor | float, prediction_type: str) -> Tensor:
    """Return the noise prediction eps [B, ...] from a model output at (x, abar): epsilon, v or sample."""
    abar = torch.as_tensor(abar, dtype=x.dtype, device=x.device)
    a, s = abar.sqrt(), (1 - abar).sqrt()
    if prediction_type == "epsilon":
        return out
    if prediction_type == "v_prediction":
        return a * out + s * x
    if prediction_type == "sample":
        return (x - a * out) / s
    raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}")


def ddim_step(out: Tensor, x: Tensor, abar: Tensor, abar_to: Tensor, prediction_type: str) -> tuple[Tensor, Tensor]:
    """Return (x at noise level ``abar_to``, x0_hat): the deterministic DDIM move of x [B, ...] at level ``abar``
    given the model output ``out`` there (towards less noise when sampling, more noise when inverting)."""
    x0, eps = _x0_eps(out, x, abar, prediction_type)
    return abar_to.sqrt().to(x.dtype) * x0 + (1 - abar_to).sqrt().to(x.dtype) * eps, x0


def _prediction_type(pipe) -> str:
    return pipe.scheduler.config.prediction_type


def _embeds(pipe, prompt, prompt_embeds, batch: int) -> Tensor:
    if (prompt is None) == (prompt_embeds is None):
        raise ValueError("give exactly one of prompt and prompt_embeds")
    e = pipe._check_embeds(prompt_embeds, "prompt_embeds") if prompt_embeds is not None else pipe.encode_prompt(
        [prompt] * batch if isinstance(prompt, str) else list(prompt))
    if e.shape[0] != batch:
        raise ValueError(f"{e.shape[0]} prompts for {batch} images")
    return e


@dataclass
class Inversion:
    """A DDIM inversion: ``latents`` [n + 1, B, c, h, w] from the clean image (index 0) to the noisiest (index n),
    ``grid`` (:class:`DDIMGrid`), the conditional ``prompt_embeds`` and, after null-text inversion, one
    unconditional embedding per sampling step ``null_embeds`` (list of n tensors [B, L, D], in sampling order)
    with ``losses``: per step, the mean squared distance of the guided step's landing point to the pivot's."""

    latents: Tensor
    grid: DDIMGrid
    prompt_embeds: Tensor
    null_embeds: list[Tensor] | None = None
    losses: list[float] = field(default_factory=list)

    @property
    def noise(self) -> Tensor:
        """Return the inverted latent at the first sampling timestep, the start point for :func:`reconstruct`."""
        return self.latents[-1]


@torch.no_grad()
def ddim_invert(pipe, image: Any = None, prompt: str | Sequence[str] | None = None, *, latents: Tensor | None = None,
                prompt_embeds: Tensor | None = None, num_inference_steps: int = 50, guidance_scale: float = 1.0,
                resize: bool = False, callback: Callable[[int, Tensor], None] | None = None) -> Inversion:
    """Return the DDIM :class:`Inversion` of ``image`` (or model-space ``latents`` [B, c, h, w]) under ``prompt``.

    ``guidance_scale`` 1 (the default) inverts the conditional model, the usual pivot for null-text inversion;
    ``callback(i, x)`` sees each new latent."""
    if (image is None) == (latents is None):
        raise ValueError("give exactly one of image and latents")
    x = encode_image(pipe, image, resize=resize) if latents is None else latents.to(pipe.device, torch.float32)
    cond = _embeds(pipe, prompt, prompt_embeds, x.shape[0])
    grid = ddim_grid(pipe, num_inference_steps)
    from kit.diffusion.t2i import _GuidedModel

    uncond = pipe.encode_prompt([""] * x.shape[0]) if guidance_scale > 1.0 else None
    model = _GuidedModel(pipe.unet, cond, uncond, guidance_scale)
    pred = _prediction_type(pipe)
    path = [x]
    n = len(grid)
    for j in range(n):  # from the clean end up: step j lands on timesteps[n - 1 - j]
        i = n - 1 - j
        a_from, a_to = grid.abar[i + 1], grid.abar[i]
        # the model sees the less noisy latent with the timestep of the transition (the one sampling uses there)
        out = model(x, grid.timesteps[i].to(pipe.device).expand(x.shape[0])).sample
        x, _ = ddim_step(out, x, a_from, a_to, pred)
        path.append(x)
        if callback is not None:
            callback(j, x)
    return Inversion(torch.stack(path), grid, cond)


def null_text_invert(pipe, image: Any = None, prompt: str | Sequence[str] | None = None, *,
                     latents: Tensor | None = None, num_inference_steps: int = 50, guidance_scale: float = 7.5,
                     inner_steps: int = 10, lr: float = 1e-2, early_stop: float = 1e-5, resize: bool = False,
                     progress: bool = False) -> Inversion:
    """Return an :class:`Inversion` with null-text embeddings: the DDIM inversion (guidance 1) as the pivot, then
    for each sampling step an unconditional embedding optimised (Adam, ``inner_steps`` iterations at ``lr``,
    starting from the previous step's) so that the guided DDIM step lands on the pivot's next latent; iterations
    stop early once the loss is below ``early_stop`` (Eq. (3) of arXiv:2211.09794; the paper's defaults:
    guidance 7.5, 10 iterations, lr 1e-2). ``reconstruct(pipe, inversion, guidance_scale)`` then retraces the
    image."""
    from tqdm.auto import tqdm

    inv = ddim_invert(pipe, image, prompt, latents=latents, num_inference_steps=num_inference_steps, resize=resize)
    if inner_steps < 0:
        raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
    grid, cond, pred = inv.grid, inv.prompt_embeds, _prediction_type(pipe)
    b = cond.shape[0]
    null = pipe.encode_prompt([""] * b).detach()
    x = inv.latents[-1]
    embeds, losses = [], []
    w = torch.as_tensor(guidance_scale, dtype=torch.float32)
    n = len(grid)
    for i in tqdm(range(n), desc="null-text inversion", disable=not progress):
        t = grid.timesteps[i].to(pipe.device).expand(b)
        target = inv.latents[n - 1 - i]
        with torch.no_grad():
            eps_c = pipe.unet(x.to(pipe.unet.dtype), t, encoder_hidden_states=cond).sample.float()
        null = null.clone().requires_grad_(True)
        opt = torch.optim.Adam([null], lr=lr)
        for _ in range(inner_steps):
            eps_u = pipe.unet(x.to(pipe.unet.dtype), t, encoder_hidden_states=null).sample.float()
            out = eps_u + w * (eps_c - eps_u)
            x_prev, _ = ddim_step(out, x, grid.abar[i], grid.abar[i + 1], pred)
            loss = torch.nn.functional.mse_loss(x_prev, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if float(loss.detach()) < early_stop:
                break
        null = null.detach()
        with torch.no_grad():
            eps_u = pipe.unet(x.to(pipe.unet.dtype), t, encoder_hidden_states=null).sample.float()
            x, _ = ddim_step(eps_u + w * (eps_c - eps_u), x, grid.abar[i], grid.abar[i + 1], pred)
            losses.append(float(torch.nn.functional.mse_loss(x, target)))
        embeds.append(null)
    inv.null_embeds, inv.losses = embeds, losses
    return inv


@torch.no_grad()
def reconstruct(pipe, inversion: Inversion, guidance_scale: float = 1.0, *, prompt_embeds: Tensor | None = None,
                callback: Callable[[int, Any, Tensor], Tensor | None] | None = None, output_type: str = "pil"):
    """Return the pipeline output of deterministic DDIM sampling from ``inversion.noise`` over the inversion's grid,
    with its prompt (or ``prompt_embeds``, e.g. an edited prompt) and, when it has them, its null-text embeddings as
    the unconditional ones. ``callback`` as in the pipeline (a returned tensor replaces the latents)."""
    from diffusers import DDIMScheduler

    from kit.diffusion.t2i import TextToImagePipeline

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    ddim = TextToImagePipeline.from_components(pipe.components, scheduler=sched, solver=None)
    embeds = inversion.prompt_embeds if prompt_embeds is None else prompt_embeds
    neg = inversion.null_embeds if (inversion.null_embeds is not None and guidance_scale > 1.0) else None
    x_t = inversion.noise
    h, w = x_t.shape[-2:]
    f = pipe.vae_scale_factor
    return ddim(prompt_embeds=embeds, negative_prompt_embeds=neg, num_inference_steps=len(inversion.grid),
                guidance_scale=guidance_scale, latents=x_t, callback=callback, output_type=output_type,
                height=h * f, width=w * f)


@torch.no_grad()
def inpaint(pipe, image: Any, mask: Any, prompt: str | Sequence[str], *, num_inference_steps: int = 50,
            guidance_scale: float = 3.0, resample: int = 1, generator: torch.Generator | None = None,
            resize: bool = False, output_type: str = "pil"):
    """Return the pipeline output of ``prompt`` drawn inside ``mask`` while the rest of ``image`` is kept.

    ``mask``: [H, W] (image resolution; bool, or numbers where > 0.5 means "generate"), resized to the latent grid
    by nearest neighbour in latent space. Before each DDIM step the known region is replaced by the image noised to
    that step with fresh noise; with ``resample`` = r > 1 each step is repeated r times, going back one step with
    fresh noise in between (RePaint's resampling with jump length 1)."""
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be a positive int, got {resample!r}")
    known = encode_image(pipe, image, resize=resize)
    b = known.shape[0]
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {tuple(m.shape)}")
    f = pipe.vae_scale_factor
    h, w = known.shape[-2:]
    if tuple(m.shape) != (h * f, w * f):
        raise ValueError(f"mask must be {h * f}x{w * f} (the image size), got {m.shape[0]}x{m.shape[1]}")
    m = (torch.nn.functional.interpolate(m[None, None], size=(h, w), mode="nearest") > 0.5).float().to(pipe.device)
    cond = _embeds(pipe, prompt, None, b)
    from kit.diffusion.t2i import _GuidedModel, guidance_weights

    guided = bool((guidance_weights(guidance_scale, b) > 1).any())
    model = _GuidedModel(pipe.unet, cond, pipe.encode_prompt([""] * b) if guided else None, guidance_scale)
    grid, pred = ddim_grid(pipe, num_inference_steps), _prediction_type(pipe)
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def randn() -> Tensor:
        return torch.randn(known.shape, generator=generator, device=gen_device).to(pipe.device)

    x = randn()
    n = len(grid)
    for i in range(n):
        a, a_prev = grid.abar[i], grid.abar[i + 1]
        t = grid.timesteps[i].to(pipe.device).expand(b)
        for u in range(resample):
            noised_known = a.sqrt().float() * known + (1 - a).sqrt().float() * randn()
            x = m * x + (1 - m) * noised_known
            x_prev, _ = ddim_step(model(x, t).sample, x, a, a_prev, pred)
            if u < resample - 1:  # back to level a with fresh noise: q(x_t | x_{t-1})
                ratio = (a / a_prev).float()
                x = ratio.sqrt() * x_prev + (1 - ratio).sqrt() * randn()
            else:
                x = x_prev
    x = m * x + (1 - m) * known
    from kit.diffusion.t2i import T2IOutput

    return T2IOutput(images=pipe._decode(x, output_type), latents=x)
