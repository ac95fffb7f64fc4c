"""Semantics-oriented face forgery detection (arXiv:2405.08487): a 12-node label graph with a HEX loss over its
1,544 legal label sets, Auto-lambda weighting its three levels, and the binary / multi-class baselines; offline on
procedural faces with graded semantic edits (kit.data.faces), FFSC's published lists with kit.data.ffsc."""

__status__ = ("in progress: the offline series runs (table, widgets, notebooks); the FFSC training path of the full "
              "preset is not wired")

from kit.facesem.assets import committed_results, load_detector
from kit.facesem.autolambda import AutoLambda
from kit.facesem.experiment import PROTOCOLS, FaceConfig, evaluate, fake_scores, make_data, preset, train
from kit.facesem.explore import gradcam, node_view, protocol_matrix, strength_sweep
from kit.facesem.graph import NODES, graph_loss, hex_marginals, impossible_rate, legal_states, map_states
from kit.facesem.metrics import image_metrics, video_auc
from kit.facesem.models import MODES, build_detector

__all__ = [
    "MODES", "NODES", "PROTOCOLS", "AutoLambda", "FaceConfig", "build_detector", "committed_results", "evaluate",
    "fake_scores", "gradcam", "graph_loss", "hex_marginals", "image_metrics", "impossible_rate", "legal_states",
    "load_detector", "make_data", "map_states", "node_view", "preset", "protocol_matrix", "strength_sweep", "train",
    "video_auc",
]
