"""Sigma schedules: endpoints, monotonicity and values against formulas written here."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from kit.diffusion.schedules import (
    SCHEDULES,
    edm_sigmas,
    get_schedule,
    logsnr_sigmas,
    time_quadratic_sigmas,
    time_uniform_sigmas,
    vp_sigma,
    vp_time,
)


def _vp_sigma_np(t, beta_d=19.9, beta_min=0.1):
    return math.sqrt(math.exp(0.5 * beta_d * t * t + beta_min * t) - 1.0)


def _vp_time_np(sigma, beta_d=19.9, beta_min=0.1):
    """Invert sigma(t) by root finding (independent of the closed-form inverse)."""
    return brentq(lambda t: _vp_sigma_np(t, beta_d, beta_min) - sigma, 1e-12, 5.0, xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("n", [1, 2, 6, 60])
def test_endpoints_length_monotone(name, n):
    s = get_schedule(name, n, sigma_min=0.002, sigma_max=80.0)
    assert s.dtype == torch.float64 and s.shape == (n + 1,)
    assert s[0].item() == 80.0 and s[-1].item() == 0.002
    assert bool((s[1:] < s[:-1]).all())


def test_names():
    assert set(SCHEDULES) == {"edm", "logsnr", "time_uniform", "time_quadratic"}


def test_edm_values_at_known_points():
    s = edm_sigmas(60)
    a, b = 80.0 ** (1 / 7), 0.002 ** (1 / 7)
    for i in (1, 19, 27, 33, 39, 45, 59):
        assert s[i].item() == pytest.approx((a + i / 60 * (b - a)) ** 7, rel=1e-12)
    # the 6-step schedule quoted in the GITS README sits on this grid
    np.testing.assert_allclose(s[[19, 27, 33, 39, 45]].numpy(), [10.98, 3.88, 1.58, 0.567, 0.170], rtol=4e-3)
    assert edm_sigmas(4, rho=1.0)[1].item() == pytest.approx(80 - (80 - 0.002) / 4, rel=1e-12)


def test_logsnr_uniform_in_log_sigma():
    s = logsnr_sigmas(8, sigma_min=0.01, sigma_max=10.0)
    steps = np.diff(np.log(s.numpy()))
    np.testing.assert_allclose(steps, np.full(8, math.log(0.001) / 8), rtol=1e-12)


def test_vp_time_inverts_vp_sigma():
    for sigma in (0.002, 0.5, 3.0, 80.0):
        assert vp_time(sigma).item() == pytest.approx(_vp_time_np(sigma), rel=1e-10)
        assert vp_sigma(_vp_time_np(sigma)).item() == pytest.approx(sigma, rel=1e-9)
    assert vp_sigma(1.0).item() == pytest.approx(math.sqrt(math.exp(10.05) - 1), rel=1e-12)


def test_time_uniform_and_quadratic_against_root_finding():
    n = 5
    t_hi, t_lo = _vp_time_np(80.0), _vp_time_np(0.002)
    want_u = [_vp_sigma_np(t) for t in np.linspace(t_hi, t_lo, n + 1)]
    want_q = [_vp_sigma_np(r * r) for r in np.linspace(math.sqrt(t_hi), math.sqrt(t_lo), n + 1)]
    np.testing.assert_allclose(time_uniform_sigmas(n).numpy(), want_u, rtol=1e-9)
    np.testing.assert_allclose(time_quadratic_sigmas(n).numpy(), want_q, rtol=1e-9)
    # custom beta parameters are passed through get_schedule
    t_hi2, t_lo2 = _vp_time_np(10.0, 10.0, 0.5), _vp_time_np(0.01, 10.0, 0.5)
    want = [_vp_sigma_np(t, 10.0, 0.5) for t in np.linspace(t_hi2, t_lo2, 4)]
    got = get_schedule("time_uniform", 3, sigma_min=0.01, sigma_max=10.0, beta_d=10.0, beta_min=0.5)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)


def test_get_schedule_passes_kwargs():
    assert torch.equal(get_schedule("edm", 10, rho=3.0), edm_sigmas(10, rho=3.0))
    a, b = 5.0 ** (1 / 3), 0.1 ** (1 / 3)
    got = get_schedule("edm", 4, sigma_min=0.1, sigma_max=5.0, rho=3.0)
    np.testing.assert_allclose(got.numpy(), (a + np.arange(5) / 4 * (b - a)) ** 3, rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown schedule name 'karras'.*edm, logsnr, time_uniform"):
        get_schedule("karras", 10)
    for n in (0, -3):
        with pytest.raises(ValueError, match="n .*must be an int >= 1"):
            get_schedule("edm", n)
    with pytest.raises(ValueError, match="n .*must be an int"):
        edm_sigmas(2.5)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        logsnr_sigmas(5, sigma_min=1.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        edm_sigmas(5, sigma_min=0.0)
    with pytest.raises(ValueError, match="rho"):
        edm_sigmas(5, rho=0.0)
    with pytest.raises(ValueError, match="beta_d"):
        time_uniform_sigmas(5, beta_d=-1.0)
