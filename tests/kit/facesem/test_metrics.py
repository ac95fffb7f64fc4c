"""Image- and video-level detection metrics against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from kit.facesem.metrics import image_metrics, video_auc, video_scores


def test_image_metrics():
    p, y = np.array([0.9, 0.2, 0.6, 0.4]), np.array([1, 0, 0, 1])
    m = image_metrics(p, y)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p)) and m["acc"] == 0.5
    assert image_metrics(p, np.ones(4))["auc"] is None
    with pytest.raises(ValueError, match="labels 0"):
        image_metrics(p, np.array([0, 1, 2, 1]))


def test_video_auc_averages_frames_per_video():
    p = np.array([0.9, 0.7, 0.2, 0.4, 0.6, 0.1])
    y = np.array([1, 1, 0, 0, 1, 0])
    v = np.array(["a", "a", "b", "b", "c", "d"])
    ids, score, lab = video_scores(p, y, v)
    assert list(ids) == ["a", "b", "c", "d"] and np.allclose(score, [0.8, 0.3, 0.6, 0.1])
    assert list(lab) == [1, 0, 1, 0]
    assert video_auc(p, y, v) == pytest.approx(roc_auc_score([1, 0, 1, 0], [0.8, 0.3, 0.6, 0.1]))
    with pytest.raises(ValueError, match="mixes real and fake"):
        video_auc(p, np.array([1, 0, 0, 0, 1, 0]), v)
