"""What the MultiEdits explorer shows, computed from an :class:`kit.multiedits.editor.EditResult`: the token maps of
each branch's rows (reference, t_k, m_k) per step, layer resolution and head; the branches' clean estimates per
step as images; the local-blend maps and masks per step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ROLES", "BranchView", "branch_views", "word_map", "x0_images", "blend_mask", "group_table"]

ROLES = ("ref", "t", "m")


@dataclass
class BranchView:
    """Branch k of an edit: its ``prompts`` per role (ref: p_k, the prompt of what it edits; t: p_{k+1}; m: p_k),
    the UNet ``rows`` per role, and its group's ``kind`` and aspect ``phrases``."""

    index: int
    prompts: dict[str, str]
    rows: dict[str, int]
    kind: str
    phrases: list[str]

    def words(self, role: str) -> list[str]:
        """Return the words of the prompt of ``role``."""
        return self.prompts[role].split()


def branch_views(result) -> list[BranchView]:
    """Return one :class:`BranchView` per branch of ``result`` (its last multi-branch run)."""
    run = result.runs[-1]
    layout, prompts = run.layout, result.branch_prompts
    if len(prompts) - 1 != len(layout["t"]):  # a sequential result: its last run edits one aspect
        prompts = prompts[-2:]
    out = []
    for k in range(len(layout["t"])):
        rows = {"ref": layout["ref"][k], "t": layout["t"][k], "m": layout["m"][k]}
        roles = {"ref": prompts[k], "t": prompts[k + 1], "m": prompts[k]}
        kind = result.group_kinds[-len(layout["t"]) + k]
        phrases = result.groups[-len(layout["t"]) + k] if result.groups else []
        out.append(BranchView(k, roles, rows, kind, list(phrases)))
    return out


def word_map(result, tokenizer, view: BranchView, role: str, word: int, *, step: int | None = None,
             resolution: int | None = None, head: int | None = None, size: int | None = None) -> np.ndarray:
    """Return the cross-attention map [size, size] (float32, 0..1 of its maximum) of word ``word`` of ``role``'s
    prompt in branch ``view``: mean over the steps (or one ``step``), the recorded layers at ``resolution`` (None:
    all), the heads (or one ``head`` when the run kept them) and the word's tokens."""
    from kit.diffusion.align import word_positions

    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    store = result.runs[-1].store
    positions = word_positions(tokenizer, view.prompts[role])
    if not 0 <= word < len(positions):
        raise ValueError(f"word must index the {len(positions)} words of {view.prompts[role]!r}, got {word}")
    layers = store.layers if resolution is None else store.layers_at(resolution)
    if not layers:
        raise ValueError(f"no cross-attention layer was recorded at {resolution} x {resolution}")
    steps = store.steps if step is None else [step]
    out_size = size or max(store.spatial_size(store.attention(n, steps[0]).shape[2])[0] for n in layers)
    total = torch.zeros(out_size, out_size)
    for s in steps:
        for n in layers:
            p = store.attention(n, s)[view.rows[role]].float()  # [heads or 1, Q, L]
            if head is not None:
                if p.shape[0] == 1:
                    raise ValueError("this run kept only the mean over heads; edit with keep_heads=True")
                p = p[head:head + 1]
            h, w = store.spatial_size(p.shape[1])
            m = p.mean(dim=0)[:, positions[word]].mean(dim=-1).reshape(1, 1, h, w)
            total += F.interpolate(m, size=(out_size, out_size), mode="bilinear", align_corners=False)[0, 0]
    total /= len(steps) * len(layers)
    return (total / total.max().clamp_min(1e-12)).numpy()


def x0_images(pipe, result, rows: str = "edits") -> np.ndarray:
    """Return clean estimates at every step as images uint8 [n, K, H, W, 3]: ``rows`` "edits" the result's
    ``x0_steps`` (each branch's, or each aspect's for the sequential baseline), "t" / "m" the target / mutual rows
    of its last multi-branch run."""
    if rows == "edits":
        x = result.x0_steps
    elif rows in ("t", "m"):
        x = result.runs[-1].sample.x0_steps[:, (0 if rows == "t" else 1)::2]
    else:
        raise ValueError(f"rows must be 'edits', 't' or 'm', got {rows!r}")
    n, k = x.shape[:2]
    imgs = pipe._decode(x.reshape(n * k, *x.shape[2:]).to(pipe.device), "np")
    arr = np.round(np.asarray(imgs) * 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr.reshape(n, k, *arr.shape[1:])


def blend_mask(result, branch: int, step: int, theta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (the branch's normalised blend map [h, w] at ``step``, its mask) where the mask is the one the edit
    used (``theta`` None) or the map thresholded at ``theta`` (binary, monotone in theta)."""
    blend = result.runs[-1].blend
    if blend is None:
        raise ValueError("this edit ran without local blending")
    if not 0 <= branch < len(blend.maps):
        raise ValueError(f"branch must be in [0, {len(blend.maps)}), got {branch}")
    maps = blend.maps[branch]
    if not 0 <= step < len(maps):
        raise ValueError(f"step must be in [0, {len(maps)}), got {step}")
    m = maps[step].float().numpy()
    mask = blend.masks[branch][step].numpy() if theta is None else m > theta
    return m, mask


def group_table(result) -> list[dict]:
    """Return one row per aspect: phrase, action kind, group kind, branch, coverage, rigidity (the overlap of the
    source phrase's and the object's maps)."""
    g = result.grouping
    if g is None:
        return []
    branch_of = {i: b for b, grp in enumerate(g.groups) for i in grp}
    return [{"phrase": a.action.phrase, "action": a.action.kind, "kind": g.kinds[i], "branch": branch_of[i],
             "objects": list(a.objects), "coverage": round(g.coverage[i], 3),
             "rigidity": None if g.rigidity[i] is None else round(g.rigidity[i], 3)}
            for i, a in enumerate(g.aspects)]
