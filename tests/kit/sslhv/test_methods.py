"""The SSL methods of arXiv:2405.18320 as modules: every method's loss, terms, gradients, momentum targets and
embeddings."""

from __future__ import annotations

import pytest
import torch

from kit.sslhv.methods import METHODS, SSLMethod


def _batch(n: int = 8, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 1, size, size)
    x[:, :, 10:20, 6:26] = torch.rand(n, 1, 10, 20, generator=g)  # some "ink"
    return x


def _method(name: str) -> SSLMethod:
    torch.manual_seed(0)
    enc = "resnet18" if name == "vae" else "small"
    return SSLMethod(name, encoder=enc, width=4, proj_scale=1 / 32, latent_dim=8, moco_queue=32, size=32)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_gives_a_finite_loss_with_gradients_and_an_embedding(name):
    m = _method(name).train()
    x = _batch()
    out = m.training_loss(x, step=0, total=10, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    out["loss"].backward()
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    assert all(p.grad is None for p in m.parameters() if not p.requires_grad)
    assert trainable
    e = m.eval().embed(x)
    assert e.shape == (8, m.embed_dim) and torch.isfinite(e).all()


def test_terms_are_reported_for_the_live_curves():
    x = _batch()
    assert {"invariance", "variance", "covariance"} <= set(_method("vicreg").training_loss(x))
    assert {"on_diag", "off_diag"} <= set(_method("barlow_twins").training_loss(x))
    assert {"kl", "recon"} <= set(_method("vae").training_loss(x))


@pytest.mark.parametrize("name", ["byol", "moco"])
def test_momentum_targets_follow_the_online_weights_and_the_queue_fills(name):
    m = _method(name).train()
    x = _batch()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    t0 = [p.clone() for p in m.target_encoder.parameters()]
    q0 = m.queue().clone() if name == "moco" else None
    for step in range(2):
        loss = m.training_loss(x, step, 10)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    # step 0 copies nothing new (online == target); step 1 moves the target toward the updated online weights
    moved = [not torch.equal(a, b) for a, b in zip(t0, m.target_encoder.parameters())]
    assert any(moved)
    online = list(m.encoder.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(online, m.target_encoder.parameters()) if a.requires_grad
               and a.grad is not None and a.grad.abs().sum() > 0)
    if name == "moco":
        assert not torch.equal(q0, m.queue()) and int(m.queue.ptr) == 16
    # evaluation mode: no momentum step, no enqueue
    m.eval()
    before = [p.clone() for p in m.target_encoder.parameters()]
    m.training_loss(x, 5, 10)
    assert all(torch.equal(a, b) for a, b in zip(before, m.target_encoder.parameters()))


def test_bad_arguments():
    with pytest.raises(ValueError, match="method must"):
        SSLMethod("dino")
    with pytest.raises(ValueError, match="encoder must"):
        SSLMethod("vae", encoder="vit")
    with pytest.raises(ValueError, match="size must be"):
        SSLMethod("vae", encoder="small", size=48)
    with pytest.raises(ValueError, match="batch"):
        _method("vicreg").training_loss(torch.zeros(1, 1, 32, 32))


def test_cpu_vae_keeps_the_resnet_vae_contract():
    from kit.sslhv.encoders import ConvVAE

    m = SSLMethod("vae", encoder="small", latent_dim=8, size=64)
    assert isinstance(m.vae, ConvVAE) and m.embed_dim == 8
    x = torch.rand(4, 1, 64, 64)
    out = m.vae(x, torch.Generator().manual_seed(0))
    assert out["x_hat"].shape == x.shape and out["mu"].shape == (4, 8)
    assert ((out["x_hat"] >= 0) & (out["x_hat"] <= 1)).all()
    terms = m.training_loss(x, generator=torch.Generator().manual_seed(1))
    terms["loss"].backward()
    assert m.vae.log_scale.grad is not None and m.vae.fc_dec.weight.grad.abs().sum() > 0
