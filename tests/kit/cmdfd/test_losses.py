"""The correlation-distillation losses against independent computations (float64 loops, scipy), their signs and
their bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from kit.cmdfd import losses as L


def _posteriors(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64) * 2, -1)


def test_paper_target_is_the_codes_averaged_symmetric_kl():
    p, q = _posteriors((3, 5, 40), 0), _posteriors((3, 5, 40), 1)
    r = L.correlation_target(p, q, "paper")
    pn, qn = p.numpy(), q.numpy()
    ref = np.empty((3, 5))
    for b in range(3):
        for t in range(5):
            kl_pq = sum(pn[b, t, c] * math.log(pn[b, t, c] / qn[b, t, c] + 1e-10) for c in range(40)) / 40
            kl_qp = sum(qn[b, t, c] * math.log(qn[b, t, c] / pn[b, t, c] + 1e-10) for c in range(40)) / 40
            ref[b, t] = 1 - 0.5 * (kl_pq + kl_qp)
    np.testing.assert_allclose(r.numpy(), ref, rtol=1e-10)


def test_js_target_is_scipys_jensen_shannon_in_bits():
    p, q = _posteriors((4, 6), 2), _posteriors((4, 6), 3)
    r = L.correlation_target(p, q, "js")
    ref = 1 - jensenshannon(p.numpy(), q.numpy(), base=2, axis=-1) ** 2
    np.testing.assert_allclose(r.numpy(), ref, rtol=1e-9)
    one_hot = torch.eye(6, dtype=torch.float64)
    assert L.correlation_target(one_hot[:1], one_hot[1:2], "js").item() == pytest.approx(0.0)  # disjoint: r = 0


@pytest.mark.parametrize("kind", L.KINDS)
def test_agreeing_teachers_give_r_one(kind):
    p = _posteriors((2, 7, 6), 4)
    torch.testing.assert_close(L.correlation_target(p, p.clone(), kind), torch.ones(2, 7, dtype=torch.float64))


def test_student_correlation_and_matrices():
    a, v = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    c = L.student_correlation(a, v)
    ref = (torch.nn.functional.cosine_similarity(a, v, dim=-1) + 1) / 2
    torch.testing.assert_close(c, ref)
    assert L.student_correlation(a, a).min() > 0.999 and L.student_correlation(a, -a).max() < 1e-3
    m = L.student_correlation_matrix(a, v)
    torch.testing.assert_close(torch.diagonal(m, dim1=-2, dim2=-1), c, atol=1e-6, rtol=1e-5)
    p, q = _posteriors((5, 6), 5), _posteriors((5, 6), 6)
    rm = L.correlation_matrix(p, q)
    assert rm.shape == (5, 5)
    torch.testing.assert_close(rm[1, 3], L.correlation_target(p[1], q[3]))


def test_cd_loss_is_bce_towards_the_target_and_masks():
    c = torch.tensor([[0.2, 0.7, 0.9]], requires_grad=True)
    r = torch.tensor([[0.3, 0.7, 1.4]])  # r outside [0, 1] (the paper's target can leave it) is clamped
    loss = L.cd_loss(c, r)
    rc = r.clamp(0, 1)
    ref = -(rc * torch.log(c) + (1 - rc) * torch.log(1 - c)).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert c.grad[0, 0] < 0 and c.grad[0, 2] < 0  # below the target: gradient descent raises c
    masked = L.cd_loss(c.detach(), r, mask=torch.tensor([[1.0, 0.0, 0.0]]))
    torch.testing.assert_close(masked, -(0.3 * math.log(0.2) + 0.7 * math.log(0.8)) * torch.ones(()))


def test_jc_terms_signs_and_margin():
    r = torch.full((2, 4), 0.8)
    near, far = torch.full((1, 4), 0.79), torch.full((1, 4), 0.1)
    real, fake = torch.tensor([0]), torch.tensor([1])
    # a real clip pays more the further c is from r; a fake pays less the further it is
    assert L.jc_loss(near, r[:1], real) < L.jc_loss(far, r[:1], real)
    assert L.jc_loss(near, r[:1], fake) > L.jc_loss(far, r[:1], fake)
    d = torch.sigmoid(torch.tensor(0.7 * 2))  # ||r - c|| over 4 frames of 0.7
    torch.testing.assert_close(L.jc_loss(far, r[:1], real), d ** 2)
    torch.testing.assert_close(L.jc_loss(far, r[:1], fake, margin=1.0), (1 - d) ** 2)
    torch.testing.assert_close(L.jc_loss(far, r[:1], fake, margin=2.0), (2 - d) ** 2)
    assert L.jc_loss(far, r[:1], fake, margin=0.6).item() == 0.0  # delta >= 0.5 > ... margin below delta: no loss
    c = near.clone().requires_grad_(True)
    L.jc_loss(c, r[:1], real).backward()
    assert (c.grad < 0).all()  # the real term falls as c rises towards r
    with pytest.raises(ValueError, match="margin"):
        L.jc_loss(near, r[:1], real, margin=0)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        L.jc_loss(near[0], r[0], real)


def test_total_loss_weights_and_missing_teachers():
    torch.manual_seed(0)
    logits, a, v = torch.randn(3, 5, 2), torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    y = torch.tensor([0, 1, 1])
    p, q = _posteriors((3, 5, 6), 7).float(), _posteriors((3, 5, 6), 8).float()
    full = L.total_loss(logits, a, v, y, p, q)
    torch.testing.assert_close(full["loss"], full["ce"] + full["cd"] + full["jc"])
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), y.repeat_interleave(5))
    torch.testing.assert_close(full["ce"], ce)
    only = L.total_loss(logits, a, v, y, w_cd=0, w_jc=0)
    torch.testing.assert_close(only["loss"], ce)
    assert only["cd"].item() == 0 and only["r"] is None
    with pytest.raises(ValueError, match="posteriors"):
        L.total_loss(logits, a, v, y)
    with pytest.raises(ValueError, match="kind"):
        L.correlation_target(p, q, "kl")
    with pytest.raises(ValueError, match="one shape"):
        L.correlation_target(p, q[..., :3])
