"""The shared writer-verification baselines and metrics (kit.verification) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import hog
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from kit.data.handwriting import Writers
from kit.verification.baselines import best_threshold, cosine_scores, fit_baseline, hog_features, raw_features
from kit.verification.metrics import decisions_metrics, pair_metrics


@pytest.fixture(scope="module")
def writers_data():
    w = Writers(16, seed=5, noise=1.0)
    images = np.concatenate([w.sample(i, 4, np.random.default_rng(i)) for i in range(16)])
    from kit.data.handwriting import verification_pairs

    writer_of = np.repeat(np.arange(16), 4)
    return images, writer_of, verification_pairs(writer_of, seed=0)


def test_features_match_direct_computation(writers_data):
    images = writers_data[0][:3]
    np.testing.assert_allclose(raw_features(images)[1], 1 - images[1].ravel() / 255.0, rtol=1e-6)
    ref = hog(255 - images[2], orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    np.testing.assert_allclose(hog_features(images)[2], ref, rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        hog_features(images.astype(float))


def test_cosine_scores_against_numpy():
    f = np.random.default_rng(0).normal(size=(5, 7))
    pairs = np.array([[0, 1, 1], [2, 4, 0]])
    want = [f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j]) for i, j, _ in pairs]
    np.testing.assert_allclose(cosine_scores(f, pairs), want, rtol=1e-12)


def test_best_threshold_maximises_accuracy_exhaustively():
    rng = np.random.default_rng(1)
    s = rng.normal(size=60)
    y = (s + rng.normal(scale=0.8, size=60) > 0).astype(int)
    t = best_threshold(s, y)
    best = max(((s >= c) == y).mean() for c in np.concatenate([s, [s.max() + 1]]))
    assert ((s >= t) == y).mean() == pytest.approx(best)
    with pytest.raises(ValueError, match="both"):
        best_threshold(s, np.ones(60))


def test_hog_beats_raw_pixels_and_logreg_fits(writers_data):
    images, _, pairs = writers_data
    accs = {}
    for name in ("raw_cosine", "hog_cosine", "hog_logreg"):
        b = fit_baseline(name, images, pairs)
        accs[name] = (b.predict(images, pairs) == pairs[:, 2]).mean()
    assert accs["hog_cosine"] > accs["raw_cosine"] and accs["hog_cosine"] > 0.7  # training pairs, noise 1.0
    assert accs["hog_logreg"] > 0.7
    with pytest.raises(ValueError, match="one of"):
        fit_baseline("gsc", images, pairs)
    with pytest.raises(ValueError, match=r"\[P, 3\]"):
        fit_baseline("hog_cosine", images, pairs[:, :2])


def test_metrics_match_sklearn_with_true_labels_first():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 50)
    s = rng.random(50)
    m = pair_metrics(s, y, threshold=0.4)
    p = (s >= 0.4).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["precision"] == pytest.approx(precision_score(y, p))
    assert m["recall"] == pytest.approx(recall_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p))
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    assert pair_metrics(s, np.ones(50))["auc"] is None
    z = decisions_metrics(np.zeros(4), np.array([0, 1, 0, 1]))
    assert z["precision"] == 0.0 and z["f1"] == 0.0 and z["accuracy"] == 0.5
    with pytest.raises(ValueError, match="finite"):
        pair_metrics(np.array([np.nan, 0.2]), np.array([0, 1]))

