"""EDM preconditioning coefficients, loss and the toy MLP network."""

import math

import pytest
import torch
from torch import nn

from kit.diffusion.precond import EDMPrecond, MLPDenoiserNet, edm_coefficients, edm_loss

torch.set_num_threads(1)


class _RecordingNet(nn.Module):
    """Returns a fixed function of its inputs and records them."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
        self.seen = None

    def forward(self, x_in, c_noise):
        self.seen = (x_in.detach().clone(), c_noise.detach().clone())
        return self.scale * torch.sin(x_in) + c_noise.view(-1, *([1] * (x_in.ndim - 1)))


def test_coefficients_at_known_values():
    c_skip, c_out, c_in, c_noise = edm_coefficients(torch.tensor([0.5, 2.0], dtype=torch.float64), 0.5)
    # sigma = sigma_data = 0.5: c_skip = 1/2, c_out = 0.25 / sqrt(0.5), c_in = 1 / sqrt(0.5)
    assert c_skip[0].item() == pytest.approx(0.5)
    assert c_out[0].item() == pytest.approx(0.25 / math.sqrt(0.5))
    assert c_in[0].item() == pytest.approx(1 / math.sqrt(0.5))
    assert c_noise[0].item() == pytest.approx(math.log(0.5) / 4)
    assert c_skip[1].item() == pytest.approx(0.25 / 4.25)
    assert c_out[1].item() == pytest.approx(1.0 / math.sqrt(4.25))
    assert c_in[1].item() == pytest.approx(1 / math.sqrt(4.25))
    # D's error variance for F = 0 and unit-variance-sd data equals c_out^2 (EDM's derivation)
    s, sd = 3.0, 0.7
    c_skip, c_out, _, _ = edm_coefficients(torch.tensor(s), sd)
    assert float((c_skip - 1) ** 2 * sd**2 + c_skip**2 * s**2) == pytest.approx(float(c_out**2))


def test_edm_precond_forward_matches_formula():
    net = _RecordingNet()
    den = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = torch.tensor([0.01, 1.0, 50.0], dtype=torch.float64)
    out = den(x, sig)
    assert out.shape == x.shape and out.dtype == x.dtype
    c_in = 1 / torch.sqrt(sig**2 + 0.25)
    x_in, c_noise = net.seen
    torch.testing.assert_close(x_in, c_in.view(-1, 1, 1) * x)
    torch.testing.assert_close(c_noise, torch.log(sig) / 4)
    f = 2.0 * torch.sin(x_in) + c_noise.view(-1, 1, 1)
    want = (0.25 / (sig**2 + 0.25)).view(-1, 1, 1) * x + (sig * 0.5 / torch.sqrt(sig**2 + 0.25)).view(-1, 1, 1) * f
    torch.testing.assert_close(out, want)
    with pytest.raises(ValueError, match="sigma"):
        den(x, -1.0)
    with pytest.raises(ValueError, match="sigma_data"):
        EDMPrecond(net, sigma_data=0.0)


def test_edm_loss_value_gradient_and_determinism():
    torch.manual_seed(0)
    net = MLPDenoiserNet(dim=2, hidden=16, depth=2, emb_dim=8).double()
    den = EDMPrecond(net)
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = edm_loss(den, x0, generator=torch.Generator().manual_seed(2))
    assert loss.ndim == 0 and torch.isfinite(loss)
    # independent recomputation with the same random draws (sigma first, then noise)
    g = torch.Generator().manual_seed(2)
    sigma = torch.exp(-1.2 + 1.2 * torch.randn(32, generator=g, dtype=torch.float64))
    noise = torch.randn(32, 2, generator=g, dtype=torch.float64)
    weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    want = (weight * ((den(x0 + sigma[:, None] * noise, sigma) - x0) ** 2).mean(1)).mean()
    torch.testing.assert_close(loss, want)
    assert torch.equal(loss, edm_loss(den, x0, generator=torch.Generator().manual_seed(2)))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_mlp_shapes_and_errors():
    net = MLPDenoiserNet(dim=64, hidden=32, depth=3, emb_dim=16)
    x = torch.randn(5, 1, 8, 8)
    out = net(x, torch.zeros(5))
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="x_in must have 64"):
        net(torch.randn(5, 63), torch.zeros(5))
    with pytest.raises(ValueError, match="c_noise must have shape"):
        net(x, torch.zeros(4))
    with pytest.raises(ValueError, match="emb_dim"):
        MLPDenoiserNet(dim=2, emb_dim=7)
    with pytest.raises(ValueError, match="depth"):
        MLPDenoiserNet(dim=2, depth=0)


def test_mlp_depends_on_noise_level():
    torch.manual_seed(0)
    net = MLPDenoiserNet(dim=2, hidden=16, depth=2, emb_dim=8)
    x = torch.randn(1, 2).expand(2, 2)
    out = net(x, torch.tensor([math.log(0.01) / 4, math.log(10.0) / 4]))
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_short_training_fits_two_points():
    # data = two points; the optimal denoiser is known, so a short Adam run must move D toward it
    torch.manual_seed(0)
    data = torch.tensor([[-1.0, 0.0], [1.0, 0.0]]).repeat(64, 1)
    den = EDMPrecond(MLPDenoiserNet(dim=2, hidden=64, depth=2, emb_dim=16))
    opt = torch.optim.Adam(den.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    x_probe = torch.tensor([[0.9, 0.1], [-1.1, -0.05]])

    def probe_err():
        with torch.no_grad():
            return float((den(x_probe, 0.1) - torch.tensor([[1.0, 0.0], [-1.0, 0.0]])).norm())

    before = probe_err()
    for _ in range(150):
        opt.zero_grad()
        edm_loss(den, data, generator=gen).backward()
        opt.step()
    assert probe_err() < 0.5 * before
