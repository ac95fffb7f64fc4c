"""Presets of the NL-RAN series.

- "tiny": the offline default. Procedural lung phantoms at 32^3 (spec §6), NL-RAN tiny and the baselines trained for
  a few CPU minutes; what the notebooks run in CI and on Binder.
- "full": the spec §2 proposal [C] on CC-CCII (``data="ccccii"`` + ``data_dir``): 64x128x128 volumes, the paper's
  3263/408/408 split proportions, Adam lr 1e-4, weight decay 1e-5, batch 8, 100 epochs, best validation macro-AUC
  kept [C] (the paper's training settings could not be read), on a GPU under ``accelerate launch``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset

DATA_SOURCES = ("phantom", "ccccii", "nifti")
MODELS = ("nlran", "nlran_no_nl", "resnet18", "resnet18_cbam", "resnet18_small")
"""Every network of the series (``kit.nlran.baselines.build_model`` builds each): NL-RAN, its no-non-local ablation,
MONAI's 3D ResNet-18 at the preset's widths, the same with CBAM, and MONAI's 3D ResNet-18 narrowed to NL-RAN's
parameter budget ("resnet18_small")."""
PHANTOM_LAYOUTS = ("texture", "arrangement")
NORMS = ("batch", "group", "instance")


@dataclass(frozen=True)
class NLRANConfig:
    """Everything an NL-RAN run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    # data: procedural phantoms (offline), the CC-CCII slice folders or NIfTI volumes under data_dir/<class>/
    data: str = "phantom"
    data_dir: str | None = None
    size: tuple[int, int, int] = (32, 32, 32)  # D, H, W of the network input
    n_train: int = 240  # phantoms (the spec §6 target: about 240 volumes x 15 epochs in <= 5 CPU minutes)
    n_val: int = 60
    n_test: int = 90
    blob_radius: tuple[float, float] | None = None  # GGO blob radius range in voxels at 32^3 (None: generator default)
    noise_hu: float = 25.0
    # "texture": NCP ground glass vs CP consolidation (a local cue suffices); "arrangement": the same blobs for both,
    # NCP bilateral and scattered, CP unilateral and clustered (only context tells them apart) [C]
    phantom_layout: str = "texture"
    split: tuple[int, int, int] = (3263, 408, 408)  # the paper's train/val/test counts, used as proportions
    skip_bad: bool = False  # real data: report and skip unreadable scans instead of stopping
    augment: bool = False  # real data: flips, +-10 deg rotation, scaling, intensity jitter [C]
    num_workers: int = 0
    # models: NL-RAN and the baselines, at the preset's size ("tiny" widths or the spec §2 "full" proposal)
    model: str = "nlran"
    baselines: tuple[str, ...] = ("nlran_no_nl", "resnet18", "resnet18_cbam")
    norm: str = "batch"
    recalibrate_bn: bool = True  # re-estimate BatchNorm statistics after training ("precise BN") [C]
    # training [C]: Adam, cross-entropy, the best validation macro-AUC kept
    epochs: int = 15
    patience: int = 0  # stop after this many epochs without a better validation macro-AUC (0: run all epochs)
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-5
    # explanations: the heat maps scored against the lesion masks of this many test phantoms
    n_explain: int = 30

    def __post_init__(self) -> None:
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.data != "phantom" and not self.data_dir:
            raise ValueError(f"data={self.data!r} needs data_dir= (the folder holding NCP/, CP/ and Normal/)")
        bad = [m for m in (self.model, *self.baselines) if m not in MODELS]
        if bad:
            raise ValueError(f"unknown model(s) {bad}; valid: {MODELS}")
        if self.phantom_layout not in PHANTOM_LAYOUTS:
            raise ValueError(f"phantom_layout must be one of {PHANTOM_LAYOUTS}, got {self.phantom_layout!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 epochs, got {self.patience}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if len(self.size) != 3 or any(s < 8 for s in self.size):
            raise ValueError(f"size must be three sizes (D, H, W) >= 8, got {self.size}")
        for name in ("n_train", "n_val", "n_test", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.split) != 3 or min(self.split) < 1:
            raise ValueError(f"split must be three positive counts (train, val, test), got {self.split}")

    @property
    def model_preset(self) -> str:
        """The network size: "tiny" below 48^3 inputs, else "full"."""
        return "tiny" if max(self.size) < 48 else "full"


PRESETS = {
    "tiny": {},
    "full": {"data": "ccccii", "size": (64, 128, 128), "epochs": 100, "batch_size": 8, "lr": 1e-4,
             "num_workers": 4, "augment": True, "n_explain": 100},
}


def preset(name: str = "tiny", **overrides) -> NLRANConfig:
    """Return the :class:`NLRANConfig` of preset ``name`` ("tiny" or "full") with ``overrides`` applied.

    ``preset("full")`` needs ``data_dir=``; ``preset("full", data="phantom")`` trains the full network on 64^3
    phantoms instead (a GPU smoke run).
    """
    if name == "full" and overrides.get("data") == "phantom" and "size" not in overrides:
        overrides["size"] = (64, 64, 64)
    return _preset(NLRANConfig, PRESETS, name, **overrides)
