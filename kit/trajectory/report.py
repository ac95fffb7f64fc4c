"""Markdown tables of the trajectory series' results (kit never draws; widgets and notebooks display these)."""

from __future__ import annotations

from typing import Any

from kit.trajectory.evaluation import paper_setting_rows
from kit.trajectory.paper import PAPER_FID, PAPER_NFES

DENOISER_TITLES = {"kde": "kde (digits, smoothed)", "empirical": "empirical (digits, exact: memorises)",
                   "gmm2d": "gmm2d (2-D ring of 8 Gaussians)", "trained": "trained (01's MLP on digits)",
                   "pretrained": "pretrained (the diffusers model)"}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def error_table_markdown(rows: list[dict[str, Any]], denoiser: str, coeff: float) -> str:
    """Return a Markdown table: one line per solver x schedule, one column per NFE, mean L2 error to the reference.

    GITS appears in the paper's setting (``variant == "paper"``, at ``coeff``) and as the best GITS variant of
    the metric x coeff sweep ("GITS best of sweep"); the best schedule of each (solver, NFE) cell is in bold.
    """
    mine = [r for r in rows if r["denoiser"] == denoiser]
    if not mine:
        raise ValueError(f"no rows for denoiser {denoiser!r}")
    sel = paper_setting_rows(mine)
    best_gits: dict[tuple, dict] = {}
    for r in mine:
        if r["schedule"] == "gits":
            key = (r["solver"], r["nfe"])
            if key not in best_gits or r["error"] < best_gits[key]["error"]:
                best_gits[key] = r
    sel += [{**r, "schedule": "gits_best"} for r in best_gits.values()]
    nfes = sorted({r["nfe"] for r in sel})
    solvers = list(dict.fromkeys(r["solver"] for r in sel))
    lines = ["| solver | schedule | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
             "|---|---|" + "---|" * len(nfes)]
    for solver in solvers:
        cell = {(r["schedule"], r["nfe"]): r["error"] for r in sel if r["solver"] == solver}
        schedules = list(dict.fromkeys(s for s, _ in cell if s is not None))
        best = {n: min((cell[(s, n)] for s in schedules if s != "gits_best" and cell.get((s, n)) is not None),
                       default=None) for n in nfes}
        for s in schedules:
            name = {"gits": f"GITS (paper: coeff {coeff})", "gits_best": "GITS best of sweep"}.get(s, s)
            vals = []
            for n in nfes:
                v = cell.get((s, n))
                text = _fmt(v)
                vals.append(f"**{text}**" if v is not None and v == best[n] and s != "gits_best" else text)
            lines.append(f"| {solver} | {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def error_tables_markdown(rows: list[dict[str, Any]], coeff: float) -> str:
    """Return :func:`error_table_markdown` for every denoiser of ``rows`` (in their order), each under a heading."""
    names = list(dict.fromkeys(r["denoiser"] for r in rows))
    return "\n\n".join(f"#### {DENOISER_TITLES.get(n, n)}\n" + error_table_markdown(rows, n, coeff) for n in names)


def search_cost_markdown(searches: dict[str, dict[str, Any]], references: dict[str, dict[str, Any]]) -> str:
    """Return a table of what each GITS search cost (02's ``gits_search`` record) and the reference's accuracy (L2
    between the reference and a run with half its steps, per denoiser)."""
    lines = ["| denoiser | network evaluations | batched calls | seconds | metric | reference vs half its steps |",
             "|---|---|---|---|---|---|"]
    for k, v in searches.items():
        ref = references.get(k, {}).get("error_vs_half_steps")
        lines.append(f"| {k} | {v['network_evaluations']} | {v['teacher_calls']} | {v['seconds']} | {v['metric']} | "
                     f"{'n/a' if ref is None else f'{ref:.2e}'} |")
    return "\n".join(lines)


def fid_markdown(record: dict[str, Any] | None) -> str:
    """Return a sentence on FID in this run from 02's ``fid`` record (None: the preset does not ask for FID)."""
    if record is None:
        return ("FID is not computed in this preset (`fid=False`): the distribution-level distance here is the sliced "
                "Wasserstein distance. The full preset adds FID (torchmetrics' Inception) where its weights are local.")
    if record["fid"] is None:
        return f"FID: not computed ({record['reason']}); the sliced Wasserstein distance stands in."
    return f"FID between {record['between']}: in the error rows (`fid`) and in the headline's FID wins."


def train_markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """Return one line per dataset of 01_train's records (``kit.trajectory.experiment.train_summary``)."""
    return "\n".join(
        f"- **{name}**: final loss {s['final_loss']:.3f} after {s['steps']} steps ({s['seconds']} s); the network's "
        f"gap to the optimal denoiser is {100 * s['gap_over_learned_at_smallest_sigma']:.0f} % of its error at the "
        f"smallest sigma and {100 * s['min_gap_over_learned']:.0f} % at its closest "
        f"(sigma {s['sigma_at_min_gap_over_learned']:.3g}); largest gap {s['max_gap']:.3f}."
        for name, s in summaries.items())


def regularity_markdown(summary: dict[str, Any]) -> str:
    """Return 03's regularity numbers (``kit.trajectory.explore.regularity_summary``) as a Markdown list."""
    lines = [f"- chord length {summary['chord_mean']:.1f} (sigma_max x sqrt(d) = {summary['chord_expected']:.1f})",
             f"- largest mean deviation from the chord: {summary['max_dev_x']:.2f}, at sigma = "
             f"{summary['sigma_at_max_dev']:.2f}",
             f"- two PCs after removing the chord explain {100 * summary['explained_top2_mean']:.2f}% of what is left "
             f"(worst trajectory {100 * summary['explained_top2_min']:.2f}%)",
             f"- cos(eps, x - x_end) never falls below {summary['min_cos']:.3f}"]
    lines += [f"- at sigma = {k}: D(x_sigma) is {v['D']:.2f} from the final sample, x_sigma {v['x']:.2f}"
              for k, v in summary["distance_to_end"].items()]
    return "\n".join(lines)


def wins_markdown(summary: dict[str, Any], coeff: float) -> str:
    """Return a Markdown table of GITS wins per denoiser against the recommended and the best fixed schedule."""
    lines = ["| denoiser | cells | GITS beats the solver's recommended schedule | GITS beats the best fixed "
             "schedule | best GITS variant of the sweep beats it |", "|---|---|---|---|---|"]
    for den, s in summary.items():
        lines.append(f"| {den} | {s['cells_total']} | {s['wins_vs_recommended']} / {s['cells_with_recommended']} "
                     f"| {s['wins']} / {s['cells_total']} | {s['wins_best_variant']} / {s['cells_total']} |")
    return (f"GITS in the paper's setting (coeff {coeff}, metric `dev`; `l2` in 2-D) unless stated; the sweep "
            "adds the other cost metric and coeffs.\n\n" + "\n".join(lines))


def losses_markdown(summary: dict[str, Any], denoiser: str, limit: int = 12) -> str:
    """Return the cells where GITS (at the paper's coeff) loses to the best fixed schedule, worst first."""
    cells = [c for c in summary[denoiser]["cells"] if c["ratio_to_best_fixed"] >= 1.0]
    cells.sort(key=lambda c: -c["ratio_to_best_fixed"])
    if not cells:
        return f"GITS wins every cell for `{denoiser}`."
    lines = ["| solver | NFE | best fixed schedule | its error | GITS error | ratio | best GITS variant (its error) |",
             "|---|---|---|---|---|---|---|"]
    for c in cells[:limit]:
        lines.append(f"| {c['solver']} | {c['nfe']} | {c['best_fixed']} | {_fmt(c['best_fixed_error'])} | "
                     f"{_fmt(c['gits_error'])} | {c['ratio_to_best_fixed']:.2f} | {c['best_variant']} "
                     f"({_fmt(c['gits_best_variant_error'])}) |")
    return "\n".join(lines)


def paper_table_markdown(dataset: str = "CIFAR-10") -> str:
    """Return the paper's FID table for ``dataset`` as Markdown, labelled as the paper's numbers."""
    if dataset not in PAPER_FID:
        raise ValueError(f"dataset must be one of {sorted(PAPER_FID)}, got {dataset!r}")
    lines = [f"**Reported by the paper** (FID of 50k samples, {dataset}; lower is better)", "",
             "| method | " + " | ".join(f"NFE {n}" for n in PAPER_NFES) + " |", "|---|" + "---|" * len(PAPER_NFES)]
    for method, vals in PAPER_FID[dataset].items():
        lines.append(f"| {method} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    return "\n".join(lines)


def verdict_markdown(summary: dict[str, Any], coeff: float) -> str:
    """Return a few sentences stating, per denoiser, where GITS wins and where it does not (from ``summary``)."""
    out = []
    for den, s in summary.items():
        cells = s["cells"]
        by_nfe: dict[int, list[bool]] = {}
        for c in cells:
            by_nfe.setdefault(c["nfe"], []).append(c["ratio_to_best_fixed"] < 1.0)
        nfe_text = ", ".join(f"NFE {n}: {sum(v)}/{len(v)}" for n, v in sorted(by_nfe.items()))
        best_fixed = {}
        for c in cells:
            best_fixed[c["best_fixed"]] = best_fixed.get(c["best_fixed"], 0) + 1
        top = max(best_fixed, key=best_fixed.get)
        losers = sorted({c["solver"] for c in cells if c["ratio_to_best_fixed"] >= 1.0})
        out.append(
            f"- **{den}**: GITS (paper setting, coeff {coeff}) beats the solver's recommended schedule in "
            f"{s['wins_vs_recommended']} of {s['cells_with_recommended']} cells and the best of all fixed "
            f"schedules in {s['wins']} of {s['cells_total']} ({nfe_text}); the best GITS variant of the sweep "
            f"(cost metric x coeff) beats it in {s['wins_best_variant']} of {s['cells_total']}. The strongest fixed schedule is most often "
            f"`{top}` ({best_fixed[top]} cells). Solvers where GITS loses at least one cell: "
            f"{', '.join(losers) if losers else 'none'}.")
    return "\n".join(out)


def claims_markdown(claims: dict[str, dict[str, Any]], pretrained: dict[str, dict[str, Any]] | None = None) -> str:
    """The measured headline (``kit.trajectory.evaluation.claims``) as sentences: GITS against the recommended and
    against the best fixed schedule at the claim budgets, per exact denoiser; ``pretrained`` (02's
    ``gits_claims_pretrained``, full preset) adds the same numbers for the real model."""
    if not claims:
        return "No exact denoiser was evaluated at the claim budgets."
    nfes = "-".join(str(n) for n in sorted({n for c in claims.values() for n in c["nfes"]}))
    also = " and the real model (its own accurate ODE solution as reference)" if pretrained else ""
    lines = [f"At NFE {nfes} on the exact denoisers{also} (every solver; the paper's GITS setting):", ""]
    for den, c in {**claims, **(pretrained or {})}.items():
        fid = f"; by FID {c['wins_vs_recommended_fid']} of {c['cells_fid']}" if "cells_fid" in c else ""
        lines.append(
            f"- **{den}**: GITS beats the solver's recommended schedule in {c['wins_vs_recommended']} of {c['cells']} "
            f"cells (median error ratio {c['median_ratio_to_recommended']:.2f}; by sliced Wasserstein "
            f"{c['wins_vs_recommended_sw']} of {c['cells_sw']}{fid}), but the best fixed schedule of each cell in "
            f"only {c['wins_vs_best_fixed']} of {c['cells']} (median ratio {c['median_ratio_to_best_fixed']:.2f}).")
    lines += ["", "So GITS improves on each solver's usual schedule, as the paper reports, while a fixed schedule "
              "chosen per problem after the fact (most often VP time-quadratic here) is as good or better on these "
              "denoisers."]
    return "\n".join(lines)
