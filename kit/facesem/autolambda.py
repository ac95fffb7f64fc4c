"""Auto-lambda (Liu, Li, Kuang, Xue, Chen, Yang, Liao, Zhang: arXiv:2202.03091) as SO-DFD uses it
(arXiv:2405.08487's ``lambda_optimizer``): learn the weights of the three level losses so that the auxiliary
levels serve the primary real / fake task.

One step, with task losses L_k(theta; batch) (k = L1, L2, L3) and weights lambda:
1. a virtual step theta' = theta - alpha * grad_theta sum_k lambda_k L_k(theta; train batch), alpha the model's
   current learning rate;
2. the primary loss only (L1) at theta' on a second training batch: d = grad_theta' L1(theta'; val batch);
3. the hypergradient by central finite differences, d L1(theta') / d lambda_k = -alpha grad_theta L_k . d
   ~ -alpha [L_k(theta + eps d) - L_k(theta - eps d)] / (2 eps), eps = 0.01 / ||d||;
4. an Adam step on lambda (not clamped, not normalised, as the authors').
The model's own step (5.: theta with the current lambda, as constants) is the caller's. The extra forward passes
run in the model's current mode (batch-norm statistics move as in the authors' code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["AutoLambda"]

LossFn = Callable[[nn.Module, Any], torch.Tensor]  # (model, batch) -> task losses [K]


class AutoLambda:
    """Learned task weights ``lambdas`` [K] for ``model``; ``step(loss_fn, train_batch, val_batch, alpha)``
    updates them (Adam at ``lr``) from the primary tasks' (``primary``: indices into the K losses) loss after a
    virtual step, and returns them. ``init``: the authors' README uses 1.0 (their code's default is 0.1)."""

    def __init__(self, model: nn.Module, n_tasks: int = 3, init: float = 1.0, lr: float = 1e-3,
                 primary: Sequence[int] = (0,), eps_scale: float = 0.01) -> None:
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        if not primary or any(not 0 <= k < n_tasks for k in primary):
            raise ValueError(f"primary must name tasks in [0, {n_tasks}), got {tuple(primary)}")
        if lr <= 0 or eps_scale <= 0:
            raise ValueError("lr and eps_scale must be > 0")
        self.model, self.primary, self.eps_scale = model, list(primary), float(eps_scale)
        self.lambdas = nn.Parameter(torch.full((n_tasks,), float(init)))
        self.optimizer = torch.optim.Adam([self.lambdas], lr=lr)
        self.history: list[list[float]] = []

    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _losses(self, loss_fn: LossFn, batch: Any) -> torch.Tensor:
        losses = loss_fn(self.model, batch)
        if losses.ndim != 1 or len(losses) != len(self.lambdas):
            raise ValueError(f"loss_fn must return the {len(self.lambdas)} task losses [K], got shape "
                             f"{tuple(losses.shape)}")
        return losses

    def hypergradient(self, loss_fn: LossFn, train_batch: Any, val_batch: Any, alpha: float) -> torch.Tensor:
        """d L_primary(theta') / d lambda [K] by the finite difference above; ``theta`` is left as it was."""
        params = self._params()
        backup = [p.detach().clone() for p in params]
        lam = self.lambdas.detach()
        try:
            grads = torch.autograd.grad((lam * self._losses(loss_fn, train_batch)).sum(), params,
                                        allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p.sub_(alpha * g)
            primary = self._losses(loss_fn, val_batch)[self.primary].sum()
            d = [torch.zeros_like(p) if g is None else g
                 for p, g in zip(params, torch.autograd.grad(primary, params, allow_unused=True))]
            norm = torch.sqrt(sum((x.double() ** 2).sum() for x in d))
            if float(norm) == 0.0:
                return torch.zeros_like(lam)
            eps = self.eps_scale / float(norm)
            out = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, b, x in zip(params, backup, d):
                        p.copy_(b + sign * eps * x)
                    out.append(self._losses(loss_fn, train_batch).detach())
            return -alpha * (out[0] - out[1]) / (2 * eps)
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup):
                    p.copy_(b)

    def step(self, loss_fn: LossFn, train_batch: Any, val_batch: Any, alpha: float) -> torch.Tensor:
        """One Adam step on the weights; returns the new ``lambdas`` (detached) and logs them in ``history``."""
        hyper = self.hypergradient(loss_fn, train_batch, val_batch, alpha)
        self.optimizer.zero_grad()
        self.lambdas.grad = hyper.to(self.lambdas)
        self.optimizer.step()
        self.history.append(self.lambdas.detach().tolist())
        return self.lambdas.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        return {"lambdas": self.lambdas.detach().clone(), "optimizer": self.optimizer.state_dict(),
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.lambdas.copy_(state["lambdas"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state.get("history", []))
