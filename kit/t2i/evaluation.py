"""Prompt adherence of a text-to-image model on ShapesWorld, measured by the oracle (colour segmentation + shape
templates, no CLIP), and where its cross-attention looks."""

from __future__ import annotations

import itertools
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
        store = AttentionStore()
        restore = register_attention_store(pipe.unet, store)
        try:
            img = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance_scale,
                       generator=torch.Generator().manual_seed(seed + i), output_type="np").images[0]
        finally:
            restore()
        img = np.round(np.asarray(img) * 255).astype(np.uint8)
        h, w = img.shape[:2]
        dets = [d for d in detect_objects(img) if d.colour == words[2]]
        token = {"colour": 3, "shape": 4}  # <bos> a size colour shape
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
