"""The Siamese ResNet-18 of arXiv:2407.21788: architecture, symmetry, gradients, input handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import resnet18

from kit.hv_vlm.model import ResNet18Trunk, SiameseVerifier, pair_logits, same_writer_probability, to_input


def test_width_64_is_torchvision_resnet18_without_its_classifier():
    ours = ResNet18Trunk(64, in_channels=3)
    ref = resnet18()
    ref_state = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert set(ours.state_dict()) == set(ref_state)
    assert all(ours.state_dict()[k].shape == v.shape for k, v in ref_state.items())
    ours.load_state_dict(ref_state)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 64, 64)
    ref.fc = torch.nn.Identity()
    torch.testing.assert_close(ours(x), ref(x))


def test_narrow_trunk_keeps_the_layout_and_counts_parameters():
    m = SiameseVerifier(width=16)
    assert m.trunk.out_features == 128
    n = sum(p.numel() for p in m.parameters())
    # ResNet-18 at width 16 (1-channel stem) + Linear(128, 64) + head 64-32-2
    assert n == sum(p.numel() for p in m.trunk.parameters()) + 128 * 64 + 64 + 64 * 32 + 32 + 32 * 2 + 2
    assert 650_000 < n < 750_000


def test_logits_shape_symmetry_and_identical_pair():
    torch.manual_seed(0)
    m = SiameseVerifier(width=8).eval()
    a, b = torch.rand(3, 1, 64, 64), torch.rand(3, 1, 64, 64)
    out = m(a, b)
    assert out.shape == (3, 2)
    torch.testing.assert_close(out, m(b, a))  # |e1 - e2| is symmetric
    # the authors' signed difference is not
    s = SiameseVerifier(width=8, signed_difference=True).eval()
    assert not torch.allclose(s(a, b), s(b, a))
    # an identical pair sees a zero distance: the head's response to 0
    e = m.embed(a)
    torch.testing.assert_close(m(a, a), m.head(torch.zeros_like(e)))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = SiameseVerifier(width=4)
    a, b = torch.rand(4, 1, 64, 64), torch.rand(4, 1, 64, 64)
    torch.nn.functional.cross_entropy(m(a, b), torch.tensor([0, 1, 0, 1])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_pair_logits_embed_each_image_once_and_match_forward():
    torch.manual_seed(0)
    m = SiameseVerifier(width=4).eval()
    x = torch.rand(6, 1, 64, 64)
    pairs = np.array([[0, 1, 1], [2, 5, 0], [3, 3, 1]])
    # batch-norm in eval mode: a pair scored alone equals the same pair scored in the batch
    torch.testing.assert_close(pair_logits(m, x, pairs), m(x[pairs[:, 0]], x[pairs[:, 1]]))
    assert pair_logits(m, x, np.zeros((0, 3), int)).shape == (0, 2)


def test_to_input_inverts_resizes_keeping_aspect_and_rejects_bad_images():
    img = np.full((32, 128), 255, np.uint8)
    img[10:20, 20:100] = 0
    x = to_input(img)
    assert x.shape == (1, 1, 64, 64) and x.dtype == torch.float32
    assert x.max() == pytest.approx(1.0) and x.min() == pytest.approx(0.0)
    rows = torch.nonzero(x[0, 0].sum(1) > 0).ravel()
    assert 16 <= rows.min() and rows.max() < 48  # 128 wide -> 64: the 32 rows become 16, centred
    rgb = np.stack([img] * 3, -1)
    torch.testing.assert_close(to_input(rgb), x)
    with pytest.raises(ValueError, match="uint8"):
        to_input(img.astype(np.float32))
    with pytest.raises(ValueError, match="grey"):
        to_input(np.zeros((2, 2, 2, 2, 2), np.uint8))


def test_same_writer_probability_single_and_batch():
    torch.manual_seed(0)
    m = SiameseVerifier(width=4)
    a = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    p = same_writer_probability(m, a, a[::-1].copy())
    assert p.shape == (3,) and ((0 <= p) & (p <= 1)).all()
    one = same_writer_probability(m, a[0], a[2])
    assert isinstance(one, float) and one == pytest.approx(float(p[0]), abs=1e-6)
    assert m.training  # the mode is restored
    with pytest.raises(ValueError, match="as many"):
        same_writer_probability(m, a, a[:2])
