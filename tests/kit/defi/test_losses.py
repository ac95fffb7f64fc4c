"""DeFI-Net's losses against independent numpy / scipy computations (arXiv:2408.02191, F3Net's structure loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from kit.defi.losses import (
    boundary_weight,
    defi_loss,
    edge_target,
    structure_loss,
    weighted_bce,
    weighted_iou,
)


def _fixed(seed: int = 0, shape=(2, 1, 40, 36)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    mask = torch.zeros(shape, dtype=torch.float64)
    mask[0, 0, 5:20, 8:30] = 1
    mask[1, 0, 22:39, 0:12] = 1  # touches the border
    return logits, mask


def _np_weight(m: np.ndarray) -> np.ndarray:
    # mean over a 31 x 31 window with zeros outside the image, the window always counting 961 pixels
    return 1 + 5 * np.abs(ndimage.uniform_filter(m, size=31, mode="constant", cval=0.0) - m)


def _np_bce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-z))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_boundary_weight_matches_scipy():
    _, mask = _fixed()
    for b in range(2):
        np.testing.assert_allclose(boundary_weight(mask)[b, 0].numpy(), _np_weight(mask[b, 0].numpy()), atol=1e-12)


def test_structure_loss_matches_an_independent_computation():
    logits, mask = _fixed()
    per_image = []
    for b in range(2):
        z, y = logits[b, 0].numpy(), mask[b, 0].numpy()
        w = _np_weight(y)
        wbce = (w * _np_bce(z, y)).sum() / w.sum()
        p = 1 / (1 + np.exp(-z))
        inter, union = (p * y * w).sum(), ((p + y) * w).sum()
        per_image.append(wbce + 1 - (inter + 1) / (union - inter + 1))
    assert structure_loss(logits, mask).item() == pytest.approx(float(np.mean(per_image)), rel=1e-10)
    assert weighted_iou(logits, mask).item() < structure_loss(logits, mask).item()


def test_faithful_quirks_use_the_plain_mean_bce():
    logits, mask = _fixed(1)
    plain = _np_bce(logits.numpy(), mask.numpy()).mean()
    assert weighted_bce(logits, mask, faithful_quirks=True).item() == pytest.approx(plain, rel=1e-10)
    assert weighted_bce(logits, mask).item() != pytest.approx(plain, rel=1e-3)  # the weighting does change it
    quirky = structure_loss(logits, mask, faithful_quirks=True).item()
    assert quirky == pytest.approx(plain + weighted_iou(logits, mask).item(), rel=1e-10)


def test_edge_target_is_the_mask_minus_its_5x5_erosion():
    rng = np.random.default_rng(0)
    m = ndimage.binary_dilation(rng.random((48, 40)) > 0.97, iterations=4)
    m[:, :6] = True  # a region on the image border: the border itself is not an edge
    band = edge_target(torch.tensor(m, dtype=torch.float32)[None, None])[0, 0].numpy().astype(bool)
    expected = m & ~ndimage.binary_erosion(m, structure=np.ones((5, 5)), border_value=1)
    np.testing.assert_array_equal(band, expected)
    assert not band[10:20, 0].any()  # the left border column inside the region stays interior
    # a 2-pixel inner band: an 11 x 11 square keeps its 7 x 7 centre
    sq = torch.zeros(1, 1, 20, 20)
    sq[..., 4:15, 4:15] = 1
    assert edge_target(sq).sum().item() == 11 * 11 - 7 * 7


def test_defi_loss_weights_and_gradients():
    logits, mask = _fixed(2)
    edge_logits = logits.flip(-1).clone().requires_grad_(True)
    mask_logits = logits.clone().requires_grad_(True)
    out = defi_loss(edge_logits, mask_logits, mask, seg_weight=5.0, edge_weight=1.0)
    seg = structure_loss(mask_logits, mask)
    edge = weighted_bce(edge_logits, edge_target(mask))
    assert out["loss"].item() == pytest.approx(5 * seg.item() + edge.item(), rel=1e-12)
    out["loss"].backward()
    assert edge_logits.grad.abs().sum() > 0 and mask_logits.grad.abs().sum() > 0


def test_loss_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\).*\(2, 1, 8, 9\)"):
        structure_loss(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="B, 1, H, W"):
        weighted_bce(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8))
