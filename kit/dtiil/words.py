"""Which caption words are inconsistent: D-TIIL's word localisation (the last step of arXiv:2404.18033).

Once the inconsistent region M is found, D-TIIL names the caption words it belongs to:

1. The caption is split into *runs*: maximal stretches of tokens that are not stop words and whose part of
   speech is one of ``CONTENT_POS`` (NOUN, ADJ, PROPN, PUNCT, PART). The authors do this with spaCy's
   ``en_core_web_sm``; "a big red circle left of a small blue square" gives the runs "big red circle" and
   "small blue square".
2. Each run becomes a prompt "A photo of <run>" (:func:`run_prompts`).
3. The largest connected region of M (:func:`largest_region`; the code takes the largest OpenCV contour) gives
   a bounding box; the *edited* image I_edit (where the region now follows the caption) is cropped to it.
4. An image-text scorer (CLIP ViT-B/32 in the code) scores the crop against every prompt; the best run is the
   inconsistent word(s) (:func:`predict_run`).

Scorers follow one protocol: ``scorer(images, texts) -> float [len(images), len(texts)]``, higher = better
match, where images are uint8 arrays [H, W, 3]. An object with a ``score`` method of that signature also
qualifies (so an ``nn.Module``, whose ``__call__`` is ``forward``, can be a scorer). Three are provided:
:class:`ClipScorer` (transformers CLIP, the paper's choice), :class:`OracleScorer` (the analytic ShapesWorld
detector, an oracle, not a learned scorer) and ``kit.dtiil.scorer.ShapesScorer`` (a small CLIP-style model
trained on ShapesWorld, the offline stand-in for CLIP).

Backends of :func:`caption_runs`: ``"spacy"`` (``en_core_web_sm``, as the code), ``"fallback"`` (documented
below, needs nothing) and ``"auto"`` (spaCy when ``en_core_web_sm`` loads, else the fallback).

The fallback: tokens are words (letters/digits with inner hyphens or apostrophes) and single punctuation
marks; stop words are spaCy's ``STOP_WORDS`` when spaCy is importable, else ``FALLBACK_STOP_WORDS`` (a list in
this module modelled on spaCy's); parts of speech come from ``POS_TABLE``, which covers the ShapesWorld
vocabulary and a few function words: sizes and colours ADJ, shapes NOUN, articles DET, "and" CCONJ,
"of"/"above"/"below" ADP, "left"/"right" ADV (in "a circle left of a square" a tagger reads them as adverbs or
verb participles, never as part of the noun phrase; so relation words never join or form a run, and D-TIIL can
never name a relation as the inconsistent word: the paper's known weakness on predicates), "photo" NOUN.
Punctuation is PUNCT, numbers NUM, and any other word defaults to NOUN (the commonest content class, so
unknown words stay candidates).

Differences from the code: runs made of punctuation only are dropped (the code would score "A photo of ,"),
the bounding box comes from 8-connected components (scipy) instead of OpenCV contours, and x2 / y2 are
exclusive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kit.data.shapes import ARTICLES, COLOURS, SHAPES, SIZES, tokenize

__all__ = [
    "CONTENT_POS",
    "FALLBACK_STOP_WORDS",
    "POS_TABLE",
    "ClipScorer",
    "OracleScorer",
    "Run",
    "RunPrediction",
    "Scorer",
    "as_scorer",
    "caption_runs",
    "crop",
    "largest_region",
    "predict_run",
    "run_prompts",
    "stop_words",
]

CONTENT_POS = frozenset({"NOUN", "ADJ", "PROPN", "PUNCT", "PART"})
BACKENDS = ("auto", "spacy", "fallback")
SPACY_MODEL = "en_core_web_sm"
_TOKEN_RE = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")

FALLBACK_STOP_WORDS = frozenset("""
a about above across after afterwards again against all almost alone along already also although always am
among amongst amount an and another any anyhow anyone anything anyway anywhere are around as at back be became
because become becomes becoming been before beforehand behind being below beside besides between beyond both
bottom but by ca call can cannot could did do does doing done down due during each eight either eleven else
elsewhere empty enough even ever every everyone everything everywhere except few fifteen fifty first five for
former formerly forty four from front full further get give go had has have he hence her here hereafter hereby
herein hereupon hers herself him himself his how however hundred i if in indeed into is it its itself just
keep last latter latterly least less made make many may me meanwhile might mine more moreover most mostly move
much must my myself name namely neither never nevertheless next nine no nobody none noone nor not nothing now
nowhere of off often on once one only onto or other others otherwise our ours ourselves out over own part per
perhaps please put quite rather re really regarding same say see seem seemed seeming seems serious several she
should show side since six sixty so some somehow someone something sometime sometimes somewhere still such
take ten than that the their them themselves then thence there thereafter thereby therefore therein thereupon
these they third this those though three through throughout thru thus to together too top toward towards
twelve twenty two under unless until up upon us used using various very via was we well were what whatever
when whence whenever where whereafter whereas whereby wherein whereupon wherever whether which while whither
who whoever whole whom whose why will with within without would yet you your yours yourself yourselves
""".split())

POS_TABLE: dict[str, str] = {
    **{w: "ADJ" for w in SIZES},
    **{w: "ADJ" for w in COLOURS},
    **{w: "NOUN" for w in SHAPES},
    **{w: "DET" for w in ARTICLES + ("the", "this", "that", "these", "those", "some", "every")},
    "and": "CCONJ", "or": "CCONJ", "but": "CCONJ",
    "of": "ADP", "above": "ADP", "below": "ADP", "in": "ADP", "on": "ADP", "with": "ADP", "at": "ADP",
    "left": "ADV", "right": "ADV",
    "photo": "NOUN",
    "is": "AUX", "are": "AUX", "was": "AUX", "were": "AUX",
    "not": "PART",
}


@dataclass(frozen=True)
class Run:
    """A maximal run of content tokens: ``text`` (tokens joined by single spaces), ``words`` and the token
    span ``start:end`` (end exclusive) in the caption's tokens."""

    text: str
    words: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class RunPrediction:
    """The run D-TIIL names: ``index`` into ``runs``, the ``scores`` float [len(runs)] of the crop against
    each run prompt and the crop's ``bbox`` (x1, y1, x2, y2), x2 / y2 exclusive."""

    index: int
    runs: tuple[Run, ...]
    scores: np.ndarray
    bbox: tuple[int, int, int, int]

    @property
    def run(self) -> Run:
        """Return the predicted run."""
        return self.runs[self.index]


class Scorer(Protocol):
    """An image-text scorer: similarities float [len(images), len(texts)], higher = better match."""

    def __call__(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray: ...


# ----------------------------------------------------------------------------------------------- caption runs
@functools.lru_cache(maxsize=1)
def _spacy_nlp() -> Any | None:
    """Return spaCy's ``en_core_web_sm`` pipeline, or None if spaCy or the model is not installed."""
    try:
        import spacy

        return spacy.load(SPACY_MODEL)
    except (ImportError, OSError):
        return None


@functools.lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Return the fallback's stop words: spaCy's ``STOP_WORDS`` when spaCy is importable, else
    ``FALLBACK_STOP_WORDS``."""
    try:
        from spacy.lang.en.stop_words import STOP_WORDS
    except ImportError:
        return FALLBACK_STOP_WORDS
    return frozenset(STOP_WORDS)


def _fallback_pos(token: str) -> str:
    low = token.lower()
    if low in POS_TABLE:
        return POS_TABLE[low]
    if not any(ch.isalnum() for ch in token):
        return "PUNCT"
    if token.isdigit():
        return "NUM"
    return "NOUN"


def _tagged(caption: str, backend: str) -> list[tuple[str, bool, str]]:
    """Return (token, is_stop, pos) for every token of ``caption``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    nlp = _spacy_nlp() if backend in ("auto", "spacy") else None
    if backend == "spacy" and nlp is None:
        raise ImportError(f"backend='spacy' needs spaCy and its English model {SPACY_MODEL!r}: "
                          f"pip install spacy && python -m spacy download {SPACY_MODEL} "
                          "(or use backend='fallback')")
    if nlp is not None:
        return [(t.text, bool(t.is_stop), t.pos_) for t in nlp(caption) if not t.is_space]
    stop = stop_words()
    return [(t, t.lower() in stop, _fallback_pos(t)) for t in _TOKEN_RE.findall(caption)]


def caption_runs(caption: str, *, backend: str = "auto") -> list[Run]:
    """Return the caption's runs: maximal stretches of non-stop tokens whose part of speech is in
    ``CONTENT_POS``.

    Runs of punctuation only are dropped. ``backend``: "spacy" (``en_core_web_sm``; ImportError if missing),
    "fallback" (the module's tokenizer, stop words and ``POS_TABLE``) or "auto" (spaCy when it loads). An
    empty caption, or one without a content word, raises ValueError.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}")
    if not caption.strip():
        raise ValueError("caption is empty")
    tagged = _tagged(caption, backend)
    runs: list[Run] = []
    start = None
    for i, (_, is_stop, pos) in enumerate([*tagged, ("", True, "")]):   # a sentinel closes the last run
        if not is_stop and pos in CONTENT_POS:
            start = i if start is None else start
            continue
        if start is not None:
            span = tagged[start:i]
            if any(pos != "PUNCT" for _, _, pos in span):
                words = tuple(t for t, _, _ in span)
                runs.append(Run(" ".join(words), words, start, i))
            start = None
    if not runs:
        raise ValueError(f"caption {caption!r} has no content word (every token is a stop word, punctuation "
                         f"or outside {sorted(CONTENT_POS)})")
    return runs


def run_prompts(runs: Sequence[Run], template: str = "A photo of {}") -> list[str]:
    """Return one prompt per run, ``template`` filled with the run's text (the code's "A photo of <run>")."""
    if "{}" not in template:
        raise ValueError(f"template must contain '{{}}', got {template!r}")
    return [template.format(r.text) for r in runs]


# -------------------------------------------------------------------------------------------- region and crop
def largest_region(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Return (the largest 8-connected component bool [H, W] of ``mask``, its box (x1, y1, x2, y2)), x2 / y2
    exclusive.

    ``mask``: [H, W], nonzero = inside. Ties go to the component met first in raster order. An empty mask
    gives the empty mask and the whole-image box (0, 0, W, H).
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"mask must be a non-empty 2-D array [H, W], got shape {mask.shape}")
    mask = mask.astype(bool)
    h, w = mask.shape
    if not mask.any():
        return np.zeros_like(mask), (0, 0, w, h)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    region = labels == int(sizes.argmax())
    ys, xs = np.nonzero(region)
    return region, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"{name} must be a uint8 array [H, W, 3], got {image.dtype} {image.shape}")
    return image


def crop(image: np.ndarray, bbox: Sequence[int]) -> np.ndarray:
    """Return the crop uint8 [y2 - y1, x2 - x1, 3] of ``image`` [H, W, 3] at ``bbox`` (x1, y1, x2, y2)."""
    image = _check_image(image)
    h, w = image.shape[:2]
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (x1, y1, x2, y2), got {bbox!r}")
    x1, y1, x2, y2 = (int(v) for v in bbox)
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise ValueError(f"bbox must satisfy 0 <= x1 < x2 <= {w} and 0 <= y1 < y2 <= {h}, got {tuple(bbox)}")
    return image[y1:y2, x1:x2].copy()


# ------------------------------------------------------------------------------------------------- prediction
def as_scorer(scorer: Any) -> Callable[[Sequence[np.ndarray], Sequence[str]], np.ndarray]:
    """Return the scoring function of ``scorer``: its ``score`` method if it has one, else ``scorer``."""
    fn = getattr(scorer, "score", scorer)
    if not callable(fn):
        raise ValueError(f"scorer must be callable (images, texts) -> [N, T] or have such a .score method, "
                         f"got {type(scorer).__name__}")
    return fn


def _resize_nearest(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = (np.arange(h) * mask.shape[0] // h)[:, None]
    cols = (np.arange(w) * mask.shape[1] // w)[None, :]
    return mask[rows, cols]


def predict_run(scorer: Any, edited_image: np.ndarray, mask: np.ndarray, caption: str, *,
                backend: str = "auto", template: str = "A photo of {}") -> RunPrediction:
    """Return the ``RunPrediction`` of D-TIIL's word step: the caption run that best matches the crop of
    ``edited_image`` (uint8 [H, W, 3], the inpainted I_edit) at the box of the largest region of ``mask``.

    ``mask`` [h, w] is resized to [H, W] by nearest neighbour when its size differs (as the code does). Every
    run prompt (``template``) is scored with ``scorer`` (see :class:`Scorer`); ties go to the first run. An
    empty mask crops the whole image.
    """
    image = _check_image(edited_image, "edited_image")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    if mask.shape != image.shape[:2]:
        mask = _resize_nearest(mask.astype(bool), *image.shape[:2])
    runs = tuple(caption_runs(caption, backend=backend))
    _, bbox = largest_region(mask)
    scores = np.asarray(as_scorer(scorer)([crop(image, bbox)], run_prompts(runs, template)), dtype=np.float64)
    if scores.shape != (1, len(runs)):
        raise ValueError(f"scorer must return [1, {len(runs)}] scores, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"scorer returned non-finite scores {scores[0]}")
    return RunPrediction(int(scores[0].argmax()), runs, scores[0], bbox)


# ---------------------------------------------------------------------------------------------------- scorers
class OracleScorer:
    """An ORACLE scorer for ShapesWorld images (the analytic detector, not a learned model): similarity = the
    number of the text's size / colour / shape words that match the largest object found by
    ``kit.data.shapes_oracle.detect_objects``, minus 0.001 per such word (ties go to the text with fewer
    attribute words, i.e. fewer claims that do not match). No object found: every match count is 0.

    Sizes are judged relative to the image side, so a crop is first pasted at the centre of a ``canvas`` x
    ``canvas`` background image (the side of the full ShapesWorld image it was cut from, default 32; larger
    crops are padded to a square instead).
    """

    def __init__(self, canvas: int = 32):
        if not isinstance(canvas, int) or canvas < 8:
            raise ValueError(f"canvas must be an int >= 8, got {canvas!r}")
        self.canvas = canvas

    def _on_canvas(self, image: np.ndarray) -> np.ndarray:
        from kit.data.shapes import BACKGROUND

        h, w = image.shape[:2]
        side = max(self.canvas, h, w)
        out = np.empty((side, side, 3), np.uint8)
        out[:] = BACKGROUND
        y0, x0 = (side - h) // 2, (side - w) // 2
        out[y0:y0 + h, x0:x0 + w] = image
        return out

    def score(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """Return the oracle scores float [len(images), len(texts)]."""
        from kit.data.shapes_oracle import detect_objects

        texts = _check_texts(texts)
        attrs = set(SIZES) | set(COLOURS) | set(SHAPES)
        said = [[w for w in tokenize(t) if w in attrs] for t in texts]
        out = np.zeros((len(images), len(texts)))
        for i, image in enumerate(images):
            found = detect_objects(self._on_canvas(_check_image(image, f"images[{i}]")))
            truth = {found[0].size, found[0].colour, found[0].shape} if found else set()
            for j, words in enumerate(said):
                out[i, j] = sum(w in truth for w in words) - 1e-3 * len(words)
        return out

    __call__ = score


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a sequence of strings (not a single string)")
    return list(texts)


class ClipScorer:
    """A CLIP scorer (the paper uses OpenAI CLIP ViT-B/32): cosine similarities float [N, T] of the
    L2-normalised image and text embeddings (CLIP's logits divided by its logit scale).

    Either ``model_name`` (a hub id or folder, loaded with transformers' ``CLIPModel`` / ``CLIPProcessor``
    when the scorer is built) or an already-built ``model`` and ``processor`` (anything called as
    ``processor(text=..., images=..., return_tensors="pt", padding=True, truncation=True)``).
    """

    def __init__(self, model_name: str = "openai/clip-vit-base-patch32", device: str = "cpu", *,
                 model: Any = None, processor: Any = None):
        import torch

        if (model is None) != (processor is None):
            raise ValueError("pass both model and processor, or neither (then model_name is loaded)")
        if model is None:
            from transformers import CLIPModel, CLIPProcessor

            try:
                model = CLIPModel.from_pretrained(model_name)
                processor = CLIPProcessor.from_pretrained(model_name)
            except (OSError, ValueError) as e:
                raise OSError(f"could not load the CLIP model {model_name!r} with transformers: download it "
                              "first (e.g. huggingface-cli download openai/clip-vit-base-patch32) or pass a "
                              "local folder; offline, use kit.dtiil.scorer.load_shapes_scorer() instead "
                              f"({e})") from e
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor

    def score(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """Return the cosine similarities float [len(images), len(texts)]."""
        import torch

        texts = _check_texts(texts)
        arrays = [_check_image(im, f"images[{i}]") for i, im in enumerate(images)]
        batch = self.processor(text=texts, images=arrays, return_tensors="pt", padding=True, truncation=True)
        mask = batch.get("attention_mask")
        with torch.no_grad():
            img = _features(self.model.get_image_features(pixel_values=batch["pixel_values"].to(self.device)))
            txt = _features(self.model.get_text_features(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=None if mask is None else mask.to(self.device)))
        img = torch.nn.functional.normalize(img.float(), dim=-1)
        txt = torch.nn.functional.normalize(txt.float(), dim=-1)
        return (img @ txt.T).cpu().numpy()

    __call__ = score


def _features(out: Any) -> Any:
    """Return the features tensor (transformers 5 may wrap it in an output with ``pooler_output``)."""
    return out if hasattr(out, "dim") else out.pooler_output
