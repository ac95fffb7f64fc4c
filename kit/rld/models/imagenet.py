"""ImageNet networks of the RLD pairs: torchvision ResNet34/18/50 and the MobileNetV1 student of mdistiller.

MobileNetV1: Howard et al., arXiv:1704.04861 (width 1, 224x224). Module names follow mdistiller's
``models/imagenet/mobilenetv1.py``: ``model.0.{0,1}`` (stem conv-BN), ``model.{1..13}.{0,1,3,4}`` (depthwise
conv-BN, pointwise conv-BN), ``fc``. The torchvision ResNets keep torchvision's names, so torchvision's
released weights (and mdistiller's, which use them) load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from kit.rld.models.base import PooledClassifier, check_num_classes, conv_bn, global_pool
from kit.rld.recipes import IMAGENET_ALIASES

# (output channels, stride) of the 13 depthwise-separable blocks after the stride-2 stem.
MOBILENET_V1_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


class MobileNetV1(PooledClassifier):
    """MobileNetV1 (width 1); ``features(x)`` is [B, 1024].

    mdistiller ends ``model`` with AvgPool2d(7), which on 224x224 inputs is the global mean used here; the
    global mean also lets smaller inputs through (useful for tests). The pool holds no weights.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        check_num_classes(num_classes)
        layers: list[nn.Module] = [nn.Sequential(*conv_bn(3, 32, 3, 2), nn.ReLU(inplace=True))]
        in_ch = 32
        for out_ch, stride in MOBILENET_V1_BLOCKS:
            layers.append(
                nn.Sequential(
                    *conv_bn(in_ch, in_ch, 3, stride, groups=in_ch),
                    nn.ReLU(inplace=True),
                    *conv_bn(in_ch, out_ch, 1),
                    nn.ReLU(inplace=True),
                )
            )
            in_ch = out_ch
        self.model = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(self.model(x))


IMAGENET_MODELS = ("resnet34", "resnet18", "resnet50", "mobilenet_v1")
PAPER_TEACHER_WEIGHTS = "IMAGENET1K_V1"  # torchvision's name of the original ResNet files (the paper's teachers)


def imagenet_model(name: str, pretrained: bool = False, num_classes: int = 1000) -> nn.Module:
    """Return the ImageNet network ``name`` (one of :data:`IMAGENET_MODELS`).

    ResNets come from torchvision; ``pretrained=True`` loads torchvision's ``IMAGENET1K_V1`` weights (the one
    case that downloads): the original weights, which the paper's teachers are (ResNet-34 73.3 %, ResNet-50
    76.1 % top-1; the URLs in mdistiller's ``models/imagenet/resnet.py``). torchvision's ``"DEFAULT"`` would give
    ResNet-50's V2 weights (80.9 %), a much stronger teacher than the paper's. ``mobilenet_v1`` has no released
    weights here (it is trained as a student), so ``pretrained=True`` raises. The authors' names
    (``"ResNet34"``, ``"MobileNetV1"``) are accepted.
    """
    check_num_classes(num_classes)
    name = IMAGENET_ALIASES.get(name, name)
    if name not in IMAGENET_MODELS:
        raise ValueError(f"unknown ImageNet model {name!r}; valid names: {', '.join(IMAGENET_MODELS)}")
    if name == "mobilenet_v1":
        if pretrained:
            raise ValueError("mobilenet_v1 has no pretrained weights; build it with pretrained=False")
        return MobileNetV1(num_classes)
    import torchvision

    if pretrained and num_classes != 1000:
        raise ValueError(f"pretrained torchvision weights have 1000 classes, got num_classes={num_classes}")
    build = getattr(torchvision.models, name)
    if pretrained:
        return build(weights=PAPER_TEACHER_WEIGHTS)
    return build(weights=None, num_classes=num_classes)


def imagenet_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the pooled feature before the classifier, [B, D], of a torchvision ResNet or a MobileNetV1."""
    if isinstance(model, PooledClassifier):
        return model.features(x)
    needed = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")
    if not all(hasattr(model, n) for n in needed):
        raise ValueError(f"model must be a torchvision ResNet or a MobileNetV1, got {type(model).__name__}")
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    h = model.layer4(model.layer3(model.layer2(model.layer1(h))))
    return torch.flatten(model.avgpool(h), 1)
