"""NL-RAN real-data path on tiny trees made here: CC-CCII slice folders, NIfTI volumes, preprocessing, splits, and
the errors and skipping of bad scans."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.transforms import Resize, ScaleIntensityRange  # imported here: MONAI takes seconds to import
from PIL import Image

from kit.nlran.data import PAPER_SPLIT, CCCIIDataset, NiftiDataset, preprocess, split_records
from kit.nlran.phantom import CLASSES
from kit.nlran.scans import ScanRecord, find_nifti, find_scans, load_nifti, load_slices

torch.set_num_threads(1)

SLICE_NAMES = ("1.png", "2.png", "3.png", "10.png", "11.png")  # natural order; as strings 10 < 11 < 2


def slice_image(number: int, label: int) -> np.ndarray:
    """A 16x16 uint8 slice whose values encode the slice number and the class."""
    img = np.full((16, 16), 7 * number + label, dtype=np.uint8)
    img[0, :] = np.arange(16, dtype=np.uint8) * 16  # a ramp row, to check orientation
    return img


def make_tree(root: Path, patients: int = 3) -> Path:
    """root/<class>/<patient>/<scan>/<5 slices>: 3 classes x ``patients`` patients x 1-2 scans."""
    for label, cls in enumerate(CLASSES):
        for p in range(patients):
            for s in range(1 + p % 2):
                d = root / cls / f"{cls}-patient{p}" / f"scan{s}"
                d.mkdir(parents=True)
                for name in SLICE_NAMES:
                    Image.fromarray(slice_image(int(name.split(".")[0]), label)).save(d / name)
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "ccccii")


def test_find_scans_lists_every_scan(tree):
    recs = find_scans(tree)
    assert len(recs) == 3 * (1 + 2 + 1)
    assert {r.label for r in recs} == {0, 1, 2}
    for r in recs:
        assert r.path == tree / CLASSES[r.label] / r.patient / r.scan
        assert r.patient.startswith(CLASSES[r.label])
    assert find_scans(tree) == recs  # deterministic order
    # extra files and hidden folders are ignored
    (tree / "NCP" / "notes.txt").write_text("x")
    (tree / "NCP" / ".cache").mkdir()
    assert find_scans(tree) == recs


def test_load_slices_natural_order_and_values(tree):
    scan = tree / "CP" / "CP-patient1" / "scan1"
    vol = load_slices(scan)
    assert vol.shape == (5, 16, 16) and vol.dtype == np.float32
    numbers = [1, 2, 3, 10, 11]
    expected = np.stack([slice_image(k, 1) for k in numbers]).astype(np.float32) / 255.0
    np.testing.assert_allclose(vol, expected, atol=1e-7)
    assert vol.min() >= 0.0 and vol.max() <= 1.0


def test_load_slices_other_formats(tmp_path):
    d = tmp_path / "scan"
    d.mkdir()
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., :] = 200
    Image.fromarray(rgb).save(d / "img-2.jpg", quality=100)
    Image.fromarray(np.full((8, 8), 60000, dtype=np.uint16)).save(d / "img-10.tif")
    vol = load_slices(d)
    assert vol.shape == (2, 8, 8)
    assert abs(vol[0].mean() - 200 / 255) < 0.02  # jpeg, grey
    np.testing.assert_allclose(vol[1], 60000 / 65535, atol=1e-6)


def test_preprocess_hu_matches_hand_formula_and_monai():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1500, 400, size=(6, 10, 12)).astype(np.float32)
    x = preprocess(hu, size=(6, 10, 12))
    assert x.shape == (1, 6, 10, 12) and x.dtype == torch.float32 and type(x) is torch.Tensor
    np.testing.assert_allclose(x[0].numpy(), np.clip((hu + 1350.0) / 1500.0, 0, 1), atol=1e-6)
    ref = ScaleIntensityRange(a_min=-1350, a_max=150, b_min=0, b_max=1, clip=True)(torch.from_numpy(hu)[None])
    np.testing.assert_allclose(x.numpy(), np.asarray(ref), atol=1e-6)
    # resizing = trilinear interpolation (align_corners=False) of the windowed volume
    y = preprocess(hu, size=(4, 8, 8))
    assert y.shape == (1, 4, 8, 8) and float(y.min()) >= 0 and float(y.max()) <= 1
    ref = F.interpolate(x[None], size=(4, 8, 8), mode="trilinear", align_corners=False)[0]
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)
    # a custom window
    z = preprocess(hu, size=(6, 10, 12), level=40.0, width=400.0)
    np.testing.assert_allclose(z[0].numpy(), np.clip((hu + 160.0) / 400.0, 0, 1), atol=1e-6)


def test_preprocess_slices_and_bad_input(tree):
    vol = load_slices(tree / "NCP" / "NCP-patient0" / "scan0")
    x = preprocess(vol, size=(8, 12, 12), hu=False)
    assert x.shape == (1, 8, 12, 12) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    ref = Resize((8, 12, 12), mode="trilinear")(torch.from_numpy(vol)[None])
    np.testing.assert_allclose(x.numpy(), np.asarray(ref), atol=1e-6)
    as_uint8 = preprocess((vol * 255).round().astype(np.uint8), size=(5, 16, 16), hu=False)
    np.testing.assert_allclose(as_uint8[0].numpy(), vol, atol=1e-6)
    const = preprocess(np.full((5, 16, 16), 0.25, dtype=np.float32), size=(7, 9, 11), hu=False)
    np.testing.assert_allclose(const.numpy(), 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="volume"):
        preprocess(np.zeros((4, 4)), size=(4, 4, 4))
    with pytest.raises(ValueError, match="size"):
        preprocess(np.zeros((4, 4, 4)), size=(4, 4))


def fake_records(n_patients: int, seed: int = 0) -> list[ScanRecord]:
    rng = np.random.default_rng(seed)
    recs = []
    for p in range(n_patients):
        label = int(rng.integers(0, 3))
        for s in range(int(rng.integers(1, 4))):
            recs.append(ScanRecord(Path(f"/x/{p}/{s}"), label, f"p{p}", f"s{s}"))
    return recs


def test_split_records_proportions_patients_and_determinism():
    recs = fake_records(600)
    out = split_records(recs, seed=0)
    assert set(out) == {"train", "val", "test"}
    assert sum(len(v) for v in out.values()) == len(recs)
    target = np.array(PAPER_SPLIT) / sum(PAPER_SPLIT) * len(recs)
    got = np.array([len(out[k]) for k in ("train", "val", "test")])
    assert np.all(np.abs(got - target) <= 3)  # at most one patient's scans off
    patients = [{r.patient for r in out[k]} for k in ("train", "val", "test")]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2]) and not (patients[1] & patients[2])
    again = split_records(recs, seed=0)
    assert again == out
    assert split_records(recs, seed=1) != out
    assert split_records(list(reversed(recs)), seed=0)["test"] == list(reversed(out["test"]))  # input order kept
    half = split_records(recs, fractions=(1, 1, 0), seed=0)
    assert half["test"] == [] and abs(len(half["train"]) - len(half["val"])) <= 3
    with pytest.raises(ValueError, match="fractions"):
        split_records(recs, fractions=(1, -1, 1))
    with pytest.raises(ValueError, match="empty"):
        split_records([])


def test_ccccii_dataset_splits_and_items(tree):
    recs = find_scans(tree)
    sets = {s: CCCIIDataset(tree, split=s, size=(4, 8, 8), seed=0) for s in ("train", "val", "test")}
    paths = [{r.path for r in ds.records} for ds in sets.values()]
    assert set().union(*paths) == {r.path for r in recs} and sum(map(len, paths)) == len(recs)
    pats = [{r.patient for r in ds.records} for ds in sets.values()]
    assert not (pats[0] & pats[1] or pats[0] & pats[2] or pats[1] & pats[2])
    assert all(len(ds) > 0 for ds in sets.values())
    ds = sets["train"]
    x, y = ds[0]
    assert x.shape == (1, 4, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert int(y) == ds.records[0].label and list(ds.labels) == [r.label for r in ds.records]
    ref = preprocess(load_slices(ds.records[0].path), (4, 8, 8), hu=False)
    torch.testing.assert_close(x, ref)
    full = CCCIIDataset(tree, split="all", size=(5, 16, 16))
    assert len(full) == len(recs)
    with pytest.raises(ValueError, match="split"):
        CCCIIDataset(tree, split="training")


def test_augmentation_is_seeded_and_keeps_the_range(tree):
    plain = CCCIIDataset(tree, split="all", size=(5, 16, 16))
    a = CCCIIDataset(tree, split="all", size=(5, 16, 16), augment=True, seed=3)
    b = CCCIIDataset(tree, split="all", size=(5, 16, 16), augment=True, seed=3)
    xa, xb = a[1][0], b[1][0]
    torch.testing.assert_close(xa, xb, rtol=0, atol=0)
    assert xa.shape == (1, 5, 16, 16) and 0.0 <= float(xa.min()) and float(xa.max()) <= 1.0
    assert not torch.equal(xa, plain[1][0])
    a.set_epoch(1)
    assert not torch.equal(a[1][0], xb)


def test_missing_root_and_no_class_folders(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        find_scans(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        CCCIIDataset(missing)
    (tmp_path / "other" / "covid").mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "other"))):
        find_scans(tmp_path / "other")
    with pytest.raises(ValueError, match="class folders"):
        NiftiDataset(tmp_path / "other")


def test_empty_scan_folder(tree):
    empty = tree / "Normal" / "Normal-patient0" / "scan9"
    empty.mkdir()
    (empty / "readme.txt").write_text("not a slice")
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        find_scans(tree)
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        CCCIIDataset(tree, split="all", size=(5, 16, 16))
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        load_slices(empty)
    with pytest.warns(UserWarning, match=re.escape(str(empty))):
        recs = find_scans(tree, skip_bad=True)
    assert empty not in [r.path for r in recs] and len(recs) == 12
    with pytest.warns(UserWarning, match=re.escape(str(empty))):
        ds = CCCIIDataset(tree, split="all", size=(5, 16, 16), skip_bad=True)
    assert ds.skipped == [empty] and len(ds) == 12


def test_corrupt_slice_raises_or_is_skipped(tree):
    bad_scan = tree / "CP" / "CP-patient2" / "scan0"
    bad_file = bad_scan / "3.png"
    bad_file.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError, match=re.escape(str(bad_file))):
        load_slices(bad_scan)
    ds = CCCIIDataset(tree, split="all", size=(5, 16, 16))
    i = [r.path for r in ds.records].index(bad_scan)
    with pytest.raises(ValueError, match=re.escape(str(bad_scan))):
        ds[i]
    ds = CCCIIDataset(tree, split="all", size=(5, 16, 16), skip_bad=True)
    with pytest.warns(UserWarning, match=re.escape(str(bad_scan))):
        x, y = ds[i]
    assert int(y) == ds.records[(i + 1) % len(ds)].label  # the next good scan stands in
    assert ds.skipped == [bad_scan]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once only
        items = [ds[k] for k in range(len(ds))]
    assert len(items) == len(ds) and ds.skipped == [bad_scan]
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    assert sum(len(yb) for _, yb in loader) == len(ds)
    # a slice with another shape is named too
    odd = tree / "NCP" / "NCP-patient1" / "scan0" / "12.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(odd)
    with pytest.raises(ValueError, match=re.escape(str(odd))):
        load_slices(odd.parent)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def hu_volume(seed: int, shape=(6, 7, 5)) -> np.ndarray:
    """An (i, j, k) = (x, y, slice) volume of whole HU values."""
    return np.random.default_rng(seed).integers(-1400, 300, size=shape).astype(np.float32)


def test_load_nifti_round_trip_and_axis_order(tmp_path):
    data = hu_volume(0)
    p = write_nifti(tmp_path / "vol.nii.gz", data)
    vol = load_nifti(p)
    assert vol.shape == (5, 7, 6) and vol.dtype == np.float32  # [D, H, W] = (k, j, i)
    np.testing.assert_array_equal(vol, data.transpose(2, 1, 0))
    np.testing.assert_array_equal(vol[2], data[:, :, 2].T)  # slice k = 2 is vol[2]
    np.testing.assert_array_equal(load_nifti(p, canonical=True), vol)  # identity affine: already canonical
    flipped = write_nifti(tmp_path / "flip.nii", data, np.diag([-1.0, 1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(load_nifti(flipped), vol)
    np.testing.assert_array_equal(load_nifti(flipped, canonical=True), vol[:, :, ::-1])
    four_d = write_nifti(tmp_path / "4d.nii.gz", data[..., None])
    np.testing.assert_array_equal(load_nifti(four_d), vol)
    missing = tmp_path / "none.nii.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_nifti(missing)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_nifti(bad)


def test_nifti_dataset_windowed_values(tmp_path):
    root = tmp_path / "nifti"
    vols = {}
    for label, cls in enumerate(CLASSES):
        for k in range(2):
            vols[(label, k)] = hu_volume(10 * label + k)
            write_nifti(root / cls / f"{cls.lower()}-{k}.nii.gz", vols[(label, k)])
    ds = NiftiDataset(root, size=(5, 7, 6))
    assert len(ds) == 6 and list(ds.labels) == [0, 0, 1, 1, 2, 2]
    for i, rec in enumerate(ds.records):
        x, y = ds[i]
        hu = vols[(rec.label, int(rec.scan[-1]))].transpose(2, 1, 0)
        assert x.shape == (1, 5, 7, 6) and int(y) == rec.label
        np.testing.assert_allclose(x[0].numpy(), np.clip((hu + 1350.0) / 1500.0, 0.0, 1.0), atol=1e-6)
    # a list of (path, label) with class names or indices
    items = [(rec.path, CLASSES[rec.label]) for rec in ds.records[:2]] + [(ds.records[4].path, 2)]
    ds2 = NiftiDataset(items, size=(5, 7, 6))
    assert list(ds2.labels) == [0, 0, 2]
    torch.testing.assert_close(ds2[2][0], ds[4][0])
    assert len(find_nifti(root)) == 6
    splits = [NiftiDataset(root, size=(5, 7, 6), split=s, seed=0) for s in ("train", "val", "test")]
    assert sorted(str(r.path) for s in splits for r in s.records) == sorted(str(r.path) for r in ds.records)
    with pytest.raises(ValueError, match="label"):
        NiftiDataset([(ds.records[0].path, "COVID")])


def test_nifti_dataset_bad_file(tmp_path):
    root = tmp_path / "nifti"
    good = write_nifti(root / "NCP" / "a.nii.gz", hu_volume(1))
    write_nifti(root / "Normal" / "c.nii.gz", hu_volume(2))
    bad = root / "CP" / "b.nii.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"broken")
    ds = NiftiDataset(root, size=(5, 7, 6))
    assert [r.path.name for r in ds.records] == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        ds[1]
    ds = NiftiDataset(root, size=(5, 7, 6), skip_bad=True)
    with pytest.warns(UserWarning, match=re.escape(str(bad))):
        ys = [int(ds[i][1]) for i in range(len(ds))]
    assert ys == [0, 2, 2] and ds.skipped == [bad]
    missing = tmp_path / "gone.nii"
    ds = NiftiDataset([(good, 0), (missing, 1)], size=(5, 7, 6))
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        ds[1]
