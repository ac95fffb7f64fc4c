"""What the prompt explorer shows: a generated image and the cross-attention map of each prompt word."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TokenMaps:
    """One generation: the image, the prompt's words with their token positions, and the attention store."""

    prompt: str
    image: np.ndarray  # uint8 [H, W, 3]
    words: list[tuple[int, str]]  # (token index, word), <bos>/<eos>/<pad> excluded
    store: object
    steps: int
    _cache: dict = field(default_factory=dict, repr=False)

    def word_map(self, token_index: int, step: int | None = None) -> np.ndarray:
        """Return the cross-attention map [H, W] of one token, averaged over layers (and steps if ``step`` is None)."""
        key = (token_index, step)
        if key not in self._cache:
            h, w = self.image.shape[:2]
            m = self.store.maps(token_index, step=None if step is None else [step], resolution=(h, w))
            self._cache[key] = m.float().numpy()
        return self._cache[key]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """Return the token ids of ``prompt`` (with its start / end tokens) or raise ``ValueError`` for words outside a
    word-level vocabulary (:func:`kit.diffusion.text.check_prompt`, fast tokenizers) or a prompt longer than
    ``tokenizer.model_max_length`` (every tokenizer, :func:`kit.diffusion.align.prompt_token_ids`; CLIP's byte-level
    BPE has no unknown words)."""
    from kit.diffusion.align import prompt_token_ids
    from kit.diffusion.text import check_prompt

    if getattr(tokenizer, "is_fast", False):
        return check_prompt(tokenizer, prompt)
    return prompt_token_ids(tokenizer, prompt)


def _token_text(token: str) -> str:
    """Return a token as a word: CLIP's end-of-word mark ``</w>`` removed."""
    return token[:-4] if token.endswith("</w>") else token


@torch.no_grad()
def token_maps(pipe, prompt: str, steps: int = 20, guidance_scale: float = 3.0, seed: int = 0) -> TokenMaps:
    """Return a :class:`TokenMaps` for ``prompt``: generate with an attention store on the UNet, then index words.

    Unknown words raise ``ValueError`` naming them (the tokenizer would otherwise map them to ``<unk>``).
    """
    from kit.diffusion.attention import AttentionStore, register_attention_store

    ids = prompt_ids(pipe.tokenizer, prompt)
    store = AttentionStore()
    restore = register_attention_store(pipe.unet, store)
    try:
        img = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance_scale,
                   generator=torch.Generator().manual_seed(seed), output_type="np").images[0]
    finally:
        restore()
    specials = {pipe.tokenizer.bos_token_id, pipe.tokenizer.eos_token_id, pipe.tokenizer.pad_token_id}
    tokens = pipe.tokenizer.convert_ids_to_tokens(ids)
    words = [(i, _token_text(t)) for i, (t, tid) in enumerate(zip(tokens, ids)) if tid not in specials]
    image = np.round(np.asarray(img) * 255).astype(np.uint8)
    return TokenMaps(prompt, image, words, store, len(store.steps))


def foreground_mask(image: np.ndarray, threshold: float = 30.0) -> np.ndarray:
    """Return bool [H, W]: pixels of a uint8 ShapesWorld image [H, W, 3] whose colour is more than ``threshold``
    (Euclidean, 0..255 units) from the background grey."""
    from kit.data.shapes import BACKGROUND

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {img.shape}")
    return np.linalg.norm(img - np.asarray(BACKGROUND, np.float32), axis=-1) > threshold


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass
class WordSwap:
    """A prompt-to-prompt word swap (arXiv:2208.01626, Sec. 3.2): the ``source`` image, the ``target`` prompt's
    image from the same noise without attention control (``plain``) and with the source's cross-attention maps
    injected for the first ``swap_steps`` steps (``swapped``), all uint8 [H, W, 3]; ``iou_plain`` / ``iou_swapped``:
    the layout overlap (IoU of the foreground masks) of each with the source, or None where the layout is not
    measured (a model whose images have no plain ShapesWorld background, such as Stable Diffusion)."""

    source_prompt: str
    target_prompt: str
    source: np.ndarray
    plain: np.ndarray
    swapped: np.ndarray
    iou_plain: float | None
    iou_swapped: float | None


class _PairSwap:
    """Attention edit for a batch of (source, target) pairs [s_0, t_0, s_1, t_1, ...]: each target row takes its
    source row's cross-attention probabilities for steps < ``until_step`` (prompt-to-prompt's replacement)."""

    def __init__(self, until_step: int) -> None:
        self.until_step = until_step

    def __call__(self, probs, name: str, is_cross: bool, step: int):
        if not is_cross or step >= self.until_step:
            return probs
        out = probs.clone()
        out[1::2] = probs[0::2]
        return out


@torch.no_grad()
def word_swaps(pipe, pairs: list[tuple[str, str]], steps: int = 20, guidance_scale: float = 3.0, seed: int = 0,
               swap_fraction: float = 0.8, measure_layout: bool = True) -> list[WordSwap]:
    """Return one :class:`WordSwap` per (source, target) pair, all pairs in one batch: pair k's two rows share the
    noise of ``seed + k``; once plain and once with each target row's cross-attention replaced by its source
    row's for the first ``swap_fraction`` of the steps. ``measure_layout=False`` leaves the IoUs None (they
    read ShapesWorld's plain background)."""
    from kit.diffusion.attention import AttentionStore, register_attention_store

    if not pairs:
        raise ValueError("pairs must hold at least one (source, target) caption pair")
    for source_prompt, target_prompt in pairs:
        src_ids, tgt_ids = prompt_ids(pipe.tokenizer, source_prompt), prompt_ids(pipe.tokenizer, target_prompt)
        if len(src_ids) != len(tgt_ids):
            raise ValueError(f"a word swap needs prompts with the same number of tokens, got {len(src_ids)} "
                             f"({source_prompt!r}) and {len(tgt_ids)} ({target_prompt!r})")
    if not 0.0 <= swap_fraction <= 1.0:
        raise ValueError(f"swap_fraction must be in [0, 1], got {swap_fraction}")
    shape = pipe.latent_shape(1)
    noise = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(seed + k)).expand(2, -1, -1, -1)
                       for k in range(len(pairs))])
    prompts = [p for pair in pairs for p in pair]
    kw = dict(num_inference_steps=steps, guidance_scale=guidance_scale, latents=noise, output_type="np")
    plain = pipe(prompts, **kw).images
    restore = register_attention_store(pipe.unet, AttentionStore(),
                                       edit=_PairSwap(int(round(swap_fraction * steps))))
    try:
        swapped = pipe(prompts, **kw).images
    finally:
        restore()
    out = []
    for k, (source_prompt, target_prompt) in enumerate(pairs):
        u8 = [np.round(np.asarray(a) * 255).astype(np.uint8) for a in (plain[2 * k], plain[2 * k + 1],
                                                                        swapped[2 * k + 1])]
        if measure_layout:
            masks = [foreground_mask(a) for a in u8]
            ious = (_iou(masks[0], masks[1]), _iou(masks[0], masks[2]))
        else:
            ious = (None, None)
        out.append(WordSwap(source_prompt, target_prompt, *u8, *ious))
    return out


def word_swap(pipe, source_prompt: str, target_prompt: str, steps: int = 20, guidance_scale: float = 3.0,
              seed: int = 0, swap_fraction: float = 0.8) -> WordSwap:
    """Return the :class:`WordSwap` of one caption pair (see :func:`word_swaps`)."""
    return word_swaps(pipe, [(source_prompt, target_prompt)], steps, guidance_scale, seed, swap_fraction)[0]


def swap_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Return ``n`` (source, target) caption pairs of 1-2 object ShapesWorld scenes that differ in one colour or one
    shape word (the word swaps prompt-to-prompt's replacement handles: one token each)."""
    from kit.data.shapes import COLOURS, SHAPES, caption, sample_scene

    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n:
        scene = sample_scene(rng, (1, 2))
        src = caption(scene)
        words = src.split()
        kind = ("colour", "shape")[len(pairs) % 2]
        vocab = list(COLOURS) if kind == "colour" else list(SHAPES)
        spots = [i for i, w in enumerate(words) if w in vocab]
        i = spots[rng.integers(len(spots))]
        words[i] = str(rng.choice([w for w in vocab if w != words[i]]))
        pairs.append((src, " ".join(words)))
    return pairs


SD_SWAP_PAIRS = (("a red car parked on a street", "a blue car parked on a street"),
                 ("a cat sitting on a wooden chair", "a dog sitting on a wooden chair"),
                 ("a bowl of green apples on a table", "a bowl of red apples on a table"),
                 ("a white house by a lake", "a white castle by a lake"))


def word_swap_study(pipe, n: int = 12, steps: int = 20, guidance_scale: float = 3.0, seed: int = 0,
                    swap_fraction: float = 0.8, shapes_world: bool = True) -> dict:
    """Return {"pairs": [WordSwap], "iou_plain": mean, "iou_swapped": mean, "n": n}, each pair from its own noise
    (seed + k), all in one batch: over ``n`` ShapesWorld caption pairs (:func:`swap_pairs`), or with
    ``shapes_world=False`` (Stable Diffusion) over the first ``n`` of :data:`SD_SWAP_PAIRS` with the IoUs None
    (the layout measure reads ShapesWorld's plain background)."""
    pairs = swap_pairs(n, seed) if shapes_world else list(SD_SWAP_PAIRS[:n])
    results = word_swaps(pipe, pairs, steps, guidance_scale, seed, swap_fraction, measure_layout=shapes_world)
    if not shapes_world:
        return {"pairs": results, "n": len(results), "iou_plain": None, "iou_swapped": None}
    return {"pairs": results, "n": n, "iou_plain": float(np.mean([r.iou_plain for r in results])),
            "iou_swapped": float(np.mean([r.iou_swapped for r in results]))}


def word_swap_record(study: dict) -> dict:
    """Return what metrics.json keeps of a :func:`word_swap_study`: n, mean IoUs and each pair's prompts and IoUs."""
    return {"n": study["n"], "iou_plain": study["iou_plain"], "iou_swapped": study["iou_swapped"],
            "pairs": [[r.source_prompt, r.target_prompt, r.iou_plain, r.iou_swapped] for r in study["pairs"]]}


def word_swap_summary(study: dict) -> str:
    """Return one sentence on a :func:`word_swap_study`: the layout IoUs, or that they were not measured."""
    if study["iou_plain"] is None:
        return (f"{study['n']} word swaps drawn without and with the attention swap; the layout IoU is not measured "
                "here (it reads ShapesWorld's plain background): compare the rows by eye")
    return (f"layout IoU with the source image over {study['n']} word swaps: {study['iou_plain']:.2f} without, "
            f"{study['iou_swapped']:.2f} with the attention swap")


def word_swap_titles(study: dict, k: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """Return (images, titles) of the first ``k`` pairs as rows source / target plain / target with the swap."""
    shown = study["pairs"][:k]

    def iou(v):
        return "" if v is None else f" (IoU {v:.2f})"

    images = [im for r in shown for im in (r.source, r.plain, r.swapped)]
    titles = [t for r in shown for t in (r.source_prompt, f"{r.target_prompt}{iou(r.iou_plain)}",
                                          f"with the swap{iou(r.iou_swapped)}")]
    return images, titles
