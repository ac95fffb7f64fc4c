"""The authors' per-pair training settings (arXiv:2408.07703): learning rate and DKD's beta for every teacher ->
student pair, read from the configs of zju-SWJ/RLD (a fork of sunshangquan/logit-standardization-KD, itself a fork
of megvii-research/mdistiller). :func:`kit.rld.config.preset` reads this table.

Network names are kit's (the keys of :data:`kit.rld.models.MODELS` and of
:data:`kit.rld.models.IMAGENET_MODELS`); the names the authors' configs use (``MobileNetV2``, ``ShuffleV2``,
``ResNet50``, ...) are resolved by :func:`canonical_network` before any look-up or rule.

What is NOT in the authors' repository: the per-pair RLD alpha / beta behind the paper's CIFAR-100 tables (its
sensitivity figure says they were tuned). Those rows keep ``rld_alpha`` / ``rld_beta`` at None, marked TODO(paper),
and the presets fall back to the defaults of the authors' ``mdistiller/engine/cfg.py`` (RLD.ALPHA 1, RLD.BETA 8),
which is what their README's example command passes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Names the authors' configs (DISTILLER.TEACHER / STUDENT) and model files use for kit's networks.
CIFAR_ALIASES = {
    "ResNet50": "resnet50",
    "MobileNetV2": "mobile_half",
    "ShuffleV2": "shufflenet_v2",
    "vgg8_bn": "vgg8",
    "vgg13_bn": "vgg13",
}
IMAGENET_ALIASES = {
    "ResNet18": "resnet18",
    "ResNet34": "resnet34",
    "ResNet50": "resnet50",
    "MobileNetV1": "mobilenet_v1",
}

# CIFAR-100 students the authors train at lr 0.01 instead of 0.05: tools/train.py of zju-SWJ/RLD asserts
# SOLVER.LR == 0.01 for the students tagged shuv1 / shuv2 / mv2 (ShuffleNetV1 is not built in kit).
LIGHT_STUDENTS = ("mobile_half", "shufflenet_v2")
CIFAR_LR = 0.05
LIGHT_STUDENT_LR = 0.01

DKD_BETA_DEFAULT = 8.0  # CFG.DKD.BETA in mdistiller/engine/cfg.py: used where a config sets no DKD.BETA
RLD_ALPHA_DEFAULT = 1.0  # CFG.RLD.ALPHA in zju-SWJ/RLD mdistiller/engine/cfg.py
RLD_BETA_DEFAULT = 8.0  # CFG.RLD.BETA, ibid.


def canonical_network(name: str, dataset: str = "cifar100") -> str:
    """Return kit's name for network ``name`` on ``dataset`` (an authors' alias such as "MobileNetV2" resolved).

    "ResNet50" is the CIFAR bottleneck ResNet-50 on CIFAR-100 and torchvision's on ImageNet.
    """
    aliases = IMAGENET_ALIASES if dataset == "imagenet" else CIFAR_ALIASES
    return aliases.get(name, name)


def is_light_student(student: str, dataset: str = "cifar100") -> bool:
    """Return whether the authors train ``student`` (any alias) at lr 0.01 on ``dataset`` (CIFAR-100 only)."""
    return dataset == "cifar100" and canonical_network(student, dataset) in LIGHT_STUDENTS


@dataclass(frozen=True)
class PairRecipe:
    """What the authors' configs set for one teacher -> student pair; None: the preset's (or cfg.py's) default."""

    lr: float
    dkd_beta: float
    source: str  # the config file(s) the values were read from
    rld_alpha: float | None = None  # TODO(paper): per-pair RLD alpha is not in the authors' repository (CIFAR)
    rld_beta: float | None = None  # TODO(paper): per-pair RLD beta is not in the authors' repository (CIFAR)
    kd_ce_weight: float | None = None
    kd_weight: float | None = None


def _cifar(teacher: str, student: str, cfg_name: str, dkd_beta: float | None) -> tuple[tuple[str, str], PairRecipe]:
    lr = LIGHT_STUDENT_LR if is_light_student(student) else CIFAR_LR
    src = f"zju-SWJ/RLD configs/cifar100/{{dkd,rld}}/{cfg_name}.yaml (SOLVER.LR, DKD.BETA)"
    if dkd_beta is None:
        src += "; no DKD.BETA there: cfg.py's default 8"
    return ((canonical_network(teacher), canonical_network(student)),
            PairRecipe(lr=lr, dkd_beta=DKD_BETA_DEFAULT if dkd_beta is None else dkd_beta, source=src))


# CIFAR-100: the 14 pairs of the paper's Tables 2 and 3. SOLVER.LR is 0.05 in every config except the
# MobileNetV2 / ShuffleV2 students (0.01); DKD.BETA as written in configs/cifar100/dkd/<pair>.yaml (the pairs that
# mdistiller also ships carry the same values in its configs/cifar100/dkd/).
CIFAR100_PAIRS: dict[tuple[str, str], PairRecipe] = dict([
    _cifar("resnet56", "resnet20", "resnet56_resnet20", 2.0),
    _cifar("resnet110", "resnet20", "resnet110_resnet20", 2.0),
    _cifar("resnet110", "resnet32", "resnet110_resnet32", 2.0),
    _cifar("resnet32x4", "resnet8x4", "resnet32x4_resnet8x4", None),
    _cifar("resnet32x4", "ShuffleV2", "resnet32x4_ShuffleV2", None),
    _cifar("resnet32x4", "wrn_16_2", "resnet32x4_wrn_16_2", None),
    _cifar("resnet32x4", "wrn_40_2", "resnet32x4_wrn_40_2", None),
    _cifar("vgg13", "vgg8", "vgg13_vgg8", 6.0),
    _cifar("vgg13", "MobileNetV2", "vgg13_MobileNetV2", 6.0),
    _cifar("wrn_40_2", "wrn_16_2", "wrn_40_2_wrn_16_2", 6.0),
    _cifar("wrn_40_2", "wrn_40_1", "wrn_40_2_wrn_40_1", 6.0),
    _cifar("wrn_40_2", "resnet8x4", "wrn_40_2_resnet8x4", 6.0),
    _cifar("wrn_40_2", "MobileNetV2", "wrn_40_2_MobileNetV2", 6.0),
    _cifar("ResNet50", "MobileNetV2", "ResNet50_MobileNetV2", None),
])

# ImageNet: configs/imagenet/<pair>/{dkd,rld,kd}.yaml of zju-SWJ/RLD (batch 512, 100 epochs, lr 0.2, T 1, warm-up
# 1 in all of them: the "imagenet" preset). RLD.BETA is given there; RLD.ALPHA is not, so cfg.py's 1 applies.
IMAGENET_PAIRS: dict[tuple[str, str], PairRecipe] = {
    ("resnet34", "resnet18"): PairRecipe(
        lr=0.2, dkd_beta=0.5, rld_alpha=RLD_ALPHA_DEFAULT, rld_beta=0.5, kd_ce_weight=1.0, kd_weight=0.5,
        source="zju-SWJ/RLD configs/imagenet/r34_r18/{dkd,rld,kd}.yaml"),
    ("resnet50", "mobilenet_v1"): PairRecipe(
        lr=0.2, dkd_beta=2.0, rld_alpha=RLD_ALPHA_DEFAULT, rld_beta=2.0, kd_ce_weight=0.5, kd_weight=0.5,
        source="zju-SWJ/RLD configs/imagenet/r50_mv1/{dkd,rld,kd}.yaml"),
}


def pair_recipe(teacher: str, student: str, dataset: str = "cifar100") -> PairRecipe | None:
    """Return the authors' :class:`PairRecipe` of ``teacher -> student`` on ``dataset`` (aliases resolved), or
    None when the authors ran no such pair."""
    table = {"cifar100": CIFAR100_PAIRS, "imagenet": IMAGENET_PAIRS}.get(dataset, {})
    return table.get((canonical_network(teacher, dataset), canonical_network(student, dataset)))
