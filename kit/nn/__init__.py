"""Network blocks that several series share."""

from kit.nn.resnet import ResNet18Features

__all__ = ["ResNet18Features"]
