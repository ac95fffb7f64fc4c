"""DeFI-Net's architecture (arXiv:2408.02191): parameter counts of the paper's network, shapes, filters, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from kit.defi.blocks import BayarConv, FixedResidual, ForensicInput
from kit.defi.losses import defi_loss
from kit.defi.model import DeFINet, count_parameters, load_hrnet_imagenet


@pytest.fixture(scope="module")
def full():
    torch.manual_seed(0)
    return DeFINet("full").eval()


def test_full_model_has_the_papers_parameter_count(full):
    # 2.82 M parameters, as measured on the authors' model; the heads' shares as the authors' modules have them
    assert count_parameters(full) == 2_822_958
    assert count_parameters(full.dfpl) == 603_136
    assert count_parameters(full.ream) == 185_507
    assert count_parameters(full.saff) == 5_743
    assert full.backbone.net.conv1.stride == (1, 1) and full.backbone.net.conv2.stride == (1, 1)


def test_full_model_levels_sit_at_scales_one_to_an_eighth(full):
    with torch.no_grad():
        feats = full.backbone(torch.rand(1, 3, 32, 40))
    assert [tuple(f.shape[1:]) for f in feats] == [(18, 32, 40), (36, 16, 20), (72, 8, 10), (144, 4, 5)]


@pytest.mark.parametrize("shape", [(1, 3, 37, 50), (2, 3, 24, 24), (1, 3, 9, 13)])
def test_outputs_come_at_the_input_size_at_odd_sizes(full, shape):
    lite = DeFINet("lite", input_filter="srm").eval()
    x = torch.rand(shape)
    with torch.no_grad():
        for model in (full, lite):
            edge, mask = model(x)
            assert edge.shape == mask.shape == (shape[0], 1, *shape[2:])
            out = model.forward_maps(x)
            assert out.reverse.shape == (shape[0], 1, *shape[2:])
            assert out.saff_weights.shape == (shape[0], 2, 2, *shape[2:])
            assert len(out.energy) == 4 and all(e.shape == (shape[0],) for e in out.energy)
            assert ((out.reverse >= 0) & (out.reverse <= 1)).all()


def test_padding_does_not_leak_across_the_batch():
    lite = DeFINet("lite").eval()
    x = torch.rand(3, 3, 21, 30)
    with torch.no_grad():
        both = lite(x)[1]
        one = lite(x[1:2])[1]
    torch.testing.assert_close(both[1:2], one, atol=1e-5, rtol=1e-5)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="preset"):
        DeFINet("huge")
    with pytest.raises(ValueError, match="input_filter"):
        DeFINet("lite", input_filter="dct")
    with pytest.raises(ValueError, match=r"RGB images \[B, 3, H, W\].*\(1, 1, 16, 16\)"):
        DeFINet("lite")(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="lite widths"):
        DeFINet("lite", lite_widths=(8, 16))


def test_forensic_inputs():
    flat = torch.full((2, 3, 12, 12), 0.4)
    assert FixedResidual("srm")(flat).abs().max() < 1e-6  # residuals of a flat image vanish
    assert FixedResidual("highpass")(flat).abs().max() < 1e-6
    noisy = flat + 0.05 * torch.randn_like(flat)
    assert FixedResidual("srm")(noisy).abs().mean() > 0.05
    assert ForensicInput("srm").out_channels == 6 and ForensicInput("none").out_channels == 3
    assert ForensicInput("bayar")(noisy).shape == (2, 6, 12, 12)
    w = BayarConv(3, 3, 5).constrained_weight()
    torch.testing.assert_close(w[:, :, 2, 2], -torch.ones(3, 3))
    torch.testing.assert_close(w.sum((2, 3)), torch.zeros(3, 3), atol=1e-6, rtol=0)  # off-centre taps sum to 1


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = DeFINet("lite", input_filter="bayar")
    x, m = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    defi_loss(*model(x), m)["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def _crops(n: int = 4, size: int = 24, seed: int = 0):
    """Smooth-filled holes in a noise texture: the inpainting artefact in its simplest form."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + 0.15 * torch.randn(n, 1, size, size, generator=g).expand(n, 3, size, size).clone()
    m = torch.zeros(n, 1, size, size)
    for i in range(n):
        y0, x0 = (torch.randint(0, size - 9, (2,), generator=g)).tolist()
        m[i, 0, y0:y0 + 9, x0:x0 + 8] = 1
    x = x * (1 - m) + m * x.mean((2, 3), keepdim=True)
    return x.clamp(0, 1), m


def test_lite_model_overfits_four_crops():
    torch.manual_seed(0)
    model = DeFINet("lite", input_filter="srm")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, m = _crops()
    losses = []
    for _ in range(40):
        loss = defi_loss(*model(x), m)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * losses[0]
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(x)[1])
    assert roc_auc_score(m.flatten().numpy(), p.flatten().numpy()) > 0.9


def test_imagenet_loader_copies_matching_hrnet_tensors(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kw):  # the hub download replaced by a seeded random hrnet_w18_small_v2
        assert name == "hrnet_w18_small_v2" and pretrained
        torch.manual_seed(1)
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    model = DeFINet("full", input_filter="srm")
    loaded = load_hrnet_imagenet(model)
    src = offline("hrnet_w18_small_v2", pretrained=True).state_dict()
    sd = model.backbone.net.state_dict()
    assert "stage4.0.branches.3.1.conv2.weight" in loaded and "layer1.0.conv1.weight" in loaded
    assert not any(k.startswith(("stage3.1", "stage4.1", "incre", "classifier")) for k in loaded)
    torch.testing.assert_close(sd["stage4.0.branches.3.1.conv2.weight"], src["stage4.0.branches.3.1.conv2.weight"])
    torch.testing.assert_close(sd["conv1.weight"][:, :3], src["conv1.weight"])  # RGB taps copied, SRM taps kept
    with pytest.raises(ValueError, match="full"):
        load_hrnet_imagenet(DeFINet("lite"))
