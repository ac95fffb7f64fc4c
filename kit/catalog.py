"""The series catalogue: which paper each series implements, where its notebooks are, and how far it is built.

Status is read from the code and the notebook folder, never typed by hand: a series is "ready" when its package
imports and has an ``experiment`` module and all three notebooks exist, "in progress" when some of that
exists, and "planned" otherwise; a package that declares ``__status__`` (a bar it does not meet yet) shows that.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_STEMS = ("01_train", "02_evaluate", "03_explore")


@dataclass(frozen=True)
class Series:
    """One paper series: its package/folder name, title and arXiv id."""

    key: str
    title: str
    arxiv: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else ""


SERIES: tuple[Series, ...] = (
    Series("trajectory", "ODE diffusion-sampling trajectory regularity and the GITS time schedule", "2405.11326"),
    Series("rld", "Refined Logit Distillation", "2408.07703"),
    Series("t2i", "Text-to-image core (for multiedits and dtiil): ShapesWorld and an offline text-conditioned model", ""),
    Series("nlran", "3D residual attention non-local network for chest CT classification", "2408.04300"),
    Series("defi", "DeFI-Net: inpainting detection", "2408.02191"),
    Series("hv_vlm", "Handwriting verification with VLMs vs ResNet-18", "2407.21788"),
    Series("sslhv", "Self-supervised handwriting verification", "2405.18320"),
    Series("multiedits", "Simultaneous multi-aspect diffusion editing and PIE-Bench++", "2406.00985"),
    Series("dtiil", "Diffusion-based text-image inconsistency localization", "2404.18033"),
    Series("facesem", "Semantics-oriented face forgery detection with hierarchical labels", "2405.08487"),
    Series("cmdfd", "Cross-modal deepfake detection by correlation distillation", "2404.19171"),
)


def get_series(key: str) -> Series:
    """Return the :class:`Series` named ``key``; unknown names raise ``ValueError`` listing the valid ones."""
    for s in SERIES:
        if s.key == key:
            return s
    raise ValueError(f"unknown series {key!r}; valid series: {[s.key for s in SERIES]}")


def repo_root() -> Path:
    """Return the folder holding ``notebooks/``: ``KIT_ROOT``, else the working directory or a parent, else the
    folder above the installed package (an editable install)."""
    env = os.environ.get("KIT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "notebooks" / "00_start_here.ipynb").is_file():
            return p
    return Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    """Return the ``notebooks/`` folder; ``FileNotFoundError`` if it cannot be found."""
    path = repo_root() / "notebooks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"no notebooks/ folder under {path.parent}; run from a clone of the repository or set KIT_ROOT")
    return path


def series_notebooks(key: str) -> list[Path]:
    """Return the series' notebooks that exist, in order (01_train, 02_evaluate, 03_explore, then others)."""
    get_series(key)
    folder = repo_root() / "notebooks" / key
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def series_status(key: str) -> str:
    """Return "ready", "in progress" or "planned" for the series, from what exists in code and notebooks."""
    get_series(key)
    has_pkg = importlib.util.find_spec(f"kit.{key}") is not None
    has_exp = has_pkg and importlib.util.find_spec(f"kit.{key}.experiment") is not None
    stems = {p.stem for p in series_notebooks(key)}
    declared = getattr(importlib.import_module(f"kit.{key}"), "__status__", None) if has_pkg else None
    if declared:  # a series that exists but misses one of its bars says so in its package
        return str(declared)
    if has_exp and all(s in stems for s in NOTEBOOK_STEMS):
        return "ready"
    if has_pkg or stems:
        return "in progress"
    return "planned"


def series_table() -> list[dict[str, str]]:
    """Return one row per series: key, title, arXiv link, status and the notebooks present."""
    rows = []
    for s in SERIES:
        rows.append({
            "series": s.key,
            "paper": s.title,
            "arxiv": s.url,
            "status": series_status(s.key),
            "notebooks": ", ".join(p.stem for p in series_notebooks(s.key)),
        })
    return rows


def series_markdown(link_prefix: str = "") -> str:
    """Return the series table as Markdown, linking each series' notebooks (paths relative to ``link_prefix``)."""
    lines = ["| series | paper | status | notebooks |", "|---|---|---|---|"]
    for row, s in zip(series_table(), SERIES):
        paper = f"[{s.title}]({s.url})" if s.url else s.title
        nbs = [f"[{p.stem}]({link_prefix}{s.key}/{p.name})" for p in series_notebooks(s.key)]
        readme = repo_root() / "notebooks" / s.key / "README.md"
        if readme.is_file():
            nbs.insert(0, f"[README]({link_prefix}{s.key}/README.md)")
        lines.append(f"| `{s.key}` | {paper} | {row['status']} | {', '.join(nbs) or '—'} |")
    return "\n".join(lines)
