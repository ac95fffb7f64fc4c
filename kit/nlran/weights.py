"""The committed NL-RAN tiny models: where they live, loading them, and what their build measured. Built by
:mod:`kit.nlran.assets` (``python -m kit.nlran.assets``); the layout study's units by :mod:`kit.nlran.study`."""

from __future__ import annotations

from pathlib import Path

import torch

from kit.core import load_weights, read_json

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "nlran_tiny"
REBUILD = "python -m kit.nlran.assets"


STUDY_REBUILD = "python -m kit.nlran.study"


def load_committed(name: str = "nlran", folder: str | Path | None = None, layout: str = "texture") -> torch.nn.Module:
    """Return committed model ``name`` ("nlran", "nlran_no_nl", "resnet18", "resnet18_cbam") in eval mode, float32,
    trained on phantoms of ``layout``: "texture" (the series' models) or "arrangement" (NL-RAN only: seed 0 of the
    layout study, ``<name>_arrangement.safetensors``).

    Raises FileNotFoundError naming the file and the command that rebuilds it when it is missing.
    """
    from kit.nlran.baselines import MODEL_NAMES, build_model
    from kit.nlran.config import PHANTOM_LAYOUTS

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; committed models: {MODEL_NAMES}")
    if layout not in PHANTOM_LAYOUTS:
        raise ValueError(f"layout must be one of {PHANTOM_LAYOUTS}, got {layout!r}")
    file, rebuild = (f"{name}.safetensors", REBUILD) if layout == "texture" else (f"{name}_{layout}.safetensors",
                                                                                    STUDY_REBUILD)
    return load_weights(build_model(name, preset="tiny"), Path(folder or ASSET_DIR) / file, rebuild)


def committed_results(folder: str | Path | None = None) -> dict:
    """Return ``results.json`` of the committed models (what :func:`main` measured when it built them)."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", REBUILD)
