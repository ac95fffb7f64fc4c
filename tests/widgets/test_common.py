"""Widgets without a browser: build, set traits (as a front end would), check the FigureWidget data/layout."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import plotly.io as pio
import pytest
import torch
import torch.nn.functional as F
from skimage.measure import find_contours

import widgets.common as wc
from widgets import viz


def _u8(x: np.ndarray, signed: bool = False) -> np.ndarray:
    """Independent reference for display scaling: [0, 1] (or [-1, 1]) floats -> uint8."""
    x = (x + 1.0) / 2.0 if signed else x
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _cone(n: int, radius: float, centre: float) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return np.clip(1.0 - np.hypot(yy - centre, xx - centre) / radius, 0.0, None)


def _contour_xy(heat: np.ndarray, level: float, scale: float = 1.0, offset: float = 0.0):
    xs, ys = [], []
    for c in find_contours(heat, level):
        ys.extend(list(c[:, 0] * scale + offset) + [None])
        xs.extend(list(c[:, 1] * scale + offset) + [None])
    return xs, ys


def _floats(seq) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in seq], dtype=float)


# --- setup -------------------------------------------------------------------------------------------------
def test_renderer_set_on_import():
    assert pio.renderers.default == "plotly_mimetype+notebook_connected"


def test_display_hook_registered_on_import(monkeypatch):
    run = pytest.importorskip("kit.core.run")
    calls = []
    monkeypatch.setattr(run, "set_display_hook", calls.append)
    importlib.reload(wc)
    assert calls == [wc.show_record_table]


# --- helpers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), [((5, 7), (9, 4)), ((6, 6), (13, 17)), ((8, 3), (8, 3))])
def test_resize_bilinear_matches_torch(src, dst):
    x = np.random.default_rng(0).normal(size=src)
    ref = F.interpolate(torch.from_numpy(x)[None, None], size=dst, mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(viz.resize_bilinear(x, dst), ref.numpy(), atol=1e-12)


def test_image_conversion_layouts_and_scaling():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(2, 3, 5, 6)).astype(np.float32)
    imgs = viz.split_images(torch.from_numpy(x))  # torch: channels first
    out = [viz.to_uint8(im, viz.signed_range(imgs)) for im in imgs]
    assert out[1].shape == (5, 6, 3)
    np.testing.assert_array_equal(out[1], _u8(x[1].transpose(1, 2, 0), signed=True))
    rgba = rng.integers(0, 256, size=(4, 4, 4), dtype=np.uint8)
    a = rgba[..., 3:] / 255.0
    expected = np.round(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    np.testing.assert_array_equal(viz.to_uint8(rgba, False), expected)
    # a numpy image with channels first is recognised by its shape
    assert viz.split_images([np.zeros((3, 5, 6))])[0].shape == (5, 6, 3)
    assert viz.to_uint8(np.zeros((5, 6, 1), np.uint8), False).shape == (5, 6)


def test_downsample_is_block_mean():
    img = np.arange(36, dtype=np.uint8).reshape(6, 6)
    out = viz.downsample(img, 3)
    assert out.shape == (2, 2)
    assert out[1, 0] == round(img[3:6, 0:3].mean())
    assert viz.downsample_factor((600, 100), 256) == 3


# --- ImageGrid ---------------------------------------------------------------------------------------------
def test_image_grid_grey_layout_and_update():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(5, 8, 9))
    g = wc.ImageGrid(x, titles=list("abcde"), cols=3)
    fig = g.figure
    assert len(fig.data) == 5 and all(t.type == "heatmap" for t in fig.data)
    for i, t in enumerate(fig.data):
        np.testing.assert_array_equal(t.z, _u8(x[i]))
        yax = fig.layout["yaxis" + t.yaxis[1:]]
        assert yax.autorange == "reversed" and yax.scaleanchor == t.xaxis
    assert fig.data[4].xaxis == "x5"  # 2 rows x 3 cols
    assert [a.text for a in fig.layout.annotations] == list("abcde")
    y = rng.uniform(-1, 1, size=(5, 8, 9))  # negative values: read as [-1, 1]
    g.update(y, titles=list("vwxyz"))
    assert g.figure is fig
    for i, t in enumerate(fig.data):
        np.testing.assert_array_equal(t.z, _u8(y[i], signed=True))
    assert [a.text for a in fig.layout.annotations] == list("vwxyz")


def test_image_grid_rgb_torch_and_downsampling():
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    g = wc.ImageGrid(x, max_side=6)  # 12 / 6 -> 2x2 blocks
    assert [t.type for t in g.figure.data] == ["image", "image"]
    ref = _u8(x[1].permute(1, 2, 0).numpy())
    z = np.asarray(g.figure.data[1].z)
    assert z.shape == (6, 5, 3)
    assert z[2, 3, 1] == round(ref[4:6, 6:8, 1].astype(float).mean())


def test_image_grid_bad_input():
    with pytest.raises(ValueError, match="images"):
        wc.ImageGrid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="images"):
        wc.ImageGrid(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="titles"):
        wc.ImageGrid(np.zeros((2, 4, 4)), titles=["a"])
    with pytest.raises(ValueError, match="images"):
        wc.ImageGrid(np.full((2, 4, 4), np.nan))
    g = wc.ImageGrid(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="images"):
        g.update(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="images"):
        g.update(np.zeros((2, 4, 4, 3)))


# --- HeatmapOverlay ----------------------------------------------------------------------------------------
def test_overlay_alpha_and_threshold_contour():
    radius, centre = 12.0, 19.5
    heat = _cone(40, radius, centre)
    o = wc.HeatmapOverlay(np.random.default_rng(3).uniform(size=(40, 40, 3)), heat, alpha=0.5, threshold=0.5)
    hn = (heat - heat.min()) / (heat.max() - heat.min())
    np.testing.assert_allclose(o.figure.data[1].z, hn)
    assert o.figure.data[1].opacity == 0.5
    o.alpha_slider.set_state({"value": 0.2})  # as the browser would send it
    assert o.figure.data[1].opacity == pytest.approx(0.2)

    for t in (0.5, 0.8):
        o.threshold_slider.value = t
        xs, ys = _contour_xy(hn, t)
        cx, cy = _floats(o.figure.data[2].x), _floats(o.figure.data[2].y)
        np.testing.assert_allclose(cx, _floats(xs), equal_nan=True)
        np.testing.assert_allclose(cy, _floats(ys), equal_nan=True)
        # geometry: the boundary of {hn >= t} is the circle r = R (1 - t * max(heat))
        r = np.hypot(cx - centre, cy - centre)
        r = r[np.isfinite(r)]
        assert abs(r.mean() - radius * (1 - t * heat.max())) < 0.1
        assert o.mask.sum() == (hn >= t).sum()


def test_overlay_resize_set_image_and_downsampled_coordinates():
    heat = _cone(64, 20.0, 31.5)
    o = wc.HeatmapOverlay(np.zeros((64, 64)), heat[::4, ::4], threshold=0.5)  # grey image, 16x16 heat map
    assert o.figure.data[0].type == "heatmap"
    assert o.figure.data[0].colorscale == wc.go.Heatmap(colorscale="gray").colorscale
    ref = viz.resize_bilinear(heat[::4, ::4], (64, 64))
    np.testing.assert_allclose(o.heat, (ref - ref.min()) / (ref.max() - ref.min()))
    old_x = o.figure.data[2].x
    o.set_heatmap(heat)
    assert o.figure.data[2].x != old_x
    # bigger image, shown 2x2 block-averaged; axes stay in original pixels
    o.max_side = 64
    o.set_image(np.zeros((128, 128)))
    assert o.figure.data[0].dx == 2 and o.heat.shape == (64, 64)
    cx, cy = _floats(o.figure.data[2].x), _floats(o.figure.data[2].y)
    ok = np.isfinite(cx)
    # heat (64 px) stretched over 128 px: the cone's 0.5-level circle has radius ~ 2 * 20 * (1 - 0.5 max)
    r = np.hypot(cx[ok] - 63.5, cy[ok] - 63.5)
    assert abs(r.mean() - 40 * (1 - 0.5 * heat.max())) < 1.0


def test_overlay_without_normalisation():
    heat = 2.0 + 3.0 * _cone(20, 6.0, 9.5)
    o = wc.HeatmapOverlay(np.zeros((20, 20)), heat, threshold=3.0, normalize=False)
    np.testing.assert_allclose(o.figure.data[1].z, heat)
    assert o.threshold_slider.min == pytest.approx(2.0)
    assert o.threshold_slider.max == pytest.approx(heat.max())
    xs, _ = _contour_xy(heat, 3.0)
    np.testing.assert_allclose(_floats(o.figure.data[2].x), _floats(xs), equal_nan=True)
    o.set_heatmap(heat + 10.0)  # range moves entirely above the old one
    assert o.threshold_slider.min == pytest.approx(12.0)
    assert o.threshold_slider.max == pytest.approx(heat.max() + 10.0)


def test_overlay_bad_input():
    with pytest.raises(ValueError, match="heatmap"):
        wc.HeatmapOverlay(np.zeros((8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="heatmap"):
        wc.HeatmapOverlay(np.zeros((8, 8)), np.full((8, 8), np.inf))
    with pytest.raises(ValueError, match="image"):
        wc.HeatmapOverlay(np.zeros((2, 2, 8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="alpha"):
        wc.HeatmapOverlay(np.zeros((8, 8)), np.zeros((8, 8)), alpha=1.5)
    with pytest.raises(ValueError, match="threshold"):
        wc.HeatmapOverlay(np.zeros((8, 8)), np.zeros((8, 8)), threshold=2.0)


# --- LiveCurve ---------------------------------------------------------------------------------------------
def test_live_curve_points_axes_and_history():
    c = wc.LiveCurve(min_interval=0.0)
    steps = [0, 10, 20, 30, 40, 50, 60]
    for s in steps:
        c({"step": s, "kind": "train", "loss": 1.0 / (s + 1), "lr": np.float32(0.5), "note": "text"})
    c({"step": 60, "kind": "eval", "acc": torch.tensor(0.75)})
    c({"step": 70, "kind": "eval", "eval/acc": 0.8})
    names = [t.name for t in c.figure.data]
    assert names == ["loss", "lr", "eval/acc"]
    loss, lr, acc = c.figure.data
    assert list(loss.x) == steps and np.allclose(loss.y, [1.0 / (s + 1) for s in steps])
    assert lr.yaxis == "y2" and loss.yaxis == "y" and list(lr.y) == [0.5] * 7
    assert list(acc.x) == [60, 70] and np.allclose(acc.y, [0.75, 0.8]) and "markers" in acc.mode
    hs, hv = c.history["loss"]
    assert hs.dtype == np.int64 and list(hs) == steps and np.allclose(hv, [1.0 / (s + 1) for s in steps])


def test_live_curve_throttles_until_flush():
    c = wc.LiveCurve(min_interval=60.0, log_y=True)
    assert c.figure.layout.yaxis.type == "log"
    for s in range(5):
        c({"step": s, "loss": float(s)})
    assert list(c.figure.data[0].x) == [0]  # first event draws, the rest wait for the interval
    c.flush()
    assert list(c.figure.data[0].x) == [0, 1, 2, 3, 4] and list(c.figure.data[0].y) == [0, 1, 2, 3, 4]


def test_live_curve_key_filter_and_decimation():
    c = wc.LiveCurve(keys=["loss"], min_interval=0.0, max_points=10)
    for s in range(50):
        c({"step": s, "loss": s * 2.0, "lr": 1.0})
    assert [t.name for t in c.figure.data] == ["loss"]
    x = list(c.figure.data[0].x)
    assert len(x) <= 11 and x[0] == 0 and x[-1] == 49
    assert np.allclose(c.figure.data[0].y, [2.0 * v for v in x])
    assert len(c.history["loss"][0]) == 50 and "lr" not in c.history


def test_live_curve_bad_events():
    c = wc.LiveCurve()
    with pytest.raises(ValueError, match="event"):
        c({"loss": 1.0})
    with pytest.raises(ValueError, match="event"):
        c({"step": 1.5, "loss": 1.0})
    with pytest.raises(ValueError, match="event"):
        c({"step": 1, "kind": "test", "loss": 1.0})


# --- StepPlayer --------------------------------------------------------------------------------------------
def test_step_player_images_index_and_callbacks():
    frames = np.random.default_rng(4).uniform(0, 1, size=(4, 8, 8))
    frames[3] -= 1.5  # one negative frame: the whole sequence is read as [-1, 1]
    p = wc.StepPlayer(frames, labels=["t0", "t1", "t2", "t3"])
    assert p.link.source == (p.play, "value") and p.link.target == (p.slider, "value")
    assert p.play.max == p.slider.max == 3 and p.slider.continuous_update is False
    np.testing.assert_array_equal(p.figure.data[0].z, _u8(frames[0], signed=True))
    seen = []
    p.on_change(seen.append)
    p.index = 2
    np.testing.assert_array_equal(p.figure.data[0].z, _u8(frames[2], signed=True))
    assert p.figure.layout.title.text == "t2"
    p.slider.set_state({"value": 1})  # a browser-side slider (or Play) move
    assert p.index == 1 and p.figure.layout.title.text == "t1"
    assert seen == [2, 1]


def test_step_player_render_function():
    def render(f):
        return {"data": [{"type": "scatter", "x": [0, 1, 2], "y": [f, 2 * f, 3 * f]}],
                "layout": {"yaxis": {"range": [0, 3 * f + 1]}}}

    p = wc.StepPlayer([1, 2, 5], render=render)
    assert p.figure.data[0].type == "scatter" and list(p.figure.data[0].y) == [1, 2, 3]
    p.index = 2
    assert list(p.figure.data[0].y) == [5, 10, 15] and list(p.figure.layout.yaxis.range) == [0, 16]

    bad = wc.StepPlayer([1, 2], render=lambda f: {"data": [{"type": "scatter", "y": [f]}] * f})
    with pytest.raises(ValueError, match="render"):
        bad.index = 1


def test_step_player_bad_input():
    with pytest.raises(ValueError, match="labels"):
        wc.StepPlayer(np.zeros((3, 4, 4)), labels=["a"])
    with pytest.raises(ValueError, match="frames"):
        wc.StepPlayer([], render=lambda f: {})
    with pytest.raises(ValueError, match="frames"):
        wc.StepPlayer(np.zeros((4, 4)))
    p = wc.StepPlayer(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="index"):
        p.index = 3


def test_bare_object_displays_as_its_widget():
    g = wc.ImageGrid(np.zeros((1, 4, 4)))
    bundle = g._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == g.widget.model_id
    assert g.widget.children[0] is g.figure


# --- record table ------------------------------------------------------------------------------------------
def test_record_table_silent_outside_kernel(capsys):
    assert wc.show_record_table("loss", 0.5, {"loss": 0.5}) is None
    assert capsys.readouterr() == ("", "")


def test_record_table_in_fake_kernel(monkeypatch):
    import IPython
    import IPython.display

    shell = SimpleNamespace(kernel=object(), execution_count=7)
    shown, updates = [], []

    def display(obj, display_id=False):
        shown.append(obj.data)
        return SimpleNamespace(update=lambda o: updates.append(o.data))

    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(wc, "_cell_tables", {"cell": None, "values": {}, "handle": None})
    wc.show_record_table("fid", 12.345678, {"fid": 12.345678})
    wc.show_record_table("<n>", np.int64(3), {"fid": 12.345678, "<n>": 3})
    assert len(shown) == 1 and len(updates) == 1
    assert "<b>fid</b>" in shown[0] and ">12.35<" in shown[0]
    assert ">12.35<" in updates[0] and "<b>&lt;n&gt;</b>" in updates[0] and ">3<" in updates[0]
    assert "<b>fid</b>" not in updates[0]
    shell.execution_count = 8  # next cell: a fresh table with only its own metrics
    wc.show_record_table("acc", 0.9, {"fid": 1.0, "acc": 0.9})
    assert len(shown) == 2 and "acc" in shown[1] and "fid" not in shown[1]
