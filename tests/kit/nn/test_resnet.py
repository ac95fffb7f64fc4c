"""kit.nn.resnet: the shared ResNet-18 feature extractor against torchvision."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from kit.nn import ResNet18Features


def test_imagenet_stem_is_torchvision_resnet18_features():
    ours, ref = ResNet18Features(64, 3, "imagenet").eval(), resnet18().eval()
    ref.fc = torch.nn.Identity()
    ours.load_state_dict(ref.state_dict())  # strict: the same names and shapes
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), ref(x))


def test_small_stem_keeps_resolution_and_has_the_same_blocks():
    big, small = ResNet18Features(8, 1, "imagenet"), ResNet18Features(8, 1, "small")
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    # same parameters apart from the stem's kernel
    n = lambda m: sum(p.numel() for k, p in m.named_parameters() if not k.startswith("conv1"))  # noqa: E731
    assert n(big) == n(small)
    x = torch.rand(2, 1, 64, 64)
    feats = {}
    small.layer4.register_forward_hook(lambda m, i, o: feats.update(small=o.shape))  # returns None: output kept
    big.layer4.register_forward_hook(lambda m, i, o: feats.update(big=o.shape))
    assert small(x).shape == big(x).shape == (2, 64)
    assert feats["small"][-1] == 8 and feats["big"][-1] == 2  # 64 / 8 vs 64 / 32


def test_bad_arguments():
    with pytest.raises(ValueError, match="stem"):
        ResNet18Features(8, 1, "cifar")
    with pytest.raises(ValueError, match="width"):
        ResNet18Features(0)
