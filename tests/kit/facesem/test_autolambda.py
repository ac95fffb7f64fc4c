"""Auto-lambda's finite-difference hypergradient against the exact second-order one, and its bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.facesem.autolambda import AutoLambda

torch.set_num_threads(1)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 3)
        self.aux = nn.Parameter(torch.randn(3))  # only task 2 uses it


def losses(model, batch):
    x, y = batch
    h = model.shared(x)
    l0 = ((h[:, 0] - y) ** 2).mean()
    l1 = ((h[:, 1] + h[:, 0] - 2 * y) ** 2).mean()
    l2 = ((model.aux - 1) ** 2).sum()  # independent of the primary task's parameters
    return torch.stack([l0, l1, l2])


def batches():
    g = torch.Generator().manual_seed(1)
    x, xv = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    return (x, x.sum(1)), (xv, xv[:, 0])


def exact(model, lam, train, val, alpha):
    """d L0(theta - alpha grad sum lam_k L_k(theta)) / d lam, by autograd through the virtual step."""
    lam = lam.clone().requires_grad_(True)
    names, params = zip(*model.named_parameters())
    g = torch.autograd.grad((lam * losses(model, train)).sum(), params, create_graph=True)
    virtual = {n: p - alpha * gi for n, p, gi in zip(names, params, g)}
    x, y = val
    h = x @ virtual["shared.weight"].T + virtual["shared.bias"]
    l0 = ((h[:, 0] - y) ** 2).mean()
    return torch.autograd.grad(l0, lam)[0]


def test_hypergradient_matches_the_exact_one_and_leaves_theta():
    model = Toy().double()
    train, val = [tuple(t.double() for t in b) for b in batches()]
    al = AutoLambda(model, init=1.0)
    al.lambdas.data = al.lambdas.data.double()
    before = [p.detach().clone() for p in model.parameters()]
    hyper = al.hypergradient(losses, train, val, alpha=0.05)
    ref = exact(model, al.lambdas.detach(), train, val, alpha=0.05)
    torch.testing.assert_close(hyper, ref, rtol=1e-5, atol=1e-9)  # quadratic losses: central differences are exact
    assert hyper[2] == 0  # a task sharing no parameter with the primary one gets no signal
    for p, b in zip(model.parameters(), before):
        torch.testing.assert_close(p, b)


def test_step_moves_lambda_against_the_hypergradient_and_logs_it():
    model = Toy()
    train, val = batches()
    al = AutoLambda(model, init=1.0, lr=0.1)
    hyper = al.hypergradient(losses, train, val, alpha=0.05)
    lam = al.step(losses, train, val, alpha=0.05)
    moved = lam - 1.0
    assert torch.all(torch.sign(moved[:2]) == -torch.sign(hyper[:2])) and moved[2] == 0
    assert al.history == [lam.tolist()]
    state = al.state_dict()
    other = AutoLambda(Toy(), lr=0.1)
    other.load_state_dict(state)
    torch.testing.assert_close(other.lambdas.detach(), lam)


def test_bad_arguments():
    with pytest.raises(ValueError, match="primary"):
        AutoLambda(Toy(), n_tasks=3, primary=(3,))
    al = AutoLambda(Toy(), n_tasks=2)
    with pytest.raises(ValueError, match="task losses"):
        al.step(losses, *batches(), alpha=0.1)
