"""Checkpoints in safetensors, written atomically, with model + optimizer + scheduler + RNG + step.

Nothing here unpickles arbitrary objects: ``.safetensors`` files are read with safetensors and the classic
``.pt``/``.pth``/``.bin``/``.ckpt`` files only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from kit.core.seed import restore_rng_state_tensors, rng_state_tensors

_STEP_RE = re.compile(r"^step_(\d+)\.safetensors$")
_TORCH_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".tar"}


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe or does not match the model."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``tensors`` (flat name -> tensor, or the weights-only object of a torch file) and
    ``metadata`` (JSON-decoded)."""

    tensors: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> Path:
    """Return ``path`` after writing ``tensors`` and JSON ``metadata`` to it as safetensors, atomically.

    The file is written next to its destination under a temporary name, fsynced, then renamed, so a crash at
    any moment leaves either the old file or the complete new one, never a half-written checkpoint.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoints are written as .safetensors, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {}
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"checkpoint entry {k!r} must be a tensor, got {type(v).__name__}")
        clean[k] = v.detach().to("cpu").contiguous().clone()
    meta = {"kit": json.dumps(metadata or {})}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_weights(model: torch.nn.Module, path: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Return ``path`` after writing ``model``'s state dict to it (floating tensors as ``dtype``), atomically.

    The format of the small models a series commits under ``kit/assets`` (float16 keeps them small).
    """
    sd = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()) for k, v in model.state_dict().items()}
    return save_checkpoint(path, sd)


def save_model(model: torch.nn.Module, arch: dict[str, Any], folder: str | os.PathLike,
               dtype: torch.dtype = torch.float16) -> Path:
    """Return the weights' path after writing ``model`` (``folder/model.safetensors``, floats as ``dtype``) and the
    architecture ``arch`` it is rebuilt from (``folder/config.json``), each to a temp file then renamed."""
    folder = Path(folder)
    path = save_weights(model, folder / "model.safetensors", dtype)
    write_json(folder / "config.json", arch)
    return path


def _numpy_json(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, obj: Any, default: Any = _numpy_json) -> Path:
    """Return ``path`` after writing ``obj`` as indented JSON to a temp file beside it, then renaming it
    (``default``: json's converter for other objects; numpy scalars and arrays by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=default))
    tmp.replace(path)
    return path


def load_weights(model: torch.nn.Module, path: str | os.PathLike, rebuild: str = "") -> torch.nn.Module:
    r"""Return ``model`` with the weights of ``path`` loaded as float32 (``save_weights``' files), in eval mode.

    A missing file raises FileNotFoundError naming it and, when given, the command that ``rebuild``\s it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path}" + (f"; rebuild them with `{rebuild}`" if rebuild else ""))
    sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    model.load_state_dict(sd)
    return model.eval()


def read_json(path: str | os.PathLike, rebuild: str = "") -> Any:
    """Return the JSON document at ``path``; a missing file raises FileNotFoundError naming the ``rebuild`` command."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {path}" + (f"; rebuild it with `{rebuild}`" if rebuild else ""))
    return json.loads(path.read_text())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Return the :class:`Checkpoint` stored at ``path`` (safetensors, or a weights-only torch file).

    Raises ``FileNotFoundError`` when the file is missing and :class:`CheckpointError` when it is corrupt or
    would need arbitrary code to unpickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            tensors = load_file(str(path), device=str(map_location))
            with safe_open(str(path), framework="pt") as f:
                raw = (f.metadata() or {}).get("kit", "{}")
            metadata = json.loads(raw)
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path} is corrupt or not a safetensors file: {e}") from e
        return Checkpoint(tensors=tensors, metadata=metadata, path=path)
    if path.suffix in _TORCH_SUFFIXES:
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"refusing to load {path}: it holds Python objects that need arbitrary code to unpickle "
                f"(torch.load with weights_only=True failed: {str(e).splitlines()[0]}). Re-save its state_dict "
                "as .safetensors or as a plain tensor dict."
            ) from e
        except (RuntimeError, EOFError, OSError) as e:
            raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {e}") from e
        if not isinstance(obj, dict):
            raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors")
        return Checkpoint(tensors=obj, metadata={}, path=path)
    raise CheckpointError(
        f"unknown checkpoint format {path.suffix!r} for {path}; expected .safetensors or one of {sorted(_TORCH_SUFFIXES)}"
    )


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Return the ``step_*.safetensors`` file with the highest step in ``directory``, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_RE.match(p.name))]
    return max(found)[1] if found else None


def prune_checkpoints(directory: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest ``step_*.safetensors`` files in ``directory``."""
    if keep_last < 1:
        return
    found = sorted((int(m.group(1)), p) for p in Path(directory).iterdir() if (m := _STEP_RE.match(p.name)))
    for _, p in found[:-keep_last]:
        p.unlink(missing_ok=True)


# -- nested state (optimizer / scheduler) <-> flat tensors + JSON -------------------------------------------------


def _encode(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        items = [[_key(k), _encode(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        enc = [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": enc} if isinstance(obj, tuple) else enc
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"cannot store {prefix!r} of type {type(obj).__name__} in a checkpoint")


def _key(k: Any) -> Any:
    if isinstance(k, (int, str)):
        return k
    raise CheckpointError(f"state dict key {k!r} is neither int nor str")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def flatten_state(state: Any, prefix: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Return ``(tensors, skeleton)``: the tensors of a nested state dict under ``prefix`` and a JSON skeleton."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, prefix, tensors)
    return tensors, skeleton


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Return the nested state rebuilt from :func:`flatten_state`'s output."""
    return _decode(skeleton, tensors)


# -- training state --------------------------------------------------------------------------------------------


def save_training_state(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    rng: bool = True,
) -> Path:
    """Return ``path`` after saving model weights, optimizer, scheduler, RNG states and ``step`` (atomic).

    ``extra`` is JSON metadata; ``extra_tensors`` (e.g. the best epoch's weights) are stored beside the model."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": v for k, v in (extra_tensors or {}).items()})
    meta: dict[str, Any] = {"step": int(step), "extra": extra or {}}
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            t, skel = flatten_state(obj.state_dict(), name)
            tensors.update(t)
            meta[name] = skel
    if rng:
        tensors.update(rng_state_tensors())
    return save_checkpoint(path, tensors, meta)


def load_training_state(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Return the checkpoint's ``step``, ``extra`` metadata and ``extra_tensors`` after loading it into
    model/optimizer/scheduler."""
    ckpt = load_checkpoint(path)
    weights = {k[len("model."):]: v for k, v in ckpt.tensors.items() if k.startswith("model.")}
    if not weights:
        raise CheckpointError(f"checkpoint {path} holds no model weights (no 'model.*' entries)")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not match the model: {e}") from e
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if name not in ckpt.metadata:
            raise CheckpointError(f"checkpoint {path} has no {name} state to resume from")
        obj.load_state_dict(unflatten_state(ckpt.tensors, ckpt.metadata[name]))
    if restore_rng:
        restore_rng_state_tensors({k: v for k, v in ckpt.tensors.items() if k.startswith("rng.")})
    return {"step": int(ckpt.metadata.get("step", 0)), "extra": ckpt.metadata.get("extra", {}),
            "extra_tensors": {k[len("extra."):]: v for k, v in ckpt.tensors.items() if k.startswith("extra.")}}
