"""Tests for kit.trajectory.measures: chord deviation, trajectory statistics and the chord + 2-PC projection."""

import math

import numpy as np
import pytest
import torch

from kit.trajectory.measures import (
    chord_deviation,
    explained_variance_after_chord,
    project_trajectory,
    trajectory_stats,
)

torch.set_num_threads(1)


def _np_dev(p: np.ndarray, s: np.ndarray, e: np.ndarray) -> float:
    """Distance of p to the line through s and e, via |r|^2 - (r.c)^2 / |c|^2 (independent formula)."""
    r, c = p - s, e - s
    return math.sqrt(max(r @ r - (r @ c) ** 2 / (c @ c), 0.0))


def test_chord_deviation_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    T, B = 5, 3
    pts = torch.randn(T, B, 2, 3, generator=g, dtype=torch.float64)
    start = torch.randn(B, 2, 3, generator=g, dtype=torch.float64)
    end = torch.randn(B, 2, 3, generator=g, dtype=torch.float64)
    dev = chord_deviation(pts, start, end)
    assert dev.shape == (T, B) and dev.dtype == torch.float64
    P = pts.reshape(T, B, -1).numpy()
    S, E = start.reshape(B, -1).numpy(), end.reshape(B, -1).numpy()
    want = np.array([[_np_dev(P[t, b], S[b], E[b]) for b in range(B)] for t in range(T)])
    np.testing.assert_allclose(dev.numpy(), want, rtol=1e-10, atol=1e-12)


def test_chord_deviation_zero_on_chord_and_exact_offset():
    g = torch.Generator().manual_seed(1)
    B, d = 4, 7
    start = torch.randn(B, d, generator=g, dtype=torch.float64)
    end = torch.randn(B, d, generator=g, dtype=torch.float64)
    t = torch.linspace(-0.5, 1.5, 6, dtype=torch.float64).reshape(-1, 1, 1)
    on = start + t * (end - start)
    assert chord_deviation(on, start, end).abs().max() < 1e-12
    # add a known perpendicular offset of length 2.5
    c = end - start
    v = torch.randn(B, d, generator=g, dtype=torch.float64)
    v = v - (v * c).sum(-1, keepdim=True) / (c * c).sum(-1, keepdim=True) * c
    v = 2.5 * v / v.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(
        chord_deviation(on + v, start, end), torch.full((6, B), 2.5, dtype=torch.float64)
    )


def test_chord_deviation_bad_input():
    x = torch.zeros(3, 2, 4)
    with pytest.raises(ValueError, match="start and end"):
        chord_deviation(x, torch.zeros(2, 5), torch.ones(2, 4))
    with pytest.raises(ValueError, match="zero length"):
        chord_deviation(x, torch.ones(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="points"):
        chord_deviation(torch.zeros(3, 4), torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        chord_deviation(x, torch.zeros(2, 4), torch.full((2, 4), float("nan")))


def _straight_trajectory(n: int = 6, B: int = 3, d: int = 5, seed: int = 2):
    """x_sigma = y + sigma * z with D = y: the exact ODE path of a single-point data set (a straight line)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(B, d, generator=g, dtype=torch.float64)
    z = torch.randn(B, d, generator=g, dtype=torch.float64)
    sigmas = torch.tensor([80.0, 20.0, 5.0, 1.0, 0.3, 0.05, 0.002], dtype=torch.float64)[: n + 1]
    xs = y[None] + sigmas[:, None, None] * z[None]
    denoised = y[None].expand(n, B, d).clone()
    return xs, denoised, sigmas, y, z


def test_stats_straight_line_has_zero_deviation_and_known_values():
    xs, den, sig, y, z = _straight_trajectory()
    st = trajectory_stats(xs, den, sig)
    n = sig.numel() - 1
    assert st["sigma"].shape == (n,)
    for key in ("dev_x_mean", "dev_d_mean", "dev_x_std", "dev_d_std"):
        assert st[key].abs().max() < 1e-9, key
    torch.testing.assert_close(st["cos_eps_mean"], torch.ones(n, dtype=torch.float64))
    zn = z.norm(dim=-1)
    torch.testing.assert_close(st["norm_eps_mean"], zn.mean().expand(n))
    torch.testing.assert_close(st["dist_x_end_mean"], (sig[:n] - sig[-1]) * zn.mean())
    torch.testing.assert_close(st["dist_d_end_mean"], sig[-1] * zn.mean().expand(n))
    torch.testing.assert_close(st["chord"], (sig[0] - sig[-1]) * zn)


def test_stats_against_naive_loop():
    g = torch.Generator().manual_seed(3)
    n, B, d = 4, 5, 6
    xs = torch.randn(n + 1, B, d, generator=g, dtype=torch.float64) * 3
    den = torch.randn(n, B, d, generator=g, dtype=torch.float64)
    sig = torch.tensor([10.0, 4.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    st = trajectory_stats(xs, den, sig)
    X, Dn = xs.numpy(), den.numpy()
    for i in range(n):
        devd, cos, nd = [], [], []
        for b in range(B):
            devd.append(_np_dev(Dn[i, b], X[0, b], X[-1, b]))
            eps = (X[i, b] - Dn[i, b]) / sig[i].item()
            r = X[i, b] - X[-1, b]
            cos.append(eps @ r / np.linalg.norm(eps) / np.linalg.norm(r))
            nd.append(np.linalg.norm(Dn[i, b] - X[-1, b]))
        assert st["dev_d_mean"][i].item() == pytest.approx(np.mean(devd), rel=1e-10)
        assert st["dev_d_std"][i].item() == pytest.approx(np.std(devd), rel=1e-9)
        assert st["cos_eps_mean"][i].item() == pytest.approx(np.mean(cos), rel=1e-10)
        assert st["dist_d_end_mean"][i].item() == pytest.approx(np.mean(nd), rel=1e-10)


def test_stats_bad_input():
    xs, den, sig, _, _ = _straight_trajectory()
    with pytest.raises(ValueError, match="denoised"):
        trajectory_stats(xs, den[:-1], sig)
    with pytest.raises(ValueError, match="sigmas"):
        trajectory_stats(xs, den, sig[:-1])
    with pytest.raises(ValueError, match="decreasing"):
        trajectory_stats(xs, den, sig.flip(0))
    with pytest.raises(ValueError, match="NaN"):
        trajectory_stats(xs, den * float("nan"), sig)


def _three_dim_trajectory(d: int = 20, T: int = 41, seed: int = 4, flip: bool = False):
    """A boomerang-like curve x(t) = x_end + L t q1 + 3 sin(pi t) q2 + 0.5 sin(2 pi t) q3, t from 1 to 0."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, 3, generator=g, dtype=torch.float64))
    q = q.T  # [3, d] orthonormal rows
    if flip:
        q = q * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)[:, None]
    x_end = torch.randn(d, generator=g, dtype=torch.float64)
    t = torch.linspace(1.0, 0.0, T, dtype=torch.float64)
    c = torch.stack([50.0 * t, 3.0 * torch.sin(math.pi * t), 0.5 * torch.sin(2 * math.pi * t)], dim=1)
    return x_end + c @ q, q, c


def test_projection_of_a_3d_trajectory_is_exact():
    x, q, c = _three_dim_trajectory()
    coords, ratio, basis = project_trajectory(x)
    assert coords.shape == (x.shape[0], 3) and ratio.shape == (2,) and basis.shape == (3, x.shape[1])
    torch.testing.assert_close(basis @ basis.T, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(x[-1] + coords @ basis, x)  # coordinates reconstruct the points
    assert ratio.sum().item() == pytest.approx(1.0, abs=1e-12)
    # residual energies along q2 and q3 are orthogonal (symmetric vs antisymmetric in t): direct ratio
    e2, e3 = (c[:, 1] ** 2).sum().item(), (c[:, 2] ** 2).sum().item()
    assert ratio[0].item() == pytest.approx(e2 / (e2 + e3), rel=1e-10)
    assert abs(basis[0] @ q[0]).item() == pytest.approx(1.0, abs=1e-12)
    assert abs(basis[1] @ q[1]).item() == pytest.approx(1.0, abs=1e-10)
    assert coords[0, 0].item() == pytest.approx(50.0, rel=1e-12)  # start sits at +chord length on u1
    # sign convention: same coordinates when the generating directions are flipped
    coords_f, _, _ = project_trajectory(_three_dim_trajectory(flip=True)[0])
    torch.testing.assert_close(coords_f, coords)
    assert coords[:, 1].mean() > 0  # u2: positive mean coordinate
    assert (
        coords[:, 2] * (torch.arange(x.shape[0]) - (x.shape[0] - 1) / 2)
    ).sum() > 0  # u3: antisymmetric case


def test_explained_variance_after_chord_vs_numpy():
    x, _, _ = _three_dim_trajectory()
    g = torch.Generator().manual_seed(5)
    xs = torch.stack(
        [x, x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)], dim=1
    )  # [T, 2, d]
    ev = explained_variance_after_chord(xs)
    assert ev.shape == (2, 2)
    assert ev[0].sum().item() == pytest.approx(1.0, abs=1e-12)
    for b in range(2):
        X = xs[:, b].numpy()
        rel = X - X[-1]
        u = rel[0] / np.linalg.norm(rel[0])
        res = rel - np.outer(rel @ u, u)
        s = np.linalg.svd(res, compute_uv=False)
        np.testing.assert_allclose(ev[b].numpy(), s[:2] ** 2 / (s**2).sum(), rtol=1e-10)
    # project_trajectory reports the same ratio
    torch.testing.assert_close(project_trajectory(xs[:, 1])[1], ev[1])
    assert ev[1].sum() < 0.99  # noise adds off-plane energy


def test_projection_bad_input():
    with pytest.raises(ValueError, match="straight line"):
        project_trajectory(torch.linspace(0, 1, 5, dtype=torch.float64)[:, None] * torch.ones(1, 4))
    with pytest.raises(ValueError, match="zero length"):
        project_trajectory(torch.ones(5, 4))
    with pytest.raises(ValueError, match="at least 3"):
        project_trajectory(torch.randn(5, 2))
    with pytest.raises(ValueError, match="k must"):
        explained_variance_after_chord(torch.randn(5, 2, 4), k=0)


def _heun_trajectory(denoiser, x: torch.Tensor, sigmas: torch.Tensor):
    """Reference Heun (EDM Alg. 1, no churn) written out here: returns (xs [n+1, B, d], denoised [n, B, d])."""
    xs, dens = [x], []
    for i in range(sigmas.numel() - 1):
        s, s_next = sigmas[i].item(), sigmas[i + 1].item()
        d0 = denoiser(x, s)
        dens.append(d0)
        e0 = (x - d0) / s
        x_pred = x + (s_next - s) * e0
        if s_next > 0:
            e1 = (x_pred - denoiser(x_pred, s_next)) / s_next
            x = x + (s_next - s) * 0.5 * (e0 + e1)
        else:
            x = x_pred
        xs.append(x)
    return torch.stack(xs), torch.stack(dens)


def test_digits_regularity_matches_paper_shape():
    """Sec. 3 of arXiv:2405.11326 on sklearn digits: chord ~ 80 sqrt(d), tiny deviation, ~3-D trajectories."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from kit.diffusion.denoisers import EmpiricalDenoiser

    data = torch.tensor(sklearn_datasets.load_digits().data, dtype=torch.float64) / 16.0 * 2.0 - 1.0
    den = EmpiricalDenoiser(data, bandwidth=0.0)
    n = 200
    i = torch.arange(n + 1, dtype=torch.float64)
    sigmas = (80 ** (1 / 7) + i / n * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    g = torch.Generator().manual_seed(123)
    x0 = 80.0 * torch.randn(6, 64, generator=g, dtype=torch.float64)
    xs, dens = _heun_trajectory(den, x0, sigmas)
    st = trajectory_stats(xs, dens, sigmas)
    # chord = |80 z + y_start - x_end| ~ 80 |z| (data norms are <= 8); |z| ~ sqrt(64) on average
    assert st["chord_mean"].item() == pytest.approx(x0.norm(dim=1).mean().item(), rel=0.02)
    assert st["chord_mean"].item() == pytest.approx(80 * 8, rel=0.1)
    assert st["dev_x_mean"].max().item() < 0.02 * st["chord_mean"].item()  # off-chord extent is tiny
    assert st["cos_eps_mean"].min().item() > 0.95
    ev = explained_variance_after_chord(xs)
    assert ev.sum(1).min().item() > 0.98
    j = int(torch.argmin((sigmas[:n] - 0.5).abs()))  # D reaches the end far before x does
    assert st["dist_d_end_mean"][j] < 0.2 * st["dist_x_end_mean"][j]
