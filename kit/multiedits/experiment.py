"""The offline MultiEdits experiment: ShapesWorld multi-aspect edits, the editors, and the oracle's scores.

Cases are :class:`kit.data.shapes_export.MultiEdit` s (1-3 aspects composed on a 1-2 object scene: colour, shape,
size, add, remove); the source image is the rendered scene. Each method (parallel = :func:`kit.multiedits.edit`,
sequential, single-branch) is scored per case by the ShapesWorld oracle:

- **AspAcc (oracle)**: the fraction of the case's aspects found in the edited image: an edited object's new colour /
  shape / size detected at its place, an added object detected with its colour and shape, a removed object's colour
  no longer detected at its place;
- **all aspects**: every aspect found;
- **PSNR / MSE of the unedited region**: pixels outside the union of the aspects' changed regions (dilated by one
  pixel), edited image against the source image;
- **seconds** per sample (wall time of the editor, grouping pass included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["KIND_SETS", "METHODS", "shapes_cases", "aspect_hits", "unedited_scores", "Case", "evaluate",
           "evaluate_pie", "pie_scorers", "summary"]

KIND_SETS = {"colour": ("colour",), "mixed": ("colour", "shape", "size", "add", "remove")}
METHODS = ("parallel", "sequential", "single")


@dataclass
class Case:
    """One edit to run: the ``multi`` edit, the source ``image`` (uint8 [H, W, 3]), the captions and the kinds."""

    multi: object
    image: np.ndarray
    source: str
    target: str
    kinds: tuple[str, ...]


def shapes_cases(n: int, n_aspects: int, seed: int = 0, kinds: str = "colour", resolution: int = 32) -> list[Case]:
    """Return ``n`` ShapesWorld cases of ``n_aspects`` aspects each, drawn from ``KIND_SETS[kinds]`` (mixed sets
    use distinct kinds where they can), on 2-object scenes (1-object scenes for single-aspect add/remove draws
    that would not fit)."""
    from kit.data.shapes import render, sample_scene
    from kit.data.shapes_export import compose_edits

    if kinds not in KIND_SETS:
        raise ValueError(f"kinds must be one of {sorted(KIND_SETS)}, got {kinds!r}")
    if not 1 <= n_aspects <= 3:
        raise ValueError(f"n_aspects must be 1, 2 or 3, got {n_aspects}")
    rng = np.random.default_rng(seed)
    pool, out = KIND_SETS[kinds], []
    while len(out) < n:
        scene = sample_scene(rng, 2)
        picks = tuple(rng.choice(pool, size=n_aspects, replace=len(pool) < n_aspects))
        try:
            multi = compose_edits(scene, list(picks), rng)
        except ValueError:
            continue
        if multi.source_caption == multi.target_caption:
            continue
        image, _ = render(scene, resolution)
        out.append(Case(multi, image, multi.source_caption, multi.target_caption, picks))
    return out


def _near(dets, cx: float, cy: float, radius: float):
    """Return the detections whose centre lies within ``radius`` of (cx, cy)."""
    return [d for d in dets if (d.cx - cx) ** 2 + (d.cy - cy) ** 2 <= radius ** 2]


def aspect_hits(image, multi) -> list[bool]:
    """Return, per aspect (edit step) of ``multi``, whether the oracle finds it in ``image`` (see the module
    docstring); attributes are checked against the final target scene's object at the step's place."""
    from kit.data.shapes_oracle import detect_objects

    dets = detect_objects(np.asarray(image))
    final = multi.target.objects
    hits = []
    for step in multi.steps:
        if step.kind == "remove":
            o = step.old_object
            hits.append(not any(d.colour == o.colour for d in _near(dets, o.cx, o.cy, max(o.radius, 0.08))))
            continue
        new = step.new_object
        obj = min(final, key=lambda f: (f.cx - new.cx) ** 2 + (f.cy - new.cy) ** 2)
        near = _near(dets, obj.cx, obj.cy, max(obj.radius, 0.08))
        if step.kind == "add":
            hits.append(any(d.colour == obj.colour and d.shape == obj.shape for d in near))
        elif step.kind in ("colour", "shape", "size"):
            hits.append(any(getattr(d, step.kind) == getattr(obj, step.kind) for d in near))
        else:
            raise ValueError(f"aspect kind {step.kind!r} is not scored (colour, shape, size, add, remove)")
    return hits


def unedited_scores(image, source: np.ndarray, changed: np.ndarray) -> dict:
    """Return PSNR (dB) and MSE (0..1 scale) of ``image`` against ``source`` outside ``changed`` dilated by one
    pixel (NaN when nothing is left)."""
    a = np.asarray(image, dtype=np.float64) / 255.0
    b = np.asarray(source, dtype=np.float64) / 255.0
    if a.shape != b.shape:
        raise ValueError(f"image {a.shape} and source {b.shape} differ in size")
    grown = changed.copy()
    grown[1:] |= changed[:-1]
    grown[:-1] |= changed[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    keep = ~grown
    if not keep.any():
        return {"psnr": float("nan"), "mse": float("nan")}
    mse = float(((a - b) ** 2)[keep].mean())
    return {"psnr": float("inf") if mse == 0 else 10 * np.log10(1.0 / mse), "mse": mse}


def evaluate(pipe, cases: Sequence[Case], methods: Sequence[str] = METHODS, *, seed: int = 0, progress: bool = True,
             keep_images: bool = False, **opts) -> list[dict]:
    """Return one row per (case, method): n_aspects, kinds, method, aspacc, all, psnr, mse, seconds, groups,
    group_kinds (and the edited ``image`` when ``keep_images``); ``opts`` go to the editors."""
    from tqdm.auto import tqdm

    from kit.multiedits.editor import edit, sequential_edit, single_branch_edit

    editors = {"parallel": edit, "sequential": sequential_edit, "single": single_branch_edit}
    unknown = [m for m in methods if m not in editors]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    rows = []
    for i, case in enumerate(tqdm(cases, desc="edits", disable=not progress)):
        changed = case.multi.mask(case.image.shape[0])
        for method in methods:
            res = editors[method](pipe, case.image, case.source, case.target, seed=seed, **opts)
            hits = aspect_hits(res.image, case.multi)
            row = {"case": i, "n_aspects": len(case.multi.steps), "kinds": list(case.kinds), "method": method,
                   "aspacc": float(np.mean(hits)), "all": bool(all(hits)), "seconds": res.seconds,
                   "groups": res.groups, "group_kinds": res.group_kinds,
                   **unedited_scores(res.image, case.image, changed)}
            if keep_images:
                row["image"] = np.asarray(res.image)
            rows.append(row)
    return rows


def evaluate_pie(pipe, examples: Sequence, methods: Sequence[str] = METHODS, *, seed: int = 0,
                 scorers: dict | None = None, progress: bool = True, **opts) -> list[dict]:
    """Return one row per (PIE-Bench++ example, method), edited with the example's ``edit_action`` and
    ``aspect_mapping``: id, config, n_aspects (its number of edit actions), method, seconds, PSNR / MSE outside the
    example's mask, and one column per ``scorers`` entry (name -> fn(edited PIL image, source uint8 array,
    example) -> float; e.g. the CLIP scores of :mod:`kit.multiedits.metrics`; "aspacc" NaN without one)."""
    from PIL import Image
    from tqdm.auto import tqdm

    from kit.multiedits.editor import edit, sequential_edit, single_branch_edit

    editors = {"parallel": edit, "sequential": sequential_edit, "single": single_branch_edit}
    unknown = [m for m in methods if m not in editors]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    scorers = dict(scorers or {})
    rows = []
    for ex in tqdm(examples, desc="PIE-Bench++", disable=not progress):
        source = ex.load_image()
        for method in methods:
            res = editors[method](pipe, source, ex.source_prompt, ex.target_prompt, edit_action=ex.edit_action,
                                  aspect_mapping=ex.aspect_mapping, seed=seed, **opts)
            edited = res.image if res.image.size == (source.shape[1], source.shape[0]) else \
                res.image.resize((source.shape[1], source.shape[0]), Image.BICUBIC)
            row = {"id": ex.id, "config": ex.config, "n_aspects": len(ex.edit_action), "method": method,
                   "seconds": res.seconds, "aspacc": float("nan"), "all": float("nan"),
                   "groups": res.groups, "group_kinds": res.group_kinds,
                   **unedited_scores(edited, source, np.asarray(ex.mask, dtype=bool))}
            row.update({name: float(fn(edited, source, ex)) for name, fn in scorers.items()})
            rows.append(row)
    return rows


def pie_scorers(clip=None, dino=None, lpips_model=None, vlm=None) -> dict:
    """Return the PIE-Bench scorers for :func:`evaluate_pie` from built models (:mod:`kit.multiedits.metrics`:
    ``build_clip``, ``build_dino``, ``build_lpips``, ``build_vlm_judge``; each loads pretrained weights, so only on
    request): CLIP score of the whole edit and of its edited part, D-CLIP and AspAcc-CLIP (``[PROPOSED]``, as
    "aspacc"), AspAcc-VLM (``[PROPOSED]``, as "aspacc_vlm"; the paper's AspAcc-LLaVA), DINO structure distance, and
    SSIM / LPIPS of the unedited part."""
    from kit.multiedits import metrics as M
    from kit.multiedits.aspects import parse_edit_action, resolve_positions

    out = {}
    if clip is not None:
        out["clip_whole"] = lambda im, src, ex: M.clip_score(im, ex.target_prompt, clip)
        out["clip_edited"] = lambda im, src, ex: M.clip_score(im, ex.target_prompt, clip, mask=ex.mask)
        out["d_clip"] = lambda im, src, ex: M.directional_clip(im, src, ex.target_prompt, ex.source_prompt, clip)
        out["aspacc"] = lambda im, src, ex: M.aspect_accuracy_clip(
            im, src, resolve_positions(ex.source_prompt, parse_edit_action(ex.edit_action)), clip)["accuracy"]
    if vlm is not None:
        out["aspacc_vlm"] = lambda im, src, ex: M.aspect_accuracy_vlm(
            im, resolve_positions(ex.source_prompt, parse_edit_action(ex.edit_action)), vlm)["accuracy"]
    if dino is not None:
        out["structure"] = lambda im, src, ex: M.structure_distance(im, src, dino)
    out["ssim"] = lambda im, src, ex: M.unedited_region_scores(im, src, ex.mask)["ssim"]
    if lpips_model is not None:
        out["lpips"] = lambda im, src, ex: M.unedited_region_scores(im, src, ex.mask, lpips_model)["lpips"]
    return out


def summary(rows: Sequence[dict]) -> list[dict]:
    """Return per (method, n_aspects): n, mean AspAcc, fraction with all aspects, mean finite PSNR, mean seconds."""
    out = []
    keys = sorted({(r["method"], r["n_aspects"]) for r in rows}, key=lambda k: (METHODS.index(k[0]), k[1]))
    for method, n in keys:
        sel = [r for r in rows if r["method"] == method and r["n_aspects"] == n]
        psnr = [r["psnr"] for r in sel if np.isfinite(r["psnr"])]
        out.append({"method": method, "n_aspects": n, "n": len(sel),
                    "aspacc": float(np.mean([r["aspacc"] for r in sel])),
                    "all": float(np.mean([float(r["all"]) for r in sel])),
                    "psnr": float(np.mean(psnr)) if psnr else float("nan"),
                    "seconds": float(np.mean([r["seconds"] for r in sel]))})
    return out
