"""Presets of the RLD series: "tiny" (scikit-learn digits, CPU, about a minute per notebook), "full" (the
paper's CIFAR-100 recipe: 240 epochs, SGD lr 0.05, batch 64, x0.1 at 150/180/210, weight decay 5e-4,
arXiv:2408.07703 Sec. 4 / the authors' mdistiller configs) and "imagenet" (the paper's ImageNet recipe: batch 512,
100 epochs, lr 0.2, x0.1 at 30/60/90, weight decay 1e-4, tau 1, torchvision's V1 teachers).

On CIFAR-100 and ImageNet :func:`preset` also reads the per-pair table of :mod:`kit.rld.recipes` (learning rate,
DKD's beta, ImageNet's KD weights) for the chosen teacher and student, unless those values are given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kit.core.presets import preset as _preset
from kit.rld.recipes import LIGHT_STUDENT_LR, is_light_student, pair_recipe

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
    teacher_lr: float = 1e-3  # teachers trained here: Adam on digits, SGD (same schedule as students) otherwise
    teacher_error_samples: int | None = None  # training images the teacher's error is measured on (None: all)
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
    alpha: float = 1.0  # RLD's weight of SCD
    beta: float = 8.0  # RLD's weight of MCD
    dkd_alpha: float = 1.0  # DKD's weight of TCKD
    dkd_beta: float = 8.0  # DKD's weight of NCKD (per pair on CIFAR-100 / ImageNet: kit.rld.recipes)
    temperature: float = 4.0
    alpha_temperature: float | None = None
    kd_ce_weight: float = 0.1
    kd_weight: float = 0.9
    # the authors' --logit-stand (arXiv:2403.01427): z-score the logits, and then tau := ls_temperature for every
    # distillation term and the weights of KD / DKD / RLD / RC x ls_weight (kit.rld.losses.logit_standardization_hyper)
    logit_standardization: bool = False
    ls_temperature: float = 2.0  # --base-temp of the authors' tools/train.py
    ls_weight: float = 9.0  # --kd-weight, ibid.
    # 02: the teacher-error sweep (the paper's Fig. 4 on digits)
    sweep_knob: str = "noisy"  # "noisy" (label_noise levels) or "pool" (teacher_n levels)
    sweep_levels: tuple[float, ...] = (0.0, 0.2, 0.4)
    sweep_methods: tuple[str, ...] = ("kd", "dkd", "la", "rld")
    sweep_seeds: tuple[int, ...] = (0,)
    # 02: the alpha / beta sensitivity grid of RLD (the paper's sensitivity figure, on digits)
    grid_alphas: tuple[float, ...] = (0.5, 1.0, 2.0)
    grid_betas: tuple[float, ...] = (2.0, 8.0)
    grid_seeds: tuple[int, ...] = (0,)

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
        if self.teacher_error_samples is not None and self.teacher_error_samples < 1:
            raise ValueError(f"teacher_error_samples must be None or >= 1, got {self.teacher_error_samples}")
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
        "teacher_lr": 0.05,  # the CRD vanilla teachers' SGD lr, when a teacher is trained here
        "epochs": 240,
        "lr": 0.05,  # then per pair (kit.rld.recipes): 0.01 for MobileNetV2 / ShuffleV2 students
        "warmup_epochs": 20,
        "num_workers": 4,
        "sweep_levels": (),
        "grid_alphas": (),
    },
    "imagenet": {  # zju-SWJ/RLD configs/imagenet/r34_r18/*.yaml; r50_mv1 with teacher="resnet50",
        "dataset": "imagenet",  # student="mobilenet_v1"
        "teacher": "resnet34",
        "student": "resnet18",
        "teacher_pretrained": True,  # torchvision's IMAGENET1K_V1 weights (the paper's teachers)
        "teacher_error_samples": 10_000,  # a seeded subset of the 1.28 M training images
        "epochs": 100,
        "teacher_epochs": 100,
        "batch_size": 512,
        "lr": 0.2,
        "teacher_lr": 0.2,
        "weight_decay": 1e-4,
        "lr_milestones": (0.3, 0.6, 0.9),  # epochs 30/60/90 of 100
        "warmup_epochs": 1,  # WARMUP 1: no warm-up
        "temperature": 1.0,
        "kd_ce_weight": 1.0,
        "kd_weight": 0.5,
        "num_workers": 8,
        "seeds": (0,),
        "sweep_levels": (),
        "grid_alphas": (),
    },
}


def preset(name: str = "tiny", **overrides) -> RLDConfig:
    """Return the :class:`RLDConfig` of preset ``name`` ("tiny", "full" or "imagenet") with ``overrides`` applied.

    On CIFAR-100 and ImageNet the teacher -> student pair's row of :mod:`kit.rld.recipes` sets ``lr``,
    ``dkd_beta`` (and, where the authors give them, RLD's ``alpha`` / ``beta`` and KD's weights) unless the same
    keys are overridden; a CIFAR-100 pair the authors did not run gets lr 0.01 for MobileNetV2 / ShuffleV2
    students (any alias), as their ``tools/train.py`` asserts.
    """
    cfg = _preset(RLDConfig, PRESETS, name, **overrides)
    if cfg.dataset == "digits":
        return cfg
    given = {k for k, v in overrides.items() if v is not None}
    recipe = pair_recipe(cfg.teacher, cfg.student, cfg.dataset)
    values: dict = {}
    if recipe is not None:
        values = {"lr": recipe.lr, "dkd_beta": recipe.dkd_beta, "alpha": recipe.rld_alpha, "beta": recipe.rld_beta,
                  "kd_ce_weight": recipe.kd_ce_weight, "kd_weight": recipe.kd_weight}
    elif is_light_student(cfg.student, cfg.dataset):
        values = {"lr": min(cfg.lr, LIGHT_STUDENT_LR)}
    values = {k: v for k, v in values.items() if v is not None and k not in given}
    return replace(cfg, **values) if values else cfg
