"""Shared core: device, seeding, run folders, checkpoints, presets, the one training loop and resumable asset
builds."""

from kit.core.build import UnitCache, build_parser, default_work, parse_build_args, rounded_history
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
    "UnitCache",
    "build_parser",
    "config_dict",
    "default_work",
    "eval_mode",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_training_state",
    "load_weights",
    "markdown_table",
    "parse_build_args",
    "pick_device",
    "preset",
    "read_json",
    "rounded_history",
    "save_checkpoint",
    "save_model",
    "save_training_state",
    "save_weights",
    "seed_everything",
    "write_json",
    "set_display_hook",
    "set_threads",
]
