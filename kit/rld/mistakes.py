"""A trained teacher's mistakes and a student's first steps on them (Refined Logit Distillation, arXiv:2408.07703).

`teacher_mistakes` finds the test items a teacher gets wrong; `student_steps` takes a few plain SGD steps on one of
them from one student start under each method's training objective (`kit.rld.losses.distillation_objective`, past
the warm-up) and returns the student's logits after every step; `mistake_outcomes` counts, over all the mistakes,
how often the student's top-1 is the true class (or the teacher's wrong class) after those steps. On a wrong
teacher KD pulls the student towards the teacher's class; RLD's SCD pulls the true class up to the teacher's top
confidence and its MCD leaves the classes ranked at or above the label alone, so the true class stays on top.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kit.rld.checks import as_logit_vector, check_index, check_label, check_positive, check_weight
from kit.rld.config import RLDConfig, preset
from kit.rld.experiment import build_student, loss_hyper
from kit.rld.losses import METHODS, distillation_objective

__all__ = ["STEP_METHODS", "TeacherMistakes", "mistake_outcomes", "student_steps", "teacher_mistakes"]

STEP_METHODS = ("kd", "rld")
# An epoch past every warm-up, so that each objective carries its whole distillation weight.
_LATE_EPOCH = 10**6
_HYPER_FIELDS = {"temperature": ("temperature",), "alpha_temperature": ("alpha_temperature",),
                 "alpha": ("alpha", "dkd_alpha"), "beta": ("beta", "dkd_beta")}


@dataclass(frozen=True)
class TeacherMistakes:
    """The items of a dataset a teacher gets wrong, most confident mistake first.

    index [K]: positions in the dataset; inputs [K, ...]: the items; labels [K]: true classes; teacher_class [K]:
    the teacher's argmax; teacher_logits [K, C] float64; margin [K]: z^t_m - z^t_y (> 0: how sure the teacher is
    of its wrong class); n_items: the dataset's size.
    """

    index: np.ndarray
    inputs: torch.Tensor
    labels: np.ndarray
    teacher_class: np.ndarray
    teacher_logits: np.ndarray
    margin: np.ndarray
    n_items: int

    def __len__(self) -> int:
        return len(self.index)

    def item(self, i: int) -> dict[str, Any]:
        """Returns mistake ``i`` (0 <= i < len): {"index", "x" [...], "label", "teacher_class", "teacher_logits" [C],
        "margin"}."""
        i = check_index("i", i, len(self), "teacher mistakes")
        return {"index": int(self.index[i]), "x": self.inputs[i], "label": int(self.labels[i]),
                "teacher_class": int(self.teacher_class[i]), "teacher_logits": self.teacher_logits[i],
                "margin": float(self.margin[i])}


def _tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, TensorDataset):
        data = data.tensors
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(f"data: expected a TensorDataset or (inputs [N, ...], labels [N]), got {type(data).__name__}")
    x, y = (torch.as_tensor(d) for d in data)
    if y.dim() != 1 or len(x) != len(y):
        raise ValueError(f"data: expected inputs [N, ...] and labels [N], got shapes {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    if len(y) == 0:
        raise ValueError("data: expected at least one item, got an empty dataset")
    return x, y.long()


@torch.no_grad()
def teacher_mistakes(teacher: nn.Module, data: Any, k: int | None = None, batch_size: int = 512) -> TeacherMistakes:
    """Returns the items of ``data`` (a TensorDataset or (inputs [N, ...], labels [N])) that ``teacher`` gets
    wrong (argmax != label), sorted by the teacher's margin z^t_m - z^t_y, largest first; ``k``: only the first
    k. A teacher that gets every item right gives an empty result (len 0). The teacher runs in eval mode on its
    own device; its mode is restored after."""
    x, y = _tensors(data)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be None or an int >= 1, got {k!r}")
    was_training = teacher.training
    teacher.eval()
    try:
        device = next(teacher.parameters()).device
        z = torch.cat([teacher(x[i:i + batch_size].to(device)).float().cpu()
                       for i in range(0, len(y), batch_size)]).double()
    finally:
        teacher.train(was_training)
    if z.dim() != 2 or z.shape[0] != len(y) or int(y.max()) >= z.shape[1]:
        raise ValueError(f"teacher: expected logits [N, C] with C > every label, got shape {tuple(z.shape)}")
    top = z.argmax(1)
    wrong = (top != y).nonzero().flatten()
    margin = z[wrong, top[wrong]] - z[wrong, y[wrong]]
    order = wrong[torch.argsort(-margin, stable=True)][:k]
    return TeacherMistakes(order.numpy(), x[order], y[order].numpy(), top[order].numpy(), z[order].numpy(),
                           (z[order, top[order]] - z[order, y[order]]).numpy(), len(y))


def _step_config(cfg: RLDConfig | None, hyper: dict[str, float]) -> RLDConfig:
    cfg = preset("tiny") if cfg is None else cfg
    unknown = set(hyper) - set(_HYPER_FIELDS)
    if unknown:
        raise ValueError(f"unknown hyper-parameters {sorted(unknown)}; valid: {sorted(_HYPER_FIELDS)}")
    values = {}
    for name, v in hyper.items():
        v = check_positive(name, v) if "temperature" in name else check_weight(name, v)
        values.update(dict.fromkeys(_HYPER_FIELDS[name], v))
    return replace(cfg, **values)


def student_steps(student: nn.Module | None, x: Any, teacher_logits: Any, label: int, *,
                  methods: Sequence[str] = STEP_METHODS, steps: int = 20, lr: float = 0.01, seed: int = 0,
                  cfg: RLDConfig | None = None, **hyper: float) -> dict[str, np.ndarray]:
    """Returns method -> the student's logits [steps + 1, C] (float64; row 0: the start, the same for every method)
    over ``steps`` plain SGD steps (learning rate ``lr``, no momentum or weight decay) on the one item ``x`` with
    true class ``label`` and teacher logits z^t [C], each method from its own copy of the same start.

    The loss is each method's training objective past the warm-up (`distillation_objective` with
    `experiment.loss_hyper(cfg, method)`: KD = 0.1 CE + 0.9 tau^2 KL, RLD = CE + alpha SCD + beta MCD, ...).
    ``student`` None starts from `experiment.build_student(cfg, C, seed)`, the network every student of ``cfg``
    starts from with that seed; ``seed`` also seeds torch's RNG before each method's steps, so the result is
    deterministic. ``cfg`` None: the "tiny" preset; ``hyper``: temperature, alpha_temperature, alpha, beta
    (alpha / beta weight both RLD's SCD / MCD and DKD's TCKD / NCKD).
    """
    t = as_logit_vector(teacher_logits, "teacher_logits")
    C = t.numel()
    y = torch.tensor([check_label(label, C)])
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    lr = check_positive("lr", lr)
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise ValueError(f"methods must name at least one of {METHODS}, got {tuple(methods)!r}")
    cfg = _step_config(cfg, hyper)
    start = build_student(cfg, C, seed) if student is None else student
    x = torch.as_tensor(x)
    out = {}
    for method in methods:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = copy.deepcopy(start).float().train()
            device = next(net.parameters()).device
            xb, tb, yb = x.to(device).float()[None], t.to(device).float()[None], y.to(device)
            opt = torch.optim.SGD(net.parameters(), lr=lr)
            hyper_m = loss_hyper(cfg, method)
            rows = []
            for k in range(steps + 1):
                z = net(xb)
                if z.shape != (1, C):
                    raise ValueError(f"student: expected logits [1, {C}] (as teacher_logits) for one item, "
                                     f"got shape {tuple(z.shape)}")
                rows.append(z[0].detach().double().cpu())
                if k == steps:
                    break
                loss = distillation_objective(method, z, tb, yb, _LATE_EPOCH, **hyper_m)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()
        out[method] = torch.stack(rows).numpy()
    return out


def mistake_outcomes(mistakes: TeacherMistakes, student: nn.Module | None = None, *,
                     methods: Sequence[str] = STEP_METHODS, steps: int = 20, lr: float = 0.01, seed: int = 0,
                     cfg: RLDConfig | None = None, **hyper: float) -> dict[str, Any]:
    """Returns what `student_steps` does on every teacher mistake, from one student start:

    {"n_mistakes", "steps", "lr", "seed", "start_true_top1": how many start with the true class on top,
    "true_top1": method -> how many end with the true class on top, "teacher_top1": method -> how many end on the
    teacher's wrong class, "true_top1_rate": method -> the share, "digits": one row per mistake {index, label,
    teacher_class, start_top1, final_top1: {method: class}}}. Raises ValueError on an empty set of mistakes.
    """
    if len(mistakes) == 0:
        raise ValueError("mistakes: expected at least one teacher mistake, got an empty set (the teacher gets "
                         "every item right)")
    rows = []
    for i in range(len(mistakes)):
        m = mistakes.item(i)
        traj = student_steps(student, m["x"], m["teacher_logits"], m["label"], methods=methods, steps=steps, lr=lr,
                             seed=seed, cfg=cfg, **hyper)
        rows.append({"index": m["index"], "label": m["label"], "teacher_class": m["teacher_class"],
                     "start_top1": int(np.argmax(next(iter(traj.values()))[0])),
                     "final_top1": {k: int(np.argmax(v[-1])) for k, v in traj.items()}})
    true = {k: sum(r["final_top1"][k] == r["label"] for r in rows) for k in methods}
    return {"n_mistakes": len(rows), "steps": steps, "lr": lr, "seed": seed,
            "start_true_top1": sum(r["start_top1"] == r["label"] for r in rows), "true_top1": true,
            "teacher_top1": {k: sum(r["final_top1"][k] == r["teacher_class"] for r in rows) for k in methods},
            "true_top1_rate": {k: v / len(rows) for k, v in true.items()}, "digits": rows}
