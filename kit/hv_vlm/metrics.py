"""The reported table of arXiv:2407.21788; the metrics themselves are the shared ones of
:mod:`kit.verification.metrics` (imported here for the series' users)."""

from __future__ import annotations

from kit.verification.metrics import decisions_metrics, pair_metrics

__all__ = ["PAPER_TABLE", "decisions_metrics", "pair_metrics"]

# Table 1 of arXiv:2407.21788 (CEDAR AND, held-out writers) and the companion ssl-hv release for the baselines'
# precision / recall / F1; "-" cells were not recoverable (None).
PAPER_TABLE = [
    {"method": "GPT-4o, 0-shot CoT", "accuracy": 0.70, "precision": None, "recall": None, "f1": None},
    {"method": "PaliGemma, LoRA SFT", "accuracy": 0.71, "precision": None, "recall": None, "f1": None},
    {"method": "ResNet-18, 100% writers", "accuracy": 0.84, "precision": 0.86, "recall": 0.82, "f1": 0.84},
    {"method": "ViT, 100% writers", "accuracy": 0.79, "precision": 0.80, "recall": 0.78, "f1": 0.79},
    {"method": "GSC, 100% writers", "accuracy": 0.78, "precision": 0.81, "recall": 0.77, "f1": 0.79},
    {"method": "ResNet-18, 10% writers", "accuracy": 0.72, "precision": 0.70, "recall": 0.73, "f1": 0.72},
    {"method": "ViT, 10% writers", "accuracy": 0.65, "precision": 0.68, "recall": 0.64, "f1": 0.66},
    {"method": "GSC, 10% writers", "accuracy": 0.71, "precision": 0.69, "recall": 0.72, "f1": 0.69},
]
