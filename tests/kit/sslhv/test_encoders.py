"""Shapes, layouts and a training step of the SSL encoders, heads and ResNet-VAE of kit.sslhv.encoders."""

from __future__ import annotations

import pytest
import torch

from kit.sslhv.encoders import (
    PREDICTOR_DIMS,
    PROJECTOR_DIMS,
    ResNetVAE,
    SmallCNN,
    SSLResNet18,
    build_encoder,
    predictor,
    projector,
)
from kit.sslhv.losses import vae_loss


def test_resnet18_layout_and_shape():
    enc = SSLResNet18(width=8)
    assert enc.conv1.kernel_size == (3, 3) and enc.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in enc.modules())
    assert all(len(getattr(enc, f"layer{i}")) == 2 for i in range(1, 5))
    out = enc(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 64) and enc.out_features == 64
    full = SSLResNet18()  # width 64: torchvision ResNet-18 minus stem/fc -> 512 features
    assert full.out_features == 512
    names = {k.split(".")[0] for k in full.state_dict()}
    assert names == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        enc(torch.rand(2, 3, 64, 64))


def test_small_cnn_and_builder():
    enc = SmallCNN()
    n_params = sum(p.numel() for p in enc.parameters())
    assert 55_000 < n_params < 65_000
    assert enc(torch.rand(3, 1, 64, 64)).shape == (3, 64) and enc.out_features == 64
    assert build_encoder("small", widths=(4, 8)).out_features == 8
    assert build_encoder("resnet18", width=4).out_features == 32
    with pytest.raises(ValueError, match="unknown encoder name 'vit'"):
        build_encoder("vit")


def test_heads():
    p = projector(512, PROJECTOR_DIMS["vicreg"])
    linears = [m for m in p if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 2048), (2048, 2048)]
    assert isinstance(p[1], torch.nn.BatchNorm1d) and isinstance(p[2], torch.nn.ReLU)
    assert projector(16, (8, 8, 4))(torch.randn(5, 16)).shape == (5, 4)
    q = predictor(*(256, *PREDICTOR_DIMS["byol"]))
    assert q(torch.randn(4, 256)).shape == (4, 256)
    with pytest.raises(ValueError, match="dims"):
        projector(16, ())


def test_vae_shapes_and_one_step_lowers_loss():
    torch.manual_seed(0)
    vae = ResNetVAE(latent_dim=8, width=4, size=32)
    assert vae.log_scale.item() == 0.0 and vae.log_scale.requires_grad
    x = (torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    out = vae(x, generator=torch.Generator().manual_seed(2))
    assert out["x_hat"].shape == x.shape and out["mu"].shape == (4, 8) and out["z"].shape == (4, 8)
    assert 0 <= out["x_hat"].min().item() and out["x_hat"].max().item() <= 1

    def loss():
        o = vae(x, generator=torch.Generator().manual_seed(2))
        return vae_loss(x, o["x_hat"], o["mu"], o["log_var"], o["z"], vae.log_scale)["loss"]

    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.detach().item()
    big = ResNetVAE(latent_dim=16, width=8)  # default size 64
    assert big(torch.rand(2, 1, 64, 64))["x_hat"].shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="size"):
        ResNetVAE(size=48)
    with pytest.raises(ValueError, match=r"\[B, 1, 32, 32\]"):
        vae(torch.rand(2, 1, 64, 64))
