"""DeFI-Net (arXiv:2408.02191): a four-level backbone, then DFPL -> REAM -> SAFF; (edge logits, mask logits).

Two presets share the heads of :mod:`kit.defi.blocks`:

- ``"full"``: the paper's network. HRNet-W18-small-v2 (one module per stage, two blocks per branch, widths 18/36/72/144)
  whose stem convolutions have stride 1, so its four branches sit at scales 1, 1/2, 1/4, 1/8; heads at C = 64;
  2.82 M parameters. Built offline from timm's ``HighResolutionNet``; ImageNet weights through timm only when
  :func:`load_hrnet_imagenet` is called (the authors start from that checkpoint).
- ``"lite"``: a small residual encoder with the same four scales and the same heads at C = 32, for CPU training.

Inputs of any size are reflect-padded to a multiple of 8 and the outputs cropped back, so both maps come out at the
input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kit.defi.blocks import DFPL, REAM, SAFF, ForensicInput

PRESETS = ("full", "lite")

# one module per stage, as the authors configure HRNet-W18-small-v2 (timm's classifier variant has 3 / 2 modules in
# stages 3 / 4)
HRNET_W18_SMALL_V2 = {
    "stem_width": 64,
    "stage1": {"num_modules": 1, "num_branches": 1, "block_type": "BOTTLENECK", "num_blocks": (2,),
               "num_channels": (64,), "fuse_method": "SUM"},
    "stage2": {"num_modules": 1, "num_branches": 2, "block_type": "BASIC", "num_blocks": (2, 2),
               "num_channels": (18, 36), "fuse_method": "SUM"},
    "stage3": {"num_modules": 1, "num_branches": 3, "block_type": "BASIC", "num_blocks": (2, 2, 2),
               "num_channels": (18, 36, 72), "fuse_method": "SUM"},
    "stage4": {"num_modules": 1, "num_branches": 4, "block_type": "BASIC", "num_blocks": (2, 2, 2, 2),
               "num_channels": (18, 36, 72, 144), "fuse_method": "SUM"},
}


class HRNetBackbone(nn.Module):
    """HRNet-W18-small-v2 with a stride-1 stem: returns four maps [B, 18|36|72|144, H/2^k, W/2^k], k = 0..3."""

    widths = (18, 36, 72, 144)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        from timm.models.hrnet import HighResolutionNet

        cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in HRNET_W18_SMALL_V2.items()}
        self.net = HighResolutionNet(cfg, in_chans=in_channels, head="")
        for conv in (self.net.conv1, self.net.conv2):
            conv.stride = (1, 1)
        for m in self.net.modules():  # the HRNet code's BN momentum
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.01
        del self.net.global_pool, self.net.head_drop, self.net.classifier

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = self.net
        x = n.act1(n.bn1(n.conv1(x)))
        x = n.act2(n.bn2(n.conv2(x)))
        return n.stages(x)


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.skip(x))


class LiteBackbone(nn.Module):
    """A small residual encoder: returns four maps [B, w_k, H/2^k, W/2^k], k = 0..3 (one basic block per level)."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int, int, int] = (16, 32, 64, 96)):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"lite widths must be four positive ints, got {widths}")
        self.widths = tuple(widths)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        cins = (widths[0], *widths[:3])
        self.levels = nn.ModuleList(_Basic(ci, co, 1 if k == 0 else 2) for k, (ci, co) in enumerate(zip(cins, widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


@dataclass
class DeFIOutput:
    """Every map of one forward pass; all spatial maps at the input size except ``energy`` (per level)."""

    edge_logits: torch.Tensor  # [B, 1, H, W]
    mask_logits: torch.Tensor  # [B, 1, H, W]
    reverse: torch.Tensor  # [B, 1, H, W] REAM's r = 1 - s: where mid-level features do not fire
    saff_weights: torch.Tensor  # [B, 2, 2, H, W] per pixel: (map k, source: high, low/mid)
    energy: list[torch.Tensor]  # DFPL outputs' mean squared activation per level [B]


class DeFINet(nn.Module):
    """DeFI-Net: ``forward(x)`` returns (edge logits [B, 1, H, W], mask logits [B, 1, H, W]) for RGB in [0, 1].

    ``preset`` "full" (HRNet-W18-small-v2, C = 64; 2.82 M parameters with ``input_filter="none"``) or "lite".
    ``input_filter`` adds forensic residual channels (see :class:`kit.defi.blocks.ForensicInput`).
    """

    def __init__(self, preset: str = "full", input_filter: str = "none", channels: int | None = None,
                 lite_widths: tuple[int, int, int, int] = (16, 32, 64, 96),
                 mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
                 std: tuple[float, float, float] = (0.229, 0.224, 0.225)):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
        self.preset, self.input_filter = preset, input_filter
        self.inp = ForensicInput(input_filter, mean, std)
        cin = self.inp.out_channels
        if preset == "full":
            self.backbone = HRNetBackbone(cin)
            c = 64 if channels is None else channels
        else:
            self.backbone = LiteBackbone(cin, lite_widths)
            c = 32 if channels is None else channels
        self.channels = c
        self.dfpl = DFPL(self.backbone.widths, c)
        self.ream = REAM(c)
        self.saff = SAFF(c)

    def forward_maps(self, rgb: torch.Tensor) -> DeFIOutput:
        """Return every map of the forward pass (:class:`DeFIOutput`) for ``rgb`` [B, 3, H, W] in [0, 1]."""
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f"DeFINet expects RGB images [B, 3, H, W], got shape {tuple(rgb.shape)}")
        h, w = rgb.shape[-2:]
        ph, pw = -h % 8, -w % 8
        x = rgb
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            x = F.pad(rgb, (0, pw, 0, ph), mode=mode)
        feats = self.backbone(self.inp(x))
        low1, low2, mid, high = self.dfpl(feats)
        fused, edge, reverse = self.ream(low1, low2, mid)
        mask, weights = self.saff(fused, high)
        crop = (..., slice(0, h), slice(0, w))
        return DeFIOutput(edge[crop], mask[crop], reverse[crop], weights[crop],
                          [f.pow(2).mean((1, 2, 3)) for f in (low1, low2, mid, high)])

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward_maps(rgb)
        return out.edge_logits, out.mask_logits


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_hrnet_imagenet(model: DeFINet) -> list[str]:
    """Copy timm's ImageNet ``hrnet_w18_small_v2`` weights into a "full" model's backbone; return the keys loaded.

    Downloads through timm / the Hugging Face hub (a network call: only when a notebook parameter asks). As the
    authors' loader does, every tensor whose name and shape match is copied and the rest (timm's extra stage-3/4
    modules, the classifier head) is skipped. With extra input channels the stem's RGB taps are copied and the
    residual taps keep their initialisation.
    """
    if model.preset != "full":
        raise ValueError("ImageNet HRNet weights fit the 'full' preset only")
    import timm

    src = timm.create_model("hrnet_w18_small_v2", pretrained=True).state_dict()
    dst = model.backbone.net.state_dict()
    loaded = []
    for k, v in src.items():
        if k not in dst:
            continue
        if dst[k].shape == v.shape:
            dst[k] = v
            loaded.append(k)
        elif k == "conv1.weight" and dst[k].shape[1] > v.shape[1]:
            dst[k][:, : v.shape[1]] = v
            loaded.append(k)
    model.backbone.net.load_state_dict(dst)
    return loaded
