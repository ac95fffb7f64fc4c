"""Handcrafted writer-verification baselines shared by the handwriting series (arXiv:2407.21788's table,
arXiv:2405.18320's HOG row): raw-pixel and HOG cosine, HOG + logistic regression.

Each baseline turns a pair of uint8 images into a same-writer score; thresholds and classifiers are fitted on
training pairs only, then applied to held-out writers:
- ``raw_cosine``: cosine similarity of the inverted pixels (ink = 1), a floor;
- ``hog_cosine``: cosine similarity of HOG descriptors (``skimage.feature.hog``: 9 orientations, 8 x 8 cells,
  2 x 2 blocks), the stand-in for the paper's handcrafted GSC features;
- ``hog_logreg``: logistic regression on |HOG(a) - HOG(b)|, trained on labelled pairs (10 % or 100 % of writers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

BASELINES = ("raw_cosine", "hog_cosine", "hog_logreg")


def _check(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 3 or len(a) == 0:
        raise ValueError(f"images must be uint8 [N, H, W] (dark ink on light paper), got {a.dtype} {a.shape}")
    return a


def raw_features(images: np.ndarray) -> np.ndarray:
    """Inverted pixels float32 [N, H * W] (ink = 1) of uint8 images [N, H, W]."""
    a = _check(images)
    return (1.0 - a.reshape(len(a), -1).astype(np.float32) / 255.0)


def hog_features(images: np.ndarray) -> np.ndarray:
    """HOG descriptors float32 [N, D] of uint8 images [N, H, W] (9 orientations, 8 x 8 cells, 2 x 2 blocks)."""
    from skimage.feature import hog

    a = _check(images)
    return np.stack([hog(255 - x, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
                         feature_vector=True) for x in a]).astype(np.float32)


def cosine_scores(features: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarities [P] of the feature rows of index pairs ``pairs`` [P, >=2]."""
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    p = np.asarray(pairs)
    return np.einsum("pd,pd->p", f[p[:, 0]], f[p[:, 1]])


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising the accuracy of ``score >= t`` -> same writer (midpoint between two scores)."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(int)
    if len(s) == 0 or len(np.unique(y)) < 2:
        raise ValueError("a threshold needs scores of both same-writer and different-writer pairs")
    order = np.argsort(s)
    s, y = s[order], y[order]
    # predicting "same" for s[k:] : correct = negatives below k + positives from k
    correct = np.concatenate([[0], np.cumsum(1 - y)]) + np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0] - 1e-6)
    if k == len(s):
        return float(s[-1] + 1e-6)
    return float(0.5 * (s[k - 1] + s[k]))


@dataclass
class PairBaseline:
    """A fitted handcrafted baseline: ``scores(images, pairs)`` -> same-writer scores, ``predict`` -> 0/1."""

    name: str
    threshold: float = 0.0
    classifier: LogisticRegression | None = None
    scaler: StandardScaler | None = None

    def features(self, images: np.ndarray) -> np.ndarray:
        return raw_features(images) if self.name == "raw_cosine" else hog_features(images)

    def scores(self, images: np.ndarray, pairs: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Same-writer scores [P] of ``pairs`` [P, >=2] into ``images`` [N, H, W] (higher = more alike)."""
        f = self.features(images) if features is None else features
        if self.name == "hog_logreg":
            if self.classifier is None:
                raise ValueError("hog_logreg is not fitted: call fit_baseline first")
            p = np.asarray(pairs)
            d = self.scaler.transform(np.abs(f[p[:, 0]] - f[p[:, 1]]))
            return self.classifier.decision_function(d)
        return cosine_scores(f, pairs)

    def predict(self, images: np.ndarray, pairs: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Decisions int64 [P], 1 = same writer."""
        return (self.scores(images, pairs, features) >= self.threshold).astype(np.int64)


def fit_baseline(name: str, images: np.ndarray, pairs: np.ndarray, features: np.ndarray | None = None,
                 seed: int = 0) -> PairBaseline:
    """Return baseline ``name`` (one of ``BASELINES``) fitted on training ``pairs`` [P, 3] (i, j, label) of ``images``."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {name!r}")
    p = np.asarray(pairs)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"pairs must be [P, 3] (i, j, label), got shape {p.shape}")
    base = PairBaseline(name)
    f = base.features(images) if features is None else features
    if name == "hog_logreg":
        d = np.abs(f[p[:, 0]] - f[p[:, 1]])
        base.scaler = StandardScaler().fit(d)
        base.classifier = LogisticRegression(C=0.05, max_iter=2000, random_state=seed).fit(
            base.scaler.transform(d), p[:, 2])
        base.threshold = 0.0
    else:
        base.threshold = best_threshold(cosine_scores(f, p), p[:, 2])
    return base
