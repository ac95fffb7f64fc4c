"""NL-RAN widgets without a browser: build, move controls / click buttons, and compare the FigureWidget data
with numbers computed here (plain numpy indexing, hand-windowed forward passes, an explicit softmax(theta phi^T),
scikit-learn). Models are seeded random tiny NL-RANs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plotly.callbacks import Points
from skimage.measure import find_contours
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

import widgets.nlran as wn
from kit.nlran import explain
from kit.nlran import phantom as ph
from kit.nlran.data import window
from kit.nlran.metrics import classification_report
from kit.nlran.models import nlran3d

torch.set_num_threads(1)

SHAPE = (8, 12, 16)  # D, H, W all different: a transposed slice cannot pass


def tiny_model(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return nlran3d("tiny", **overrides).eval()


def lung_window(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu.astype(np.float64) + 1350.0) / 1500.0, 0.0, 1.0).astype(np.float32)


def forward_probs(model: torch.nn.Module, hu: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(lung_window(hu))[None, None]).double(), 1)[0].numpy()


def z_of(trace) -> np.ndarray:
    return np.asarray(trace.z, dtype=float)


def floats(seq) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in seq], dtype=float)


def outline(mask2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent outline: iso-line 0.5 of the zero-padded mask, loops joined with NaN."""
    xs, ys = [], []
    for c in find_contours(np.pad(mask2d.astype(float), 1), 0.5):
        xs += list(c[:, 1] - 1) + [np.nan]
        ys += list(c[:, 0] - 1) + [np.nan]
    return np.array(xs[:-1]), np.array(ys[:-1])


@pytest.fixture()
def volumes():
    rng = np.random.default_rng(0)
    vol = rng.random(SHAPE)
    maps = {"AM1": rng.random(SHAPE), "CAM": 5.0 * rng.random(SHAPE) - 1.0}
    mask = np.zeros(SHAPE, dtype=bool)
    mask[2:6, 3:8, 4:11] = True
    return vol, maps, mask


# --- slice scrubber ------------------------------------------------------------------------------------------
def test_scrubber_slider_follows_axis_and_draws_the_exact_slice(volumes):
    vol, maps, mask = volumes
    s = wn.SliceScrubber(vol, maps, lesion_mask=mask)
    base, over = s.figure.data[s.BASE], s.figure.data[s.OVERLAY]
    assert s.slice_slider.max == 7 and s.index == 4
    np.testing.assert_array_equal(z_of(base), vol[4])
    np.testing.assert_array_equal(z_of(over), maps["AM1"][4])
    s.slice_slider.value = 6
    np.testing.assert_array_equal(z_of(base), vol[6])
    s.axis_dropdown.value = "coronal"
    assert s.slice_slider.max == 11 and s.index == 6
    np.testing.assert_array_equal(z_of(base), vol[:, 6, :])
    s.axis_dropdown.value = "sagittal"
    assert s.slice_slider.max == 15 and s.index == 8
    s.slice_slider.value = 13
    np.testing.assert_array_equal(z_of(base), vol[:, :, 13])
    np.testing.assert_array_equal(z_of(over), maps["AM1"][:, :, 13])
    s.axis_dropdown.value = "axial"  # back to a shorter axis: the slider shrinks and stays valid
    assert s.slice_slider.max == 7 and s.index == 4
    np.testing.assert_array_equal(z_of(base), vol[4])
    assert s.figure.layout.yaxis.autorange == "reversed"  # row 0 at the top


def test_scrubber_overlay_opacity_and_contour(volumes):
    vol, maps, mask = volumes
    s = wn.SliceScrubber(vol, maps, lesion_mask=mask, index=3)
    over, cont = s.figure.data[s.OVERLAY], s.figure.data[s.CONTOUR]
    s.overlay_dropdown.value = "CAM"
    np.testing.assert_array_equal(z_of(over), maps["CAM"][3])
    assert over.zmin == pytest.approx(maps["CAM"].min()) and over.zmax == pytest.approx(maps["CAM"].max())
    s.opacity_slider.value = 0.3
    assert over.opacity == pytest.approx(0.3)
    xs, ys = outline(mask[3])
    np.testing.assert_allclose(floats(cont.x), xs)
    np.testing.assert_allclose(floats(cont.y), ys)
    assert np.nanmin(xs) == pytest.approx(3.5) and np.nanmax(ys) == pytest.approx(7.5)  # x 4..10, y 3..7
    s.axis_dropdown.value = "coronal"
    s.slice_slider.value = 5
    np.testing.assert_allclose(floats(cont.x), outline(mask[:, 5, :])[0])
    s.contour_checkbox.value = False
    assert cont.visible is False
    assert s.class_dropdown.disabled  # a plain dict of overlays has no class to choose


def test_scrubber_class_selector_calls_the_callable(volumes):
    vol, maps, _ = volumes
    calls = []

    def overlays(k):
        calls.append(k)
        return {name: m + (0 if k is None else 10 * (k + 1)) for name, m in maps.items()}

    s = wn.SliceScrubber(vol, overlays, index=2)
    assert calls == [None] and not s.class_dropdown.disabled and s.lesion_mask is None
    assert s.contour_checkbox.disabled
    s.class_dropdown.value = 2
    assert calls == [None, 2] and s.class_idx == 2
    np.testing.assert_array_equal(z_of(s.figure.data[s.OVERLAY]), maps["AM1"][2] + 30)
    s.overlay_dropdown.value = "CAM"
    s.class_dropdown.value = wn.PREDICTED
    assert calls[-1] is None
    np.testing.assert_array_equal(z_of(s.figure.data[s.OVERLAY]), maps["CAM"][2])


def test_scrubber_bad_input(volumes):
    vol, maps, _ = volumes
    with pytest.raises(ValueError, match="shape"):
        wn.SliceScrubber(vol, {"AM1": np.zeros((8, 12, 15))})
    with pytest.raises(ValueError, match="overlays"):
        wn.SliceScrubber(vol, [maps["AM1"]])


def test_heatmap_panels(volumes):
    vol, maps, mask = volumes
    fig = wn.heatmap_panels(vol, maps, mask, axis="sagittal", index=9)
    assert [a.text for a in fig.layout.annotations] == ["CT", "AM1", "CAM"]
    assert len(fig.data) == 2 + 3 * 2
    np.testing.assert_array_equal(z_of(fig.data[0]), vol[:, :, 9])
    np.testing.assert_array_equal(z_of(fig.data[3]), maps["AM1"][:, :, 9])
    np.testing.assert_array_equal(z_of(fig.data[6]), maps["CAM"][:, :, 9])
    np.testing.assert_allclose(floats(fig.data[7].x), outline(mask[:, :, 9])[0])


# --- lesion painter ------------------------------------------------------------------------------------------
def test_lesion_painter_add_move_remove():
    model = tiny_model(0)
    spec = ph.sample_spec("Normal", np.random.default_rng(4))
    w = wn.LesionPainter(model, spec)
    bars = w.figure.data[w.BARS]
    p0 = forward_probs(model, ph.render(spec).hu)
    np.testing.assert_allclose(np.asarray(bars.y, dtype=float), p0, atol=1e-6)
    assert w.selected is None and list(bars.x) == list(ph.CLASS_TITLES)

    w.z_slider.value, w.y_slider.value, w.x_slider.value = 15, 21, 7
    w.radius_slider.value = 3.5
    w.add_ggo_button.click()
    les = ph.Lesion("ggo", ph.voxel_to_normalised((15, 21, 7), 32), radius=3.5, hu=-500.0, side="left")
    hu1 = ph.render(ph.add_lesion(spec, les)).hu
    p1 = forward_probs(model, hu1)
    assert w.selected == 0 and np.any(p1 != p0)
    np.testing.assert_allclose(np.asarray(bars.y, dtype=float), p1, atol=1e-6)
    assert np.asarray(bars.y, dtype=float).sum() == pytest.approx(1.0)
    x1 = torch.from_numpy(window(hu1))[None, None]
    heat = explain.heatmaps(model, x1)
    np.testing.assert_allclose(z_of(w.figure.data[w.HEAT]), heat["AM1"][0, 15].numpy(), atol=1e-5)
    np.testing.assert_allclose(z_of(w.figure.data[w.BASE]), lung_window(hu1)[15], atol=1e-6)
    mask15 = ph.render(ph.add_lesion(spec, les)).lesion_mask[15]
    np.testing.assert_allclose(floats(w.figure.data[w.SELECTED].x), outline(mask15)[0])
    assert list(w.figure.data[w.CROSS].x) == [7] and list(w.figure.data[w.CROSS].y) == [21]

    w.source_dropdown.value = "CAM"
    w.class_dropdown.value = 1
    cam1 = explain.heatmaps(model, x1, class_idx=1)["CAM"][0, 15].numpy()
    np.testing.assert_allclose(z_of(w.figure.data[w.HEAT]), cam1, atol=1e-5)

    w.x_slider.value = 9
    w.move_button.click()
    assert w.painter.lesions[0].centre == pytest.approx(ph.voxel_to_normalised((15, 21, 9), 32))
    hu2 = ph.render(ph.move_lesion(ph.add_lesion(spec, les), 0, ph.voxel_to_normalised((15, 21, 9), 32))).hu
    np.testing.assert_allclose(np.asarray(bars.y, dtype=float), forward_probs(model, hu2), atol=1e-6)

    w.add_consolidation_button.click()
    assert w.selected == 1 and w.painter.lesions[1].kind == "consolidation"
    w.select(0)  # the sliders jump to lesion 0's centre, the slice goes through it
    assert w.centre_voxel == (15, 21, 9)
    w.remove_button.click()
    w.remove_button.click()
    assert w.selected is None and w.lesion_dropdown.options == ()
    np.testing.assert_allclose(np.asarray(bars.y, dtype=float), p0, atol=1e-6)  # back to the original phantom
    w.move_button.click()
    assert "no lesion selected" in w.status.value


# --- ROC -----------------------------------------------------------------------------------------------------
def _report(seed: int = 0, n: int = 60):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    p = rng.dirichlet([1.0, 1.0, 1.0], n)
    p[np.arange(n), y] += rng.uniform(0, 0.8, n)
    p /= p.sum(axis=1, keepdims=True)
    return y, p, classification_report(y, p)


def test_roc_figure_traces_equal_sklearn():
    y, p, rep = _report(0)
    fig = wn.roc_figure(rep)
    assert [t.name.split(" ")[0] for t in fig.data] == ["NCP", "CP", "Normal", "micro", "macro", "chance"]
    for k in range(3):
        fpr, tpr, _ = roc_curve(y == k, p[:, k])
        np.testing.assert_allclose(np.asarray(fig.data[k].x, dtype=float), fpr)
        np.testing.assert_allclose(np.asarray(fig.data[k].y, dtype=float), tpr)
        assert f"AUC {roc_auc_score(y == k, p[:, k]):.3f}" in fig.data[k].name
    onehot = np.eye(3)[y]
    fpr, tpr, _ = roc_curve(onehot.ravel(), p.ravel())
    np.testing.assert_allclose(np.asarray(fig.data[3].x, dtype=float), fpr)
    np.testing.assert_allclose(np.asarray(fig.data[3].y, dtype=float), tpr)
    title = fig.layout.title.text
    assert f"macro AUC {roc_auc_score(y, p, multi_class='ovr'):.4f}" in title
    assert f"micro AUC {roc_auc_score(onehot, p, average='micro'):.4f}" in title


def test_confusion_figure_and_roc_view():
    y, p, rep = _report(1)
    cm = confusion_matrix(y, p.argmax(1), labels=[0, 1, 2])
    fig = wn.confusion_figure(rep)
    np.testing.assert_array_equal(z_of(fig.data[0]), cm)
    assert list(fig.data[0].y) == ["NCP", "CP", "Normal"] and fig.layout.yaxis.autorange == "reversed"
    v = wn.ROCView(rep)
    v.normalize_checkbox.value = True
    np.testing.assert_allclose(z_of(v.confusion.data[0]), cm / cm.sum(axis=1, keepdims=True))
    y2, p2, rep2 = _report(2)
    v.update(rep2)
    fpr, _, _ = roc_curve(y2 == 0, p2[:, 0])
    np.testing.assert_allclose(np.asarray(v.figure.data[0].x, dtype=float), fpr)
    cm2 = confusion_matrix(y2, p2.argmax(1), labels=[0, 1, 2])
    np.testing.assert_allclose(z_of(v.confusion.data[0]), cm2 / cm2.sum(axis=1, keepdims=True))


# --- non-local view ------------------------------------------------------------------------------------------
def test_nonlocal_view_select_and_click(explicit_nonlocal_attention):
    model = tiny_model(5)
    with torch.no_grad():  # sharpen the attention so different voxels have clearly different rows
        model.nonlocal_block.theta.weight.mul_(25.0)
        model.nonlocal_block.phi.weight.mul_(25.0)
    hu = ph.make_phantom("NCP", np.random.default_rng(1)).hu
    x = torch.from_numpy(window(hu))[None, None]
    rows = explicit_nonlocal_attention(model, x)
    v = wn.NonLocalView(model, x)
    assert v.grid == (8, 8, 8) and v.kv_grid == (8, 8, 8)
    v.select(9, 30, 2)  # input voxel -> non-local cell (2, 7, 0)
    want = rows[(2 * 8 + 7) * 8 + 0].reshape(8, 8, 8)
    assert v.cell == (2, 7, 0) and v.key_slider.value == 2 and v.input_slider.value == 9
    np.testing.assert_allclose(z_of(v.figure.data[v.WEIGHTS]), want[2], atol=1e-5)
    assert v.figure.data[v.WEIGHTS].zmax == pytest.approx(want.max(), abs=1e-5)
    np.testing.assert_allclose(z_of(v.figure.data[v.BASE]), window(hu)[9])
    assert list(v.figure.data[v.CROSS].x) == [2] and list(v.figure.data[v.CROSS].y) == [30]
    v.key_slider.value = 6
    np.testing.assert_allclose(z_of(v.figure.data[v.WEIGHTS]), want[6], atol=1e-5)
    assert list(v.figure.data[v.QUERY].x) == []  # the query cell is on key slice 2, not 6
    # a click on the left panel at (x 20, y 5) of input slice 9 selects voxel (9, 5, 20) -> cell (2, 1, 5)
    v.figure.data[v.BASE]._dispatch_on_click(Points(point_inds=[0], xs=[20], ys=[5], trace_name="CT",
                                                    trace_index=0), None)
    assert v.voxel == (9, 5, 20) and v.cell == (2, 1, 5)
    want = rows[(2 * 8 + 1) * 8 + 5].reshape(8, 8, 8)
    np.testing.assert_allclose(z_of(v.figure.data[v.WEIGHTS]), want[2], atol=1e-5)
    np.testing.assert_allclose(v.weights.sum(), 1.0, atol=1e-5)


def test_nonlocal_view_ablation_raises():
    with pytest.raises(ValueError, match="no non-local block"):
        wn.NonLocalView(tiny_model(0, nonlocal_stage=None), torch.rand(1, 1, 32, 32, 32))
