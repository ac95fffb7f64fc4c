"""Bundled photos, masks, the four fills, the sample generator and the real-data loaders on tiny fixtures."""

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import kit.data.inpainting as inp
from kit.data.inpainting import (
    AUTHENTIC,
    FILLS,
    PHOTOS,
    InpaintingSet,
    box_mask,
    free_form_mask,
    inpaint,
    load_photo,
    make_sample,
    patch_fill,
    photo_split,
    random_crop,
)
from kit.data.inpainting_folders import DefactoInpainting, IIDFolder, JsonDataset, ManiDataset


def crop(name, size, seed=0):
    return random_crop(name, size, np.random.default_rng(seed))


def square_hole(size, lo, hi):
    mask = np.zeros((size, size), dtype=bool)
    mask[lo:hi, lo:hi] = True
    return mask


# ------------------------------------------------------------------------------------------------- photos
def test_every_bundled_photo_loads_as_read_only_uint8_rgb():
    for name in PHOTOS:
        photo = load_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3, name
        assert min(photo.shape[:2]) >= 150 and photo.std() > 10, name
        assert not photo.flags.writeable and load_photo(name) is photo
    grey = load_photo("brick")
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 0] == grey[..., 2]).all()


def test_unknown_photo_lists_valid_names():
    with pytest.raises(ValueError, match="unknown photo 'lena'.*valid names: astronaut"):
        load_photo("lena")


def test_split_is_by_photo_disjoint_and_complete():
    split = photo_split()
    assert set(split) == {"train", "val", "test"}
    names = [p for part in split.values() for p in part]
    assert len(names) == len(set(names)) and set(names) == set(PHOTOS)
    assert {"coffee", "china", "brick"} <= set(split["test"]) and len(split["val"]) == 3
    assert len(split["train"]) > len(split["test"])


# -------------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("h, w, area", [(64, 64, (0.05, 0.30)), (48, 80, (0.05, 0.30)), (32, 32, (0.2, 0.25))])
def test_free_form_mask_area_within_bounds_and_deterministic(h, w, area):
    fractions = []
    for seed in range(20):
        mask = free_form_mask(h, w, np.random.default_rng(seed), area=area)
        assert mask.shape == (h, w) and mask.dtype == bool
        assert area[0] <= mask.mean() <= area[1]
        assert np.array_equal(mask, free_form_mask(h, w, np.random.default_rng(seed), area=area))
        fractions.append(mask.mean())
    assert len(set(fractions)) > 10                      # varied, not one shape


def test_box_mask_is_one_rectangle_in_bounds():
    for seed in range(20):
        mask = box_mask(40, 60, np.random.default_rng(seed), area=(0.1, 0.2))
        ys, xs = np.nonzero(mask)
        assert 0.1 <= mask.mean() <= 0.2
        assert mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()


def test_mask_arguments_are_validated():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="h must be a positive int"):
        free_form_mask(0, 8, rng)
    with pytest.raises(ValueError, match="area must be"):
        free_form_mask(8, 8, rng, area=(0.3, 0.1))
    with pytest.raises(ValueError, match="box_prob"):
        free_form_mask(8, 8, rng, box_prob=1.5)
    with pytest.raises(ValueError, match="area .* admits no whole number of pixels"):
        box_mask(4, 4, rng, area=(0.01, 0.05))


# -------------------------------------------------------------------------------------------------- fills
@pytest.mark.parametrize("method", FILLS)
def test_fill_keeps_unmasked_pixels_and_changes_masked_ones(method):
    image = crop("coffee", 48)
    mask = free_form_mask(48, 48, np.random.default_rng(3), area=(0.15, 0.25))
    out = inpaint(image, mask, method, rng=0)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any()
    empty = inpaint(image, np.zeros((48, 48), bool), method)
    assert np.array_equal(empty, image) and empty is not image


def test_patch_fill_copies_texture_from_the_same_image():
    image = crop("brick", 64, seed=1)
    mask = square_hole(64, 16, 48)
    patch, smooth = inpaint(image, mask, "patch", rng=0), inpaint(image, mask, "biharmonic")

    def detail(x):                                       # mean |Laplacian| inside the hole
        lap = cv2.Laplacian(x.astype(np.float32).mean(2), cv2.CV_32F)
        return np.abs(lap[mask]).mean()
    assert detail(patch) > 3 * detail(smooth)
    known = {tuple(v) for v in image[~mask]}
    assert all(tuple(v) in known for v in patch[mask])   # every filled pixel is a copied pixel
    assert np.array_equal(patch, patch_fill(image, mask, np.random.default_rng(0)))
    assert not np.array_equal(patch, inpaint(image, mask, "patch", rng=1))


def test_patch_fill_handles_small_images_and_border_holes():
    image = crop("grass", 16)
    mask = np.zeros((16, 16), bool)
    mask[:10, :12] = True                                # no 7x7 patch avoids it: sources are relaxed
    out = inpaint(image, mask, "patch", rng=0)
    assert np.array_equal(out[~mask], image[~mask]) and (out[mask] != image[mask]).any()


def test_inpaint_rejects_bad_inputs():
    image = crop("coffee", 16)
    mask = square_hole(16, 4, 8)
    with pytest.raises(ValueError, match="grey image"):
        inpaint(image[..., 0], mask, "telea")
    with pytest.raises(ValueError, match="dtype float32"):
        inpaint(image.astype(np.float32), mask, "telea")
    with pytest.raises(ValueError, match=r"mask shape \(20, 20\) does not match image shape \(16, 16\)"):
        inpaint(image, np.zeros((20, 20), bool), "ns")
    with pytest.raises(ValueError, match="unknown fill method 'lama'; valid: telea, ns, biharmonic, patch"):
        inpaint(image, mask, "lama")
    with pytest.raises(ValueError, match="covers every pixel"):
        inpaint(image, np.ones((16, 16), bool), "patch")


# ---------------------------------------------------------------------------------------------- generator
def test_make_sample_is_deterministic_per_seed():
    a, b = make_sample("chelsea", "telea", 32, seed=5), make_sample("chelsea", "telea", 32, seed=5)
    c = make_sample("chelsea", "telea", 32, seed=6)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.original, c.original)
    assert a.image.shape == (32, 32, 3) and a.mask.shape == (32, 32) and (a.photo, a.fill) == ("chelsea", "telea")
    assert np.array_equal(a.image[~a.mask], a.original[~a.mask]) and 0.05 <= a.mask.mean() <= 0.30
    d = make_sample("chelsea", "ns", 32, seed=5)         # same crop and mask under another fill
    assert np.array_equal(d.mask, a.mask) and np.array_equal(d.original, a.original)
    with pytest.raises(ValueError, match="unknown fill 'blur'"):
        make_sample("chelsea", "blur", 32, seed=0)
    with pytest.raises(ValueError, match="unknown photo"):
        make_sample("nope", "telea", 32, seed=0)


def test_inpainting_set_shapes_and_balanced_fills():
    ds = InpaintingSet(["coffee", "brick"], FILLS, size=24, n=16, seed=1)
    items = [ds[i] for i in range(len(ds))]
    for i, item in enumerate(items):
        assert item["image"].shape == (3, 24, 24) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, 24, 24) and item["mask"].dtype == torch.float32
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0} and item["index"] == i
    fills = [item["fill"] for item in items]
    assert all(fills.count(f) == 4 for f in FILLS)
    assert [item["photo"] for item in items].count("brick") == 8
    assert InpaintingSet("test", ["telea"], size=16, n=2).photos == photo_split()["test"]


def test_inpainting_set_cache_dir_round_trip(tmp_path, monkeypatch):
    first = InpaintingSet(["coffee"], ["telea", "ns"], size=16, n=4, seed=2, cache_dir=tmp_path).build()
    assert len(list(tmp_path.glob("*.npz"))) == 4 and not list(tmp_path.glob("*.tmp"))

    def no_generation(*args, **kwargs):
        raise AssertionError("a cached sample was generated again")
    monkeypatch.setattr(inp, "make_sample", no_generation)
    second = InpaintingSet(["coffee"], ["telea", "ns"], size=16, n=4, seed=2, cache_dir=tmp_path)
    for i in range(4):
        assert torch.equal(first[i]["image"], second[i]["image"]) and torch.equal(first[i]["mask"], second[i]["mask"])


def test_inpainting_set_authentic_samples_have_zero_masks():
    ds = InpaintingSet(["gravel"], ["telea"], size=16, n=6, seed=0, authentic_frac=0.5)
    authentic = [i for i in range(6) if ds[i]["fill"] == AUTHENTIC]
    assert len(authentic) == 3
    for i in authentic:
        assert ds[i]["mask"].sum() == 0 and np.array_equal(ds.sample(i).image, ds.sample(i).original)


def test_inpainting_set_augment_flips_and_rotates_pairs():
    plain = InpaintingSet(["coffee"], ["telea"], size=16, n=1, seed=0)
    aug = InpaintingSet(["coffee"], ["telea"], size=16, n=1, seed=0, augment=True)
    torch.manual_seed(0)
    base = plain[0]
    views = {(k, f): (torch.rot90(base["image"].flip(-1) if f else base["image"], k, (1, 2)),
                      torch.rot90(base["mask"].flip(-1) if f else base["mask"], k, (1, 2)))
             for k in range(4) for f in (False, True)}
    seen = set()
    for _ in range(12):
        item = aug[0]
        key = next(key for key, (im, m) in views.items() if torch.equal(im, item["image"]))
        assert torch.equal(views[key][1], item["mask"])
        seen.add(key)
    assert len(seen) > 2


def test_inpainting_set_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown photo"):
        InpaintingSet(["coffee", "nope"], FILLS)
    with pytest.raises(ValueError, match="split name"):
        InpaintingSet("holdout", FILLS)
    with pytest.raises(ValueError, match="unknown fill 'gan'"):
        InpaintingSet(["coffee"], ["gan"])
    with pytest.raises(ValueError, match="authentic_frac"):
        InpaintingSet(["coffee"], FILLS, authentic_frac=2.0)


# ------------------------------------------------------------------------------------- real-data loaders
def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def rgb(h=12, w=10, value=0):
    return np.full((h, w, 3), value, np.uint8) + np.arange(w, dtype=np.uint8)[None, :, None]


def grey_mask(h=12, w=10):
    m = np.zeros((h, w), np.uint8)
    m[2:6, 3:7] = 200
    m[-1, 1] = 127                                       # below the 128 threshold: not manipulated
    return m


def test_iid_folder(tmp_path):
    for method in ("CA", "NS"):
        for name in ("0", "1"):
            save(tmp_path / method / f"{name}.png", rgb(value=int(name)))
            save(tmp_path / method / f"{name}_mask.png", grey_mask())
    ds = IIDFolder(tmp_path)
    assert len(ds) == 4 and [n for n, *_ in ds.pairs] == ["CA/0", "CA/1", "NS/0", "NS/1"]
    item = ds[1]
    assert item["image"].shape == (12, 10, 3) and item["image"].dtype == np.uint8 and item["name"] == "CA/1"
    assert item["mask"].dtype == bool and item["mask"].sum() == 16 and not item["mask"][-1, 1]
    assert len(IIDFolder(tmp_path, methods=("NS",))) == 2
    with pytest.raises(FileNotFoundError, match="folder .*GC does not exist; expected layout"):
        IIDFolder(tmp_path, methods=("GC",))


def test_defacto_inpainting_reads_tif_images_and_jpeg_masks(tmp_path):
    save(tmp_path / "inpainting_img" / "img" / "0_000000000260.tif", rgb())
    save(tmp_path / "inpainting_annotations" / "probe_mask" / "0_000000000260.jpg", grey_mask())
    ds = DefactoInpainting(tmp_path)
    item = ds[0]
    assert len(ds) == 1 and item["name"] == "0_000000000260"
    assert np.array_equal(item["image"], rgb()) and item["mask"][2:6, 3:7].all() and item["mask"].sum() == 16


def test_mani_dataset_pairs_by_sorted_order(tmp_path):
    for k in (2, 1):
        save(tmp_path / "Tp" / f"img{k}.jpg", rgb(value=10 * k))
        save(tmp_path / "Gt" / f"img{k}_gt.png", grey_mask() if k == 1 else np.zeros((12, 10), np.uint8))
    ds = ManiDataset(tmp_path)
    assert [ds[i]["name"] for i in range(2)] == ["img1.jpg", "img2.jpg"]
    assert ds[0]["mask"].sum() == 16 and ds[1]["mask"].sum() == 0


def test_json_dataset_with_negative_samples(tmp_path):
    save(tmp_path / "Tp" / "6.png", rgb())
    save(tmp_path / "Gt" / "6.png", grey_mask())
    save(tmp_path / "Au" / "8.png", rgb(value=5))
    (tmp_path / "set.json").write_text(json.dumps([["Tp/6.png", "Gt/6.png"], ["Au/8.png", "Negative"]]))
    ds = JsonDataset(tmp_path / "set.json")
    assert len(ds) == 2 and ds[0]["mask"].sum() == 16
    assert ds[1]["mask"].shape == (12, 10) and not ds[1]["mask"].any() and ds[1]["name"] == "Au/8.png"


def test_loaders_report_missing_empty_and_mismatched_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="inpainting_img.img does not exist; expected layout"):
        DefactoInpainting(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="JSON file .* does not exist"):
        JsonDataset(tmp_path / "missing.json")
    (tmp_path / "Tp").mkdir()
    (tmp_path / "Gt").mkdir()
    with pytest.raises(FileNotFoundError, match="no image/mask pairs found under .*expected layout: root/Tp"):
        ManiDataset(tmp_path)
    save(tmp_path / "Tp" / "a.png", rgb())
    save(tmp_path / "Gt" / "a.png", grey_mask(6, 5))
    ds = ManiDataset(tmp_path)
    with pytest.raises(ValueError, match=r"mask .*Gt.a\.png is 6x5 \(HxW\) but its image .*Tp.a\.png is 12x10"):
        ds[0]
    resized = ManiDataset(tmp_path, resize_masks=True)[0]["mask"]
    assert resized.shape == (12, 10) and resized.any()
