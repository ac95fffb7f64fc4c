"""Markdown tables of the RLD series' results."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def accuracy_table_markdown(rows: Sequence[dict[str, Any]], teacher: dict[str, Any] | None = None) -> str:
    """Return the per-method accuracy table (mean +- std over seeds, best and last epoch, on teacher-wrong samples)."""
    if not rows:
        raise ValueError("rows is empty")
    best_best = max(r["best_mean"] for r in rows)
    lines = ["| method | seeds | best epoch (%) | last epoch (%) | on test samples the teacher gets wrong (%) |",
             "|---|---|---|---|---|"]
    for r in rows:
        best = f"{100 * r['best_mean']:.2f} ± {100 * r['best_std']:.2f}"
        if r["best_mean"] == best_best:
            best = f"**{best}**"
        wrong = (f"{100 * r['teacher_wrong_mean']:.1f} ± {100 * r['teacher_wrong_std']:.1f}"
                 if "teacher_wrong_mean" in r else "—")
        lines.append(f"| {r['method'].upper()} | {r['seeds']} | {best} | {100 * r['last_mean']:.2f} ± "
                     f"{100 * r['last_std']:.2f} | {wrong} |")
    head = ""
    if teacher:
        head = (f"Teacher: test accuracy {100 * teacher['test_acc']:.1f}%, wrong on "
                f"{100 * teacher['error_on_student_train']:.1f}% of the student's training images.\n\n")
    return head + "\n".join(lines)


def sweep_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return per sweep level: teacher error and test accuracy, each method's mean accuracy, and RLD - DKD,
    RLD - KD and RLD - LA where those methods ran."""
    out = []
    for level in dict.fromkeys(r["level"] for r in rows):
        mine = [r for r in rows if r["level"] == level]
        acc = {m: statistics.fmean(r["accuracy"] for r in mine if r["method"] == m)
               for m in dict.fromkeys(r["method"] for r in mine)}
        row = {"level": level, "teacher_error": mine[0]["teacher_error"],
               "teacher_test_acc": mine[0]["teacher_test_acc"], **{f"acc_{m}": a for m, a in acc.items()}}
        if "rld" in acc and "dkd" in acc:
            row["rld_minus_dkd"] = acc["rld"] - acc["dkd"]
        if "rld" in acc and "kd" in acc:
            row["rld_minus_kd"] = acc["rld"] - acc["kd"]
        if "rld" in acc and "la" in acc:
            row["rld_minus_la"] = acc["rld"] - acc["la"]
        out.append(row)
    return out


def sweep_markdown(rows: Sequence[dict[str, Any]], knob: str = "noisy") -> str:
    """Return the teacher-error sweep as Markdown: one line per level, accuracies and RLD's differences in points."""
    summary = sweep_summary(rows)
    methods = [k[4:] for k in summary[0] if k.startswith("acc_")]
    level_name = "label noise of the teacher" if knob == "noisy" else "teacher's training images"
    diffs = ["dkd", "kd"] + (["la"] if any("rld_minus_la" in r for r in summary) else [])
    lines = [f"| {level_name} | teacher error on student-train (%) | teacher test (%) | "
             + " | ".join(m.upper() for m in methods) + " | "
             + " | ".join(f"RLD − {d.upper()} (pt)" for d in diffs) + " |",
             "|---|---|---|" + "---|" * (len(methods) + len(diffs))]
    for r in summary:
        accs = " | ".join(f"{100 * r[f'acc_{m}']:.1f}" for m in methods)
        ds = " | ".join(f"{100 * r[f'rld_minus_{d}']:+.1f}" if f"rld_minus_{d}" in r else "—" for d in diffs)
        lines.append(f"| {r['level']:g} | {100 * r['teacher_error']:.1f} | {100 * r['teacher_test_acc']:.1f} | "
                     f"{accs} | {ds} |")
    return "\n".join(lines)
