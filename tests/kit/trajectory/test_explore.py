"""Tests for kit.trajectory.explore: the numbers behind the trajectory widgets, vs direct computations."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from kit.diffusion.denoisers import EmpiricalDenoiser
from kit.diffusion.schedules import edm_sigmas
from kit.trajectory import explore as ex
from kit.trajectory.gits import dp_path, gits_search

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits_denoiser() -> EmpiricalDenoiser:
    data = torch.tensor(load_digits().data / 16.0 * 2.0 - 1.0, dtype=torch.float64)
    return EmpiricalDenoiser(data, bandwidth=0.3)


@pytest.fixture(scope="module")
def search(digits_denoiser):
    g = torch.Generator().manual_seed(123)
    x = 80.0 * torch.randn(6, 64, generator=g, dtype=torch.float64)
    return gits_search(digits_denoiser, x, grid_steps=16, keep_teacher=True)


def _np_dev(p: np.ndarray, s: np.ndarray, e: np.ndarray) -> float:
    """Distance of p to the line through s and e: norm of the perpendicular part of p - e."""
    r, c = p - e, s - e
    return float(np.linalg.norm(r - (r @ c) / (c @ c) * c))


# --- sample_trajectories -----------------------------------------------------------------------------------
def test_sample_trajectories_shapes_start_and_heun_step(digits_denoiser):
    sig = edm_sigmas(8)
    out = ex.sample_trajectories(digits_denoiser, 3, (8, 8), sig, solver="heun", seed=5)
    assert out["xs"].shape == (9, 3, 8, 8) and out["denoised"].shape == (8, 3, 8, 8)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in out.values())
    z = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy()
    np.testing.assert_array_equal(out["noise"], z)
    np.testing.assert_allclose(out["xs"][0], 80.0 * z, rtol=1e-15)
    # One Heun step by hand (EDM Algorithm 1), with D evaluated directly.
    D = lambda x, s: digits_denoiser(torch.from_numpy(x).reshape(3, 64), s).reshape(3, 8, 8).numpy()
    s0, s1 = float(sig[0]), float(sig[1])
    x0 = out["xs"][0]
    d0 = D(x0, s0)
    np.testing.assert_allclose(out["denoised"][0], d0, atol=1e-12)
    eps0 = (x0 - d0) / s0
    pred = x0 + (s1 - s0) * eps0
    x1 = x0 + (s1 - s0) * 0.5 * (eps0 + (pred - D(pred, s1)) / s1)
    np.testing.assert_allclose(out["xs"][1], x1, atol=1e-10)


def test_sample_trajectories_seeded(digits_denoiser):
    sig = edm_sigmas(4)
    a = ex.sample_trajectories(digits_denoiser, 2, (64,), sig, solver="euler", seed=1)
    b = ex.sample_trajectories(digits_denoiser, 2, (64,), sig, solver="euler", seed=1)
    c = ex.sample_trajectories(digits_denoiser, 2, (64,), sig, solver="euler", seed=2)
    np.testing.assert_array_equal(a["xs"], b["xs"])
    assert not np.allclose(a["xs"][-1], c["xs"][-1])


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"n": 0}, "n"),
        ({"dim_shape": ()}, "dim_shape"),
        ({"dim_shape": (8, -1)}, "dim_shape"),
        ({"sigmas": [1.0, 2.0]}, "sigmas"),
        ({"seed": 1.5}, "seed"),
        ({"solver": "rk45"}, "solver"),
    ],
)
def test_sample_trajectories_bad_input(digits_denoiser, kwargs, arg):
    base = {"n": 2, "dim_shape": (64,), "sigmas": edm_sigmas(3), "solver": "euler", "seed": 0}
    with pytest.raises(ValueError, match=arg):
        ex.sample_trajectories(digits_denoiser, **{**base, **kwargs})


# --- projection_with_steps ---------------------------------------------------------------------------------
def _synthetic_trajectory(T: int = 40, d: int = 10):
    """A curve in a known 3-D frame: coords (a, b, c) on orthonormal (u1, u2, u3); b, c are its PCs."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(d, 3)))
    t = np.linspace(0.0, 1.0, T)
    a = 50.0 * (1 - t)  # along the chord, start at 50
    b = 3.0 * np.sin(np.pi * t)  # boomerang-like bulge, zero at both ends
    c = 0.5 * np.sin(2 * np.pi * t) * np.sin(np.pi * t)  # antisymmetric: uncorrelated with b
    coords = np.stack([a, b, c], 1)
    x_end = rng.normal(size=d)
    return x_end + coords @ q.T, coords, np.geomspace(80.0, 0.01, T)


def test_projection_recovers_frame_and_interpolates_steps():
    xs, coords, sig = _synthetic_trajectory()
    sched = {"coarse": np.array([80.0, 7.3, 0.5, 0.01]), "on_grid": sig[[0, 5, 17, 39]]}
    out = ex.projection_with_steps(xs, sig, sched)
    np.testing.assert_allclose(out["coords"][:, 0], coords[:, 0], atol=1e-9)
    # PCs are determined up to sign (and the sign convention makes each mean positive).
    np.testing.assert_allclose(np.abs(out["coords"][:, 1:]), np.abs(coords[:, 1:]), atol=1e-9)
    assert out["chord"] == pytest.approx(50.0)
    assert out["explained"].sum() == pytest.approx(1.0, abs=1e-12)
    on = out["schedules"]["on_grid"]
    np.testing.assert_allclose(on["coords"], out["coords"][[0, 5, 17, 39]], atol=1e-12)
    # Linear interpolation in log sigma, per coordinate, with numpy (increasing abscissa).
    lx = np.log(sig)[::-1]
    want = np.stack([np.interp(np.log(sched["coarse"]), lx, out["coords"][::-1, k]) for k in range(3)], 1)
    np.testing.assert_allclose(out["schedules"]["coarse"]["coords"], want, atol=1e-12)
    np.testing.assert_array_equal(out["schedules"]["coarse"]["sigmas"], sched["coarse"])


def test_projection_nearest_method():
    xs, _, sig = _synthetic_trajectory()
    q = np.array([80.0, 7.3, 0.5, 0.011])
    out = ex.projection_with_steps(xs, sig, {"s": q}, method="nearest")
    idx = [int(np.argmin(np.abs(np.log(sig) - math.log(v)))) for v in q]
    np.testing.assert_array_equal(out["schedules"]["s"]["coords"], out["coords"][idx])


def test_projection_gits_points_sit_on_teacher_grid(search):
    sched = ex.schedule_curves(5, "ipndm", search, 1.15, names=("edm",))
    out = ex.projection_with_steps(search.teacher_xs[:, 0], search.grid, sched)
    path = dp_path(search.cost, 5, 1.15)
    np.testing.assert_allclose(out["schedules"]["gits"]["coords"], out["coords"][path], atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"teacher_sigmas": np.geomspace(80, 0.01, 39)}, "teacher_sigmas"),
        ({"teacher_sigmas": np.geomspace(0.01, 80, 40)}, "teacher_sigmas"),
        ({"schedules": {"s": [100.0, 1.0]}}, "schedules"),
        ({"schedules": [1.0]}, "schedules"),
        ({"method": "cubic"}, "method"),
        ({"xs_teacher_one": np.zeros(40)}, "xs_teacher_one"),
    ],
)
def test_projection_bad_input(kwargs, arg):
    xs, _, sig = _synthetic_trajectory()
    base = {"xs_teacher_one": xs, "teacher_sigmas": sig, "schedules": {"s": [80.0, 1.0]}}
    with pytest.raises(ValueError, match=arg):
        ex.projection_with_steps(**{**base, **kwargs})


# --- stats_vs_sigma ----------------------------------------------------------------------------------------
def test_stats_vs_sigma_matches_direct_loops(digits_denoiser):
    tr = ex.sample_trajectories(digits_denoiser, 3, (64,), edm_sigmas(12), solver="heun", seed=3)
    st = ex.stats_vs_sigma(tr["xs"], tr["denoised"], tr["sigmas"])
    xs, den, sig = tr["xs"], tr["denoised"], tr["sigmas"]
    n, B = den.shape[:2]
    dev = np.array([[_np_dev(xs[i, b], xs[0, b], xs[-1, b]) for b in range(B)] for i in range(n)])
    dist_d = np.linalg.norm(den - xs[-1][None], axis=-1)
    eps = (xs[:n] - den) / sig[:n, None, None]
    to_end = xs[:n] - xs[-1][None]
    cos = (eps * to_end).sum(-1) / np.linalg.norm(eps, axis=-1) / np.linalg.norm(to_end, axis=-1)
    np.testing.assert_allclose(st["sigma"], sig[:n])
    np.testing.assert_allclose(st["dev_x_mean"], dev.mean(1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st["dev_x_std"], dev.std(1), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(st["dist_d_end_mean"], dist_d.mean(1), rtol=1e-10)
    np.testing.assert_allclose(st["cos_eps_mean"], cos.mean(1), rtol=1e-10)
    # Explained variance after chord removal, by numpy SVD of the residual.
    for b in range(B):
        rel = xs[:, b] - xs[-1, b]
        u = rel[0] / np.linalg.norm(rel[0])
        res = rel - np.outer(rel @ u, u)
        s2 = np.linalg.svd(res, compute_uv=False) ** 2
        assert st["explained_top2"][b] == pytest.approx(s2[:2].sum() / s2.sum(), rel=1e-9)
    assert st["explained"].shape == (B, 2) and isinstance(st["chord_mean"], np.ndarray)


def test_stats_vs_sigma_bad_input():
    xs = np.zeros((4, 2, 3))
    with pytest.raises(ValueError, match="denoised"):
        ex.stats_vs_sigma(xs + np.arange(4)[:, None, None], np.zeros((4, 2, 3)), np.array([4.0, 3, 2, 1]))
    with pytest.raises(ValueError, match="xs"):
        ex.stats_vs_sigma(np.full((4, 2, 3), np.nan), np.zeros((3, 2, 3)), np.array([4.0, 3, 2, 1]))


# --- schedule_curves ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("solver", "nfe", "k"), [("ipndm", 5, 5), ("heun", 8, 4), ("euler", 3, 3)])
def test_schedule_curves(search, solver, nfe, k):
    out = ex.schedule_curves(nfe, solver, search, coeff=1.3)
    assert set(out) == {"edm", "logsnr", "time_uniform", "gits"}
    grid = search.grid.numpy()
    np.testing.assert_array_equal(out["gits"], grid[dp_path(search.cost, k, 1.3)])
    i = np.arange(k + 1) / k
    a, b = 80.0 ** (1 / 7), 0.002 ** (1 / 7)
    np.testing.assert_allclose(out["edm"], (a + i * (b - a)) ** 7, rtol=1e-12)
    np.testing.assert_allclose(
        out["logsnr"], np.exp(np.linspace(np.log(80), np.log(0.002), k + 1)), rtol=1e-12
    )
    assert all(len(v) == k + 1 for v in out.values())


def test_schedule_curves_bad_input(search):
    with pytest.raises(ValueError, match="nfe"):
        ex.schedule_curves(5, "heun", search)
    with pytest.raises(ValueError, match="nfe"):
        ex.schedule_curves(40, "euler", search)
    with pytest.raises(ValueError, match="names"):
        ex.schedule_curves(4, "euler", search, names="edm")
    with pytest.raises(ValueError, match="search"):
        ex.schedule_curves(4, "euler", search.cost)


# --- cost matrices -----------------------------------------------------------------------------------------
def test_cost_for_metric_recomputes_from_teacher(search):
    assert ex.cost_for_metric(search, search.metric) is search.cost
    c = ex.cost_for_metric(search, "l2").numpy()
    xs, eps, grid = search.teacher_xs.numpy(), search.teacher_eps.numpy(), search.grid.numpy()
    G = len(grid)
    want = np.full((G, G), np.inf)
    for i in range(G - 1):
        for j in range(i + 1, G):
            want[i, j] = np.linalg.norm(xs[i] + (grid[j] - grid[i]) * eps[i] - xs[j], axis=-1).mean()
    np.testing.assert_allclose(c, want, rtol=1e-10)


def test_cost_for_metric_needs_teacher(digits_denoiser):
    x = 80.0 * torch.randn(2, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = gits_search(digits_denoiser, x, grid_steps=4)
    with pytest.raises(ValueError, match="keep_teacher"):
        ex.cost_for_metric(s, "l2")


def test_log_abs_cost_and_weighted_path_cost():
    c = np.array(
        [[np.inf, -2.0, 0.0, 1e3], [5.0, np.inf, 0.5, np.inf], [0, 0, np.inf, -0.1], [0, 0, 0, np.inf]]
    )
    z, eps = ex.log_abs_cost(torch.from_numpy(c))
    assert eps == pytest.approx(1e-6 * 1e3)
    want = np.full((4, 4), np.nan)
    for i, j in [(0, 1), (0, 2), (0, 3), (1, 2), (2, 3)]:
        want[i, j] = math.log10(abs(c[i, j]) + eps)
    np.testing.assert_allclose(z, want, rtol=1e-14)  # NaN positions must match too
    assert ex.weighted_path_cost(c, [0, 1, 2, 3], 2.0) == pytest.approx(-2.0 + 2 * 0.5 + 4 * -0.1)
    with pytest.raises(ValueError, match="cost"):
        ex.log_abs_cost(np.full((3, 3), np.inf))
    with pytest.raises(ValueError, match="cost"):
        ex.log_abs_cost(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="path"):
        ex.weighted_path_cost(c, [0, 2, 1, 3], 1.0)


def test_boomerangs_put_every_trajectory_in_its_own_unit_chord_frame():
    from kit.diffusion import EmpiricalDenoiser, edm_sigmas
    from kit.trajectory.data import load_digits_data
    from kit.trajectory.explore import boomerangs, sample_trajectories
    from kit.trajectory.measures import project_trajectory

    kde = EmpiricalDenoiser(load_digits_data()[:300], bandwidth=0.3)
    traj = sample_trajectories(kde, 5, (64,), edm_sigmas(40), solver="heun", seed=0)
    b = boomerangs(traj["xs"], traj["denoised"])
    assert b["x"].shape == (5, 41, 3) and b["D"].shape == (5, 40, 3)
    np.testing.assert_allclose(b["x"][:, 0], np.tile([1.0, 0, 0], (5, 1)), atol=1e-9)  # start at (1, 0, 0) ...
    np.testing.assert_allclose(b["x"][:, -1], 0.0, atol=1e-9)  # ... end at the origin
    coords, _, basis = project_trajectory(torch.from_numpy(traj["xs"][:, 2]))
    np.testing.assert_allclose(b["x"][2], coords.numpy() / coords[0, 0].item(), atol=1e-9)
    d_ref = (traj["denoised"][:, 2] - traj["xs"][-1, 2]) @ basis.numpy().T / coords[0, 0].item()
    np.testing.assert_allclose(b["D"][2], d_ref, atol=1e-9)
    assert np.abs(b["x"] - b["x"].mean(0)).max() < 0.05  # the same curve for every sample: the regularity
    assert np.abs(b["D"][:, 10:, 0]).max() < np.abs(b["x"][:, 10:, 0]).max()  # D is near the end before x is
    with pytest.raises(ValueError, match="denoised"):
        boomerangs(traj["xs"], traj["denoised"][:-1])


def test_explored_denoiser_follows_the_parameters(tmp_path):
    from kit.trajectory import config
    from kit.trajectory.explore import explored_denoiser

    case = explored_denoiser(config.preset("tiny"))
    assert (case.name, case.shape) == ("kde", (64,))
    with pytest.raises(FileNotFoundError):
        explored_denoiser(config.preset("tiny", data_dir=str(tmp_path / "no-cifar")))
    with pytest.raises(FileNotFoundError, match="could not load the diffusers model"):
        explored_denoiser(config.preset("tiny", pretrained=str(tmp_path / "none")))


def test_explore_regularity_boomerang_summary_and_gits_on_trajectory(digits_denoiser):
    from kit.trajectory import config
    from kit.trajectory.experiment import DenoiserCase

    case = DenoiserCase("kde", digits_denoiser, (64,), 0.002, 80.0, "dev")
    traj, stats, summary = ex.explore_regularity(case, 3, seed=5, steps=30)
    assert traj["xs"].shape == (31, 3, 64) and stats["sigma"].shape == (30,)
    direct = ex.sample_trajectories(digits_denoiser, 3, (64,), edm_sigmas(30), solver="heun", seed=5)
    np.testing.assert_array_equal(traj["xs"], direct["xs"])
    assert summary == ex.regularity_summary(stats, dim=64, sigma_max=80.0)
    assert ex.explored_name(case) == "digits"

    b = ex.boomerangs(traj["xs"], traj["denoised"])
    s = ex.boomerang_summary(b)
    assert s["n"] == 3 and s["max_distance_to_mean_curve"] == pytest.approx(np.abs(b["x"] - b["x"].mean(0)).max())
    assert s["explained_top2_min"] == pytest.approx(b["explained"].sum(1).min())
    one = {"x": np.zeros((2, 4, 3)), "explained": np.full((2, 2), 0.5)}
    one["x"][1, 2, 1] = 0.2  # one point 0.2 off: 0.1 from the mean of the two curves
    assert ex.boomerang_summary(one)["max_distance_to_mean_curve"] == pytest.approx(0.1)

    cfg = config.preset("tiny", grid_steps=12, seed=3)
    search, proj, record = ex.gits_on_trajectory(case, traj["xs"][:, 0], traj["sigmas"], 4, cfg, n_warmup=4)
    assert search.teacher_xs is not None and search.teacher_evaluations == 12 * 4  # the teacher kept for the view
    assert set(proj["schedules"]) == {"edm", "logsnr", "gits"} and len(record["sigmas"]) == 5
    np.testing.assert_allclose(proj["schedules"]["gits"]["sigmas"], record["sigmas"])
    np.testing.assert_allclose(record["edm_sigmas"], edm_sigmas(4).numpy())
    assert record["nfe"] == 4 and record["network_evaluations"] == 48
    assert ex.explored_name(DenoiserCase("kde", digits_denoiser, (3, 32, 32), 0.002, 80.0, "dev")) == "cifar10"
    assert ex.explored_name(DenoiserCase("pretrained", digits_denoiser, (3, 32, 32), 0.002, 80.0, "dev")) == "pretrained"
