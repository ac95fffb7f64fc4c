"""Entry points of the text-to-image core: train the ShapesWorld model on ``kit.core.fit``, save and load it, and
measure prompt adherence with the ShapesWorld oracle (no CLIP needed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kit.core import FitResult, RunDir, fit, load_training_state
from kit.t2i.config import T2IConfig

Callback = Callable[[dict], None]


class TextToImageModel(nn.Module):
    """The trainable pair: a UNet2DConditionModel and the CLIP text encoder it is conditioned on."""

    def __init__(self, unet: nn.Module, text_encoder: nn.Module):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.text_encoder(input_ids)[0]
        return self.unet(x_t, t, encoder_hidden_states=hidden).sample


def build_components(cfg: T2IConfig) -> dict[str, Any]:
    """Return fresh {unet, text_encoder, tokenizer, scheduler} for ``cfg`` over the ShapesWorld vocabulary."""
    from diffusers import DDPMScheduler

    from kit.data.shapes import VOCABULARY
    from kit.diffusion.t2i import build_unet
    from kit.diffusion.text import build_text_encoder, build_tokenizer, tiny_text_config

    tokenizer = build_tokenizer(VOCABULARY, max_length=cfg.max_length)
    text_cfg = tiny_text_config(len(tokenizer), hidden_size=cfg.text_hidden, layers=cfg.text_layers,
                                heads=cfg.text_heads, max_length=cfg.max_length)
    torch.manual_seed(cfg.seed)
    text_encoder = build_text_encoder(text_cfg)
    unet = build_unet(sample_size=cfg.resolution, in_channels=3, block_out_channels=cfg.block_out_channels,
                      cross_attention_dim=cfg.text_hidden, layers_per_block=cfg.layers_per_block,
                      attention_head_dim=cfg.attention_head_dim, pooled_text_heads=cfg.pooled_text_heads)
    scheduler = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule="linear",
                              prediction_type=cfg.prediction_type, clip_sample=False)
    return {"unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def caption_ids(tokenizer, captions: Sequence[str], max_length: int) -> torch.Tensor:
    """Return token ids [B, max_length] (bos ... eos, padded) of ``captions``."""
    return tokenizer(list(captions), padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids


@dataclass
class TrainResult:
    """The trained components (a ready pipeline) and the fit result."""

    pipeline: Any
    fit: FitResult


def make_pipeline(components: dict[str, Any], cfg: T2IConfig):
    """Return a :class:`kit.diffusion.t2i.TextToImagePipeline` over ``components`` sampling with ``cfg.solver``."""
    from kit.diffusion.t2i import TextToImagePipeline

    return TextToImagePipeline(components["unet"], components["text_encoder"], components["tokenizer"],
                               scheduler=components["scheduler"], solver=cfg.solver)


def load_pipeline(cfg: T2IConfig, model_dir: str | Path | None = None):
    """Return the pipeline the t2i notebooks evaluate and explore, on ``pick_device(cfg.device)``, sampling with
    ``cfg.solver``: Stable Diffusion 1.x loaded with diffusers' ``from_pretrained`` when ``cfg.pretrained`` names a
    folder or hub id (the "full" preset names SD 1.5's; fp16 on CUDA), else the ShapesWorld model saved in
    ``model_dir`` (None: the committed ``kit/assets/t2i_shapes``).

    A missing SD folder, or a hub id that is not cached while the hub is offline, raises ``FileNotFoundError``
    naming it and how to get it (:func:`kit.diffusion.t2i.resolve_sd_source`).
    """
    from kit.core import pick_device
    from kit.diffusion.t2i import load_editing_pipeline, load_shapes_pipeline

    device = pick_device(cfg.device)
    if cfg.pretrained is None:
        return load_shapes_pipeline(model_dir, device=device, solver=cfg.solver)
    if model_dir is not None:
        raise ValueError(f"give pretrained (Stable Diffusion, {cfg.pretrained!r}) or model_dir (a ShapesWorld "
                         f"model, {str(model_dir)!r}), not both")
    return load_editing_pipeline(cfg.pretrained, device, solver=cfg.solver)


def is_shapes_world(cfg: T2IConfig) -> bool:
    """Return True when ``cfg`` runs on a ShapesWorld model (no ``pretrained``), where the oracle applies."""
    return cfg.pretrained is None


def describe_pipeline(pipe) -> str:
    """Return one line: which model ``pipe`` is, its parameter counts and the images it draws."""
    unet = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    text = sum(p.numel() for p in pipe.text_encoder.parameters()) / 1e6
    shape = pipe.latent_shape(1)
    f = pipe.vae_scale_factor
    if pipe.vae is None:
        return (f"ShapesWorld model: {unet:.2f} M UNet parameters, {text:.2f} M text-encoder parameters, "
                f"{shape[2]}x{shape[3]} pixel-space images")
    vae = sum(p.numel() for p in pipe.vae.parameters()) / 1e6
    return (f"Stable Diffusion: {unet:.2f} M UNet, {text:.2f} M text-encoder and {vae:.2f} M VAE parameters; latents "
            f"{shape[1]}x{shape[2]}x{shape[3]} -> {shape[2] * f}x{shape[3] * f} images, {pipe.unet.dtype}")


def loss_title(cfg: T2IConfig) -> str:
    """Return the name of the training loss of ``cfg``: "v-prediction loss" or "epsilon loss" (MSE either way)."""
    return {"v_prediction": "v-prediction loss (MSE)", "epsilon": "epsilon loss (MSE)"}[cfg.prediction_type]


def sample_timesteps(n: int, num_train_timesteps: int, how: str = "uniform",
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Return ``n`` integer timesteps in [0, num_train_timesteps): uniform, or "logit_normal" (t / T =
    sigmoid(u), u ~ N(0, 1); Esser et al. 2024), which favours the middle of the schedule. Uses the global torch RNG
    (checkpointed by ``fit``)."""
    if how == "uniform":
        return torch.randint(0, num_train_timesteps, (n,), device=device)
    if how != "logit_normal":
        raise ValueError(f"timestep sampling must be 'uniform' or 'logit_normal', got {how!r}")
    u = torch.sigmoid(torch.randn(n, device=device))
    return (u * num_train_timesteps).long().clamp_(0, num_train_timesteps - 1)


def lr_factor(step: int, max_steps: int, warmup: int = 200, floor: float = 0.1) -> float:
    """Return the learning-rate multiplier: linear warm-up over ``warmup`` steps, constant to half of ``max_steps``,
    then a cosine decay to ``floor`` at ``max_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    half = max_steps // 2
    if step < half:
        return 1.0
    frac = min(1.0, (step - half) / max(1, max_steps - half))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))


def train(cfg: T2IConfig, run: RunDir, callbacks: Sequence[Callback] = (), sample_prompts: Sequence[str] = (),
          sample_every: int = 0, on_samples: Callable[[int, np.ndarray], None] | None = None,
          init_from: str | Path | None = None) -> TrainResult:
    """Return the trained ShapesWorld model (v- or epsilon-prediction loss, 10% caption dropout for guidance),
    resumable in ``run``.

    With ``sample_prompts`` and ``sample_every``, every ``sample_every`` steps the current model draws one image per
    prompt (10 steps, fixed seed) and ``on_samples(step, images uint8 [N, H, W, 3])`` receives them.
    ``init_from``: a folder saved by :func:`save_model` whose weights start a fresh run (ignored when ``run`` has a
    checkpoint to resume); the optimizer starts anew.
    """
    from kit.data.shapes import ShapesDataset

    comps = build_components(cfg)
    if init_from is not None and run.latest_checkpoint() is None:
        from kit.diffusion.t2i import load_shapes_pipeline

        saved = load_shapes_pipeline(init_from, solver=cfg.solver)
        missing, unexpected = comps["unet"].load_state_dict(saved.unet.float().state_dict(), strict=False)
        if unexpected or any(not k.startswith("add_embedding.") for k in missing):
            raise ValueError(f"{init_from}: its UNet does not fit this config (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        if missing:  # a new pooled-text path starts silent, so the run starts from the saved model's outputs
            nn.init.zeros_(comps["unet"].add_embedding.norm2.weight)
            nn.init.zeros_(comps["unet"].add_embedding.norm2.bias)
        comps["text_encoder"].load_state_dict(saved.text_encoder.float().state_dict())
    model = TextToImageModel(comps["unet"], comps["text_encoder"])
    tokenizer, scheduler = comps["tokenizer"], comps["scheduler"]
    data = ShapesDataset(cfg.dataset_size, seed=cfg.seed, resolution=cfg.resolution, n_objects=cfg.n_objects,
                         single_fraction=cfg.single_fraction)
    empty = caption_ids(tokenizer, [""], cfg.max_length)[0]
    alphas = scheduler.alphas_cumprod

    def collate(items):
        images = torch.stack([torch.as_tensor(im) for im, _ in items])
        return images, caption_ids(tokenizer, [c for _, c in items], cfg.max_length)

    def loss_fn(m, batch):
        x0, ids = batch
        b = x0.shape[0]
        drop = torch.rand(b, device=x0.device) < cfg.caption_dropout
        ids = torch.where(drop[:, None], empty.to(ids.device)[None], ids)
        t = sample_timesteps(b, cfg.num_train_timesteps, cfg.timestep_sampling, x0.device)
        noise = torch.randn_like(x0)
        a = alphas.to(x0.device)[t].view(b, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        # v = alpha eps - sigma x0 (Salimans & Ho 2022): bounded x0 estimates at high noise, which a briefly
        # trained model needs; "epsilon" is the classic DDPM target
        target = noise if cfg.prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0
        return nn.functional.mse_loss(m(x_t, t, ids), target)

    eval_fn, counter = None, {"step": 0}
    if sample_prompts and sample_every and on_samples is not None:
        def eval_fn(m):
            counter["step"] = min(counter["step"] + sample_every, cfg.max_steps)
            pipe = make_pipeline({**comps, "unet": m.unet, "text_encoder": m.text_encoder}, cfg)
            imgs = pipe(list(sample_prompts), num_inference_steps=10, guidance_scale=cfg.guidance_scale,
                        generator=torch.Generator().manual_seed(cfg.seed), output_type="np").images
            on_samples(counter["step"], np.round(np.asarray(imgs) * 255).astype(np.uint8))
            return {}

    res = fit(model, loss_fn, data, max_steps=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr, run=run,
              eval_fn=eval_fn, eval_every=sample_every,
              checkpoint_every=cfg.checkpoint_every, log_every=10, callbacks=callbacks, seed=cfg.seed,
              collate_fn=collate, device=cfg.device, desc="ShapesWorld t2i", mixed_precision=cfg.mixed_precision,
              num_workers=cfg.num_workers,
              scheduler=lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, cfg.max_steps)))
    comps["unet"], comps["text_encoder"] = res.model.unet.eval(), res.model.text_encoder.eval()
    run.record("train", {"steps": res.step, "seconds": round(res.seconds, 1),
                         "final_loss": next((e["loss"] for e in reversed(res.history) if e["kind"] == "train"), None)})
    return TrainResult(make_pipeline(comps, cfg), res)


def pipeline_from_checkpoint(cfg: T2IConfig, checkpoint: str | Path):
    """Return (pipeline, step) of a training checkpoint written by :func:`train` (e.g. the one ``fit`` writes when a
    run is interrupted), in eval mode, ready for :func:`save_model`."""
    comps = build_components(cfg)
    model = TextToImageModel(comps["unet"], comps["text_encoder"])
    state = load_training_state(checkpoint, model=model, restore_rng=False)
    comps["unet"], comps["text_encoder"] = model.unet.eval(), model.text_encoder.eval()
    return make_pipeline(comps, cfg), int(state["step"])


def save_model(pipeline, folder: str | Path, cfg: T2IConfig, dtype: torch.dtype = torch.float16) -> Path:
    """Return ``folder`` after saving unet + text encoder (safetensors, ``dtype``), configs and the tokenizer."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("unet", "text_encoder"):
        module = getattr(pipeline, name)
        sd = {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}
        tmp = folder / f".{name}.safetensors.tmp"
        save_file(sd, str(tmp))
        tmp.replace(folder / f"{name}.safetensors")
        (folder / f"{name}_config.json").write_text(json.dumps(module.config.to_dict() if hasattr(
            module.config, "to_dict") else dict(module.config), indent=1, default=str))
    pipeline.tokenizer.save_pretrained(str(folder / "tokenizer"))
    (folder / "kit_config.json").write_text(json.dumps({"resolution": cfg.resolution, "solver": cfg.solver,
                                                        "num_train_timesteps": cfg.num_train_timesteps,
                                                        "prediction_type": cfg.prediction_type,
                                                        "max_length": cfg.max_length}, indent=1))
    return folder
