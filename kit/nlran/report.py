"""Markdown tables of the NL-RAN series: the model comparison and the heat-map scores (numbers from
:mod:`kit.nlran.experiment`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COMPARISON_KEYS = ("auc_macro", "auc_micro", "accuracy", "precision_macro", "f1_macro", "f1_weighted")


def comparison_markdown(rows: Sequence[dict[str, Any]], title: str = "") -> str:
    """Return a Markdown table of :func:`kit.nlran.experiment.report_rows` / ``comparison_rows``: the test
    numbers to 3 decimals, then parameters and training seconds (wall, and CPU when recorded)."""
    cpu = any("train_cpu_seconds" in r for r in rows)
    head = ["model", *COMPARISON_KEYS, "params", "train s"] + (["train CPU s"] if cpu else [])
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        params = r.get("params")
        cells = [str(r["model"]), *(f"{r[k]:.3f}" for k in COMPARISON_KEYS),
                 "" if params is None else f"{params:,}", str(r.get("train_seconds", ""))]
        lines.append("| " + " | ".join(cells + ([str(r.get("train_cpu_seconds", ""))] if cpu else [])) + " |")
    return "\n".join(lines)


def heatmap_markdown(comparison: dict[str, Any]) -> str:
    """Return a Markdown table of :func:`kit.nlran.experiment.heatmap_comparison`: one row per map and scoring
    region (pointing game, top-10 % share inside lesions, AUROC), headed by the number of volumes and the lesion
    share."""
    first = next(iter(comparison["volume"].values()))
    lines = [f"**{first['volumes']} test volumes with lesions** (lesions fill {100 * comparison['lesion_share']:.1f} % "
             "of a volume: the top-10 % share of a map that ignores lesions)", "",
             "| scored over | map | pointing game | top-10 % share in lesion | AUROC |", "|---|---|---|---|---|"]
    for within in ("volume", "lung"):
        for name, v in comparison[within].items():
            label = name if name.startswith("resnet") else f"NL-RAN {name}"
            lines.append(f"| {within} | {label} | {v['pointing']:.2f} | {v['top10']:.2f} | {v['auroc']:.3f} |")
    return "\n".join(lines)
