"""Shared core: device, seeding, run folders, checkpoints, presets and the one training loop."""

from kit.core.checkpoint import (
    Checkpoint,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_training_state,
    load_weights,
    read_json,
    save_checkpoint,
    save_model,
    save_training_state,
    save_weights,
    write_json,
)
from kit.core.device import eval_mode, pick_device, set_threads
from kit.core.presets import config_dict, preset
from kit.core.run import RunDir, set_display_hook
from kit.core.seed import seed_everything
from kit.core.tables import markdown_table
from kit.core.train import FitResult, fit

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "FitResult",
    "RunDir",
    "config_dict",
    "eval_mode",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_training_state",
    "load_weights",
    "markdown_table",
    "pick_device",
    "preset",
    "read_json",
    "save_checkpoint",
    "save_model",
    "save_training_state",
    "save_weights",
    "seed_everything",
    "write_json",
    "set_display_hook",
    "set_threads",
]
