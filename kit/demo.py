"""``make demo``: every notebook with its defaults, and the page a newcomer reads, ``runs/<date>/index.html``.

The page has, per series, one sentence with the measured effect (read from the notebooks' ``metrics.json``), a
thumbnail of each notebook's key figure, time and the kernel's peak memory per notebook, links to the executed
notebooks, and the full metrics folded away.
"""

from __future__ import annotations

import html
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.catalog import SERIES, notebooks_dir, series_notebooks
from kit.runner import default_runs_root, execute_notebook, notebook_to_html
from kit.thumbnails import figure_thumbnail

# the figure (a name given to RunDir.save_figure) each notebook's thumbnail shows; otherwise its first figure
KEY_FIGURES = {
    "00_start_here": "digits_curve",
    "trajectory/01_train": "gap_digits",
    "trajectory/02_evaluate": "error_vs_nfe",
    "trajectory/03_explore": "projection_digits",
    "rld/01_train": "students_test_accuracy",
    "rld/02_evaluate": "teacher_error_sweep",
    "rld/03_explore": "refinery_wrong_teacher",
    "t2i/01_train": "loss",
    "t2i/03_explore": "prompt_maps",
    "nlran/01_train": "training",
    "nlran/02_evaluate": "roc_nlran",
    "nlran/03_explore": "scrubber",
    "multiedits/01_train": "grouping",
    "multiedits/02_evaluate": "accuracy_vs_aspects",
    "multiedits/03_explore": "branches",
    "dtiil/01_train": "pairs",
    "dtiil/02_evaluate": "roc",
    "dtiil/03_explore": "region",
    "defi/01_train": "training",
    "defi/02_evaluate": "inflation",
    "defi/03_explore": "inpaint_yourself",
    "hv_vlm/01_train": "training_100",
    "hv_vlm/02_evaluate": "dashboard",
    "hv_vlm/03_explore": "noise_sweep",
    "sslhv/01_train": "loss_terms",
    "sslhv/02_evaluate": "label_efficiency",
    "sslhv/03_explore": "embedding_map",
    "facesem/01_train": "training",
    "facesem/02_evaluate": "protocols",
    "facesem/03_explore": "threshold",
    "cmdfd/01_train": "training",
    "cmdfd/02_evaluate": "ablation",
    "cmdfd/03_explore": "correlation",
}


@dataclass
class DemoEntry:
    """One notebook of the demo: where it ran, how long, its kernel's peak memory, whether it failed, what it
    recorded."""

    name: str
    notebook: Path
    output_dir: Path
    seconds: float = 0.0
    peak_mb: float | None = None
    error: str | None = None
    html: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    thumbnail: Path | None = None

    @property
    def series(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else ""


def demo_notebooks() -> list[tuple[str, Path]]:
    """Return (label, path) for 00_start_here and every series notebook that exists, in catalogue order."""
    out = [("00_start_here", notebooks_dir() / "00_start_here.ipynb")]
    for s in SERIES:
        out += [(f"{s.key}/{p.stem}", p) for p in series_notebooks(s.key)]
    return out


def run_demo(root: str | os.PathLike | None = None, only: list[str] | None = None) -> tuple[Path, list[DemoEntry]]:
    """Return (index.html path, entries) after running every notebook with its defaults into ``root``.

    A failing notebook is recorded with its error and the others still run.
    """
    root = Path(root) if root else default_runs_root()
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for label, nb in demo_notebooks():
        if only and not any(label.startswith(o) for o in only):
            continue
        entry = DemoEntry(label, nb, root / label)
        print(f"[kit demo] running {label} ...", flush=True)
        t0 = time.perf_counter()
        executed = entry.output_dir / nb.name
        try:
            done = execute_notebook(nb, {}, entry.output_dir)
            executed, entry.peak_mb = done.path, done.peak_mb
        except Exception as e:  # recorded in index.html and in the exit status, never hidden
            entry.error = f"{type(e).__name__}: {e}"
            if not str(e):
                entry.error += "\n" + traceback.format_exc(limit=3)
        entry.seconds = time.perf_counter() - t0
        if executed.is_file():
            try:
                entry.html = notebook_to_html(executed)
            except Exception as e:
                entry.error = (entry.error or "") + f"\nHTML rendering failed: {e}"
        collect_outputs(entry)
        status = "FAILED" if entry.error else "ok"
        peak = f", kernel peak {entry.peak_mb:.0f} MB" if entry.peak_mb else ""
        print(f"[kit demo] {label}: {status} in {entry.seconds:.1f} s{peak}", flush=True)
        entries.append(entry)
    index = write_index(root, entries)
    return index, entries


def collect_outputs(entry: DemoEntry) -> None:
    """Read the entry's metrics.json and make the thumbnail of its key figure (PNG beside the figures)."""
    metrics_file = entry.output_dir / "metrics.json"
    if metrics_file.is_file():
        entry.metrics = json.loads(metrics_file.read_text())
    figures = entry.output_dir / "figures"
    if not figures.is_dir():
        return
    found = sorted((p for p in figures.iterdir() if p.suffix in (".html", ".png") and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime)
    key = KEY_FIGURES.get(entry.name)
    chosen = next((p for p in found if p.stem == key), found[0] if found else None)
    if chosen is None:
        return
    try:
        entry.thumbnail = figure_thumbnail(chosen, entry.output_dir / "thumbnail.png")
    except Exception as e:  # a thumbnail is a convenience: say why it is missing, never fail the demo for it
        print(f"[kit demo] {entry.name}: no thumbnail of {chosen.name} ({type(e).__name__}: {e})", flush=True)


# ---------------------------------------------------------------------------------------------- headlines

def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _trajectory(m: dict[str, dict]) -> str:
    c = m["02_evaluate"]["gits_claims"]
    rec = ", ".join(f"{k} {v['wins_vs_recommended']}/{v['cells']}" for k, v in c.items())
    best = ", ".join(f"{k} {v['wins_vs_best_fixed']}/{v['cells']}" for k, v in c.items())
    return (f"At NFE 5-6 on exact denoisers, GITS (the paper's setting) beats each solver's recommended time schedule "
            f"in most cells ({rec}) but the best fixed schedule of each cell in few ({best}).")


def _rld(m: dict[str, dict]) -> str:
    acc = {r["method"]: r for r in m["02_evaluate"]["accuracy"]}
    text = ", ".join(f"{k.upper()} {_pct(acc[k]['best_mean'])}" for k in ("rld", "kd", "dkd", "ce") if k in acc)
    seeds = acc["rld"]["seeds"]
    out = f"Best student test accuracy on digits, mean of {seeds} seeds: {text}."
    sweep = m["02_evaluate"].get("sweep_summary")
    if sweep:
        worst = max(sweep, key=lambda r: r["teacher_error"])
        out += (f" With a teacher wrong on {_pct(worst['teacher_error'])} of its training images, RLD leads DKD "
                f"by {100 * worst['rld_minus_dkd']:+.1f} and KD by {100 * worst['rld_minus_kd']:+.1f} points.")
    return out


def _t2i(m: dict[str, dict]) -> str:
    adh = m["02_evaluate"]["adherence"]
    one = adh["1"]
    out = (f"Oracle adherence of the committed ShapesWorld model on all {one['n']} single-object prompts: colour "
           f"{_pct(one['colour'])}, shape {_pct(one['shape'])}, everything right {_pct(one['all'])}")
    multi = [f"{n} objects {_pct(r['all'])} of {r['n']}" for n, r in adh.items() if n != "1" and r.get("all") is not None]
    return out + (f"; every attribute right with {', '.join(multi)}." if multi else ".")


def _nlran(m: dict[str, dict]) -> str:
    rows = m["02_evaluate"]["comparison"]
    main = next(r for r in rows if r["model"] == "nlran")
    others = ", ".join(f"{r['model']} {r['auc_macro']:.3f}" for r in rows if r is not main)
    paper = m["02_evaluate"].get("paper", {}).get("auc")
    out = (f"NL-RAN tiny, macro-AUC {main['auc_macro']:.3f} (accuracy {_pct(main['accuracy'])}) on held-out "
           f"phantoms; baselines: {others}.")
    return out + (f" The paper reports {paper:.4f} on CC-CCII." if paper else "")


def _multiedits(m: dict[str, dict]) -> str:
    claims = m["02_evaluate"]["parallel_vs_sequential"]
    parts = [f"{n} aspect{'s' if str(n) != '1' else ''} {c['parallel_aspacc']:.2f} vs {c['sequential_aspacc']:.2f} "
             f"in {c['time_ratio']:.2f}x the time" for n, c in claims.items()]
    return ("Oracle aspect accuracy of parallel multi-aspect editing against one edit after another (sequential), "
            f"ShapesWorld colour/shape edits: {'; '.join(parts)}.")


def _dtiil(m: dict[str, dict]) -> str:
    ev = m["02_evaluate"]
    claims, det = ev["claims"], ev["detection"]["all"]
    parts = [f"{s}-edited pairs IoU {claims[s]['iou']:.2f} ({claims[s]['minus_random']:+.2f} over a random mask of "
             f"the same area)" for s in ("text", "image") if s in claims]
    return (f"D-TIIL on ShapesWorld-TIIL: {'; '.join(parts)}; consistency-score detection AUC {det['auc']:.2f}; "
            f"{claims['consistent_fp_area']:.0%} of a consistent image flagged.")


def _defi(m: dict[str, dict]) -> str:
    ev = m["02_evaluate"]
    std, off, inf = ev["standard"], ev["official"], ev["inflation"]
    floor = max((d for d in std if d != "defi"), key=lambda d: std[d]["all"]["auc"])
    out = (f"DeFI-lite on crops of held-out photos, standard protocol: pixel AUC {std['defi']['all']['auc']:.2f}, F1 "
           f"{std['defi']['all']['f1']:.2f}, against the {floor} floor's {std[floor]['all']['auc']:.2f} / "
           f"{std[floor]['all']['f1']:.2f}")
    out += "".join(f"; {f} fills (unseen in training) AUC {std['defi'][f]['auc']:.2f}" for f in ev["unseen_fills"])
    out += f". The official protocol (min-max, macro F1) gives DeFI-lite F1 {off['defi']['all']['f1']:.2f}"
    if "random" in inf:
        out += f" and a map of uniform noise {inf['random']['minmax_macro_f1']:.2f}"
    return out + "."


def _hv_vlm(m: dict[str, dict]) -> str:
    rows = {r["method"]: r for r in m["02_evaluate"]["rows"]}
    sia, hog = rows["Siamese ResNet-18"], rows["HOG cosine"]
    out = (f"On synthetic writers never seen in training, the Siamese ResNet-18 verifies {sia['accuracy']:.2f} of the "
           f"pairs against HOG cosine's {hog['accuracy']:.2f}")
    ex = next((r for k, r in rows.items() if k.startswith("examiner")), None)
    if ex is not None:
        out += f"; the offline examiner {ex['accuracy']:.2f} (coverage {ex['coverage']:.2f})"
    f = m["02_evaluate"].get("faithfulness")
    if f:
        out += (f", and its explanations name truly different attributes with precision {f['precision']:.2f} "
                f"(chance {f['chance_precision']:.2f})")
    return out + "."


def _sslhv(m: dict[str, dict]) -> str:
    o = m["02_evaluate"]["ordering"]
    return (f"With 10 % of the writers labelled, the best frozen self-supervised encoder ({o['best']}) verifies "
            f"{o['best_accuracy']:.2f} of the pairs against {o['supervised_10']:.2f} for the supervised Siamese model "
            f"on the same labels and {o['supervised_100']:.2f} with every label (committed 3-seed table).")


def _facesem(m: dict[str, dict]) -> str:
    t = m["02_evaluate"]["table"]
    auc = dict(zip(t["modes"], t["auc"]))
    imp = dict(zip(m["02_evaluate"]["impossible"]["modes"], m["02_evaluate"]["impossible"]["rate"]))
    return (f"On procedural faces of unseen people the label-graph detector reaches AUC {auc['so'][0]:.2f} (binary "
            f"{auc['binary'][0]:.2f}, multi-class {auc['multiclass'][0]:.2f}), and its label sets break the graph "
            f"{imp['so'][0]:.0%} of the time against {imp['sigmoid'][0]:.0%} for independent sigmoids.")


def _cmdfd(m: dict[str, dict]) -> str:
    g = m["02_evaluate"]["unseen_gain"]
    lip, head = g["swap_shift/lipsync"], g["swap_shift/talking_head"]
    return (f"Trained on swapped and shifted audio only, the distilled detector (CE + CD + JC) scores unseen talking-head "
            f"fakes at AUC {head['ce_cd_jc']:.2f} against {head['ce']:.2f} for CE alone, and unseen lip-sync fakes at "
            f"{lip['ce_cd_jc']:.2f} against {lip['ce']:.2f} (committed 4-seed means on synthetic clips).")


def _start(m: dict[str, dict]) -> str:
    return (f"A small digits classifier trained by kit.core.fit reaches {_pct(m['00_start_here']['digits_test_accuracy'])}"
            " test accuracy.")


# series key -> (metrics by notebook stem) -> sentence; a KeyError means the notebook did not record it
HEADLINES: dict[str, Callable[[dict[str, dict]], str]] = {
    "": _start, "trajectory": _trajectory, "rld": _rld, "t2i": _t2i, "nlran": _nlran, "multiedits": _multiedits,
    "dtiil": _dtiil, "defi": _defi, "hv_vlm": _hv_vlm, "sslhv": _sslhv,
    "facesem": _facesem, "cmdfd": _cmdfd}


def headline(series: str, entries: list[DemoEntry]) -> str:
    """Return the series' one-sentence result from its entries' metrics, or a sentence saying what is missing."""
    metrics = {e.name.rsplit("/", 1)[-1]: e.metrics for e in entries}
    make = HEADLINES.get(series)
    if make is None:
        return "No headline defined for this series yet; see its notebooks."
    try:
        return make(metrics)
    except (KeyError, StopIteration, TypeError, ValueError) as e:
        return f"No headline: a notebook did not record what it needs ({type(e).__name__}: {e})."


# ---------------------------------------------------------------------------------------------- the page

def _scalars(metrics: dict[str, Any], limit: int = 40) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, v: Any) -> None:
        if len(out) >= limit:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (int, float)) or (isinstance(v, str) and len(v) < 40):
            out.append((prefix, round(v, 4) if isinstance(v, float) else v))

    walk("", {k: v for k, v in metrics.items() if k != "config"})  # results first; the config is in the notebook
    return out


def _rel(path: Path, root: Path) -> str:
    return html.escape(os.path.relpath(path, root).replace(os.sep, "/"))


def _card(e: DemoEntry, root: Path) -> str:
    title = html.escape(e.name.rsplit("/", 1)[-1])
    if e.html is not None:
        title = f'<a href="{_rel(e.html, root)}">{title}</a>'
    thumb = (f'<img src="{_rel(e.thumbnail, root)}" alt="key figure of {html.escape(e.name)}">'
             if e.thumbnail else '<div class="nothumb">no figure</div>')
    peak = f"{e.peak_mb:.0f} MB" if e.peak_mb else "&mdash;"
    status = (f'<span class="bad">failed</span><pre>{html.escape(e.error)}</pre>' if e.error
              else '<span class="ok">ok</span>')
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in _scalars(e.metrics))
    metrics = (f"<details><summary>metrics.json</summary><table class='m'>{rows}</table></details>" if rows
               else "")
    return (f'<div class="card">{thumb}<div class="t">{title} {status}</div>'
            f'<div class="s">{e.seconds:.0f} s &middot; kernel peak {peak}</div>{metrics}</div>')


def write_index(root: Path, entries: list[DemoEntry]) -> Path:
    """Return the path of ``index.html``: per series a headline, one card per notebook (thumbnail, link, time,
    peak memory, status) and its metrics folded away."""
    titles = {s.key: s for s in SERIES}
    sections = []
    order = ["", *titles]  # the tour first, then catalogue order
    for series in sorted(dict.fromkeys(e.series for e in entries), key=lambda k: order.index(k) if k in order else 99):
        group = [e for e in entries if e.series == series]
        s = titles.get(series)
        name = "Start here" if not series else f"{series}: {s.title}" if s else series
        link = f' (<a href="{html.escape(s.url)}">arXiv:{html.escape(s.arxiv)}</a>)' if s and s.arxiv else ""
        cards = "".join(_card(e, root) for e in group)
        sections.append(f'<section><h2>{html.escape(name)}{link}</h2><p class="h">{html.escape(headline(series, group))}'
                        f'</p><div class="cards">{cards}</div></section>')
    failed = sum(e.error is not None for e in entries)
    total = sum(e.seconds for e in entries)
    peak = max((e.peak_mb or 0 for e in entries), default=0)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>kit demo {html.escape(root.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:80em}}h2{{margin-top:1.6em}}
.h{{font-size:1.1em;max-width:60em}}.cards{{display:flex;flex-wrap:wrap;gap:1em}}
.card{{border:1px solid #ccc;border-radius:6px;padding:.6em;width:340px}}.card img{{width:100%;display:block}}
.nothumb{{height:80px;color:#888;display:flex;align-items:center;justify-content:center;background:#f4f4f4}}
.t{{font-weight:bold;margin-top:.4em}}.s{{color:#555}}table.m td{{padding:0 6px;font-size:.85em}}
.ok{{color:#070;font-weight:normal}}.bad{{color:#b00}}pre{{white-space:pre-wrap;font-size:.8em}}</style></head><body>
<h1>kit demo run {html.escape(root.name)}</h1>
<p>{len(entries)} notebooks, {failed} failed, {total / 60:.1f} minutes in all; the largest kernel peaked at
{peak:.0f} MB (Binder allows about 2 GB). Each title opens the executed notebook rendered as HTML; each card's
metrics are folded under it.</p>
{''.join(sections)}
</body></html>"""
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
