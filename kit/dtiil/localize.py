"""D-TIIL's localisation pipeline (arXiv:2404.18033): a text-to-image diffusion model judges whether an image and
its caption agree, and where they do not.

The steps, as the authors' code runs them (spec ``dtiil.md`` §2), on any
:class:`kit.diffusion.t2i.TextToImagePipeline` (pixel-space ShapesWorld or latent Stable Diffusion):

1. **Align** (:func:`align`): starting from the caption's text-encoder states E_T, Adam steps on the embedding E alone
   minimise the denoising loss ``|| target - model(z_t, t, E) ||^2`` of the image's clean latent z0 (t uniform on the
   training steps, target = the model's prediction type: epsilon, v or the sample), then, optionally, steps on the
   UNet's weights with E frozen (Imagic's second stage). E_img "says what the image shows".
2. **Diff** (:func:`noise_difference`): DiffEdit's mask. For each of n seeds, z0 is noised to the middle of a 10-step
   LMS schedule (strength 0.5) and the last 5 steps run with classifier-free guidance (scale 7, the unconditional
   embedding is that of ""), once with each embedding from the same noise; the guided noise prediction of the last
   step is kept, and d_k = || eps_a - eps_b ||_2 over channels. D = mean_k d_k, min-max normalised to [0, 1].
3. **Bin** (:func:`binarize`): D x 255, a 5 x 5 Gaussian blur (sigma 1), ``> 255 tau``, resized to the image size.
   M1 = Bin(Diff(E_img, E_T; z0(I)), tau1).
4. **Inpaint** the image inside M1 toward the caption (E_T): an inpainting pipeline when one is given
   (``inpainter``, e.g. diffusers' ``StableDiffusionInpaintPipeline``), else RePaint-style masked sampling with the
   same model (:func:`kit.diffusion.editing.inpaint`, ``[PROPOSED]``). The region now follows the text.
5. **Align again** on I_edit, from E_T: E_dnt keeps what the image implies and drops what only the text says.
6. **Final map** D_f = Diff(E_img, E_dnt) on I_edit's latent (the code's; ``final_map_on="orig"`` uses the original
   image's, ``[PROPOSED]``), M = Bin(D_f, tau2).
7. The inconsistent words (:mod:`kit.dtiil.words`: caption runs scored on the crop of I_edit at M's largest region)
   and the consistency score (:func:`consistency_score`).

Choices the code leaves open or gets wrong, each a named option (``[PROPOSED]``): the UNet is snapshotted and
restored after every call (``restore_unet=True``; the code keeps fine-tuning across samples), Align's t / noise come
from a seeded generator (reproducible), ``align_batch`` draws several (t, noise) per step (the code: 1), the code's
unused embedding-drift term |mean cdist(E, E_T) - gamma| can be added with ``drift_weight`` > 0.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LocalizeOptions", "AlignResult", "DiffResult", "LocalizeResult", "FINAL_MAP_ON", "SCORES",
           "caption_embedding", "image_latents", "align", "noise_difference", "binarize", "unet_restored",
           "consistency_score", "localize"]

FINAL_MAP_ON = ("edit", "orig")
SCORES = ("embedding", "clip")


@dataclass(frozen=True)
class LocalizeOptions:
    """Options of :func:`localize`: the defaults of the authors' ``DTIILPipeline.__call__`` unless marked."""

    align_steps: int = 200          # K1 (the demo: 500)
    unet_steps: int = 0             # K2, Imagic's UNet stage (the demo: 200)
    embed_lr: float = 1e-3
    unet_lr: float = 4e-6
    align_batch: int = 1            # (t, noise) draws per Align step; the code's 1 ([PROPOSED] more for small models)
    drift_weight: float = 0.0       # [PROPOSED] weight of |mean cdist(E, E_T) - gamma| (the code computes, never adds)
    gamma: float = 8.0
    n_noise: int = 8                # num_noise_pred (the demo: 10)
    diff_steps: int = 10
    strength: float = 0.5
    guidance_scale: float = 7.0
    tau1: float = 0.15              # the first mask (the demo: 0.17)
    tau2: float = 0.3               # the final mask
    inpaint_steps: int = 200
    inpaint_guidance: float = 7.5   # diffusers' inpainting default (the code does not set it)
    inpaint_resample: int = 1       # RePaint resampling, the same-model inpainting only
    final_map_on: str = "edit"      # the code's: I_edit's latent; "orig" [PROPOSED]: the original image's
    restore_unet: bool = True       # [PROPOSED]: the code keeps the tuned UNet for the next sample
    first_step_only: bool = False   # the code's option: stop after the first mask (final = first)
    score: str = "embedding"        # the consistency score: "embedding" or "clip" (both [PROPOSED], spec §2.7)

    def __post_init__(self) -> None:
        for name in ("align_steps", "unet_steps"):
            _int(getattr(self, name), name, 0)
        for name in ("align_batch", "n_noise", "diff_steps", "inpaint_steps", "inpaint_resample"):
            _int(getattr(self, name), name, 1)
        for name in ("embed_lr", "unet_lr", "guidance_scale", "inpaint_guidance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.drift_weight < 0:
            raise ValueError(f"drift_weight must be >= 0, got {self.drift_weight}")
        if not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if round(self.diff_steps * self.strength) < 1:
            raise ValueError(f"diff_steps x strength must leave at least one step, got {self.diff_steps} x "
                             f"{self.strength}")
        for name in ("tau1", "tau2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.final_map_on not in FINAL_MAP_ON:
            raise ValueError(f"final_map_on must be one of {FINAL_MAP_ON}, got {self.final_map_on!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")


def _int(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    return value


def options(**opts: Any) -> LocalizeOptions:
    """Return :class:`LocalizeOptions` from keyword options, naming any unknown one."""
    names = {f.name for f in fields(LocalizeOptions)}
    bad = sorted(set(opts) - names)
    if bad:
        raise ValueError(f"unknown localize options {bad}; valid: {sorted(names)}")
    return LocalizeOptions(**opts)


# ----------------------------------------------------------------------------------------------- inputs
def caption_embedding(pipe, caption: str) -> Tensor:
    """Return E_T [1, L, D] (float32): the text encoder's states of ``caption`` padded to the tokenizer's length.
    An empty caption, or one the tokenizer cannot read, is refused."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"caption must be a non-empty string, got {caption!r}")
    from kit.diffusion.text import unknown_words

    if getattr(pipe.tokenizer, "unk_token_id", None) is not None:
        unknown = unknown_words(pipe.tokenizer, caption)   # a word-level tokenizer (ShapesWorld) maps them to <unk>
        if unknown:
            raise ValueError(f"caption {caption!r} has words outside the model's vocabulary: {unknown}")
    return pipe.encode_prompt([caption]).float()


def image_latents(pipe, image: Any) -> Tensor:
    """Return z0 [1, c, h, w], the model-space latent of ``image`` (a PIL image or uint8 [H, W, 3]) at the
    pipeline's resolution; any other type, or a batch, is refused with a clear error."""
    from PIL import Image

    from kit.diffusion.editing import encode_image

    if isinstance(image, Image.Image):
        pass
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            raise ValueError(f"image must be a PIL image or a uint8 array [H, W, 3], got {image.dtype} array "
                             f"of shape {image.shape}")
    else:
        raise ValueError(f"image must be a PIL image or a uint8 array [H, W, 3], got {type(image).__name__}")
    return encode_image(pipe, image, resize=True)


# ----------------------------------------------------------------------------------------------- Align
@dataclass
class AlignResult:
    """``embeds`` [1, L, D], the aligned embedding; ``losses`` per step (embedding steps, then UNet steps)."""

    embeds: Tensor
    losses: list[float] = field(default_factory=list)
    unet_losses: list[float] = field(default_factory=list)


def _training_target(pipe, z0: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Return (z_t, target) for the denoising loss at timesteps t [B]."""
    abar = pipe.scheduler.alphas_cumprod.to(z0.device, torch.float32)[t].view(-1, *([1] * (z0.ndim - 1)))
    z_t = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
    kind = pipe.scheduler.config.prediction_type
    if kind == "epsilon":
        return z_t, noise
    if kind == "v_prediction":
        return z_t, abar.sqrt() * noise - (1 - abar).sqrt() * z0
    if kind == "sample":
        return z_t, z0.expand_as(noise)
    raise ValueError(f"unsupported prediction_type {kind!r}")


def _denoising_loss(pipe, z0: Tensor, embeds: Tensor, batch: int, generator: torch.Generator) -> Tensor:
    n_train = int(pipe.scheduler.config.num_train_timesteps)
    t = torch.randint(0, n_train, (batch,), generator=generator).to(z0.device)
    noise = torch.randn((batch, *z0.shape[1:]), generator=generator).to(z0.device)
    z_t, target = _training_target(pipe, z0, noise, t)
    unet = pipe.unet
    out = unet(z_t.to(unet.dtype), t, encoder_hidden_states=embeds.expand(batch, -1, -1).to(unet.dtype)).sample
    return F.mse_loss(out.float(), target)


def align(pipe, z0: Tensor, init: Tensor, *, steps: int = 200, lr: float = 1e-3, unet_steps: int = 0,
          unet_lr: float = 4e-6, batch: int = 1, drift_weight: float = 0.0, gamma: float = 8.0, seed: int = 0,
          progress: bool = False) -> AlignResult:
    """Return the embedding aligned to the image latent ``z0`` [1, c, h, w], starting from ``init`` [1, L, D].

    ``steps`` Adam steps (lr ``lr``) on the embedding only, minimising the denoising loss of z0 (mean squared error
    against the model's prediction target, ``batch`` draws of (t, noise) per step from a generator seeded with
    ``seed``); plus ``drift_weight`` x |mean cdist(E, E_T) - gamma| when > 0 ([PROPOSED]). Then ``unet_steps`` Adam
    steps on the UNet's weights (lr ``unet_lr``) with the embedding frozen: they change ``pipe.unet`` in place; wrap
    the call in :func:`unet_restored` to undo them. The UNet's own gradients are never left set."""
    from tqdm.auto import tqdm

    _int(steps, "steps", 0)
    _int(unet_steps, "unet_steps", 0)
    _int(batch, "batch", 1)
    if init.ndim != 3 or init.shape[0] != 1:
        raise ValueError(f"init must be one embedding [1, L, D], got shape {tuple(init.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    unet = pipe.unet
    z0 = z0.detach().float()
    e0 = init.detach().float().to(z0.device)
    e = e0.clone().requires_grad_(True)
    opt = torch.optim.Adam([e], lr=lr)
    flags = [p.requires_grad for p in unet.parameters()]
    losses, unet_losses = [], []
    try:
        unet.requires_grad_(False)
        for _ in tqdm(range(steps), desc="align: embedding", disable=not progress, leave=False):
            loss = _denoising_loss(pipe, z0, e, batch, g)
            if drift_weight > 0:
                loss = loss + drift_weight * (torch.cdist(e[0], e0[0]).mean() - gamma).abs()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        e = e.detach()
        if unet_steps:
            unet.requires_grad_(True)
            was_training = unet.training
            unet.train()
            opt_u = torch.optim.Adam(unet.parameters(), lr=unet_lr)
            for _ in tqdm(range(unet_steps), desc="align: UNet", disable=not progress, leave=False):
                loss = _denoising_loss(pipe, z0, e, batch, g)
                opt_u.zero_grad()
                loss.backward()
                opt_u.step()
                unet_losses.append(float(loss.detach()))
            opt_u.zero_grad(set_to_none=True)
            unet.train(was_training)
    finally:
        for p, flag in zip(unet.parameters(), flags, strict=True):
            p.requires_grad_(flag)
            p.grad = None
    return AlignResult(e.detach(), losses, unet_losses)


@contextmanager
def unet_restored(unet) -> Iterator[None]:
    """Restore ``unet``'s weights (and train / eval mode) on leaving the block, also when it raises."""
    state = copy.deepcopy(unet.state_dict())
    training = unet.training
    try:
        yield
    finally:
        unet.load_state_dict(state)
        unet.train(training)


# ----------------------------------------------------------------------------------------------- Diff / Bin
@dataclass
class DiffResult:
    """``map`` [h, w] in [0, 1] (min-max normalised mean over seeds, at the latent grid) and ``per_seed`` [n, h, w]
    (the raw d_k before averaging and normalising); ``raw_max`` / ``raw_mean``: of the unnormalised mean map."""

    map: Tensor
    per_seed: Tensor

    @property
    def raw(self) -> Tensor:
        """Return the unnormalised mean over seeds [h, w]."""
        return self.per_seed.mean(0)


@torch.no_grad()
def noise_difference(pipe, z0: Tensor, embeds_a: Tensor, embeds_b: Tensor, *, n: int = 8, seed: int = 0,
                     steps: int = 10, strength: float = 0.5, guidance_scale: float = 7.0) -> DiffResult:
    """Return DiffEdit's map of where two embeddings disagree about the image latent ``z0`` [1, c, h, w].

    The authors' ``predict_noise`` with an ``LMSDiscreteScheduler`` on the pipeline scheduler's betas: per seed k,
    z0 noised (one noise shared by both embeddings) to the first of the last ``round(steps x strength)`` timesteps,
    which then run with guidance ``guidance_scale`` (unconditional = ""); the last step's guided noise prediction
    (converted to epsilon for v / sample models) gives d_k = ||eps_a - eps_b||_2 over channels. The n seeds come
    from ``seed`` (all rows run as one batch)."""
    from diffusers import LMSDiscreteScheduler

    from kit.diffusion.editing import eps_from_output

    _int(n, "n", 1)
    _int(steps, "steps", 1)
    for name, e in (("embeds_a", embeds_a), ("embeds_b", embeds_b)):
        if not isinstance(e, Tensor) or e.ndim != 3 or e.shape[0] != 1:
            raise ValueError(f"{name} must be one embedding [1, L, D], got "
                             f"{tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__}")
    if embeds_a.shape != embeds_b.shape:
        raise ValueError(f"embeds_a {tuple(embeds_a.shape)} and embeds_b {tuple(embeds_b.shape)} differ in shape")
    keep = round(steps * strength)
    if keep < 1:
        raise ValueError(f"steps x strength must leave at least one step, got {steps} x {strength}")
    kind = pipe.scheduler.config.prediction_type
    sched = LMSDiscreteScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    timesteps = sched.timesteps[steps - keep:]
    dev, dtype = z0.device, pipe.unet.dtype
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn((n, *z0.shape[1:]), generator=g).to(dev)
    # rows: [a x n, b x n]; guidance doubles them to [uncond x 2n, cond x 2n]
    cond = torch.cat([embeds_a.expand(n, -1, -1), embeds_b.expand(n, -1, -1)]).to(dev, dtype)
    uncond = pipe.encode_prompt([""]).to(dev, dtype).expand(2 * n, -1, -1)
    x = sched.add_noise(z0.float().expand(n, -1, -1, -1), noise, timesteps[:1].expand(n)).repeat(2, 1, 1, 1)
    abar_all = sched.alphas_cumprod
    eps = None
    for t in timesteps:
        x_in = sched.scale_model_input(x, t)
        out = pipe.unet(torch.cat([x_in, x_in]).to(dtype), t.to(dev),
                        encoder_hidden_states=torch.cat([uncond, cond])).sample.float()
        out_u, out_c = out.chunk(2)
        guided = out_u + guidance_scale * (out_c - out_u)
        eps = eps_from_output(guided, x_in, float(abar_all[int(t)]), kind)
        x = sched.step(guided, t, x).prev_sample
    d = (eps[:n] - eps[n:]).pow(2).sum(1).sqrt()   # [n, h, w]
    m = d.mean(0)
    span = m.max() - m.min()
    norm = (m - m.min()) / span if span > 0 else torch.zeros_like(m)
    return DiffResult(norm.cpu(), d.cpu())


def _gaussian_5x5(m: Tensor) -> Tensor:
    """OpenCV's GaussianBlur(5 x 5, sigma 1) with its default border (reflect-101)."""
    x = torch.arange(5, dtype=torch.float64) - 2
    k = torch.exp(-x ** 2 / 2)
    k = (k / k.sum()).float()
    y = F.pad(m[None, None].float(), (2, 2, 2, 2), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, 5))
    return F.conv2d(y, k.view(1, 1, 5, 1))[0, 0]


def binarize(diff_map: Tensor | np.ndarray, tau: float, size: tuple[int, int] | None = None, *,
             blur: bool = True) -> np.ndarray:
    """Return the bool mask [H, W] of a [0, 1] map: x 255, a 5 x 5 Gaussian blur (sigma 1), ``> 255 tau``, resized
    (nearest) to ``size`` = (H, W) (default: the map's). Monotone: a higher ``tau`` never adds a pixel."""
    m = torch.as_tensor(np.asarray(diff_map, dtype=np.float32))
    if m.ndim != 2:
        raise ValueError(f"the map must be [h, w], got shape {tuple(m.shape)}")
    if not 0 <= tau < 1:
        raise ValueError(f"tau must be in [0, 1), got {tau}")
    if blur and min(m.shape) >= 3:
        m = _gaussian_5x5(m * 255) / 255
    mask = (m > tau).float()
    if size is not None and tuple(size) != tuple(mask.shape):
        mask = F.interpolate(mask[None, None], size=tuple(size), mode="nearest")[0, 0]
    return mask.numpy() > 0.5


def upsample(diff_map: Tensor, size: tuple[int, int]) -> np.ndarray:
    """Return a [0, 1] map bilinearly resized to ``size`` = (H, W) as float32 numpy."""
    m = torch.as_tensor(diff_map, dtype=torch.float32)
    if tuple(m.shape) != tuple(size):
        m = F.interpolate(m[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    return m.clamp(0, 1).numpy()


# ----------------------------------------------------------------------------------------------- score
def _content_positions(pipe, caption: str) -> list[int]:
    """Token positions of the caption's words and its special tokens (everything but the padding)."""
    ids = pipe.tokenizer(caption)["input_ids"]
    return list(range(min(len(ids), pipe.tokenizer.model_max_length)))


def consistency_score(pipe, caption: str, aligned: Tensor, text: Tensor, *, kind: str = "embedding", image=None,
                      scorer: Callable | None = None) -> float:
    """Return the consistency r in [0, 100] (both proposals of spec §2 step 7, ``[PROPOSED]``; the released code has
    none). ``kind="embedding"``: 100 max(0, cos(mean E_img, mean E_T)), means over the caption's non-padding
    positions; ``kind="clip"``: 100 max(0, cos) of an image-text ``scorer`` (CLIP, or the ShapesWorld scorer) on
    the whole ``image`` and the caption."""
    if kind == "embedding":
        pos = _content_positions(pipe, caption)
        a, b = aligned[0, pos].float().mean(0), text[0, pos].float().mean(0)
        return float(100 * max(0.0, F.cosine_similarity(a, b, dim=0).item()))
    if kind == "clip":
        if scorer is None or image is None:
            raise ValueError("score kind 'clip' needs an image-text scorer and the image")
        from kit.dtiil.words import as_scorer

        sim = np.asarray(as_scorer(scorer)([_to_uint8(image)], [caption]))
        return float(100 * max(0.0, float(sim[0, 0])))
    raise ValueError(f"kind must be one of {SCORES}, got {kind!r}")


# ----------------------------------------------------------------------------------------------- localize
@dataclass
class LocalizeResult:
    """What :func:`localize` found. Maps and masks are at the image's size (H x W); ``first_*`` are the first
    mask's, the rest the final one's. ``words``: the predicted inconsistent caption run (empty without a word
    scorer); ``score``: the consistency in [0, 100] (lower = less consistent)."""

    mask: np.ndarray
    heatmap: np.ndarray
    words: list[str]
    score: float
    first_mask: np.ndarray
    first_heatmap: np.ndarray
    edited_image: Any
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    run_scores: list[float] = field(default_factory=list)
    per_seed: np.ndarray | None = None          # final map's d_k [n, h, w] (latent grid)
    align_losses: dict[str, list[float]] = field(default_factory=dict)
    embed_drift: np.ndarray | None = None       # ||E_img - E_T|| per token position [L]
    options: LocalizeOptions | None = None
    grid_map: np.ndarray | None = None          # the final map at the latent grid [h, w], before upsampling
    first_grid_map: np.ndarray | None = None

    def rebinarize(self, tau: float, first: bool = False) -> np.ndarray:
        """Return the (final or first) mask at another threshold ``tau``, binarised as :func:`localize` does: from
        the latent-grid map, then resized to the image (for pixel-space models the grid is the image)."""
        grid = self.first_grid_map if first else self.grid_map
        size = self.heatmap.shape
        if grid is None:
            return binarize(self.first_heatmap if first else self.heatmap, tau)
        return binarize(grid, tau, size)


def _to_uint8(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)[..., :3].astype(np.uint8)


def _inpaint(pipe, image: np.ndarray, mask: np.ndarray, caption: str, embeds: Tensor, opts: LocalizeOptions,
             seed: int, inpainter) -> np.ndarray:
    h, w = image.shape[:2]
    if not mask.any():
        return image
    if inpainter is not None:     # a diffusers inpainting pipeline (the code: runwayml/stable-diffusion-inpainting)
        from PIL import Image

        dev = getattr(inpainter, "device", "cpu")
        g = torch.Generator(device=dev).manual_seed(int(seed))
        size = inpainter.unet.config.sample_size * inpainter.vae_scale_factor
        out = inpainter(prompt_embeds=embeds.to(dev, inpainter.unet.dtype), image=Image.fromarray(image).resize(
            (size, size)), mask_image=Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size)),
            num_inference_steps=opts.inpaint_steps, guidance_scale=opts.inpaint_guidance, generator=g).images[0]
        return np.asarray(out.convert("RGB").resize((w, h)))
    from kit.diffusion.editing import inpaint

    g = torch.Generator().manual_seed(int(seed))
    f = pipe.vae_scale_factor
    hh, ww = pipe._size(None, None)
    m = mask
    if m.shape != (hh * f, ww * f):
        m = F.interpolate(torch.as_tensor(m, dtype=torch.float32)[None, None], size=(hh * f, ww * f),
                          mode="nearest")[0, 0].numpy() > 0.5
    out = inpaint(pipe, image, m, caption, num_inference_steps=opts.inpaint_steps,
                  guidance_scale=opts.inpaint_guidance, resample=opts.inpaint_resample, generator=g, resize=True,
                  output_type="np")
    arr = np.asarray(out.images[0])
    arr = (arr * 255).round().clip(0, 255).astype(np.uint8) if arr.dtype != np.uint8 else arr
    if arr.shape[:2] != (h, w):
        from PIL import Image

        arr = np.asarray(Image.fromarray(arr).resize((w, h)))
    return arr


def localize(pipe, image: Any, caption: str, *, seed: int = 0, word_scorer: Callable | None = None,
             score_scorer: Callable | None = None, inpainter=None, progress: bool = False,
             **opts: Any) -> LocalizeResult:
    """Return where ``image`` (PIL or uint8 [H, W, 3]) and ``caption`` disagree (D-TIIL, module docstring).

    ``word_scorer``: an image-text scorer (:mod:`kit.dtiil.words`; CLIP, the ShapesWorld scorer or the oracle)
    that picks the inconsistent caption run on the crop of the edited image at the final mask's largest region;
    ``score_scorer``: the image-text scorer of ``score="clip"``; ``inpainter``: an inpainting pipeline (else
    RePaint-style inpainting with ``pipe``). ``opts``: :class:`LocalizeOptions` fields. Seeded: the same call
    gives the same result; with ``restore_unet`` (default) ``pipe.unet``'s weights are the same afterwards."""
    o = opts.pop("options") if "options" in opts else options(**opts)
    if opts and not isinstance(o, LocalizeOptions):
        raise ValueError("give options= or keyword options, not both")
    if opts:
        o = replace(o, **opts)
    img = _to_uint8(image) if not isinstance(image, np.ndarray) else image
    z0 = image_latents(pipe, image)
    img = img[..., :3]
    size = img.shape[:2]
    e_t = caption_embedding(pipe, caption)
    from kit.dtiil.words import caption_runs

    caption_runs(caption)   # a caption with no content word names nothing that could be inconsistent: refused
    stages = {"align": 0.0, "diff": 0.0, "inpaint": 0.0, "words": 0.0}
    t_all = time.perf_counter()
    restore = unet_restored(pipe.unet) if o.restore_unet else _nothing()
    align_kw = dict(steps=o.align_steps, lr=o.embed_lr, unet_steps=o.unet_steps, unet_lr=o.unet_lr,
                    batch=o.align_batch, drift_weight=o.drift_weight, gamma=o.gamma, progress=progress)
    diff_kw = dict(n=o.n_noise, steps=o.diff_steps, strength=o.strength, guidance_scale=o.guidance_scale)
    with restore:
        t0 = time.perf_counter()
        a1 = align(pipe, z0, e_t, seed=seed, **align_kw)
        stages["align"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        d1 = noise_difference(pipe, z0, a1.embeds, e_t, seed=seed, **diff_kw)
        first_map = upsample(d1.map, size)
        first_mask = binarize(d1.map, o.tau1, size)
        stages["diff"] += time.perf_counter() - t0
        losses = {"first": a1.losses, "first_unet": a1.unet_losses}
        if o.first_step_only:
            edited, final = img, d1
            final_map, final_mask = first_map, binarize(d1.map, o.tau2, size)
        else:
            t0 = time.perf_counter()
            edited = _inpaint(pipe, img, first_mask, caption, e_t, o, seed, inpainter)
            stages["inpaint"] += time.perf_counter() - t0
            z_edit = image_latents(pipe, edited)
            t0 = time.perf_counter()
            a2 = align(pipe, z_edit, e_t, seed=seed + 1, **align_kw)
            stages["align"] += time.perf_counter() - t0
            losses.update(second=a2.losses, second_unet=a2.unet_losses)
            t0 = time.perf_counter()
            final = noise_difference(pipe, z_edit if o.final_map_on == "edit" else z0, a1.embeds, a2.embeds,
                                     seed=seed, **diff_kw)
            final_map, final_mask = upsample(final.map, size), binarize(final.map, o.tau2, size)
            stages["diff"] += time.perf_counter() - t0
    words, runs, run_scores = [], [], []
    if word_scorer is not None:
        from kit.dtiil.words import predict_run

        t0 = time.perf_counter()
        pred = predict_run(word_scorer, edited, final_mask, caption)
        runs = [r.text for r in pred.runs]
        run_scores = [float(s) for s in np.asarray(pred.scores).ravel()]
        words = list(pred.runs[pred.index].words)
        stages["words"] += time.perf_counter() - t0
    score = consistency_score(pipe, caption, a1.embeds, e_t, kind=o.score, image=img, scorer=score_scorer)
    drift = (a1.embeds - e_t)[0].norm(dim=-1).cpu().numpy()
    return LocalizeResult(final_mask, final_map, words, score, first_mask, first_map, edited,
                          time.perf_counter() - t_all, stages, runs, run_scores, final.per_seed.numpy(), losses,
                          drift, o, final.map.numpy(), d1.map.numpy())


@contextmanager
def _nothing() -> Iterator[None]:
    yield
