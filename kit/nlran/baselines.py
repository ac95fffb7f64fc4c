"""Baselines for NL-RAN (arXiv:2408.04300): a MONAI 3D ResNet-18, a 3D ResNet-18 with CBAM, and the NL-RAN ablation.

The paper says NL-RAN beats CovNet, CBAM and ResNet "etc." [P], but their numbers and settings are not readable.
The baselines built here are [C] our choice (spec §4):

- ``resnet18``: MONAI's ``ResNet`` with basic blocks [2, 2, 2, 2] in 3D (conv 7^3 stride (1, 2, 2) stem + max-pool).
- ``resnet18_cbam``: the same layout with a CBAM module (channel then spatial attention [R: arXiv:1807.06521])
  on the residual branch of every basic block, before the addition (where the CBAM paper puts it in ResNets).
- ``nlran_no_nl``: NL-RAN without its non-local block (the ablation of spec §4).

Every model maps x [B, C_in, D, H, W] -> logits [B, num_classes] and has ``classifier`` (the final nn.Linear) and
``cam_layer`` (the name of the module whose output is the last feature map [B, C, d, h, w]), as used by
``kit.nlran.explain`` for CAM and Grad-CAM. :func:`build_model` builds any of them by name at a preset's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch import nn

from kit.nlran.blocks import NORMS, make_norm
from kit.nlran.config import MODELS as MODEL_NAMES  # one list of names, kept in the light config
from kit.nlran.models import PRESETS, nlran3d

# Baseline ResNet widths per preset ([C] our choice): "tiny" = NL-RAN tiny's stage widths, "full" = ResNet-18's.
BASELINE_WIDTHS: dict[str, tuple[int, int, int, int]] = {"tiny": (16, 32, 64, 128), "full": (64, 128, 256, 512)}
# "resnet18_small": the widths that give MONAI's ResNet-18 about NL-RAN's parameters at each preset [C]
# (tiny: 131,535 vs NL-RAN tiny's 132,907; full: about 13.0 M vs 13.4 M)
SMALL_WIDTHS: dict[str, tuple[int, int, int, int]] = {"tiny": (4, 8, 16, 32), "full": (40, 80, 160, 320)}


def _check_input(x: torch.Tensor, in_channels: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: expected input [B, C, D, H, W] (5-D), got {shape}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{who}: expected {in_channels} input channel(s) in [B, C, D, H, W], got {tuple(x.shape)}")


def _check_widths(widths: tuple[int, ...], who: str) -> tuple[int, int, int, int]:
    widths = tuple(widths)
    if len(widths) != 4 or any((not isinstance(c, int)) or c < 1 for c in widths):
        raise ValueError(f"{who}: widths must be 4 positive ints (layers 1-4), got {widths!r}")
    return widths  # type: ignore[return-value]


def _monai_norm(norm: str, widths: tuple[int, ...]) -> str | tuple:
    """Our norm name -> MONAI's ``norm`` argument (one group count that divides every width, <= 8)."""
    if norm == "batch":
        return "batch"
    if norm == "group":
        g = max(d for d in range(1, 9) if all(c % d == 0 for c in widths))
        return ("group", {"num_groups": g})
    if norm == "instance":
        return ("instance", {"affine": True})
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


class MonaiResNet3d(ResNet):
    """MONAI's ``ResNet`` whose ``fc`` is registered as ``classifier`` (so MONAI's ``CAM(fc_layers="classifier")``
    finds it by name) and that checks its input. x [B, C_in, D, H, W] -> logits [B, num_classes];
    ``cam_layer = "layer4"`` (its output is the last feature map)."""

    cam_layer = "layer4"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.in_channels = kwargs.get("n_input_channels", 3)
        self.classifier = self._modules.pop("fc")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, D, H, W] -> logits [B, num_classes]."""
        _check_input(x, self.in_channels, type(self).__name__)
        x = self.act(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(self.avgpool(x).flatten(1))


def resnet18_3d(num_classes: int = 3, in_channels: int = 1, widths: tuple[int, int, int, int] = (64, 128, 256, 512),
                norm: str = "batch") -> MonaiResNet3d:
    """Return MONAI's 3D ResNet-18: ``monai.networks.nets.ResNet(block="basic", layers=[2, 2, 2, 2],
    block_inplanes=widths, spatial_dims=3, n_input_channels=in_channels, num_classes=num_classes, norm=...)``,
    with ``classifier`` (MONAI's ``fc``, re-registered under that name) and ``cam_layer = "layer4"``.
    x [B, in_channels, D, H, W] -> logits [B, num_classes]. ``norm``: "batch" (MONAI's default), "group" (one
    group count <= 8 dividing every width) or "instance" (affine) [C] our choice."""
    widths = _check_widths(widths, "resnet18_3d")
    return MonaiResNet3d(block="basic", layers=[2, 2, 2, 2], block_inplanes=list(widths), spatial_dims=3,
                         n_input_channels=in_channels, num_classes=num_classes, norm=_monai_norm(norm, widths))


class CBAM3d(nn.Module):
    """Convolutional Block Attention Module in 3D [R: Woo et al., arXiv:1807.06521].

    Channel attention: a shared MLP (1^3 convs C -> max(1, C // reduction) -> C, ReLU between) on the global
    average- and max-pooled descriptors, summed, sigmoid -> M_c [B, C, 1, 1, 1]; x' = M_c * x.
    Spatial attention: a ``spatial_kernel``^3 conv (2 -> 1 channels) over the channel-wise [mean, max] of x',
    sigmoid -> M_s [B, 1, D, H, W]; out = M_s * x'. Input and output [B, C, D, H, W]. The last weights are kept in
    ``last_channel_weights`` and ``last_spatial_weights``.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"CBAM3d: channels and reduction must be >= 1, got {channels}, {reduction}")
        if spatial_kernel < 1 or spatial_kernel % 2 == 0:
            raise ValueError(f"CBAM3d: spatial_kernel must be a positive odd int, got {spatial_kernel}")
        hidden = max(1, channels // reduction)
        self.channels = channels
        self.mlp = nn.Sequential(nn.Conv3d(channels, hidden, 1), nn.ReLU(), nn.Conv3d(hidden, channels, 1))
        self.spatial = nn.Conv3d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.last_channel_weights: torch.Tensor | None = None
        self.last_spatial_weights: torch.Tensor | None = None

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, C, D, H, W] -> (out [B, C, D, H, W], M_c [B, C, 1, 1, 1], M_s [B, 1, D, H, W]), weights in (0, 1)."""
        _check_input(x, self.channels, "CBAM3d")
        m_c = torch.sigmoid(self.mlp(F.adaptive_avg_pool3d(x, 1)) + self.mlp(F.adaptive_max_pool3d(x, 1)))
        x = x * m_c
        m_s = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        self.last_channel_weights, self.last_spatial_weights = m_c, m_s
        return x * m_s, m_c, m_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, D, H, W] -> out [B, C, D, H, W]."""
        return self.forward_with_weights(x)[0]


class BasicBlockCBAM3d(nn.Module):
    """3D ResNet basic block with CBAM: conv3^3(stride)-norm-ReLU-conv3^3-norm -> CBAM, + shortcut (1^3 conv + norm
    when the shape changes, MONAI's shortcut type "B"), ReLU. [B, C_in, D, H, W] -> [B, C_out, D', H', W']."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = make_norm(norm, out_channels)
        self.cbam = CBAM3d(out_channels)
        self.shortcut = (
            nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                          make_norm(norm, out_channels))
            if stride != 1 or in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.cbam(self.norm2(self.conv2(h)))
        return F.relu(h + self.shortcut(x))


class ResNetCBAM3d(nn.Module):
    """3D ResNet-18 layout with CBAM in every basic block [C] our choice (CBAM itself [R: arXiv:1807.06521]).

    Stem as MONAI's ResNet: conv 7^3 stride (1, 2, 2) -> norm-ReLU -> max-pool (3, stride 2); layers 1-4 of two
    basic blocks each with widths ``widths`` (first block of layers 2-4 stride 2); global average pool;
    ``classifier`` (nn.Linear). ``cam_layer = "layer4"``. x [B, in_channels, D, H, W] -> logits [B, num_classes].
    """

    cam_layer = "layer4"

    def __init__(self, num_classes: int = 3, in_channels: int = 1,
                 widths: tuple[int, int, int, int] = (64, 128, 256, 512), norm: str = "batch") -> None:
        super().__init__()
        widths = _check_widths(widths, "ResNetCBAM3d")
        make_norm(norm, 1)
        self.in_channels = in_channels
        self.conv1 = nn.Conv3d(in_channels, widths[0], 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = make_norm(norm, widths[0])
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        cins = (widths[0], *widths[:3])
        for i in range(4):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlockCBAM3d(cins[i], widths[i], stride, norm),
                                  BasicBlockCBAM3d(widths[i], widths[i], 1, norm))
            self.add_module(f"layer{i + 1}", layer)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(widths[3], num_classes)
        cbam_convs = {id(m) for c in self.modules() if isinstance(c, CBAM3d) for m in c.modules()}
        for m in self.modules():  # MONAI's ResNet initialisation for the ResNet convs; CBAM keeps PyTorch's default
            if isinstance(m, nn.Conv3d) and id(m) not in cbam_convs:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, D, H, W] -> logits [B, num_classes]."""
        _check_input(x, self.in_channels, "ResNetCBAM3d")
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(self.avgpool(x).flatten(1))


def build_model(name: str, preset: str = "tiny", num_classes: int = 3, in_channels: int = 1,
                norm: str | None = None) -> nn.Module:
    """Return model ``name`` (one of ``MODEL_NAMES``) at ``preset`` size ("tiny" or "full").

    "nlran" / "nlran_no_nl": :func:`kit.nlran.models.nlran3d` (the latter with nonlocal_stage=None); "resnet18":
    :func:`resnet18_3d`; "resnet18_cbam": :class:`ResNetCBAM3d`; the ResNets use ``BASELINE_WIDTHS[preset]``;
    "resnet18_small": :func:`resnet18_3d` at ``SMALL_WIDTHS[preset]`` (about NL-RAN's parameter count).
    ``norm`` None keeps each model's default ("batch"). Unknown name or preset -> ValueError listing the options.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"build_model: unknown model name {name!r}; expected one of {MODEL_NAMES}")
    if preset not in PRESETS:
        raise ValueError(f"build_model: unknown preset {preset!r}; expected one of {tuple(PRESETS)}")
    if norm is not None and norm not in NORMS:
        raise ValueError(f"build_model: unknown norm {norm!r}; expected one of {NORMS} or None")
    extra = {} if norm is None else {"norm": norm}
    if name in ("nlran", "nlran_no_nl"):
        if name == "nlran_no_nl":
            extra["nonlocal_stage"] = None
        return nlran3d(preset, num_classes=num_classes, in_channels=in_channels, **extra)
    if name == "resnet18_small":
        return resnet18_3d(num_classes=num_classes, in_channels=in_channels, widths=SMALL_WIDTHS[preset], **extra)
    widths = BASELINE_WIDTHS[preset]
    if name == "resnet18":
        return resnet18_3d(num_classes=num_classes, in_channels=in_channels, widths=widths, **extra)
    return ResNetCBAM3d(num_classes=num_classes, in_channels=in_channels, widths=widths, **extra)

