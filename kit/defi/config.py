"""Presets of the DeFI-Net series (arXiv:2408.02191).

- "tiny": the offline default the notebooks run in CI and on Binder. A short "lite" training run on generated
  inpaintings (live curves), while evaluation and exploration use the committed lite model.
- "lite": the recipe that builds the committed model (``python -m kit.defi.assets``): DeFI-lite with SRM residual
  inputs [C], 64-px crops of the package-shipped training photos filled by Telea, Navier-Stokes and the patch fill;
  biharmonic fills stay unseen for the test.
- "full": the paper's setting [O]: HRNet-W18-small-v2 from ImageNet weights, 352 x 352 inputs, batch 16, Adam 2e-4
  halved when the validation AUC stalls for 5 evaluations, gradients clipped to +-0.5 by value, the loss
  5 x structure + 1 x edge, the best validation AUC kept; on IID (``data="iid"``, ``data_dir=``) on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset
from kit.data.inpainting import FILLS

DATA_SOURCES = ("generated", "iid", "defacto", "manidataset", "json")
MODEL_PRESETS = ("lite", "full")
INPUT_FILTERS = ("none", "srm", "highpass", "bayar")
SCHEDULES = ("constant", "cosine", "plateau")


@dataclass(frozen=True)
class DeFIConfig:
    """Everything a DeFI-Net run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    # data: generated inpaintings of package-shipped photos (split by photo) or a real data set under data_dir;
    # test_dir: a separate real test set (the same layout as ``data``); val_frac: the validation share of data_dir
    data: str = "generated"
    data_dir: str | None = None
    test_dir: str | None = None
    val_frac: float = 0.1
    size: int = 64  # training crop side (the paper resizes to 352)
    eval_size: int = 96  # generated test crops (the network takes any size)
    train_fills: tuple[str, ...] = ("telea", "ns", "patch")
    test_fills: tuple[str, ...] = FILLS  # a fill absent from train_fills is reported as unseen
    area: tuple[float, float] = (0.05, 0.30)  # masked fraction of each crop
    n_train: int = 2400
    n_val: int = 48
    n_test: int = 40  # per fill method
    n_authentic: int = 20  # untouched test crops: the false-positive area of each detector
    cache_dir: str | None = None  # where generated samples are kept between runs (None: in memory only)
    # model
    model: str = "lite"
    input_filter: str = "srm"  # forensic residual inputs [C]; "none" is the paper's RGB-only input
    channels: int | None = None  # DFPL/REAM/SAFF width (None: 64 full, 32 lite)
    lite_widths: tuple[int, int, int, int] = (16, 32, 64, 96)
    pretrained_backbone: bool = False  # ImageNet HRNet weights through timm (a download; full model only)
    # training [O] unless marked
    steps: int = 800
    batch_size: int = 16
    lr: float = 1e-3
    schedule: str = "cosine"  # "plateau": the authors' ReduceLROnPlateau(max, patience 5, factor 0.5) on val AUC
    seg_weight: float = 5.0
    edge_weight: float = 1.0
    clip_value: float = 0.5
    faithful_quirks: bool = False  # the authors' unweighted BCE (see kit.defi.losses)
    augment: bool = True  # flips and 90-degree rotations (generated data) / flips (real data) [C]
    eval_every: int = 100
    num_workers: int = 0
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.data != "generated" and not self.data_dir:
            raise ValueError(f"data={self.data!r} needs data_dir= (the folder in the data set's published layout)")
        if self.model not in MODEL_PRESETS:
            raise ValueError(f"model must be one of {MODEL_PRESETS}, got {self.model!r}")
        if self.input_filter not in INPUT_FILTERS:
            raise ValueError(f"input_filter must be one of {INPUT_FILTERS}, got {self.input_filter!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.pretrained_backbone and self.model != "full":
            raise ValueError("pretrained_backbone=True needs model='full' (ImageNet HRNet weights)")
        for name in ("train_fills", "test_fills"):
            bad = [f for f in getattr(self, name) if f not in FILLS]
            if bad or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty tuple of {FILLS}, got {getattr(self, name)}")
        for name in ("size", "eval_size"):
            if getattr(self, name) < 16:
                raise ValueError(f"{name} must be >= 16 pixels, got {getattr(self, name)}")
        for name in ("n_train", "n_val", "n_test", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.n_authentic < 0:
            raise ValueError("steps and n_authentic must be >= 0")
        if not 0 < self.val_frac < 1:
            raise ValueError(f"val_frac must be in (0, 1), got {self.val_frac}")
        lo, hi = self.area
        if not 0 < lo < hi < 1:
            raise ValueError(f"area must be (low, high) fractions with 0 < low < high < 1, got {self.area}")

    @property
    def unseen_fills(self) -> tuple[str, ...]:
        """The test fills the model never saw in training."""
        return tuple(f for f in self.test_fills if f not in self.train_fills)


PRESETS = {
    "tiny": {"steps": 20, "batch_size": 8, "n_train": 96, "n_val": 16, "n_test": 8, "n_authentic": 6,
             "eval_every": 10},
    "lite": {},
    "full": {"model": "full", "input_filter": "none", "pretrained_backbone": True, "data": "iid", "size": 352,
             "eval_size": 352, "batch_size": 16, "lr": 2e-4, "schedule": "plateau", "steps": 60_000,
             "eval_every": 500, "num_workers": 4, "n_val": 200, "n_test": 100},
}


def preset(name: str = "tiny", **overrides) -> DeFIConfig:
    """Return the :class:`DeFIConfig` of preset ``name`` ("tiny", "lite" or "full") with ``overrides`` applied.

    ``preset("full")`` needs ``data_dir=`` (IID in its published layout); ``preset("full", data="generated")``
    trains the paper's network on generated 352-px inpaintings instead (a GPU smoke run).
    """
    if name == "full" and overrides.get("data") == "generated":
        overrides.setdefault("pretrained_backbone", False)
    return _preset(DeFIConfig, PRESETS, name, **overrides)
