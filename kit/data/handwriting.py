"""Synthetic writers of the handwritten word "and", and the writer-verification protocol of arXiv:2407.21788.

The paper (VLM-HV, arXiv:2407.21788) decides whether two crops of the lowercase word "and" (CEDAR AND) come
from the same writer. Offline we need that task with a known writer identity, so a *writer* here is a fixed
style (``WriterStyle``: slant, size, letter spacing, baseline, per-letter lift, size and smooth shape warp,
pen width, pressure trend, tremor) applied to the Hershey ``scripts`` font's "and", and a *sample* is that
style plus Gaussian noise (the ``noise`` knob) and a small shift. Images are uint8 [size, size], dark ink on
light paper like a scan, drawn with anti-aliased lines at 4x and area-downsampled.

The protocol of arXiv:2407.21788 (``writer_split``, ``label_subset``, ``verification_pairs``) lives beside the
CEDAR AND loader in ``kit.data.handwriting_protocol`` and is re-exported here; ``PairSet`` applies it to
synthetic writers. ``style_differences`` gives the true per-attribute gap between two writers, so that an
explanation of a verification decision can be scored against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from kit.data.handwriting_protocol import CedarAndFolder, label_subset, verification_pairs, writer_split

__all__ = ["WORD", "WriterStyle", "Writers", "render_word", "style_differences", "writer_split",
           "label_subset", "verification_pairs", "PairSet", "CedarAndFolder"]

WORD = "and"
K_WARP = 6            # RBFs per letter and axis (x: 6 along the width; y: a 3 x 2 grid over the letter's box)
_STEP = 1.5           # font units between resampled points (the x-height is ~27 units)
_SS = 4               # supersampling factor
_FILL = 0.75          # the typical word spans this fraction of the canvas width
_TYPICAL_WIDTH = 160.0  # font units: "and" is 151.5 wide, plus a typical lean of the "d" ascender
_SHIFT_PX = 0.98      # shift sigma in px at 64x64, times noise
_TREMOR_WAVES = np.array([5.0, 7.5, 11.0])  # tremor wavelengths in font units


@dataclass(frozen=True)
class _Glyphs:
    pts: np.ndarray       # [M, 2] letter-local font units (x right, y up from the baseline), finely resampled
    letter: np.ndarray    # [M] letter index 0..2
    stroke: np.ndarray    # [M] stroke index
    t: np.ndarray         # [M] position along its stroke in [0, 1]
    arc: np.ndarray       # [M] arc length along its stroke (font units)
    starts: np.ndarray    # [S + 1] point index where each stroke starts
    offsets: np.ndarray   # [3] x where each letter starts in the font's own "and"
    rbf: np.ndarray       # [M, K, 2] shape-warp basis per axis: Gaussian RBFs minus their affine part
    anchors: np.ndarray   # [3, 2] (letter centre x, baseline): where letter size and lift apply


def _resample(stroke: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1] / step)) + 1))
    return np.stack([np.interp(s, arc, stroke[:, 0]), np.interp(s, arc, stroke[:, 1])], axis=1), s


def _font_lean(pts: np.ndarray) -> float:
    """The font's own lean dx/dy: the shear that makes the x-histogram of ``pts`` [M, 2] sharpest."""
    leans = np.linspace(-0.5, 0.5, 101)
    sharp = []
    for k in leans:
        x = pts[:, 0] - k * pts[:, 1]
        i = np.floor(x - x.min()).astype(int)
        f = x - x.min() - i
        sharp.append(((np.bincount(i, 1 - f, i.max() + 2) + np.bincount(i + 1, f, i.max() + 2)) ** 2).sum())
    return float(leans[int(np.argmax(sharp))])


@lru_cache(maxsize=1)
def _glyphs() -> _Glyphs:
    """The Hershey ``scripts`` strokes of 'a', 'n', 'd', each letter-local, with the offsets of the word."""
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font("scripts")
    font.normalize_rendering(100)
    letters = [[np.asarray(s, dtype=float) for s in font.strokes_for_text(ch)] for ch in WORD]
    word = [np.asarray(s, dtype=float) for s in font.strokes_for_text(WORD)]
    offsets, k = [], 0
    for strokes in letters:  # the word lists each letter's strokes in order, shifted by the letter's start
        d = word[k][0] - strokes[0][0]
        if not all(np.allclose(word[k + j], s + d) for j, s in enumerate(strokes)) or abs(d[1]) > 1e-6:
            raise RuntimeError("the Hershey 'scripts' font renders 'and' differently from its letters")
        offsets.append(d[0])
        k += len(strokes)
    baseline = min(s[:, 1].min() for s in letters[0])
    lean = _font_lean(np.concatenate([_resample(s, 0.5)[0] for s in word]))
    pts, letter, stroke, t, arc, starts, rbf, anchors = [], [], [], [], [], [0], [], []
    for i, strokes in enumerate(letters):
        allp = np.concatenate(strokes) - [0.0, baseline]
        lo, hi = allp.min(0), allp.max(0)
        anchors.append([(lo[0] + hi[0]) / 2, 0.0])
        first = len(pts)
        for s in strokes:
            p, a = _resample(s - [0.0, baseline], _STEP)
            pts.append(p)
            arc.append(a)
            t.append(a / a[-1])
            letter.append(np.full(len(p), i))
            stroke.append(np.full(len(p), len(starts) - 1))
            starts.append(starts[-1] + len(p))
        q = np.concatenate(pts[first:])
        u = (q - lo) / (hi - lo)                                                       # [M_i, 2] in the box
        # x moves by a function of x - lean * y alone: the warp never changes the strokes' lean (slant does)
        xs = q[:, 0] - lean * q[:, 1]
        us = (xs - xs.min()) / np.ptp(xs)
        rx = np.exp(-0.5 * ((us[:, None] - (np.arange(K_WARP) + 0.5) / K_WARP) * K_WARP / 1.2) ** 2)
        gx, gy = np.meshgrid([1 / 6, 1 / 2, 5 / 6], [1 / 4, 3 / 4])
        ry = np.exp(-0.5 * (((u[:, 0:1] - gx.ravel()) / 0.27) ** 2 + ((u[:, 1:2] - gy.ravel()) / 0.4) ** 2))
        basis = np.column_stack([np.ones(len(q)), q])  # the affine part belongs to slant, size, lift, spacing
        bx = np.column_stack([basis[:, 0], xs])
        rx = rx - bx @ np.linalg.lstsq(bx, rx, rcond=None)[0]
        ry = ry - basis @ np.linalg.lstsq(basis, ry, rcond=None)[0]
        rbf.append(np.stack([rx, ry], -1))
    cat = np.concatenate
    return _Glyphs(cat(pts), cat(letter), cat(stroke), cat(t), cat(arc), np.array(starts), np.array(offsets),
                   cat(rbf), np.array(anchors))


def _field_names() -> tuple[str, ...]:
    per_letter = lambda name: [f"{name}_{ch}" for ch in WORD]
    warp = [f"warp_{ch}{k}_{ax}" for ch in WORD for k in range(K_WARP) for ax in "xy"]
    return tuple(["slant", "scale_x", "scale_y", "spacing", "baseline_tilt", *per_letter("letter_lift"),
                  *per_letter("letter_size"), *warp, "pen_width", "pressure_trend", "tremor"])


@dataclass(frozen=True)
class WriterStyle:
    """A writer's style: the parameters that turn the font's "and" into this writer's handwriting.

    - ``slant``: shear angle (rad, > 0 leans right); ``scale_x``, ``scale_y``: word scale;
    - ``spacing``: multiplier on the letter advances; ``baseline_tilt``: rad, > 0 rises to the right;
    - ``letter_lift`` [3]: vertical offset of 'a', 'n', 'd' (font units; the x-height is ~27);
    - ``letter_size`` [3]: per-letter scale;
    - ``warp`` [3, K, 2]: per letter, coefficients (font units) of K smooth RBF displacements along x and K
      along y: the glyph shapes (the bases carry no affine part and never change the strokes' lean);
    - ``pen_width``: px at the output size; ``pressure_trend``: relative width change from the start to the
      end of each stroke; ``tremor``: amplitude of smooth high-frequency jitter (font units).
    """

    slant: float
    scale_x: float
    scale_y: float
    spacing: float
    baseline_tilt: float
    letter_lift: tuple[float, float, float]
    letter_size: tuple[float, float, float]
    warp: np.ndarray
    pen_width: float
    pressure_trend: float
    tremor: float

    FIELDS = _field_names()

    def as_vector(self) -> np.ndarray:
        """The style as float64 [len(FIELDS)], in the order of ``WriterStyle.FIELDS``."""
        return np.concatenate([[self.slant, self.scale_x, self.scale_y, self.spacing, self.baseline_tilt],
                               self.letter_lift, self.letter_size, np.ravel(self.warp),
                               [self.pen_width, self.pressure_trend, self.tremor]]).astype(np.float64)

    @classmethod
    def from_vector(cls, v: np.ndarray) -> WriterStyle:
        """The style whose ``as_vector()`` is ``v`` [len(FIELDS)]."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (len(cls.FIELDS),):
            raise ValueError(f"v must have shape ({len(cls.FIELDS)},), got {v.shape}")
        warp = v[11:11 + 6 * K_WARP].reshape(3, K_WARP, 2).copy()
        warp.setflags(write=False)
        f = [float(x) for x in v]
        return cls(*f[:5], tuple(f[5:8]), tuple(f[8:11]), warp, *f[-3:])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WriterStyle) and np.array_equal(self.as_vector(), other.as_vector())

    def __hash__(self) -> int:
        return hash(self.as_vector().tobytes())


_NF = len(WriterStyle.FIELDS)
_LOG_FIELDS = np.array([f.startswith(("scale_", "letter_size", "pen_width")) for f in WriterStyle.FIELDS])


def _per_field(**groups: float) -> np.ndarray:
    return np.array([next(v for k, v in groups.items() if f.startswith(k)) for f in WriterStyle.FIELDS])


# Per-sample noise sigmas at noise = 1 (pen_width in px at 64x64), tuned so that a HOG-cosine verifier reaches
# about 0.86 / 0.77 / 0.71 accuracy at noise 1.0 / 1.4 / 1.8 (the range of CEDAR's handcrafted baselines).
_NOISE_SIGMA = _per_field(slant=0.034, scale_x=0.028, scale_y=0.028, spacing=0.028, baseline_tilt=0.017,
                          letter_lift=0.81, letter_size=0.024, warp=1.2, pen_width=0.083,
                          pressure_trend=0.083, tremor=0.14)
# Valid range of a (perturbed) sample's style (pen_width in px at 64x64).
_LOW = _per_field(slant=-0.6, scale_x=0.6, scale_y=0.6, spacing=0.65, baseline_tilt=-0.25, letter_lift=-10,
                  letter_size=0.6, warp=-16, pen_width=0.5, pressure_trend=-0.9, tremor=0.0)
_HIGH = _per_field(slant=0.8, scale_x=1.5, scale_y=1.5, spacing=1.5, baseline_tilt=0.25, letter_lift=10,
                   letter_size=1.5, warp=16, pen_width=4.0, pressure_trend=0.9, tremor=4.0)


def _draw_style(rng: np.random.Generator, size: int) -> WriterStyle:
    """A writer from the population distribution (legible by construction: every draw is clipped)."""
    lognormal = lambda s, clip, n=None: np.exp(np.clip(rng.normal(0.0, s, n), -clip, clip))
    return WriterStyle(
        slant=float(np.clip(rng.normal(0.12, 0.2), -0.35, 0.6)),
        scale_x=float(lognormal(0.09, 0.2)), scale_y=float(lognormal(0.10, 0.22)),
        spacing=float(np.clip(rng.normal(1.0, 0.09), 0.8, 1.25)),
        baseline_tilt=float(np.clip(rng.normal(0.0, 0.05), -0.12, 0.12)),
        letter_lift=tuple(float(x) for x in np.clip(rng.normal(0.0, 2.5, 3), -6, 6)),
        letter_size=tuple(float(x) for x in lognormal(0.08, 0.2, 3)),
        warp=np.clip(rng.normal(0.0, 4.0, (3, K_WARP, 2)), -9, 9),
        pen_width=float(size / 64 * 1.7 * lognormal(0.25, 0.45)),
        pressure_trend=float(np.clip(rng.normal(0.0, 0.35), -0.7, 0.7)),
        tremor=float(np.clip(0.6 * np.exp(rng.normal(0.0, 0.6)), 0.1, 3.0)))


def _render(style: WriterStyle, size: int, shift: np.ndarray, phases: np.ndarray, ink: float,
            grain: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Image uint8 [size, size] and letter boxes float32 [3, 4] (x0, y0, x1, y1 px) of one "and"."""
    g = _glyphs()
    li = g.letter
    p = g.pts + np.einsum("mkc,mkc->mc", g.rbf, style.warp[li])
    p = (p - g.anchors[li]) * np.asarray(style.letter_size)[li, None] + g.anchors[li]
    p[:, 1] += np.asarray(style.letter_lift)[li]
    p[:, 0] += style.spacing * g.offsets[li]
    waves = np.sin(2 * np.pi * g.arc[:, None, None] / _TREMOR_WAVES + phases[g.stroke])  # [M, 2, J]
    p += style.tremor * waves.sum(-1) * np.sqrt(2.0 / len(_TREMOR_WAVES))
    cx = 0.5 * (p[:, 0].min() + p[:, 0].max())
    c, s = np.cos(style.baseline_tilt), np.sin(style.baseline_tilt)
    x, y = p[:, 0] - cx, p[:, 1]
    x, y = c * x - s * y, s * x + c * y
    x = x + np.tan(style.slant) * y
    scale = _FILL * size / _TYPICAL_WIDTH
    xy = np.stack([x * style.scale_x, -y * style.scale_y], 1) * scale                 # px, y down
    widths = style.pen_width * np.clip(1.0 + style.pressure_trend * (g.t - 0.5), 0.3, 2.0)
    margin = 0.5 * widths.max() + 2.0
    lo, hi = xy.min(0), xy.max(0)
    fit = min(1.0, *((size - 2 * margin) / np.maximum(hi - lo, 1e-6)))  # shrink extreme writers only
    xy = (xy - 0.5 * (lo + hi)) * fit
    room = np.maximum(0.5 * size - margin - 0.5 * (hi - lo) * fit, 0.0)
    xy += 0.5 * size + np.clip(shift, -room, room)
    widths = widths * min(1.0, fit ** 0.5)
    canvas = np.zeros((size * _SS, size * _SS), np.uint8)
    fixed = np.round(xy * _SS * 16).astype(np.int32)                                 # 4 fractional bits
    thick = np.maximum(np.round(widths * _SS).astype(int), 1)
    for a, b in zip(g.starts[:-1], g.starts[1:]):
        seg = thick[a:b - 1]
        cuts = np.flatnonzero(np.diff(seg)) + 1
        for u, v in zip(np.r_[0, cuts], np.r_[cuts, len(seg)]):
            cv2.polylines(canvas, [fixed[a + u:a + v + 1]], False, 255, int(seg[u]), cv2.LINE_AA, 4)
    cover = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    paper = np.full((size, size), 250.0, np.float32) if grain is None else 250.0 + grain
    image = np.clip(np.rint(paper * (1.0 - cover) + ink * cover), 0, 255).astype(np.uint8)
    boxes = np.zeros((3, 4), np.float32)
    for i in range(3):
        q, r = xy[li == i], 0.5 * widths[li == i].max()
        boxes[i] = np.clip([*(q.min(0) - r), *(q.max(0) + r)], 0, size)
    return image, boxes


def render_word(style: WriterStyle, size: int = 64, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Image uint8 [size, size] and letter boxes [3, 4] of ``style``'s "and": exactly the style, centred.

    ``rng`` draws the tremor pattern (None: a fixed pattern). Use ``Writers.sample`` for noisy samples.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    phases = rng.uniform(0, 2 * np.pi, (len(_glyphs().starts) - 1, 2, len(_TREMOR_WAVES)))
    return _render(style, size, np.zeros(2), phases, 20.0, None)


class Writers:
    """``n_writers`` synthetic writers of "and": ``style(w)`` is fixed by (seed, w); ``sample`` draws images.

    ``noise`` scales the per-sample perturbation of every style field and the shift; 0 gives identical
    samples.
    """

    def __init__(self, n_writers: int, seed: int = 0, noise: float = 1.0, size: int = 64) -> None:
        if int(n_writers) < 2:
            raise ValueError(f"n_writers must be >= 2, got {n_writers}")
        if int(size) < 16:
            raise ValueError(f"size must be >= 16, got {size}")
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.n_writers, self.seed, self.noise, self.size = int(n_writers), int(seed), float(noise), int(size)
        self._styles: dict[int, WriterStyle] = {}

    def _check(self, w: int) -> int:
        if not 0 <= int(w) < self.n_writers:
            raise ValueError(f"writer index w must be in [0, {self.n_writers}), got {w}")
        return int(w)

    def style(self, w: int) -> WriterStyle:
        """Writer ``w``'s fixed style, drawn from the population with SeedSequence([seed, w])."""
        w = self._check(w)
        if w not in self._styles:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, w]))
            self._styles[w] = _draw_style(rng, self.size)
        return self._styles[w]

    def perturb(self, w: int, rng: np.random.Generator) -> WriterStyle:
        """One sample's style: writer ``w``'s style plus Gaussian noise (sigma = noise x per-field sigma)."""
        if self.noise == 0:
            return self.style(w)
        v = self.style(w).as_vector()
        unit = np.ones(_NF)
        unit[WriterStyle.FIELDS.index("pen_width")] = self.size / 64
        v = v + self.noise * _NOISE_SIGMA * unit * rng.standard_normal(_NF)
        return WriterStyle.from_vector(np.clip(v, _LOW * unit, _HIGH * unit))

    def sample_with_boxes(self, w: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 [n, size, size] of writer ``w`` and letter boxes float32 [n, 3, 4] (x0, y0, x1, y1).

        Each sample has its own perturbed style, shift, tremor pattern and paper grain (none at noise 0)."""
        w = self._check(w)
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        images = np.empty((int(n), self.size, self.size), np.uint8)
        boxes = np.empty((int(n), 3, 4), np.float32)
        n_strokes = len(_glyphs().starts) - 1
        fixed = np.random.default_rng([self.seed, w, 2])  # the writer's own tremor pattern, used at noise 0
        fixed_phases = fixed.uniform(0, 2 * np.pi, (n_strokes, 2, len(_TREMOR_WAVES)))
        for k in range(int(n)):
            style = self.perturb(w, rng)
            if self.noise == 0:
                images[k], boxes[k] = _render(style, self.size, np.zeros(2), fixed_phases, 20.0, None)
                continue
            a = min(self.noise, 1.0)
            shift = np.clip(rng.normal(0, _SHIFT_PX * self.noise, 2), -4, 4) * self.size / 64
            phases = rng.uniform(0, 2 * np.pi, (n_strokes, 2, len(_TREMOR_WAVES)))
            grain = rng.normal(0.0, 2.5 * a, (self.size, self.size)).astype(np.float32)
            images[k], boxes[k] = _render(style, self.size, shift, phases, 20.0 + 10 * a * rng.uniform(-1, 1),
                                          grain)
        return images, boxes

    def sample(self, w: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Images uint8 [n, size, size] of writer ``w``: dark ink on white, see ``sample_with_boxes``."""
        return self.sample_with_boxes(w, n, rng)[0]


ATTRIBUTES = {"slant": ("slant",), "size": ("scale_x", "scale_y"), "spacing": ("spacing",),
              "baseline": ("baseline_tilt", "letter_lift"), "letter_shapes": ("letter_size", "warp"),
              "pen_width": ("pen_width",), "pressure": ("pressure_trend",), "tremor": ("tremor",)}


def _transformed(v: np.ndarray) -> np.ndarray:
    return np.where(_LOG_FIELDS, np.log(np.maximum(v, 1e-9)), v)


@lru_cache(maxsize=1)
def _population_std() -> np.ndarray:
    rng = np.random.default_rng(20240731)
    return np.std([_transformed(_draw_style(rng, 64).as_vector()) for _ in range(2000)], axis=0)


def style_differences(a: WriterStyle, b: WriterStyle) -> dict[str, float]:
    """Per attribute (slant, size, spacing, baseline, letter_shapes, pen_width, pressure, tremor): the RMS
    over its fields of |a - b| / population std (log scale for scales and pen width), so 1 = a typical gap."""
    z = np.abs(_transformed(a.as_vector()) - _transformed(b.as_vector())) / _population_std()
    return {name: float(np.sqrt(np.mean(z[[f.startswith(prefixes) for f in WriterStyle.FIELDS]] ** 2)))
            for name, prefixes in ATTRIBUTES.items()}


class PairSet(torch.utils.data.Dataset):
    """Verification pairs of synthetic writers: ``ds[k] = (img_a, img_b, label)``, images float32 [1, H, W] in
    [0, 1] with ink = 1, label int64 (1 = same writer). ``images`` uint8 [N, H, W], ``writer_of`` [N] and
    ``pairs`` [P, 3] are kept; the images are generated once here."""

    def __init__(self, writers: Writers, writer_ids: np.ndarray, samples_per_writer: int,
                 seed: int = 0) -> None:
        ids = np.asarray(writer_ids, dtype=np.int64).ravel()
        if int(samples_per_writer) < 2:
            raise ValueError(f"samples_per_writer must be >= 2, got {samples_per_writer}")
        self.images = np.concatenate([writers.sample(int(w), int(samples_per_writer),
                                                     np.random.default_rng([seed, int(w), 1])) for w in ids])
        self.writer_of = np.repeat(ids, int(samples_per_writer))
        self.pairs = verification_pairs(self.writer_of, seed)
        self._x = torch.from_numpy(1.0 - self.images[:, None].astype(np.float32) / 255.0)
        self._y = torch.from_numpy(self.pairs[:, 2])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i, j, _ = self.pairs[k]
        return self._x[i], self._x[j], self._y[k]
