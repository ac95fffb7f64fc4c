"""DeFI-Net's objective (arXiv:2408.02191): 5 x structure loss on the mask + 1 x weighted BCE on the edge band.

The structure loss is F3Net's (Wei et al., AAAI 2020): a BCE and an IoU, both weighted per pixel by
w = 1 + 5 |avgpool31(m) - m|, which is large near the mask's boundary. The edge target is the 2-pixel inner band of
the mask: m AND NOT erode(m, 5x5).

``faithful_quirks=True`` reproduces the authors' code, which calls the BCE with the legacy ``reduce='none'``; PyTorch
reads that as "reduce to the mean", so both BCE terms there are the plain, unweighted mean (only the IoU is weighted).
The default is the intended weighting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(logits: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if logits.shape != target.shape or logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"{name}: logits and target must both be [B, 1, H, W], got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")


def boundary_weight(mask: torch.Tensor) -> torch.Tensor:
    """Return F3Net's pixel weights 1 + 5 |avgpool31(m) - m| [B, 1, H, W] (zero-padded mean, 31 x 31 window)."""
    return 1 + 5 * (F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask).abs()


def edge_target(mask: torch.Tensor, size: int = 5) -> torch.Tensor:
    """Return the edge band m AND NOT erode(m, size x size) [B, 1, H, W] of a binary mask [B, 1, H, W].

    Erosion is a min-pool whose window ignores pixels outside the image (as OpenCV's default border), so the image
    border is not an edge.
    """
    m = (mask > 0.5).to(mask.dtype if mask.is_floating_point() else torch.float32)
    eroded = -F.max_pool2d(-m, kernel_size=size, stride=1, padding=size // 2)
    return m * (1 - eroded)


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, faithful_quirks: bool = False) -> torch.Tensor:
    """Return the boundary-weighted BCE, averaged per image then over the batch (a scalar).

    With ``faithful_quirks`` the plain mean BCE over all pixels, as the authors' code computes it.
    """
    _check(logits, target, "weighted_bce")
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if faithful_quirks:
        return bce.mean()
    w = boundary_weight(target)
    return ((w * bce).sum((2, 3)) / w.sum((2, 3))).mean()


def weighted_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the boundary-weighted soft IoU loss 1 - (I + 1) / (U - I + 1), averaged over the batch (a scalar)."""
    _check(logits, target, "weighted_iou")
    w = boundary_weight(target)
    p = torch.sigmoid(logits)
    inter = (p * target * w).sum((2, 3))
    union = ((p + target) * w).sum((2, 3))
    return (1 - (inter + 1) / (union - inter + 1)).mean()


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, faithful_quirks: bool = False) -> torch.Tensor:
    """Return F3Net's structure loss: weighted BCE + weighted IoU (a scalar) for mask logits [B, 1, H, W]."""
    return weighted_bce(logits, mask, faithful_quirks) + weighted_iou(logits, mask)


def defi_loss(edge_logits: torch.Tensor, mask_logits: torch.Tensor, mask: torch.Tensor, seg_weight: float = 5.0,
              edge_weight: float = 1.0, faithful_quirks: bool = False) -> dict[str, torch.Tensor]:
    """Return {"loss", "seg", "edge"}: seg_weight x structure loss + edge_weight x weighted BCE on the edge band."""
    seg = structure_loss(mask_logits, mask, faithful_quirks)
    edge = weighted_bce(edge_logits, edge_target(mask), faithful_quirks)
    return {"loss": seg_weight * seg + edge_weight * edge, "seg": seg, "edge": edge}
