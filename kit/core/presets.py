"""Presets: a config is a frozen dataclass; ``preset(cls, table, name, **overrides)`` builds one."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def preset(cls: type[T], table: dict[str, dict[str, Any]], name: str = "tiny", **overrides: Any) -> T:
    """Return ``cls(**table[name], **overrides)``; unknown preset names or keys raise ``ValueError``.

    ``table`` maps preset names ("tiny" for CI on a CPU, "full" for the paper's setting, ...) to the fields they
    change from the dataclass defaults. Overrides whose value is ``None`` are ignored, so a notebook parameter
    left at ``None`` means "the preset's value".
    """
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{cls!r} is not a dataclass")
    if name not in table:
        raise ValueError(f"unknown preset {name!r} for {cls.__name__}; valid presets: {sorted(table)}")
    fields = {f.name for f in dataclasses.fields(cls)}
    values = dict(table[name])
    bad = sorted(set(values) - fields)
    if bad:
        raise ValueError(f"preset {name!r} sets unknown {cls.__name__} fields {bad}")
    unknown = sorted(k for k in overrides if k not in fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid fields: {sorted(fields)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def config_dict(cfg: Any) -> dict[str, Any]:
    """Return the dataclass ``cfg`` as a plain dict (for metrics.json)."""
    return dataclasses.asdict(cfg)
