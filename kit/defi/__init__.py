"""DeFI-Net (arXiv:2408.02191): dense feature interaction for inpainting localisation, offline and on real data."""

from kit.defi.assets import committed_results, load_pretrained
from kit.defi.baselines import FLOORS, laplacian_energy_map, noise_variance_map
from kit.defi.config import DeFIConfig, preset
from kit.defi.experiment import evaluate, load_data, predict, predict_maps, table_rows, train
from kit.defi.losses import defi_loss, edge_target, structure_loss, weighted_bce, weighted_iou
from kit.defi.metrics import (
    official_scores,
    per_method,
    protocol_inflation,
    standard_scores,
    threshold_scores,
)
from kit.defi.model import DeFINet, count_parameters, load_hrnet_imagenet

__all__ = [
    "FLOORS", "DeFIConfig", "DeFINet", "committed_results", "count_parameters", "defi_loss", "edge_target",
    "evaluate", "laplacian_energy_map", "load_data", "load_hrnet_imagenet", "load_pretrained", "noise_variance_map",
    "official_scores", "per_method", "predict", "predict_maps", "preset", "protocol_inflation", "standard_scores",
    "structure_loss", "table_rows", "threshold_scores", "train", "weighted_bce", "weighted_iou",
]
