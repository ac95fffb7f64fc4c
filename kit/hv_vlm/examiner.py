"""Verdict (decision, explanation, raw) of a VLM "forensic document examiner" on a known / questioned "and" pair.

The zero-shot chain of thought of VLM-HV (arXiv:2407.21788): turn 1 asks the vision-language model, as a
forensic document examiner, to compare two handwritten samples of the lowercase word "and" feature by feature;
turn 2 appends that answer to the conversation and asks for the decision, Yes (same writer) or No. One parser
(``parse_decision``) turns the decision text into same / different / unknown / both, so every backend (GPT-4o
over HTTP, PaliGemma, the offline examiner, a scripted one for tests) is scored the same way.
"""

from __future__ import annotations

import abc
import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DECISIONS", "IMAGE_LABELS", "SYSTEM_PROMPT", "EXPLAIN_PROMPT", "DECIDE_PROMPT", "Verdict",
           "parse_decision", "ChatBackend", "ScriptedBackend", "verify", "verify_pairs", "decision_metrics",
           "check_image", "image_label", "image_to_png_bytes"]

DECISIONS = ("same", "different", "unknown", "both")
IMAGE_LABELS = ("Known sample:", "Questioned sample:")

SYSTEM_PROMPT = (
    "You are an expert forensic document examiner. You compare handwriting samples to decide whether they "
    "were written by the same person, and you explain your reasoning from the handwriting features you "
    "actually see."
)
EXPLAIN_PROMPT = (
    "You are a forensic document examiner. You are given two handwritten samples of the lowercase word "
    '"and". The images follow, labelled "Known sample:" and then "Questioned sample:". Compare the two '
    "samples feature by feature (for example slant, size and proportions, spacing between the letters, how "
    'the letters are connected, the staff of "a", the formation of "n", the ascender and exit stroke of "d", '
    "stroke width and pen pressure, the baseline, the overall shape of the word) and explain whether they "
    "were written by the same writer or by different writers."
)
DECIDE_PROMPT = (
    "Based on your explanation, were the two samples written by the same writer? Answer Yes or No (or "
    "Unknown if you cannot decide). Yes means the same writer; No means different writers."
)

_WORDS = re.compile(r"\b(yes|no|unknown)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """One examiner verdict: ``decision`` in ``DECISIONS``, the turn-1 ``explanation``, the turn-2 ``raw`` text
    and ``meta`` (backend, model, temperatures, ``cached``, ``seconds``, per-turn details)."""

    decision: str
    explanation: str
    raw: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")


def parse_decision(text: str) -> str:
    """Decision in ``DECISIONS`` read from a turn-2 answer ``text`` by the authors' rule (arXiv:2407.21788).

    The authors' scripts search the answer with a case-insensitive whole-word regex for "yes", "no" and
    "unknown": any "unknown" gives ``"unknown"`` (their row is dropped); only "yes" gives ``"same"``; only "no"
    gives ``"different"``; both "yes" and "no" give ``"both"`` (ambiguous); neither gives ``"unknown"``.
    Whole words only, so punctuation and markup around a word count ("Yes.", "**No**", "yes,") while "not",
    "none", "know" or "nothing" do not count as "no". A "no" inside a sentence counts, as in the authors'
    rule: "I see no difference... Yes" is ``"both"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    words = {w.lower() for w in _WORDS.findall(text)}
    if "unknown" in words:
        return "unknown"
    if "yes" in words and "no" in words:
        return "both"
    if "yes" in words:
        return "same"
    if "no" in words:
        return "different"
    return "unknown"


def check_image(img: np.ndarray, name: str = "image") -> np.ndarray:
    """The image itself, uint8 [H, W] or [H, W, 3], after checking it; a clear ValueError naming ``name`` if not."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy uint8 array [H, W] or [H, W, 3], got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got dtype {img.dtype}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"{name} must have shape [H, W] (grey) or [H, W, 3] (RGB), got {list(img.shape)}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {list(img.shape)}")
    return img


def image_label(i: int) -> str:
    """The text put before image ``i`` of a pair: "Known sample:", "Questioned sample:", then "Sample k:"."""
    return IMAGE_LABELS[i] if i < len(IMAGE_LABELS) else f"Sample {i + 1}:"


def image_to_png_bytes(img: np.ndarray, max_side: int = 800) -> bytes:
    """PNG bytes of ``img`` (uint8 [H, W] or [H, W, 3]), shrunk so its long side is <= ``max_side`` (aspect kept).

    One of the authors' scripts for arXiv:2407.21788 shrinks the images the same way before sending them.
    """
    from PIL import Image

    check_image(img, "img")
    if int(max_side) < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    pil = Image.fromarray(np.ascontiguousarray(img))
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def _check_messages(messages: list[dict]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': str} dicts")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"messages[{k}] must be a dict with role 'system', 'user' or 'assistant', got {m!r}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{k}]['content'] must be a str")
    if not any(m["role"] == "user" for m in messages):
        raise ValueError("messages need a user message (the images belong to the first one)")


class ChatBackend(abc.ABC):
    """A chat model that sees images: ``chat(messages, images) -> str``, the answer to the last user message.

    ``messages``: ``[{"role": "system" | "user" | "assistant", "content": str}, ...]``; ``images``: the known
    and questioned images (uint8 [H, W] or [H, W, 3]), which belong to the FIRST user message, after its text,
    labelled "Known sample:" and "Questioned sample:". A backend may set ``last_meta`` (a JSON-able dict, e.g.
    ``{"cached": True}``) in ``chat``; ``verify`` copies it into the verdict's meta.
    """

    name: str = "backend"
    last_meta: dict  # set by chat() where the backend has something to report

    @abc.abstractmethod
    def chat(self, messages: list[dict], images: list[np.ndarray], *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """The model's answer to the last user message (``temperature`` / ``max_tokens`` None: its defaults)."""

    def describe(self) -> dict:
        """What identifies this backend in a verdict's meta: ``{"backend": name, ...}`` (never a secret)."""
        return {"backend": self.name}


class ScriptedBackend(ChatBackend):
    """A backend that answers with canned ``replies`` in turn (cycling); ``calls`` records every request as
    ``{"messages", "n_images", "temperature", "max_tokens"}``. For tests and teaching."""

    name = "scripted"

    def __init__(self, replies: Sequence[str]) -> None:
        if isinstance(replies, str) or not replies or not all(isinstance(r, str) for r in replies):
            raise ValueError("replies must be a non-empty list of strings")
        self.replies = list(replies)
        self.calls: list[dict] = []
        self.last_meta = {}

    def chat(self, messages: list[dict], images: list[np.ndarray], *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        _check_messages(messages)
        for i, img in enumerate(images):
            check_image(img, f"images[{i}]")
        self.calls.append({"messages": [dict(m) for m in messages], "n_images": len(images),
                           "temperature": temperature, "max_tokens": max_tokens})
        self.last_meta = {"cached": False}
        return self.replies[(len(self.calls) - 1) % len(self.replies)]

    def __repr__(self) -> str:
        return f"ScriptedBackend({len(self.replies)} replies, {len(self.calls)} calls)"


def verify(backend: ChatBackend, known: np.ndarray, questioned: np.ndarray, *,
           explain_temperature: float | None = 0.0, max_tokens: int | None = 600,
           system_prompt: str = SYSTEM_PROMPT, explain_prompt: str = EXPLAIN_PROMPT,
           decide_prompt: str = DECIDE_PROMPT) -> Verdict:
    """Verdict of ``backend`` on one pair by the two-turn zero-shot chain of thought of arXiv:2407.21788.

    Turn 1: ``[system, user explain_prompt]`` with the images -> the explanation (at ``explain_temperature``;
    0 in one of the authors' scripts). Turn 2: the same conversation plus the explanation as the assistant's
    turn and ``decide_prompt`` -> the decision text, at the backend's default temperature as the authors did;
    ``decision = parse_decision(turn 2)``. The prompts are overridable for prompt experiments.
    """
    if not isinstance(backend, ChatBackend):
        raise TypeError(f"backend must be a ChatBackend, got {type(backend).__name__}")
    images = [check_image(known, "known"), check_image(questioned, "questioned")]
    t0 = time.perf_counter()
    convo = [{"role": "system", "content": system_prompt}, {"role": "user", "content": explain_prompt}]
    explanation = backend.chat(convo, images, temperature=explain_temperature, max_tokens=max_tokens)
    meta1 = dict(getattr(backend, "last_meta", None) or {})
    convo = convo + [{"role": "assistant", "content": explanation}, {"role": "user", "content": decide_prompt}]
    raw = backend.chat(convo, images, temperature=None, max_tokens=max_tokens)
    meta2 = dict(getattr(backend, "last_meta", None) or {})
    meta = {**backend.describe(), "explain_temperature": explain_temperature, "decide_temperature": None,
            "max_tokens": max_tokens, "cached": bool(meta1.get("cached")) and bool(meta2.get("cached")),
            "seconds": time.perf_counter() - t0, "turns": [meta1, meta2]}
    return Verdict(decision=parse_decision(raw), explanation=explanation, raw=raw, meta=meta)


def verify_pairs(backend: ChatBackend, knowns: Sequence[np.ndarray], questioneds: Sequence[np.ndarray], *,
                 progress: bool = True, **kw) -> list[Verdict]:
    """Verdicts [P] of ``backend`` on the pairs ``(knowns[p], questioneds[p])``; ``kw`` go to ``verify``."""
    from tqdm.auto import tqdm

    if len(knowns) != len(questioneds):
        raise ValueError(f"knowns and questioneds differ in length: {len(knowns)} vs {len(questioneds)}")
    pairs = zip(knowns, questioneds)
    return [verify(backend, k, q, **kw)
            for k, q in tqdm(pairs, total=len(knowns), disable=not progress, desc=f"verify ({backend.name})")]


def decision_metrics(decisions: Sequence[str], labels: Sequence[int]) -> dict[str, float]:
    """Scores of ``decisions`` [P] against ``labels`` [P] (1 = same writer), positive class = same writer.

    ``coverage``: the fraction decided (same or different); ``accuracy``, ``precision``, ``recall``, ``f1`` on
    those covered pairs (0.0 where undefined, e.g. nothing covered; coverage then says why);
    ``accuracy_all``: accuracy over all pairs with unknown / both counted as wrong; counts ``n``,
    ``n_covered``, ``n_unknown``, ``n_both``. arXiv:2407.21788 reports accuracy, P, R, F1; the unknown and
    ambiguous answers its parser drops are what coverage makes visible.
    """
    decisions = list(decisions)
    y = np.asarray(labels).ravel()
    if len(decisions) != len(y):
        raise ValueError(f"decisions and labels differ in length: {len(decisions)} vs {len(y)}")
    if not decisions:
        raise ValueError("decision_metrics needs at least one decision")
    bad = sorted({d for d in decisions if d not in DECISIONS}, key=str)
    if bad:
        raise ValueError(f"decisions must be in {DECISIONS}, got {bad}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (different writer) or 1 (same writer), got {np.unique(y).tolist()}")
    d = np.asarray(decisions)
    covered = (d == "same") | (d == "different")
    pred, true = (d[covered] == "same").astype(int), y[covered].astype(int)
    tp = int(((pred == 1) & (true == 1)).sum())
    fp = int(((pred == 1) & (true == 0)).sum())
    fn = int(((pred == 0) & (true == 1)).sum())
    n, nc = len(d), int(covered.sum())
    correct = int((pred == true).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": n, "n_covered": nc, "n_unknown": int((d == "unknown").sum()), "n_both": int((d == "both").sum()),
            "coverage": nc / n, "accuracy": correct / nc if nc else 0.0, "precision": precision,
            "recall": recall, "f1": f1, "accuracy_all": correct / n}
