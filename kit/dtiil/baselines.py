"""Baselines beside D-TIIL (arXiv:2404.18033) for text-image inconsistency localisation.

Each answers "is the method's mask better than something that does not compare text and image?":

- **Random mask** (:func:`random_mask`, :func:`expected_random_iou`): a mask with exactly the predicted mask's
  area, placed at random. ``mode="shift"`` moves the predicted mask as a whole to a uniformly random cyclic offset
  (``np.roll`` along both axes: same shape, random place), the honest baseline, since a compact blob of the right
  size sometimes lands on the object; ``mode="pixels"`` scatters that many pixels uniformly, which almost never
  overlaps anything compact. The expected IoU of either is computed exactly (``n=None``: all H x W shifts, or the
  hypergeometric law of the overlap) or by Monte Carlo.
- **Saliency** (:func:`saliency_map`, :func:`saliency_object_mask`): a text-free "the inconsistency is wherever the
  eye goes" answer: the spectral residual of Hou & Zhang (CVPR 2007) on the grey image (log amplitude spectrum minus
  its 3 x 3 local mean, phase kept, squared magnitude of the inverse FFT, Gaussian smoothing), min-max normalised;
  the object mask is Hou & Zhang's object map (saliency above 3 x its mean) reduced to its largest 8-connected
  component with holes filled, i.e. the most salient whole object.
- **Cross-attention** (:func:`cross_attention_map`): what a reader would try first: the diffusion model's own
  cross-attention maps of the caption's content words (prompt-to-prompt, arXiv:2208.01626; DAAM), recorded while
  denoising the noised image, averaged over layers, heads, steps and words. It looks at the text but does not
  compare it with the image, so it says where the caption's objects are, not which of them disagrees.

Measured on ShapesWorld (32 x 32, the committed model): the saliency object mask has a mean IoU of 0.30 with the
object on 1-object scenes and 0.38 with the best-matching object on 2-object scenes (a randomly shifted copy of the
same mask: 0.04); spectral residual acts as an edge and corner detector on flat shapes, so the mask sits on the
object (centroid inside its bounding circle in 78 % / 90 % of scenes) but covers only part of it plus some
surround. The cross-attention map of every content word is 4.4x higher inside the object than outside on 1-object
scenes but only 1.3x on 2-object scenes; the size word ("big", "small") attends mostly to the background in this
model, so ``words`` = the colour and shape words gives a cleaner map (5.4x and 1.9x).

Maps are float [H, W] in [0, 1]; binarising them with a threshold is the core's ``binarize``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "RANDOM_MODES",
    "SALIENCY_THRESH",
    "SALIENCY_SIGMA_64",
    "random_mask",
    "expected_random_iou",
    "saliency_map",
    "saliency_object_mask",
    "content_word_positions",
    "cross_attention_map",
]

RANDOM_MODES = ("shift", "pixels")
SALIENCY_THRESH = 3.0  # Hou & Zhang (CVPR 2007): the object map keeps saliency above 3 x its mean
SALIENCY_SIGMA_64 = 2.5  # the authors' MATLAB code: a 10 x 10 Gaussian of sigma 2.5 at 64 px width


# ---------------------------------------------------------------- random masks


def _mask(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a non-empty bool [H, W] array (0/1 arrays and tensors accepted, as in the metrics)."""
    from kit.dtiil.metrics import _as_mask

    a = _as_mask(x, name)
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    return a


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def random_mask(like: Any, rng: np.random.Generator | int | None = None, mode: str = "shift") -> np.ndarray:
    """Return a random bool mask [H, W] with exactly as many pixels as ``like`` [H, W] (the predicted mask).

    ``mode="shift"``: ``like`` rolled cyclically by a uniform random offset in each axis (same shape, random
    place); ``"pixels"``: that many pixels drawn uniformly without replacement. ``rng``: a numpy Generator or an
    int seed (None: fresh entropy).
    """
    m = _mask(like, "like")
    if mode not in RANDOM_MODES:
        raise ValueError(f"mode must be one of {RANDOM_MODES}, got {mode!r}")
    g = _rng(rng)
    h, w = m.shape
    if mode == "shift":
        dy, dx = int(g.integers(h)), int(g.integers(w))
        return np.roll(m, (dy, dx), axis=(0, 1))
    out = np.zeros(h * w, dtype=bool)
    out[g.choice(h * w, size=int(m.sum()), replace=False)] = True
    return out.reshape(h, w)


def _iou_from_counts(inter: np.ndarray, a: int, b: int) -> np.ndarray:
    union = a + b - inter
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def expected_random_iou(like: Any, gt: Any, *, n: int | None = 200, rng: np.random.Generator | int | None = None,
                        mode: str = "shift") -> float:
    """Return the mean IoU with ``gt`` [H, W] of :func:`random_mask` (``like``, ``mode``) masks.

    ``n``: the number of Monte-Carlo draws (seeded by ``rng``); ``n=None`` gives the exact expectation instead:
    for ``"shift"`` the mean over all H x W offsets (the overlaps from a circular cross-correlation), for
    ``"pixels"`` the mean over the hypergeometric law of the overlap. Two empty masks count IoU 1 (as
    :func:`kit.dtiil.metrics.mask_iou`).
    """
    m, g = _mask(like, "like"), _mask(gt, "gt")
    if m.shape != g.shape:
        raise ValueError(f"like and gt must have one shape, got {m.shape} (like) and {g.shape} (gt)")
    if mode not in RANDOM_MODES:
        raise ValueError(f"mode must be one of {RANDOM_MODES}, got {mode!r}")
    a, b = int(m.sum()), int(g.sum())
    if n is None:
        if mode == "shift":
            corr = np.fft.ifft2(np.fft.fft2(m.astype(np.float64)) * np.conj(np.fft.fft2(g.astype(np.float64))))
            inter = np.rint(corr.real).astype(np.int64)  # inter[dy, dx] = |roll(like, (-dy, -dx)) and gt|
            return float(_iou_from_counts(inter, a, b).mean())
        from scipy.stats import hypergeom

        k = np.arange(0, min(a, b) + 1)
        p = hypergeom(m.size, b, a).pmf(k)
        return float(np.sum(p * _iou_from_counts(k, a, b)))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int or None (exact), got {n!r}")
    gen = _rng(rng)
    inter = np.array([int(np.logical_and(random_mask(m, gen, mode), g).sum()) for _ in range(n)])
    return float(_iou_from_counts(inter, a, b).mean())


# ---------------------------------------------------------------- spectral-residual saliency


def _image(image: Any) -> np.ndarray:
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3 or min(a.shape[:2]) < 3:
        raise ValueError(f"image must be uint8 [H, W, 3] with H, W >= 3, got shape {a.shape} dtype {a.dtype}")
    return a


def saliency_map(image: Any, *, sigma: float | None = None) -> np.ndarray:
    """Return the spectral-residual saliency map float [H, W] in [0, 1] of ``image`` uint8 [H, W, 3] (Hou & Zhang,
    "Saliency Detection: A Spectral Residual Approach", CVPR 2007).

    On the grey image (ITU-R 601 luma in [0, 1]): log amplitude L = log(|F| + 1e-8) of the 2-d FFT, spectral
    residual R = L - (3 x 3 mean of L, edges replicated as in the authors' code), S = |IFFT(exp(R + i phase))|^2,
    Gaussian smoothing with ``sigma`` pixels (default: the authors' code's 2.5 px at its 64 px working width,
    scaled to the image: 2.5 * min(H, W) / 64; the paper's text gives 8), then min-max normalisation. A constant
    image has no structure and gives all zeros.

    On ShapesWorld the map is mostly an edge and corner detector: it peaks on an object's outline, so its object
    mask lands on the object but covers only part of it plus some of its surround (see the module docstring).
    """
    from scipy import ndimage

    a = _image(image)
    sig = SALIENCY_SIGMA_64 * min(a.shape[:2]) / 64.0 if sigma is None else float(sigma)
    if not math.isfinite(sig) or sig < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    grey = (a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    if np.ptp(grey) < 1e-12:
        return np.zeros(grey.shape, dtype=np.float32)
    f = np.fft.fft2(grey)
    log_amp, phase = np.log(np.abs(f) + 1e-8), np.angle(f)
    residual = log_amp - ndimage.uniform_filter(log_amp, size=3, mode="nearest")
    s = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    if sig > 0:
        s = ndimage.gaussian_filter(s, sigma=sig, mode="nearest")
    lo, hi = float(s.min()), float(s.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        return np.zeros(grey.shape, dtype=np.float32)
    return ((s - lo) / (hi - lo)).astype(np.float32)


def saliency_object_mask(image: Any, *, thresh: float = SALIENCY_THRESH, sigma: float | None = None) -> np.ndarray:
    """Return the most salient whole object, bool [H, W]: the pixels of :func:`saliency_map` above ``thresh`` x its
    mean (Hou & Zhang's object map, ``thresh`` 3), reduced to the largest 8-connected component with its holes
    filled (``scipy.ndimage``). Empty for a constant image (its map is all zero)."""
    from scipy import ndimage

    if not math.isfinite(thresh) or thresh <= 0:
        raise ValueError(f"thresh must be a positive number, got {thresh!r}")
    s = saliency_map(image, sigma=sigma)
    mean = float(s.mean())
    above = s > thresh * mean if mean > 0 else np.zeros(s.shape, dtype=bool)
    labels, count = ndimage.label(above, structure=np.ones((3, 3), dtype=int))
    if count == 0:
        return above
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest)


# ---------------------------------------------------------------- cross-attention


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def content_word_positions(tokenizer, caption: str, words: Sequence[str] | None = None
                           ) -> tuple[list[str], list[list[int]]]:
    """Return (the chosen words, their token positions in the padded sequence) of ``caption``.

    Words are the caption's whitespace-separated words with surrounding punctuation stripped (a word's positions
    then keep only the tokens of its stripped form). Default choice: every word that is not in scikit-learn's
    English stop-word list (articles, "of", "and", "above", ...) and not pure punctuation. ``words``: the words to
    use instead; every occurrence of each in the caption counts (case-insensitive), and a word not in the caption
    raises. Positions come from :func:`kit.diffusion.align.word_positions` (``<bos>`` is position 0).
    """
    from kit.diffusion.align import word_positions

    if not isinstance(caption, str) or not caption.split():
        raise ValueError(f"caption must be a non-empty string, got {caption!r}")
    raw = caption.split()
    positions = word_positions(tokenizer, caption)
    clean = [w.strip(string.punctuation).lower() for w in raw]
    if words is None:
        stop = _stop_words()
        chosen = [i for i, w in enumerate(clean) if w and w not in stop]
        if not chosen:
            raise ValueError(f"caption {caption!r} has no content word (all stop words); pass words=[...]")
    else:
        if isinstance(words, str) or not words or not all(isinstance(w, str) for w in words):
            raise ValueError(f"words must be a non-empty sequence of strings, got {words!r}")
        wanted = [w.strip(string.punctuation).lower() for w in words]
        missing = [w for w, c in zip(words, wanted) if c not in clean]
        if missing:
            raise ValueError(f"words {missing} are not in the caption {caption!r}")
        chosen = [i for i, w in enumerate(clean) if w in wanted]
    out_words, out_pos = [], []
    for i in chosen:
        pos = positions[i]
        if clean[i] != raw[i].lower():  # keep only the stripped word's tokens ("circle," -> "circle")
            ids = list(tokenizer(raw[i], add_special_tokens=False)["input_ids"])
            core = list(tokenizer(raw[i].strip(string.punctuation), add_special_tokens=False)["input_ids"])
            starts = [s for s in range(len(ids) - len(core) + 1) if ids[s:s + len(core)] == core]
            if starts:
                pos = pos[starts[0]:starts[0] + len(core)]
        out_words.append(clean[i])
        out_pos.append(list(pos))
    return out_words, out_pos


@torch.no_grad()
def cross_attention_map(pipe, image: Any, caption: str, *, words: Sequence[str] | None = None,
                        strength: float = 0.5, num_inference_steps: int = 10, seed: int = 0,
                        guidance_scale: float = 3.0) -> np.ndarray:
    """Return the mean cross-attention map float [H, W] in [0, 1] of the caption's content words over ``image``.

    ``pipe``: a :class:`kit.diffusion.t2i.TextToImagePipeline`; ``image``: what
    :func:`kit.diffusion.editing.encode_image` takes (uint8 [H, W, 3], PIL, float tensor) at the model's size.
    The image is encoded and noised to ``strength`` on the DDIM grid of ``num_inference_steps`` steps
    (:func:`kit.diffusion.editing.ddim_grid`; the last round(strength x steps) steps are run, SDEdit-style, with
    noise drawn from ``seed``), then denoised with classifier-free guidance ``guidance_scale`` (as
    :func:`kit.diffusion.editing.inpaint` does) while an :class:`kit.diffusion.attention.AttentionStore` records
    the conditional row's cross-attention. Each word's map (:func:`content_word_positions`; ``words`` overrides
    the default content words) is the store's mean over every recorded layer (each resized to the latent grid),
    head, step and the word's tokens; the words' maps are averaged, upsampled bilinearly to the image size and
    min-max normalised (a constant map gives zeros).
    """
    from kit.diffusion.attention import AttentionStore, attention_control
    from kit.diffusion.editing import ddim_grid, ddim_step, encode_image
    from kit.diffusion.t2i import _GuidedModel, guidance_weights

    if not (isinstance(strength, int | float) and not isinstance(strength, bool) and 0 < strength <= 1):
        raise ValueError(f"strength must be a number in (0, 1], got {strength!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    grid = ddim_grid(pipe, num_inference_steps)
    n = len(grid)
    run = max(1, min(n, int(round(strength * n))))
    start = n - run
    _, positions = content_word_positions(pipe.tokenizer, caption, words)
    x0 = encode_image(pipe, image)
    if x0.shape[0] != 1:
        raise ValueError(f"image must be one image, got a batch of {x0.shape[0]}")
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(x0.device)
    a = grid.abar[start].float()
    x = a.sqrt() * x0 + (1 - a).sqrt() * noise
    cond = pipe.encode_prompt([caption])
    guided = bool((guidance_weights(guidance_scale, 1) > 1).any())
    model = _GuidedModel(pipe.unet, cond, pipe.encode_prompt([""]) if guided else None, guidance_scale)
    pred = pipe.scheduler.config.prediction_type
    h, w = x0.shape[-2:]
    wanted = sorted({t for p in positions for t in ([p] if isinstance(p, int) else p)})
    store = AttentionStore(max_query_pixels=int(h * w), tokens=wanted)  # step-summed maps of these tokens only
    with attention_control(pipe.unet, store):
        store.begin(batch_size=1, guided=guided, latent_size=(int(h), int(w)))
        for i in range(start, n):
            t = grid.timesteps[i].to(x.device).expand(1)
            x, _ = ddim_step(model(x, t).sample, x, grid.abar[i], grid.abar[i + 1], pred)
    maps = torch.stack([store.maps(p, resolution=(int(h), int(w))) for p in positions]).mean(dim=0)
    f = pipe.vae_scale_factor
    if f != 1:
        maps = torch.nn.functional.interpolate(maps[None, None], size=(int(h) * f, int(w) * f), mode="bilinear",
                                               align_corners=False)[0, 0]
    m = maps.numpy().astype(np.float64)
    lo, hi = float(m.min()), float(m.max())
    if hi - lo < 1e-12:
        return np.zeros(m.shape, dtype=np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)
