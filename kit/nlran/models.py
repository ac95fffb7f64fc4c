"""NL-RAN 3D: a residual attention network with a non-local block for 3-class chest CT diagnosis (arXiv:2408.04300).

The paper's readable parts [P] give the ingredients (3D residual net, stacked soft-mask attention modules, one
non-local block, softmax over NCP / CP / Normal) but not the widths, depths or input size. :class:`NLRAN3d`
therefore follows the spec's proposed layout, an Attention-56-like network in 3D ([C] our choice, spec §2):

    input [B, 1, D, H, W]
    stem: conv (stem_kernel, stem_stride) -> norm-ReLU -> optional max-pool (3, stride 2)
    stage 1: RU -> widths[0] (stride 1) + AttentionModule3d(mask_depth = mask_depths[0])
    stage 2: RU -> widths[1] (stride 2) + AttentionModule3d(mask_depths[1])   [+ non-local block, by default]
    stage 3: RU -> widths[2] (stride 2) + AttentionModule3d(mask_depths[2])
    stage 4: stage4_units RUs -> widths[3] (first stride 2)
    final_act: norm-ReLU (its output is the last feature map used by CAM / Grad-CAM)
    global average pool -> dropout -> classifier (Linear) -> logits [B, num_classes]

Two presets: "full" (the spec §2 proposal for 1 x 64 x 128 x 128 CT volumes) and "tiny" (CPU-sized, for the
32^3 procedural phantoms of spec §6). :func:`recalibrate_batchnorm` re-estimates BatchNorm statistics after
training ("precise BN", [C] our choice), since the spec measured unreliable running statistics at batch 8.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kit.nlran.blocks import AttentionModule3d, NonLocalBlock3d, PreActBottleneck3d, make_norm

# [C] our choices (spec §2 "Proposed full-size NL-RAN3D" and §6); none of these numbers is the paper's.
PRESETS: dict[str, dict[str, Any]] = {
    "full": dict(
        widths=(128, 256, 512, 1024), stem_channels=32, stem_kernel=(3, 7, 7), stem_stride=(1, 2, 2),
        stem_pool=True, mask_depths=(3, 2, 1), nonlocal_stage=2, nonlocal_sub_sample=True, stage4_units=3,
        norm="batch", dropout=0.5,
    ),
    "tiny": dict(
        widths=(16, 32, 64, 128), stem_channels=8, stem_kernel=3, stem_stride=1, stem_pool=True,
        mask_depths=(2, 1, 1), nonlocal_stage=2, nonlocal_sub_sample=False, stage4_units=1, norm="batch",
        dropout=0.2,
    ),
}
# The input grid (D, H, W) each preset is meant for.
PRESET_INPUT_SIZES: dict[str, tuple[int, int, int]] = {"full": (64, 128, 128), "tiny": (32, 32, 32)}


def as_triple(v: int | Sequence[int], name: str) -> tuple[int, int, int]:
    """``v`` as three positive ints (D, H, W): one int is repeated; ValueError naming ``name`` otherwise."""
    t = (v, v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 3 or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 1 for i in t):
        raise ValueError(f"{name} must be a positive int or three positive ints, got {v!r}")
    return tuple(int(i) for i in t)  # type: ignore[return-value]


class NLRAN3d(nn.Module):
    """NL-RAN for 3D volumes: input x [B, in_channels, D, H, W] -> logits [B, num_classes] (layout: module doc).

    Arguments (all layout numbers are [C] our choice, spec §2):
        in_channels, num_classes: input channels (1 for CT) and classes (3: NCP, CP, Normal).
        widths: channels of stages 1-4. stem_channels, stem_kernel, stem_stride: the stem conv. stem_pool: add
            a max-pool (3, stride 2, pad 1) after the stem.
        mask_depths: the soft-mask depth k of the attention modules of stages 1-3 (3, 2, 1 in the RAN paper [R]).
        nonlocal_stage: 1, 2 or 3 puts the non-local block after that stage's attention module; None removes it
            (the no-non-local ablation). nonlocal_sub_sample: max-pool phi and g by 2 in that block.
        stage4_units: residual units of stage 4. norm: "batch", "group" or "instance". dropout: before the FC.

    Attributes: ``attention_modules`` (the 3 modules), ``nonlocal_block`` (module or None), ``classifier``
    (nn.Linear), ``cam_layer = "final_act"`` (module name whose output is the last feature map).
    Each spatial size of the stage-i input must be >= 2 ** mask_depths[i-1]; a too-small input raises ValueError
    at forward naming the module and the sizes.
    """

    cam_layer = "final_act"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        widths: tuple[int, int, int, int] = (128, 256, 512, 1024),
        stem_channels: int = 32,
        stem_kernel: int | tuple[int, int, int] = (3, 7, 7),
        stem_stride: int | tuple[int, int, int] = (1, 2, 2),
        stem_pool: bool = True,
        mask_depths: tuple[int, int, int] = (3, 2, 1),
        nonlocal_stage: int | None = 2,
        nonlocal_sub_sample: bool = True,
        stage4_units: int = 3,
        norm: str = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        widths, mask_depths = tuple(widths), tuple(mask_depths)
        if len(widths) != 4 or any((not isinstance(c, int)) or c < 1 for c in widths):
            raise ValueError(f"NLRAN3d: widths must be 4 positive ints (stages 1-4), got {widths!r}")
        if len(mask_depths) != 3 or any((not isinstance(k, int)) or k < 1 for k in mask_depths):
            raise ValueError(f"NLRAN3d: mask_depths must be 3 ints >= 1 (stages 1-3), got {mask_depths!r}")
        if nonlocal_stage not in (None, 1, 2, 3):
            raise ValueError(f"NLRAN3d: nonlocal_stage must be 1, 2, 3 or None, got {nonlocal_stage!r}")
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("stem_channels", stem_channels),
                        ("stage4_units", stage4_units)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"NLRAN3d: {name} must be an int >= 1, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"NLRAN3d: dropout must be in [0, 1), got {dropout}")
        make_norm(norm, 1)  # unknown norm -> ValueError here, before anything is built
        kernel, stride = as_triple(stem_kernel, "NLRAN3d: stem_kernel"), as_triple(stem_stride, "NLRAN3d: stem_stride")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.widths, self.mask_depths, self.nonlocal_stage = widths, mask_depths, nonlocal_stage

        stem: list[nn.Module] = [
            nn.Conv3d(in_channels, stem_channels, kernel, stride=stride, padding=tuple(k // 2 for k in kernel),
                      bias=False),
            make_norm(norm, stem_channels), nn.ReLU(),
        ]
        if stem_pool:
            stem.append(nn.MaxPool3d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        cins = (stem_channels, *widths[:2])
        self.stage_units = nn.ModuleList(
            [PreActBottleneck3d(cins[i], widths[i], 1 if i == 0 else 2, norm) for i in range(3)]
        )
        self.attention_modules = nn.ModuleList(
            [AttentionModule3d(widths[i], mask_depths[i], norm=norm) for i in range(3)]
        )
        self.nonlocal_block = (
            None if nonlocal_stage is None
            else NonLocalBlock3d(widths[nonlocal_stage - 1], sub_sample=nonlocal_sub_sample, norm=norm)
        )
        self.stage4 = nn.Sequential(*[
            PreActBottleneck3d(widths[2] if i == 0 else widths[3], widths[3], 2 if i == 0 else 1, norm)
            for i in range(stage4_units)
        ])
        self.final_act = nn.Sequential(make_norm(norm, widths[3]), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[3], num_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"NLRAN3d: expected input [B, C, D, H, W] (5-D), got {shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"NLRAN3d: expected {self.in_channels} input channel(s) in [B, C, D, H, W], "
                             f"got shape {tuple(x.shape)}")

    def forward_maps(self, x: torch.Tensor) -> dict[str, Any]:
        """x [B, C_in, D, H, W] -> dict(logits [B, K], masks [M1, M2, M3] (M_i [B, widths[i-1], d_i, h_i, w_i],
        values in (0, 1)), features [B, widths[3], d, h, w] = the output of ``final_act``)."""
        self._check_input(x)
        h = self.stem(x)
        masks = []
        for i in range(3):
            h = self.stage_units[i](h)
            h, mask = self.attention_modules[i].forward_with_mask(h)
            masks.append(mask)
            if self.nonlocal_block is not None and self.nonlocal_stage == i + 1:
                h = self.nonlocal_block(h)
        features = self.final_act(self.stage4(h))
        logits = self.classifier(self.dropout(self.pool(features).flatten(1)))
        return {"logits": logits, "masks": masks, "features": features}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, D, H, W] (windowed CT in [0, 1]) -> logits [B, num_classes]."""
        return self.forward_maps(x)["logits"]


def nlran3d(preset: str = "tiny", **overrides: Any) -> NLRAN3d:
    """Return an :class:`NLRAN3d` built from ``PRESETS[preset]`` with ``overrides`` applied (e.g. norm="group",
    nonlocal_stage=None, num_classes=3). "full": the spec §2 proposal for 1 x 64 x 128 x 128 inputs; "tiny": the CPU
    size for 1 x 32 x 32 x 32 phantoms (both [C] our choice). Unknown preset -> ValueError."""
    if preset not in PRESETS:
        raise ValueError(f"nlran3d: unknown preset {preset!r}; expected one of {tuple(PRESETS)}")
    kwargs = {**copy.deepcopy(PRESETS[preset]), **overrides}
    return NLRAN3d(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters (``requires_grad``) of ``model`` (each tensor counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


_BN = nn.modules.batchnorm._BatchNorm


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], max_batches: int | None = None) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on ``batches`` ("precise BN", [C] our choice) and return
    ``model`` (changed in place).

    Each BatchNorm (with running statistics) is reset and given momentum=None (a cumulative average); the batches
    are run through the model in train mode under ``no_grad``; then the previous momenta and the train / eval mode
    of every module are restored. Afterwards each running mean is the average over batches of that layer's batch
    means (the dataset mean for equal batch sizes) and each running variance the average of the unbiased batch
    variances. ``batches``: an iterable of input tensors [B, C, D, H, W] or of (x, y, ...) tuples / lists whose
    first element is the input; moved to the model's device. ``max_batches``: use at most this many.
    An empty ``batches`` -> ValueError (checked before any statistic is reset). A model without BatchNorm is
    returned unchanged.
    """
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"recalibrate_batchnorm: max_batches must be None or an int >= 1, got {max_batches!r}")
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        return model
    it = iter(batches)
    first = next(it, None)
    if first is None:
        raise ValueError("recalibrate_batchnorm: batches is empty; give at least one input batch")
    modes = {m: m.training for m in model.modules()}
    momenta = {bn: bn.momentum for bn in bns}
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        n = 0
        batch = first
        while batch is not None:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(x, torch.Tensor):
                raise ValueError(f"recalibrate_batchnorm: each batch must be a tensor or an (x, y) tuple, "
                                 f"got {type(x).__name__}")
            model(x.to(device))
            n += 1
            if max_batches is not None and n >= max_batches:
                break
            batch = next(it, None)
    finally:
        for bn, mom in momenta.items():
            bn.momentum = mom
        for m, mode in modes.items():
            m.training = mode
    return model
