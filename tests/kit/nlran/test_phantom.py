"""NL-RAN procedural lung phantoms: determinism, shapes, tissue HU, lesion placement per class, editing, windowing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import ScaleIntensityRange

from kit.nlran.data import PhantomDataset, window
from kit.nlran.phantom import (
    CLASS_TITLES,
    CLASSES,
    CONSOLIDATION_HU,
    GGO_HU,
    KNOB_DEFAULTS,
    LUNG_HU,
    Lesion,
    add_lesion,
    make_phantom,
    move_lesion,
    normalised_to_voxel,
    remove_lesion,
    render,
    sample_spec,
    voxel_to_normalised,
)

torch.set_num_threads(1)


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def test_class_names():
    assert CLASSES == ("NCP", "CP", "Normal")
    assert len(CLASS_TITLES) == 3 and "COVID" in CLASS_TITLES[0]


@pytest.mark.parametrize("label", [0, 1, 2])
def test_same_seed_same_phantom_different_seed_differs(label):
    a = make_phantom(label, rng(3), 32)
    b = make_phantom(label, rng(3), 32)
    c = make_phantom(label, rng(4), 32)
    assert a.spec == b.spec
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.lesion_mask, b.lesion_mask)
    assert not np.array_equal(a.hu, c.hu)
    # render is deterministic for one spec, and the global numpy state plays no part
    np.random.seed(0)
    d = render(a.spec)
    np.random.seed(1)
    np.testing.assert_array_equal(d.hu, render(a.spec).hu)
    np.testing.assert_array_equal(d.hu, a.hu)


@pytest.mark.parametrize("size", [24, 32, 48, 64])
def test_shapes_and_dtypes(size):
    for label in range(3):
        ph = make_phantom(label, rng(size, label), size)
        assert ph.hu.shape == ph.lesion_mask.shape == ph.lung_mask.shape == (size,) * 3
        assert ph.hu.dtype == np.float32
        assert ph.lesion_mask.dtype == bool and ph.lung_mask.dtype == bool
        assert ph.label == label and ph.class_name == CLASSES[label]
        assert np.isfinite(ph.hu).all()
        assert (ph.lesion_mask.sum() > 0) == (label != 2)


def test_tissue_hu_in_normal_phantoms():
    lung_means, body, air = [], [], []
    for i in range(6):
        ph = make_phantom("Normal", rng(10, i), 32, noise_hu=0.0)
        lung_means.append(ph.hu[ph.lung_mask].mean())
        air.append(ph.hu[0, 0, 0])  # a corner is outside the body
        body.append(ph.hu[16, 16, 16])  # the midline between the lungs
        assert ph.hu.min() >= -1000.0 and ph.hu.max() <= 40.0 + 1e-3
    assert np.all(np.abs(np.array(lung_means) - LUNG_HU) < 30)  # vessel specks raise the mean a little
    np.testing.assert_allclose(air, -1000.0)
    np.testing.assert_allclose(body, 40.0)
    # the noise has the requested standard deviation
    a = make_phantom(2, rng(11), 32, noise_hu=0.0)
    b = make_phantom(2, rng(11), 32, noise_hu=25.0)
    assert abs(float(np.std(b.hu - a.hu)) - 25.0) < 1.0


def test_lesion_hu_ranges_without_noise():
    for i in range(8):
        ncp = make_phantom(0, rng(20, i), 32, noise_hu=0.0, n_vessels=0)
        v = ncp.hu[ncp.lesion_mask]
        # inside the mask a blob weight is > 0.5: HU between the half-way point and the highest peak
        assert v.min() > LUNG_HU + 0.5 * (GGO_HU[0] - LUNG_HU) - 1e-3 and v.max() <= GGO_HU[1] + 1e-3
        for les in ncp.spec.lesions:
            assert les.kind == "ggo" and GGO_HU[0] <= les.hu <= GGO_HU[1]
        cp = make_phantom(1, rng(21, i), 32, noise_hu=0.0, n_vessels=0)
        (les,) = cp.spec.lesions
        assert les.kind == "consolidation" and CONSOLIDATION_HU[0] <= les.hu <= CONSOLIDATION_HU[1]
        v = cp.hu[cp.lesion_mask]
        assert v.min() > LUNG_HU + 0.5 * (CONSOLIDATION_HU[0] - LUNG_HU) - 1e-3
        assert v.max() <= CONSOLIDATION_HU[1] + 1e-3
        assert np.mean(v >= les.hu - 150) > 0.6  # most of the lobe is dense, only the edge is soft


def test_blob_peak_and_half_max_radius():
    """A hand-placed blob on a voxel centre: peak HU exact, mask = the ball of its radius (2^-(r/R)^2 = 0.5)."""
    base = sample_spec(2, rng(5), 32, noise_hu=0.0, n_vessels=0)
    lung = base.lungs[1]
    idx = normalised_to_voxel(lung.centre, 32)
    les = Lesion("ggo", voxel_to_normalised(idx, 32), radius=3.0, hu=-450.0, side="right")
    ph = render(add_lesion(base, les))
    assert ph.hu[idx] == pytest.approx(-450.0)
    d, h, w = np.indices(ph.hu.shape)
    r = np.sqrt((d - idx[0]) ** 2 + (h - idx[1]) ** 2 + (w - idx[2]) ** 2)
    np.testing.assert_array_equal(ph.lesion_mask, (r < 3.0) & ph.lung_mask)
    off = (idx[0], idx[1], idx[2] + 1)  # one voxel away: lung + 2^-(1/3)^2 (peak - lung)
    assert ph.hu[off] == pytest.approx(LUNG_HU + 2 ** (-1 / 9) * (-450.0 - LUNG_HU), abs=1e-2)


def _halves(mask):
    n = mask.shape[2]
    return mask[:, :, : n // 2].sum(), mask[:, :, n // 2:].sum()


@pytest.mark.parametrize("size", [24, 32])
def test_ncp_bilateral_cp_unilateral_normal_empty(size):
    for i in range(25):
        ncp = make_phantom(0, rng(30, i), size)
        left, right = _halves(ncp.lesion_mask)
        assert left > 0 and right > 0
        assert 4 <= len(ncp.spec.lesions) <= 8
        cp = make_phantom(1, rng(31, i), size)
        left, right = _halves(cp.lesion_mask)
        assert (left > 0) != (right > 0)
        assert make_phantom(2, rng(32, i), size).lesion_mask.sum() == 0


def test_lesions_confined_to_lungs_and_posterior_leaning():
    ys = []
    for i in range(20):
        for label in (0, 1):
            ph = make_phantom(label, rng(40, i, label), 32)
            assert not (ph.lesion_mask & ~ph.lung_mask).any()
            clean = render(remove_lesion(ph.spec, 0)) if len(ph.spec.lesions) == 1 else None
            if clean is not None:  # outside the lungs a lesion changes nothing
                np.testing.assert_array_equal(ph.hu[~ph.lung_mask], clean.hu[~ph.lung_mask])
        ys += [les.centre[1] for les in make_phantom(0, rng(41, i), 32).spec.lesions]
    assert np.mean(ys) > 0.1  # larger y = posterior
    ncp = make_phantom(0, rng(42), 32)
    for les in ncp.spec.lesions:  # peripheral: normalised ellipsoid radius 0.55-0.95 in its lung
        lung = ncp.spec.lungs[0 if les.side == "left" else 1]
        q = np.sqrt(np.sum(((np.array(les.centre) - lung.centre) / np.array(lung.radii)) ** 2))
        assert 0.55 - 1e-9 <= q <= 0.95 + 1e-9


def test_knobs_change_the_lesions():
    small = [make_phantom(0, rng(50, i), 32, blob_radius=1.5).lesion_mask.sum() for i in range(5)]
    large = [make_phantom(0, rng(50, i), 32, blob_radius=4.5).lesion_mask.sum() for i in range(5)]
    assert np.mean(large) > 3 * np.mean(small)
    assert len(sample_spec(0, rng(51), 32, n_blobs=6).lesions) == 6
    lo = sample_spec(0, rng(52), 32, contrast=0.5).lesions
    hi = sample_spec(0, rng(52), 32, contrast=1.0).lesions
    for a, b in zip(lo, hi):
        assert a.hu - LUNG_HU == pytest.approx(0.5 * (b.hu - LUNG_HU))
    # radii scale with size
    r32 = sample_spec(0, rng(53), 32, blob_radius=3.0).lesions[0].radius
    r64 = sample_spec(0, rng(53), 64, blob_radius=3.0).lesions[0].radius
    assert (r32, r64) == (3.0, 6.0)
    assert set(KNOB_DEFAULTS) == {"blob_radius", "n_blobs", "contrast", "noise_hu", "n_vessels", "layout"}


@pytest.mark.parametrize("knobs, name", [
    ({"size": 8}, "size"), ({"size": 32.5}, "size"), ({"blob_radius": 0.0}, "blob_radius"),
    ({"blob_radius": (4.0, 2.0)}, "blob_radius"), ({"n_blobs": 1}, "n_blobs"), ({"n_blobs": (2.5, 4)}, "n_blobs"),
    ({"contrast": 0.0}, "contrast"), ({"contrast": 3.0}, "contrast"), ({"noise_hu": -1.0}, "noise_hu"),
    ({"n_vessels": -1}, "n_vessels"), ({"radius": 2.0}, "radius"),
])
def test_bad_knobs_raise_value_error_naming_them(knobs, name):
    with pytest.raises(ValueError, match=name):
        sample_spec(0, rng(0), **knobs)
    with pytest.raises(ValueError, match=name):
        PhantomDataset(3, **knobs)


def test_bad_label_rng_and_lesion():
    with pytest.raises(ValueError, match="label"):
        sample_spec(3, rng(0))
    with pytest.raises(ValueError, match="label"):
        sample_spec("covid", rng(0))
    with pytest.raises(ValueError, match="rng"):
        sample_spec(0, 123)
    with pytest.raises(ValueError, match="kind"):
        Lesion("tumour", (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="centre"):
        Lesion("ggo", (0.0, 2.0, 0.0))
    with pytest.raises(ValueError, match="radius"):
        Lesion("ggo", (0.0, 0.0, 0.0), radius=0.0)
    with pytest.raises(ValueError, match="side"):
        Lesion("ggo", (0.0, 0.0, 0.0), side="middle")
    with pytest.raises(ValueError, match="width"):
        window(np.zeros(3), width=0.0)


def _box_distance(shape, centre, size):
    idx = np.array(normalised_to_voxel(centre, size))
    d, h, w = np.indices(shape)
    return np.sqrt((d - idx[0]) ** 2 + (h - idx[1]) ** 2 + (w - idx[2]) ** 2)


def test_add_move_remove_change_only_where_expected():
    base = sample_spec(2, rng(60), 32)  # normal, noise on (held fixed by the spec's noise seed)
    ph0 = render(base)
    lung = base.lungs[0]
    c = (lung.centre[0], lung.centre[1] + 0.2, lung.centre[2])
    les = Lesion("ggo", c, radius=2.5, hu=-450.0, side="left")
    s1 = add_lesion(base, les)
    assert base.lesions == () and len(s1.lesions) == 1 and s1.noise_seed == base.noise_seed
    ph1 = render(s1)
    near = _box_distance(ph0.hu.shape, c, 32) <= 3 * 2.5 + 1
    changed = ph1.hu != ph0.hu
    assert changed.any() and not (changed & ~near).any()
    assert ph1.lesion_mask.any() and not (ph1.lesion_mask & ~near).any()
    # move: the old place is restored, the new place changes
    c2 = (lung.centre[0] - 0.3, lung.centre[1] - 0.1, lung.centre[2] - 0.05)
    s2 = move_lesion(s1, 0, c2)
    assert s2.lesions[0].centre == pytest.approx(c2) and s2.lesions[0].radius == 2.5
    ph2 = render(s2)
    near2 = _box_distance(ph0.hu.shape, c2, 32) <= 3 * 2.5 + 1
    assert not ((ph2.hu != ph0.hu) & ~near2).any()
    assert not (ph2.lesion_mask & ~near2).any() and ph2.lesion_mask.any()
    # remove: back to the lesion-free phantom exactly
    ph3 = render(remove_lesion(s2, 0))
    np.testing.assert_array_equal(ph3.hu, ph0.hu)
    assert not ph3.lesion_mask.any()
    # a consolidation added to a normal phantom stays in its lung; moving its plane changes the filled part
    cons = Lesion("consolidation", base.lungs[1].centre, hu=0.0, side="right", normal=(0.0, 1.0, 0.0))
    ph4 = render(add_lesion(base, cons))
    left, right = _halves(ph4.lesion_mask)
    assert left == 0 and right > 0
    ph5 = render(move_lesion(add_lesion(base, cons), 0, (0.0, 0.3, base.lungs[1].centre[2])))
    assert 0 < ph5.lesion_mask.sum() < ph4.lesion_mask.sum()
    with pytest.raises(ValueError, match="index"):
        remove_lesion(base, 0)
    with pytest.raises(ValueError, match="new_centre"):
        move_lesion(s1, 0, (0.0, 0.0))


def test_window_hand_formula_and_monai():
    hu = np.linspace(-1600, 500, 211, dtype=np.float32).reshape(1, 211)
    hand = np.array([[min(max((v - (-1350.0)) / 1500.0, 0.0), 1.0) for v in hu[0]]], dtype=np.float32)
    out = window(hu)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, hand, atol=1e-6)
    monai = ScaleIntensityRange(a_min=-1350, a_max=150, b_min=0, b_max=1, clip=True)(torch.from_numpy(hu))
    np.testing.assert_allclose(out, np.asarray(monai), atol=1e-6)
    t = window(torch.from_numpy(hu), level=-500.0, width=1000.0)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), np.clip((hu + 1000.0) / 1000.0, 0, 1), atol=1e-6)


def test_dataset_items_deterministic_and_order_independent():
    ds = PhantomDataset(7, seed=3, size=24)
    assert len(ds) == 7 and list(ds.labels) == [0, 1, 2, 0, 1, 2, 0]
    forward = [ds[i] for i in range(7)]
    backward = [PhantomDataset(7, seed=3, size=24)[i] for i in reversed(range(7))][::-1]
    for (xa, ya), (xb, yb) in zip(forward, backward):
        assert xa.shape == (1, 24, 24, 24) and xa.dtype == torch.float32 and ya.dtype == torch.int64
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert ya == yb
    x, y = forward[4]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and int(y) == 1
    np.testing.assert_array_equal(x[0].numpy(), window(ds.phantom(4).hu))
    other = PhantomDataset(7, seed=4, size=24)
    assert not torch.equal(other[0][0], forward[0][0])
    # the same item of a longer dataset is the same phantom
    torch.testing.assert_close(PhantomDataset(20, seed=3, size=24)[5][0], forward[5][0], rtol=0, atol=0)


def test_dataset_unbalanced_cache_and_knobs():
    ds = PhantomDataset(30, seed=0, size=24, balanced=False, cache=True, blob_radius=3.0)
    assert set(ds.labels) <= {0, 1, 2} and len(set(ds.labels)) > 1
    assert [int(ds[i][1]) for i in range(30)] == list(ds.labels)
    assert ds.phantom(0) is ds.phantom(0)  # cached
    assert all(les.radius == 3.0 * 24 / 32 for i in range(30) for les in ds.phantom(i).spec.lesions
               if les.kind == "ggo")
    unbalanced_again = PhantomDataset(30, seed=0, size=24, balanced=False)
    np.testing.assert_array_equal(unbalanced_again[7][0].numpy(), ds[7][0].numpy())
    with pytest.raises(ValueError, match="n must"):
        PhantomDataset(0)
    with pytest.raises(IndexError):
        ds.phantom(30)
