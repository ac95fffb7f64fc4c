"""Markdown tables of the RLD series' results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
    """Return per sweep level: teacher error and test accuracy, each method's mean accuracy over seeds, and RLD - DKD,
    RLD - KD and RLD - LA (the mean of the per-seed differences) where those methods ran. The numbers are
    ``kit.rld.explore.sweep_table``'s."""
    from kit.rld.explore import sweep_table

    # keyed by level (two levels may leave their teachers with the same error)
    table = sweep_table([{**r, "teacher_error": float(r["level"]), "seed": r.get("seed", 0)} for r in rows],
                        differences=(("rld", "dkd"), ("rld", "kd"), ("rld", "la")))
    out = []
    for level in dict.fromkeys(r["level"] for r in rows):
        first = next(r for r in rows if r["level"] == level)
        k = int(np.argmin(np.abs(table["teacher_errors"] - float(level))))
        row = {"level": level, "teacher_error": first["teacher_error"], "teacher_test_acc": first["teacher_test_acc"]}
        for m in table["methods"]:
            if table["n"][m][k]:
                row[f"acc_{m}"] = float(table["mean"][m][k])
        for name, d in table["differences"].items():
            if d["n"][k]:
                row["rld_minus_" + name.split(" - ")[1].lower()] = float(d["mean"][k])
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


def gradient_markdown(rows: dict[str, dict[str, float]], true_class: dict[str, dict[str, float]]) -> str:
    """The two tables of ``kit.rld.explore.gradient_readout``: cos(grad CE, grad term) per example and method, and the
    gradient on the true-class logit (negative: the term pushes the true logit up, as CE does)."""
    if not rows or not true_class:
        raise ValueError("rows and true_class must name at least one example")
    methods = list(next(iter(rows.values())))
    cos = ["| example | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    cos += [f"| {k} | " + " | ".join(f"{r[m]:+.3f}" for m in methods) + " |" for k, r in rows.items()]
    names = list(next(iter(true_class.values())))
    tc = ["| example | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    tc += [f"| {k} | " + " | ".join(f"{r[m]:+.3f}" for m in names) + " |" for k, r in true_class.items()]
    return ("**cos(grad CE, grad term)**\n\n" + "\n".join(cos) + "\n\n**dL/dz_y on the true class** (negative = "
            "pushes the true logit up, with CE)\n\n" + "\n".join(tc))


def mistake_steps_markdown(outcome: dict[str, Any]) -> str:
    """The counts of ``kit.rld.mistakes.mistake_outcomes`` as Markdown: per method, on how many of the teacher's
    mistakes the student's top-1 is the true class, and the teacher's wrong class, after the steps; then one line
    per digit."""
    methods = list(outcome["true_top1"])
    n = outcome["n_mistakes"]
    head = (f"{outcome['steps']} SGD steps (lr {outcome['lr']:g}) on each of the teacher's {n} test mistakes, every "
            f"method from the seed-{outcome['seed']} student (true class on top at the start: "
            f"{outcome['start_true_top1']} of {n}).\n\n")
    lines = ["| after the steps | " + " | ".join(m.upper() for m in methods) + " |", "|---|" + "---|" * len(methods),
             "| student's top-1 = true class | " + " | ".join(f"{outcome['true_top1'][m]} / {n}" for m in methods)
             + " |",
             "| student's top-1 = teacher's wrong class | "
             + " | ".join(f"{outcome['teacher_top1'][m]} / {n}" for m in methods) + " |"]
    digits = ["| test digit | label | teacher | " + " | ".join(m.upper() for m in methods) + " |",
              "|---|---|---|" + "---|" * len(methods)]
    digits += [f"| #{r['index']} | {r['label']} | {r['teacher_class']} | "
               + " | ".join(str(r["final_top1"][m]) for m in methods) + " |" for r in outcome["digits"]]
    return head + "\n".join(lines) + "\n\n**the student's top-1 after the steps, per digit**\n\n" + "\n".join(digits)
