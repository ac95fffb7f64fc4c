"""Procedural faces with graded semantic edits: the offline stand-in for FFSC (arXiv:2405.08487).

A face is drawn with OpenCV at 64 x 64 from an identity (face shape, skin, hair and lip colour, eye spacing and
size, brow thickness, nose length, mouth width) and downsampled to ``size``. Six edits of strength s in [0, 1] change
semantic attributes the way FFSC's methods do:

- ``age``: wrinkles at the eyes and on the forehead, hair greying;
- ``smile``: mouth corners lifted, mouth wider;
- ``surprised``: larger eyes, an open mouth, raised brows, a longer nose;
- ``gender``: a narrower jaw, thinner brows, another lip colour (identity changes too: FFSC labels it so);
- ``identity``: the inner face (eyes, brows, nose, mouth, their colours) moved towards another identity's;
- ``pose``: the inner features squashed horizontally and shifted, as a head turn.

The paper's definition of a forgery is a semantic change a person can tell apart; here it is a threshold in code
[PROPOSED]: an edit of strength s >= ``TAU`` (0.35) is fake and carries the FFSC label of its edit (``EDIT_LABELS``);
below it the image is real. An edited image carries the fingerprint of the "generator" that made it: "A" (a mild
blur), "B" (colour quantisation and noise), "C" (a nearest-neighbour up-sampling blend, held out of training for
Protocol-1). Real images may carry sub-threshold edits made by the same generators, so that the fingerprint alone
does not decide. Every image then gets a little noise and a random JPEG quality.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

__all__ = ["EDITS", "EDIT_LABELS", "GENERATORS", "TAU", "FaceIdentity", "random_identity", "render_face",
           "fingerprint", "FaceSet", "make_faces"]

EDITS = ("age", "smile", "surprised", "gender", "identity", "pose")
GENERATORS = ("A", "B", "C")
TAU = 0.35
# FFSC's label string per edit (the authors' list files): fake, age, expression, gender, identity, pose | eye,
# eyebrow, lip, mouth, nose, skin; 2 = unknown (no loss on that node)
EDIT_LABELS = {
    "real": "000000000000",
    "age": "110000100001",
    "smile": "101000001100",
    "surprised": "101000101111",
    "gender": "120110111101",
    "identity": "120010111111",
    "pose": "100001111111",
}
_CANVAS = 64


@dataclass(frozen=True)
class FaceIdentity:
    """A person: face half-axes (px at 64 x 64), colours (RGB 0-255) and the inner face's geometry."""

    face_w: float
    face_h: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    eye_dx: float
    eye_r: float
    brow_t: float
    nose_len: float
    mouth_w: float
    lip: tuple[int, int, int]
    background: tuple[int, int, int]


def random_identity(rng: np.random.Generator) -> FaceIdentity:
    """A random :class:`FaceIdentity`."""
    tone = rng.uniform(0.35, 1.0)
    skin = tuple(int(v) for v in np.clip(np.array([235, 200, 170]) * tone + rng.normal(0, 8, 3), 40, 255))
    hair = tuple(int(v) for v in rng.choice([[30, 20, 15], [90, 60, 30], [160, 120, 60], [20, 20, 20],
                                             [120, 50, 30]]) + rng.integers(-10, 11, 3))
    lip = tuple(int(v) for v in np.clip(np.array([170, 80, 80]) + rng.normal(0, 15, 3), 0, 255))
    bg = tuple(int(v) for v in rng.integers(60, 220, 3))
    return FaceIdentity(face_w=rng.uniform(17, 22), face_h=rng.uniform(22, 26), skin=skin, hair=hair,
                        eye_dx=rng.uniform(6.5, 9.0), eye_r=rng.uniform(2.0, 3.0), brow_t=rng.uniform(1.0, 2.5),
                        nose_len=rng.uniform(5.0, 8.5), mouth_w=rng.uniform(5.0, 8.0), lip=lip, background=bg)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b))


def render_face(identity: FaceIdentity, edit: str | None = None, strength: float = 0.0, size: int = 48,
                other: FaceIdentity | None = None, jitter: np.ndarray | None = None) -> np.ndarray:
    """uint8 [size, size, 3] RGB: ``identity``'s face with ``edit`` (one of ``EDITS``) at ``strength`` in [0, 1]
    (``other`` is the identity an "identity" edit moves towards); ``jitter`` [3] shifts the face (dx, dy) and scales
    it (1 + jitter[2]) before drawing."""
    if edit is not None and edit not in EDITS:
        raise ValueError(f"edit must be one of {EDITS} or None, got {edit!r}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if edit == "identity" and other is None:
        raise ValueError("an identity edit needs other= (the identity it moves towards)")
    s = float(strength) if edit else 0.0
    f = identity
    if edit == "identity":
        o = other
        f = replace(f, eye_dx=(1 - s) * f.eye_dx + s * o.eye_dx, eye_r=(1 - s) * f.eye_r + s * o.eye_r,
                    brow_t=(1 - s) * f.brow_t + s * o.brow_t, nose_len=(1 - s) * f.nose_len + s * o.nose_len,
                    mouth_w=(1 - s) * f.mouth_w + s * o.mouth_w, lip=_mix(f.lip, o.lip, s),
                    skin=_mix(f.skin, o.skin, 0.5 * s))
    j = np.zeros(3) if jitter is None else np.asarray(jitter, float)
    ss = 4  # supersampled drawing, then area-downsampled
    k = ss * (1 + j[2])
    img = np.empty((_CANVAS * ss, _CANVAS * ss, 3), np.uint8)
    img[:] = f.background
    cx, cy = (32 + j[0]) * ss, (34 + j[1]) * ss

    def pt(x, y):
        return int(round(cx + x * k)), int(round(cy + y * k))

    def ax(a, b):
        return max(1, int(round(a * k))), max(1, int(round(b * k)))

    hair = _mix(f.hair, (200, 200, 200), 0.8 * s) if edit == "age" else f.hair
    cv2.ellipse(img, pt(0, -4), ax(f.face_w + 3, f.face_h + 2), 0, 180, 360, hair, -1, cv2.LINE_AA)
    jaw = f.face_w * (1 - 0.22 * s) if edit == "gender" else f.face_w
    cv2.ellipse(img, pt(0, 0), ax(f.face_w, f.face_h), 0, 180, 360, f.skin, -1, cv2.LINE_AA)
    cv2.ellipse(img, pt(0, 0), ax(jaw, f.face_h), 0, 0, 180, f.skin, -1, cv2.LINE_AA)
    # inner features: pose squashes and shifts them horizontally
    squash, shift = (1 - 0.4 * s, 7 * s) if edit == "pose" else (1.0, 0.0)

    def fx(x):
        return x * squash + shift

    eye_r = f.eye_r * (1 + 0.6 * s) if edit == "surprised" else f.eye_r
    brow_y = -9 - (3.5 * s if edit == "surprised" else 0)
    brow_t = f.brow_t * (1 - 0.6 * s) if edit == "gender" else f.brow_t
    for side in (-1, 1):
        ex = fx(side * f.eye_dx)
        cv2.ellipse(img, pt(ex, -4), ax(eye_r * 1.5 * squash, eye_r), 0, 0, 360, (245, 245, 245), -1, cv2.LINE_AA)
        cv2.circle(img, pt(ex, -4), max(1, int(round(0.6 * eye_r * k))), (40, 30, 30), -1, cv2.LINE_AA)
        cv2.line(img, pt(ex - 3 * squash, brow_y + 0.5), pt(ex + 3 * squash, brow_y - 0.5), f.hair,
                 max(1, int(round(brow_t * k))), cv2.LINE_AA)
        if edit == "age" and s > 0:  # crow's feet
            for dy in (-1.5, 0.0, 1.5):
                x0 = ex + side * (eye_r * 1.6 + 0.5)
                cv2.line(img, pt(x0, -4 + dy * 0.5), pt(x0 + side * 2.5, -4 + dy), _mix(f.skin, (60, 40, 30), s),
                         max(1, int(round(0.5 * k))), cv2.LINE_AA)
    if edit == "age" and s > 0:  # forehead lines
        for y in (-14.0, -16.5):
            cv2.line(img, pt(-8, y), pt(8, y), _mix(f.skin, (70, 50, 40), s), max(1, int(round(0.5 * k))),
                     cv2.LINE_AA)
    nose = f.nose_len * (1 + 0.35 * s) if edit == "surprised" else f.nose_len
    nose_col = _mix(f.skin, (80, 50, 40), 0.6)
    cv2.line(img, pt(fx(0), -2), pt(fx(0.8), -2 + nose), nose_col, max(1, int(round(0.8 * k))), cv2.LINE_AA)
    mouth_w = f.mouth_w * (1 + 0.3 * s) if edit == "smile" else f.mouth_w
    lip = _mix(f.lip, (205, 40, 90), s) if edit == "gender" else f.lip
    my = 10.0
    if edit == "surprised" and s > 0:
        cv2.ellipse(img, pt(fx(0), my), ax(mouth_w * 0.55 * squash, 1 + 4 * s), 0, 0, 360, (60, 20, 25), -1,
                    cv2.LINE_AA)
        cv2.ellipse(img, pt(fx(0), my), ax(mouth_w * 0.55 * squash, 1 + 4 * s), 0, 0, 360, lip,
                    max(1, int(round(0.8 * k))), cv2.LINE_AA)
    else:
        lift = 3.5 * s if edit == "smile" else 0.0
        xs = np.linspace(-mouth_w, mouth_w, 9)
        ys = my - lift * (xs / mouth_w) ** 2 + 0.6
        pts = np.array([pt(fx(x), y) for x, y in zip(xs, ys)], np.int32)
        cv2.polylines(img, [pts], False, lip, max(1, int(round(1.4 * k))), cv2.LINE_AA)
    return cv2.resize(cv2.resize(img, (_CANVAS, _CANVAS), interpolation=cv2.INTER_AREA), (size, size),
                      interpolation=cv2.INTER_AREA)


def fingerprint(image: np.ndarray, generator: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3]: ``image`` with the trace of ``generator`` ("A" blur, "B" quantisation + noise,
    "C" nearest-neighbour up-sampling blend)."""
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
    x = image.astype(np.float32)
    if generator == "A":
        x = cv2.GaussianBlur(x, (0, 0), 0.7)
    elif generator == "B":
        x = np.round(x / 24.0) * 24.0 + rng.normal(0, 3.0, x.shape)
    else:
        h, w = x.shape[:2]
        small = cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        x = 0.5 * x + 0.5 * cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _post(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = np.clip(image.astype(np.float32) + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


@dataclass
class FaceSet(torch.utils.data.Dataset):
    """Images uint8 [N, S, S, 3], labels int64 [N, 12] (FFSC strings, 2 = unknown), and per image its ``edit``
    ("real" for none), ``strength``, ``generator`` ("" for untouched reals) and ``identity`` index.
    ``dataset[i]`` -> (image float32 [3, S, S] in [0, 1], label [12])."""

    images: np.ndarray
    labels: np.ndarray
    edit: np.ndarray
    strength: np.ndarray
    generator: np.ndarray
    identity: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return (torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255.0,
                torch.from_numpy(self.labels[i]))

    @property
    def is_fake(self) -> np.ndarray:
        """int64 [N]: 1 where the image is a forgery by the threshold definition."""
        return self.labels[:, 0].copy()


def make_faces(n: int, seed: int = 0, edits: tuple[str, ...] = EDITS, generators: tuple[str, ...] = ("A", "B"),
               fake_fraction: float = 0.5, sub_threshold_fraction: float = 0.3, size: int = 48,
               n_identities: int = 200, identity_seed: int | None = None) -> FaceSet:
    """``n`` procedural faces: a ``fake_fraction`` of forgeries (an edit of ``edits`` at strength U(TAU, 1), by a
    generator of ``generators``) and reals, of which a ``sub_threshold_fraction`` carry an edit at U(0, TAU) by a
    generator (still real by definition), the rest untouched. Identities are drawn from ``n_identities`` people of
    ``identity_seed`` (default ``seed``)."""
    if n < 1 or not 0 <= fake_fraction <= 1 or not 0 <= sub_threshold_fraction <= 1:
        raise ValueError("n must be >= 1 and the fractions in [0, 1]")
    bad = [e for e in edits if e not in EDITS] + [g for g in generators if g not in GENERATORS]
    if bad or not edits or not generators:
        raise ValueError(f"edits must be a non-empty subset of {EDITS} and generators of {GENERATORS}, got "
                         f"{edits} and {generators}")
    rng = np.random.default_rng(seed)
    id_rng = np.random.default_rng(seed if identity_seed is None else identity_seed)
    people = [random_identity(id_rng) for _ in range(int(n_identities))]
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty((n, 12), np.int64)
    meta = {"edit": [], "strength": [], "generator": [], "identity": []}
    for i in range(n):
        who = int(rng.integers(len(people)))
        fake = rng.random() < fake_fraction
        edited = fake or rng.random() < sub_threshold_fraction
        edit = str(rng.choice(list(edits))) if edited else None
        strength = float(rng.uniform(TAU, 1.0) if fake else rng.uniform(0.0, TAU)) if edited else 0.0
        other = people[(who + 1 + int(rng.integers(len(people) - 1))) % len(people)] if edit == "identity" else None
        jitter = np.array([rng.normal(0, 1.2), rng.normal(0, 1.2), rng.normal(0, 0.04)])
        img = render_face(people[who], edit, strength, size, other, jitter)
        gen = str(rng.choice(list(generators))) if edited else ""
        if gen:
            img = fingerprint(img, gen, rng)
        images[i] = _post(img, rng)
        labels[i] = [int(c) for c in EDIT_LABELS[edit if fake else "real"]]
        for k, v in zip(meta, (edit if fake else ("real" if not edited else f"real+{edit}"), strength, gen, who)):
            meta[k].append(v)
    return FaceSet(images, labels, np.array(meta["edit"]), np.array(meta["strength"], np.float32),
                   np.array(meta["generator"]), np.array(meta["identity"], np.int64))
