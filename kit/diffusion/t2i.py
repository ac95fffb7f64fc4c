"""A text-to-image pipeline with diffusers' call shape over any (UNet2DConditionModel, text encoder, tokenizer).

``TextToImagePipeline(unet, text_encoder, tokenizer, scheduler, vae)(prompts, num_inference_steps=20,
guidance_scale=3.0, generator=...)`` samples as Stable Diffusion does (Rombach et al., arXiv:2112.10752), with
classifier-free guidance (Ho & Salimans, arXiv:2207.12598): ``eps = eps_u + w (eps_c - eps_u)`` where ``eps_u`` is the
prediction for the negative prompt ("" by default); both halves go through the UNet as one batch
``[uncond x B, cond x B]``. Guidance is off (batch ``[cond x B]``) when ``guidance_scale <= 1``.

Two sampling paths:

- ``solver=None``: the diffusers scheduler (DDIM, DPMSolverMultistep, Euler, DDPM, ...) through ``set_timesteps`` +
  ``scale_model_input`` + ``step``, as diffusers' pipelines do; ``sigmas=`` goes through
  :func:`kit.diffusion.export.apply_schedule` (schedulers that accept custom sigmas or timesteps).
- ``solver="dpmpp2m"`` (any name of :data:`kit.diffusion.solvers.SOLVERS`): the kit ODE solver on the EDM form
  ``D(x, sigma)`` of the guided model (:func:`kit.diffusion.hf.from_diffusers`), over the named ``schedule`` built
  on the model's sigma range, or over explicit ``sigmas`` (e.g. a GITS schedule), which must lie in that range.
  Guidance is applied to the model output, which is exact for every prediction type since ``D`` is affine in it.

Latent space when ``vae`` is given (``vae.decode(latents / vae.config.scaling_factor)``), pixel space otherwise; in
both, the model's output ``x`` in [-1, 1] becomes ``clamp((x + 1) / 2, 0, 1)``.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kit.diffusion.text import encode_prompts

__all__ = ["tiny_unet_config", "build_unet", "default_scheduler", "T2IOutput", "TextToImagePipeline",
           "from_pretrained_sd", "resolve_sd_source", "load_editing_pipeline", "load_shapes_pipeline",
           "guidance_weights"]

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def tiny_unet_config(
    sample_size: int = 32,
    in_channels: int = 3,
    block_out_channels: Sequence[int] = (64, 128, 128),
    cross_attention_dim: int = 64,
    layers_per_block: int = 1,
    attention_head_dim: int = 8,
    norm_num_groups: int | None = None,
    pooled_text_heads: int = 0,
) -> dict[str, Any]:
    """Return kwargs for ``diffusers.UNet2DConditionModel``: DownBlock2D then CrossAttnDownBlock2D blocks, mirrored up.

    With 3 levels and 32x32 inputs, cross-attention runs at 16x16 and 8x8 (and in the 8x8 mid block).
    ``attention_head_dim`` is passed as diffusers names it (for this UNet it is the number of heads).
    ``norm_num_groups`` defaults to the largest divisor <= 32 of every channel count.
    ``pooled_text_heads`` > 0 adds diffusers' ``addition_embed_type="text"`` path: an attention-pooled summary of the
    text states joins the timestep embedding, so every ResNet block sees the whole prompt (the global conditioning of
    Imagen / SDXL beside cross-attention). SD 1.x has no such path; the call signature is unchanged.
    """
    chans = tuple(int(c) for c in block_out_channels)
    if len(chans) < 2 or any(c < 1 for c in chans):
        raise ValueError(f"block_out_channels must list >= 2 positive ints, got {block_out_channels!r}")
    for name, value in (("sample_size", sample_size), ("in_channels", in_channels),
                        ("cross_attention_dim", cross_attention_dim), ("layers_per_block", layers_per_block),
                        ("attention_head_dim", attention_head_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if sample_size % 2 ** (len(chans) - 1):
        raise ValueError(f"sample_size ({sample_size}) must be divisible by 2^(levels-1) = {2 ** (len(chans) - 1)}")
    g = math.gcd(*chans)
    if norm_num_groups is None:
        norm_num_groups = max(d for d in range(1, min(32, g) + 1) if g % d == 0)
    elif g % norm_num_groups:
        raise ValueError(f"norm_num_groups ({norm_num_groups}) must divide every channel count {chans}")
    if any(c % attention_head_dim for c in chans[1:]):
        raise ValueError(f"attention_head_dim (heads, {attention_head_dim}) must divide the channels {chans[1:]}")
    if pooled_text_heads < 0 or (pooled_text_heads and cross_attention_dim % pooled_text_heads):
        raise ValueError(f"pooled_text_heads ({pooled_text_heads}) must be 0 or divide cross_attention_dim "
                         f"({cross_attention_dim})")
    n = len(chans)
    extra = ({"addition_embed_type": "text", "addition_embed_type_num_heads": pooled_text_heads}
             if pooled_text_heads else {})
    return dict(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=chans,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
        **extra,
    )


def build_unet(**kw: Any):
    """Return a randomly initialised ``diffusers.UNet2DConditionModel`` of :func:`tiny_unet_config` (``kw``)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**tiny_unet_config(**kw))


def default_scheduler(latent: bool = False):
    """Return a DDIMScheduler: SD 1.x's scaled-linear betas for latents, linear DDPM betas for pixels (no clipping)."""
    from diffusers import DDIMScheduler

    if latent:
        return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                             set_alpha_to_one=False, steps_offset=1)
    return DDIMScheduler(beta_schedule="linear", clip_sample=False)


@dataclass
class T2IOutput:
    """Sampling result: ``images`` (list of PIL images, [B, H, W, C] numpy, [B, C, H, W] tensor in [0, 1], or the
    latents for "latent") and the final ``latents`` [B, c, h, w] before decoding."""

    images: Any
    latents: Tensor


def guidance_weights(guidance_scale: float | Sequence[float] | Tensor, batch: int) -> Tensor:
    """Return the classifier-free guidance scale of each row, float32 [batch], from one number or ``batch`` numbers
    (e.g. 1 for a source branch that must reconstruct, 3 for edited branches: one batch, one UNet call)."""
    w = torch.as_tensor(guidance_scale, dtype=torch.float32).detach().cpu().flatten()
    if w.numel() == 1:
        w = w.expand(batch).clone()
    if w.numel() != batch:
        raise ValueError(f"guidance_scale must be one number or one per prompt ({batch}), got {w.numel()}")
    if not torch.isfinite(w).all():
        raise ValueError(f"guidance_scale must be finite, got {w.tolist()}")
    return w


class _GuidedModel:
    """UNet-like callable ``model(x, t) -> .sample`` applying classifier-free guidance with one batched UNet call:
    ``out = out_u + w_b (out_c - out_u)`` row by row, with per-row scales ``w`` [B]. ``uncond`` is one tensor
    [B, L, D] or one per sampling step (null-text inversion); ``step`` selects it. ``parts`` holds the last call's
    unguided and conditional outputs (out_u, out_c) [B, ...], or None when unguided, for a caller that also needs
    the rows at another scale."""

    def __init__(self, unet, cond: Tensor, uncond: Tensor | Sequence[Tensor] | None,
                 guidance_scale: float | Tensor) -> None:
        self.unet, self.cond, self.uncond = unet, cond, uncond
        self.w = guidance_weights(guidance_scale, cond.shape[0])
        self.dtype = unet.dtype
        self.step = 0
        self.parts: tuple[Tensor, Tensor] | None = None

    def _uncond(self) -> Tensor:
        if isinstance(self.uncond, Tensor):
            return self.uncond
        if not 0 <= self.step < len(self.uncond):
            raise ValueError(f"negative_prompt_embeds holds {len(self.uncond)} steps; step {self.step} was asked")
        return self.uncond[self.step]

    def __call__(self, x: Tensor, t: Tensor, **_: Any) -> SimpleNamespace:
        x_in = x.to(self.dtype)
        if self.uncond is None:
            return SimpleNamespace(sample=self.unet(x_in, t, encoder_hidden_states=self.cond).sample.float())
        t2 = torch.cat([t, t]) if t.ndim == 1 else t
        out = self.unet(torch.cat([x_in, x_in]), t2, encoder_hidden_states=torch.cat([self._uncond(), self.cond]))
        eps_u, eps_c = out.sample.float().chunk(2)
        self.parts = (eps_u, eps_c)
        w = self.w.to(eps_u.device).view(-1, *([1] * (eps_u.ndim - 1)))
        return SimpleNamespace(sample=eps_u + w * (eps_c - eps_u))


class TextToImagePipeline:
    """Text-to-image sampling with diffusers' call shape; see the module docstring for the two sampling paths."""

    def __init__(self, unet, text_encoder, tokenizer, scheduler=None, vae=None, solver: str | None = None,
                 schedule: str = "edm") -> None:
        from kit.diffusion.schedules import SCHEDULES
        from kit.diffusion.solvers import SOLVERS

        if solver is not None and solver not in SOLVERS:
            raise ValueError(f"solver must be None (use the scheduler) or one of {SOLVERS}, got {solver!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        for name, obj in (("unet", unet), ("text_encoder", text_encoder), ("tokenizer", tokenizer)):
            if obj is None:
                raise ValueError(f"{name} is required")
        self.unet, self.text_encoder, self.tokenizer, self.vae = unet, text_encoder, tokenizer, vae
        self.scheduler = scheduler if scheduler is not None else default_scheduler(latent=vae is not None)
        self.solver, self.schedule = solver, schedule

    @property
    def components(self) -> dict[str, Any]:
        """Return the pipeline's parts as keyword arguments of the constructor."""
        return {"unet": self.unet, "text_encoder": self.text_encoder, "tokenizer": self.tokenizer,
                "scheduler": self.scheduler, "vae": self.vae, "solver": self.solver, "schedule": self.schedule}

    @classmethod
    def from_components(cls, components: dict[str, Any] | None = None, **overrides: Any) -> TextToImagePipeline:
        """Return a pipeline over ``components`` (e.g. another pipeline's ``.components``) with ``overrides``."""
        return cls(**{**(components or {}), **overrides})

    @property
    def device(self) -> torch.device:
        """Return the UNet's device."""
        return next(self.unet.parameters()).device

    def to(self, device: str | torch.device) -> TextToImagePipeline:
        """Return self after moving the UNet, text encoder and VAE to ``device``."""
        for module in (self.unet, self.text_encoder, self.vae):
            if module is not None:
                module.to(device)
        return self

    @property
    def vae_scale_factor(self) -> int:
        """Return the VAE's spatial downsampling factor (1 in pixel space)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode_prompt(self, prompts: Sequence[str]) -> Tensor:
        """Return text-encoder hidden states [B, L, hidden] on the UNet's device and dtype."""
        return encode_prompts(self.tokenizer, self.text_encoder, prompts).to(self.device, self.unet.dtype)

    @staticmethod
    def _batch(prompt, prompt_embeds) -> int:
        """Return the number of rows the prompt (strings) or prompt_embeds give (at least 1, for error messages)."""
        if prompt_embeds is not None:
            return max(len(prompt_embeds), 1)
        return 1 if isinstance(prompt, str) else max(len(prompt or []), 1)

    @staticmethod
    def _negative_prompts(negative_prompt: str | Sequence[str] | None, b: int) -> list[str]:
        """Return one negative prompt per row: "" for None, a string repeated, or a list of exactly ``b``."""
        neg = [""] * b if negative_prompt is None else (
            [negative_prompt] * b if isinstance(negative_prompt, str) else list(negative_prompt))
        if len(neg) != b or not all(isinstance(n, str) for n in neg):
            raise ValueError(f"negative_prompt must be a string or a list of {b} strings, got {negative_prompt!r}")
        return neg

    def _conditioning(self, prompt, prompt_embeds, negative_prompt, negative_prompt_embeds, guided: bool):
        """Return (cond [B, L, D], uncond: None, a tensor [B, L, D] or a list of them) from strings or embeddings."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("give exactly one of prompt (strings) and prompt_embeds (a tensor [B, L, D])")
        if prompt_embeds is not None:
            cond = self._check_embeds(prompt_embeds, "prompt_embeds")
        else:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            if not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError("prompt must be a string or a non-empty list of strings")
            cond = self.encode_prompt(prompts)
        b = cond.shape[0]
        if not guided:
            return cond, None
        if negative_prompt_embeds is not None:
            if negative_prompt is not None:
                raise ValueError("give negative_prompt or negative_prompt_embeds, not both")
            if isinstance(negative_prompt_embeds, Tensor):
                return cond, self._check_embeds(negative_prompt_embeds, "negative_prompt_embeds", like=cond)
            steps = list(negative_prompt_embeds)
            if not steps:
                raise ValueError("negative_prompt_embeds must be a tensor [B, L, D] or a non-empty list of them")
            return cond, [self._check_embeds(e, f"negative_prompt_embeds[{i}]", like=cond) for i, e in enumerate(steps)]
        return cond, self.encode_prompt(self._negative_prompts(negative_prompt, b))

    def _check_embeds(self, e: Any, name: str, like: Tensor | None = None) -> Tensor:
        dim = self.unet.config.cross_attention_dim
        if not isinstance(e, Tensor) or e.ndim != 3 or e.shape[0] < 1 or e.shape[-1] != dim:
            got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise ValueError(f"{name} must be a tensor [B, L, {dim}] (text-encoder hidden states), got {got}")
        if like is not None and e.shape != like.shape:
            raise ValueError(f"{name} must have prompt_embeds' shape {tuple(like.shape)}, got {tuple(e.shape)}")
        return e.to(self.device, self.unet.dtype)

    def _size(self, height: int | None, width: int | None) -> tuple[int, int]:
        f = self.vae_scale_factor
        base = self.unet.config.sample_size
        base = base if isinstance(base, int) else base[0]
        height, width = height or base * f, width or base * f
        mult = f * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height % mult or width % mult:
            raise ValueError(f"height and width must be multiples of {mult}, got {height}x{width}")
        return height // f, width // f

    def latent_shape(self, batch: int, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """Return the shape [batch, c, h, w] of the initial noise for images of ``height`` x ``width`` (default: the
        UNet's sample size times the VAE's factor)."""
        h, w = self._size(height, width)
        return (int(batch), self.unet.config.in_channels, h, w)

    def _solver_sigmas(self, den, n: int, sigmas: Any) -> Tensor:
        from kit.diffusion.schedules import get_schedule
        from kit.diffusion.solvers import check_sigmas

        if sigmas is None:
            return get_schedule(self.schedule, n, sigma_min=den.sigma_min, sigma_max=den.sigma_max)
        values = torch.tensor(check_sigmas(sigmas), dtype=torch.float64)
        lo, hi = den.sigma_min * (1 - 1e-5), den.sigma_max * (1 + 1e-5)
        if values[0] > hi or values[-1] < lo:
            raise ValueError(
                f"sigmas must lie in the model's range [{den.sigma_min:.6g}, {den.sigma_max:.6g}], got "
                f"[{values[-1]:.6g}, {values[0]:.6g}]; build the schedule with scheduler_sigma_range"
            )
        return values.clamp(den.sigma_min, den.sigma_max)

    def guided_denoiser(self, prompt: str | Sequence[str] | None = None,
                        guidance_scale: float | Sequence[float] = 3.0,
                        negative_prompt: str | Sequence[str] | None = None, *, prompt_embeds: Tensor | None = None,
                        negative_prompt_embeds: Tensor | None = None):
        """Return the EDM denoiser ``D(x, sigma)`` of the guided model for ``prompt`` (B prompts -> x [B, c, h, w]).

        This is what the solver path integrates; GITS searches (`kit.diffusion.gits.gits_search`) and trajectory
        measurements can run on it directly. Its ``sigma_min`` / ``sigma_max`` give the model's sigma range.
        ``prompt_embeds`` / ``negative_prompt_embeds`` [B, L, D] replace the strings; ``guidance_scale`` may give one
        scale per row.
        """
        from kit.diffusion.hf import from_diffusers

        if negative_prompt_embeds is not None and not isinstance(negative_prompt_embeds, Tensor):
            raise ValueError("guided_denoiser takes one negative_prompt_embeds tensor, not one per step")
        guided = bool((guidance_weights(guidance_scale, self._batch(prompt, prompt_embeds)) > 1.0).any())
        cond, uncond = self._conditioning(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds, guided)
        return from_diffusers(_GuidedModel(self.unet, cond, uncond, guidance_scale), self.scheduler)

    def _decode(self, latents: Tensor, output_type: str):
        if output_type == "latent":
            return latents
        if self.vae is not None:
            z = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
            x = self.vae.decode(z).sample.float()
        else:
            x = latents.float()
        images = ((x + 1) / 2).clamp(0, 1)
        if output_type == "pt":
            return images
        arr = images.permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return arr
        from PIL import Image

        u8 = np.round(arr * 255).astype(np.uint8)
        return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in u8]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str] | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float | Sequence[float] | Tensor = 3.0,
        generator: torch.Generator | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        output_type: str = "pil",
        sigmas: Tensor | Sequence[float] | None = None,
        callback: Callable[[int, Any, Tensor], Tensor | None] | None = None,
        latents: Tensor | None = None,
        solver: str | None = None,
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | Sequence[Tensor] | None = None,
    ) -> T2IOutput:
        """Return a :class:`T2IOutput` of images for ``prompt`` (a string or a list of B strings).

        ``prompt_embeds`` [B, L, D] (text-encoder hidden states) replace ``prompt``; ``negative_prompt_embeds`` is
        one tensor [B, L, D] or, on the scheduler path, a list with one per step (null-text inversion).
        ``guidance_scale``: one number or one per row (e.g. 1 for a source row, 3 for edited rows); guidance is
        on when any row's scale is > 1, and a row with scale 1 then gets its conditional prediction.
        ``sigmas``: an explicit VE schedule [n + 1] (sigma_max first), overriding ``num_inference_steps``.
        ``callback(i, t, latents)`` runs at the start of step i, before the model is evaluated: ``t`` is the
        scheduler timestep (scheduler path) or sigma_i with VE latents (solver path); a tensor it returns (same
        shape) replaces the latents, None keeps them. ``latents`` [B, c, h, w]: the initial standard normal noise
        (default: drawn with ``generator`` on its device). ``solver`` overrides the pipeline's.
        An :class:`kit.diffusion.attention.AttentionStore` registered on the UNet is told the batch layout.
        """
        from kit.diffusion.attention import find_attention_store

        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) \
                or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
        solver = solver if solver is not None else self.solver
        weights = guidance_weights(guidance_scale, self._batch(prompt, prompt_embeds))
        guided = bool((weights > 1.0).any())
        cond, uncond = self._conditioning(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds, guided)
        if isinstance(uncond, list) and solver is not None:
            raise ValueError("one negative_prompt_embeds per step needs the scheduler path (solver=None)")
        b = cond.shape[0]
        shape = self.latent_shape(b, height, width)
        h, w = shape[2:]
        if latents is None:
            gen_device = generator.device if generator is not None else torch.device("cpu")
            latents = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {list(shape)}, got {list(latents.shape)}")
        noise = latents.to(self.device, torch.float32)
        store = find_attention_store(self.unet)
        if store is not None:
            store.begin(batch_size=b, guided=guided, latent_size=(h, w))
        model = _GuidedModel(self.unet, cond, uncond, weights)
        if isinstance(uncond, list) and len(uncond) != num_inference_steps and sigmas is None:
            raise ValueError(f"negative_prompt_embeds holds {len(uncond)} steps for {num_inference_steps} steps")
        if solver is None:
            x = self._run_scheduler(model, noise, num_inference_steps, sigmas, generator, callback)
        else:
            x = self._run_solver(model, noise, num_inference_steps, sigmas, solver, callback)
        return T2IOutput(images=self._decode(x, output_type), latents=x)

    @staticmethod
    def _hooked(callback, i: int, t: Any, x: Tensor) -> Tensor:
        if callback is None:
            return x
        out = callback(i, t, x)
        if out is None:
            return x
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"callback must return None or a tensor of shape {tuple(x.shape)}, got {got}")
        return out.to(x.device, x.dtype)

    def _run_scheduler(self, model, noise, n, sigmas, generator, callback) -> Tensor:
        sched = self.scheduler
        if sigmas is not None:
            from kit.diffusion.export import apply_schedule

            apply_schedule(sched, sigmas, device=self.device)
        else:
            sched.set_timesteps(n, device=self.device)
        step_params = set(inspect.signature(sched.step).parameters)
        extra = {"generator": generator} if "generator" in step_params else {}
        x = noise * sched.init_noise_sigma
        for i, t in enumerate(sched.timesteps):
            x = self._hooked(callback, i, t, x)
            model.step = i
            out = model(sched.scale_model_input(x, t), t).sample
            x = sched.step(out, t, x, **extra).prev_sample
        return x

    def _run_solver(self, model, noise, n, sigmas, solver, callback) -> Tensor:
        from kit.diffusion.hf import from_diffusers
        from kit.diffusion.solvers import sample

        den = from_diffusers(model, self.scheduler)
        sig = self._solver_sigmas(den, n, sigmas)
        hook = None if callback is None else (lambda i, x, s: self._hooked(callback, i, s, x))
        return sample(den, noise * float(sig[0]), sig, solver=solver, step_hook=hook)


SD_SUBFOLDERS = ("unet", "text_encoder", "tokenizer", "vae", "scheduler")
SD_HOW_TO_GET = ("a Stable Diffusion 1.x folder in diffusers' layout (subfolders unet, text_encoder, tokenizer, vae, "
                 "scheduler): `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir DIR` "
                 "on a machine with network, or `StableDiffusionPipeline.save_pretrained(DIR)`")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _hub_offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DIFFUSERS_OFFLINE"))
    if any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def resolve_sd_source(model_id_or_path: str, local_files_only: bool = False) -> str:
    """Return what ``from_pretrained`` should load for a Stable Diffusion 1.x folder or hub id: the folder itself,
    the hub cache's snapshot folder of the id when the hub is offline (``HF_HUB_OFFLINE=1`` or
    ``local_files_only``), or the id (diffusers then downloads it).

    Raises ``FileNotFoundError`` naming what is missing and how to get it: a folder that does not exist or lacks
    one of :data:`SD_SUBFOLDERS`, or a hub id that is not in the cache while the hub is offline.
    """
    if not isinstance(model_id_or_path, str) or not model_id_or_path:
        raise ValueError(f"model_id_or_path must be a folder or hub id string, got {model_id_or_path!r}")
    folder = Path(model_id_or_path).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise FileNotFoundError(f"Stable Diffusion source {str(folder)!r} is a file; give {SD_HOW_TO_GET}")
        missing = [sub for sub in SD_SUBFOLDERS if not (folder / sub).is_dir()]
        if missing:
            raise FileNotFoundError(f"{str(folder)!r} is not a Stable Diffusion 1.x folder: it lacks the subfolders "
                                    f"{missing}; give {SD_HOW_TO_GET}")
        return str(folder)
    if not _HUB_ID.match(model_id_or_path) or model_id_or_path.startswith((".", "~")):
        raise FileNotFoundError(f"Stable Diffusion folder {model_id_or_path!r} does not exist; give {SD_HOW_TO_GET}, "
                                "or a hub id such as 'stable-diffusion-v1-5/stable-diffusion-v1-5'")
    if not (local_files_only or _hub_offline()):
        return model_id_or_path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(model_id_or_path, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError) as e:
        raise FileNotFoundError(
            f"Stable Diffusion {model_id_or_path!r} is neither a folder here nor in the Hugging Face cache, and the "
            f"hub is offline (HF_HUB_OFFLINE / local_files_only); download it first (`huggingface-cli download "
            f"{model_id_or_path}`) or give {SD_HOW_TO_GET}") from e


def from_pretrained_sd(model_id_or_path: str, tokenizer=None, scheduler=None, solver: str | None = None,
                       **kw: Any) -> TextToImagePipeline:
    """Return a pipeline over a Stable Diffusion 1.x folder or hub id (subfolders unet, text_encoder, tokenizer,
    vae, scheduler), loaded with each library's ``from_pretrained`` (``kw``: e.g. ``torch_dtype``,
    ``local_files_only``). ``tokenizer`` / ``scheduler`` given explicitly are used instead of the folder's;
    the default scheduler is the folder's config as a DDIMScheduler. Downloads only when called with a hub id and
    the hub is online; a missing folder or an uncached id offline raises ``FileNotFoundError`` saying how to get it
    (:func:`resolve_sd_source`).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source = resolve_sd_source(model_id_or_path, local_files_only=bool(kw.get("local_files_only", False)))
    hub_kw = {k: v for k, v in kw.items() if k in ("local_files_only", "revision", "cache_dir", "token")}
    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kw)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **kw)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **kw)
    if tokenizer is None:
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **hub_kw)
    if scheduler is None:
        scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **hub_kw)
    for module in (unet, text_encoder, vae):
        module.eval()
    return TextToImagePipeline(unet, text_encoder, tokenizer, scheduler=scheduler, vae=vae, solver=solver)


def load_editing_pipeline(pretrained: str | None = None, device: str | torch.device = "cpu",
                          solver: str | None = None) -> TextToImagePipeline:
    """Return the pipeline the editing series (multiedits, dtiil) and the t2i notebooks run on: the committed
    ShapesWorld model (``pretrained=None``) or an SD 1.x / LCM folder or hub id through :func:`from_pretrained_sd`
    (an LCM checkpoint gets its ``LCMScheduler``; fp16 on CUDA). ``solver``: None samples with the scheduler (the
    editing series), a kit solver name with that ODE solver. Downloads only when ``pretrained`` is a hub id and the
    hub is online."""
    if pretrained is None:
        return load_shapes_pipeline(device=device, solver=solver)
    source = resolve_sd_source(pretrained)
    scheduler = None
    if "lcm" in pretrained.lower():
        from diffusers import LCMScheduler

        scheduler = LCMScheduler.from_pretrained(source, subfolder="scheduler")
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return from_pretrained_sd(source, scheduler=scheduler, solver=solver, torch_dtype=dtype).to(device)


SHAPES_MODEL_DIR = "t2i_shapes"


def shapes_model_dir():
    """Return the folder of the committed ShapesWorld model (``kit/assets/t2i_shapes``)."""
    return Path(__file__).resolve().parents[1] / "assets" / SHAPES_MODEL_DIR


def load_shapes_pipeline(path=None, device: str | torch.device = "cpu", solver: str | None = "dpmpp2m",
                         dtype: torch.dtype = torch.float32) -> TextToImagePipeline:
    """Return the ready ShapesWorld pipeline saved by ``python -m kit.t2i.assets`` (pixel space, 32x32).

    ``pipe("a big red circle", num_inference_steps=20, guidance_scale=3.0, generator=g).images`` is a list of PIL
    images. ``path`` defaults to the committed weights; a missing folder raises ``FileNotFoundError`` saying how
    to rebuild it.
    """
    import json

    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    folder = Path(path) if path is not None else shapes_model_dir()
    needed = ["unet.safetensors", "unet_config.json", "text_encoder.safetensors", "text_encoder_config.json",
              "tokenizer", "kit_config.json"]
    missing = [n for n in needed if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"ShapesWorld model files {missing} not found in {folder}; rebuild them with "
                                "the two commands in notebooks/t2i/README.md (`python -m kit.t2i.assets`, then tools/gpu_t2i.py)")
    unet_cfg = {k: v for k, v in json.loads((folder / "unet_config.json").read_text()).items()
                if not k.startswith("_")}
    unet = UNet2DConditionModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in unet_cfg.items()
                                   if k in inspect.signature(UNet2DConditionModel.__init__).parameters})
    unet.load_state_dict({k: v.to(dtype) for k, v in load_file(str(folder / "unet.safetensors")).items()})
    text_cfg = CLIPTextConfig(**{k: v for k, v in json.loads((folder / "text_encoder_config.json").read_text()).items()
                                 if not k.startswith("_") and k not in ("architectures", "transformers_version")})
    text_encoder = CLIPTextModel(text_cfg)
    result = text_encoder.load_state_dict(
        {k: v.to(dtype) for k, v in load_file(str(folder / "text_encoder.safetensors")).items()}, strict=False)
    bad = [k for k in result.missing_keys + result.unexpected_keys if not k.endswith("position_ids")]
    if bad:
        raise ValueError(f"text encoder weights in {folder} do not match its config: {bad}")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder / "tokenizer"))
    meta = json.loads((folder / "kit_config.json").read_text())
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=meta["num_train_timesteps"], beta_schedule="linear",
                              prediction_type=meta.get("prediction_type", "epsilon"), clip_sample=False)
    pipe = TextToImagePipeline(unet.eval(), text_encoder.eval(), tokenizer, scheduler=scheduler, solver=solver)
    return pipe.to(device)
