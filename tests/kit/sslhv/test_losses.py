"""SSL objectives of kit.sslhv.losses against independent float64 / loop computations on small tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kit.sslhv.losses import (
    MemoryQueue,
    barlow_twins_loss,
    byol_loss,
    collapse_report,
    cosine_momentum,
    moco_loss,
    momentum_update,
    negative_cosine,
    nt_xent_loss,
    simsiam_loss,
    vae_loss,
    vicreg_loss,
)


def _pair(n=6, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g)
    return z1, 0.6 * z1 + 0.5 * torch.randn(n, d, generator=g)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vicreg_matches_loops():
    z1, z2 = _pair()
    a, b = z1.double().numpy(), z2.double().numpy()
    n, d = a.shape
    inv = sum((a[i, j] - b[i, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def var_term(m):
        return np.mean([max(0.0, 1 - math.sqrt(np.var(m[:, j], ddof=1) + 1e-4)) for j in range(d)])

    def cov_term(m):
        c = np.cov(m, rowvar=False)
        return sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d

    var = 0.5 * (var_term(a) + var_term(b))
    cov = cov_term(a) + cov_term(b)
    out = vicreg_loss(z1, z2)
    assert out["invariance"].item() == pytest.approx(inv, rel=1e-5)
    assert out["variance"].item() == pytest.approx(var, rel=1e-5, abs=1e-7)
    assert out["covariance"].item() == pytest.approx(cov, rel=1e-5)
    assert out["loss"].item() == pytest.approx(25 * inv + 25 * var + cov, rel=1e-5)
    ones = vicreg_loss(z1, z2, 1.0, 1.0, 1.0)["loss"].item()
    assert ones == pytest.approx(inv + var + cov, rel=1e-5)
    assert var > 0  # small-variance inputs exercise the hinge


def test_barlow_twins_matches_loops():
    z1, z2 = _pair(n=8, d=3, seed=1)
    a, b = z1.double().numpy(), z2.double().numpy()
    n, d = a.shape
    an = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)
    bn = (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5)
    c = np.array([[sum(an[k, i] * bn[k, j] for k in range(n)) / n for j in range(d)] for i in range(d)])
    on = sum((1 - c[i, i]) ** 2 for i in range(d))
    off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    out = barlow_twins_loss(z1, z2, lambd=0.1)
    assert out["on_diag"].item() == pytest.approx(on, rel=1e-4)
    assert out["off_diag"].item() == pytest.approx(off, rel=1e-4)
    assert out["loss"].item() == pytest.approx(on + 0.1 * off, rel=1e-4)
    # identical branches: perfectly correlated, on-diagonal ~ 0
    assert barlow_twins_loss(z1, z1)["on_diag"].item() < 1e-4


def test_nt_xent_matches_loops():
    z1, z2 = _pair(n=4, d=5, seed=2)
    z = np.concatenate([z1.double().numpy(), z2.double().numpy()])
    n2, t = z.shape[0], 0.5
    total = 0.0
    for i in range(n2):
        pos = (i + n2 // 2) % n2
        sims = {j: math.exp(_cos(z[i], z[j]) / t) for j in range(n2) if j != i}
        total += -math.log(sims[pos] / sum(sims.values()))
    assert nt_xent_loss(z1, z2, temperature=t).item() == pytest.approx(total / n2, rel=1e-5)


def test_cosine_family_matches_loops():
    p1, z2 = _pair(n=5, d=3, seed=3)
    p2, z1 = _pair(n=5, d=3, seed=4)
    P1, P2, Z1, Z2 = (t.double().numpy() for t in (p1, p2, z1, z2))

    def d_(p, z):
        return -np.mean([_cos(p[i], z[i]) for i in range(len(p))])

    assert negative_cosine(p1, z2).item() == pytest.approx(d_(P1, Z2), rel=1e-5)
    assert simsiam_loss(p1, p2, z1, z2).item() == pytest.approx(0.5 * (d_(P1, Z2) + d_(P2, Z1)), rel=1e-5)
    # BYOL: normalised MSE summed over both directions
    def nmse(p, z):
        return np.mean([np.sum((p[i] / np.linalg.norm(p[i]) - z[i] / np.linalg.norm(z[i])) ** 2)
                        for i in range(len(p))])
    assert byol_loss(p1, p2, z1, z2).item() == pytest.approx(nmse(P1, Z2) + nmse(P2, Z1), rel=1e-5)


def test_moco_matches_loops_and_queue_fifo():
    q, k = _pair(n=3, d=4, seed=5)
    g = torch.Generator().manual_seed(0)
    queue = torch.randn(6, 4, generator=g)
    Q, K, U = (t.double().numpy() for t in (q, k, queue))
    t = 0.07
    total = 0.0
    for i in range(3):
        logits = [_cos(Q[i], K[i]) / t] + [_cos(Q[i], U[j]) / t for j in range(6)]
        m = max(logits)
        total += -(logits[0] - m - math.log(sum(math.exp(v - m) for v in logits)))
    assert moco_loss(q, k, queue, t).item() == pytest.approx(total / 3, rel=1e-5)

    mq = MemoryQueue(dim=4, size=5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(mq.queue.norm(dim=1), torch.ones(5))
    a = torch.arange(1, 13, dtype=torch.float32).view(3, 4)
    b = -torch.arange(1, 17, dtype=torch.float32).view(4, 4)
    mq.enqueue(a)
    mq.enqueue(b)  # 7 keys into 5 slots: the two oldest (a[0], a[1]) are gone
    kept = torch.cat([a[2:], b])
    expected = torch.nn.functional.normalize(kept, dim=1)
    got = mq().clone()
    for row in expected:
        assert (got - row).abs().sum(1).min() < 1e-6
    for row in torch.nn.functional.normalize(a[:2], dim=1):
        assert (got - row).abs().sum(1).min() > 1e-3
    with pytest.raises(ValueError, match="keys"):
        mq.enqueue(torch.zeros(2, 3))


def test_momentum_update_and_schedule():
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    momentum_update(online, target, 0.9)
    for b, po, pt in zip(before, online.parameters(), target.parameters()):
        assert torch.allclose(pt, 0.9 * b + 0.1 * po)
        assert pt.grad is None
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    with pytest.raises(ValueError, match="same parameters"):
        momentum_update(online, nn.Sequential(), 0.5)


def test_vae_loss_matches_distributions_and_mc_kl():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g)
    x_hat = torch.rand(3, 1, 4, 4, generator=g)
    mu, log_var = torch.randn(3, 5, generator=g), 0.5 * torch.randn(3, 5, generator=g)
    z = mu + torch.exp(0.5 * log_var) * torch.randn(3, 5, generator=g)
    log_scale = torch.tensor(-0.3)
    D = torch.distributions
    recon = D.Normal(x_hat, torch.exp(log_scale)).log_prob(x).sum(dim=(1, 2, 3))
    q = D.Normal(mu, torch.exp(0.5 * log_var))
    kl = (q.log_prob(z) - D.Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z)).sum(1)
    out = vae_loss(x, x_hat, mu, log_var, z, log_scale)
    assert out["recon"].item() == pytest.approx(recon.mean().item(), rel=1e-5)
    assert out["kl"].item() == pytest.approx(kl.mean().item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((kl - recon).mean().item(), rel=1e-5)
    # the Monte-Carlo KL averaged over many samples approaches the analytic KL
    m = 20000
    mu1, lv1 = mu[:1].expand(m, 5), log_var[:1].expand(m, 5)
    zs = mu1 + torch.exp(0.5 * lv1) * torch.randn(m, 5, generator=g)
    xs = torch.zeros(m, 1)
    mc = vae_loss(xs, xs, mu1, lv1, zs, torch.tensor(0.0))["kl"].item()
    analytic = D.kl_divergence(D.Normal(mu[0], torch.exp(0.5 * log_var[0])), D.Normal(0.0, 1.0)).sum().item()
    assert mc == pytest.approx(analytic, abs=0.05 + 0.02 * analytic)


def test_collapse_report():
    g = torch.Generator().manual_seed(0)
    rand = collapse_report(torch.randn(128, 16, generator=g))
    assert not rand["collapsed"] and rand["frac_collapsed"] == 0.0 and rand["effective_rank"] > 12
    assert rand["std_per_dim"].shape == (16,) and 0.8 < rand["mean_std"] < 1.2
    const = collapse_report(torch.full((32, 16), 3.0))
    assert const["collapsed"] and const["frac_collapsed"] == 1.0 and const["effective_rank"] == 0.0
    rank1 = torch.randn(64, 1, generator=g) * torch.randn(1, 16, generator=g)
    r1 = collapse_report(rank1)
    assert r1["collapsed"] and r1["effective_rank"] == pytest.approx(1.0, abs=1e-3)
    # nearly identical rows far from the origin: collapsed on the default (scale-free) threshold
    near = 50.0 + 0.01 * torch.randn(64, 16, generator=g)
    assert collapse_report(near)["collapsed"]
    assert collapse_report(near)["frac_collapsed"] == 1.0


def test_gradients_flow():
    z1, z2 = _pair(n=6, d=4, seed=7)
    for fn in (lambda a, b: vicreg_loss(a, b)["loss"], lambda a, b: barlow_twins_loss(a, b)["loss"],
               nt_xent_loss,                lambda a, b: moco_loss(a, b, torch.randn(5, 4))):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        fn(a, b).backward()
        assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    # stop-gradient: targets get no gradient in the BYOL / SimSiam losses
    p1, p2, t1, t2 = (t.clone().requires_grad_() for t in (z1, z2, z2, z1))
    (byol_loss(p1, p2, t1, t2) + simsiam_loss(p1, p2, t1, t2)).backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    assert t1.grad is None and t2.grad is None
    mu = torch.zeros(2, 3, requires_grad=True)
    log_scale = torch.zeros((), requires_grad=True)
    x = torch.rand(2, 1, 4, 4)
    vae_loss(x, torch.full_like(x, 0.5), mu, torch.zeros(2, 3), mu + 0.1, log_scale)["loss"].backward()
    assert mu.grad.abs().sum() > 0 and log_scale.grad is not None


def test_errors():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        vicreg_loss(z, torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch size"):
        vicreg_loss(z[:1], z[:1])
    with pytest.raises(ValueError, match="batch size"):
        barlow_twins_loss(z[:1], z[:1])
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        nt_xent_loss(z.view(12), z.view(12))
    with pytest.raises(ValueError, match="NaN"):
        vicreg_loss(z, torch.full_like(z, float("nan")))
    with pytest.raises(ValueError, match="queue"):
        moco_loss(z, z, torch.randn(5, 2))
    with pytest.raises(ValueError, match=">= 2"):
        collapse_report(z[:1])
    with pytest.raises(ValueError, match="mu, log_var, z"):
        vae_loss(torch.rand(2, 4), torch.rand(2, 4), torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 3),
                 torch.tensor(0.0))
    with pytest.raises(ValueError, match="step"):
        cosine_momentum(-1, 10)
