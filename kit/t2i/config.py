"""Presets of the text-to-image core: "tiny" (CI: a 16x16 model trained for seconds), "shapes" (the ShapesWorld
model the notebooks use: 32x32; 2,800 steps take about 40 minutes on 2 CPU cores, which was stage 1 of the weights
committed under kit/assets/, followed by a GPU stage 2: notebooks/t2i/README.md) and "full" (Stable Diffusion 1.x
loaded with diffusers' ``from_pretrained`` by :func:`kit.t2i.experiment.load_pipeline`, on a GPU)."""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset


@dataclass(frozen=True)
class T2IConfig:
    """Everything a text-to-image run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    pretrained: str | None = None  # a Stable Diffusion 1.x folder or hub id ("full": SD 1.5's; downloads when online)
    # ShapesWorld training data (procedural: item i of the stream is generated from (seed, i))
    resolution: int = 32
    n_objects: tuple[int, int] = (1, 2)
    single_fraction: float = 0.7
    dataset_size: int = 200_000
    # the model: a pixel-space UNet2DConditionModel and a jointly trained tiny CLIP text encoder
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_length: int = 16
    # heads of the attention-pooled prompt summary added to the timestep embedding (0: cross-attention only, as in
    # SD 1.x). Added after the first 2,800 steps showed shape words barely steering the image [PROPOSED]
    pooled_text_heads: int = 4
    # training: v-prediction on a DDPM (linear beta) schedule, 10% caption dropout for guidance
    max_steps: int = 2800  # batch 16: about 40 minutes on 2 CPU cores (stage 1 of the committed model)
    batch_size: int = 16
    lr: float = 1e-3
    caption_dropout: float = 0.1
    # "uniform" DDPM timesteps, or "logit_normal" (t/T = sigmoid(N(0, 1)), as in SD3): more samples at the middle
    # noise levels where a shape is decided, fewer at the ends [PROPOSED]
    timestep_sampling: str = "logit_normal"
    prediction_type: str = "v_prediction"  # or "epsilon"
    num_train_timesteps: int = 1000
    checkpoint_every: int = 500
    mixed_precision: str = "no"  # "bf16" on a GPU (stage 2 of the committed model); CPUs here have no fast bf16
    num_workers: int = 0  # DataLoader workers rendering ShapesWorld scenes (8 for the GPU run)
    # sampling and evaluation
    num_inference_steps: int = 20
    guidance_scale: float = 3.0
    solver: str = "dpmpp2m"
    n_eval: int = 60
    # sample sizes of 02 / 03 (the README's tables use the "shapes" values; "tiny" keeps CI short)
    n_multi: int = 30  # 2- and 3-object prompts of the adherence table (02)
    n_attention: int = 30  # single-object prompts of the attention-localisation score (02)
    n_swap: int = 12  # caption pairs of the word-swap measure (03; Stable Diffusion has 4 fixed pairs)

    def __post_init__(self) -> None:
        if self.resolution % 4:
            raise ValueError(f"resolution must be a multiple of 4, got {self.resolution}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}")
        if self.timestep_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"timestep_sampling must be 'uniform' or 'logit_normal', got {self.timestep_sampling!r}")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        lo, hi = self.n_objects
        if not 1 <= lo <= hi <= 3:
            raise ValueError(f"n_objects must satisfy 1 <= lo <= hi <= 3, got {self.n_objects}")
        for name in ("max_steps", "batch_size", "num_inference_steps", "n_eval", "n_multi", "n_attention", "n_swap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


PRESETS = {
    "tiny": {"resolution": 16, "block_out_channels": (16, 32, 32), "text_hidden": 32,
             "max_steps": 40, "batch_size": 8, "checkpoint_every": 20, "n_eval": 8, "num_inference_steps": 5,
             "n_multi": 8, "n_attention": 12, "n_swap": 6},
    "shapes": {},
    "full": {"pretrained": "stable-diffusion-v1-5/stable-diffusion-v1-5", "resolution": 512,
             "num_inference_steps": 50, "guidance_scale": 7.5, "n_eval": 100, "n_swap": 4},
}


def preset(name: str = "shapes", **overrides) -> T2IConfig:
    """Return the :class:`T2IConfig` of preset ``name`` ("tiny", "shapes" or "full") with ``overrides`` applied."""
    return _preset(T2IConfig, PRESETS, name, **overrides)
