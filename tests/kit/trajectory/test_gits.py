"""Tests for kit.trajectory.gits: teacher, cost matrix, dynamic programming and the GITS schedule."""

import itertools
import math

import numpy as np
import pytest
import torch

from kit.diffusion.denoisers import EmpiricalDenoiser, GaussianDenoiser
from kit.diffusion.schedules import edm_sigmas
from kit.diffusion.solvers import sample
from kit.trajectory.gits import (
    GITSSearch,
    cost_matrix,
    dp_path,
    gits_schedule,
    gits_search,
    teacher_trajectory,
)

torch.set_num_threads(1)


def _brute_force(cost: np.ndarray, n_steps: int, coeff: float) -> tuple[list[int], float]:
    """Cheapest increasing path 0 -> G-1 with n_steps steps, by enumerating every choice of interior indices."""
    G = cost.shape[0]
    best, best_val = None, math.inf
    for mid in itertools.combinations(range(1, G - 1), n_steps - 1):
        path = [0, *mid, G - 1]
        val = sum(coeff**m * cost[path[m], path[m + 1]] for m in range(n_steps))
        if val < best_val:
            best, best_val = path, val
    return best, best_val


@pytest.mark.parametrize("coeff", [0.7, 1.0, 1.15, 1.6])
def test_dp_path_equals_brute_force(coeff):
    rng = np.random.default_rng(int(coeff * 100))
    for G in range(2, 10):
        cost = rng.normal(size=(G, G)) + 0.5  # some negative entries, like the signed "dev" metric
        cost[np.tril_indices(G)] = rng.normal(size=G * (G + 1) // 2)  # garbage below the diagonal: ignored
        for n_steps in range(1, G):
            path = dp_path(torch.from_numpy(cost), n_steps, coeff=coeff)
            want, want_val = _brute_force(cost, n_steps, coeff)
            assert path == want, (G, n_steps)
            got_val = sum(coeff**m * cost[path[m], path[m + 1]] for m in range(n_steps))
            assert got_val == pytest.approx(want_val, rel=1e-12, abs=1e-12)


def test_dp_path_weights_later_steps_by_coeff():
    # two 2-step routes through index 1 or 2: C[0,1] + coeff*C[1,3] = 1 + 3 coeff vs C[0,2] + coeff*C[2,3] = 3 + coeff
    cost = torch.full((4, 4), float("inf"), dtype=torch.float64)
    cost[0, 1], cost[1, 3], cost[0, 2], cost[2, 3] = 1.0, 3.0, 3.0, 1.0
    cost[0, 3], cost[1, 2] = 100.0, 100.0
    assert dp_path(cost, 2, coeff=0.5) == [0, 1, 3]  # 2.5 < 3.5
    assert dp_path(cost, 2, coeff=1.5) == [0, 2, 3]  # 5.5 > 4.5
    assert dp_path(cost, 1) == [0, 3] and dp_path(cost, 3) == [0, 1, 2, 3]


def test_dp_path_bad_input():
    c = torch.rand(5, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_steps"):
        dp_path(c, 0)
    with pytest.raises(ValueError, match="n_steps"):
        dp_path(c, 5)
    with pytest.raises(ValueError, match="n_steps"):
        dp_path(c, 2.0)
    with pytest.raises(ValueError, match="square"):
        dp_path(c[:, :4], 2)
    with pytest.raises(ValueError, match="coeff"):
        dp_path(c, 2, coeff=0.0)
    bad = c.clone()
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        dp_path(bad, 2)
    with pytest.raises(ValueError, match="cost"):
        dp_path([[0.0]], 1)


def _gaussian(d: int = 5, seed: int = 0) -> GaussianDenoiser:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return GaussianDenoiser(
        torch.randn(d, generator=g, dtype=torch.float64), a @ a.T / d + 0.05 * torch.eye(d)
    )


def test_teacher_trajectory_raw_eps():
    den = _gaussian()
    grid = edm_sigmas(10)
    x = 80.0 * torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xs, eps = teacher_trajectory(den, x, grid)
    assert xs.shape == (11, 4, 5) and eps.shape == (10, 4, 5)
    _, xs_ref, _ = sample(den, x, grid, solver="ipndm", return_trajectory=True)
    torch.testing.assert_close(xs, xs_ref, rtol=0, atol=0)
    for k in range(10):  # raw direction at each teacher state, not the multistep combination
        s = grid[k].item()
        torch.testing.assert_close(eps[k], (xs[k] - den(xs[k], s)) / s, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="unipc"):
        teacher_trajectory(den, x, grid, solver="unipc")


def _np_dev(p, s, e):
    r, c = p - s, e - s
    return math.sqrt(max(r @ r - (r @ c) ** 2 / (c @ c), 0.0))


@pytest.mark.parametrize("metric", ["l2", "l1", "dev"])
def test_cost_matrix_matches_direct_loop(metric):
    den = _gaussian(seed=3)
    grid = edm_sigmas(7)
    G = grid.numel()
    x = 80.0 * torch.randn(3, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cost = cost_matrix(den, x, grid, teacher_solver="euler", metric=metric)
    assert cost.shape == (G, G) and cost.dtype == torch.float64
    assert torch.isinf(cost[np.tril_indices(G)]).all()
    # independent: an Euler teacher written out here, then every pair (i, j) in a plain loop
    X = [x.numpy()]
    for k in range(G - 1):
        s, s_next = grid[k].item(), grid[k + 1].item()
        X.append(X[-1] + (s_next - s) * (X[-1] - den(torch.from_numpy(X[-1]), s).numpy()) / s)
    E = [(X[k] - den(torch.from_numpy(X[k]), grid[k].item()).numpy()) / grid[k].item() for k in range(G - 1)]
    for i in range(G - 1):
        for j in range(i + 1, G):
            vals = []
            for b in range(3):
                x_hat = X[i][b] + (grid[j].item() - grid[i].item()) * E[i][b]
                if metric == "l2":
                    vals.append(np.linalg.norm(x_hat - X[j][b]))
                elif metric == "l1":
                    vals.append(np.abs(x_hat - X[j][b]).sum())
                else:
                    vals.append(_np_dev(x_hat, X[0][b], X[-1][b]) - _np_dev(X[j][b], X[0][b], X[-1][b]))
            assert cost[i, j].item() == pytest.approx(np.mean(vals), rel=1e-9, abs=1e-9), (i, j)
    if metric == "dev":
        assert torch.diagonal(cost, 1).abs().max() < 1e-9  # one Euler step of the Euler teacher is exact


def test_cost_matrix_chunking_is_invisible(monkeypatch):
    import kit.diffusion.gits as gits_module

    den = _gaussian(seed=6)
    grid = edm_sigmas(9)
    x = 80.0 * torch.randn(3, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    whole = cost_matrix(den, x, grid, metric="dev")
    monkeypatch.setattr(gits_module, "_CHUNK_ELEMENTS", 2 * 15)  # two targets j per chunk
    torch.testing.assert_close(cost_matrix(den, x, grid, metric="dev"), whole, rtol=0, atol=0)


def test_search_reuses_cost_matrix_and_counts_evaluations():
    den = _gaussian()
    calls = {"n": 0}

    def counted(x, s):
        calls["n"] += 1
        return den(x, s)

    x = 80.0 * torch.randn(6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    search = gits_search(counted, x, grid_steps=20, metric="l2")
    assert isinstance(search, GITSSearch)
    assert search.teacher_calls == 20 == calls["n"]  # iPNDM: one evaluation per grid interval
    assert search.teacher_evaluations == 20 * 6 and search.seconds > 0
    torch.testing.assert_close(search.grid, edm_sigmas(20))
    for solver, nfe, k in [("euler", 5, 5), ("ipndm", 4, 4), ("heun", 6, 3), ("dpm2", 8, 4)]:
        for coeff in (0.9, 1.15):
            sig = search.schedule(nfe, solver=solver, coeff=coeff)
            assert sig.shape == (k + 1,) and sig.dtype == torch.float64
            assert sig[0].item() == 80.0 and sig[-1].item() == pytest.approx(0.002)
            assert all(any(abs(v - g) < 1e-12 for g in search.grid.tolist()) for v in sig.tolist())
            torch.testing.assert_close(sig, search.grid[dp_path(search.cost, k, coeff)])
    assert calls["n"] == 20  # schedules only re-run the DP
    one_shot = gits_schedule(den, x, 5, solver="euler", coeff=0.9, metric="l2", grid_steps=20)
    torch.testing.assert_close(one_shot, search.schedule(5, solver="euler", coeff=0.9))
    with pytest.raises(ValueError, match="nfe"):
        search.schedule(5, solver="heun")


def test_search_keeps_no_autograd_graph():
    """A denoiser with trainable weights (a guided UNet is one) must not make the search record a graph: it would
    hold every network call's activations (t2i/02_evaluate peaked at 5.7 GB before the teacher ran under no_grad)."""
    net = torch.nn.Linear(5, 5, dtype=torch.float64)
    calls = {"grad": []}

    def den(x, s):
        calls["grad"].append(torch.is_grad_enabled())
        return x / (1 + s.reshape(-1, 1) ** 2) + 1e-3 * net(x)

    x = 80.0 * torch.randn(3, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    search = gits_search(den, x, grid_steps=8, metric="l2", keep_teacher=True)
    assert calls["grad"] and not any(calls["grad"])
    assert not search.cost.requires_grad and not search.teacher_xs.requires_grad
    assert not search.teacher_eps.requires_grad
    with torch.no_grad():
        reference = gits_search(den, x, grid_steps=8, metric="l2")
    torch.testing.assert_close(search.cost, reference.cost)


def test_search_bad_input():
    den = _gaussian()
    x = 80.0 * torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="metric"):
        gits_search(den, x, grid_steps=5, metric="linf")
    with pytest.raises(ValueError, match="grid_steps"):
        gits_search(den, x, grid_steps=0)
    with pytest.raises(ValueError, match="x_warmup"):
        gits_search(den, x * float("nan"), grid_steps=5)
    with pytest.raises(ValueError, match="x_warmup"):
        gits_search(den, torch.ones(5), grid_steps=5)
    with pytest.raises(ValueError, match="decreasing"):
        gits_search(den, x, grid=edm_sigmas(5).flip(0))
    with pytest.raises(ValueError, match="metric"):
        cost_matrix(den, x, edm_sigmas(5), metric="cos")


def test_gits_beats_edm_on_digits():
    """The paper's effect (Sec. 4 of arXiv:2405.11326): at 5-6 NFE the searched schedule beats EDM rho=7."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = torch.tensor(sklearn_datasets.load_digits().data, dtype=torch.float64) / 16.0 * 2.0 - 1.0
    den = EmpiricalDenoiser(data, bandwidth=0.3)
    z_warm = torch.randn(40, 64, generator=torch.Generator().manual_seed(1000), dtype=torch.float64)
    z_eval = torch.randn(40, 64, generator=torch.Generator().manual_seed(2000), dtype=torch.float64)
    search = gits_search(den, 80.0 * z_warm, grid_steps=40)  # defaults: metric "dev", iPNDM teacher
    ref = sample(den, 80.0 * z_eval, edm_sigmas(200), solver="heun")

    def err(sig, solver):
        return (sample(den, 80.0 * z_eval, sig, solver=solver) - ref).norm(dim=1).mean().item()

    for solver, nfe in [("euler", 5), ("euler", 6), ("ipndm", 6)]:
        e_gits, e_edm = err(search.schedule(nfe, solver=solver), solver), err(edm_sigmas(nfe), solver)
        assert e_gits < 0.9 * e_edm, (solver, nfe, e_gits, e_edm)
