"""Aspect grouping of ParallelEdits (arXiv:2406.00985; the spec's §2.3, from the authors' demo code).

A short grouping pass (two branches, source -> source and source -> target, a few steps) records cross-attention;
each word's *token map* is the mean over steps, heads and the chosen layers (the highest resolution at or below
16 x 16), scaled to 0..255 and resized to ``resolution`` (256 in the paper's code). Then, per aspect:

- **global** when the annotation says so (no object of ``aspect_mapping`` in its phrase) or when the target map of
  its object covers at least ``global_fraction`` (80 %) of the pixels above ``tau`` (100);
- **non-rigid** for an insertion or a deletion, or for a swap whose source phrase (in the source prompt) and object
  (in the target prompt) overlap less than ``rigid_overlap`` (0.9);
- **rigid** otherwise (the object keeps its place and shape: a colour, material, ...).

The overlap of two maps is the *overlap coefficient* averaged over the thresholds tau - 10 .. tau + 9:
``ov(a, b) = mean_theta |a > theta and b > theta| / min(|a > theta|, |b > theta|)`` (not the IoU). Rigid and
non-rigid aspects are grouped greedily, each kind separately: the first remaining aspect seeds a group and takes
every remaining aspect whose target map overlaps the seed's by more than ``min_overlap``. The branches run the rigid
groups, then the non-rigid ones, then one group of all global aspects.

Where the spec marks a choice ``[PROPOSED]`` it is an option here, with the code's behaviour beside it:

- ``min_overlap`` 0.1 ``[PROPOSED]``; the code absorbs on any overlap (``min_overlap=0``; it also absorbs when a map
  is empty, its 0 / 0 giving NaN, which is truthy; here an empty map overlaps nothing).
- The code looks words up in the *target* maps only, so a deleted object (absent from the target prompt) is dropped
  from grouping and its edit never reaches a branch prompt; here a deleted object's map comes from the source
  prompt (``[PROPOSED]``), and an aspect whose words are found in neither prompt is sent to the global group with a
  warning instead of being dropped silently.
- Words are located by position (the occurrence nearest the edit), not by a word -> map dictionary, so a prompt
  with a repeated word ("a red circle left of a red square") maps each aspect to its own occurrence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from kit.multiedits.aspects import Aspect, EditAction

__all__ = ["KINDS", "NORMALIZATIONS", "BLEND_GLOBAL", "token_maps", "overlap", "locate", "target_positions", "Grouping", "group_aspects"]

KINDS = ("rigid", "non-rigid", "global")


NORMALIZATIONS = ("max", "minmax")
BLEND_GLOBAL = ("none", "objects")


def token_maps(store, token_positions: Sequence[Sequence[int]], row: int, *, layers: Sequence[str] | None = None,
               steps: Sequence[int] | None = None, resolution: int = 256, normalize: str = "max") -> Tensor:
    """Return one token map per word [W, resolution, resolution] float32 in 0..255 from an
    :class:`kit.diffusion.attention.AttentionStore`: for each word (its token positions), the mean over the chosen
    steps (None: all), heads and ``layers`` (None: all recorded cross layers at the highest resolution <= 16) of
    the probabilities of row ``row``, the mean over the word's tokens, scaled so the map's maximum is 255 (the
    code's ``normalize="max"``; ``"minmax"`` also moves the minimum to 0, ``[PROPOSED]`` for models whose maps have
    a high floor, as the small ShapesWorld model's do), then resized bilinearly."""
    if not token_positions:
        raise ValueError("token_positions is empty: no word to map")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if layers is None:
        sizes = sorted({store.spatial_size(store.attention(n, store.steps[0]).shape[2])[0] for n in store.layers})
        small = [s for s in sizes if s <= 16] or sizes[:1]
        layers = store.layers_at(small[-1])
    out = []
    for positions in token_positions:
        m = store.maps(list(positions), step=None if steps is None else list(steps), layers=layers,
                       batch_index=row)
        if normalize == "minmax":
            m = m - m.min()
        m = 255.0 * m / m.max().clamp_min(1e-12)
        out.append(F.interpolate(m[None, None], size=(resolution, resolution), mode="bilinear",
                                 align_corners=False)[0, 0])
    return torch.stack(out)


def overlap(a: Tensor, b: Tensor, tau: int = 100, band: int = 10) -> float:
    """Return the overlap coefficient of maps ``a`` and ``b`` (0..255) averaged over thresholds tau - band ..
    tau + band - 1: |a > t and b > t| / min(|a > t|, |b > t|), 0 for a threshold where either map is empty."""
    if a.shape != b.shape:
        raise ValueError(f"maps must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    vals = []
    for t in range(tau - band, tau + band):
        x, y = a > t, b > t
        denom = min(int(x.sum()), int(y.sum()))
        vals.append(0.0 if denom == 0 else int((x & y).sum()) / denom)
    return float(sum(vals) / len(vals))


def locate(words: Sequence[str], phrase: Sequence[str], near: int) -> list[int] | None:
    """Return the word indices of the occurrence of ``phrase`` in ``words`` nearest to index ``near`` (ties: the
    later one, since an object follows its attributes), or None when it does not occur."""
    n = len(phrase)
    if n == 0:
        return None
    starts = [i for i in range(len(words) - n + 1) if list(words[i:i + n]) == list(phrase)]
    if not starts:
        return None
    best = min(starts, key=lambda i: (abs(i - near), -i))
    return list(range(best, best + n))


def target_positions(actions: Sequence[EditAction]) -> list[int]:
    """Return where each action's phrase starts in the edited prompt (its source position shifted by the length
    changes of the actions before it)."""
    order = sorted(range(len(actions)), key=lambda i: actions[i].position)
    out, shift = [0] * len(actions), 0
    for i in order:
        a = actions[i]
        out[i] = a.position + shift
        shift += len(a.target_words) - len(a.source_words)
    return out


@dataclass
class Grouping:
    """What :func:`group_aspects` decided: a ``kind`` per aspect, the ``groups`` of aspect indices in branch order
    with their ``group_kinds``, the overlaps of the aspects' target maps ``overlaps`` [n, n], each swap's
    source/target overlap ``rigidity`` (None for others), each aspect's ``coverage`` (fraction of target-map
    pixels above tau), the maps used [n, R, R] (``source_maps``, ``target_maps``; zeros where absent), and the
    aspects ``unlocated`` (found in neither prompt)."""

    aspects: list[Aspect]
    kinds: list[str]
    groups: list[list[int]]
    group_kinds: list[str]
    overlaps: Tensor
    rigidity: list[float | None]
    coverage: list[float]
    source_maps: Tensor
    target_maps: Tensor
    unlocated: list[int] = field(default_factory=list)

    def group_actions(self) -> list[list[EditAction]]:
        """Return the edit actions of each group, in branch order (for :func:`kit.multiedits.branch_prompts`)."""
        return [[self.aspects[i].action for i in g] for g in self.groups]

    def blend_words(self, blend_global: str = "none") -> list[list[str]]:
        """Return, per group, the object words to blend locally. The global group gets none (the code's
        ``blend_global="none"``), or with ``"objects"`` (``[PROPOSED]``) the objects its aspects name: an aspect
        that is global only because its object's map is large still edits that object, and blending keeps the
        group's branch from repainting what earlier branches edited (an annotated global aspect names no object and
        stays unblended)."""
        if blend_global not in BLEND_GLOBAL:
            raise ValueError(f"blend_global must be one of {BLEND_GLOBAL}, got {blend_global!r}")
        out = []
        for g, kind in zip(self.groups, self.group_kinds):
            words = [] if kind == "global" and blend_global == "none" else \
                [o for i in g for o in self.aspects[i].objects]
            out.append(list(dict.fromkeys(words)))
        return out


def _mean_map(maps: Tensor, idx: list[int] | None) -> Tensor | None:
    return None if idx is None else maps[idx].mean(dim=0)


def group_aspects(items: Sequence[Aspect], source_words: Sequence[str], target_words: Sequence[str],
                  source_maps: Tensor, target_maps: Tensor, *, tau: int = 100, global_fraction: float = 0.8,
                  rigid_overlap: float = 0.9, min_overlap: float = 0.1) -> Grouping:
    """Return the :class:`Grouping` of ``items`` from per-word token maps of the source prompt
    (``source_maps`` [len(source_words), R, R]) and of the target prompt (``target_maps``), as the module
    docstring describes."""
    items = list(items)
    if not items:
        raise ValueError("no aspect to group: the source and target prompts do not differ")
    if source_maps.shape[0] != len(source_words) or target_maps.shape[0] != len(target_words):
        raise ValueError(f"one map per word is needed: {source_maps.shape[0]} source maps for {len(source_words)} "
                         f"words, {target_maps.shape[0]} target maps for {len(target_words)} words")
    res = target_maps.shape[-1]
    zero = torch.zeros(res, res)
    starts = target_positions([a.action for a in items])
    kinds, rigidity, coverage, src_list, tgt_list, unlocated = [], [], [], [], [], []
    for i, asp in enumerate(items):
        act = asp.action
        obj = asp.objects[-1].split() if asp.objects else act.target_words or act.source_words
        t_map = _mean_map(target_maps, locate(target_words, obj, starts[i]))
        s_map = _mean_map(source_maps, locate(source_words, act.source_words, act.position)) \
            if act.source_words else None
        if t_map is None and act.kind == "delete":  # [PROPOSED] a deleted object is located in the source prompt
            t_map = _mean_map(source_maps, locate(source_words, obj, act.position))
        if t_map is None:
            unlocated.append(i)
            warnings.warn(f"aspect {act.phrase!r}: its words {obj} are in neither prompt; it joins the global group",
                          stacklevel=2)
        cov = 0.0 if t_map is None else float((t_map > tau).float().mean())
        coverage.append(cov)
        rig = None
        if asp.is_global or t_map is None or cov >= global_fraction:
            kind = "global"
        elif act.kind in ("add", "delete"):
            kind = "non-rigid"
        else:
            rig = overlap(s_map, t_map, tau) if s_map is not None else 0.0
            kind = "non-rigid" if rig < rigid_overlap else "rigid"
        kinds.append(kind)
        rigidity.append(rig)
        src_list.append(zero if s_map is None else s_map)
        tgt_list.append(zero if t_map is None else t_map)
    n = len(items)
    ov = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            ov[i, j] = overlap(tgt_list[i], tgt_list[j], tau)
    groups, group_kinds = [], []
    for kind in ("rigid", "non-rigid"):
        remaining = [i for i in range(n) if kinds[i] == kind]
        while remaining:
            seed, rest = remaining[0], remaining[1:]
            group = [seed] + [j for j in rest if ov[seed, j] > min_overlap]
            remaining = [j for j in rest if j not in group]
            groups.append(group)
            group_kinds.append(kind)
    glob = [i for i in range(n) if kinds[i] == "global"]
    if glob:
        groups.append(glob)
        group_kinds.append("global")
    return Grouping(items, kinds, groups, group_kinds, ov, rigidity, coverage, torch.stack(src_list),
                    torch.stack(tgt_list), unlocated)
