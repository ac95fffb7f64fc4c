"""Tests for kit.diffusion.solvers: convergence orders against the exact Gaussian PF-ODE solution, trajectories,
NFE accounting, determinism and bad input.

The reference is computed here with numpy: for data N(mu, U diag(lam) U^T) the VE probability-flow ODE
dx/dsigma = (x - D(x, sigma)) / sigma has the solution
x(s1) = mu + U diag(sqrt((lam + s1^2) / (lam + s0^2))) U^T (x(s0) - mu).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq

from kit.diffusion.solvers import (
    SOLVERS,
    CountingDenoiser,
    check_sigmas,
    sample,
    solver_nfe,
    steps_for_nfe,
)
from kit.diffusion.solvers_multistep import deis_coefficients, phi

torch.set_num_threads(1)

# --- the Gaussian test problem (d = 4, non-isotropic, mean != 0) -------------------------------------------
_RNG = np.random.default_rng(0)
_U, _ = np.linalg.qr(_RNG.standard_normal((4, 4)))
LAM = np.array([0.02, 0.1, 0.5, 2.0])
MU = np.array([0.5, -1.0, 0.3, 1.2])
COV = _U @ np.diag(LAM) @ _U.T
Z = _RNG.standard_normal((8, 4))


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """D(x, sigma) = mu + C (C + sigma^2 I)^-1 (x - mu), built from an eigendecomposition of C done here."""
    lam, u = np.linalg.eigh(COV)
    u_t, lam_t, mu_t = (torch.tensor(a, dtype=x.dtype) for a in (u, lam, MU))
    s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1) ** 2
    return mu_t + (((x - mu_t) @ u_t) * lam_t / (lam_t + s2)) @ u_t.T


def exact_ode(x0: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """Return the exact PF-ODE solution at s1 from x0 [B, d] at s0 (numpy eigendecomposition)."""
    lam, u = np.linalg.eigh(COV)
    return MU + (((x0 - MU) @ u) * np.sqrt((lam + s1**2) / (lam + s0**2))) @ u.T


def edm_grid(n: int, s_max: float = 80.0, s_min: float = 0.002, rho: float = 7.0) -> np.ndarray:
    """EDM rho-schedule with n + 1 points (Karras et al. 2022, Eq. 5), written out here."""
    t = np.arange(n + 1) / n
    return (s_max ** (1 / rho) + t * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho


def end_error(solver: str, grid: np.ndarray, **options) -> float:
    """Return max |x_end - exact| over the batch for one solve on ``grid``."""
    x0 = grid[0] * Z
    out = sample(gaussian_denoiser, torch.tensor(x0), torch.tensor(grid), solver, **options).numpy()
    return float(np.abs(out - exact_ode(x0, grid[0], grid[-1])).max())


# --- convergence orders --------------------------------------------------------------------------------------
# Observed order log2(err(n) / err(2n)) at the finest pair n = 128 -> 256 on the EDM rho=7 grid 80 -> 0.002,
# as measured when this file was written (float64, this Gaussian): (expected order, measured).
# Notes:
# - multistep solvers start with an Euler step (local error O(h^2)), which asymptotically caps every
#   Euler-started multistep method at global order 2. At sigma_max = 80 the start-up happens where D is almost
#   constant (dD/dlambda ~ lam / sigma), so the start-up error is far below each method's own error for these n
#   and the nominal order shows; starting at sigma_max = 3 instead makes ipndm and deis(4) drop to ~2.
# - ipndm uses fixed uniform-step Adams-Bashforth weights. On a smoothly graded grid h_{i-1}/h_i = 1 + O(1/n),
#   so even AB2's weights integrate a linear eps only up to O(h^2 / n) = O(h^3) per step: global order 2, not 4.
#   On a uniform-in-sigma grid it shows ~4 (IPNDM_UNIFORM_ORDER below).
# - dpmpp3m with taylor_3m=False is the DPM-Solver / diffusers "3M" weighting of the second divided difference
#   (half the Taylor weight), which measures as order 2.
# - unipc with max_order p has order p + 1 (the corrector adds one).
CONVERGENCE_ORDERS = {
    ("euler", ()): (1, 0.99),
    ("heun", ()): (2, 2.01),
    ("dpm2", ()): (2, 2.01),
    ("ipndm", ()): (2, 2.01),
    ("dpmpp2m", ()): (2, 2.02),
    ("dpmpp3m", ()): (3, 3.01),
    ("dpmpp3m", (("taylor_3m", False),)): (2, 1.90),
    ("unipc", ()): (4, 4.01),
    ("unipc", (("max_order", 2),)): (3, 3.01),
    ("deis", ()): (3, 2.89),
    ("deis", (("max_order", 4),)): (4, 3.78),
}
CONVERGENCE_STEPS = (32, 64, 128, 256)
# ipndm on a uniform-in-sigma grid 40 -> 2, n = 128, 256, 512: measured 3.63 then 3.82 at the finest pair.
IPNDM_UNIFORM_ORDER = (4, 3.82)
ORDER_TOLERANCE = 0.35


def observed_orders(errors: list[float]) -> np.ndarray:
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.parametrize(
    "key", list(CONVERGENCE_ORDERS), ids=lambda k: k[0] + "".join(f"-{v}" for _, v in k[1])
)
def test_convergence_order_on_gaussian(key):
    solver, options = key
    expected, _measured = CONVERGENCE_ORDERS[key]
    errors = [end_error(solver, edm_grid(n), **dict(options)) for n in CONVERGENCE_STEPS]
    orders = observed_orders(errors)
    assert all(np.diff(errors) < 0), errors
    assert abs(orders[-1] - expected) < ORDER_TOLERANCE, (orders, errors)


def test_ipndm_reaches_fourth_order_on_uniform_grid():
    errors = [end_error("ipndm", np.linspace(40.0, 2.0, n + 1)) for n in (128, 256, 512)]
    orders = observed_orders(errors)
    assert abs(orders[-1] - IPNDM_UNIFORM_ORDER[0]) < ORDER_TOLERANCE, (orders, errors)


def test_every_solver_has_an_order_entry():
    assert {k[0] for k in CONVERGENCE_ORDERS} == set(SOLVERS)


# --- exact small cases checked by hand ---------------------------------------------------------------------
def naive_euler(x: torch.Tensor, grid: np.ndarray) -> torch.Tensor:
    for s, s_next in zip(grid[:-1], grid[1:]):
        x = x + (s_next - s) * (x - gaussian_denoiser(x, torch.tensor([s]))) / s
    return x


@pytest.mark.parametrize("solver", ["euler", "dpmpp2m", "dpmpp3m", "unipc", "deis"])
def test_first_order_cases_equal_euler(solver):
    # 2 steps with lower_order_final use orders (1, 1); DPM++(1) = DDIM = Euler in VE form. One UniPC step has
    # no corrector and its order-1 predictor is DDIM as well.
    grid = edm_grid(2, 10.0, 0.1)
    n_steps = 1 if solver == "unipc" else 2
    grid = grid[: n_steps + 1]
    x = torch.tensor(grid[0] * Z)
    torch.testing.assert_close(sample(gaussian_denoiser, x, torch.tensor(grid), solver), naive_euler(x, grid))


def test_lower_order_final_only_acts_on_short_schedules():
    x = torch.tensor(10.0 * Z)
    short, long_ = torch.tensor(edm_grid(4, 10.0, 0.1)), torch.tensor(edm_grid(20, 10.0, 0.1))
    a = sample(gaussian_denoiser, x, short, "dpmpp3m", lower_order_final=True)
    b = sample(gaussian_denoiser, x, short, "dpmpp3m", lower_order_final=False)
    assert not torch.allclose(a, b)
    c = sample(gaussian_denoiser, x, long_, "dpmpp3m", lower_order_final=True)
    d = sample(gaussian_denoiser, x, long_, "dpmpp3m", lower_order_final=False)
    assert torch.equal(c, d)


def test_heun_is_trapezoid_and_exact_for_linear_eps():
    # D(x, sigma) = x - sigma (a + b sigma) gives eps = a + b sigma, so x_end = x0 + int eps dsigma exactly;
    # Heun's trapezoid rule integrates a linear integrand exactly, Euler does not.
    a, b = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([0.05, 0.1], dtype=torch.float64)
    denoiser = lambda x, s: x - s[:, None] * (a + b * s[:, None])
    grid = edm_grid(5, 10.0, 0.1)
    x = torch.zeros(3, 2, dtype=torch.float64)
    expected = x + a * (grid[-1] - grid[0]) + b * (grid[-1] ** 2 - grid[0] ** 2) / 2
    torch.testing.assert_close(sample(denoiser, x, torch.tensor(grid), "heun"), expected)
    assert not torch.allclose(sample(denoiser, x, torch.tensor(grid), "euler"), expected)


def test_phi_functions_match_closed_forms():
    for z in (-0.3, -2.5, 1.7):
        assert phi(0, z) == pytest.approx(math.exp(z), rel=1e-14)
        assert phi(1, z) == pytest.approx(math.expm1(z) / z, rel=1e-13)
        assert phi(2, z) == pytest.approx((math.exp(z) - 1 - z) / z**2, rel=1e-12)
        assert phi(3, z) == pytest.approx((math.exp(z) - 1 - z - z**2 / 2) / z**3, rel=1e-10)
    assert phi(3, -1e-8) == pytest.approx(1 / 6, rel=1e-7)


def lagrange_basis(t: float, knots: list[float], j: int) -> float:
    return math.prod((t - knots[k]) / (knots[j] - knots[k]) for k in range(len(knots)) if k != j)


def test_deis_coefficients_match_brute_force_vp_time_integral():
    # Independent: parametrise by VP time tau with sigma(tau) = sqrt(exp(beta_d tau^2/2 + beta_min tau) - 1),
    # tau_i found by root finding, and integrate l_j(tau) dsigma/dtau over tau with scipy.quad.
    beta_min, beta_d = 0.1, 19.9

    def sig(t: float) -> float:
        return math.sqrt(math.expm1(0.5 * beta_d * t * t + beta_min * t))

    def dsig(t: float) -> float:
        return (beta_d * t + beta_min) * (1 + sig(t) ** 2) / (2 * sig(t))

    grid = list(edm_grid(6, 80.0, 0.002))
    taus = [brentq(lambda t, s=s: sig(t) - s, 1e-9, 1.0, xtol=1e-15) for s in grid]
    coefficients = deis_coefficients(grid, max_order=4, lower_order_final=False)
    for i in (0, 2, 5):
        knots = [taus[i - k] for k in range(min(4, i + 1))]
        assert len(coefficients[i]) == len(knots)
        for j in range(len(knots)):
            integrand = lambda t, knots=knots, j=j: lagrange_basis(t, knots, j) * dsig(t)
            ref = -quad(integrand, taus[i + 1], taus[i], epsabs=1e-13, limit=200)[0]
            assert coefficients[i][j] == pytest.approx(ref, rel=1e-7, abs=1e-10)
        assert sum(coefficients[i]) == pytest.approx(grid[i + 1] - grid[i], rel=1e-12)


# --- trajectories, callback, determinism, dtype ------------------------------------------------------------
def image_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The Gaussian denoiser applied to x [B, 2, 2] (flattened to d = 4)."""
    return gaussian_denoiser(x.reshape(x.shape[0], 4), sigma).reshape(x.shape)


@pytest.mark.parametrize("solver", SOLVERS)
def test_trajectory_shapes_and_rows(solver):
    n = 5
    grid = torch.tensor(edm_grid(n, 10.0, 0.1))
    x = torch.tensor(10.0 * Z[:3]).reshape(3, 2, 2)
    x_end, xs, denoised = sample(image_denoiser, x, grid, solver, return_trajectory=True)
    assert xs.shape == (n + 1, 3, 2, 2) and denoised.shape == (n, 3, 2, 2)
    assert torch.equal(xs[0], x) and torch.equal(xs[-1], x_end)
    assert torch.equal(x_end, sample(image_denoiser, x, grid, solver))
    rows = [0] if solver == "unipc" else [0, 2, n - 1]
    for i in rows:
        torch.testing.assert_close(denoised[i], image_denoiser(xs[i], grid[i].repeat(3)), rtol=0, atol=1e-14)
    if solver == "unipc":  # later rows are D at the predicted point, which the corrector moved slightly
        for i in range(1, n):
            gap = (denoised[i] - image_denoiser(xs[i], grid[i].repeat(3))).abs().max().item()
            assert 0 < gap < 0.1


@pytest.mark.parametrize("solver", ["heun", "ipndm", "unipc"])
def test_callback_sees_every_step(solver):
    grid = torch.tensor(edm_grid(4, 10.0, 0.1))
    x = torch.tensor(10.0 * Z)
    seen = []
    _, xs, denoised = sample(
        gaussian_denoiser,
        x,
        grid,
        solver,
        return_trajectory=True,
        callback=lambda i, x_i, d_i, s: seen.append((i, x_i, d_i, s)),
    )
    assert [s[0] for s in seen] == list(range(4))
    assert [s[3] for s in seen] == pytest.approx(grid[:-1].tolist())
    for i, x_i, d_i, _ in seen:
        assert torch.equal(x_i, xs[i]) and torch.equal(d_i, denoised[i])


@pytest.mark.parametrize("solver", SOLVERS)
def test_seeded_determinism_and_dtype(solver):
    grid = torch.tensor(edm_grid(6, 10.0, 0.1), dtype=torch.float32)
    runs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(123)
        x = 10.0 * torch.randn(4, 4, generator=gen)
        runs.append(sample(gaussian_denoiser, x, grid, solver))
    assert runs[0].dtype == torch.float32
    assert torch.equal(runs[0], runs[1])


def test_progress_bar_gives_same_result():
    grid = torch.tensor(edm_grid(3, 10.0, 0.1))
    x = torch.tensor(10.0 * Z)
    assert torch.equal(
        sample(gaussian_denoiser, x, grid, "dpmpp2m", progress=True),
        sample(gaussian_denoiser, x, grid, "dpmpp2m"),
    )


# --- NFE accounting ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_call_count_equals_solver_nfe(solver, n):
    counter = CountingDenoiser(gaussian_denoiser)
    sample(counter, torch.tensor(10.0 * Z), torch.tensor(edm_grid(n, 10.0, 0.1)), solver)
    expected = 2 * n if solver in ("heun", "dpm2") else n
    assert counter.calls == expected == solver_nfe(solver, n)
    counter.reset()
    assert counter.calls == 0


def test_steps_for_nfe():
    assert steps_for_nfe("heun", 10) == 5 and steps_for_nfe("dpm2", 2) == 1
    assert steps_for_nfe("ipndm", 7) == 7 and steps_for_nfe("euler", 1) == 1
    for solver in SOLVERS:
        assert solver_nfe(solver, steps_for_nfe(solver, 6)) == 6
    with pytest.raises(ValueError, match="nfe must be even"):
        steps_for_nfe("heun", 5)
    with pytest.raises(ValueError, match="nfe must be a positive int"):
        steps_for_nfe("euler", 0)
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        solver_nfe("euler", 0)


# --- bad input -------------------------------------------------------------------------------------------------
def test_bad_solver_and_options():
    grid, x = torch.tensor(edm_grid(3, 10.0, 0.1)), torch.tensor(10.0 * Z)
    with pytest.raises(ValueError, match="solver must be one of euler, heun"):
        sample(gaussian_denoiser, x, grid, "rk45")
    with pytest.raises(ValueError, match="solver must be one of"):
        steps_for_nfe("lms", 4)
    with pytest.raises(ValueError, match="max_order for ipndm must be an int in 1..4"):
        sample(gaussian_denoiser, x, grid, "ipndm", max_order=5)
    with pytest.raises(ValueError, match="max_order for dpmpp2m"):
        sample(gaussian_denoiser, x, grid, "dpmpp2m", max_order=3)
    with pytest.raises(ValueError, match="max_order is only used by multistep"):
        sample(gaussian_denoiser, x, grid, "heun", max_order=2)
    with pytest.raises(ValueError, match="taylor_3m"):
        sample(gaussian_denoiser, x, grid, "dpmpp2m", taylor_3m=False)


@pytest.mark.parametrize(
    "sigmas",
    [
        [[80.0, 1.0]],
        [80.0],
        [1.0, 2.0, 0.5],
        [80.0, 1.0, 1.0],
        [80.0, 0.0],
        [80.0, -1.0],
        [80.0, float("nan")],
    ],
    ids=["2d", "one-value", "increasing", "repeated", "zero", "negative", "nan"],
)
def test_bad_sigmas(sigmas):
    with pytest.raises(ValueError, match="sigmas"):
        sample(gaussian_denoiser, torch.tensor(Z), torch.tensor(sigmas, dtype=torch.float64), "euler")
    with pytest.raises(ValueError, match="sigmas"):
        check_sigmas(sigmas)


def test_bad_x_and_denoiser_output():
    grid = torch.tensor(edm_grid(3, 10.0, 0.1))
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        sample(gaussian_denoiser, torch.ones(4, 4, dtype=torch.int64), grid)
    with pytest.raises(ValueError, match="denoiser must return a tensor of shape"):
        sample(lambda x, s: x[:, :2], torch.tensor(Z), grid)
    with pytest.raises(ValueError, match="non-finite"):
        sample(lambda x, s: x * float("nan"), torch.tensor(Z), grid)


@pytest.mark.parametrize("solver", SOLVERS)
def test_step_hook_runs_before_each_evaluation_and_none_changes_nothing(solver):
    grid = torch.tensor(edm_grid(6), dtype=torch.float64)
    x = torch.tensor(Z, dtype=torch.float64) * grid[0]
    seen, order = [], []

    def den(xx, s):
        order.append("D")
        return gaussian_denoiser(xx, s)

    def hook(i, x_i, s):
        seen.append((i, s))
        order.append(f"hook{i}")
        return None

    plain = sample(gaussian_denoiser, x, grid, solver=solver)
    hooked = sample(den, x, grid, solver=solver, step_hook=hook)
    assert torch.equal(plain, hooked)
    assert seen == [(i, pytest.approx(float(grid[i]))) for i in range(6)]
    assert order[:2] == ["hook0", "D"]
    with pytest.raises(ValueError, match="step_hook must return None or a tensor of shape"):
        sample(gaussian_denoiser, x, grid, solver=solver, step_hook=lambda i, xx, s: xx[:1])


@pytest.mark.parametrize("solver", ["euler", "heun", "dpm2"])
def test_a_replaced_latent_continues_as_a_run_started_there(solver):
    grid = torch.tensor(edm_grid(8), dtype=torch.float64)
    x = torch.tensor(Z, dtype=torch.float64) * grid[0]
    other = torch.flip(x, dims=[0]) * 0.5

    def hook(i, x_i, s):
        return other if i == 3 else None

    hooked = sample(gaussian_denoiser, x, grid, solver=solver, step_hook=hook)
    fresh = sample(gaussian_denoiser, other, grid[3:], solver=solver)
    torch.testing.assert_close(hooked, fresh, rtol=0, atol=1e-12)


def test_unipc_evaluates_again_at_a_replaced_latent():
    grid = torch.tensor(edm_grid(6), dtype=torch.float64)
    x = torch.tensor(Z, dtype=torch.float64) * grid[0]
    counting = CountingDenoiser(gaussian_denoiser)
    sample(counting, x, grid, solver="unipc", step_hook=lambda i, xx, s: xx.clone() if i == 2 else None)
    base = CountingDenoiser(gaussian_denoiser)
    sample(base, x, grid, solver="unipc")
    assert counting.calls == base.calls + 1
