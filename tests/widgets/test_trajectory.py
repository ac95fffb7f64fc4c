"""Trajectory widgets without a browser: build from small real computations, move controls, check the data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import widgets.trajectory as wt
from kit.diffusion.denoisers import EmpiricalDenoiser, GaussianMixtureDenoiser
from kit.diffusion.schedules import edm_sigmas
from kit.trajectory import explore as ex
from kit.trajectory.gits import dp_path, gits_search

torch.set_num_threads(1)


def _arr(v) -> np.ndarray:
    return np.array([np.nan if e is None else e for e in v], dtype=float)


@pytest.fixture(scope="module")
def ring():
    """2-D trajectories of 8 Gaussians on a ring (radius 2, std 0.1), Heun on 10 EDM steps."""
    ang = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    means = 2.0 * torch.stack([ang.cos(), ang.sin()], 1)
    den = GaussianMixtureDenoiser(
        torch.ones(8), means, 0.01 * torch.eye(2, dtype=torch.float64).repeat(8, 1, 1)
    )
    return ex.sample_trajectories(den, 24, (2,), edm_sigmas(10), solver="heun", seed=0)


@pytest.fixture(scope="module")
def digits():
    data = torch.tensor(load_digits().data / 16.0 * 2.0 - 1.0, dtype=torch.float64)
    return EmpiricalDenoiser(data, bandwidth=0.3)


@pytest.fixture(scope="module")
def digit_traj(digits):
    return ex.sample_trajectories(digits, 3, (64,), edm_sigmas(14), solver="heun", seed=1)


@pytest.fixture(scope="module")
def search(digits):
    x = 80.0 * torch.randn(6, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return gits_search(digits, x, grid_steps=20, keep_teacher=True)


# --- 2-D explorer ------------------------------------------------------------------------------------------
def test_trajectory2d_points_follow_slider(ring):
    xs, den = ring["xs"], ring["denoised"]
    w = wt.Trajectory2DExplorer(xs, den, ring["sigmas"])
    f = w.figure
    np.testing.assert_array_equal(f.data[1].x, xs[0, :, 0])
    for i in (4, 9):
        w.slider.value = i
        np.testing.assert_array_equal(np.c_[f.data[1].x, f.data[1].y], xs[i])
        np.testing.assert_array_equal(np.c_[f.data[3].x, f.data[3].y], den[i])
        assert f"σ = {ring['sigmas'][i]:.4g}" in f.layout.title.text
        lo_x, hi_x = f.layout.xaxis.range
        lo_y, hi_y = f.layout.yaxis.range
        assert lo_x <= xs[i, :, 0].min() and xs[i, :, 0].max() <= hi_x
        assert lo_y <= xs[i, :, 1].min() and xs[i, :, 1].max() <= hi_y
    w.slider.value = len(xs) - 1  # no D at the last point: the right panel shows x_end
    np.testing.assert_array_equal(np.c_[f.data[3].x, f.data[3].y], xs[-1])
    # Ghost paths: path b is xs[:, b] followed by a NaN gap.
    gx = np.asarray(f.data[0].x, dtype=float)
    T = len(xs)
    np.testing.assert_array_equal(gx[:T], xs[:, 0, 0])
    assert np.isnan(gx[T]) and gx[T + 1] == xs[0, 1, 0]
    # The colour of a point is the angle of its final sample around the final mean.
    rel = xs[-1] - xs[-1].mean(0)
    np.testing.assert_allclose(f.data[1].marker.color, np.arctan2(rel[:, 1], rel[:, 0]))
    w.show_paths.value = False
    assert f.data[0].visible is False and f.data[2].visible is False
    w.slider.value = 3  # the toggle state survives a step change
    assert f.data[0].visible is False


def test_trajectory2d_bad_input(ring, digit_traj):
    with pytest.raises(ValueError, match="xs"):
        wt.Trajectory2DExplorer(digit_traj["xs"], digit_traj["denoised"], digit_traj["sigmas"])
    with pytest.raises(ValueError, match="denoised"):
        wt.Trajectory2DExplorer(ring["xs"], ring["denoised"][:-1], ring["sigmas"])
    with pytest.raises(ValueError, match="sigmas"):
        wt.Trajectory2DExplorer(ring["xs"], ring["denoised"], ring["sigmas"][:-1])


# --- projection --------------------------------------------------------------------------------------------
def _projection(search, nfe: int, b: int = 0):
    sched = ex.schedule_curves(nfe, "ipndm", search, 1.15, names=("edm",))
    return ex.projection_with_steps(search.teacher_xs[:, b], search.grid, sched)


def test_projection_view_single_and_samples(search):
    p0, p1 = _projection(search, 5, 0), _projection(search, 5, 1)
    v = wt.ProjectionView(p0)
    f = v.figure
    assert v.dropdown is None and [t.type for t in f.data] == ["scatter3d"] * 3
    np.testing.assert_array_equal(np.c_[f.data[0].x, f.data[0].y, f.data[0].z], p0["coords"])
    for trace, name in zip(f.data[1:], ["edm", "gits"]):
        np.testing.assert_array_equal(np.c_[trace.x, trace.y, trace.z], p0["schedules"][name]["coords"])
    assert f"{100 * p0['explained'].sum():.2f}%" in f.data[0].name
    vs = wt.ProjectionView([p0, p1])
    vs.dropdown.value = 1
    np.testing.assert_array_equal(vs.figure.data[2].x, p1["schedules"]["gits"]["coords"][:, 0])
    assert f"{100 * p1['explained'].sum():.2f}%" in vs.figure.data[0].name


def test_projection_view_nfe_callable(search):
    calls = []

    def make(nfe):
        calls.append(nfe)
        return _projection(search, nfe)

    v = wt.ProjectionView(make, nfes=[4, 7])
    assert len(v.figure.data[2].x) == 5
    v.dropdown.value = 7
    gits = v.figure.data[2]
    path = dp_path(search.cost, 7, 1.15)
    np.testing.assert_allclose(gits.customdata, search.grid.numpy()[path])
    assert len(gits.x) == 8 and "7 steps" in gits.name
    v.dropdown.value = 4
    assert calls == [4, 7]  # cached


def test_projection_view_bad_input(search):
    with pytest.raises(ValueError, match="nfes"):
        wt.ProjectionView(lambda n: _projection(search, n))
    with pytest.raises(ValueError, match="projection"):
        wt.ProjectionView({"coords": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="projection"):
        wt.ProjectionView([])


# --- statistics --------------------------------------------------------------------------------------------
def test_stats_view_traces_and_groups(digit_traj):
    st = ex.stats_vs_sigma(digit_traj["xs"], digit_traj["denoised"], digit_traj["sigmas"])
    v = wt.StatsView(st)
    band, line = v.traces["dev_x"]
    np.testing.assert_array_equal(line.x, digit_traj["sigmas"][:-1])
    np.testing.assert_allclose(line.y, st["dev_x_mean"])
    n = len(st["sigma"])
    np.testing.assert_allclose(band.y[:n], st["dev_x_mean"] + st["dev_x_std"])
    np.testing.assert_allclose(band.y[n:], (st["dev_x_mean"] - st["dev_x_std"])[::-1])
    assert line.visible and v.traces["dev_d"][1].visible and not v.traces["cos_eps"][1].visible
    assert v.figure.layout.xaxis.type == "log" and v.figure.layout.yaxis.type == "linear"
    v.dropdown.value = "distance to x_end"
    assert v.figure.layout.yaxis.type == "log"
    assert v.traces["dist_d_end"][1].visible and not v.traces["dev_x"][1].visible
    m, s = st["dist_x_end_mean"], st["dist_x_end_std"]
    np.testing.assert_allclose(v.traces["dist_x_end"][0].y[n:], np.maximum(m - s, m / 100)[::-1])
    assert f"{100 * st['explained_top2'].min():.2f}%" in v.figure.layout.title.text
    with pytest.raises(ValueError, match="group"):
        wt.StatsView(st, group="curvature")


# --- cost matrix -------------------------------------------------------------------------------------------
def test_cost_matrix_view_path_follows_sliders(search):
    v = wt.CostMatrixView(search, solver="ipndm", nfe=6, coeff=1.15)
    f = v.figure
    grid = search.grid.numpy()
    for nfe, coeff in [(6, 1.15), (9, 1.15), (9, 0.8), (3, 1.6)]:
        v.nfe_slider.value, v.coeff_slider.value = nfe, coeff
        path = dp_path(search.cost, nfe, coeff)
        assert list(f.data[2].y) == path[:-1] and list(f.data[2].x) == path[1:]  # cells (i, j) used
        stair = list(zip(f.data[1].x, f.data[1].y))
        assert stair[0] == (0, 0) and stair[-1] == (path[-1], path[-1])
        assert all((j, i) in stair and (j, j) in stair for i, j in zip(path[:-1], path[1:]))
        gits = f.data[-1]
        assert gits.name == "gits"
        np.testing.assert_array_equal(gits.y, grid[path])
        edm = f.data[3]
        k = np.arange(nfe + 1) / nfe
        np.testing.assert_allclose(
            edm.y, (80 ** (1 / 7) + k * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7, rtol=1e-12
        )
    c = search.cost.numpy()
    z = np.asarray(f.data[0].z, dtype=float)
    iu = np.triu_indices(len(grid), 1)
    eps = 1e-6 * np.abs(c[iu]).max()
    np.testing.assert_allclose(z[iu], np.log10(np.abs(c[iu]) + eps), rtol=1e-12)
    assert np.isnan(z[np.tril_indices(len(grid))]).all()
    assert "log10" in f.data[0].colorbar.title.text and "signed" in f.data[0].colorbar.title.text


def test_cost_matrix_view_metric_dropdown(search):
    v = wt.CostMatrixView(search, solver="heun", nfe=6)
    assert (v.nfe_slider.min, v.nfe_slider.step) == (4, 2)
    assert len(v.figure.data[2].x) == 3  # heun: NFE 6 -> 3 steps
    v.metric_dropdown.value = "l1"
    xs, eps, grid = search.teacher_xs.numpy(), search.teacher_eps.numpy(), search.grid.numpy()
    G = len(grid)
    l1 = np.full((G, G), np.inf)
    for i in range(G - 1):
        for j in range(i + 1, G):
            l1[i, j] = np.abs(xs[i] + (grid[j] - grid[i]) * eps[i] - xs[j]).sum(-1).mean()
    iu = np.triu_indices(G, 1)
    z = np.asarray(v.figure.data[0].z, dtype=float)
    np.testing.assert_allclose(z[iu], np.log10(l1[iu] + 1e-6 * l1[iu].max()), rtol=1e-10)
    path = dp_path(torch.from_numpy(l1), 3, 1.15)
    assert list(v.figure.data[2].x) == path[1:]
    assert "l1" in v.figure.layout.title.text and "signed" not in v.figure.data[0].colorbar.title.text


def test_cost_matrix_view_without_teacher(digits):
    x = 80.0 * torch.randn(2, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = gits_search(digits, x, grid_steps=8)
    v = wt.CostMatrixView(s, nfe=12)
    assert v.metric_dropdown is None and v.nfe_slider.max == 8 and v.nfe_slider.value == 8
    with pytest.raises(ValueError, match="search"):
        wt.CostMatrixView(s.cost)
    with pytest.raises(ValueError, match="solver"):
        wt.CostMatrixView(s, solver="rk4")


# --- error vs NFE ------------------------------------------------------------------------------------------
def _rows():
    """Rows as kit.trajectory.evaluation writes them: one schedule-None row per impossible (solver, NFE) cell,
    GITS once per coeff of a sweep. Errors: edm (1 + g) / nfe^2, gits@1 (0.5 + g) / nfe^2, gits@1.15
    (2 + g) / nfe^2, with g = 1 for "gmm" and 0 for "kde"."""
    rows = []
    for den in ("kde", "gmm"):
        g = float(den == "gmm")
        for solver in ("euler", "heun"):
            for nfe in range(3, 8):
                base = {"denoiser": den, "solver": solver, "nfe": nfe}
                if solver == "heun" and nfe % 2:
                    rows.append({**base, "schedule": None, "coeff": None, "error": None})
                    continue
                rows.append({**base, "schedule": "edm", "coeff": None, "error": (1 + g) / nfe**2})
                for c, a in ((1.0, 0.5), (1.15, 2.0)):
                    rows.append({**base, "schedule": "gits", "coeff": c, "error": (a + g) / nfe**2})
    return rows


def test_error_vs_nfe_figure():
    rows = _rows()
    fig = wt.error_vs_nfe_figure(rows, denoiser="gmm")
    assert [a.text for a in fig.layout.annotations] == ["euler", "heun"]
    assert len(fig.data) == 6 and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert [t.name for t in fig.data if t.showlegend] == ["edm", "gits@1", "gits@1.15"]
    heun_gits = [t for t in fig.data if t.xaxis == "x2" and t.name == "gits@1"][0]
    assert list(heun_gits.x) == [3, 4, 5, 6, 7]
    np.testing.assert_allclose(_arr(heun_gits.y), [np.nan, 1.5 / 16, np.nan, 1.5 / 36, np.nan])
    euler_edm = [t for t in fig.data if t.xaxis == "x" and t.name == "edm"][0]
    np.testing.assert_allclose(euler_edm.y, [2 / n**2 for n in range(3, 8)])
    one = wt.error_vs_nfe_figure(rows, denoiser="kde", coeff=1.15)
    assert sorted({t.name for t in one.data}) == ["edm", "gits@1.15"]
    with pytest.raises(ValueError, match="denoiser"):
        wt.error_vs_nfe_figure(rows)
    with pytest.raises(ValueError, match="denoiser"):
        wt.error_vs_nfe_figure(rows, denoiser="unet")
    with pytest.raises(ValueError, match="coeff"):
        wt.error_vs_nfe_figure([r for r in rows if r["schedule"] == "gits"], denoiser="kde", coeff=7.0)
    with pytest.raises(ValueError, match=r"rows\[1\]: error"):
        wt.error_vs_nfe_figure([rows[0], {**rows[1], "error": float("nan")}])
    with pytest.raises(ValueError, match="duplicate"):
        wt.error_vs_nfe_figure(rows[:1] * 2)
    with pytest.raises(ValueError, match="rows"):
        wt.error_vs_nfe_figure([])


def test_error_table_view_dropdowns():
    rows = _rows() + [{"denoiser": "unet", "solver": "ipndm", "schedule": "edm", "nfe": 4, "error": 0.5}]
    v = wt.ErrorTableView(rows)
    assert v.denoiser_dropdown.value == "kde" and list(v.solver_dropdown.options) == ["euler", "heun"]
    assert v.lines == ["edm", "gits@1", "gits@1.15"]
    v.solver_dropdown.value = "heun"
    edm = v.figure.data[0]
    np.testing.assert_allclose(_arr(edm.y), [np.nan, 1 / 16, np.nan, 1 / 36, np.nan])
    assert "<b>0.03125</b>" in v.table.value  # best at NFE 4: gits@1, 0.5 / 16
    assert "<b>0.0625</b>" not in v.table.value and "0.0625" in v.table.value  # edm: shown, not best
    assert v.table.value.count("–") == 3 * 3  # 3 lines x 3 impossible NFEs
    v.denoiser_dropdown.value = "unet"
    assert list(v.solver_dropdown.options) == ["ipndm"] and v.solver_dropdown.value == "ipndm"
    assert list(v.figure.data[0].x) == [4] and v.figure.data[1].visible is False
    assert "unet, ipndm" in v.figure.layout.title.text
    only = wt.ErrorTableView(rows, coeff=1.0)
    assert only.lines == ["edm", "gits@1"]


# --- digit strips ------------------------------------------------------------------------------------------
def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip((x + 1) / 2, 0, 1) * 255).astype(np.uint8)


def test_digit_strips_pixels(digit_traj):
    xs, den, sig = digit_traj["xs"], digit_traj["denoised"], digit_traj["sigmas"]
    v = wt.DigitStrips(xs, den, sig, n_show=5)
    idx = [0, 3, 6, 10, 13]  # round(linspace(0, 13, 5))
    np.testing.assert_array_equal(v.indices, idx)
    f = v.figure
    assert len(f.data) == 10
    for b in (0, 2):
        v.slider.value = b
        for k, i in enumerate(idx):
            np.testing.assert_array_equal(f.data[k].z, _u8(xs[i, b].reshape(8, 8)))
            np.testing.assert_array_equal(f.data[5 + k].z, _u8(den[i, b].reshape(8, 8)))
    assert f.layout.annotations[0].text == f"σ {sig[0]:.3g}"
    with pytest.raises(ValueError, match="image_shape"):
        wt.DigitStrips(xs, den, sig, image_shape=(8, 9))
    with pytest.raises(ValueError, match="sample"):
        wt.DigitStrips(xs, den, sig, sample=3)


# --- what the front end receives -----------------------------------------------------------------------------
@pytest.fixture
def sent(monkeypatch):
    """Every comm message the widgets send (outside a kernel the comm is a DummyComm that drops them)."""
    import comm

    messages = []
    monkeypatch.setattr(comm.DummyComm, "publish_msg",
                        lambda self, msg_type, data=None, metadata=None, buffers=None, **kw: messages.append(data))
    return messages


def test_every_message_is_json_without_nan(sent, ring, digit_traj, search):
    """NaN or inf in a message is not JSON: jupyter-client warns in the cell ("Message serialization failed") and
    newer versions drop the message, so the figure never updates. Build each view, move its controls, check."""
    import json

    views = [wt.Trajectory2DExplorer(ring["xs"], ring["denoised"], ring["sigmas"]), wt.StatsView(
        ex.stats_vs_sigma(digit_traj["xs"], digit_traj["denoised"], digit_traj["sigmas"])),
        wt.ProjectionView([_projection(search, 5, 0), _projection(search, 5, 1)]),
        wt.DigitStrips(digit_traj["xs"], digit_traj["denoised"], digit_traj["sigmas"], n_show=5),
        wt.ErrorTableView(_rows())]
    cost = wt.CostMatrixView(search, solver="ipndm", nfe=6, coeff=1.15)
    cost.nfe_slider.value, cost.coeff_slider.value, cost.metric_dropdown.value = 8, 0.9, "l1"
    views[0].slider.value = 5
    views[2].dropdown.value = 1
    assert views and sent, "no message was recorded"
    for data in sent:
        json.dumps(data, allow_nan=False, default=repr)  # raises ValueError on NaN / inf
    assert np.isnan(np.asarray(cost.figure.data[0].z, dtype=float)[np.tril_indices(len(search.grid))]).all()


def test_boomerang_view_draws_every_trajectory_and_toggles_denoising(digit_traj):
    xs, denoised = digit_traj["xs"], digit_traj["denoised"]
    b = ex.boomerangs(xs, denoised)
    view = wt.BoomerangView(b)
    n = len(b["x"])
    assert len(view.x_traces) == len(view.d_traces) == n
    np.testing.assert_allclose(view.x_traces[1].x, b["x"][1, :, 0])
    np.testing.assert_allclose(view.d_traces[0].z, b["D"][0, :, 2])
    assert all(t.visible for t in view.d_traces)
    view.toggle.value = False
    assert not any(t.visible for t in view.d_traces) and all(t.visible is not False for t in view.x_traces)
    with pytest.raises(ValueError, match="boomerangs"):
        wt.BoomerangView({"x": b["x"]})


def test_gap_figure_draws_the_three_errors_over_log_sigma():
    gap = {"sigma": [0.01, 0.1, 1.0], "gap": [0.01, 0.05, 0.1], "learned": [0.01, 0.06, 0.3],
           "optimal": [0.0, 0.01, 0.25]}
    fig = wt.gap_figure(gap, "digits")
    assert [t.name for t in fig.data] == ["gap", "learned", "optimal"]
    np.testing.assert_allclose(fig.data[2].y, gap["optimal"])
    assert fig.layout.xaxis.type == "log" and fig.data[2].line.dash == "dot" and "digits" in fig.layout.title.text
    with pytest.raises(ValueError, match="missing keys"):
        wt.gap_figure({"sigma": [1.0], "gap": [0.1]}, "x")
