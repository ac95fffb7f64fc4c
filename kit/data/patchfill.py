"""An exemplar (patch-based) inpainting fill: 7x7 patches copied from the image itself, PatchMatch-style.

Used by :mod:`kit.data.inpainting` as the "patch" fill, so that a detector trained on generated inpaintings does not
only learn the smooth look of diffusion-type classical fills (Telea, Navier-Stokes, biharmonic).
"""

from __future__ import annotations

import cv2
import numpy as np


def check_fill_inputs(image: np.ndarray, mask: np.ndarray, method: str,
                      methods: tuple[str, ...] = ("patch",)) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image, mask)`` validated for a fill: uint8 RGB [H, W, 3] and a bool mask [H, W] that leaves pixels."""
    if method not in methods:
        raise ValueError(f"unknown fill method {method!r}; valid: {', '.join(methods)}")
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must have dtype uint8, got dtype {image.dtype}")
    if image.ndim == 2:
        raise ValueError(f"image must be RGB [H, W, 3], got a grey image of shape {image.shape}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape}")
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("mask must be bool or hold only 0 and 1")
        mask = mask.astype(bool)
    if mask.all():
        raise ValueError("mask covers every pixel: there is nothing to fill from")
    return image, mask


_PATCH = 7                  # patch side
_HALF = _PATCH // 2
_TEXTURE_WEIGHT = 4.0       # weight of the texture feature channel against the RGB channels (0-255)
_DIRS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def _source_map(hole: np.ndarray) -> tuple[np.ndarray, bool]:
    """Centres whose patch avoids the hole (borders reflected), relaxed to smaller patches if there are none."""
    for k in (_PATCH, 3, 1):
        grown = cv2.dilate(hole.astype(np.uint8), np.ones((k, k), np.uint8), borderType=cv2.BORDER_REFLECT)
        if (grown == 0).any():
            return grown == 0, k == _PATCH
    raise ValueError("mask covers every pixel: there is nothing to fill from")


def _pad(x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((_HALF, _HALF), (_HALF, _HALF), (0, 0)), mode="symmetric")


def _attempt(nnf: np.ndarray, dist: np.ndarray, feats: np.ndarray, tfeat: np.ndarray, cand: np.ndarray) -> None:
    """Replace matches in ``nnf`` (in place) by the candidate source rows ``cand`` (-1: none) that fit better."""
    sel = np.flatnonzero((cand >= 0) & (cand != nnf))
    diff = feats[cand[sel]] - tfeat[sel]
    d = np.einsum("ij,ij->i", diff, diff)
    better = d < dist[sel]
    nnf[sel[better]], dist[sel[better]] = cand[sel[better]], d[better]


def _fill_level(x: np.ndarray, hole: np.ndarray, guide: tuple | None, rng: np.random.Generator,
                n_em: int, n_pm: int = 2) -> tuple[np.ndarray, tuple]:
    """Return the level's filled ``x`` [h, w, C] after ``n_em`` rounds of PatchMatch search and voting."""
    h, w = hole.shape
    valid, strict = _source_map(hole)
    src = np.argwhere(valid)
    sid = np.full((h, w), -1, np.int64)
    sid[valid] = np.arange(len(src))
    tmask = cv2.dilate(hole.astype(np.uint8), np.ones((_PATCH, _PATCH), np.uint8)) > 0
    tgt = np.argwhere(tmask)                                 # every pixel whose patch touches the hole
    tid = np.full((h, w), -1, np.int64)
    tid[tmask] = np.arange(len(tgt))
    n, lim = len(tgt), np.array([h, w])

    def lookup(coords: np.ndarray) -> np.ndarray:            # source row at each coordinate, -1 if none
        inside = ((coords >= 0) & (coords < lim)).all(1)
        out = np.full(len(coords), -1, np.int64)
        out[inside] = sid[coords[inside, 0], coords[inside, 1]]
        return out

    nnf = rng.integers(0, len(src), n)
    if guide is not None:                                    # the coarser level's offsets, scaled up
        c_tid, c_src, c_nnf, scale = guide
        parent = np.minimum((tgt / scale).astype(np.int64), np.array(c_tid.shape) - 1)
        p_row = c_tid[parent[:, 0], parent[:, 1]]
        has = p_row >= 0
        offset = np.zeros_like(tgt)
        offset[has] = c_src[c_nnf[p_row[has]]] - parent[has]
        up = lookup(tgt + np.rint(offset * scale).astype(np.int64))
        nnf = np.where(has & (up >= 0), up, nnf)
    holes = np.argwhere(hole)
    feats = None
    for _ in range(n_em):
        padded = _pad(x)
        win = np.lib.stride_tricks.sliding_window_view(padded, (_PATCH, _PATCH), axis=(0, 1))
        if feats is None or not strict:                      # strict sources never overlap the hole
            feats = win[src[:, 0], src[:, 1]].reshape(len(src), -1)
        tfeat = win[tgt[:, 0], tgt[:, 1]].reshape(n, -1)
        diff = feats[nnf] - tfeat
        dist = np.einsum("ij,ij->i", diff, diff)
        for _ in range(n_pm):
            for dy, dx in _DIRS:                             # propagation: a neighbour's match, shifted back
                q = tgt + (dy, dx)
                inside = ((q >= 0) & (q < lim)).all(1)
                q_row = np.full(n, -1, np.int64)
                q_row[inside] = tid[q[inside, 0], q[inside, 1]]
                cand = np.full(n, -1, np.int64)
                ok = q_row >= 0
                cand[ok] = lookup(src[nnf[q_row[ok]]] - (dy, dx))
                _attempt(nnf, dist, feats, tfeat, cand)
            radius = max(h, w)
            while radius >= 1:                               # random search in shrinking windows
                _attempt(nnf, dist, feats, tfeat, lookup(src[nnf] + rng.integers(-radius, radius + 1, (n, 2))))
                radius //= 2
            _attempt(nnf, dist, feats, tfeat, rng.integers(0, len(src), n))
        # vote: each hole pixel copies from the best-matching patch that covers it (a 7x7 min filter of ranks)
        rank = np.empty(n, np.float32)
        rank[np.argsort(dist, kind="stable")] = np.arange(n, dtype=np.float32)
        rank_map = np.full((h, w), float(n), np.float32)
        rank_map[tgt[:, 0], tgt[:, 1]] = rank
        best = cv2.erode(rank_map, np.ones((_PATCH, _PATCH), np.uint8), borderType=cv2.BORDER_CONSTANT,
                         borderValue=float(n))
        winner = np.argsort(dist, kind="stable")[best[holes[:, 0], holes[:, 1]].astype(np.int64)]
        read = src[nnf[winner]] + holes - tgt[winner] + _HALF
        x = x.copy()
        x[holes[:, 0], holes[:, 1]] = padded[read[:, 0], read[:, 1]]
    return x, (tid, src, nnf)


def _texture(base: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Mean gradient magnitude over a k x k window of known pixels [H, W] (the hole's own pixels unread)."""
    grey = base.mean(2)
    g = np.zeros_like(grey)
    g[:-1] += np.abs(np.diff(grey, axis=0))
    g[:, :-1] += np.abs(np.diff(grey, axis=1))
    ok = (cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0).astype(np.float32)
    num = cv2.boxFilter(g * ok, -1, (k, k), normalize=False)
    return num / np.maximum(cv2.boxFilter(ok, -1, (k, k), normalize=False), 1.0)


def patch_fill(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Return ``image`` uint8 [H, W, 3] with ``mask`` [H, W] filled by 7x7 patches copied from the image itself.

    An exemplar fill in the manner of PatchMatch completion (Barnes et al., SIGGRAPH 2009; Wexler et al.,
    PAMI 2007): coarse to fine over an image pyramid, every patch touching the hole is matched to a source
    patch lying wholly outside it (random search + propagation, vectorised over all patches), then each hole
    pixel copies from the best match covering it, which keeps texture sharp; the field of matches is scaled
    up to the next level. A texture channel (mean gradient magnitude, Newson et al., SIAM J. Imaging Sci.
    2014) joins the patches so the hole does not settle on flat sources. The hidden pixels are never read.
    Deterministic given ``rng`` (a Generator or an int seed; None = seed 0).
    """
    image, mask = check_fill_inputs(image, mask, "patch")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
    if not mask.any():
        return image.copy()
    base = image.astype(np.float32)
    base[mask] = 0.0
    holes = [mask]
    while min(holes[-1].shape) // 2 >= 4 * _PATCH:
        h, w = holes[-1].shape
        small = cv2.resize(holes[-1].astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA) > 0
        valid, strict = _source_map(small)
        if not strict or valid.sum() < 64:
            break
        holes.append(small)
    full = np.dstack([base, _TEXTURE_WEIGHT * _texture(base, mask, 2 ** (len(holes) - 1) + 2)])
    images = [full] + [cv2.resize(full, hole.shape[::-1], interpolation=cv2.INTER_AREA) for hole in holes[1:]]
    top, top_hole = images[-1], holes[-1].astype(np.uint8)
    t_max = max(float(top[:, :, 3].max()), 1e-6)
    rgb = cv2.inpaint(np.clip(np.rint(top[:, :, :3]), 0, 255).astype(np.uint8), top_hole, 3, cv2.INPAINT_TELEA)
    tex = cv2.inpaint(np.rint(top[:, :, 3] * 255 / t_max).astype(np.uint8), top_hole, 3, cv2.INPAINT_TELEA)
    x = np.dstack([rgb, tex * (t_max / 255)]).astype(np.float32)
    guide = None
    for level in range(len(images) - 1, -1, -1):
        if guide is not None:
            up = cv2.resize(x, holes[level].shape[::-1], interpolation=cv2.INTER_LINEAR)
            x = images[level].copy()
            x[holes[level]] = up[holes[level]]
        x, (tid, src, nnf) = _fill_level(x, holes[level], guide, rng, n_em=3 if level == len(images) - 1 else 2)
        if level:
            guide = (tid, src, nnf, holes[level - 1].shape[0] / holes[level].shape[0])
    out = image.copy()
    out[mask] = np.clip(np.rint(x[:, :, :3][mask]), 0, 255).astype(np.uint8)
    return out
