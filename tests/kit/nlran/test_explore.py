"""kit.nlran.explore: slice orientation on an asymmetric volume, lesion outlines, the lesion painter against
independent renders and forward passes, non-local attention rows against an explicit softmax(theta phi^T), and
ROC data against scikit-learn. Models are seeded random tiny NL-RANs: nothing here depends on learned behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage.measure import points_in_poly
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from kit.nlran import attention as att
from kit.nlran import explain
from kit.nlran import explore as ex
from kit.nlran import phantom as ph
from kit.nlran.data import window
from kit.nlran.metrics import classification_report
from kit.nlran.models import nlran3d

torch.set_num_threads(1)


def tiny_model(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return nlran3d("tiny", **overrides)


def lung_window(hu: np.ndarray) -> np.ndarray:
    """Hand formula of the lung window WL -600 / WW 1500: clip to [-1350, 150] HU, scale to [0, 1]."""
    return np.clip((hu.astype(np.float64) + 1350.0) / 1500.0, 0.0, 1.0).astype(np.float32)


def forward_probs(model: torch.nn.Module, hu: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(lung_window(hu))[None, None])
    return torch.softmax(logits.double(), dim=1)[0].numpy()


def footprint(spec: ph.PhantomSpec, lesion: ph.Lesion) -> np.ndarray:
    """Voxels whose HU this lesion alone changes (noise-free renders with and without it)."""
    quiet = dataclasses.replace(spec, noise_hu=0.0)
    without = ph.render(dataclasses.replace(quiet, lesions=())).hu
    with_it = ph.render(dataclasses.replace(quiet, lesions=(lesion,))).hu
    return with_it != without


# --- slices --------------------------------------------------------------------------------------------------
def test_slice_of_orientation_on_an_asymmetric_volume():
    D, H, W = 4, 5, 6
    vol = np.arange(D * H * W, dtype=np.float32).reshape(D, H, W)
    ax, co, sa = ex.slice_of(vol, "axial", 2), ex.slice_of(vol, "coronal", 3), ex.slice_of(vol, "sagittal", 1)
    assert ax.shape == (H, W) and co.shape == (D, W) and sa.shape == (D, H)
    for r in range(H):
        for c in range(W):
            assert ax[r, c] == vol[2, r, c]  # axial: y down the rows, x across
    for r in range(D):
        for c in range(W):
            assert co[r, c] == vol[r, 3, c]  # coronal: z down, x across
        for c in range(H):
            assert sa[r, c] == vol[r, c, 1]  # sagittal: z down, y across
    # one bright voxel at (z, y, x) = (1, 3, 4): where it shows up in each view
    spot = np.zeros((D, H, W))
    spot[1, 3, 4] = 1.0
    assert np.unravel_index(ex.slice_of(spot, "axial", 1).argmax(), (H, W)) == (3, 4)
    assert np.unravel_index(ex.slice_of(spot, "coronal", 3).argmax(), (D, W)) == (1, 4)
    assert np.unravel_index(ex.slice_of(spot, "sagittal", 4).argmax(), (D, H)) == (1, 3)
    assert ex.slice_of(spot, "axial", 0).max() == 0.0
    np.testing.assert_array_equal(ex.slice_of(torch.from_numpy(vol)[None], "coronal", 3), co)  # torch [1, D, H, W]
    assert [ex.axis_length((D, H, W), a) for a in ex.AXES] == [D, H, W]


def test_slice_of_bad_input():
    vol = np.zeros((4, 5, 6))
    with pytest.raises(ValueError, match="axis"):
        ex.slice_of(vol, "transverse", 0)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        ex.slice_of(vol, "coronal", 5)
    with pytest.raises(ValueError, match="index"):
        ex.slice_of(vol, "axial", -1)
    with pytest.raises(ValueError, match="volume"):
        ex.slice_of(np.zeros((4, 5)), "axial", 0)


def test_lesion_contour_encloses_the_mask():
    mask = np.zeros((12, 14), dtype=bool)
    mask[2:6, 3:8] = True  # a rectangle
    mask[7:12, 10:14] = True  # a block touching the bottom and right borders
    mask[9, 2] = True  # a single pixel
    xs, ys = ex.lesion_contour(mask)
    assert xs.shape == ys.shape and np.isnan(xs).sum() == 2  # three closed loops, NaN-separated
    loops = np.split(np.stack([ys, xs], axis=1), np.flatnonzero(np.isnan(xs)))
    loops = [lp[~np.isnan(lp[:, 0])] for lp in loops]
    for lp in loops:
        np.testing.assert_allclose(lp[0], lp[-1])  # closed
    centres = np.stack(np.mgrid[:12, :14], axis=-1).reshape(-1, 2).astype(float)
    inside = np.zeros(len(centres), dtype=bool)
    for lp in loops:
        inside |= points_in_poly(centres, lp)
    np.testing.assert_array_equal(inside, mask.ravel())
    # the outline runs half-way between inside and outside pixel centres
    assert np.nanmin(xs) == pytest.approx(1.5) and np.nanmax(xs) == pytest.approx(13.5)
    e = ex.lesion_contour(np.zeros((3, 3), dtype=bool))
    assert e[0].size == 0 and e[1].size == 0
    with pytest.raises(ValueError, match="2D"):
        ex.lesion_contour(np.zeros((2, 2, 2)))


# --- painter -------------------------------------------------------------------------------------------------
def test_painter_probabilities_follow_an_added_lesion():
    model = tiny_model(0)
    model.train()
    spec = ph.sample_spec("Normal", np.random.default_rng(3))
    p = ex.Painter(model, spec)
    probs = p.probabilities()
    assert model.training  # mode restored
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(probs, forward_probs(model, ph.render(spec).hu), atol=1e-6)
    before = p.hu.copy()
    centre = ph.voxel_to_normalised((16, 20, 8), 32)
    i = p.add("ggo", centre, radius=3.0)
    assert i == 0 and p.spec.noise_seed == spec.noise_seed and p.spec.label == spec.label
    lesion = ph.Lesion("ggo", centre, radius=3.0, hu=float(np.mean(ph.GGO_HU)), side="left")
    changed = p.hu != before
    assert changed.any() and not (changed & ~footprint(spec, lesion)).any()
    np.testing.assert_array_equal(p.hu, ph.render(ph.add_lesion(spec, lesion)).hu)
    after = p.probabilities()
    assert after.sum() == pytest.approx(1.0, abs=1e-12) and np.any(after != probs)
    np.testing.assert_allclose(after, forward_probs(model, p.hu), atol=1e-6)
    assert p.lesion_mask().any() and np.array_equal(p.lesion_mask(), p.lesion_mask(0))
    assert p.lesion_voxel(0) == (16, 20, 8)


def test_painter_move_and_remove_change_only_that_lesion():
    model = tiny_model(1)
    spec = ph.sample_spec("NCP", np.random.default_rng(5), n_blobs=4)
    p = ex.Painter(model, spec)
    old = spec.lesions[1]
    before, masks_before = p.hu.copy(), [p.lesion_mask(k) for k in range(4)]
    new_centre = ph.voxel_to_normalised((10, 22, 24), 32)
    p.move(1, new_centre, radius=2.5)
    moved = p.lesions[1]
    assert moved.centre == pytest.approx(new_centre) and moved.radius == 2.5 and moved.hu == old.hu
    changed = p.hu != before
    assert changed.any() and not (changed & ~(footprint(spec, old) | footprint(spec, moved))).any()
    for k in (0, 2, 3):
        np.testing.assert_array_equal(p.lesion_mask(k), masks_before[k])
    np.testing.assert_allclose(p.probabilities(), forward_probs(model, p.hu), atol=1e-6)
    before = p.hu.copy()
    p.remove(2)
    assert len(p.lesions) == 3 and p.lesions[2] == spec.lesions[3]
    changed = p.hu != before
    assert not (changed & ~footprint(spec, spec.lesions[2])).any()
    p.add("consolidation", ph.voxel_to_normalised((16, 16, 24), 32))
    assert p.lesions[-1].kind == "consolidation" and p.lesions[-1].side == "right"


def test_painter_heatmaps_and_errors():
    model = tiny_model(2)
    spec = ph.sample_spec("CP", np.random.default_rng(7))
    p = ex.Painter(model, ph.render(spec))  # a Phantom is accepted too
    hu = ph.render(spec).hu
    np.testing.assert_allclose(window(hu), lung_window(hu), atol=1e-6)
    # min-max scaled maps amplify float32 rounding of the input: feed the painter's exact windowing here
    want = explain.heatmaps(model, torch.from_numpy(window(hu))[None, None], class_idx=1)
    got = p.heatmaps(1)
    assert set(got) == {"AM1", "AM2", "AM3", "CAM", "Grad-CAM"}
    for k in got:
        assert got[k].shape == (32, 32, 32)
        np.testing.assert_allclose(got[k], want[k][0].numpy(), atol=1e-5, err_msg=k)
    with pytest.raises(ValueError, match="kind"):
        p.add("nodule", (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="index"):
        p.move(5, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="spec"):
        ex.Painter(model, "not a spec")


# --- non-local attention -------------------------------------------------------------------------------------
def peaked_model(seed: int, **overrides) -> torch.nn.Module:
    """A tiny NL-RAN whose theta and phi weights are scaled up, so attention rows are far from uniform."""
    model = tiny_model(seed, **overrides)
    with torch.no_grad():
        model.nonlocal_block.theta.weight.mul_(25.0)
        model.nonlocal_block.phi.weight.mul_(25.0)
    return model.eval()


@pytest.mark.parametrize("sub_sample", [False, True])
def test_attention_for_voxel_is_a_row_of_softmax_theta_phi(sub_sample, explicit_nonlocal_attention):
    model = peaked_model(3, nonlocal_sub_sample=sub_sample)
    x = torch.from_numpy(lung_window(ph.make_phantom("NCP", np.random.default_rng(0)).hu))[None, None]
    attn, grid, kv_grid = att.nonlocal_attention(model, x)
    assert grid == (8, 8, 8) and kv_grid == ((4, 4, 4) if sub_sample else (8, 8, 8))
    ref = explicit_nonlocal_attention(model, x)
    for voxel in [(0, 0, 0), (3, 5, 6), (7, 2, 1)]:
        w = att.attention_for_voxel(attn, grid, kv_grid, voxel)
        assert w.shape == kv_grid and w.sum() == pytest.approx(1.0, abs=1e-5)
        i = (voxel[0] * 8 + voxel[1]) * 8 + voxel[2]
        np.testing.assert_allclose(w.ravel(), ref[i], atol=1e-5)
        assert w.max() > 2.0 / w.size  # not uniform: the test can tell rows apart
    assert not np.allclose(att.attention_for_voxel(attn, grid, kv_grid, (0, 0, 0)),
                           att.attention_for_voxel(attn, grid, kv_grid, (7, 2, 1)))
    with pytest.raises(ValueError, match="voxel"):
        att.attention_for_voxel(attn, grid, kv_grid, (8, 0, 0))


def test_input_voxel_to_grid_and_back():
    assert att.input_voxel_to_grid((31, 0, 17), (32, 32, 32), (8, 8, 8)) == (7, 0, 4)
    for v in range(32):
        assert att.input_voxel_to_grid((v, v, v), (32, 32, 32), (8, 4, 2)) == (v // 4, v // 8, v // 16)
    assert att.input_voxel_to_grid((5, 6, 7), (8, 8, 8), (4, 4, 4)) == (2, 3, 3)  # query cell -> pooled key cell
    assert att.grid_to_input((0, 7, 3), (32, 32, 32), (8, 8, 8)) == (1.5, 29.5, 13.5)
    with pytest.raises(ValueError, match="voxel"):
        att.input_voxel_to_grid((32, 0, 0), (32, 32, 32), (8, 8, 8))


def test_nonlocal_attention_errors():
    x = torch.rand(1, 1, 32, 32, 32)
    with pytest.raises(ValueError, match="no non-local block"):
        att.nonlocal_attention(tiny_model(0, nonlocal_stage=None), x)
    with pytest.raises(ValueError, match="one volume"):
        att.nonlocal_attention(tiny_model(0), torch.rand(2, 1, 32, 32, 32))


# --- ROC data ------------------------------------------------------------------------------------------------
def random_report(seed: int = 0, n: int = 60, drop_class: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    if drop_class is not None:
        y[y == drop_class] = (drop_class + 1) % 3
    p = rng.dirichlet([1.0, 1.0, 1.0], n)
    p[np.arange(n), y] += rng.uniform(0, 0.6, n)  # some signal
    p /= p.sum(axis=1, keepdims=True)
    return y, p, classification_report(y, p)


def test_roc_data_matches_sklearn():
    y, p, rep = random_report(0)
    curves = ex.roc_data(rep)
    assert [c["name"] for c in curves] == ["NCP", "CP", "Normal", "micro", "macro"]
    for k in range(3):
        fpr, tpr, _ = roc_curve(y == k, p[:, k])
        np.testing.assert_allclose(curves[k]["fpr"], fpr)
        np.testing.assert_allclose(curves[k]["tpr"], tpr)
        assert curves[k]["auc"] == pytest.approx(roc_auc_score(y == k, p[:, k]), abs=1e-12)
    onehot = np.eye(3)[y]
    fpr, tpr, _ = roc_curve(onehot.ravel(), p.ravel())
    np.testing.assert_allclose(curves[3]["fpr"], fpr)
    assert curves[3]["auc"] == pytest.approx(roc_auc_score(onehot, p, average="micro"), abs=1e-12)
    assert curves[4]["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=1e-12)
    m, names = ex.confusion_data(rep)
    np.testing.assert_array_equal(m, confusion_matrix(y, p.argmax(1), labels=[0, 1, 2]))
    mn, _ = ex.confusion_data(rep, normalize=True)
    np.testing.assert_allclose(mn.sum(axis=1), 1.0)
    assert names == ["NCP", "CP", "Normal"]


def test_roc_data_skips_absent_classes():
    y, p, rep = random_report(1, drop_class=1)
    names = [c["name"] for c in ex.roc_data(rep)]
    assert names == ["NCP", "Normal", "micro", "macro"]
    with pytest.raises(ValueError, match="classification_report"):
        ex.roc_data({"accuracy": 1.0})


def test_lesion_affinity_equals_a_hand_sum_over_the_attention_rows(explicit_nonlocal_attention):
    import numpy as np
    import torch

    from kit.nlran.attention import lesion_affinity
    from kit.nlran.models import nlran3d

    torch.manual_seed(0)
    model = nlran3d("tiny").eval()
    with torch.no_grad():  # make the attention far from uniform
        model.nonlocal_block.theta.weight.mul_(25)
    x = torch.rand(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    mask = np.zeros((32, 32, 32), bool)
    mask[4:12, 8:16, 20:28] = True  # a 2x2x2 block of the 8^3 grid, whose cells are 4 voxels wide
    out = lesion_affinity(model, x, mask)
    attn = explicit_nonlocal_attention(model, x)
    cell = np.zeros((8, 8, 8), bool)
    cell[1:3, 2:4, 5:7] = True  # the voxels 4..11, 8..15, 20..27 in 4-voxel cells
    rows = attn[cell.ravel()][:, cell.ravel()].sum(1)
    assert out["query_cells"] == out["key_cells"] == 8
    assert out["on_lesion"] == pytest.approx(float(rows.mean()), rel=1e-5)
    assert out["uniform"] == pytest.approx(8 / 512) and out["ratio"] == pytest.approx(out["on_lesion"] * 64)
    with pytest.raises(ValueError, match="mostly lesion"):
        lesion_affinity(model, x, np.zeros((32, 32, 32), bool))


def test_focus_voxel_and_lesion_summary_work_with_and_without_lesions():
    model = tiny_model().eval()
    sick = ex.Painter(model, ph.sample_spec("NCP", np.random.default_rng(0), size=32))
    z, y, x = sick.focus_voxel()
    assert sick.lesion_mask()[z, y, x]  # a lesion voxel: the middle one in scan order
    pts = np.argwhere(sick.lesion_mask())
    assert (z, y, x) == tuple(pts[len(pts) // 2])
    normal = ex.Painter(model, ph.sample_spec("Normal", np.random.default_rng(0), size=32))
    assert not normal.lesion_mask().any()
    z, y, x = normal.focus_voxel()
    lungs = np.argwhere(normal.phantom.lung_mask)
    assert normal.phantom.lung_mask[z, y, x]
    d = ((lungs - lungs.mean(0)) ** 2).sum(1)
    assert ((np.array([z, y, x]) - lungs.mean(0)) ** 2).sum() == pytest.approx(d.min())
    assert "no lesion" in ex.nonlocal_lesion_summary(model, normal)["note"]
    out = ex.nonlocal_lesion_summary(model, sick, threshold=0.0)  # every touched cell counts: measurable
    assert out == att.lesion_affinity(model, sick.input(), sick.lesion_mask(), threshold=0.0)
    assert "mostly lesion" in ex.nonlocal_lesion_summary(model, sick, threshold=1.01)["note"]
