"""Handwriting verification (arXiv:2407.21788): VLM examiners vs a Siamese ResNet-18, offline and on CEDAR AND."""

from kit.hv_vlm.assets import committed_results, load_pretrained
from kit.hv_vlm.config import HVConfig, preset
from kit.hv_vlm.examiner import (
    DECISIONS,
    ChatBackend,
    ScriptedBackend,
    Verdict,
    decision_metrics,
    parse_decision,
    verify,
    verify_pairs,
)
from kit.hv_vlm.experiment import evaluate, load_data, predict_pairs, train
from kit.hv_vlm.faithfulness import claimed_attributes, faithfulness, faithfulness_summary, true_differences
from kit.hv_vlm.features import measure
from kit.hv_vlm.metrics import PAPER_TABLE, pair_metrics
from kit.hv_vlm.model import SiameseVerifier, same_writer_probability
from kit.hv_vlm.offline_examiner import OfflineExaminer
from kit.hv_vlm.openai_backend import OpenAIBackend
from kit.hv_vlm.paligemma import PaliGemmaBackend, lora_finetune, side_by_side
from kit.hv_vlm.report import fit_offline_examiner, format_table, table_rows
from kit.verification.baselines import BASELINES, fit_baseline, hog_features, raw_features

__all__ = [
    "BASELINES", "DECISIONS", "PAPER_TABLE", "ChatBackend", "HVConfig", "OfflineExaminer", "OpenAIBackend",
    "PaliGemmaBackend", "ScriptedBackend", "SiameseVerifier", "Verdict", "claimed_attributes", "committed_results",
    "decision_metrics", "evaluate", "faithfulness", "faithfulness_summary", "fit_baseline", "fit_offline_examiner",
    "format_table", "hog_features", "load_data", "load_pretrained", "lora_finetune", "measure", "pair_metrics",
    "parse_decision", "predict_pairs", "preset", "raw_features", "same_writer_probability", "side_by_side",
    "table_rows", "train", "true_differences", "verify", "verify_pairs",
]
