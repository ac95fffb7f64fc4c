"""Semantics-oriented face forgery detection (arXiv:2405.08487): a 12-node label graph with a HEX loss over its
1,544 legal label sets, Auto-lambda weighting its three levels, and the binary / multi-class baselines; offline on
procedural faces with graded semantic edits (kit.data.faces); on FFSC in its published layout with ``data_dir=``
(kit.data.ffsc), the authors' SO-Xception and SO-ViT-B as the "full" and "full_vit" presets."""

from kit.facesem.assets import committed_results, load_detector, save_detector, saved_modes
from kit.facesem.autolambda import AutoLambda
from kit.facesem.experiment import (
    PROTOCOLS,
    FaceConfig,
    evaluate,
    fake_scores,
    make_data,
    preset,
    test_sets,
    train,
)
from kit.facesem.explore import gradcam, lower_upper, node_view, protocol_matrix, strength_sweep
from kit.facesem.graph import NODES, graph_loss, hex_marginals, impossible_rate, legal_states, map_states
from kit.facesem.metrics import image_metrics, video_auc
from kit.facesem.models import MODES, build_detector

__all__ = [
    "MODES", "NODES", "PROTOCOLS", "AutoLambda", "FaceConfig", "build_detector", "committed_results", "evaluate",
    "fake_scores", "gradcam", "graph_loss", "hex_marginals", "image_metrics", "impossible_rate", "legal_states",
    "load_detector", "lower_upper", "make_data", "map_states", "node_view", "preset", "protocol_matrix",
    "save_detector", "saved_modes", "strength_sweep", "test_sets", "train", "video_auc",
]
