"""Multistep probability-flow ODE solvers (iPNDM, DPM-Solver++(2M/3M), UniPC, DEIS-tAB) in the VE/EDM form.

Each ``run_*`` function integrates ``dx/dsigma = (x - D(x, sigma)) / sigma`` over a decreasing grid of python
floats, spending one denoiser evaluation per step, and calls ``record(i, x_i, D_i)`` at the start of every step.
They are the back ends of :func:`kit.diffusion.solvers.sample`, which validates the inputs; call that instead.

Notation: ``eps_i = (x_i - D_i) / sigma_i``, ``lambda = -log(sigma)`` (the log-SNR of the VE process, up to a
factor 2), ``g_i = lambda_{i+1} - lambda_i > 0``. All coefficients are computed in python float64 and then
applied to tensors in x's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from kit.diffusion.schedules import vp_time

__all__ = [
    "IPNDM_COEFFICIENTS",
    "LOWER_ORDER_FINAL_MAX_STEPS",
    "phi",
    "step_order",
    "vp_time",
    "deis_coefficients",
    "unipc_rhos",
    "run_ipndm",
    "run_dpmpp",
    "run_unipc",
    "run_deis",
]

Evaluate = Callable[[Tensor, float], Tensor]
Record = Callable[[int, Tensor, Tensor], None]
Before = Callable[[int, Tensor], Tensor]  # (i, x_i) -> x_i to use: the sampler's pre-step hook

# Fixed Adams-Bashforth weights for uniform steps (newest first), used by iPNDM on any grid.
IPNDM_COEFFICIENTS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}

# ``lower_order_final`` only acts on schedules with fewer steps than this (as diffusers' DPM-Solver and DEIS
# schedulers do), so long schedules keep the solver's full asymptotic order.
LOWER_ORDER_FINAL_MAX_STEPS = 15

# VP-SDE (beta_min = 0.1, beta_max = 20) used to define DEIS's time variable tau.
_VP_BETA_MIN = 0.1
_VP_BETA_D = 19.9
_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(32)


def phi(j: int, z: float) -> float:
    """Return phi_j(z) = sum_{m>=0} z^m / (m + j)!  (phi_0 = exp, phi_{j+1}(z) = (phi_j(z) - 1/j!) / z).

    Uses the series for |z| < 1 (no cancellation at small step sizes) and the recurrence otherwise.
    """
    if j < 0:
        raise ValueError(f"j must be >= 0, got {j}")
    if abs(z) < 1.0:
        term = 1.0 / math.factorial(j)
        total = term
        for m in range(1, 40):
            term *= z / (m + j)
            total += term
        return total
    value = math.exp(z)
    for k in range(j):
        value = (value - 1.0 / math.factorial(k)) / z
    return value


def step_order(i: int, n_steps: int, max_order: int, lower_order_final: bool) -> int:
    """Return the order used at step i (0-based) of n_steps: warm-up min(max_order, i + 1), and with
    ``lower_order_final`` (only when n_steps < LOWER_ORDER_FINAL_MAX_STEPS) also at most n_steps - i."""
    order = min(max_order, i + 1)
    if lower_order_final and n_steps < LOWER_ORDER_FINAL_MAX_STEPS:
        order = min(order, n_steps - i)
    return order


def _combine(x: Tensor, terms: Iterable[tuple[float, Tensor]]) -> Tensor:
    """Return x + sum_k c_k * t_k."""
    out = x
    for c, t in terms:
        out = out + c * t
    return out


def run_ipndm(
    evaluate: Evaluate,
    x: Tensor,
    sigmas: list[float],
    record: Record,
    steps: Iterable[int],
    max_order: int = 4,
    lower_order_final: bool = False,
    before: Before | None = None,
) -> Tensor:
    """Return x at sigmas[-1] from iPNDM: x + h * sum_j a_j eps_{i-j} with the fixed uniform-step
    Adams-Bashforth weights (Zhang & Chen, arXiv:2204.13902), warm-up Euler -> AB2 -> AB3 -> AB4."""
    n = len(sigmas) - 1
    eps_history: list[Tensor] = []
    for i in steps:
        x = x if before is None else before(i, x)
        s, s_next = sigmas[i], sigmas[i + 1]
        d = evaluate(x, s)
        record(i, x, d)
        eps_history.insert(0, (x - d) / s)
        del eps_history[max_order:]
        order = step_order(i, n, max_order, lower_order_final)
        h = s_next - s
        x = _combine(x, ((h * a, e) for a, e in zip(IPNDM_COEFFICIENTS[order], eps_history)))
    return x


def run_dpmpp(
    evaluate: Evaluate,
    x: Tensor,
    sigmas: list[float],
    record: Record,
    steps: Iterable[int],
    max_order: int = 2,
    lower_order_final: bool = True,
    taylor_3m: bool = True,
    before: Before | None = None,
) -> Tensor:
    """Return x at sigmas[-1] from multistep DPM-Solver++ (data prediction, arXiv:2211.01095) of order <= 3.

    Integrates x_{i+1} = (s_{i+1}/s_i) x_i + s_{i+1} int exp(lambda) D dlambda exactly for the Newton
    polynomial through the last ``order`` denoised values in lambda (g = lambda_{i+1} - lambda_i):

    - order 1 (DDIM): x_{i+1} = (s_{i+1}/s_i) x_i + (1 - e^{-g}) D_i;
    - order 2 (Algorithm 2 of the paper): adds (1 - e^{-g}) D1 / 2, D1 = (D_i - D_{i-1}) g / g_{i-1};
    - order 3: x_{i+1} = (s_{i+1}/s_i) x_i + g phi_1(-g) D_i + g phi_2(-g) D1 + 2 g phi_3(-g) D2 with D1 ~ g D'
      and D2 ~ g^2 D''/2 the scaled first and second divided differences at lambda_i.

    The DPM-Solver / diffusers "3M" code weighs D2 by g phi_3(-g), half the Taylor weight, which leaves a
    g^3 D'' / 12 local error, i.e. a formally second-order method (``taylor_3m=False`` reproduces it).
    """
    n = len(sigmas) - 1
    lam = [-math.log(s) for s in sigmas]
    d_history: list[Tensor] = []
    for i in steps:
        x = x if before is None else before(i, x)
        s, s_next = sigmas[i], sigmas[i + 1]
        d = evaluate(x, s)
        record(i, x, d)
        d_history.insert(0, d)
        del d_history[max_order:]
        order = step_order(i, n, max_order, lower_order_final)
        g = lam[i + 1] - lam[i]
        terms = [(g * phi(1, -g), d_history[0])]
        if order >= 2:
            r0 = (lam[i] - lam[i - 1]) / g
            d1_0 = (d_history[0] - d_history[1]) / r0
            if order == 2:
                terms.append((0.5 * g * phi(1, -g), d1_0))
            else:
                r1 = (lam[i - 1] - lam[i - 2]) / g
                d1_1 = (d_history[1] - d_history[2]) / r1
                d2 = (d1_0 - d1_1) / (r0 + r1)
                terms.append((g * phi(2, -g), d1_0 + r0 * d2))
                terms.append(((2.0 if taylor_3m else 1.0) * g * phi(3, -g), d2))
        x = _combine((s_next / s) * x, terms)
    return x


def unipc_rhos(g: float, rks: list[float], order: int) -> tuple[list[float], list[float]]:
    """Return (rho_predictor [order - 1], rho_corrector [order]) of UniPC with B(h) = expm1(-h) (bh2).

    ``g`` is the step in lambda, ``rks`` the order - 1 ratios (lambda_{i-k} - lambda_i) / g (negative).
    Solves sum_k rho_k r_k^(m-1) = b_m with b_m = -g phi_{m+1}(-g) m! / B(g) (Zhao et al., arXiv:2302.04867,
    Algorithm 2); like the reference code, order-2 prediction and order-1 correction use rho = 1/2.
    """
    z = -g
    b_h = math.expm1(z)
    b = np.array([z * phi(m + 1, z) * math.factorial(m) / b_h for m in range(1, order + 1)])
    nodes = np.array([*rks, 1.0])
    vander = np.stack([nodes ** (m - 1) for m in range(1, order + 1)])
    if order == 1:
        rho_p: list[float] = []
    elif order == 2:
        rho_p = [0.5]
    else:
        rho_p = np.linalg.solve(vander[:-1, :-1], b[:-1]).tolist()
    rho_c = [0.5] if order == 1 else np.linalg.solve(vander, b).tolist()
    return rho_p, rho_c


def run_unipc(
    evaluate: Evaluate,
    x: Tensor,
    sigmas: list[float],
    record: Record,
    steps: Iterable[int],
    max_order: int = 3,
    lower_order_final: bool = True,
    before: Before | None = None,
) -> Tensor:
    """Return x at sigmas[-1] from UniPC (bh2, data prediction; arXiv:2302.04867).

    Each step: UniP-p predictor to sigma_{i+1}, one evaluation there, then the UniC-p corrector that reuses
    that evaluation (no extra NFE); the corrected x is kept, the evaluation (made at the predicted point)
    enters the history. No corrector after the last step. Accuracy order p + 1 for p = ``max_order``.
    The recorded ``denoised[i]`` (i >= 1) is therefore D at the *predicted* point, not at the kept x_i.
    """
    n = len(sigmas) - 1
    lam = [-math.log(s) for s in sigmas]
    d_history: list[Tensor] = []
    d = None
    for i in steps:
        if before is not None:
            hooked = before(i, x)
            if hooked is not x:  # the corrector's evaluation belongs to the old x: evaluate again
                x, d = hooked, None
        s, s_next = sigmas[i], sigmas[i + 1]
        if d is None:
            d = evaluate(x, s)
        record(i, x, d)
        d_history.insert(0, d)
        del d_history[max_order:]
        order = step_order(i, n, max_order, lower_order_final)
        g = lam[i + 1] - lam[i]
        rks = [(lam[i - k] - lam[i]) / g for k in range(1, order)]
        rho_p, rho_c = unipc_rhos(g, rks, order)
        d1s = [(d_history[k] - d_history[0]) / rks[k - 1] for k in range(1, order)]
        b_h = math.expm1(-g)
        base = (s_next / s) * x - b_h * d_history[0]
        x_pred = _combine(base, ((-b_h * r, d1) for r, d1 in zip(rho_p, d1s)))
        if i == n - 1:
            x = x_pred
            break
        d = evaluate(x_pred, s_next)
        corr = [*zip(rho_c[:-1], d1s), (rho_c[-1], d - d_history[0])]
        x = _combine(base, ((-b_h * r, d1) for r, d1 in corr))
    return x


def _vp_tau(sigma: np.ndarray | float) -> np.ndarray:
    """The VP-SDE time tau(sigma) in (0, 1] (``schedules.vp_time`` at DEIS's betas) as a numpy array."""
    return vp_time(torch.as_tensor(np.asarray(sigma, dtype=np.float64)), _VP_BETA_D, _VP_BETA_MIN).numpy()


def deis_coefficients(sigmas: list[float], max_order: int, lower_order_final: bool) -> list[list[float]]:
    """Return, per step i, the DEIS-tAB weights C_i [order_i] (newest first) with x_{i+1} = x_i + sum_j C_ij eps_{i-j}.

    C_ij = int_{s_i}^{s_{i+1}} l_j(tau(sigma)) dsigma, l_j the Lagrange basis over tau_i, ..., tau_{i-order+1}
    (Zhang & Chen, arXiv:2204.13902, tAB-DEIS in VP time). Integrated with 32-point Gauss-Legendre in sigma,
    where the integrand is smooth (in tau, dsigma/dtau ~ tau^(-1/2) near 0 would spoil quadrature).
    """
    n = len(sigmas) - 1
    tau = _vp_tau(sigmas)
    nodes, weights = _GAUSS_LEGENDRE
    coefficients = []
    for i in range(n):
        order = step_order(i, n, max_order, lower_order_final)
        a, b = sigmas[i], sigmas[i + 1]
        quad_sigma = a + (b - a) * (nodes + 1.0) / 2.0
        quad_weight = weights * (b - a) / 2.0
        quad_tau = _vp_tau(quad_sigma)
        knots = tau[i - np.arange(order)]
        row = []
        for j in range(order):
            basis = np.ones_like(quad_tau)
            for k in range(order):
                if k != j:
                    basis *= (quad_tau - knots[k]) / (knots[j] - knots[k])
            row.append(float(np.sum(quad_weight * basis)))
        coefficients.append(row)
    return coefficients


def run_deis(
    evaluate: Evaluate,
    x: Tensor,
    sigmas: list[float],
    record: Record,
    steps: Iterable[int],
    max_order: int = 3,
    lower_order_final: bool = True,
    before: Before | None = None,
) -> Tensor:
    """Return x at sigmas[-1] from DEIS-tAB with ``max_order`` eps values per step (see deis_coefficients)."""
    coefficients = deis_coefficients(sigmas, max_order, lower_order_final)
    eps_history: list[Tensor] = []
    for i in steps:
        x = x if before is None else before(i, x)
        d = evaluate(x, sigmas[i])
        record(i, x, d)
        eps_history.insert(0, (x - d) / sigmas[i])
        del eps_history[max_order:]
        x = _combine(x, zip(coefficients[i], eps_history))
    return x
