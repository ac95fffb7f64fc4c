"""A small CLIP-style image-text scorer trained on ShapesWorld: the offline stand-in for CLIP ViT-B/32 in
D-TIIL's word step (arXiv:2404.18033 scores "A photo of <run>" prompts on a crop of the edited image with
CLIP).

Model (:class:`ShapesScorer`): an image tower (three conv + max-pool stages on 32 x 32 RGB, then two linear layers) and a
text tower (a mean embedding bag over the ShapesWorld words plus "photo" and ``<unk>``, then two linear
layers), both projected to d = 64 and L2-normalised; logits = exp(learnable logit scale) x cosine, as in CLIP
(arXiv:2103.00020).

Scale matters: "big" and "small" differ only in size, which resizing a crop to 32 x 32 would erase. So
:func:`prepare_images` keeps the scale: a crop is rescaled by 32 / ``canvas`` (``canvas`` = the side of the
full ShapesWorld image it comes from, 32 by default, i.e. no rescaling) and pasted at the centre of a 32 x 32
background image; full 32 x 32 images pass unchanged.

Training (:func:`train_shapes_scorer`) pairs (:func:`scorer_training_pairs`) object crops (the object's box
with a random margin of -1..3 pixels per side, so parts of neighbours may show, sometimes blurred like a
generated image) with "A photo of <a non-empty subset of its size / colour / shape words in caption order>",
and (a quarter of them) full scenes with their captions. Pairs come in twins that differ in one attribute (the
same scene with that object's colour, shape or size edited, and the same word subset, which holds the edited
word): each twin's text is a hard negative for the other. The loss is CLIP's symmetric InfoNCE with a set of
positives per row and column (a phrase is a positive for every crop whose object it describes, e.g. "A photo
of circle" for any circle), so compatible texts in a batch are never pushed apart.

Measured on the committed weights (``kit/assets/dtiil_scorer/``, 190,881 parameters, 383 kB in float16) with
:func:`evaluate_shapes_scorer` (600 held-out crops, seed 1): the full phrase beats all 10 one-word-different
phrases on 96.0 % of crops (size 100 %, colour 100 %, shape 96.0 %: small circles, diamonds and squares are a
few pixels wide), and the object's own caption run wins on 100 % of 420 crops from 2-3 object scenes.
Training: 400 steps of 64 pairs (32 twin groups) from a pool of 8,192, AdamW lr 3e-3, seed 0; 9.5 s to draw the
pool, 534 s wall / 282 CPU-s on 2 threads of a shared 2-core machine whose cores other jobs kept busy; steps
took about 0.33 s when it had the cores, so about 2.5 minutes unloaded.

Rebuild the committed weights::

    python -m kit.dtiil.scorer --out kit/assets/dtiil_scorer
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kit.data.shapes import (
    BACKGROUND,
    COLOURS,
    SHAPES,
    SIZES,
    VOCABULARY,
    Scene,
    caption,
    edit_scene,
    render,
    sample_scene,
    tokenize,
)

__all__ = [
    "ASSET_DIR",
    "VOCAB",
    "ScorerPairs",
    "ShapesScorer",
    "evaluate_shapes_scorer",
    "load_shapes_scorer",
    "positive_pairs",
    "prepare_images",
    "save_scorer",
    "scorer_training_pairs",
    "train_shapes_scorer",
]

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "dtiil_scorer"
REBUILD = "python -m kit.dtiil.scorer --out kit/assets/dtiil_scorer"
VOCAB = ("<unk>", *VOCABULARY, "photo")
SIDE = 32                        # the image tower's input side
PREFIX = "A photo of"
ATTRIBUTES = ("size", "colour", "shape")
_POOL = {"size": SIZES, "colour": tuple(COLOURS), "shape": SHAPES}
_WEIGHTS, _CONFIG = "scorer.safetensors", "config.json"


# ------------------------------------------------------------------------------------------------------ model
class ShapesScorer(nn.Module):
    """A CLIP-style scorer: ``forward(images [B, 3, 32, 32] in [0, 1], token_ids [K], offsets [T])`` returns
    the logits [B, T] = exp(logit_scale) x cosine(image embedding, text embedding).

    ``score(images, texts)`` (uint8 [H, W, 3] arrays, strings) returns cosine similarities [N, T] as a numpy
    array, the scorer protocol of :mod:`kit.dtiil.words`. ``canvas``: the side of the full images crops come
    from (see :func:`prepare_images`).
    """

    def __init__(self, vocab: Sequence[str] = VOCAB, embed_dim: int = 64, width: int = 16,
                 text_width: int = 128, canvas: int = SIDE):
        super().__init__()
        if len(vocab) < 2 or vocab[0] != "<unk>" or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must be distinct words starting with '<unk>'")
        if not isinstance(canvas, int) or canvas < 8:
            raise ValueError(f"canvas must be an int >= 8, got {canvas!r}")
        self.vocab = tuple(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.embed_dim, self.width, self.text_width, self.canvas = embed_dim, width, text_width, canvas
        w = width
        self.image_tower = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),                 # 16 x 16
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),             # 8 x 8
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),         # 4 x 4
            nn.Flatten(), nn.Linear(4 * w * 16, 2 * embed_dim), nn.ReLU(),
            nn.Linear(2 * embed_dim, embed_dim))
        self.word_bag = nn.EmbeddingBag(len(self.vocab), text_width, mode="mean")
        self.text_head = nn.Sequential(nn.ReLU(), nn.Linear(text_width, text_width), nn.ReLU(),
                                       nn.Linear(text_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def config(self) -> dict[str, Any]:
        """Return the constructor arguments (what :func:`save_scorer` writes)."""
        return {"vocab": list(self.vocab), "embed_dim": self.embed_dim, "width": self.width,
                "text_width": self.text_width, "canvas": self.canvas}

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (token_ids int64 [K], offsets int64 [T]) of ``texts`` (lower-cased words; unknown ->
        ``<unk>``)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a sequence of strings (not a single string)")
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            ids.extend(self.index.get(w, 0) for w in tokenize(t))
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Return the L2-normalised image embeddings [B, D] of ``images`` float [B, 3, 32, 32] in [0, 1]."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, SIDE, SIDE):
            raise ValueError(f"images must be [B, 3, {SIDE}, {SIDE}], got {tuple(images.shape)}")
        return F.normalize(self.image_tower(images * 2 - 1), dim=-1)

    def encode_text(self, token_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Return the L2-normalised text embeddings [T, D] of the bags ``token_ids`` [K] split at ``offsets``
        [T]."""
        return F.normalize(self.text_head(self.word_bag(token_ids, offsets)), dim=-1)

    def forward(self, images: torch.Tensor, token_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Return the logits [B, T] = exp(logit_scale) x cosine similarity."""
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        return scale * self.encode_image(images) @ self.encode_text(token_ids, offsets).T

    @torch.no_grad()
    def score(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """Return the cosine similarities float32 [len(images), len(texts)] of uint8 [H, W, 3] images and
        texts."""
        dev = self.logit_scale.device
        img = self.encode_image(prepare_images(images, self.canvas).to(dev))
        txt = self.encode_text(*(t.to(dev) for t in self.tokenize(texts)))
        return (img @ txt.T).cpu().numpy()


def prepare_images(images: Sequence[np.ndarray], canvas: int = SIDE) -> torch.Tensor:
    """Return float [N, 3, 32, 32] in [0, 1]: each uint8 [H, W, 3] image rescaled by 32 / ``canvas``
    (bilinear, antialiased; none when ``canvas`` = 32) and pasted at the centre of a 32 x 32 ShapesWorld
    background (centre crop when larger), so object sizes keep their scale."""
    if not isinstance(canvas, int) or canvas < 8:
        raise ValueError(f"canvas must be an int >= 8, got {canvas!r}")
    out = torch.empty(len(images), 3, SIDE, SIDE)
    out[:] = torch.tensor(BACKGROUND, dtype=torch.float32)[:, None, None] / 255
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8 or 0 in im.shape:
            raise ValueError(f"images[{i}] must be a uint8 array [H, W, 3], got {im.dtype} {im.shape}")
        x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float()[None] / 255
        if canvas != SIDE:
            size = [max(1, round(s * SIDE / canvas)) for s in im.shape[:2]]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        h, w = x.shape[-2:]
        sy, sx = max(0, (h - SIDE) // 2), max(0, (w - SIDE) // 2)
        x = x[..., sy:sy + SIDE, sx:sx + SIDE]
        h, w = x.shape[-2:]
        y0, x0 = (SIDE - h) // 2, (SIDE - w) // 2
        out[i, :, y0:y0 + h, x0:x0 + w] = x[0]
    return out


# ------------------------------------------------------------------------------------------------------- data
@dataclass
class ScorerPairs:
    """Image-text pairs: ``images`` (uint8 [H, W, 3], crops of varying size or full scenes), ``texts`` and
    ``objects``: the (size, colour, shape) of the cropped object, or None for a full scene and its caption.
    Pairs 2k and 2k + 1 are twins differing in one attribute."""

    images: list[np.ndarray]
    texts: list[str]
    objects: list[tuple[str, str, str] | None]

    def __len__(self) -> int:
        return len(self.texts)


def _descriptors(pairs: ScorerPairs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (object attribute ids int [N, 3] (-1 for scenes), said attribute ids int [N, 3] (-1 = not said),
    caption ids int [N] (-1 for crops)) of ``pairs``."""
    obj = torch.full((len(pairs), 3), -1, dtype=torch.long)
    said = torch.full((len(pairs), 3), -1, dtype=torch.long)
    cap = torch.full((len(pairs),), -1, dtype=torch.long)
    captions: dict[str, int] = {}
    for i, (text, o) in enumerate(zip(pairs.texts, pairs.objects)):
        if o is None:
            cap[i] = captions.setdefault(text, len(captions))
            continue
        obj[i] = torch.tensor([_POOL[a].index(w) for a, w in zip(ATTRIBUTES, o)])
        for w in tokenize(text):
            for a_i, a in enumerate(ATTRIBUTES):
                if w in _POOL[a]:
                    v = _POOL[a].index(w)
                    # two different words for one attribute: an id no object has
                    said[i, a_i] = v if int(said[i, a_i]) in (-1, v) else len(_POOL[a])
    return obj, said, cap


def positive_pairs(pairs: ScorerPairs, index: Sequence[int] | None = None,
                   descriptors: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Return bool [B, B]: text ``index[j]`` describes image ``index[i]`` (a phrase whose size / colour /
    shape words all belong to the cropped object, or the same caption for two scenes); the diagonal is always
    True.

    ``index`` defaults to all pairs; ``descriptors`` (from a previous call's ``_descriptors(pairs)``) saves
    work.
    """
    obj, said, cap = _descriptors(pairs) if descriptors is None else descriptors
    idx = torch.arange(len(pairs)) if index is None else torch.as_tensor(list(index), dtype=torch.long)
    obj, said, cap = obj[idx], said[idx], cap[idx]
    crop = obj[:, 0] >= 0
    fits = ((said[None, :, :] < 0) | (said[None, :, :] == obj[:, None, :])).all(-1)      # [image i, text j]
    same_caption = ~crop[:, None] & ~crop[None, :] & (cap[:, None] == cap[None, :])
    pos = (crop[:, None] & crop[None, :] & fits) | same_caption
    return pos | torch.eye(len(idx), dtype=torch.bool)


def _object_crop(image: np.ndarray, mask: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Return the crop of ``image`` at the box of ``mask`` grown by ``margin`` (left, top, right, bottom)
    pixels."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    x1, y1 = max(0, xs.min() - margin[0]), max(0, ys.min() - margin[1])
    x2, y2 = min(w, xs.max() + 1 + margin[2]), min(h, ys.max() + 1 + margin[3])
    if x2 <= x1 or y2 <= y1:
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return image[y1:y2, x1:x2].copy()


def _edited_twin(scene: Scene, index: int, rng: np.random.Generator) -> tuple[Scene, str]:
    """Return (the scene with object ``index`` changed in one attribute, that attribute)."""
    for kind in rng.permutation(ATTRIBUTES):
        try:
            return edit_scene(scene, str(kind), index, rng=rng).target, str(kind)
        except ValueError:      # a grown object that does not fit, or no colour left
            continue
    raise ValueError("no one-attribute edit of this object fits")


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return image
    out = gaussian_filter(image.astype(np.float32), sigma=(sigma, sigma, 0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def scorer_training_pairs(n: int, rng: np.random.Generator, *, scene_fraction: float = 0.25,
                          max_objects: int = 3, blur_prob: float = 0.3,
                          keep_word: float = 0.7) -> ScorerPairs:
    """Return ``n`` ShapesWorld ``ScorerPairs`` in one-attribute twins (pairs 2k, 2k + 1; see the module
    docstring).

    A twin group is, with probability ``scene_fraction``, two full scenes (1..``max_objects`` objects) with
    their captions; else two crops of one object (its box with a margin of -1..3 pixels per side) with "A
    photo of" and the same subset of its size / colour / shape words: the edited attribute always, each other
    one with probability ``keep_word``. Images are blurred (sigma 0.3-1 pixel) with probability ``blur_prob``.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive int, got {n!r}")
    images, texts, objects = [], [], []
    while len(texts) < n:
        scene = sample_scene(rng, (1, max_objects))
        k = int(rng.integers(len(scene.objects)))
        try:
            twin, kind = _edited_twin(scene, k, rng)
        except ValueError:
            continue
        sigma = float(rng.uniform(0.3, 1.0)) if rng.random() < blur_prob else 0.0
        if rng.random() < scene_fraction:
            for s in (scene, twin):
                images.append(_blur(render(s)[0], sigma))
                texts.append(caption(s))
                objects.append(None)
            continue
        keep = [a == kind or rng.random() < keep_word for a in ATTRIBUTES]
        margin = rng.integers(-1, 4, size=4)
        for s in (scene, twin):
            image, masks = render(s)
            o = s.objects[k]
            words = (o.size, o.colour, o.shape)
            images.append(_object_crop(_blur(image, sigma), masks[k], margin))
            texts.append(" ".join([PREFIX, *(w for w, kept in zip(words, keep) if kept)]))
            objects.append(words)
    return ScorerPairs(images[:n], texts[:n], objects[:n])


# --------------------------------------------------------------------------------------------------- training
def _contrastive_loss(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Return CLIP's symmetric InfoNCE with positive sets: mean over rows and columns of
    -log(sum of the softmax over the positives)."""
    neg_inf = torch.finfo(logits.dtype).min
    rows = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~pos, neg_inf), 1)
    cols = torch.logsumexp(logits, 0) - torch.logsumexp(logits.masked_fill(~pos, neg_inf), 0)
    return 0.5 * (rows.mean() + cols.mean())


def train_shapes_scorer(steps: int = 400, batch: int = 64, seed: int = 0, lr: float = 3e-3, *,
                        pool: int = 8192, progress: bool = True) -> tuple[ShapesScorer, dict[str, Any]]:
    """Return (the trained ``ShapesScorer`` in eval mode, a log: per-step ``loss``, ``seconds``, settings).

    A pool of min(``pool``, ``steps`` x ``batch``) pairs is drawn once (:func:`scorer_training_pairs`,
    seeded), then AdamW (weight decay 1e-4, cosine decay after 50 warm-up steps) on batches of whole twin
    groups, with light Gaussian pixel noise. Deterministic for a given ``seed`` on CPU.
    """
    from tqdm.auto import tqdm

    if steps < 1 or batch < 2 or batch % 2:
        raise ValueError(f"steps must be >= 1 and batch an even int >= 2, got steps={steps}, batch={batch}")
    t0, c0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng((0xD7, seed))
    pairs = scorer_training_pairs(min(pool, steps * batch), rng)
    images = prepare_images(pairs.images)
    data_seconds = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ShapesScorer()
    ids, offsets = model.tokenize(pairs.texts)
    lengths = torch.diff(offsets, append=torch.tensor([len(ids)]))
    descriptors = _descriptors(pairs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = min(50, steps)
    def lr_factor(s: int) -> float:
        done = (s - warm) / max(1, steps - warm)
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * done))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    groups = len(pairs) // 2
    order: list[int] = []
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc="shapes scorer", disable=not progress):
        if len(order) < batch // 2:
            order += rng.permutation(groups).tolist()
        take, order = order[:batch // 2], order[batch // 2:]
        index = [2 * g + t for g in take for t in (0, 1)]
        x = images[index]
        x = (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
        sel = torch.cat([ids[offsets[k]:offsets[k] + lengths[k]] for k in index])
        off = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), lengths[index][:-1]]), 0)
        loss = _contrastive_loss(model(x, sel, off), positive_pairs(pairs, index, descriptors))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    log = {"loss": losses, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
           "data_seconds": data_seconds, "steps": steps,
           "batch": batch, "lr": lr, "seed": seed, "pool": len(pairs), "threads": torch.get_num_threads()}
    return model, log


# ------------------------------------------------------------------------------------------------- evaluation
def evaluate_shapes_scorer(scorer: Any, n: int = 600, seed: int = 1) -> dict[str, float]:
    """Return held-out accuracies of a scorer (any scorer of :mod:`kit.dtiil.words`) on ShapesWorld object
    crops.

    Crops as in training (margin -1..3 pixels, no blur) of one object of 1-3 object scenes drawn from a seed
    stream that training never uses. ``one_word``: the full phrase "A photo of size colour shape" wins over
    all 10 phrases that differ from it in one word; ``one_word_<attribute>``: it beats the alternatives that
    change that attribute; ``run_choice``: in 2-3 object scenes, the object's caption run wins over the other
    runs (D-TIIL's word step with a perfect mask).
    """
    from kit.dtiil.words import as_scorer, caption_runs, run_prompts

    fn = as_scorer(scorer)
    rng = np.random.default_rng((0xE7, seed))
    names = ("one_word", "run_choice", *(f"one_word_{a}" for a in ATTRIBUTES))
    hits: dict[str, list[bool]] = {k: [] for k in names}
    while len(hits["one_word"]) < n:
        scene = sample_scene(rng, (1, 3))
        image, masks = render(scene)
        k = int(rng.integers(len(scene.objects)))
        o = scene.objects[k]
        words = (o.size, o.colour, o.shape)
        piece = _object_crop(image, masks[k], rng.integers(-1, 4, size=4))
        alts = [(a, tuple(v if i == ai else w for i, w in enumerate(words)))
                for ai, a in enumerate(ATTRIBUTES) for v in _POOL[a] if v != words[ai]]
        texts = [f"{PREFIX} {' '.join(words)}"] + [f"{PREFIX} {' '.join(w)}" for _, w in alts]
        runs = caption_runs(caption(scene), backend="fallback") if len(scene.objects) > 1 else []
        prompts = run_prompts(runs)
        s = np.asarray(fn([piece], texts + prompts))[0]
        one, rest = s[0], s[1:len(texts)]
        hits["one_word"].append(bool((one > rest).all()))
        for a in ATTRIBUTES:
            hits[f"one_word_{a}"].append(bool(all(one > r for (b, _), r in zip(alts, rest) if b == a)))
        if runs:
            own = next(i for i, r in enumerate(runs) if o.phrase in r.text)
            hits["run_choice"].append(int(np.argmax(s[len(texts):])) == own)
    out = {k: float(np.mean(v)) for k, v in hits.items()}
    out["n"], out["n_run_choice"] = n, len(hits["run_choice"])
    return out


# ---------------------------------------------------------------------------------------------- save and load
def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)       # mkstemp makes it private; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_scorer(model: ShapesScorer, folder: str | os.PathLike, *, metadata: dict | None = None) -> Path:
    """Return ``folder`` after writing ``model`` there: float16 ``scorer.safetensors`` and ``config.json``
    (the constructor arguments plus ``metadata``), each written to a temporary file and renamed."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    config = {**model.config(), "metadata": metadata or {}}
    _atomic_write(folder / _WEIGHTS, lambda p: save_file(tensors, p))
    _atomic_write(folder / _CONFIG, lambda p: Path(p).write_text(json.dumps(config, indent=1) + "\n"))
    return folder


def load_shapes_scorer(path: str | os.PathLike | None = None, device: str | torch.device = "cpu", *,
                       canvas: int | None = None) -> ShapesScorer:
    """Return the ``ShapesScorer`` saved in ``path`` (default: the committed ``kit/assets/dtiil_scorer/``), in
    float32 and eval mode. ``canvas``: the side of the full images its crops will come from (default: the saved
    one, 32; see :func:`prepare_images`).
    """
    from safetensors.torch import load_file

    folder = ASSET_DIR if path is None else Path(path)
    weights, config = folder / _WEIGHTS, folder / _CONFIG
    if not (weights.is_file() and config.is_file()):
        raise FileNotFoundError(f"no ShapesScorer in {folder} (needs {_WEIGHTS} and {_CONFIG}); rebuild the "
                                f"committed one with: {REBUILD}")
    cfg = json.loads(config.read_text())
    cfg.pop("metadata", None)
    if canvas is not None:
        cfg["canvas"] = canvas
    model = ShapesScorer(**cfg)
    model.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
    return model.to(device).eval()


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save the scorer (the committed weights' rebuild command)."""
    from kit.core.device import set_threads

    parser = argparse.ArgumentParser(description="Train the ShapesWorld image-text scorer of D-TIIL.")
    parser.add_argument("--out", default=str(ASSET_DIR))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    model, log = train_shapes_scorer(args.steps, args.batch, args.seed, args.lr)
    metrics = evaluate_shapes_scorer(load_shapes_scorer(save_scorer(model, args.out)))
    train = {k: v for k, v in log.items() if k != "loss"}
    train["final_loss"] = float(np.mean(log["loss"][-50:]))
    save_scorer(model, args.out, metadata={"train": train, "held_out": metrics, "rebuild": REBUILD})
    print(json.dumps({"train": train, "held_out": metrics}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
