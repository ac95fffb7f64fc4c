"""Exact denoisers against direct numpy formulas, brute force and naive softmax."""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from kit.diffusion.denoisers import (
    EmpiricalDenoiser,
    GaussianDenoiser,
    GaussianMixtureDenoiser,
    as_sigma_batch,
)

torch.set_num_threads(1)


def _spd(d, rng, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T + (0.0 if rank else 0.1) * np.eye(d)


# ---------------------------------------------------------------- as_sigma_batch


def test_as_sigma_batch_forms():
    x = torch.zeros(3, 2, dtype=torch.float64)
    for sigma in (0.5, torch.tensor(0.5), torch.full((3,), 0.5, dtype=torch.float32), np.float32(0.5)):
        s = as_sigma_batch(x, sigma)
        assert s.shape == (3,) and s.dtype == torch.float64
        assert torch.equal(s, torch.full((3,), 0.5, dtype=torch.float64))
    s = as_sigma_batch(x, torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(s, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert as_sigma_batch(x, 0.0, allow_zero=True).eq(0).all()


@pytest.mark.parametrize(
    "sigma, match",
    [
        (0.0, "sigma must be > 0"),
        (-1.0, "sigma must be > 0"),
        (float("nan"), "sigma must be finite"),
        (float("inf"), "sigma must be finite"),
        (torch.tensor([1.0, float("nan"), 1.0]), "sigma must be finite"),
        (torch.tensor([1.0, 0.0, 1.0]), "sigma must be > 0"),
        (torch.ones(2), r"sigma must be .*shape \[B\] = \[3\]"),
        (torch.ones(3, 1), "sigma must be"),
        ("1.0", "sigma must be a float"),
    ],
)
def test_as_sigma_batch_errors(sigma, match):
    with pytest.raises(ValueError, match=match):
        as_sigma_batch(torch.zeros(3, 2), sigma)


def test_as_sigma_batch_underflow_in_dtype():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        as_sigma_batch(torch.zeros(2, 2, dtype=torch.float16), 1e-9)


# ---------------------------------------------------------------- Gaussian


def _gaussian_numpy(x, mean, cov, sigmas):
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        out[b] = mean + cov @ np.linalg.solve(cov + sigmas[b] ** 2 * np.eye(len(mean)), x[b] - mean)
    return out


@pytest.mark.parametrize("rank", [None, 2])  # full rank and a singular covariance
def test_gaussian_matches_numpy(rank):
    rng = np.random.default_rng(0)
    d = 6
    mean, cov = rng.standard_normal(d), _spd(d, rng, rank)
    x = rng.standard_normal((5, d)) * 3
    sigmas = np.array([0.002, 0.1, 1.0, 7.0, 80.0])
    den = GaussianDenoiser(torch.tensor(mean), torch.tensor(cov))
    got = den(torch.tensor(x).reshape(5, 2, 3), torch.tensor(sigmas))
    assert got.shape == (5, 2, 3) and got.dtype == torch.float64
    np.testing.assert_allclose(got.reshape(5, d).numpy(), _gaussian_numpy(x, mean, cov, sigmas), atol=1e-9)


def test_gaussian_float32_dtype_and_scalar_sigma():
    rng = np.random.default_rng(1)
    mean, cov = rng.standard_normal(4), _spd(4, rng)
    den = GaussianDenoiser(torch.tensor(mean), torch.tensor(cov))
    x = rng.standard_normal((3, 4))
    got = den(torch.tensor(x, dtype=torch.float32), 0.7)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), _gaussian_numpy(x, mean, cov, [0.7] * 3), rtol=1e-5, atol=1e-5)


def test_gaussian_ode_solution_satisfies_ode():
    rng = np.random.default_rng(2)
    d = 5
    den = GaussianDenoiser(torch.tensor(rng.standard_normal(d)), torch.tensor(_spd(d, rng)))
    x_start = torch.tensor(rng.standard_normal((4, d)) * 10)
    s_from = 10.0
    for s in (5.0, 1.0, 0.2):
        h = 1e-5 * s
        x_s = den.ode_solution(x_start, s_from, s)
        dx_ds = (den.ode_solution(x_start, s_from, s + h) - den.ode_solution(x_start, s_from, s - h)) / (2 * h)
        rhs = (x_s - den(x_s, s)) / s  # probability-flow ODE dx/dsigma = (x - D) / sigma
        torch.testing.assert_close(dx_ds, rhs, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(den.ode_solution(x_start, 3.0, 3.0), x_start)


def test_gaussian_ode_solution_to_zero_matches_numpy():
    rng = np.random.default_rng(3)
    d = 4
    mean, cov = rng.standard_normal(d), _spd(d, rng)
    lam, u = np.linalg.eigh(cov)
    x = rng.standard_normal((2, d)) * 5
    want = mean + (x - mean) @ u @ np.diag(np.sqrt(lam / (lam + 25.0))) @ u.T
    got = GaussianDenoiser(torch.tensor(mean), torch.tensor(cov)).ode_solution(torch.tensor(x), 5.0, 0.0)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)
    with pytest.raises(ValueError, match="sigma"):
        GaussianDenoiser(torch.tensor(mean), torch.tensor(cov)).ode_solution(torch.tensor(x), 0.0, 1.0)


def test_gaussian_sample_moments_and_determinism():
    rng = np.random.default_rng(4)
    mean, cov = rng.standard_normal(3), _spd(3, rng)
    den = GaussianDenoiser(torch.tensor(mean), torch.tensor(cov))
    a = den.sample(20000, torch.Generator().manual_seed(0))
    b = den.sample(20000, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (20000, 3)
    np.testing.assert_allclose(a.mean(0).numpy(), mean, atol=0.06)
    np.testing.assert_allclose(np.cov(a.numpy().T), cov, atol=0.1 * np.abs(cov).max())


def test_gaussian_bad_input():
    with pytest.raises(ValueError, match="cov must have shape"):
        GaussianDenoiser(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match="positive semi-definite"):
        GaussianDenoiser(torch.zeros(2), torch.diag(torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianDenoiser(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="trailing size d = 2"):
        GaussianDenoiser(torch.zeros(2), torch.eye(2))(torch.zeros(4, 3), 1.0)


# ---------------------------------------------------------------- Gaussian mixture


def _gmm_numpy(x, weights, means, covs, sigma):
    k, d = means.shape
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        logits, posts = [], []
        for j in range(k):
            c = covs[j] + sigma**2 * np.eye(d)
            z = x[b] - means[j]
            _, logdet = np.linalg.slogdet(c)
            logits.append(np.log(weights[j] / weights.sum()) - 0.5 * (z @ np.linalg.solve(c, z) + logdet
                                                                       + d * np.log(2 * np.pi)))
            posts.append(means[j] + covs[j] @ np.linalg.solve(c, z))
        r = np.exp(np.array(logits) - logsumexp(logits))
        out[b] = r @ np.array(posts)
    return out


@pytest.mark.parametrize("sigma", [0.05, 0.7, 20.0])
def test_gmm_matches_numpy(sigma):
    rng = np.random.default_rng(5)
    k, d = 3, 4
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.standard_normal((k, d)) * 3
    covs = np.stack([_spd(d, rng) * 0.3 for _ in range(k)])
    x = rng.standard_normal((6, d)) * 3
    den = GaussianMixtureDenoiser(torch.tensor(weights), torch.tensor(means), torch.tensor(covs))
    got = den(torch.tensor(x), sigma)
    np.testing.assert_allclose(got.numpy(), _gmm_numpy(x, weights, means, covs, sigma), atol=1e-9)


def test_gmm_one_component_equals_gaussian():
    rng = np.random.default_rng(6)
    mean, cov = rng.standard_normal(5), _spd(5, rng)
    gmm = GaussianMixtureDenoiser(torch.ones(1), torch.tensor(mean)[None], torch.tensor(cov)[None])
    gauss = GaussianDenoiser(torch.tensor(mean), torch.tensor(cov))
    x = torch.tensor(rng.standard_normal((4, 5)) * 4)
    sig = torch.tensor([0.01, 0.3, 2.0, 50.0], dtype=torch.float64)
    torch.testing.assert_close(gmm(x, sig), gauss(x, sig), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.002, 0.3, 80.0])
def test_gmm_low_rank_equals_full(sigma):
    rng = np.random.default_rng(7)
    k, d, r = 3, 64, 3
    weights = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    means = torch.tensor(rng.standard_normal((k, d)))
    factors = torch.tensor(rng.standard_normal((k, d, r)) * 0.5)
    noise_var = 0.05
    covs = factors @ factors.transpose(1, 2) + noise_var * torch.eye(d, dtype=torch.float64)
    low = GaussianMixtureDenoiser.low_rank(weights, means, factors, noise_var)
    full = GaussianMixtureDenoiser(weights, means, covs)
    # queries near the components' boundary so that responsibilities are not one-hot at moderate sigma
    x = 0.5 * (means[0] + means[1]) + torch.tensor(rng.standard_normal((5, d))) * 0.3
    torch.testing.assert_close(low(x, sigma), full(x, sigma), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(low.responsibilities(x, sigma), full.responsibilities(x, sigma), atol=1e-8, rtol=0)


def test_gmm_low_rank_large_d_matches_woodbury_numpy():
    rng = np.random.default_rng(8)
    k, d, r = 2, 3072, 4
    means = rng.standard_normal((k, d)) * 0.1
    factors = rng.standard_normal((k, d, r)) * 0.2
    v, sigma = 0.01, 0.5
    x = means[1] + rng.standard_normal((2, d)) * 0.3
    den = GaussianMixtureDenoiser.low_rank(torch.ones(k), torch.tensor(means), torch.tensor(factors), v)
    got = den(torch.tensor(x, dtype=torch.float32), sigma)
    assert got.dtype == torch.float32 and got.shape == (2, d)
    # Woodbury: (F F^T + c I)^-1 = (I - F (c I_r + F^T F)^-1 F^T) / c, with c = v + sigma^2
    c = v + sigma**2
    want = np.empty_like(x)
    for b in range(2):
        logits, posts = [], []
        for j in range(k):
            f, z = factors[j], x[b] - means[j]
            small = c * np.eye(r) + f.T @ f
            inv_z = (z - f @ np.linalg.solve(small, f.T @ z)) / c
            logdet = np.linalg.slogdet(small)[1] + (d - r) * np.log(c)
            logits.append(-0.5 * (z @ inv_z + logdet))
            posts.append(x[b] - sigma**2 * inv_z)  # mu + S (S + s^2)^-1 z = x - s^2 (S + s^2)^-1 z
        rr = np.exp(np.array(logits) - logsumexp(logits))
        want[b] = rr @ np.array(posts)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5)


def test_gmm_sample_weights_and_determinism():
    means = torch.tensor([[-10.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    covs = torch.eye(2, dtype=torch.float64).expand(2, 2, 2) * 0.1
    den = GaussianMixtureDenoiser(torch.tensor([0.25, 0.75]), means, covs)
    a = den.sample(4000, torch.Generator().manual_seed(1))
    assert torch.equal(a, den.sample(4000, torch.Generator().manual_seed(1)))
    assert abs(float((a[:, 0] > 0).double().mean()) - 0.75) < 0.03
    low = GaussianMixtureDenoiser.low_rank(torch.tensor([0.25, 0.75]), means, torch.zeros(2, 2, 1) + 1.0, 0.01)
    s = low.sample(4000, torch.Generator().manual_seed(2))
    right = s[s[:, 0] > 0] - means[1]
    np.testing.assert_allclose(np.cov(right.numpy().T), np.full((2, 2), 1.0) + 0.01 * np.eye(2), atol=0.1)


def test_gmm_bad_input():
    with pytest.raises(ValueError, match="weights must have shape"):
        GaussianMixtureDenoiser(torch.ones(3), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match="noise_var"):
        GaussianMixtureDenoiser.low_rank(torch.ones(2), torch.zeros(2, 3), torch.ones(2, 3, 1), 0.0)
    with pytest.raises(ValueError, match="noise_var"):
        GaussianMixtureDenoiser.low_rank(torch.ones(2), torch.zeros(2, 3), torch.ones(2, 3, 1), torch.ones(3))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        GaussianMixtureDenoiser(torch.tensor([1.0, -1.0]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))


# ---------------------------------------------------------------- empirical


def _empirical_numpy(x, data, sigma):
    """Naive float64 softmax over all N points at once."""
    d2 = ((x[:, None, :] - data[None]) ** 2).sum(-1)  # [B, N]
    logits = -d2 / (2 * sigma[:, None] ** 2)
    w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    return w @ data


@pytest.mark.parametrize("chunk_size", [1, 7, 13, 50, 4096])  # 7 and 13 do not divide N = 50
def test_empirical_chunked_equals_naive(chunk_size):
    rng = np.random.default_rng(9)
    data = rng.standard_normal((50, 3, 2, 2))
    x = rng.standard_normal((4, 3, 2, 2)) * 1.5
    sig = np.array([0.1, 0.5, 1.0, 5.0])
    den = EmpiricalDenoiser(torch.tensor(data), chunk_size=chunk_size)
    got = den(torch.tensor(x), torch.tensor(sig))
    assert got.shape == x.shape and got.dtype == torch.float64
    want = _empirical_numpy(x.reshape(4, -1), data.reshape(50, -1), sig).reshape(x.shape)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)


def test_empirical_float32_extreme_sigmas():
    rng = np.random.default_rng(10)
    n, d = 300, 3072
    data = rng.uniform(-1, 1, (n, d)).astype(np.float32)
    den = EmpiricalDenoiser(torch.tensor(data), chunk_size=64)
    # sigma 0.002 near data points: the softmax is one-hot on the right point
    x_near = data[[3, 150, 299]] + 0.002 * rng.standard_normal((3, d)).astype(np.float32)
    got = den(torch.tensor(x_near), 0.002)
    assert got.dtype == torch.float32
    want = _empirical_numpy(x_near.astype(np.float64), data.astype(np.float64), np.full(3, 0.002))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    # sigma 80 at |x| ~ 80 sqrt(d) (distances ~4400): nearly uniform weights, answer near the data mean
    x_far = (80 * rng.standard_normal((3, d))).astype(np.float32)
    got = den(torch.tensor(x_far), 80.0)
    want = _empirical_numpy(x_far.astype(np.float64), data.astype(np.float64), np.full(3, 80.0))
    assert np.isfinite(got.numpy()).all()
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5)
    # intermediate sigma with a far query: a few points compete
    got = den(torch.tensor(x_far), 30.0)
    want = _empirical_numpy(x_far.astype(np.float64), data.astype(np.float64), np.full(3, 30.0))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-3)


def test_empirical_bandwidth_matches_direct_and_kde_mixture():
    rng = np.random.default_rng(11)
    data = rng.standard_normal((40, 3))
    x = rng.standard_normal((5, 3)) * 2
    h = 0.4
    sig = np.array([0.01, 0.2, 1.0, 3.0, 30.0])
    got = EmpiricalDenoiser(torch.tensor(data), bandwidth=h, chunk_size=9)(torch.tensor(x), torch.tensor(sig))
    # direct: mixture of N(y_i, h^2 I) noised at sigma -> responsibilities at variance t^2 = s^2 + h^2,
    # component posterior mean y_i + h^2 / t^2 (x - y_i)
    want = np.empty_like(x)
    for b in range(5):
        t2 = sig[b] ** 2 + h**2
        logits = -((x[b] - data) ** 2).sum(1) / (2 * t2)
        w = np.exp(logits - logsumexp(logits))
        want[b] = w @ (data + (h**2 / t2) * (x[b] - data))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)
    covs = torch.eye(3, dtype=torch.float64).expand(40, 3, 3) * h**2
    gmm = GaussianMixtureDenoiser(torch.ones(40), torch.tensor(data), covs)
    np.testing.assert_allclose(gmm(torch.tensor(x), torch.tensor(sig)).numpy(), got.numpy(), atol=1e-9)


def test_empirical_nearest_index_and_small_sigma_limit():
    rng = np.random.default_rng(12)
    data = rng.standard_normal((101, 8)).astype(np.float32)
    x = rng.standard_normal((7, 8)).astype(np.float32) * 2
    den = EmpiricalDenoiser(torch.tensor(data), chunk_size=10)
    idx = den.nearest_index(torch.tensor(x))
    assert idx.dtype == torch.long and idx.shape == (7,)
    brute = np.argmin(((x[:, None] - data[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(idx.numpy(), brute)
    np.testing.assert_allclose(den(torch.tensor(x), 1e-3).numpy(), data[brute], atol=1e-6)


def test_empirical_bad_input():
    with pytest.raises(ValueError, match="bandwidth"):
        EmpiricalDenoiser(torch.zeros(3, 2), bandwidth=-0.1)
    with pytest.raises(ValueError, match="chunk_size"):
        EmpiricalDenoiser(torch.zeros(3, 2), chunk_size=0)
    with pytest.raises(ValueError, match="data must have shape"):
        EmpiricalDenoiser(torch.zeros(3))
    with pytest.raises(ValueError, match="data must be finite"):
        EmpiricalDenoiser(torch.tensor([[0.0, float("nan")]]))
    den = EmpiricalDenoiser(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="trailing size d = 2"):
        den(torch.zeros(1, 3), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        den(torch.zeros(2, 2), torch.ones(3))


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_empirical_float32_offset_data_transitional_sigma(offset):
    # data far from the origin (e.g. pixels in [0, 255]-like ranges): centring keeps float32 logits accurate
    rng = np.random.default_rng(13)
    data = (offset + rng.uniform(-1, 1, (500, 256))).astype(np.float32)
    x = (data[:4] + 3.0 * rng.standard_normal((4, 256))).astype(np.float32)
    got = EmpiricalDenoiser(torch.tensor(data), chunk_size=64)(torch.tensor(x), 3.0).numpy()
    want = _empirical_numpy(x.astype(np.float64), data.astype(np.float64), np.full(4, 3.0))
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_denoisers_on_cuda_match_cpu():
    rng = np.random.default_rng(14)
    data = torch.tensor(rng.standard_normal((300, 16)), dtype=torch.float32)
    x = torch.tensor(rng.standard_normal((5, 16)), dtype=torch.float32)
    sig = torch.tensor([0.05, 0.3, 1.0, 3.0, 30.0])
    emp = EmpiricalDenoiser(data, bandwidth=0.1, chunk_size=64)
    emp_gpu = EmpiricalDenoiser(data, bandwidth=0.1, chunk_size=64, device="cuda")
    out = emp_gpu(x.cuda(), sig.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), emp(x, sig), rtol=1e-4, atol=1e-4)
    assert torch.equal(emp_gpu.nearest_index(x.cuda()).cpu(), emp.nearest_index(x))
    gmm = GaussianMixtureDenoiser.low_rank(torch.ones(3), data[:3].double(), torch.ones(3, 16, 2), 0.1)
    torch.testing.assert_close(gmm(x.cuda(), 0.5).cpu(), gmm(x, 0.5), rtol=1e-5, atol=1e-5)
