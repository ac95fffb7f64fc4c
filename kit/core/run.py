"""``RunDir``: everything one run writes (metrics.json, figures, checkpoints) lives under one folder."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

DisplayHook = Callable[[str, Any, dict], None]
_display_hook: DisplayHook | None = None


def set_display_hook(hook: DisplayHook | None) -> None:
    """Install ``hook(name, value, all_metrics)``, called by every :meth:`RunDir.record` (widgets sets one)."""
    global _display_hook
    _display_hook = hook


def is_main_process() -> bool:
    """Return True unless this is a non-zero rank of a distributed launch (``RANK`` set by accelerate/torchrun)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def to_jsonable(value: Any) -> Any:
    """Return ``value`` with tensors, numpy scalars/arrays, tuples and paths turned into JSON types.

    Non-finite floats become the strings ``"nan"``, ``"inf"`` or ``"-inf"`` so metrics.json stays valid JSON.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return to_jsonable(value.item() if value.ndim == 0 else value.tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"cannot record a value of type {type(value).__name__}; use numbers, strings, lists or dicts")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class RunDir:
    """A run's output folder: ``metrics.json``, ``figures/`` and ``checkpoints/``.

    Only the main process of a distributed launch writes files; other ranks keep their records in memory.
    """

    def __init__(self, output_dir: str | os.PathLike, *, is_main: bool | None = None):
        if output_dir is None or str(output_dir) == "":
            raise ValueError("output_dir must be a folder path, got an empty value")
        self.path = Path(output_dir).expanduser().resolve()
        self.is_main = is_main_process() if is_main is None else bool(is_main)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"output_dir {self.path} exists and is not a folder")
        if self.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
        self._metrics: dict[str, Any] = self._read_metrics()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics(self) -> dict[str, Any]:
        """Return a copy of everything recorded so far (including earlier runs into the same folder)."""
        return json.loads(json.dumps(self._metrics))

    def _read_metrics(self) -> dict[str, Any]:
        if not self.metrics_path.exists():
            return {}
        try:
            data = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.metrics_path} is not valid JSON ({e}); delete it or pick another output_dir") from e
        if not isinstance(data, dict):
            raise ValueError(f"{self.metrics_path} must hold a JSON object, found {type(data).__name__}")
        return data

    def record(self, name: str, value: Any) -> Any:
        """Return the JSON form of ``value`` after storing it under ``name`` in metrics.json (atomic rewrite)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"record name must be a non-empty string, got {name!r}")
        jsonable = to_jsonable(value)
        self._metrics[name] = jsonable
        if self.is_main:
            atomic_write_text(self.metrics_path, json.dumps(self._metrics, indent=2, sort_keys=False))
        if _display_hook is not None:
            _display_hook(name, jsonable, self.metrics)
        return jsonable

    def save_figure(self, name: str, fig: Any) -> Path | None:
        """Return the path written for ``fig`` under ``figures/``: plotly -> .html, matplotlib/PIL -> .png.

        Plotly figures are written as standalone HTML that loads plotly.js from its CDN (a few kB instead of 3 MB).
        """
        if not name or "/" in name or "\\" in name:
            raise ValueError(f"figure name must be a plain file stem without slashes, got {name!r}")
        stem = Path(name).stem if Path(name).suffix in {".png", ".html"} else name
        if not self.is_main:
            return None
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        kinds = {c.__module__.split(".")[0] for c in type(fig).__mro__}  # subclasses (widgets.viz.FigureWidget) too
        kind = "plotly" if "plotly" in kinds else "PIL" if "PIL" in kinds else type(fig).__module__.split(".")[0]
        if hasattr(fig, "to_html") and kind == "plotly":
            path = self.figures_dir / f"{stem}.html"
            atomic_write_text(path, fig.to_html(include_plotlyjs="cdn", full_html=True))
            return path
        if hasattr(fig, "savefig"):
            path = self.figures_dir / f"{stem}.png"
            tmp = path.with_name(f".{path.name}.tmp.png")
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
            os.replace(tmp, path)
            return path
        if hasattr(fig, "save") and kind == "PIL":
            path = self.figures_dir / f"{stem}.png"
            tmp = path.with_name(f".{path.name}.tmp.png")
            fig.save(tmp, format="PNG")
            os.replace(tmp, path)
            return path
        raise ValueError(f"save_figure expects a plotly, matplotlib or PIL figure, got {type(fig).__name__}")

    def sub(self, name: str) -> RunDir:
        """Return a RunDir for a part of this run (its own metrics.json and checkpoints) in ``<path>/<name>``."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"sub-run name must be a plain folder name, got {name!r}")
        return RunDir(self.path / name, is_main=self.is_main)

    def checkpoint_path(self, step: int) -> Path:
        """Return the path of the checkpoint for training step ``step`` (``checkpoints/step_00000100.safetensors``)."""
        if int(step) < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self.checkpoints_dir / f"step_{int(step):08d}.safetensors"

    def latest_checkpoint(self) -> Path | None:
        """Return the newest complete checkpoint in this run, or None (temporary files are ignored)."""
        from kit.core.checkpoint import latest_checkpoint

        return latest_checkpoint(self.checkpoints_dir)
