"""Teacher and student networks of the RLD experiments (arXiv:2408.07703), CIFAR-100 and ImageNet.

The CIFAR models are those of the CRD benchmark as used by megvii-research/mdistiller (and RLD, a fork of it),
with the same module names, so the released teachers (``cifar_teachers.tar``) load with ``strict=True`` via
:func:`load_mdistiller_checkpoint`. Every CIFAR model maps [B, 3, 32, 32] images to logits [B, num_classes] and
has ``features(x)`` -> [B, D], the pooled feature before the classifier, and ``forward(x, return_features=True)``.
"""

from __future__ import annotations

from collections.abc import Callable

from kit.rld.models.base import PooledClassifier
from kit.rld.models.checkpoint import check_state_dict, extract_state_dict, load_mdistiller_checkpoint
from kit.rld.models.imagenet import IMAGENET_MODELS, MobileNetV1, imagenet_features, imagenet_model
from kit.rld.models.mobilenetv2 import CifarMobileNetV2, mobile_half
from kit.rld.models.resnet import (
    CifarBottleneckResNet,
    CifarResNet,
    resnet8x4,
    resnet20,
    resnet32,
    resnet32x4,
    resnet50,
    resnet56,
    resnet110,
)
from kit.rld.models.shufflenetv2 import CifarShuffleNetV2, shufflenet_v2
from kit.rld.models.vgg import CifarVGG, vgg8, vgg13
from kit.rld.models.wrn import WideResNet, wrn_16_2, wrn_40_1, wrn_40_2
from kit.rld.recipes import CIFAR_ALIASES

MODELS: dict[str, Callable[..., PooledClassifier]] = {
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet8x4": resnet8x4,
    "resnet32x4": resnet32x4,
    "resnet50": resnet50,
    "wrn_16_2": wrn_16_2,
    "wrn_40_1": wrn_40_1,
    "wrn_40_2": wrn_40_2,
    "vgg8": vgg8,
    "vgg13": vgg13,
    "mobile_half": mobile_half,
    "shufflenet_v2": shufflenet_v2,
}

# Names the mdistiller / RLD configs (``DISTILLER.TEACHER`` / ``STUDENT``) and model files use for the same nets.
ALIASES = CIFAR_ALIASES


def build_model(name: str, num_classes: int = 100) -> PooledClassifier:
    """Return a freshly initialised CIFAR model ``name`` (a key of :data:`MODELS` or of :data:`ALIASES`)."""
    key = ALIASES.get(name, name)
    if key not in MODELS:
        valid = ", ".join(list(MODELS) + list(ALIASES))
        raise ValueError(f"unknown model {name!r}; valid names: {valid}")
    return MODELS[key](num_classes=num_classes)


__all__ = [
    "ALIASES",
    "IMAGENET_MODELS",
    "MODELS",
    "CifarBottleneckResNet",
    "CifarMobileNetV2",
    "CifarResNet",
    "CifarShuffleNetV2",
    "CifarVGG",
    "MobileNetV1",
    "PooledClassifier",
    "WideResNet",
    "build_model",
    "check_state_dict",
    "extract_state_dict",
    "imagenet_features",
    "imagenet_model",
    "load_mdistiller_checkpoint",
    "mobile_half",
    "resnet8x4",
    "resnet20",
    "resnet32",
    "resnet32x4",
    "resnet50",
    "resnet56",
    "resnet110",
    "shufflenet_v2",
    "vgg8",
    "vgg13",
    "wrn_16_2",
    "wrn_40_1",
    "wrn_40_2",
]
