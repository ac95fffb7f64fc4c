"""ShapesWorld: a synthetic text-to-image world of coloured shapes with exact captions, masks and edits.

A scene holds 1-3 (up to 6) non-overlapping shapes on a plain dark grey background. Each object is a shape
from ``SHAPES`` in a colour from ``COLOURS`` and a size from ``SIZES``; its centre ``(cx, cy)`` is in [0, 1]
image coordinates (x to the right, y downwards) and its radius ``RADII[size]`` (0.13 or 0.2 of the image side;
0.2 is about the most that lets three big objects fit) is that of the circle the shape is inscribed in, so a
shape swap never changes the room an object takes. Shapes in radius units (u, v), v downwards:
circle ``u^2 + v^2 <= 1``; square ``max(|u|, |v|) <= 1/sqrt(2)``; diamond ``|u| + |v| <= 1``; triangle the
upward equilateral triangle with apex (0, -1) and base at v = 1/2 (centroid = centre); cross a plus sign of
half-width ``CROSS_HALF_WIDTH`` whose corners touch the circle. ``SHAPE_AREA``: their areas in radius^2 units.

Captions have one grammar: "a big red circle"; "a big red circle left of a small blue square", the relation of
the first object to the second along the dominant axis of the displacement of their centres (sampled
two-object scenes stay away from the diagonals, ``RELATION_MAX_MINOR``); with 3+ objects "a big red circle, a
small blue square and a big white cross", listed left to right. ``edit_scene`` changes one object and leaves
every other pixel as it was, the kind of masked edit that PIE-Bench (arXiv:2310.01506), MultiEdits
(arXiv:2406.00985) and D-TIIL (arXiv:2404.18033) evaluate.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle", "cross", "diamond")
COLOURS = OrderedDict([
    ("red", (220, 40, 40)), ("green", (40, 190, 60)), ("blue", (50, 100, 240)),
    ("yellow", (240, 220, 40)), ("purple", (190, 50, 200)), ("white", (240, 240, 240)),
])
SIZES = ("small", "big")
RADII = {"small": 0.13, "big": 0.2}
RELATIONS = ("left of", "right of", "above", "below")
BACKGROUND = (40, 40, 40)
ARTICLES = ("a", "an")
FILLERS = ("and", "of", ",")
VOCABULARY = tuple(dict.fromkeys(
    ARTICLES + FILLERS + SIZES + tuple(COLOURS) + SHAPES + tuple(w for r in RELATIONS for w in r.split())))
CROSS_HALF_WIDTH = 0.32
_ARM = math.sqrt(1.0 - CROSS_HALF_WIDTH ** 2)
SHAPE_AREA = {"circle": math.pi, "square": 2.0, "diamond": 2.0, "triangle": 3.0 * math.sqrt(3.0) / 4.0,
              "cross": 8.0 * _ARM * CROSS_HALF_WIDTH - 4.0 * CROSS_HALF_WIDTH ** 2}
GAP = 0.05                 # least distance between two objects' bounding circles (image-side units)
EDGE = 0.02                # least distance between a bounding circle and the image border
RELATION_MAX_MINOR = 0.7   # sampled 2-object scenes keep min(|dx|, |dy|) <= 0.7 max(|dx|, |dy|)
MAX_OBJECTS = 6


@dataclass(frozen=True)
class ShapeObject:
    """One shape: ``shape``/``colour``/``size`` words and its centre ``(cx, cy)`` in [0, 1] (y downwards)."""

    shape: str
    colour: str
    size: str
    cx: float
    cy: float

    def __post_init__(self):
        for name, value, allowed in (("shape", self.shape, SHAPES), ("colour", self.colour, tuple(COLOURS)),
                                     ("size", self.size, SIZES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not (0.0 <= self.cx <= 1.0 and 0.0 <= self.cy <= 1.0):
            raise ValueError(f"centre (cx, cy) must lie in [0, 1]^2, got ({self.cx}, {self.cy})")

    @property
    def radius(self) -> float:
        """Return the radius of the bounding circle, ``RADII[size]``."""
        return RADII[self.size]

    @property
    def phrase(self) -> str:
        """Return "size colour shape", the object's words in a caption (without the article)."""
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A tuple of non-overlapping ``ShapeObject``s."""

    objects: tuple = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "objects", tuple(self.objects))
        if not all(isinstance(o, ShapeObject) for o in self.objects):
            raise ValueError("Scene.objects must hold ShapeObject instances")


# ---------------------------------------------------------------- geometry and sampling

def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(au, av) <= 1.0 / math.sqrt(2.0)
    if shape == "diamond":
        return au + av <= 1.0
    if shape == "triangle":
        return (v <= 0.5) & (au <= (v + 1.0) / math.sqrt(3.0))
    if shape == "cross":
        w = CROSS_HALF_WIDTH
        return ((au <= _ARM) & (av <= w)) | ((au <= w) & (av <= _ARM))
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def _coverage_window(shape, cx, cy, radius, res, ss):
    """Return (row0, col0, coverage float32 [h, w]) over the pixels the shape's bounding box touches."""
    x0, x1 = max(0, math.floor((cx - radius) * res)), min(res, math.ceil((cx + radius) * res))
    y0, y1 = max(0, math.floor((cy - radius) * res)), min(res, math.ceil((cy + radius) * res))
    xs = (np.arange(x0 * ss, x1 * ss) + 0.5) / (res * ss)
    ys = (np.arange(y0 * ss, y1 * ss) + 0.5) / (res * ss)
    inside = _inside(shape, ((xs - cx) / radius)[None, :], ((ys - cy) / radius)[:, None])
    cov = inside.reshape(y1 - y0, ss, x1 - x0, ss).sum(axis=(1, 3), dtype=np.float32)
    return y0, x0, cov * np.float32(1.0 / ss ** 2)


def _check_resolution(resolution, supersample):
    if not (isinstance(resolution, int | np.integer) and resolution >= 8):
        raise ValueError(f"resolution must be an int >= 8, got {resolution!r}")
    if not (isinstance(supersample, int | np.integer) and supersample >= 1):
        raise ValueError(f"supersample must be an int >= 1, got {supersample!r}")


def shape_coverage(shape: str, cx: float, cy: float, radius: float, resolution: int = 32,
                   supersample: int = 4) -> np.ndarray:
    """Return the coverage [H, W] in [0, 1] of ``shape`` centred at (cx, cy), bounding radius ``radius``."""
    _check_resolution(resolution, supersample)
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    out = np.zeros((resolution, resolution), np.float32)
    r0, c0, cov = _coverage_window(shape, cx, cy, radius, resolution, supersample)
    out[r0:r0 + cov.shape[0], c0:c0 + cov.shape[1]] = cov
    return out


def _free(cand: np.ndarray, radius: float, others: Sequence[ShapeObject]) -> np.ndarray:
    """Return bool [N]: the centres cand [N, 2] where a circle of ``radius`` fits beside ``others``."""
    ok = ((cand >= radius + EDGE) & (cand <= 1 - radius - EDGE)).all(1)
    for o in others:
        ok &= np.hypot(cand[:, 0] - o.cx, cand[:, 1] - o.cy) >= radius + o.radius + GAP
    return ok


def fits(obj: ShapeObject, others: Sequence[ShapeObject] = ()) -> bool:
    """Return True if ``obj`` is ``EDGE`` inside the image and ``GAP`` away from each object of ``others``."""
    return bool(_free(np.array([[obj.cx, obj.cy]]), obj.radius, others)[0])


def _place(rng, radius, placed, two_object_relation=False, n_candidates=48):
    """Return a free centre (cx, cy) for a new object, or None if ``n_candidates`` random tries all fail."""
    cand = radius + EDGE + (1 - 2 * (radius + EDGE)) * rng.random((n_candidates, 2))
    ok = _free(cand, radius, placed)
    if two_object_relation and len(placed) == 1:
        d = np.abs(cand - np.array([placed[0].cx, placed[0].cy]))
        ok &= d.min(axis=1) <= RELATION_MAX_MINOR * d.max(axis=1)
    idx = np.flatnonzero(ok)
    return None if idx.size == 0 else (float(cand[idx[0], 0]), float(cand[idx[0], 1]))


def _count_range(n_objects):
    lo, hi = (n_objects, n_objects) if isinstance(n_objects, int | np.integer) else tuple(n_objects)
    if not (1 <= lo <= hi <= MAX_OBJECTS):
        raise ValueError(f"n_objects must be an int or (lo, hi) with 1 <= lo <= hi <= {MAX_OBJECTS}, "
                         f"got {n_objects!r}")
    return int(lo), int(hi)


def sample_scene(rng: np.random.Generator, n_objects: int | tuple[int, int] = 1,
                 shapes: Sequence[str] = SHAPES, colours: Sequence[str] = tuple(COLOURS),
                 sizes: Sequence[str] = SIZES, *, distinct_colours: bool = True,
                 max_restarts: int = 200) -> Scene:
    """Return a random ``Scene`` of non-overlapping objects inside the image.

    ``n_objects``: a count or an inclusive range (uniform). Objects are placed one at a time (big ones first)
    by rejection sampling of their bounding circles (``GAP`` apart, ``EDGE`` from the border); two-object
    scenes keep away from the diagonals so that the relation is unambiguous; 3+ objects are listed left to
    right. ``distinct_colours`` gives every object its own colour.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    lo, hi = _count_range(n_objects)
    for name, words, allowed in (("shapes", shapes, SHAPES), ("colours", colours, tuple(COLOURS)),
                                 ("sizes", sizes, SIZES)):
        if not words or any(w not in allowed for w in words):
            raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {tuple(words)!r}")
    if distinct_colours and hi > len(colours):
        raise ValueError(f"distinct_colours needs at least {hi} colours, got {len(colours)}")
    n = int(rng.integers(lo, hi + 1))
    cidx = rng.permutation(len(colours))[:n] if distinct_colours else rng.integers(len(colours), size=n)
    attrs = [(shapes[int(rng.integers(len(shapes)))], colours[int(c)], sizes[int(rng.integers(len(sizes)))])
             for c in cidx]
    order = sorted(range(n), key=lambda k: -RADII[attrs[k][2]])
    for _ in range(max_restarts):
        placed, centres = [], [None] * n
        for k in order:
            xy = _place(rng, RADII[attrs[k][2]], placed, two_object_relation=(n == 2))
            if xy is None:
                break
            centres[k] = xy
            placed.append(ShapeObject(*attrs[k], *xy))
        else:
            objs = [ShapeObject(*attrs[k], *centres[k]) for k in range(n)]
            if n >= 3:
                objs.sort(key=lambda o: (o.cx, o.cy))
            return Scene(tuple(objs))
    raise ValueError(f"could not place {n} objects of sizes {[a[2] for a in attrs]} "
                     f"in {max_restarts} restarts")


# ---------------------------------------------------------------- rendering

def render(scene: Scene, resolution: int = 32, supersample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Return (image uint8 [H, W, 3], masks bool [n, H, W]) of a scene, H = W = ``resolution``.

    Each pixel is the mean of ``supersample``^2 point samples (anti-aliasing); object k's mask is its
    coverage >= 0.5.
    """
    _check_resolution(resolution, supersample)
    bg = np.asarray(BACKGROUND, np.float32)
    img = np.empty((resolution, resolution, 3), np.float32)
    img[:] = bg
    masks = np.zeros((len(scene.objects), resolution, resolution), bool)
    for k, o in enumerate(scene.objects):
        r0, c0, cov = _coverage_window(o.shape, o.cx, o.cy, o.radius, resolution, supersample)
        h, w = cov.shape
        img[r0:r0 + h, c0:c0 + w] += cov[..., None] * (np.asarray(COLOURS[o.colour], np.float32) - bg)
        masks[k, r0:r0 + h, c0:c0 + w] = cov >= 0.5
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), masks


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Return a uint8 [H, W, 3] image as float32 [3, H, W] in [-1, 1]."""
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - np.float32(1))


# ---------------------------------------------------------------- captions

def relation_of(a: ShapeObject, b: ShapeObject) -> str:
    """Return the relation of ``a`` to ``b`` along the dominant axis of the displacement of their centres."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def caption_order(scene: Scene) -> list[int]:
    """Return the object indices in caption order (scene order for <= 2 objects, else left to right)."""
    n = len(scene.objects)
    if n <= 2:
        return list(range(n))
    return sorted(range(n), key=lambda k: (scene.objects[k].cx, scene.objects[k].cy))


def caption_words(scene: Scene) -> list[tuple[str, int | None]]:
    """Return the caption's words (commas as words), each with the index of the object it names or None."""
    objs = scene.objects
    if not objs:
        raise ValueError("scene has no objects, so it has no caption")

    def words(k):
        return [("a", k)] + [(w, k) for w in objs[k].phrase.split()]

    if len(objs) <= 2:
        rel = [] if len(objs) == 1 else [(w, None) for w in relation_of(objs[0], objs[1]).split()] + words(1)
        return words(0) + rel
    order = caption_order(scene)
    out = words(order[0])
    for k in order[1:-1]:
        out += [(",", None)] + words(k)
    return out + [("and", None)] + words(order[-1])


def caption(scene: Scene) -> str:
    """Return the scene's caption, e.g. "a big red circle left of a small blue square"."""
    return " ".join(w for w, _ in caption_words(scene)).replace(" ,", ",")


@dataclass
class ParsedCaption:
    """Objects named by a caption as (size | None, colour | None, shape) and the 2-object relation or None."""

    objects: list
    relation: str | None = None


def tokenize(text: str) -> list[str]:
    """Return the lower-case words of ``text``; commas and other symbols are words of their own."""
    if not isinstance(text, str):
        raise ValueError(f"caption must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


def parse_caption(text: str) -> ParsedCaption:
    """Return the ``ParsedCaption`` of a caption in the ShapesWorld grammar.

    Accepted: objects "a [size] [colour] shape" joined as "X rel Y" (rel in ``RELATIONS``), "X and Y" or
    "X, Y and Z"; size and colour may be left out (None). Unknown words or another structure raise ValueError.
    """
    toks = tokenize(text)
    for w in toks:
        if w not in VOCABULARY:
            raise ValueError(f"unknown word {w!r} in caption {text!r}; "
                             f"the vocabulary is: {' '.join(VOCABULARY)}")
    pos = 0

    def expect_object():
        nonlocal pos
        if pos < len(toks) and toks[pos] in ARTICLES:
            pos += 1
        size = colour = None
        if pos < len(toks) and toks[pos] in SIZES:
            size, pos = toks[pos], pos + 1
        if pos < len(toks) and toks[pos] in COLOURS:
            colour, pos = toks[pos], pos + 1
        if pos >= len(toks) or toks[pos] not in SHAPES:
            got = toks[pos] if pos < len(toks) else "the end"
            raise ValueError(f"cannot parse caption {text!r}: expected a shape {SHAPES} at word {pos}, "
                             f"got {got!r}")
        pos += 1
        return (size, colour, toks[pos - 1])

    objects = [expect_object()]
    rest = " ".join(toks[pos:pos + 2])
    rel = next((r for r in RELATIONS if rest == r or rest.startswith(r + " ")), None)
    if rel is not None:
        pos += len(rel.split())
        objects.append(expect_object())
    else:
        while pos < len(toks) and toks[pos] == ",":
            pos += 1
            objects.append(expect_object())
        if pos < len(toks) and toks[pos] == "and":
            pos += 1
            objects.append(expect_object())
    if pos != len(toks):
        raise ValueError(f"cannot parse caption {text!r}: unexpected {toks[pos]!r} at word {pos}")
    return ParsedCaption(objects=objects, relation=rel)


# ---------------------------------------------------------------- edits

EDIT_KINDS = ("colour", "shape", "size", "add", "remove", "move")
SIZE_EDIT_MAX_SHIFT = 0.12   # a grown object that does not fit in place may move this far


@dataclass(frozen=True)
class SceneEdit:
    """A one-object edit: source/target scenes and captions, the changed object and the changed words.

    ``index``: the edited object's index in ``source.objects`` ("add": in ``target.objects``).
    ``old_object``/``new_object``: None on the side where the object does not exist.
    ``old_word``/``new_word``: the changed caption words (the object phrase for add/remove, the relation for
    a 2-object move, else "").
    """

    source: Scene
    target: Scene
    source_caption: str
    target_caption: str
    kind: str
    index: int
    old_word: str
    new_word: str
    old_object: ShapeObject | None
    new_object: ShapeObject | None

    def mask(self, resolution: int = 32, supersample: int = 4) -> np.ndarray:
        """Return the changed region bool [H, W]: the union of the old and new object's coverage > 0.

        Every pixel where the two renders (same ``supersample``) differ lies inside it.
        """
        m = np.zeros((resolution, resolution), bool)
        for o in (self.old_object, self.new_object):
            if o is not None:
                m |= shape_coverage(o.shape, o.cx, o.cy, o.radius, resolution, supersample) > 0
        return m


def _nearest_fit(new: ShapeObject, objs: list, index: int) -> ShapeObject | None:
    """Return ``new`` moved at most ``SIZE_EDIT_MAX_SHIFT`` to the nearest centre where it fits and the
    caption stays the one it has in place, or None."""
    def with_new(o):
        return Scene(tuple(objs[:index] + [o] + objs[index + 1:]))

    g = np.arange(-SIZE_EDIT_MAX_SHIFT, SIZE_EDIT_MAX_SHIFT + 1e-9, 0.005)
    shift = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    dist = np.hypot(shift[:, 0], shift[:, 1])
    cand = shift[np.argsort(dist, kind="stable")][np.sort(dist) <= SIZE_EDIT_MAX_SHIFT] + (new.cx, new.cy)
    want = caption(with_new(new))
    for cx, cy in cand[_free(cand, new.radius, objs[:index] + objs[index + 1:])]:
        moved = replace(new, cx=float(cx), cy=float(cy))
        if caption(with_new(moved)) == want:
            return moved
    return None


def _pick(rng, options, what):
    if not options:
        raise ValueError(f"no {what} is left to choose")
    if rng is None:
        raise ValueError(f"rng is needed to choose the new {what} when value is None")
    return options[int(rng.integers(len(options)))]


def _edited(kind, objs, index, value, rng):
    """Return (new object or None, old_word, new_word) of an edit (see ``edit_scene``)."""
    old = None if kind == "add" else objs[index]
    others = objs if kind == "add" else objs[:index] + objs[index + 1:]
    if kind in ("colour", "shape"):
        pool, current = (tuple(COLOURS), old.colour) if kind == "colour" else (SHAPES, old.shape)
        if value is None:
            taken = {o.colour for o in objs} if kind == "colour" else {current}
            value = _pick(rng, [w for w in pool if w not in taken], kind)
        if value not in pool or value == current:
            raise ValueError(f"value must be a {kind} in {pool} other than {current!r}, got {value!r}")
        return replace(old, **{kind: value}), current, value
    if kind == "size":
        new = replace(old, size="big" if old.size == "small" else "small")
        return (new if fits(new, others) else _nearest_fit(new, objs, index) or new), old.size, new.size
    if kind == "remove":
        if len(objs) < 2:
            raise ValueError("cannot remove the only object of a scene (an empty scene has no caption)")
        return None, old.phrase, ""
    if kind == "add":
        if value is None:
            shape = _pick(rng, list(SHAPES), "shape")
            colour = _pick(rng, [c for c in COLOURS if c not in {o.colour for o in objs}], "colour")
            for size in dict.fromkeys((_pick(rng, list(SIZES), "size"), "small")):   # small if big is too big
                tries = (_place(rng, RADII[size], objs, len(objs) == 1) for _ in range(20))
                xy = next(filter(None, tries), None)
                if xy is not None:
                    break
            if xy is None:
                raise ValueError("no free space for another object in this scene")
            value = ShapeObject(shape, colour, size, *xy)
        if not isinstance(value, ShapeObject):
            raise ValueError(f"value for 'add' must be a ShapeObject or None, got {type(value).__name__}")
        return value, "", value.phrase
    if value is None:  # move
        if rng is None:
            raise ValueError("rng is needed to choose the new centre when value is None")
        for _ in range(40):
            xy = _place(rng, old.radius, others, two_object_relation=len(objs) == 2)
            if xy is not None:
                value = xy
                moved = objs[:index] + [replace(old, cx=xy[0], cy=xy[1])] + objs[index + 1:]
                if len(objs) != 2 or relation_of(*moved) != relation_of(*objs):
                    break
        if value is None:
            raise ValueError("no free space to move the object to")
    if np.shape(value) != (2,):
        raise ValueError(f"value for 'move' must be a centre (cx, cy), got {value!r}")
    return replace(old, cx=float(value[0]), cy=float(value[1])), "", ""


def edit_scene(scene: Scene, kind: str, index: int = 0, value=None,
               rng: np.random.Generator | None = None) -> SceneEdit:
    """Return the ``SceneEdit`` changing object ``index`` of ``scene`` by ``kind`` (one of ``EDIT_KINDS``).

    ``value``: the new colour / shape word; for "add" a ``ShapeObject`` inserted at position ``index``; for
    "move" the new centre (cx, cy); "size" (flipped) and "remove" take none. With ``value=None`` the new word,
    object or centre is drawn with ``rng`` (new colours avoid those of the scene; a 2-object move changes the
    relation when it can). A grown object that does not fit in place moves to the nearest free centre within
    ``SIZE_EDIT_MAX_SHIFT`` that keeps the rest of the caption. An edited object that overlaps another or
    leaves the image raises ValueError (about 20 % of small -> big edits of sampled scenes).
    """
    objs = list(scene.objects)
    if kind not in EDIT_KINDS:
        raise ValueError(f"kind must be one of {EDIT_KINDS}, got {kind!r}")
    n_max = len(objs) if kind == "add" else len(objs) - 1
    if not (isinstance(index, int | np.integer) and 0 <= index <= n_max):
        raise ValueError(f"index must be an int in [0, {n_max}] for a {len(objs)}-object scene, "
                         f"got {index!r}")
    new, old_word, new_word = _edited(kind, objs, int(index), value, rng)
    old = None if kind == "add" else objs[index]
    others = objs if kind == "add" else objs[:index] + objs[index + 1:]
    if new is not None and not fits(new, others):
        raise ValueError(f"the edited object {new} overlaps another object or leaves the image")
    target = others[:index] + ([] if new is None else [new]) + others[index:]
    source, target = Scene(tuple(objs)), Scene(tuple(target))
    if kind == "move" and len(objs) == 2:
        old_word, new_word = relation_of(*source.objects), relation_of(*target.objects)
    return SceneEdit(source, target, caption(source), caption(target), kind, int(index), old_word, new_word,
                     old, new)


# ---------------------------------------------------------------- dataset

class ShapesDataset(torch.utils.data.Dataset):
    """Items (image float32 [3, H, W] in [-1, 1], caption str); item i comes from ``default_rng((seed, i))``.

    ``n_objects``: a count or an inclusive range. When the range starts at 1, a fraction ``single_fraction``
    of the scenes has one object and the rest are uniform over 2..hi; otherwise counts are uniform over the
    range.
    """

    def __init__(self, n: int, seed: int = 0, resolution: int = 32, n_objects: int | tuple[int, int] = (1, 3),
                 single_fraction: float = 0.5):
        if not (isinstance(n, int | np.integer) and n >= 1):
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not (isinstance(seed, int | np.integer) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not 0.0 <= single_fraction <= 1.0:
            raise ValueError(f"single_fraction must be in [0, 1], got {single_fraction}")
        _check_resolution(resolution, 1)
        self.n, self.seed, self.resolution = int(n), int(seed), int(resolution)
        self.lo, self.hi = _count_range(n_objects)
        self.single_fraction = float(single_fraction)

    def __len__(self) -> int:
        return self.n

    def scene(self, i: int) -> Scene:
        """Return the ``Scene`` of item ``i``."""
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for a ShapesDataset of {self.n} items")
        rng = np.random.default_rng((self.seed, int(i) % self.n))
        if self.lo == 1 and self.hi > 1:
            return sample_scene(rng, 1 if rng.random() < self.single_fraction else (2, self.hi))
        return sample_scene(rng, (self.lo, self.hi))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        scene = self.scene(i)
        return to_tensor(render(scene, self.resolution)[0]), caption(scene)


def collate_captions(batch: Sequence[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    """Return (images [B, 3, H, W], captions list[str]) from ``ShapesDataset`` items."""
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]
