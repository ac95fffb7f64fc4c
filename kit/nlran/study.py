"""The layout study: does NL-RAN's non-local block help when only the arrangement of the lesions tells the
pneumonias apart? ``python -m kit.nlran.study`` (resumable; each unit records its
seconds: the committed 18 took 9,768 s in all at 1 thread each, two at a time on a shared 2-core machine).

On the default "texture" phantoms, NCP (ground glass) and CP (consolidation) differ in local intensity, so a local
texture detector suffices and the no-non-local ablation matched NL-RAN. The "arrangement" layout
(:mod:`kit.nlran.phantom`) gives both pneumonias the same blobs and lets only where they are differ (NCP bilateral
and scattered, CP in one lung and clustered). This study trains, on both layouts and for 3 seeds (each seed its own
phantoms and initialisation):

- ``nlran``: NL-RAN tiny (132,907 parameters);
- ``nlran_no_nl``: the same without the non-local block (130,731);
- ``resnet18_small``: MONAI's 3D ResNet-18 narrowed to the same budget (widths 4-32, 131,535 parameters);

each to convergence (up to ``epochs`` epochs, stopped after ``patience`` epochs without a better validation
macro-AUC, the best epoch's weights kept). It records the test report, the NCP-vs-CP AUC (the pair the layout is
about), the heat-map scores of every model's CAM and of the NL-RAN attention masks read four ways (channel mean,
channel max, the most contrasted channel per volume, and the one channel per module that found lesions best on
the *validation* phantoms), and, for NL-RAN, where its non-local attention from lesions goes (same lung vs other
lung, :func:`kit.nlran.attention.lesion_links`).

Each (layout, model, seed) unit is written to ``kit/assets/nlran_tiny/study/<layout>-<model>-<seed>.json`` as it
finishes and skipped when present, so an interrupted build resumes; :func:`summarize` turns the units into the
tables of the README and of 02_evaluate. The NL-RAN of the arrangement layout, seed 0, is kept as
``nlran_arrangement.safetensors`` for 03_explore.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from kit.core import UnitCache, read_json, save_weights, set_threads
from kit.nlran.config import PHANTOM_LAYOUTS, NLRANConfig, preset
from kit.nlran.metrics import REPORT_KEYS
from kit.nlran.weights import ASSET_DIR
from kit.nlran.weights import STUDY_REBUILD as REBUILD

STUDY_MODELS = ("nlran", "nlran_no_nl", "resnet18_small")
SEEDS = (0, 1, 2)
EPOCHS, PATIENCE = 40, 10  # [C] a budget no model used up: every run stopped on its own (see the units' epochs_run)
STUDY_DIR = ASSET_DIR / "study"
MASK_READINGS = ("mean", "max", "strongest", "val-best channel")
"""How the attention masks are read as heat maps: "mean" (the spec's channel mean, AM<i> in the other tables),
"max", "strongest" (the channel with the largest spatial spread, per volume) and "val-best channel" (per module,
the one channel whose mask found lesions best on validation phantoms)."""


def unit_config(layout: str, seed: int, epochs: int = EPOCHS, patience: int = PATIENCE) -> NLRANConfig:
    """The tiny preset on ``layout`` phantoms with ``seed``, trained to convergence on the CPU."""
    return preset("tiny", phantom_layout=layout, seed=seed, epochs=epochs, patience=patience, device="cpu")


def unit_path(folder: Path, layout: str, model: str, seed: int) -> Path:
    return Path(folder) / f"{layout}-{model}-{seed}.json"


def pair_auc(labels: np.ndarray, probs: np.ndarray, a: int = 0, b: int = 1) -> float:
    """AUC of class ``a`` against class ``b`` among the volumes of those two classes, scored by p_a / (p_a + p_b)
    (default NCP vs CP: the pair the arrangement layout is about)."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    keep = (labels == a) | (labels == b)
    if not (labels[keep] == a).any() or not (labels[keep] == b).any():
        raise ValueError(f"pair_auc needs volumes of both classes {a} and {b}")
    p = probs[keep]
    return float(roc_auc_score(labels[keep] == a, p[:, a] / np.maximum(p[:, a] + p[:, b], 1e-12)))


def _validation_volumes(data, n: int) -> list[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    out = []
    for i in range(len(data)):
        ph = data.phantom(i)
        if ph.lesion_mask.any():
            out.append((data[i][0][None], ph.lesion_mask, ph.lung_mask))
        if len(out) == n:
            break
    return out


def link_scores(model: torch.nn.Module, data, n: int) -> dict[str, dict[str, float]]:
    """Mean :func:`kit.nlran.attention.lesion_links` over the first ``n`` NCP and CP volumes of ``data`` whose lesions
    fill at least one cell of the non-local grid: {"NCP": {...}, "CP": {...}} (nan-mean over volumes)."""
    from kit.nlran.attention import lesion_links

    out: dict[str, dict[str, float]] = {}
    for label, name in ((0, "NCP"), (1, "CP")):
        rows = []
        for i in np.flatnonzero(np.asarray(data.labels) == label):
            try:
                rows.append(lesion_links(model, data[int(i)][0][None], data.phantom(int(i)).lesion_mask))
            except ValueError:
                continue
            if len(rows) == n:
                break
        out[name] = {k: _nanmean([r[k] for r in rows]) for k in ("same_ratio", "other_ratio", "on_lesion")} \
            | {"volumes": len(rows)}
    return out


def run_unit(layout: str, model: str, seed: int, epochs: int = EPOCHS, patience: int = PATIENCE,
             n_explain: int = 30) -> tuple[dict[str, Any], torch.nn.Module]:
    """Train and measure one (layout, model, seed) unit; return (its JSON-able record, the trained model)."""
    from kit.nlran.experiment import load_data, predict, train_model
    from kit.nlran.metrics import classification_report
    from kit.nlran.scores import best_mask_channels, explanation_scores_within

    if layout not in PHANTOM_LAYOUTS:
        raise ValueError(f"layout must be one of {PHANTOM_LAYOUTS}, got {layout!r}")
    if model not in STUDY_MODELS:
        raise ValueError(f"model must be one of {STUDY_MODELS}, got {model!r}")
    cfg = unit_config(layout, seed, epochs, patience)
    data = load_data(cfg)
    tm = train_model(cfg, data, model)
    y, p = predict(tm.model, data.test)
    rep = classification_report(y, p)
    rec: dict[str, Any] = {
        "layout": layout, "model": model, "seed": seed, **{k: rep[k] for k in REPORT_KEYS},
        "ncp_cp_auc": pair_auc(y, p), "best_epoch": tm.best_epoch, "epochs_run": len(tm.history),
        "best_val_auc": tm.best_val_auc, "params": tm.params, "train_seconds": round(tm.seconds, 1),
        "val_auc_curve": [round(float(h["val_auc"]), 4) for h in tm.history],
        "config": {"epochs": epochs, "patience": patience, "n_train": cfg.n_train, "n_val": cfg.n_val,
                   "n_test": cfg.n_test, "lr": cfg.lr, "batch_size": cfg.batch_size}}
    readings: dict[str, Any] = {}
    if callable(getattr(tm.model, "forward_maps", None)):
        channels = best_mask_channels(tm.model, _validation_volumes(data.val, 20))
        readings = {"max": "max", "strongest": "strongest", "val-best channel": channels}
        rec["val_best_channels"] = list(channels)
    rec["heatmaps"] = explanation_scores_within(tm.model, data.test, n_explain, mask_readings=readings)
    if getattr(tm.model, "nonlocal_block", None) is not None:
        rec["links"] = link_scores(tm.model, data.test, n_explain)
    return rec, tm.model


def _unit(layout: str, model: str, seed: int, epochs: int, patience: int, keep: Path | None) -> dict[str, Any]:
    rec, trained = run_unit(layout, model, seed, epochs=epochs, patience=patience)
    if keep is not None:
        save_weights(trained, keep)
    return rec


def build(folder: str | Path = STUDY_DIR, layouts: Sequence[str] = PHANTOM_LAYOUTS,
          models: Sequence[str] = STUDY_MODELS, seeds: Sequence[int] = SEEDS, epochs: int = EPOCHS,
          patience: int = PATIENCE, keep_model: tuple[str, str, int] | None = ("arrangement", "nlran", 0),
          weights_dir: str | Path = ASSET_DIR) -> list[dict[str, Any]]:
    """Run every missing unit (one :class:`kit.core.UnitCache` entry ``<layout>-<model>-<seed>.json`` in ``folder``,
    written as it finishes, so a rerun resumes) and return all records. The model of unit ``keep_model`` is saved
    as ``weights_dir/<model>_<layout>.safetensors`` (float16)."""
    units = [(lay, m, s) for s in seeds for lay in layouts for m in models]
    cache = UnitCache(folder, total=len(units), desc="layout study")
    records = []
    for lay, m, s in units:
        keep = Path(weights_dir) / f"{m}_{lay}.safetensors" if keep_model == (lay, m, s) else None
        records.append(cache.run(unit_path(folder, lay, m, s).stem, _unit, lay, m, s, epochs, patience, keep,
                                 describe=lambda r: f"test macro-AUC {r['auc_macro']:.3f}"))
    return records


def load_units(folder: str | Path = STUDY_DIR) -> list[dict[str, Any]]:
    """Every unit record in ``folder``; FileNotFoundError naming the rebuild command when there is none."""
    paths = sorted(Path(folder).glob("*-*-*.json"))
    if not paths:
        raise FileNotFoundError(f"no layout-study units in {folder}; build them with `{REBUILD}`")
    return [read_json(p) for p in paths]


def _stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); NaN below two values."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def _verdict(stats: Sequence[dict[str, float]] | Any) -> str:
    """"helps" when every mean paired difference is positive and larger than its standard error, "hurts" when every
    one is negative by more than its standard error, else "no clear difference" (the seeds disagree, or the
    difference is inside the seed-to-seed spread). A rough reading for 3 seeds, not a significance test."""
    stats = list(stats)
    if all(d["mean"] > d["stderr"] for d in stats):
        return "helps"
    if all(-d["mean"] > d["stderr"] for d in stats):
        return "hurts"
    return "no clear difference"


def _nanmean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and (population) std over the finite values, and how many there were (NaN when none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else float("nan"), "std": float(v.std()) if v.size else float("nan"),
            "n": int(v.size)}


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The study's tables from its unit records:

    - ``classification``: {layout: {model: {metric: {mean, std, n}}}} for macro-AUC, accuracy, NCP-vs-CP AUC, best
      epoch, epochs run and training seconds;
    - ``nl_minus_ablation``: {layout: per-seed differences of NL-RAN minus the ablation (macro-AUC and NCP-vs-CP
      AUC) with their mean, standard error and how many seeds are positive, and a "verdict" (:func:`_verdict`:
      "helps", "hurts" or "no clear difference")};
    - ``heatmaps``: {layout: {within: {map: {pointing, top10, auroc} means over seeds}}}, map names "<model> CAM"
      and "nlran AM<i> <reading>";
    - ``am_vs_cam``: {layout: {within: {metric: the best attention-mask reading of NL-RAN minus NL-RAN's CAM}}};
    - ``links``: {layout: {"NCP"/"CP": {same_ratio, other_ratio: {mean, std}}}} of NL-RAN's non-local block.
    """
    layouts = sorted({r["layout"] for r in records}, key=PHANTOM_LAYOUTS.index)
    by = {(r["layout"], r["model"], r["seed"]): r for r in records}
    out: dict[str, Any] = {"classification": {}, "nl_minus_ablation": {}, "heatmaps": {}, "am_vs_cam": {}, "links": {}}
    metrics = ("auc_macro", "accuracy", "ncp_cp_auc", "best_epoch", "epochs_run", "train_seconds")
    for lay in layouts:
        models = [m for m in STUDY_MODELS if any(k[:2] == (lay, m) for k in by)]
        out["classification"][lay] = {
            m: {k: _mean_std([r[k] for (l2, m2, _), r in by.items() if (l2, m2) == (lay, m)]) for k in metrics}
            for m in models}
        seeds = sorted(s for (l2, m2, s) in by if (l2, m2) == (lay, "nlran") and (lay, "nlran_no_nl", s) in by)
        if seeds:
            diff = {k: [by[(lay, "nlran", s)][k] - by[(lay, "nlran_no_nl", s)][k] for s in seeds]
                    for k in ("auc_macro", "ncp_cp_auc")}
            stats = {k: {"per_seed": v, "mean": float(np.mean(v)), "positive": int(sum(d > 0 for d in v)),
                         "stderr": _stderr(v)} for k, v in diff.items()}
            out["nl_minus_ablation"][lay] = stats | {"seeds": len(seeds), "verdict": _verdict(stats.values())}
        heat: dict[str, dict[str, dict[str, float]]] = {}
        for within in ("volume", "lung"):
            maps: dict[str, list[dict[str, float]]] = {}
            for (l2, m, _), r in by.items():
                if l2 != lay:
                    continue
                for name, sc in r["heatmaps"][within].items():
                    if name == "Grad-CAM" or (m != "nlran" and name != "CAM"):
                        continue  # Grad-CAM = CAM here; the ablation's masks are not the method's
                    label = f"{m} {name}" if name == "CAM" else f"{m} {name if ' ' in name else name + ' mean'}"
                    maps.setdefault(label, []).append(sc)
            heat[within] = {k: {m: float(np.mean([v[m] for v in vs])) for m in ("pointing", "top10", "auroc")}
                            for k, vs in maps.items()}
        out["heatmaps"][lay] = heat
        out["am_vs_cam"][lay] = {
            w: {m: max(v[m] for k, v in heat[w].items() if " AM" in k) - heat[w]["nlran CAM"][m]
                for m in ("pointing", "top10", "auroc")} for w in heat if "nlran CAM" in heat[w]}
        links = [by[k]["links"] for k in by if k[:2] == (lay, "nlran") and "links" in by[k]]
        out["links"][lay] = {c: {k: _mean_std([lk[c][k] for lk in links]) for k in ("same_ratio", "other_ratio")}
                             for c in ("NCP", "CP")} if links else {}
    return out


def committed_study(folder: str | Path = STUDY_DIR) -> dict[str, Any]:
    """:func:`summarize` of the committed units (what ``python -m kit.nlran.study`` measured)."""
    return summarize(load_units(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(STUDY_DIR))
    parser.add_argument("--weights-dir", default=str(ASSET_DIR))
    parser.add_argument("--layouts", nargs="+", default=list(PHANTOM_LAYOUTS), choices=PHANTOM_LAYOUTS)
    parser.add_argument("--models", nargs="+", default=list(STUDY_MODELS), choices=STUDY_MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--patience", type=int, default=PATIENCE)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    build(args.out, args.layouts, args.models, args.seeds, args.epochs, args.patience, weights_dir=args.weights_dir)
    summary = summarize(load_units(args.out))
    for lay, rows in summary["classification"].items():
        for m, r in rows.items():
            print(lay, m, {k: f"{v['mean']:.3f} ± {v['std']:.3f}" for k, v in r.items()})
    print(summary["nl_minus_ablation"])
    print(summary["am_vs_cam"])
    print(summary["links"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
