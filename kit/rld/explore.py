"""Numbers behind the RLD widgets (Refined Logit Distillation, arXiv:2408.07703): what each distillation
method asks a student to match for one teacher logit vector, the per-class gradients dL/dz^s of the real loss
functions in `kit.rld.losses`, their cosines with the CE gradient, and the shaping of sweep / grid results.

Baselines: KD (Hinton et al., arXiv:1503.02531), DKD (arXiv:2203.08679), LA (teacher top and true logits
swapped, then KD). Everything is float64 and returned as numpy; no plotting here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kit.rld import losses
from kit.rld.checks import as_logit_vector, check_label, check_positive, check_real, check_weight

__all__ = [
    "DIFFERENCES",
    "GRADIENT_METHODS",
    "PRESET_RIGHT_TEACHER",
    "PRESET_WRONG_TEACHER",
    "alpha_beta_grid",
    "as_logit_vector",
    "check_label",
    "cosine",
    "gradient_cosines",
    "method_targets",
    "per_class_gradients",
    "sweep_table",
    "gradient_readout",
    "mean_std",
]

Tensor = torch.Tensor
GRADIENT_METHODS = ("CE", "KD", "DKD", "LA", "RLD")
# Loss parts whose gradients are also reported (DKD = alpha TCKD + beta NCKD, RLD = alpha SCD + beta MCD).
PART_METHODS = ("TCKD", "NCKD", "SCD", "MCD")
DIFFERENCES = (("RLD", "DKD"), ("RLD", "KD"))
# An epoch past every warm-up, so that the full objectives carry their whole distillation weight.
_LATE_EPOCH = 10**6

# Five classes with two look-alike groups. The teacher ranks "fox" above the true "cat" (a related wrong
# class); the student already leans to the true class, the usual state in mid-training.
PRESET_WRONG_TEACHER: dict[str, Any] = {
    "class_names": ("cat", "dog", "fox", "car", "truck"),
    "teacher_logits": (3.0, 2.0, 4.0, -1.0, -1.5),
    "student_logits": (2.0, 0.5, 1.0, 0.0, -0.5),
    "label": 0,
}
# The same classes with the teacher right (its top class is the label): RLD then equals DKD when tau_a = tau.
PRESET_RIGHT_TEACHER: dict[str, Any] = {
    "class_names": ("cat", "dog", "fox", "car", "truck"),
    "teacher_logits": (4.0, 2.0, 3.0, -1.0, -1.5),
    "student_logits": (2.0, 0.5, 1.0, 0.0, -0.5),
    "label": 0,
}


def _masked_softmax(z: Tensor, keep: Tensor) -> Tensor:
    """Returns softmax of z [C] over the classes where keep [C] is True, 0 elsewhere (all 0 if none kept)."""
    if not bool(keep.any()):
        return torch.zeros_like(z)
    return torch.softmax(z.masked_fill(~keep, -math.inf), dim=0).masked_fill(~keep, 0.0)


# --- targets -----------------------------------------------------------------------------------------------
def method_targets(teacher_logits: Any, label: int, temperature: float = 4.0,
                   alpha_temperature: float = 4.0) -> dict[str, Any]:
    """Returns what each method asks the student to match, for one teacher logit vector z^t [C] and label y.

    Keys (numpy float64 unless said otherwise; tau = temperature, tau_a = alpha_temperature):
    - "teacher" [C]: softmax(z^t), the teacher's prediction; "top_class": int argmax z^t (first on ties);
      "teacher_right": bool, top_class == y.
    - "kd" [C]: softmax(z^t / tau), the KD target.
    - "la_logits" [C]: z^t with its top and true logits swapped; "la" [C]: softmax(la_logits / tau).
    - "dkd_binary" [2]: [p_y, 1 - p_y] of softmax(z^t / tau), the TCKD target for [p^s_y, 1 - p^s_y];
      "dkd_nontarget" [C]: softmax(z^t / tau) over the classes != y, 0 at y; "dkd_mask" bool [C]: one-hot y.
    - "scd_binary" [2]: [p_m, 1 - p_m] of softmax(z^t / tau_a) at the teacher's top class m, the SCD target
      for the student's TRUE-class pair [p^s_y, 1 - p^s_y]; "true_class_target" dict: what p^s_y is pulled to
      by CE (1), DKD/TCKD (p^t_y at tau) and RLD/SCD (p^t_m at tau_a).
    - "mask" bool [C]: M = {c : z^t_c >= z^t_y} (y and every class ranked at or above it);
      "mcd" [C]: softmax(z^t / tau) over the classes outside M, 0 on M (all 0 when M holds every class:
      then MCD passes nothing on).
    """
    t = as_logit_vector(teacher_logits, "teacher_logits")
    C = t.numel()
    y = check_label(label, C)
    tau = check_positive("temperature", temperature)
    tau_a = check_positive("alpha_temperature", alpha_temperature)
    m = int(torch.argmax(t))
    p_tau = torch.softmax(t / tau, dim=0)
    p_a = torch.softmax(t / tau_a, dim=0)
    la_logits = losses.swap_teacher_logits(t[None], torch.tensor([y]))[0].to(torch.float64)
    mask = losses.rld_mask(t[None], torch.tensor([y]))[0].to(torch.bool)
    dkd_mask = F.one_hot(torch.tensor(y), C).to(torch.bool)
    out = {
        "teacher": torch.softmax(t, dim=0),
        "top_class": m,
        "teacher_right": m == y,
        "kd": p_tau,
        "la_logits": la_logits,
        "la": torch.softmax(la_logits / tau, dim=0),
        "dkd_binary": torch.stack([p_tau[y], 1.0 - p_tau[y]]),
        "dkd_nontarget": _masked_softmax(t / tau, ~dkd_mask),
        "dkd_mask": dkd_mask,
        "scd_binary": torch.stack([p_a[m], 1.0 - p_a[m]]),
        "true_class_target": {"CE": 1.0, "DKD": float(p_tau[y]), "RLD": float(p_a[m])},
        "mask": mask,
        "mcd": _masked_softmax(t / tau, ~mask),
    }
    return {k: v.numpy() if isinstance(v, Tensor) else v for k, v in out.items()}


# --- gradients ---------------------------------------------------------------------------------------------
def _loss_fns(y: Tensor, t: Tensor, part: str, temperature: float, alpha_temperature: float, alpha: float,
              beta: float) -> dict[str, Any]:
    """Returns method -> (student logits [1, C] -> scalar loss) for the distillation term or full objective."""
    tau, tau_a = temperature, alpha_temperature
    ce = lambda s: F.cross_entropy(s, y)
    if part == "distill":
        return {
            "CE": ce,
            "KD": lambda s: losses.kd_loss(s, t, tau),
            "DKD": lambda s: losses.dkd_loss(s, t, y, alpha, beta, tau),
            "LA": lambda s: losses.la_loss(s, t, y, tau),
            "RLD": lambda s: losses.rld_loss(s, t, y, alpha, beta, tau, tau_a),
            "TCKD": lambda s: alpha * losses.dkd_parts(s, t, y, tau)[0],
            "NCKD": lambda s: beta * losses.dkd_parts(s, t, y, tau)[1],
            "SCD": lambda s: alpha * losses.scd_loss(s, t, y, tau_a),
            "MCD": lambda s: beta * losses.mcd_loss(s, t, y, tau),
        }
    hyper = dict(epoch=_LATE_EPOCH, temperature=tau, alpha_temperature=tau_a, alpha=alpha, beta=beta)

    def objective(method: str) -> Any:
        return lambda s: losses.distillation_objective(method, s, t, y, **hyper)["loss"]

    return {name: objective(name.lower()) for name in GRADIENT_METHODS}


def per_class_gradients(student_logits: Any, teacher_logits: Any, label: int, *, temperature: float = 4.0,
                        alpha_temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0,
                        part: str = "distill") -> dict[str, np.ndarray]:
    """Returns method -> dL/dz^s [C] for one sample, by autograd through `kit.rld.losses`.

    part="distill": CE, and the distillation term alone of each method: KD = tau^2 KL (unweighted), DKD =
    alpha TCKD + beta NCKD, LA = KD on the swapped teacher, RLD = alpha SCD + beta MCD; plus the weighted parts
    TCKD, NCKD, SCD, MCD. part="objective": the full training loss of CE, KD, DKD, LA, RLD
    (`losses.distillation_objective`, past the warm-up) - the objective's own defaults for the CE and KD
    weights.
    """
    if part not in ("distill", "objective"):
        raise ValueError(f"part: expected 'distill' or 'objective', got {part!r}")
    s0 = as_logit_vector(student_logits, "student_logits")
    t = as_logit_vector(teacher_logits, "teacher_logits")
    if s0.numel() != t.numel():
        raise ValueError(f"student_logits: expected {t.numel()} logits (as teacher_logits), got {s0.numel()}")
    y = torch.tensor([check_label(label, t.numel())])
    fns = _loss_fns(y, t[None], part, check_positive("temperature", temperature),
                    check_positive("alpha_temperature", alpha_temperature), check_weight("alpha", alpha),
                    check_weight("beta", beta))
    out = {}
    for name, fn in fns.items():
        s = s0[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(s), s)
        out[name] = grad[0].detach().numpy()
    return out


def cosine(u: np.ndarray, v: np.ndarray, eps: float = 1e-12) -> float:
    """Returns cos(u, v) = u.v / (|u| |v|); 0 when either vector is (numerically) zero: no direction, no conflict."""
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu < eps or nv < eps:
        return 0.0
    return float(np.dot(u, v) / (nu * nv))


def gradient_cosines(student_logits: Any, teacher_logits: Any, label: int, **hyper: Any) -> dict[str, float]:
    """Returns method -> cos(dCE/dz^s, dL_distill/dz^s) for KD, DKD, LA, RLD and the parts TCKD, NCKD, SCD, MCD.

    Negative: the distillation term pulls the student against its label (the "conflict" of arXiv:2408.07703).
    `hyper`: the keyword arguments of `per_class_gradients` (part is always "distill").
    """
    grads = per_class_gradients(student_logits, teacher_logits, label, part="distill", **hyper)
    return {name: cosine(grads["CE"], g) for name, g in grads.items() if name != "CE"}


# --- experiment results ------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Returns (mean, sample std with ddof=1; 0 for a single value): the one summary of seeds the series uses."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def sweep_table(rows: Iterable[Mapping[str, Any]],
                differences: Sequence[tuple[str, str]] = DIFFERENCES) -> dict[str, Any]:
    """Returns the teacher-error sweep {teacher_error, method, seed, accuracy} rows shaped for plotting.

    Keys: "teacher_errors" [E] sorted ascending; "methods": names in order of first appearance; "mean",
    "std", "n": method -> [E] (std: sample std over seeds, ddof=1, 0 for one seed); "differences":
    "A - B" -> {"mean", "std", "n"} [E] of the per-seed differences acc_A - acc_B, paired on
    (teacher_error, seed). A cell with no data is NaN (n = 0): a gap in a plot. Method names in
    `differences` match case-insensitively; a pair naming an absent method is left out. Duplicate
    (teacher_error, method, seed) rows are refused.
    """
    acc: dict[tuple[float, str, Any], float] = {}
    methods: list[str] = []
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping) or not {"teacher_error", "method", "seed", "accuracy"} <= set(r):
            raise ValueError(f"rows: row {i} must be a dict with teacher_error, method, seed, accuracy; got {r!r}")
        e = round(check_real(f"rows[{i}]['teacher_error']", r["teacher_error"]), 12)
        method = str(r["method"])
        key = (e, method, r["seed"])
        if key in acc:
            raise ValueError(f"rows: duplicate row for teacher_error={e}, method={method!r}, seed={r['seed']!r}")
        acc[key] = check_real(f"rows[{i}]['accuracy']", r["accuracy"])
        if method not in methods:
            methods.append(method)
    if not acc:
        raise ValueError("rows: expected at least one row")
    errors = sorted({k[0] for k in acc})

    def stats(cells: Mapping[float, list[float]]) -> dict[str, np.ndarray]:
        ms = [mean_std(cells[e]) if cells.get(e) else (math.nan, math.nan) for e in errors]
        return {"mean": np.array([m for m, _ in ms]), "std": np.array([s for _, s in ms]),
                "n": np.array([len(cells.get(e, ())) for e in errors], dtype=np.int64)}

    per_method = {}
    for method in methods:
        cells: dict[float, list[float]] = {}
        for (e, m, _), a in acc.items():
            if m == method:
                cells.setdefault(e, []).append(a)
        per_method[method] = stats(cells)
    by_lower = {m.lower(): m for m in methods}
    diffs = {}
    for a_name, b_name in differences:
        a, b = by_lower.get(a_name.lower()), by_lower.get(b_name.lower())
        if a is None or b is None:
            continue
        cells = {}
        for (e, m, seed), v in acc.items():
            if m == a and (e, b, seed) in acc:
                cells.setdefault(e, []).append(v - acc[(e, b, seed)])
        diffs[f"{a} - {b}"] = stats(cells)
    return {"teacher_errors": np.array(errors), "methods": methods,
            "mean": {m: s["mean"] for m, s in per_method.items()},
            "std": {m: s["std"] for m, s in per_method.items()},
            "n": {m: s["n"] for m, s in per_method.items()}, "differences": diffs}


def alpha_beta_grid(grid: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (alphas [A], betas [B], accuracy [A, B]) from {(alpha, beta): accuracy or [accuracies]} or a
    tuple (alphas [A], betas [B], accuracy [A, B]).

    Lists of accuracies (seeds) are averaged. Grid points missing from the dict are NaN (blank cells).
    """
    if isinstance(grid, Mapping):
        if not grid:
            raise ValueError("grid: expected at least one (alpha, beta) entry")
        cells = {}
        for key, v in grid.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"grid: expected keys (alpha, beta), got {key!r}")
            a, b = (check_real("grid key", k) for k in key)
            vals = [check_real(f"grid[{key!r}]", x) for x in (v if isinstance(v, (list, tuple, np.ndarray)) else [v])]
            if not vals:
                raise ValueError(f"grid[{key!r}]: expected at least one accuracy")
            cells[(a, b)] = float(np.mean(vals))
        alphas = np.array(sorted({a for a, _ in cells}))
        betas = np.array(sorted({b for _, b in cells}))
        acc = np.full((alphas.size, betas.size), np.nan)
        for (a, b), v in cells.items():
            acc[np.searchsorted(alphas, a), np.searchsorted(betas, b)] = v
        return alphas, betas, acc
    if not (isinstance(grid, (tuple, list)) and len(grid) == 3):
        raise ValueError(f"grid: expected a dict {{(alpha, beta): accuracy}} or (alphas, betas, accuracy), "
                         f"got {type(grid).__name__}")
    alphas, betas, acc = (np.asarray(g, dtype=np.float64) for g in grid)
    if alphas.ndim != 1 or betas.ndim != 1 or acc.shape != (alphas.size, betas.size):
        raise ValueError(f"grid: expected alphas [A], betas [B], accuracy [A, B]; got shapes {alphas.shape}, "
                         f"{betas.shape}, {acc.shape}")
    return alphas, betas, acc


def gradient_readout(examples: Mapping[str, Mapping[str, Any]], **hyper: Any
                     ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """For named examples ({name: {"student_logits", "teacher_logits", "label"}}): ({name: `gradient_cosines`},
    {name: {method: dL/dz_y, the gradient on the true-class logit, for CE, KD, DKD, LA and RLD}}); ``hyper`` goes
    to both (temperature and the methods' weights)."""
    rows, true_class = {}, {}
    for name, ex in examples.items():
        rows[name] = gradient_cosines(ex["student_logits"], ex["teacher_logits"], ex["label"], **hyper)
        per_class = per_class_gradients(ex["student_logits"], ex["teacher_logits"], ex["label"], **hyper)
        true_class[name] = {m: float(g[ex["label"]]) for m, g in per_class.items()
                            if m in ("CE", "KD", "DKD", "LA", "RLD")}
    return rows, true_class
