"""Tests for kit.nlran.blocks, kit.nlran.models and kit.nlran.baselines: shapes, masks, the non-local block against
independent computations, gradients, over-fitting, determinism, precise BN, bad input, and the benchmark script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kit.nlran.baselines import (
    MODEL_NAMES,
    CBAM3d,
    ResNetCBAM3d,
    build_model,
    resnet18_3d,
)
from kit.nlran.blocks import (
    AttentionModule3d,
    NonLocalBlock3d,
    PreActBottleneck3d,
    make_norm,
    nonlocal_attention_reference,
)
from kit.nlran.models import PRESETS, NLRAN3d, count_parameters, nlran3d, recalibrate_batchnorm

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[3]


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------- shapes


def test_nlran_tiny_shapes():
    torch.manual_seed(0)
    model = nlran3d("tiny")
    out = model.forward_maps(_rand(2, 1, 32, 32, 32))
    assert out["logits"].shape == (2, 3)
    # stem 32^3 -> pool 16^3; stages at 16^3, 8^3, 4^3; stage 4 at 2^3
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 16, 16, 16, 16), (2, 32, 8, 8, 8), (2, 64, 4, 4, 4)]
    assert out["features"].shape == (2, 128, 2, 2, 2)
    assert model(_rand(2, 1, 32, 32, 32)).shape == (2, 3)
    assert isinstance(model.classifier, nn.Linear) and model.cam_layer == "final_act"
    assert dict(model.named_modules())[model.cam_layer] is model.final_act
    assert len(model.attention_modules) == 3 and isinstance(model.nonlocal_block, NonLocalBlock3d)
    assert model.nonlocal_block.channels == 32 and not model.nonlocal_block.sub_sample


def test_nlran_full_layout_shapes_at_reduced_width():
    """The "full" layout (stem 3x7x7 stride (1, 2, 2), pool, mask depths 3/2/1, sub-sampled non-local block, 3 stage-4
    units) with widths / 16, at a 16 x 32 x 32 input instead of 64 x 128 x 128."""
    torch.manual_seed(0)
    model = nlran3d("full", widths=(8, 16, 32, 64), stem_channels=2)
    assert model.nonlocal_block.sub_sample and len(model.stage4) == 3
    assert model.stem[0].kernel_size == (3, 7, 7) and model.stem[0].stride == (1, 2, 2)
    assert [m.mask_depth for m in model.attention_modules] == [3, 2, 1]
    out = model.forward_maps(_rand(2, 1, 16, 32, 32))
    assert out["logits"].shape == (2, 3)
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 8, 8, 8, 8), (2, 16, 4, 4, 4), (2, 32, 2, 2, 2)]
    assert out["features"].shape == (2, 64, 1, 1, 1)


def test_full_preset_is_the_spec_proposal():
    full = PRESETS["full"]
    assert full["widths"] == (128, 256, 512, 1024) and full["mask_depths"] == (3, 2, 1)
    assert full["nonlocal_stage"] == 2 and full["nonlocal_sub_sample"] and full["dropout"] == 0.5


@pytest.mark.parametrize("name", ["resnet18", "resnet18_cbam", "nlran_no_nl"])
def test_baseline_shapes(name):
    torch.manual_seed(0)
    model = build_model(name, preset="tiny")
    assert model(_rand(2, 1, 32, 32, 32)).shape == (2, 3)
    assert isinstance(model.classifier, nn.Linear)
    assert model.cam_layer in dict(model.named_modules())
    if name == "nlran_no_nl":
        assert model.nonlocal_block is None


def test_resnet18_3d_real_widths_is_monais_resnet18():
    from monai.networks.nets import ResNet

    model = resnet18_3d(num_classes=3, in_channels=1)
    assert isinstance(model, ResNet) and model.cam_layer == "layer4"
    names = dict(model.named_modules())
    assert "classifier" in names and "fc" not in names  # MONAI CAM(fc_layers="classifier") must find it by name
    assert model.classifier.in_features == 512 and model.classifier.out_features == 3
    # same parameter count as MONAI's own resnet18 for 1 channel / 3 classes
    from monai.networks.nets import resnet18

    assert count_parameters(model) == count_parameters(resnet18(spatial_dims=3, n_input_channels=1, num_classes=3))
    model.eval()
    with torch.no_grad():
        assert model(_rand(1, 1, 16, 32, 32)).shape == (1, 3)


def test_cbam_shapes_and_weights_in_unit_interval():
    torch.manual_seed(0)
    cbam = CBAM3d(32, reduction=8, spatial_kernel=7)
    x = _randn(2, 32, 6, 8, 10)
    out, m_c, m_s = cbam.forward_with_weights(x)
    assert out.shape == x.shape and m_c.shape == (2, 32, 1, 1, 1) and m_s.shape == (2, 1, 6, 8, 10)
    for w in (m_c.detach(), m_s.detach()):
        assert float(w.min()) > 0.0 and float(w.max()) < 1.0
    # out = M_s * (M_c * x), by hand
    torch.testing.assert_close(out, m_s * (m_c * x))
    assert torch.equal(cbam(x), out) and cbam.last_spatial_weights is not None


def test_resnet_cbam_has_cbam_in_every_block():
    model = ResNetCBAM3d(widths=(8, 8, 16, 16))
    assert sum(isinstance(m, CBAM3d) for m in model.modules()) == 8


# ----------------------------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("norm", ["batch", "group", "instance"])
def test_make_norm(norm):
    layer = make_norm(norm, 12)
    assert layer(_randn(2, 12, 3, 3, 3)).shape == (2, 12, 3, 3, 3)
    if norm == "group":
        assert layer.num_groups == 6  # the largest count <= 8 dividing 12


def test_preact_bottleneck_shapes():
    ru = PreActBottleneck3d(8, 16, stride=2)
    assert ru(_randn(2, 8, 7, 8, 9)).shape == (2, 16, 4, 4, 5)
    assert PreActBottleneck3d(16, 16).shortcut is None


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_attention_mask_in_unit_interval_with_trunk_shape(depth):
    torch.manual_seed(0)
    module = AttentionModule3d(8, mask_depth=depth)
    x = _randn(2, 8, 8, 10, 12)
    out, mask = module.forward_with_mask(x)
    trunk = module.trunk(module.pre(x))
    assert out.shape == x.shape and mask.shape == trunk.shape == x.shape
    assert float(mask.detach().min()) > 0.0 and float(mask.detach().max()) < 1.0
    assert module.last_mask is mask and mask.requires_grad  # kept, not detached
    # out = post((1 + M) * T), recomputed by hand (eval mode so BN uses the same (running) statistics)
    module.eval()
    out, mask = module.forward_with_mask(x)
    torch.testing.assert_close(out, module.post((1 + mask) * module.trunk(module.pre(x))))


@pytest.mark.parametrize("norm", ["batch", "group"])
@pytest.mark.parametrize("sub_sample", [False, True])
def test_nonlocal_is_identity_at_init(norm, sub_sample):
    torch.manual_seed(0)
    block = NonLocalBlock3d(16, sub_sample=sub_sample, norm=norm)
    x = _randn(2, 16, 4, 6, 8)
    assert torch.equal(block(x), x)
    z, attn = block(x, return_attention=True)
    assert torch.equal(z, x)
    block.eval()
    assert torch.equal(block(x), x)


def _perturb(block: NonLocalBlock3d, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        block.norm.weight.copy_(1.0 + 0.5 * torch.randn(block.norm.weight.shape, generator=gen))
        block.norm.bias.copy_(0.1 * torch.randn(block.norm.bias.shape, generator=gen))


@pytest.mark.parametrize("norm", ["batch", "group"])
@pytest.mark.parametrize("sub_sample", [False, True])
def test_nonlocal_sdpa_matches_explicit_reference(norm, sub_sample):
    torch.manual_seed(0)
    block = NonLocalBlock3d(16, sub_sample=sub_sample, norm=norm)
    _perturb(block)
    x = _randn(2, 16, 4, 6, 8)
    z = block(x)
    assert not torch.allclose(z, x, atol=1e-3)  # no longer the identity
    torch.testing.assert_close(z, nonlocal_attention_reference(x, block), atol=1e-5, rtol=1e-5)
    z2, attn = block(x, return_attention=True)
    torch.testing.assert_close(z2, z, atol=1e-5, rtol=1e-5)


def test_nonlocal_reference_matches_a_loop_over_positions():
    """The reference itself against the embedded-Gaussian formula written as a loop over query positions i:
    z_i = x_i + norm(W_z sum_j exp(theta_i . phi_j) g_j / sum_j exp(theta_i . phi_j)), unscaled dot products."""
    torch.manual_seed(0)
    block = NonLocalBlock3d(6, inter_channels=4, sub_sample=True, norm="group")
    _perturb(block)
    x = _randn(1, 6, 2, 4, 4)
    with torch.no_grad():
        th = block.theta(x)[0].reshape(4, -1)  # [C_i, N]
        ph = F.max_pool3d(block.phi(x), 2)[0].reshape(4, -1)  # [C_i, N / 8]
        g = F.max_pool3d(block.g(x), 2)[0].reshape(4, -1)
        y = torch.zeros_like(th)
        for i in range(th.shape[1]):
            w = torch.tensor([float(torch.exp(th[:, i] @ ph[:, j])) for j in range(ph.shape[1])])
            y[:, i] = (g * (w / w.sum())).sum(1)
        expected = x + block.norm(block.w_z(y.reshape(1, 4, 2, 4, 4)))
        torch.testing.assert_close(nonlocal_attention_reference(x, block), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sub_sample", [False, True])
def test_nonlocal_attention_rows_sum_to_one(sub_sample):
    torch.manual_seed(0)
    block = NonLocalBlock3d(8, sub_sample=sub_sample)
    x = _randn(3, 8, 4, 4, 6)
    _, attn = block(x, return_attention=True)
    n = 4 * 4 * 6
    assert attn.shape == (3, n, n // 8 if sub_sample else n)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, n))
    assert float(attn.detach().min()) >= 0.0


# ----------------------------------------------------------------------------------------------------- training


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = nlran3d("tiny", dropout=0.0)
    _perturb(model.nonlocal_block)  # at init the block is the identity and its convs get exactly zero gradient
    F.cross_entropy(model(_rand(2, 1, 32, 32, 32)), torch.tensor([0, 2])).backward()
    # W_z's bias is followed by a BatchNorm (train mode), which subtracts the per-channel mean: zero gradient.
    exempt = {"nonlocal_block.w_z.bias"}
    missing = [n for n, p in model.named_parameters() if n not in exempt and (p.grad is None or not p.grad.any())]
    assert not missing, f"no gradient for {missing}"


def test_loss_falls_when_overfitting_eight_volumes():
    """Adam (lr 1e-3) on 8 random 32^3 volumes with 3 labels: 12 steps (not 30, to stay inside the 5-s test budget;
    the loss is at about 1/6 of its start by then, so halving it is a safe bar)."""
    torch.manual_seed(0)
    model = nlran3d("tiny", dropout=0.0)
    x = _rand(8, 1, 32, 32, 32, seed=3)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_seeded_determinism():
    x = _rand(2, 1, 32, 32, 32)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        model = nlran3d("tiny").eval()
        _perturb(model.nonlocal_block, seed=seed)
        with torch.no_grad():
            outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_recalibrate_batchnorm_gives_the_batch_average():
    torch.manual_seed(0)
    model = nlran3d("tiny")
    bn = model.stem[1]
    assert isinstance(bn, nn.BatchNorm3d)
    model.eval()
    model.classifier.train()  # a module in its own mode: must be restored too
    bn.momentum = 0.3
    seen = []
    hook = bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    batches = [(_rand(2, 1, 32, 32, 32, seed=s), torch.tensor([0, 1])) for s in range(4)]
    try:
        out = recalibrate_batchnorm(model, batches, max_batches=3)
    finally:
        hook.remove()
    assert out is model and len(seen) == 3  # max_batches honoured, (x, y) tuples accepted
    means = torch.stack([s.mean(dim=(0, 2, 3, 4)) for s in seen])
    vars_ = torch.stack([s.transpose(0, 1).reshape(s.shape[1], -1).var(dim=1, unbiased=True) for s in seen])
    torch.testing.assert_close(bn.running_mean, means.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, vars_.mean(0), atol=1e-5, rtol=1e-4)
    assert int(bn.num_batches_tracked) == 3
    assert bn.momentum == 0.3 and not model.training and not bn.training and model.classifier.training
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm3d) and m is not bn)


def test_recalibrate_batchnorm_bad_input():
    model = nlran3d("tiny")
    before = model.stem[1].running_mean.clone().add_(1.0)
    model.stem[1].running_mean.copy_(before)
    with pytest.raises(ValueError, match="empty"):
        recalibrate_batchnorm(model, [])
    assert torch.equal(model.stem[1].running_mean, before)  # nothing was reset
    with pytest.raises(ValueError, match="max_batches"):
        recalibrate_batchnorm(model, [_rand(2, 1, 32, 32, 32)], max_batches=0)


# ----------------------------------------------------------------------------------------------------- bad input


def test_bad_norm():
    with pytest.raises(ValueError, match="norm"):
        make_norm("layer", 8)
    with pytest.raises(ValueError, match="norm"):
        nlran3d("tiny", norm="layer")
    with pytest.raises(ValueError, match="norm"):
        build_model("resnet18", norm="layer")


def test_mask_depth_too_deep():
    module = AttentionModule3d(4, mask_depth=3)
    with pytest.raises(ValueError, match="mask_depth=3"):
        module(_randn(1, 4, 4, 8, 8))
    with pytest.raises(ValueError, match="mask_depth"):
        AttentionModule3d(4, mask_depth=0)
    # tiny at 8^3: stage 3 works at 1^3 but its mask needs >= 2
    with pytest.raises(ValueError, match="mask_depth"):
        nlran3d("tiny")(_rand(2, 1, 8, 8, 8))


def test_wrong_input_rank_or_channels():
    model = nlran3d("tiny")
    with pytest.raises(ValueError, match=r"\[B, C, D, H, W\]"):
        model(_rand(1, 32, 32, 32))
    with pytest.raises(ValueError, match="channel"):
        model(_rand(1, 2, 32, 32, 32))
    with pytest.raises(ValueError, match=r"\[B, C, D, H, W\]"):
        NonLocalBlock3d(4)(_randn(4, 4, 4, 4))
    with pytest.raises(ValueError, match=r"\[B, C, D, H, W\]"):
        build_model("resnet18")(_rand(1, 32, 32, 32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="widths"):
        NLRAN3d(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="nonlocal_stage"):
        NLRAN3d(nonlocal_stage=4)
    with pytest.raises(ValueError, match="preset"):
        nlran3d("huge")


def test_build_model_unknown_name_lists_names():
    with pytest.raises(ValueError) as info:
        build_model("vgg")
    assert all(name in str(info.value) for name in MODEL_NAMES)
    with pytest.raises(ValueError, match="preset"):
        build_model("nlran", preset="huge")


def test_build_model_norm_override():
    model = build_model("nlran", norm="group")
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    assert isinstance(model.nonlocal_block.norm, nn.GroupNorm)


# ----------------------------------------------------------------------------------------------------- benchmark


def test_benchmark_quick_runs(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as `python benchmarks/nlran.py` finds timing.py
    spec = importlib.util.spec_from_file_location("bench_nlran", REPO / "benchmarks" / "nlran.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    try:
        assert bench.main(["--quick", "--threads", "1", "--json"]) == 0
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert "NL-RAN tiny / ResNet-18 time ratio" in out and "SDPA / explicit time ratio" in out
