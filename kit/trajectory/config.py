"""Presets of the trajectory series: "tiny" (CI, CPU, about a minute per notebook) and "full" (the paper's setup).

``full`` evaluates a real pixel-space diffusion model, the DDPM CIFAR-10 UNet (``google/ddpm-cifar10-32``, loaded with
diffusers ``from_pretrained`` only because this preset asks for it), with the paper's search settings: 256 warmup
noises on a 61-point EDM grid, an iPNDM teacher, the ``dev`` metric and coeff 1.15 (arXiv:2405.11326, Sec. 4). It
needs a GPU and, for the exact empirical denoiser of CIFAR-10, ``data_dir`` holding ``cifar-10-batches-py/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset
from kit.diffusion.schedules import SCHEDULES
from kit.diffusion.solvers import SOLVERS

DATASETS = ("digits", "ring2d", "cifar10")
DENOISERS = ("kde", "empirical", "gmm2d", "trained", "pretrained")


@dataclass(frozen=True)
class TrajectoryConfig:
    """Everything a trajectory run depends on; build it with :func:`preset`."""

    dataset: str = "digits"  # data of the trained denoiser (01) and of the empirical ones (02)
    data_dir: str | None = None  # CIFAR-10 in its published python layout (cifar-10-batches-py/)
    pretrained: str | None = None  # a diffusers UNet2DModel + scheduler folder or hub id; None: offline only
    seed: int = 0
    device: str = "auto"
    # 01: the learned denoiser (EDM preconditioning + a small MLP)
    max_steps: int = 600
    batch_size: int = 128
    lr: float = 2e-3
    hidden: int = 256
    depth: int = 4
    checkpoint_every: int = 200
    toy_samples: int = 4000
    # 02: which denoisers to evaluate, and how
    denoisers: tuple[str, ...] = ("kde", "empirical", "gmm2d", "trained")
    bandwidth: float = 0.3  # KDE smoothing of the "kde" denoiser (in data units, digits in [-1, 1])
    solvers: tuple[str, ...] = SOLVERS
    schedules: tuple[str, ...] = SCHEDULES
    nfes: tuple[int, ...] = (4, 5, 6, 8, 10)
    n_eval: int = 64
    n_warmup: int = 64
    ref_steps: int = 250  # Heun steps of the reference ODE solution
    grid_steps: int = 60  # base grid of the GITS search: grid_steps + 1 EDM rho=7 points
    gits_metric: str = "dev"
    gits_metric_2d: str = "l2"  # the dev metric does poorly in 2-D
    coeff: float = 1.15  # the paper's default
    coeff_sweep: tuple[float, ...] = (1.0,)  # extra GITS rows besides coeff (full: 0.9 .. 1.3)
    gits_metric_sweep: tuple[str, ...] = ("dev", "l2")  # extra GITS rows with these cost metrics
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    fid: bool = False  # also score image samples by FID (torchmetrics' Inception, used only where its weights are local)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        bad = [d for d in self.denoisers if d not in DENOISERS]
        if bad:
            raise ValueError(f"unknown denoisers {bad}; valid: {DENOISERS}")
        bad = [s for s in self.solvers if s not in SOLVERS]
        if bad:
            raise ValueError(f"unknown solvers {bad}; valid: {SOLVERS}")
        bad = [s for s in self.schedules if s not in SCHEDULES]
        if bad:
            raise ValueError(f"unknown schedules {bad}; valid: {SCHEDULES}")
        if any(m not in ("l2", "l1", "dev") for m in (self.gits_metric, self.gits_metric_2d, *self.gits_metric_sweep)):
            raise ValueError("gits_metric and gits_metric_2d must be 'l2', 'l1' or 'dev'")
        if any(n < 1 for n in self.nfes):
            raise ValueError(f"nfes must be positive, got {self.nfes}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        for name in ("n_eval", "n_warmup", "ref_steps", "grid_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


PRESETS = {
    "tiny": {},
    "full": {
        "dataset": "cifar10",
        "pretrained": "google/ddpm-cifar10-32",
        "denoisers": ("pretrained", "kde", "empirical", "gmm2d", "trained"),
        "max_steps": 20000,
        "batch_size": 256,
        "n_eval": 1000,
        "n_warmup": 256,
        "ref_steps": 500,
        "bandwidth": 0.3,
        "checkpoint_every": 2000,
        "coeff_sweep": (0.9, 1.0, 1.3),
        "fid": True,
    },
}


def preset(name: str = "tiny", **overrides) -> TrajectoryConfig:
    """Return the :class:`TrajectoryConfig` of preset ``name`` ("tiny" or "full") with ``overrides`` applied."""
    return _preset(TrajectoryConfig, PRESETS, name, **overrides)
