"""Markdown tables of the NL-RAN series: the model comparison and the heat-map scores (numbers from
:mod:`kit.nlran.experiment`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kit.nlran.metrics import REPORT_KEYS

COMPARISON_KEYS = tuple(k for k in REPORT_KEYS if k != "precision_weighted")  # the columns of the comparison table


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
    """Return a Markdown table of :func:`kit.nlran.scores.heatmap_comparison`: one row per map and scoring
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


def _pm(v: dict[str, float], digits: int = 3) -> str:
    return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" if v.get("n") else "–"


MODEL_TITLES = {"nlran": "NL-RAN tiny", "nlran_no_nl": "NL-RAN without non-local block",
                "resnet18_small": "MONAI 3D ResNet-18, same budget (widths 4-32)", "resnet18": "MONAI 3D ResNet-18",
                "resnet18_cbam": "3D ResNet-18 + CBAM"}


def study_markdown(summary: dict[str, Any]) -> str:
    """Markdown tables of :func:`kit.nlran.study.summarize`: classification by layout and model (mean ± std over
    seeds), NL-RAN minus its ablation per seed, the heat-map scores inside the lungs, and where NL-RAN's non-local
    attention from lesions goes."""
    cls = summary["classification"]
    n = max((r["auc_macro"]["n"] for rows in cls.values() for r in rows.values()), default=0)
    out = [f"**Classification ({n} seeds, mean ± std; each seed its own phantoms and initialisation)**", "",
           "| layout | model | test macro-AUC | NCP-vs-CP AUC | accuracy | best epoch | epochs run |",
           "|---|---|---|---|---|---|---|"]
    for lay, rows in cls.items():
        for m, r in rows.items():
            out.append(f"| {lay} | {MODEL_TITLES.get(m, m)} | {_pm(r['auc_macro'])} | {_pm(r['ncp_cp_auc'])} | "
                       f"{_pm(r['accuracy'])} | {_pm(r['best_epoch'], 1)} | {_pm(r['epochs_run'], 1)} |")
    out += ["", "**NL-RAN minus its ablation, per seed**", "",
            "| layout | macro-AUC differences | NCP-vs-CP AUC differences | verdict (mean vs its standard error) |",
            "|---|---|---|---|"]
    for lay, d in summary["nl_minus_ablation"].items():
        cells = [", ".join(f"{v:+.3f}" for v in d[k]["per_seed"]) + f" (mean {d[k]['mean']:+.3f} ± {d[k]['stderr']:.3f})"
                 for k in ("auc_macro", "ncp_cp_auc")]
        out.append(f"| {lay} | {cells[0]} | {cells[1]} | {d['verdict']} |")
    out += ["", "**Heat maps inside the lungs** (mean over seeds; 30 test volumes with lesions each)", "",
            "| layout | map | pointing game | top-10 % share in lesion | AUROC |", "|---|---|---|---|---|"]
    for lay, heat in summary["heatmaps"].items():
        for name, v in sorted(heat.get("lung", {}).items()):
            model, _, rest = name.partition(" ")
            out.append(f"| {lay} | {MODEL_TITLES.get(model, model)}: {rest} | {v['pointing']:.2f} | {v['top10']:.2f} | "
                       f"{v['auroc']:.3f} |")
    links = {lay: v for lay, v in summary["links"].items() if v}
    if links:
        out += ["", "**Where NL-RAN's non-local attention from lesion cells goes** (weight on lesion cells of the same "
                "image half / of the other half, each divided by what uniform attention would give)", "",
                "| layout | class | same lung | other lung |", "|---|---|---|---|"]
        for lay, v in links.items():
            for c, r in v.items():
                out.append(f"| {lay} | {c} | {_pm(r['same_ratio'], 2)} | {_pm(r['other_ratio'], 2)} |")
    return "\n".join(out)


def study_findings(summary: dict[str, Any]) -> list[str]:
    """Plain sentences that state what :func:`kit.nlran.study.summarize`'s numbers show, layout by layout: does the
    non-local block help over its ablation, how the same-budget ResNet does, whether any reading of the attention
    masks beats NL-RAN's CAM inside the lungs, and whether lesions attend to the other lung's lesions."""
    out = []
    for lay, rows in summary["classification"].items():
        d = summary["nl_minus_ablation"].get(lay)
        auc = {m: r["auc_macro"]["mean"] for m, r in rows.items()}
        if d:
            verb = {"helps": "helps", "hurts": "hurts",
                    "no clear difference": "makes no clear difference"}[d["verdict"]]
            out.append(f"{lay} layout: the non-local block {verb} (NL-RAN minus ablation, macro-AUC "
                       f"{d['auc_macro']['mean']:+.3f}, better on {d['auc_macro']['positive']} of {d['seeds']} seeds; "
                       f"NCP-vs-CP AUC {d['ncp_cp_auc']['mean']:+.3f}, better on {d['ncp_cp_auc']['positive']}).")
        if "resnet18_small" in auc and "nlran" in auc:
            rel = "above" if auc["resnet18_small"] > auc["nlran"] else "below"
            out.append(f"{lay} layout: the same-budget ResNet-18 reaches macro-AUC {auc['resnet18_small']:.3f}, "
                       f"{rel} NL-RAN's {auc['nlran']:.3f}.")
        gap = summary["am_vs_cam"].get(lay, {}).get("lung")
        if gap:
            best = "beats" if gap["pointing"] > 0 and gap["top10"] > 0 else "does not beat"
            out.append(f"{lay} layout: the best reading of the attention masks {best} NL-RAN's CAM inside the lungs "
                       f"(pointing game {gap['pointing']:+.2f}, top-10 % share {gap['top10']:+.2f}, AUROC "
                       f"{gap['auroc']:+.3f}).")
        ncp = summary["links"].get(lay, {}).get("NCP")
        if ncp and ncp["other_ratio"]["n"]:
            o, s = ncp["other_ratio"]["mean"], ncp["same_ratio"]["mean"]
            look = "favour" if o > 1 else "do not favour"
            out.append(f"{lay} layout: in COVID-like volumes, lesion cells {look} the other lung's lesions "
                       f"({o:.2f}x uniform; their own lung's lesions {s:.2f}x).")
    return out
