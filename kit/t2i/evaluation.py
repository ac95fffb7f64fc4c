"""Prompt adherence of a text-to-image model on ShapesWorld, measured by the oracle (colour segmentation + shape
templates, no CLIP), and where its cross-attention looks; for Stable Diffusion, where the oracle does not apply,
samples with their timing and each prompt word's cross-attention map."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kit.data.shapes import COLOURS, SHAPES, SIZES, caption, sample_scene
from kit.data.shapes_oracle import adherence_table, detect_objects


def single_object_prompts() -> list[str]:
    """Return every "a {size} {colour} {shape}" prompt (2 x 6 x 5 = 60), the grammar always accepted."""
    return [f"a {s} {c} {h}" for s, c, h in itertools.product(SIZES, COLOURS, SHAPES)]


def scene_prompts(n_objects: int, n: int, seed: int = 0) -> list[str]:
    """Return ``n`` captions of random ``n_objects``-object scenes (seeded)."""
    rng = np.random.default_rng(seed)
    return [caption(sample_scene(rng, n_objects)) for _ in range(n)]


@torch.no_grad()
def generate(pipe, prompts: Sequence[str], steps: int = 20, guidance_scale: float = 3.0, seed: int = 0,
             batch_size: int = 20, sigmas: Any = None) -> np.ndarray:
    """Return uint8 images [N, H, W, 3] for ``prompts``, batch by batch with generators seeded ``seed + batch``."""
    out = []
    for k in range(0, len(prompts), batch_size):
        g = torch.Generator().manual_seed(seed + k)
        imgs = pipe(list(prompts[k:k + batch_size]), num_inference_steps=steps, guidance_scale=guidance_scale,
                    generator=g, output_type="np", sigmas=sigmas).images
        out.append(np.round(np.asarray(imgs) * 255).astype(np.uint8))
    return np.concatenate(out)


def adherence_by_count(pipe, counts: Sequence[int] = (1, 2, 3), n_multi: int = 30, steps: int = 20,
                       guidance_scale: float = 3.0, seed: int = 0, n_single: int | None = None) -> dict[str, Any]:
    """Return {n_objects: oracle accuracies per attribute} with the prompts and images used.

    1-object prompts are the full size x colour x shape grid (or its first ``n_single``); 2- and 3-object prompts are
    captions of ``n_multi`` random scenes.
    """
    result: dict[str, Any] = {}
    for n in counts:
        prompts = single_object_prompts()[:n_single] if n == 1 else scene_prompts(n, n_multi, seed + n)
        images = generate(pipe, prompts, steps, guidance_scale, seed)
        table = adherence_table(list(images), prompts)
        result[str(n)] = {"accuracy": table["overall"], "n_prompts": len(prompts), "prompts": prompts,
                          "images": images}
    return result


def attention_localisation(pipe, prompts: Sequence[str], steps: int = 20, guidance_scale: float = 3.0,
                           seed: int = 0, resolution: int | None = None) -> dict[str, Any]:
    """Return, for single-object prompts "a {size} {colour} {shape}", the share of prompts whose colour word's and
    shape word's cross-attention map (averaged over steps and layers) peaks inside the generated object's mask.

    The object is the oracle's detection of the named colour (the largest one); prompts where the oracle finds no
    such object count as misses and are reported separately.
    """
    from kit.diffusion.attention import AttentionStore, register_attention_store

    hits = {"colour": 0, "shape": 0}
    missing, maps_out = 0, []
    for i, prompt in enumerate(prompts):
        words = prompt.split()
        if len(words) != 4 or words[0] != "a":
            raise ValueError(f"attention_localisation takes single-object prompts 'a size colour shape', got {prompt!r}")
        token = {"colour": 3, "shape": 4}  # <bos> a size colour shape
        store = AttentionStore(tokens=list(token.values()))  # step-summed maps of these tokens only (kit.kernels)
        restore = register_attention_store(pipe.unet, store)
        try:
            img = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance_scale,
                       generator=torch.Generator().manual_seed(seed + i), output_type="np").images[0]
        finally:
            restore()
        img = np.round(np.asarray(img) * 255).astype(np.uint8)
        h, w = img.shape[:2]
        dets = [d for d in detect_objects(img) if d.colour == words[2]]
        maps = {k: store.maps(t, resolution=(h, w)).float().numpy() for k, t in token.items()}
        maps_out.append({"prompt": prompt, "image": img, **maps})
        if not dets:
            missing += 1
            continue
        mask = max(dets, key=lambda d: d.mask.sum()).mask
        for k, m in maps.items():
            y, x = np.unravel_index(int(np.argmax(m)), m.shape)
            hits[k] += bool(mask[y, x])
    n = len(prompts)
    return {"colour_word_in_object": hits["colour"] / n, "shape_word_in_object": hits["shape"] / n,
            "object_not_found": missing / n, "n_prompts": n, "maps": maps_out}


ADHERENCE_KEYS = ("colour", "shape", "size", "count", "relation", "all")
ORACLE_DOES_NOT_APPLY = ("The ShapesWorld oracle reads images back by ShapesWorld's palette, shape templates and plain "
                         "background; a Stable Diffusion image is none of these, so prompt adherence is not scored "
                         "here (that would need CLIP or a VQA model). Shown instead: samples with their timing, "
                         "and where each prompt word's cross-attention looks.")


def adherence_record(table: dict[str, Any]) -> dict[str, dict]:
    """Return {n_objects: oracle accuracies} of :func:`adherence_by_count`'s table (what metrics.json keeps)."""
    return {n: r["accuracy"] for n, r in table.items()}


def adherence_markdown(table: dict[str, Any], keys: Sequence[str] = ADHERENCE_KEYS) -> str:
    """Return a markdown table: one row per object count, the oracle accuracy of each attribute in ``keys``."""
    lines = ["| objects in the prompt | prompts | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for n, r in table.items():
        acc = r["accuracy"]
        cells = ["—" if acc.get(k) is None else f"{100 * acc[k]:.0f} %" for k in keys]
        lines.append(f"| {n} | {r['n_prompts']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def attention_prompts(n: int) -> list[str]:
    """Return ``n`` single-object prompts spread evenly over the 60 of :func:`single_object_prompts`."""
    prompts = single_object_prompts()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(prompts):
        raise ValueError(f"n must be an int in [1, {len(prompts)}], got {n!r}")
    return prompts[::max(1, len(prompts) // n)][:n]


def sample_timing(pipe, prompts: Sequence[str], steps: int = 20, guidance_scale: float = 3.0,
                  seed: int = 0) -> dict[str, Any]:
    """Return {"images": uint8 [N, H, W, 3], "prompts", "steps", "seconds_per_image", "height", "width"}: the
    prompts drawn in one batch (after one untimed warm-up call of one step, so the timing excludes first-call
    set-up)."""
    prompts = list(prompts)
    generate(pipe, prompts[:1], steps=1, guidance_scale=guidance_scale, seed=seed)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    images = generate(pipe, prompts, steps, guidance_scale, seed, batch_size=len(prompts))
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"images": images, "prompts": prompts, "steps": steps, "seconds_per_image": seconds / len(prompts),
            "height": int(images.shape[1]), "width": int(images.shape[2])}


def word_attention(pipe, prompt: str, steps: int = 20, guidance_scale: float = 3.0, seed: int = 0,
                   top_fraction: float = 0.1) -> dict[str, Any]:
    """Return the image of ``prompt`` and each word's cross-attention map [H, W] (mean over steps and layers),
    with per word the share of its map's mass in its top ``top_fraction`` of pixels (1 / ``top_fraction`` times
    that fraction for a flat map: how focused the word is) and its peak (row, column) as fractions of the size."""
    from kit.t2i.explore import token_maps

    if not 0.0 < top_fraction < 1.0:
        raise ValueError(f"top_fraction must be in (0, 1), got {top_fraction}")
    tm = token_maps(pipe, prompt, steps=steps, guidance_scale=guidance_scale, seed=seed)
    words = []
    for i, w in tm.words:
        m = np.clip(tm.word_map(i), 0, None).astype(np.float64)
        flat = np.sort(m.ravel())[::-1]
        k = max(1, int(round(top_fraction * flat.size)))
        share = float(flat[:k].sum() / flat.sum()) if flat.sum() > 0 else 0.0
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        words.append({"word": w, "token": i, "top_share": share,
                      "peak": [round(y / m.shape[0], 3), round(x / m.shape[1], 3)], "map": m})
    return {"prompt": prompt, "image": tm.image, "words": words, "top_fraction": top_fraction}


def adherence_examples(table: dict[str, Any], n_objects: str, k: int) -> tuple[np.ndarray, list[str]]:
    """Return (images, titles) of the first ``k`` prompts with ``n_objects`` objects in an
    :func:`adherence_by_count` table, relations shortened to arrows."""
    r = table[str(n_objects)]
    titles = [p.replace(" left of ", " ← ").replace(" right of ", " → ") for p in r["prompts"][:k]]
    return r["images"][:k], titles


def attention_record(loc: dict[str, Any]) -> dict[str, Any]:
    """Return what metrics.json keeps of :func:`attention_localisation` (everything but the maps)."""
    return {k: v for k, v in loc.items() if k != "maps"}


def attention_summary(loc: dict[str, Any]) -> str:
    """Return one sentence: how often the colour and the shape word peak inside their object."""
    return (f"colour word peaks inside its object: {100 * loc['colour_word_in_object']:.0f} %, shape word: "
            f"{100 * loc['shape_word_in_object']:.0f} % ({loc['n_prompts']} prompts; object not found in "
            f"{100 * loc['object_not_found']:.0f} %)")


def word_attention_record(att: dict[str, Any]) -> dict[str, Any]:
    """Return what metrics.json keeps of :func:`word_attention`: the prompt and each word's focus and peak."""
    return {"prompt": att["prompt"], "top_fraction": att["top_fraction"],
            "words": [{k: v for k, v in w.items() if k != "map"} for w in att["words"]]}


def word_attention_summary(att: dict[str, Any]) -> str:
    """Return one sentence per word: the share of its attention in the top pixels (flat map: the fraction itself)."""
    f = att["top_fraction"]
    parts = [f"{w['word']} {100 * w['top_share']:.0f} %" for w in att["words"]]
    return (f"share of each word's cross-attention in its top {100 * f:.0f} % of pixels ({100 * f:.0f} % if "
            f"spread evenly): " + ", ".join(parts))


def most_focused_word(att: dict[str, Any]) -> dict[str, Any]:
    """Return the word of :func:`word_attention` whose map is the most concentrated (largest top share)."""
    return max(att["words"], key=lambda w: w["top_share"])
