"""NL-RAN series: an explainable 3D residual attention non-local network for chest CT classification (Yang et al.,
arXiv:2408.04300): COVID-19 (NCP) vs common pneumonia (CP) vs normal, with the attention masks as heat maps.

The public names below are importable from ``kit.nlran`` directly (``from kit.nlran import NLRAN3d, preset``); each
is loaded from its submodule on first use, so ``import kit.nlran.phantom`` stays light (the baselines and loaders
import MONAI, which takes seconds).

Submodules: ``config`` (presets), ``blocks`` (residual unit, soft-mask attention module, non-local block),
``models`` (NLRAN3d and its presets, precise BatchNorm), ``baselines`` (MONAI 3D ResNet-18 at two widths,
ResNet + CBAM, ``build_model``), ``phantom`` (the offline lung phantoms: specs, sampling, rendering), ``data``
(``PhantomDataset``, the CT window, CC-CCII and NIfTI datasets), ``scans`` (reading real scans from disk),
``explain`` (attention masks, CAM, Grad-CAM), ``occlusion``, ``scores`` (pointing game, top-10 % share, AUROC and
the scoring of every map over phantoms), ``attention`` (the non-local block's weights and where lesions look),
``metrics`` (AUC / precision / F1 and the paper's numbers), ``explore`` (slices, the lesion painter, ROC data),
``experiment`` (train, evaluate, compare), ``report`` (Markdown tables), ``weights`` (the committed models),
``assets`` (their build) and ``study`` (the layout study: texture vs arrangement phantoms, 3 seeds).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "NLRANConfig": "config", "preset": "config", "MODELS": "config", "PHANTOM_LAYOUTS": "config",
    "NLRAN3d": "models", "nlran3d": "models", "recalibrate_batchnorm": "models", "count_parameters": "models",
    "build_model": "baselines", "resnet18_3d": "baselines",
    "CLASSES": "phantom", "sample_spec": "phantom", "render": "phantom", "make_phantom": "phantom",
    "PhantomDataset": "data", "window": "data", "CCCIIDataset": "data", "NiftiDataset": "data",
    "heatmaps": "explain", "attention_heatmaps": "explain", "cam": "explain", "grad_cam": "explain",
    "occlusion_sensitivity": "occlusion",
    "score_heatmaps": "scores", "explanation_scores": "scores", "heatmap_comparison": "scores",
    "nonlocal_attention": "attention", "lesion_affinity": "attention", "lesion_links": "attention",
    "classification_report": "metrics", "PAPER": "metrics",
    "Painter": "explore",
    "load_data": "experiment", "train_model": "experiment", "evaluate": "experiment", "compare": "experiment",
    "train": "experiment",
    "load_committed": "weights", "committed_results": "weights",
    "committed_study": "study", "summarize": "study",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"kit.nlran.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kit.nlran' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
