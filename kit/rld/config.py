"""Presets of the RLD series: "tiny" (scikit-learn digits, CPU, about a minute per notebook) and "full" (the
paper's CIFAR-100 recipe: 240 epochs, SGD lr 0.05, batch 64, x0.1 at 150/180/210, weight decay 5e-4,
arXiv:2408.07703 Sec. 4 / the authors' mdistiller configs)."""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset

DATASETS = ("digits", "cifar100", "imagenet")
ALL_METHODS = ("ce", "kd", "dkd", "la", "rld", "lr", "rc")


@dataclass(frozen=True)
class RLDConfig:
    """Everything an RLD run depends on; build it with :func:`preset`."""

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False  # CIFAR-100 only: fetch it with torchvision when missing
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    # networks: "mlp" on digits (teacher 64-256-256-10, student 64-32-10), CIFAR/ImageNet names otherwise
    teacher: str = "mlp"
    student: str = "mlp"
    teacher_checkpoint: str | None = None  # CRD/mdistiller release layout {"model": state_dict}
    teacher_pretrained: bool = False  # ImageNet: torchvision weights (downloads)
    # the offline teacher's two knobs (digits): how much data it sees, and label noise on its training set
    teacher_data: str = "pool"  # "pool": teacher_n images disjoint from the student's; "noisy": the student's
    teacher_n: int = 900  # images, with teacher_data="pool" (900 = the whole pool of the digits split)
    label_noise: float = 0.0  # pair-flip rate, with teacher_data="noisy"
    teacher_epochs: int = 150
    teacher_lr: float = 1e-3  # Adam, for teachers this series trains on digits
    # student training (spec of arXiv:2408.07703; digits values from our CPU prototype)
    methods: tuple[str, ...] = ("ce", "kd", "dkd", "la", "rld")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = (0.625, 0.75, 0.875)  # fractions of epochs (150/180/210 of 240)
    lr_decay: float = 0.1
    warmup_epochs: int | None = None  # None: epochs // 12 (20 of 240)
    # loss hyper-parameters (mdistiller/RLD defaults; --same-t: alpha_temperature = temperature)
    ce_weight: float | None = None  # None: each method's own (1 for CE, DKD, RLD; kd_ce_weight for KD; 0 for LA)
    alpha: float = 1.0
    beta: float = 8.0
    temperature: float = 4.0
    alpha_temperature: float | None = None
    kd_ce_weight: float = 0.1
    kd_weight: float = 0.9
    logit_standardization: bool = False
    # 02: the teacher-error sweep (the paper's Fig. 4 on digits)
    sweep_knob: str = "noisy"  # "noisy" (label_noise levels) or "pool" (teacher_n levels)
    sweep_levels: tuple[float, ...] = (0.0, 0.2, 0.4)
    sweep_methods: tuple[str, ...] = ("kd", "dkd", "rld")
    sweep_seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        for field_name in ("methods", "sweep_methods"):
            bad = [m for m in getattr(self, field_name) if m not in ALL_METHODS]
            if bad:
                raise ValueError(f"unknown {field_name} {bad}; valid: {ALL_METHODS}")
        if self.teacher_data not in ("pool", "noisy") or self.sweep_knob not in ("pool", "noisy"):
            raise ValueError("teacher_data and sweep_knob must be 'pool' or 'noisy'")
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        for name in ("epochs", "batch_size", "teacher_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(not 0 < m <= 1 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones are fractions of the epochs in (0, 1], got {self.lr_milestones}")

    @property
    def warmup(self) -> int:
        """Epochs of the linear warm-up of the distillation terms (at least 1)."""
        return max(1, self.warmup_epochs if self.warmup_epochs is not None else self.epochs // 12)


PRESETS = {
    "tiny": {},
    "full": {
        "dataset": "cifar100",
        "teacher": "resnet32x4",
        "student": "resnet8x4",
        "teacher_epochs": 240,
        "epochs": 240,
        "lr": 0.05,
        "warmup_epochs": 20,
        "num_workers": 4,
        "sweep_levels": (),
    },
}


def preset(name: str = "tiny", **overrides) -> RLDConfig:
    """Return the :class:`RLDConfig` of preset ``name`` ("tiny" or "full") with ``overrides`` applied."""
    return _preset(RLDConfig, PRESETS, name, **overrides)
