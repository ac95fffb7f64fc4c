"""The facesem label graph and its HEX loss against independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from kit.facesem import graph as g


def _legal_by_rules(v):
    fake, attrs = v[0], v[1:6]
    parents = {6: (1, 2, 3, 4, 5), 7: (3, 4, 5), 8: (2, 3, 4, 5), 9: (2, 3, 4, 5), 10: (2, 4, 5),
               11: (1, 2, 3, 4, 5)}
    children = {k: [r for r, ps in parents.items() if k in ps] for k in range(1, 6)}
    if any(attrs) and not fake:
        return False
    if any(v[a] and not any(v[c] for c in children[a]) for a in range(1, 6)):
        return False
    return all(not v[r] or any(v[p] for p in parents[r]) for r in range(6, 12))


def test_legal_states_are_the_1544_of_the_rules():
    s = g.legal_states()
    assert s.shape == (1544, 12) and s.dtype == torch.float32
    assert s[0].sum() == 0 and int(s[:, 0].sum()) == 1543
    expect = {v for v in itertools.product((0, 1), repeat=12) if _legal_by_rules(v)}
    assert {tuple(int(x) for x in r) for r in s} == expect
    assert g.is_legal(np.eye(12, dtype=int)[0])[0]  # fake alone is legal
    assert not g.is_legal(np.eye(12, dtype=int)[6])[0]  # a region without a parent attribute is not
    with pytest.raises(ValueError, match="0/1 vectors"):
        g.is_legal(np.full(12, 2))


def test_every_ffsc_label_is_legal_with_unknowns_either_way():
    for edit in g.EDIT_LABELS:
        y = g.label_vector(edit)
        for fill in (0, 1):
            assert g.is_legal(np.where(y == g.UNKNOWN, fill, y))[0], (edit, fill)
    assert g.label_vector("gender")[1] == g.UNKNOWN and g.label_vector("gender")[4] == 1
    with pytest.raises(ValueError, match="edit must be"):
        g.label_vector("beard")


def test_hex_marginals_equal_a_sum_over_states_and_obey_the_graph():
    torch.manual_seed(0)
    f = torch.randn(5, 12, dtype=torch.float64) * 3
    m = g.hex_marginals(f)
    states = [np.array(v) for v in itertools.product((0, 1), repeat=12) if _legal_by_rules(v)]
    for b in range(5):
        w = np.array([math.exp(float(f[b] @ torch.tensor(s, dtype=torch.float64))) for s in states])
        ref = (w[:, None] * np.array(states)).sum(0) / w.sum()
        np.testing.assert_allclose(m[b].numpy(), ref, rtol=1e-9)
    assert (m[:, 1:6] <= m[:, :1] + 1e-12).all()  # an attribute is never more likely than "fake"
    parents = {6: [1, 2, 3, 4, 5], 7: [3, 4, 5], 8: [2, 3, 4, 5], 9: [2, 3, 4, 5], 10: [2, 4, 5], 11: [1, 2, 3, 4, 5]}
    for r, ps in parents.items():
        assert (m[:, r] <= m[:, ps].sum(1) + 1e-12).all()
    assert g.is_legal(g.map_states(f).numpy().astype(int)).all()
    top = g.top_states(f, k=3)
    assert len(top[0]) == 3 and top[0][0][1] >= top[0][1][1]


def test_graph_loss_masks_unknowns_and_averages_over_the_batch():
    torch.manual_seed(1)
    f = torch.randn(4, 12, requires_grad=True)
    y = torch.tensor(np.stack([g.label_vector(e) for e in ("real", "gender", "identity", "age")]))
    out = g.graph_loss(g.hex_marginals(f), y)
    p = g.hex_marginals(f).detach().numpy()
    mask = (y != 2).numpy()
    t = np.where(mask, y.numpy(), 0)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)) * mask
    np.testing.assert_allclose(out["node"].detach().numpy(), bce.mean(0), rtol=1e-5)
    assert out["L2"].item() == pytest.approx(bce.mean(0)[1:6].mean(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(out["L1"].item() + out["L2"].item() + out["L3"].item())
    # a masked node gives no gradient: only the age node of the unknown-age rows, through P_age
    p_ = g.hex_marginals(f)
    p_.retain_grad()
    g.graph_loss(p_, y)["node"][1].backward()
    assert p_.grad[1:3, 1].abs().sum() == 0 and p_.grad[3, 1] != 0
    with pytest.raises(ValueError, match="0, 1 or 2"):
        g.graph_loss(g.hex_marginals(f), torch.full((4, 12), 3))


def test_impossible_rate_of_independent_sigmoids():
    probs = np.zeros((4, 12))
    probs[1, 6] = 0.9  # eye without a parent
    probs[2, [0, 1, 6]] = 0.9  # fake, age, eye: legal
    probs[3, 2] = 0.9  # expression on a real face
    assert g.impossible_rate(probs) == 0.5
