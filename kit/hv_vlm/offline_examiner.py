"""OfflineExaminer: a deterministic "forensic document examiner" chat backend built on measured features.

VLM-HV (arXiv:2407.21788) asks a vision-language model to compare a known and a questioned "and" feature by
feature (turn 1) and then to answer Yes (same writer) or No (turn 2). ``OfflineExaminer`` writes the same two
turns without a model, network or randomness, so notebooks and CI run the protocol anywhere:

- turn 1: one paragraph per feature heading (slant, size, spacing, stroke width / pressure, baseline, letter
  formation, line quality); each sentence gives both samples' measured values (``kit.hv_vlm.features``) and
  says "consistent" or "different", then an "Overall:" paragraph;
- turn 2: "Yes." or "No." and one sentence naming the features that drove the decision.

Fitting (``fit`` on training pairs): every feature difference |f(known) - f(questioned)| is divided by a
robust scale of that feature over the training images; the feature *differs* when its scaled difference
exceeds the ``quantile`` (0.9) of same-writer training differences, i.e. beyond the range one writer shows in
90 % of pairs.
Only the excess beyond that threshold counts as evidence: ``E = sum_i w_i max(d_i - t_i, 0)`` with ``w >= 0``
fitted by logistic regression (P(same) = sigmoid(b - E), ``b >= 0``), and the decision is "different" when
``E > b``. So a No always names at least one differing feature, every feature it names pushed towards No, and
features called consistent contribute nothing: the explanation gives the reasons that drive the decision.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from kit.hv_vlm.examiner import ChatBackend, check_image
from kit.hv_vlm.features import FEATURE_NAMES, FEATURES, HEADINGS, measure

__all__ = ["OfflineExaminer", "Assessment", "CONSISTENT", "DIFFERENT"]

CONSISTENT = "consistent"
DIFFERENT = "different"
_WITHIN = "within the range seen within one writer"
_BEYOND = "beyond the range seen within one writer"
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve")
_CACHE_SIZE = 4096   # measured images kept (about 100 bytes each)


def _count(n: int) -> str:
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)


def _verb(n: int, verb: str) -> str:
    return verb + "s" if n == 1 else verb


def _all(n: int) -> str:
    return "both" if n == 2 else f"all {_count(n)}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True)
class Assessment:
    """The examiner's reading of one pair: per-feature ``known`` / ``questioned`` values, ``scaled``
    differences, ``differs`` flags and ``evidence`` (w_i * excess) dicts keyed by feature name; the total
    ``score`` E, the ``bias`` b it is compared with, ``p_same`` = sigmoid(b - E) and ``decision`` ("same" |
    "different")."""

    known: dict
    questioned: dict
    scaled: dict
    differs: dict
    evidence: dict
    score: float
    bias: float
    p_same: float
    decision: str

    def drivers(self) -> list[str]:
        """Names of the differing features that add evidence against a common writer, strongest first."""
        return sorted((n for n, e in self.evidence.items() if e > 0), key=lambda n: -self.evidence[n])


def _fit_nonneg_logistic(h: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weights w >= 0 [K] and bias b >= 0 of P(y = 1) = sigmoid(b - h @ w), L-BFGS-B on the mean log loss."""
    n, k = h.shape

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = p[:k], p[k]
        z = b - h @ w
        value = np.mean(y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)) + 0.5 * l2 * w @ w
        g = 1.0 / (1.0 + np.exp(-z)) - y                                            # d loss / d z per pair
        return float(value), np.r_[-(h.T @ g) / n + l2 * w, g.mean()]

    p0 = np.r_[np.full(k, 0.1), 1.0]
    res = minimize(loss, p0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * (k + 1))
    return res.x[:k], float(res.x[k])


class OfflineExaminer(ChatBackend):
    """Deterministic examiner backend: measured features, thresholds fitted on training pairs, the two turns
    of arXiv:2407.21788 as text. ``features``: names from ``kit.hv_vlm.features.FEATURES`` to use;
    ``quantile``: of same-writer scaled differences, sets each feature's threshold; ``l2``: ridge on the
    weights.

    ``fit(knowns, questioneds, labels)`` then ``chat`` (or ``verify`` from ``kit.hv_vlm.examiner``);
    ``to_dict`` / ``from_dict`` save and restore the fitted numbers as JSON-able data. ``temperature`` and
    ``max_tokens`` of ``chat`` are accepted and ignored: the answers are deterministic and short.
    """

    name = "offline-examiner"

    def __init__(self, features: Sequence[str] = FEATURE_NAMES, quantile: float = 0.9,
                 l2: float = 1e-3) -> None:
        features = tuple(features)
        unknown = [f for f in features if f not in FEATURE_NAMES]
        if not features or unknown or len(set(features)) != len(features):
            raise ValueError(f"features must be distinct names from {FEATURE_NAMES}, got {list(features)}")
        if not 0.5 <= quantile < 1:
            raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.features = tuple(f for f in FEATURE_NAMES if f in features)              # FEATURES order
        self.quantile, self.l2 = float(quantile), float(l2)
        self.scale: np.ndarray | None = None
        self.threshold: np.ndarray | None = None
        self.weights: np.ndarray | None = None
        self.bias: float | None = None
        self.train_stats: dict = {}
        self.last_meta: dict = {}
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    # -- measuring ---------------------------------------------------------------------------------------
    def _features_of(self, image: np.ndarray) -> np.ndarray:
        key = hashlib.blake2b(image.tobytes() + repr((image.shape, image.dtype.str)).encode(),
                              digest_size=16).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        f = measure(image)
        v = np.array([f[n] for n in self.features], dtype=np.float64)
        self._cache[key] = v
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return v

    def _measure_all(self, images: Sequence[np.ndarray], what: str) -> np.ndarray:
        """Features [N, len(features)] of ``images``; each distinct image is measured once (LRU cache)."""
        out = np.empty((len(images), len(self.features)))
        for i, img in enumerate(images):
            check_image(img, f"{what}[{i}]")
            try:
                out[i] = self._features_of(img)
            except ValueError as e:
                raise ValueError(f"{what}[{i}]: {e}") from None
        return out

    # -- fitting -------------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``from_dict``) has set the scales, thresholds and weights."""
        return self.weights is not None

    def _require_fit(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("OfflineExaminer is not fitted: call fit(knowns, questioneds, labels) on "
                               "training pairs first (or build it with OfflineExaminer.from_dict(saved))")

    def fit(self, knowns: Sequence[np.ndarray], questioneds: Sequence[np.ndarray],
            labels: Sequence[int]) -> OfflineExaminer:
        """This examiner, fitted on pairs ``(knowns[p], questioneds[p])`` with ``labels`` [P] (1 = same).

        Scales: interquartile range / 1.349 of each feature over the training images (std where that is 0);
        thresholds: the ``quantile`` of same-writer scaled differences; weights and bias: non-negative
        logistic regression on the excess of each scaled difference over its threshold."""
        y = np.asarray(labels).ravel()
        if not (len(knowns) == len(questioneds) == len(y)):
            raise ValueError(f"knowns, questioneds and labels differ in length: {len(knowns)}, "
                             f"{len(questioneds)}, {len(y)}")
        if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
            raise ValueError("labels must hold both 1 (same writer) and 0 (different writers), nothing else")
        fa, fb = self._measure_all(knowns, "knowns"), self._measure_all(questioneds, "questioneds")
        return self.fit_features(fa, fb, y)

    def fit_features(self, fa: np.ndarray, fb: np.ndarray, labels: Sequence[int]) -> OfflineExaminer:
        """This examiner, fitted on measured features ``fa``, ``fb`` [P, len(features)] of the pairs (``fit``
        in one step); the scales use the distinct rows of ``fa`` and ``fb``."""
        fa, fb, y = np.asarray(fa, np.float64), np.asarray(fb, np.float64), np.asarray(labels).ravel()
        if fa.shape != fb.shape or fa.ndim != 2 or fa.shape != (len(y), len(self.features)):
            raise ValueError(f"fa and fb must both be [P, {len(self.features)}] with P = len(labels) = "
                             f"{len(y)}, got {list(fa.shape)} and {list(fb.shape)}")
        if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
            raise ValueError("labels must hold both 1 (same writer) and 0 (different writers), nothing else")
        images = np.unique(np.concatenate([fa, fb]), axis=0)
        q1, q3 = np.quantile(images, [0.25, 0.75], axis=0)
        scale = (q3 - q1) / 1.349
        scale = np.where(scale > 1e-9, scale, images.std(0))
        scale = np.where(scale > 1e-9, scale, 1.0)
        d = np.abs(fa - fb) / scale
        threshold = np.quantile(d[y == 1], self.quantile, axis=0)
        weights, bias = _fit_nonneg_logistic(np.maximum(d - threshold, 0.0), y.astype(np.float64), self.l2)
        self.scale, self.threshold, self.weights, self.bias = scale, threshold, weights, bias
        pred = (np.maximum(d - threshold, 0.0) @ weights <= bias).astype(int)
        self.train_stats = {"n_pairs": int(len(y)), "n_same": int(y.sum()),
                            "accuracy": float(np.mean(pred == y))}
        return self

    # -- reading a pair -----------------------------------------------------------------------------------
    def assess(self, known: np.ndarray, questioned: np.ndarray) -> Assessment:
        """The ``Assessment`` of one pair (uint8 images [H, W] or [H, W, 3]): measurements, flags, evidence.
        """
        self._require_fit()
        fa = self._measure_all([known], "known")[0]
        fb = self._measure_all([questioned], "questioned")[0]
        d = np.abs(fa - fb) / self.scale
        ev = self.weights * np.maximum(d - self.threshold, 0.0)
        score = float(ev.sum())
        names = self.features
        return Assessment(known=dict(zip(names, fa.tolist())), questioned=dict(zip(names, fb.tolist())),
                          scaled=dict(zip(names, d.tolist())),
                          differs={n: bool(x) for n, x in zip(names, d > self.threshold)},
                          evidence=dict(zip(names, ev.tolist())), score=score, bias=float(self.bias),
                          p_same=float(1.0 / (1.0 + np.exp(score - self.bias))),
                          decision="different" if score > self.bias else "same")

    def predict(self, knowns: Sequence[np.ndarray], questioneds: Sequence[np.ndarray]) -> list[str]:
        """Decisions ("same" | "different") [P] of the pairs, without writing the text (as ``chat`` would)."""
        return [self.assess(k, q).decision for k, q in zip(knowns, questioneds, strict=True)]

    def explain(self, known: np.ndarray, questioned: np.ndarray) -> str:
        """Turn-1 text: a paragraph per feature heading with both measured values and consistent / different,
        then "Overall:"."""
        a = self.assess(known, questioned)
        spec = {f.name: f for f in FEATURES}
        paragraphs = []
        for heading in HEADINGS:
            sentences = []
            for n in self.features:
                f = spec[n]
                if f.heading != heading:
                    continue
                unit = f" {f.unit}" if f.unit else ""
                va, vb = f.fmt.format(a.known[n]) + unit, f.fmt.format(a.questioned[n]) + unit
                verdict = f"{DIFFERENT}, {_BEYOND}" if a.differs[n] else f"{CONSISTENT}, {_WITHIN}"
                sentences.append(f"The {f.label} measures {va} in the known sample and {vb} in the "
                                 f"questioned sample: {verdict}.")
            if sentences:
                paragraphs.append(f"{heading}: " + " ".join(sentences))
        flagged = [spec[n].label for n in self.features if a.differs[n]]
        k, total = len(flagged), len(self.features)
        if k:
            rest = f"; the others are {CONSISTENT}" if k < total else ""
            overall = (f"Overall: {_count(k)} of {_count(total)} measured features {_verb(k, 'differ')} "
                       f"{_BEYOND} ({_join(flagged)}){rest}. ")
        else:
            overall = f"Overall: {_all(total)} measured features are {CONSISTENT}. "
        if a.decision == "different":
            overall += "Taken together the differences point to different writers."
        elif k:
            these = "this difference is" if k == 1 else "these differences are"
            overall += (f"Taken together {these} too small to set the writers apart, so the samples point to "
                        "the same writer.")
        else:
            overall += "The samples point to the same writer."
        paragraphs.append(overall)
        return "\n\n".join(paragraphs)

    def decide(self, known: np.ndarray, questioned: np.ndarray) -> str:
        """Turn-2 text: "Yes." or "No." and one sentence naming the features behind the decision."""
        a = self.assess(known, questioned)
        spec = {f.name: f for f in FEATURES}
        total = len(self.features)
        if a.decision == "different":
            k = sum(a.differs.values())
            return (f"No. {_count(k).capitalize()} of {_count(total)} features {_verb(k, 'differ')} "
                    f"{_BEYOND} and {_verb(k, 'outweigh')} the agreement of the rest, strongest first: "
                    f"{_join([spec[n].label for n in a.drivers()])}.")
        flagged = [spec[n].label for n in self.features if a.differs[n]]
        if not flagged:
            return f"Yes. {_all(total).capitalize()} measured features are {CONSISTENT} {_WITHIN}."
        k = len(flagged)
        return (f"Yes. Only {_count(k)} of {_count(total)} features {_verb(k, 'differ')} {_BEYOND} "
                f"({_join(flagged)}), too little to set the writers apart.")

    # -- ChatBackend ----------------------------------------------------------------------------------------
    def chat(self, messages: list[dict], images: list[np.ndarray], *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """Turn 1 (no assistant message yet): ``explain(images[0], images[1])``; turn 2 (after an assistant
        message): ``decide(images[0], images[1])``. The prompts' wording is not parsed."""
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise ValueError("messages must be a non-empty list of {'role': ..., 'content': str} dicts")
        if messages[-1].get("role") != "user":
            raise ValueError(f"the last message must be the user's, got role {messages[-1].get('role')!r}")
        if len(images) != 2:
            raise ValueError(f"images must be [known, questioned], got {len(images)} images")
        self._require_fit()
        turn = 2 if any(m.get("role") == "assistant" for m in messages) else 1
        self.last_meta = {"cached": False, "turn": turn}
        return self.decide(*images) if turn == 2 else self.explain(*images)

    def describe(self) -> dict:
        """``{"backend", "features", "quantile", "fitted"}`` for a verdict's meta."""
        return {"backend": self.name, "features": list(self.features), "quantile": self.quantile,
                "fitted": self.is_fitted}

    # -- saving -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fitted examiner as JSON-able data (lists and floats); ``from_dict`` restores it."""
        self._require_fit()
        return {"kind": "OfflineExaminer", "version": 1, "features": list(self.features),
                "quantile": self.quantile, "l2": self.l2, "scale": self.scale.tolist(),
                "threshold": self.threshold.tolist(), "weights": self.weights.tolist(), "bias": self.bias,
                "train_stats": dict(self.train_stats)}

    @classmethod
    def from_dict(cls, data: dict) -> OfflineExaminer:
        """The examiner saved by ``to_dict``; ValueError naming what is missing or malformed."""
        need = ("features", "quantile", "l2", "scale", "threshold", "weights", "bias")
        if not isinstance(data, dict) or data.get("kind") != "OfflineExaminer":
            raise ValueError("data must be a dict from OfflineExaminer.to_dict() (kind 'OfflineExaminer')")
        missing = [k for k in need if k not in data]
        if missing:
            raise ValueError(f"OfflineExaminer data lacks {missing}")
        ex = cls(data["features"], data["quantile"], data["l2"])
        if list(ex.features) != list(data["features"]):
            raise ValueError(f"features must be listed in FEATURES order {FEATURE_NAMES}, got "
                             f"{data['features']}")
        arrays = {k: np.asarray(data[k], np.float64) for k in ("scale", "threshold", "weights")}
        for k, v in arrays.items():
            if v.shape != (len(ex.features),) or not np.isfinite(v).all():
                raise ValueError(f"{k} must be {len(ex.features)} finite numbers, got {data[k]!r}")
        if (arrays["scale"] <= 0).any() or (arrays["weights"] < 0).any() or not data["bias"] >= 0:
            raise ValueError("scale must be > 0, weights >= 0 and bias >= 0")
        ex.scale, ex.threshold, ex.weights = arrays["scale"], arrays["threshold"], arrays["weights"]
        ex.bias = float(data["bias"])
        ex.train_stats = dict(data.get("train_stats", {}))
        return ex

    def __repr__(self) -> str:
        state = f"fitted on {self.train_stats.get('n_pairs', '?')} pairs" if self.is_fitted else "not fitted"
        return f"OfflineExaminer({len(self.features)} features, quantile={self.quantile}, {state})"
