"""Presets of the sslhv series (arXiv:2405.18320): self-supervised pre-training for handwriting verification.

- "tiny": the offline default the notebooks run in CI and on Binder: a short pre-training run on a few synthetic
  writers (live loss terms); evaluation and exploration read the committed encoders, on a population of writers
  (``writer_seed`` 3) they never saw.
- "lite": the recipe of the committed encoders and of the README's table (``python -m kit.sslhv.assets``): the
  small CNN encoder (61k parameters) and projector heads at a quarter of the recipes' widths [PROPOSED for a 2-core
  CPU], the VAE as a small convolutional VAE with the ResNet-VAE's likelihood [PROPOSED], Adam with a one-cycle
  schedule [PROPOSED: one optimiser for every method, so that 300 steps suffice], on 800 synthetic writers at noise
  1.8, pre-trained on the training writers only.
- "full": the paper's setting: the ResNet-18 with a 3x3 stride-1 stem (the ResNet-VAE's encoder) and every method's
  own recipe (``RECIPES``: optimiser, learning rate, head sizes) on CEDAR AND (``data="cedar"``, ``data_dir=``), on a
  GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset
from kit.sslhv.methods import METHODS

DATA_SOURCES = ("synthetic", "cedar")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")

# The authors' per-method recipes (spec §2): optimiser, learning rate, momentum, weight decay, cosine schedule.
RECIPES = {
    "vae": {"optimizer": "adam", "lr": 1e-4, "schedule": "constant"},
    "vicreg": {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant"},
    "barlow_twins": {"optimizer": "sgd", "lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"},
    "simclr": {"optimizer": "sgd", "lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"},
    "byol": {"optimizer": "sgd", "lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"},
    "simsiam": {"optimizer": "sgd", "lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"},
    "moco": {"optimizer": "sgd", "lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"},
}


@dataclass(frozen=True)
class SSLConfig:
    """Everything an sslhv run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    # data: synthetic writers (kit.data.handwriting) or CEDAR AND crops under data_dir (writer = first 4 characters)
    data: str = "synthetic"
    data_dir: str | None = None
    noise: float = 1.8  # synthetic: per-sample variation (HOG cosine lands near CEDAR's handcrafted range)
    writer_seed: int = 2  # synthetic: which population of writers
    n_writers: int = 800  # synthetic: train + val + test writers
    split: tuple[float, float, float] = (0.8, 0.05, 0.15)  # writer-disjoint train / val / test fractions
    split_seed: int = 0  # the same test writers for every seed
    samples_per_writer: int = 8
    size: int = 64
    pretrain_writers: str = "train"  # "train": training writers only; "all": the authors' folder (test writers too)
    label_fraction: float = 0.1  # share of training writers whose labels the pair head / supervised model see
    # method and encoder
    method: str = "vicreg"
    encoder: str = "small"  # "small" (61k CNN) or "resnet18" (3x3 stride-1 stem, the paper's)
    width: int = 64  # resnet18's first stage
    proj_scale: float = 0.25  # projector / predictor widths relative to the recipes'
    latent_dim: int = 32  # the VAE's (the paper's: 256)
    vae_embedding: str = "mu"  # "mu" or "encoder": which VAE features the pair head reads
    # pre-training
    steps: int = 300
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    eval_every: int = 100  # intra- vs inter-writer cosine on validation writers, for the live curves
    mixed_precision: str = "no"
    # downstream: the pair head on frozen embeddings (the authors': Adam 1e-3, batch 256, F1 early stopping)
    head_epochs: int = 100
    head_lr: float = 1e-3
    head_patience: int = 10
    # fine-tuning (encoder unfrozen) and the supervised Siamese baseline (same encoder, trained from scratch)
    finetune_steps: int = 200
    finetune_lr: float = 1e-4  # the encoder's; the head keeps head_lr. Batch norm stays frozen [PROPOSED]
    supervised_steps: int = 400
    supervised_lr: float = 3e-3
    pair_batch: int = 128  # pairs per end-to-end step, half same-writer

    def __post_init__(self) -> None:
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.data == "cedar" and not self.data_dir:
            raise ValueError("data='cedar' needs data_dir= (a folder of CEDAR AND crops named XXXXy_numZ.png)")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.encoder not in ("small", "resnet18"):
            raise ValueError(f"encoder must be 'small' or 'resnet18', got {self.encoder!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.pretrain_writers not in ("train", "all"):
            raise ValueError(f"pretrain_writers must be 'train' or 'all', got {self.pretrain_writers!r}")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.samples_per_writer < 2:
            raise ValueError(f"samples_per_writer must be >= 2, got {self.samples_per_writer}")
        if self.n_writers < 6:
            raise ValueError(f"n_writers must be >= 6 (two per split), got {self.n_writers}")
        if self.batch_size < 2 or self.pair_batch < 2:
            raise ValueError("batch_size and pair_batch must be >= 2")
        for name in ("steps", "finetune_steps", "supervised_steps", "head_epochs", "head_patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "head_lr", "finetune_lr", "supervised_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


PRESETS = {
    "tiny": {"n_writers": 60, "writer_seed": 3, "split": (0.7, 0.1, 0.2), "steps": 40, "batch_size": 64, "eval_every": 20,
             "label_fraction": 0.3, "head_epochs": 15, "finetune_steps": 20, "supervised_steps": 40,
             "pair_batch": 32},
    "lite": {},
    "full": {"data": "cedar", "encoder": "resnet18", "proj_scale": 1.0, "latent_dim": 256, "steps": 20_000,
             "eval_every": 1000, "split": (0.7, 0.1, 0.2), "head_epochs": 200, "finetune_steps": 2000,
             "supervised_steps": 5000, "supervised_lr": 1e-3, "pair_batch": 256},
}


def preset(name: str = "tiny", **overrides) -> SSLConfig:
    """Return the :class:`SSLConfig` of preset ``name`` ("tiny", "lite" or "full") with ``overrides`` applied.

    ``preset("full", method=m)`` also applies method ``m``'s recipe (``RECIPES[m]``: the authors' optimiser and
    learning rate) unless ``overrides`` set them; ``preset("full")`` needs ``data_dir=`` (CEDAR AND), and
    ``preset("full", data="synthetic")`` runs the full recipes on synthetic writers (a GPU smoke run).
    """
    if name == "full":
        method = overrides.get("method") or SSLConfig.method
        recipe = RECIPES.get(method, {})
        overrides = {**recipe, **{k: v for k, v in overrides.items() if v is not None}}
    return _preset(SSLConfig, PRESETS, name, **overrides)
