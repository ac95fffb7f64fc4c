"""Backbones and heads of the facesem detectors (arXiv:2405.08487).

Every detector maps an RGB face [B, 3, H, W] in [0, 1] to raw scores; the head size depends on the training mode:
- ``"so"`` (semantics-oriented: the label graph, Auto-lambda) and ``"sigmoid"`` (the same 12 nodes as independent
  sigmoids, no graph): 12 scores;
- ``"binary"``: 1 score (real / fake);
- ``"multiclass"``: 1 + n_methods scores (real, then each training method).
Backbones: ``"small"``, a CPU-sized CNN [PROPOSED for a 2-core CPU]; ``"xception"`` (timm's ``legacy_xception``,
the authors' SO-Xception: dropout 0.5 then Linear(2048, out)) and ``"clip_vit_b32"`` (the CLIP ViT-B/32 visual
encoder of transformers, then Linear(512, out)): built offline, with their pretrained weights only when asked.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MODES", "BACKBONES", "SmallFaceCNN", "FaceDetector", "build_detector", "head_size"]

MODES = ("so", "sigmoid", "binary", "multiclass")
BACKBONES = ("small", "xception", "clip_vit_b32")


def head_size(mode: str, n_methods: int = 0) -> int:
    """Scores per image of ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "multiclass" and n_methods < 1:
        raise ValueError("the multi-class detector needs n_methods >= 1 (its classes: real + each method)")
    return {"so": 12, "sigmoid": 12, "binary": 1, "multiclass": 1 + n_methods}[mode]


class SmallFaceCNN(nn.Module):
    """Pooled features [B, widths[-1]] of stride-2 conv-BN-ReLU blocks (each followed by a stride-1 block)."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 128)) -> None:
        super().__init__()
        layers, c = [], 3
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM reads by default: the last convolutional block."""
        return self.features


class _Xception(nn.Module):
    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model("legacy_xception", pretrained=pretrained, num_classes=0)
        self.out_features = self.net.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 0.5) / 0.5)  # the authors normalise with mean = std = 0.5

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM reads by default: the last activation before pooling (10 x 10 at 299 pixels)."""
        return self.net.act4


class _ClipVisual(nn.Module):
    def __init__(self, pretrained: bool, name: str = "openai/clip-vit-base-patch32") -> None:
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        self.net = (CLIPVisionModelWithProjection.from_pretrained(name) if pretrained
                    else CLIPVisionModelWithProjection(CLIPVisionConfig(patch_size=32, projection_dim=512)))
        self.out_features = self.net.config.projection_dim
        self.register_buffer("mean", torch.tensor([0.4815, 0.4578, 0.4082]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2686, 0.2613, 0.2758]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=(x - self.mean) / self.std).image_embeds


class FaceDetector(nn.Module):
    """A backbone, dropout and a linear head: ``forward(x [B, 3, H, W] in [0, 1]) -> scores [B, out]``."""

    def __init__(self, backbone: nn.Module, out: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.backbone, self.dropout = backbone, nn.Dropout(dropout)
        self.head = nn.Linear(backbone.out_features, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"faces must be [B, 3, H, W], got shape {tuple(x.shape)}")
        return self.head(self.dropout(self.backbone(x)))


def build_detector(mode: str, backbone: str = "small", n_methods: int = 0, pretrained: bool = False
                   ) -> FaceDetector:
    """A detector for ``mode`` on ``backbone`` (pretrained ImageNet / CLIP weights only with ``pretrained``: a
    download)."""
    out = head_size(mode, n_methods)
    if backbone == "small":
        if pretrained:
            raise ValueError("the small CNN has no pretrained weights")
        return FaceDetector(SmallFaceCNN(), out, dropout=0.2)
    if backbone == "xception":
        return FaceDetector(_Xception(pretrained), out, dropout=0.5)
    if backbone == "clip_vit_b32":
        return FaceDetector(_ClipVisual(pretrained), out, dropout=0.0)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
