"""Presets of the hv_vlm series (arXiv:2407.21788): handwriting verification, a Siamese ResNet-18 vs VLM examiners.

- "tiny": the offline default the notebooks run in CI and on Binder: a short Siamese training run on a few synthetic
  writers (live curves); evaluation and exploration use the committed model.
- "lite": the recipe of the committed model (``python -m kit.hv_vlm.assets``): the ResNet-18 layout at a quarter of
  its width [PROPOSED for a 2-core CPU], on synthetic writers at noise 1.8 (where HOG cosine is near 0.7, CEDAR's
  handcrafted range), fresh same/different pairs every step [PROPOSED], the best validation F1 kept.
- "full": the paper's baseline setting: torchvision's ResNet-18 (width 64) on CEDAR AND (``data="cedar"``,
  ``data_dir=``), Adam 1e-3, batch 256, early stopping on validation F1 (patience 10 evaluations, min delta 0.001),
  on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset

DATA_SOURCES = ("synthetic", "cedar")


@dataclass(frozen=True)
class HVConfig:
    """Everything an hv_vlm run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    # data: synthetic writers (kit.data.handwriting) or CEDAR AND crops under data_dir (writer = first 4 characters)
    data: str = "synthetic"
    data_dir: str | None = None
    noise: float = 1.8  # synthetic: per-sample variation; 1.8 puts HOG cosine near 0.71
    writer_seed: int = 0  # synthetic: which population of writers
    n_writers: int = 1900  # synthetic: train + val + test writers
    split: tuple[float, float, float] = (0.842, 0.053, 0.105)  # writer-disjoint train / val / test fractions
    samples_per_writer: int = 8  # synthetic: samples drawn per writer
    label_fraction: float = 1.0  # share of training writers with labels (the paper: 10 % and 100 %)
    size: int = 64
    # model
    width: int = 16  # ResNet-18's first stage; 64 is torchvision's ResNet-18
    signed_difference: bool = False  # the authors' e1 - e2 instead of |e1 - e2|
    pretrained: bool = False  # ImageNet weights in the trunk (width 64 only; a download)
    # training
    steps: int = 1000
    batch_size: int = 128  # pairs per step, half same-writer
    lr: float = 3e-3
    schedule: str = "onecycle"  # "constant": the authors' plain Adam
    eval_every: int = 100
    patience: int = 0  # early stopping after this many evaluations without a gain (0: never)
    min_delta: float = 0.001
    mixed_precision: str = "no"
    # evaluation
    n_test_pairs: int | None = None  # None: every test pair of the paper's pairing

    def __post_init__(self) -> None:
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.data == "cedar" and not self.data_dir:
            raise ValueError("data='cedar' needs data_dir= (a folder of CEDAR AND crops named XXXXy_numZ.png)")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.samples_per_writer < 2:
            raise ValueError(f"samples_per_writer must be >= 2, got {self.samples_per_writer}")
        if self.n_writers < 6:
            raise ValueError(f"n_writers must be >= 6 (two per split), got {self.n_writers}")
        if self.size < 32:
            raise ValueError(f"size must be >= 32 pixels, got {self.size}")
        if self.pretrained and self.width != 64:
            raise ValueError("pretrained=True needs width=64 (torchvision's ResNet-18)")
        if self.schedule not in ("onecycle", "constant"):
            raise ValueError(f"schedule must be 'onecycle' or 'constant', got {self.schedule!r}")
        for name in ("batch_size", "eval_every", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (same and different pairs), got {self.batch_size}")
        if self.steps < 0 or self.patience < 0:
            raise ValueError("steps and patience must be >= 0")


PRESETS = {
    "tiny": {"n_writers": 120, "writer_seed": 1, "split": (0.7, 0.1, 0.2), "steps": 60, "batch_size": 64,
             "eval_every": 20},
    "lite": {},
    "full": {"width": 64, "data": "cedar", "size": 64, "batch_size": 256, "lr": 1e-3, "schedule": "constant",
             "steps": 20_000, "eval_every": 250, "patience": 10, "split": (0.7, 0.1, 0.2)},
}


def preset(name: str = "tiny", **overrides) -> HVConfig:
    """Return the :class:`HVConfig` of preset ``name`` ("tiny", "lite" or "full") with ``overrides`` applied.

    ``preset("full")`` needs ``data_dir=`` (CEDAR AND); ``preset("full", data="synthetic")`` trains the full-width
    ResNet-18 on synthetic writers instead (a GPU smoke run).
    """
    return _preset(HVConfig, PRESETS, name, **overrides)
