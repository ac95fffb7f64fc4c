"""Inpainted images for inpainting localisation (DeFI-Net, arXiv:2408.02191), built offline from bundled photos.

Four parts, each seeded and deterministic:

- **Photos** that ship inside installed wheels (``PHOTOS``, ``load_photo``) and a fixed split by source photo
  (``photo_split``), so that no photo gives crops to two splits.
- **Masks**: DeepFill-v2-style free-form strokes (``free_form_mask``) and rectangles (``box_mask``).
- **Fills** (``FILLS``, ``inpaint``): OpenCV's Telea and Navier-Stokes, scikit-image's biharmonic, and our own
  exemplar fill ("patch", a PatchMatch nearest-neighbour-field fill), so a detector does not learn only the
  smooth look of diffusion fills. No deep inpainter runs offline: GAN and diffusion fills are not here.
- **Generator**: ``make_sample`` (a random crop, a mask, a fill) and ``InpaintingSet``, a torch Dataset that
  balances fills over photos and can cache its samples on disk.

Loaders for the published data sets (IID, DEFACTO, IMDLBenCo) are in ``kit.data.inpainting_folders``.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from kit.data.patchfill import check_fill_inputs, patch_fill

# Photos bundled with scikit-image, scikit-learn and matplotlib (no download: checked with the network blocked).
# Left out: skimage's colorwheel, chessboard, logo, phantom, horse and binary_blobs (synthetic or binary),
# microaneurysms (a 102x102 low-contrast fundus patch, too small for crops), lfw_subset (25x25 faces), and
# eagle, brain, kidney, lily, skin, cells3d and the like (fetched by pooch on first use).
_SKIMAGE_RGB = {"astronaut": "astronaut", "chelsea": "chelsea", "coffee": "coffee", "rocket": "rocket",
                "immunohistochemistry": "immunohistochemistry", "hubble_deep_field": "hubble_deep_field",
                "retina": "retina", "motorcycle": "stereo_motorcycle"}
_SKIMAGE_GREY = ("camera", "brick", "grass", "gravel", "coins", "moon", "page", "text", "clock", "cell")
_SKLEARN = {"china": "china.jpg", "flower": "flower.jpg"}
_MATPLOTLIB = {"grace_hopper": "grace_hopper.jpg"}
PHOTOS = tuple(_SKIMAGE_RGB) + _SKIMAGE_GREY + tuple(_SKLEARN) + tuple(_MATPLOTLIB)
# Test: indoor colour, landscape, a regular texture, an outdoor scene and grey objects; val: an animal, a
# random texture and a motion-blurred object. Textures are spread over the splits (grass / gravel / brick).
_TEST = ("coffee", "china", "brick", "rocket", "coins")
_VAL = ("chelsea", "gravel", "clock")
FILLS = ("telea", "ns", "biharmonic", "patch")
AUTHENTIC = "authentic"                 # the ``fill`` of an untouched crop in ``InpaintingSet``
_CACHE_VERSION = 1                      # bump when samples change, so that old cache files are not reused


# ------------------------------------------------------------------------------------------------- photos
def _check_photo(name: str) -> None:
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; valid names: {', '.join(PHOTOS)}")


@functools.cache
def _photo(name: str) -> np.ndarray:
    if name in _SKIMAGE_RGB or name in _SKIMAGE_GREY:
        import skimage.data
        image = getattr(skimage.data, _SKIMAGE_RGB.get(name, name))()
        image = image[0] if isinstance(image, tuple) else image      # stereo_motorcycle: (left, right, disp)
    elif name in _SKLEARN:
        from sklearn.datasets import load_sample_image
        image = load_sample_image(_SKLEARN[name])
    else:
        from matplotlib.cbook import get_sample_data
        from PIL import Image
        with get_sample_data(_MATPLOTLIB[name]) as f:
            image = np.asarray(Image.open(f).convert("RGB"))
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    image.flags.writeable = False
    return image


def load_photo(name: str) -> np.ndarray:
    """Return the bundled photo ``name`` as read-only uint8 RGB ``[H, W, 3]`` (grey photos in all 3 channels).

    Loaded once per process; copy it before writing to it. Unknown names raise ValueError listing ``PHOTOS``.
    """
    _check_photo(name)
    return _photo(name)


def photo_split() -> dict[str, tuple[str, ...]]:
    """Return the fixed split of ``PHOTOS`` by source photo: ``{"train": ..., "val": ..., "test": ...}``.

    test = coffee, china, brick, rocket, coins; val = chelsea, gravel, clock; train = the 13 others. No photo is
    in two splits, so test crops never share content with training crops.
    """
    held = set(_TEST) | set(_VAL)
    return {"train": tuple(p for p in PHOTOS if p not in held), "val": _VAL, "test": _TEST}


# -------------------------------------------------------------------------------------------------- masks
def _check_mask_args(h: int, w: int, area: tuple[float, float]) -> tuple[int, int]:
    for arg, v in (("h", h), ("w", w)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{arg} must be a positive int, got {v!r}")
    if len(area) != 2 or not 0.0 < area[0] <= area[1] <= 1.0:
        raise ValueError(f"area must be (lo, hi) with 0 < lo <= hi <= 1, got {area!r}")
    lo_px, hi_px = math.ceil(area[0] * h * w - 1e-9), math.floor(area[1] * h * w + 1e-9)
    if lo_px > hi_px:
        raise ValueError(f"area {area!r} admits no whole number of pixels in a {h}x{w} mask")
    return lo_px, hi_px


def _draw_stroke(canvas: np.ndarray, rng: np.random.Generator) -> None:
    h, w = canvas.shape
    s = min(h, w)
    width = int(rng.integers(3, max(3, s // 6) + 1))
    y, x = float(rng.integers(0, h)), float(rng.integers(0, w))
    cv2.circle(canvas, (int(x), int(y)), width // 2, 1, -1)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    for _ in range(int(rng.integers(1, 7))):
        angle += rng.uniform(-0.4 * np.pi, 0.4 * np.pi)             # a gently turning polyline
        length = rng.uniform(s / 8.0, s / 3.0)
        y1 = float(np.clip(y + length * np.sin(angle), 0, h - 1))
        x1 = float(np.clip(x + length * np.cos(angle), 0, w - 1))
        cv2.line(canvas, (int(x), int(y)), (int(x1), int(y1)), 1, width)
        cv2.circle(canvas, (int(x1), int(y1)), width // 2, 1, -1)  # round joints
        y, x = y1, x1


def _exact_block(h: int, w: int, rng: np.random.Generator, lo_px: int, hi_px: int) -> np.ndarray:
    k = int(rng.integers(lo_px, hi_px + 1))                 # a block of exactly k pixels: full rows + part row
    bw = min(w, max(math.ceil(k / h), math.ceil(math.sqrt(k))))
    rows = math.ceil(k / bw)
    top, left = int(rng.integers(0, h - rows + 1)), int(rng.integers(0, w - bw + 1))
    flat = np.zeros(rows * bw, dtype=bool)
    flat[:k] = True
    mask = np.zeros((h, w), dtype=bool)
    mask[top:top + rows, left:left + bw] = flat.reshape(rows, bw)
    return mask


def free_form_mask(h: int, w: int, rng: np.random.Generator, area: tuple[float, float] = (0.05, 0.30),
                   box_prob: float = 0.3) -> np.ndarray:
    """Return a DeepFill-v2-style free-form mask [h, w] (bool) whose masked fraction lies within ``area``.

    1-3 strokes, each a polyline of 1-6 segments of length s/8-s/3 and width 3-s/6 (s = min(h, w)) with round
    joints, plus with probability ``box_prob`` a rectangle of sides s/6-s/2. Masks too small get more strokes,
    masks too large are eroded; a draw that still misses ``area`` is redrawn (after 50 draws, a block of the
    right size is used). Deterministic given the state of ``rng``.
    """
    lo_px, hi_px = _check_mask_args(h, w, area)
    if not 0.0 <= box_prob <= 1.0:
        raise ValueError(f"box_prob must be in [0, 1], got {box_prob!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    s, kernel = min(h, w), np.ones((3, 3), np.uint8)
    for _ in range(50):
        canvas = np.zeros((h, w), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            _draw_stroke(canvas, rng)
        if rng.random() < box_prob:
            bh, bw = (int(rng.integers(max(1, s // 6), max(2, s // 2) + 1)) for _ in range(2))
            top, left = int(rng.integers(0, max(1, h - bh + 1))), int(rng.integers(0, max(1, w - bw + 1)))
            canvas[top:top + bh, left:left + bw] = 1
        for _ in range(30):
            if canvas.sum() >= lo_px:
                break
            _draw_stroke(canvas, rng)
        while canvas.sum() > hi_px:
            canvas = cv2.erode(canvas, kernel)
        if lo_px <= canvas.sum() <= hi_px:
            return canvas.astype(bool)
    return _exact_block(h, w, rng, lo_px, hi_px)


def box_mask(h: int, w: int, rng: np.random.Generator, area: tuple[float, float] = (0.05, 0.30)) -> np.ndarray:
    """Return a mask [h, w] (bool) holding one axis-aligned rectangle whose area fraction lies within ``area``.

    The target fraction is uniform in ``area`` and the aspect ratio log-uniform in [1/2, 2]; the nearest
    rectangle whose pixel count is in range is placed uniformly at random. ValueError if none exists.
    """
    lo_px, hi_px = _check_mask_args(h, w, area)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    target = rng.uniform(lo_px, hi_px)
    want_h = math.sqrt(target * math.exp(rng.uniform(-math.log(2), math.log(2))))
    for bh in sorted(range(1, h + 1), key=lambda b: (abs(b - want_h), b)):
        bw_lo, bw_hi = max(1, math.ceil(lo_px / bh)), min(w, hi_px // bh)
        if bw_lo <= bw_hi:
            bw = int(np.clip(round(target / bh), bw_lo, bw_hi))
            break
    else:
        raise ValueError(f"no rectangle in a {h}x{w} mask has an area fraction within {area!r}")
    top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    mask = np.zeros((h, w), dtype=bool)
    mask[top:top + bh, left:left + bw] = True
    return mask


# -------------------------------------------------------------------------------------------------- fills
def inpaint(image: np.ndarray, mask: np.ndarray, method: str,
            rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Return ``image`` uint8 [H, W, 3] with the pixels of ``mask`` [H, W] (bool) filled by ``method``.

    Pixels outside the mask are returned unchanged, bit for bit; an empty mask returns a copy.

    - ``"telea"`` / ``"ns"``: ``cv2.inpaint`` (radius 3), fast marching (Telea) and Navier-Stokes.
    - ``"biharmonic"``: ``skimage.restoration.inpaint_biharmonic``, a smooth biharmonic interpolation.
    - ``"patch"``: ``patch_fill``, our exemplar fill: 7x7 patches copied from the same image by a
      coarse-to-fine PatchMatch search, so the hole gets real texture rather than a smooth surface.

    ``rng`` (a Generator or an int seed; None = seed 0) drives only the "patch" fill.
    """
    image, mask = check_fill_inputs(image, mask, method, FILLS)
    if not mask.any():
        return image.copy()
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        out = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), 3, flag)
    elif method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic
        filled = inpaint_biharmonic(image.astype(np.float64) / 255.0, mask, channel_axis=-1)
        out = np.clip(np.rint(filled * 255.0), 0, 255).astype(np.uint8)
    else:
        out = patch_fill(image, mask, rng)
    out = np.array(out, dtype=np.uint8)
    out[~mask] = image[~mask]
    return out


# ---------------------------------------------------------------------------------------------- generator
@dataclass(frozen=True)
class InpaintSample:
    """One generated sample: the inpainted ``image`` uint8 [H, W, 3], its ``mask`` bool [H, W] (True = filled),
    the untouched crop ``original`` uint8 [H, W, 3], the source ``photo`` and the ``fill`` method."""

    image: np.ndarray
    mask: np.ndarray
    original: np.ndarray
    photo: str
    fill: str


def random_crop(photo: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a random square crop of ``photo`` resized to uint8 [size, size, 3].

    The crop side is uniform in [0.5, 1.0] of the photo's short side, so crops show varied content and
    scales; shrinking uses cv2.INTER_AREA, enlarging (small photos, big sizes) cv2.INTER_LINEAR.
    """
    image = load_photo(photo)
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    h, w = image.shape[:2]
    side = max(1, int(round(rng.uniform(0.5, 1.0) * min(h, w))))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = image[top:top + side, left:left + side]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def make_sample(photo: str, fill: str, size: int, seed: int,
                area: tuple[float, float] = (0.05, 0.30)) -> InpaintSample:
    """Return an ``InpaintSample`` [size, size]: a random crop of ``photo``, a free-form mask, the ``fill``.

    Deterministic per arguments. The crop and mask depend on (photo, size, seed, area) only, so the same seed
    gives the same crop and mask under every fill: paired samples that differ only in the fill method.
    """
    _check_photo(photo)
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; valid: {', '.join(FILLS)}")
    rng = np.random.default_rng(seed)
    original = random_crop(photo, size, rng)
    mask = free_form_mask(size, size, rng, area=area)
    image = inpaint(original, mask, fill, rng=rng)
    _frozen(image, mask, original)
    return InpaintSample(image=image, mask=mask, original=original, photo=photo, fill=fill)


def _authentic_sample(photo: str, size: int, seed: int) -> InpaintSample:
    original = random_crop(photo, size, np.random.default_rng(seed))
    mask = np.zeros((size, size), dtype=bool)
    _frozen(original, mask)
    return InpaintSample(image=original, mask=mask, original=original, photo=photo, fill=AUTHENTIC)


class InpaintingSet(torch.utils.data.Dataset):
    """A torch Dataset of ``n`` generated inpainting samples, built lazily and kept in memory.

    Sample ``i`` crops ``photos[i % len(photos)]`` and fills it with ``fills[(i // len(photos)) % len(fills)]``,
    so photos and fills stay balanced; its seed is drawn from ``(seed, i)``. ``photos`` may also name a split
    of ``photo_split()`` ("train", "val", "test"). With ``authentic_frac`` > 0, a seeded choice of
    ``round(authentic_frac * n)`` samples are untouched crops with all-zero masks (fill "authentic").
    ``cache_dir`` stores each sample as an .npz named by its arguments (written atomically), so notebooks and
    later runs reuse them. ``augment`` applies a random horizontal flip and 90-degree rotation per call, drawn
    from torch's global RNG (the training loop seeds it).

    ``dataset[i]`` is ``dict(image=float32 [3, H, W] in [0, 1], mask=float32 [1, H, W] in {0, 1}, fill=str,
    photo=str, index=int)``; ``dataset.sample(i)`` is the ``InpaintSample`` itself.
    """

    def __init__(self, photos: Sequence[str] | str, fills: Sequence[str] = FILLS, size: int = 64, n: int = 64,
                 seed: int = 0, area: tuple[float, float] = (0.05, 0.30), authentic_frac: float = 0.0,
                 augment: bool = False, cache_dir: str | os.PathLike | None = None) -> None:
        if isinstance(photos, str):
            split = photo_split()
            if photos not in split:
                raise ValueError(f"photos must be a sequence of names or a split name {tuple(split)}, "
                                 f"got {photos!r}")
            photos = split[photos]
        self.photos, self.fills = tuple(photos), tuple(fills)
        if not self.photos or not self.fills:
            raise ValueError("photos and fills must not be empty")
        for p in self.photos:
            _check_photo(p)
        for f in self.fills:
            if f not in FILLS:
                raise ValueError(f"unknown fill {f!r}; valid: {', '.join(FILLS)}")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not 0.0 <= authentic_frac <= 1.0:
            raise ValueError(f"authentic_frac must be in [0, 1], got {authentic_frac!r}")
        if not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"size must be an int >= 8, got {size!r}")
        _check_mask_args(size, size, area)
        self.size, self.n, self.seed, self.area = int(size), int(n), int(seed), tuple(area)
        self.augment = augment
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        pick = np.random.default_rng([self.seed, 1]).permutation(self.n)[:int(round(authentic_frac * self.n))]
        self.authentic = frozenset(int(i) for i in pick)
        self._samples: list[InpaintSample | None] = [None] * self.n

    def __len__(self) -> int:
        return self.n

    def spec(self, i: int) -> tuple[str, str, int]:
        """Return ``(photo, fill, sample_seed)`` of sample ``i`` (fill "authentic" for untouched crops)."""
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} samples")
        photo = self.photos[i % len(self.photos)]
        fill = AUTHENTIC if i in self.authentic else self.fills[(i // len(self.photos)) % len(self.fills)]
        return photo, fill, int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0])

    def _path(self, photo: str, fill: str, seed: int) -> Path | None:
        if self.cache_dir is None:
            return None
        lo, hi = self.area
        return self.cache_dir / f"{photo}-{fill}-s{self.size}-seed{seed}-a{lo:g}-{hi:g}-v{_CACHE_VERSION}.npz"

    def sample(self, i: int) -> InpaintSample:
        """Return sample ``i`` as an ``InpaintSample`` (built, or read from ``cache_dir``, on first use)."""
        i = int(i)
        if i < 0:
            i += self.n
        photo, fill, seed = self.spec(i)
        if self._samples[i] is None:
            path = self._path(photo, fill, seed)
            if path is not None and path.exists():
                with np.load(path) as z:
                    image, mask, original = z["image"], z["mask"], z["original"]
                _frozen(image, mask, original)
                s = InpaintSample(image=image, mask=mask, original=original, photo=photo, fill=fill)
            else:
                s = (_authentic_sample(photo, self.size, seed) if fill == AUTHENTIC
                     else make_sample(photo, fill, self.size, seed, self.area))
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                    try:
                        with os.fdopen(fd, "wb") as f:
                            np.savez_compressed(f, image=s.image, mask=s.mask, original=s.original)
                        os.replace(tmp, path)
                    except BaseException:
                        Path(tmp).unlink(missing_ok=True)
                        raise
            self._samples[i] = s
        return self._samples[i]

    def build(self, progress: bool = True) -> InpaintingSet:
        """Return ``self`` after building every missing sample (a tqdm bar when more than 50 are missing)."""
        missing = [i for i in range(self.n) if self._samples[i] is None]
        if progress and len(missing) > 50:
            from tqdm.auto import tqdm
            missing = tqdm(missing, desc="inpainting samples")
        for i in missing:
            self.sample(i)
        return self

    def __getitem__(self, i: int) -> dict:
        s = self.sample(i)
        image = torch.from_numpy(s.image.copy()).permute(2, 0, 1).float().div_(255.0)
        mask = torch.from_numpy(s.mask.astype(np.float32))[None]
        if self.augment:
            k = int(torch.randint(0, 4, (1,)))
            flip = bool(torch.rand(()) < 0.5)
            if flip:
                image, mask = image.flip(-1), mask.flip(-1)
            image, mask = torch.rot90(image, k, (1, 2)), torch.rot90(mask, k, (1, 2))
            image, mask = image.contiguous(), mask.contiguous()
        return dict(image=image, mask=mask, fill=s.fill, photo=s.photo, index=int(i) % self.n)
