"""Writer verification, shared by the handwriting series (hv_vlm, sslhv): image pairs in the papers' protocol,
handcrafted baselines and metrics. A series builds its models on these; neither series imports the other."""

from kit.verification.baselines import (
    BASELINES,
    PairBaseline,
    best_threshold,
    cosine_scores,
    fit_baseline,
    hog_features,
    raw_features,
)
from kit.verification.metrics import decisions_metrics, pair_metrics
from kit.verification.pairs import PairData, RandomPairs, balanced_subset, load_pair_data, to_input

__all__ = [
    "BASELINES", "PairBaseline", "PairData", "RandomPairs", "balanced_subset", "best_threshold", "cosine_scores",
    "decisions_metrics", "fit_baseline", "hog_features", "load_pair_data", "pair_metrics", "raw_features",
    "to_input",
]
