"""Entry points of the RLD series: teachers, students distilled with each method and the accuracy table
(arXiv:2408.07703); the sweeps over teachers and loss weights are in :mod:`kit.rld.sweeps`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from kit.core import RunDir, fit, pick_device
from kit.rld.config import RLDConfig
from kit.rld.data import cifar100_datasets, digits_split, imagenet_datasets, teacher_training_set
from kit.rld.explore import mean_std
from kit.rld.losses import distillation_objective, logit_standardization_hyper
from kit.rld.recipes import LIGHT_STUDENT_LR, is_light_student

Callback = Callable[[dict], None]


def make_mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Return an MLP with ReLU between the Linear layers of widths ``sizes`` (e.g. 64-256-256-10)."""
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least input and output widths, got {sizes}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class SeriesData:
    """Train/test datasets of a run, the teacher's training set, and the number of classes."""

    student_train: Dataset
    test: Dataset
    teacher_train: Dataset
    num_classes: int


def load_data(cfg: RLDConfig, teacher_data: str | None = None, teacher_n: int | None = None,
              label_noise: float | None = None) -> SeriesData:
    """Return the datasets of ``cfg.dataset`` (digits knobs overridable for the sweep)."""
    if cfg.dataset == "digits":
        split = digits_split(cfg.seed)
        teacher_set = teacher_training_set(split, teacher_data or cfg.teacher_data,
                                           cfg.teacher_n if teacher_n is None else teacher_n,
                                           cfg.label_noise if label_noise is None else label_noise, cfg.seed)
        return SeriesData(split.student, split.test, teacher_set, 10)
    if cfg.dataset == "cifar100":
        train, test = cifar100_datasets(cfg.data_dir, cfg.download)
        return SeriesData(train, test, train, 100)
    train, val = imagenet_datasets(cfg.data_dir)
    return SeriesData(train, val, train, len(train.classes))


def build_network(cfg: RLDConfig, name: str, num_classes: int, role: str) -> nn.Module:
    """Return the teacher or student network ``name`` ("mlp" on digits; a CIFAR or ImageNet model otherwise)."""
    if name == "mlp":
        return make_mlp([64, 256, 256, num_classes] if role == "teacher" else [64, 32, num_classes])
    if cfg.dataset == "imagenet":
        from kit.rld.models import imagenet_model

        return imagenet_model(name, pretrained=cfg.teacher_pretrained and role == "teacher")
    from kit.rld.models import build_model

    return build_model(name, num_classes)


class Distiller(nn.Module):
    """A student with a frozen teacher: ``forward(x)`` gives student logits; ``forward(x, y, step)`` the loss dict of
    ``method`` (the teacher runs in eval mode under no_grad, as in the authors' code)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, method: str, hyper: dict[str, Any],
                 steps_per_epoch: int):
        super().__init__()
        if method != "ce" and teacher is None:
            raise ValueError(f"method {method!r} needs a teacher")
        self.student, self.teacher, self.method = student, teacher, method
        self.hyper, self.steps_per_epoch = hyper, max(1, steps_per_epoch)
        if teacher is not None:
            teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int | None = None):
        logits = self.student(x)
        if y is None:
            return logits
        with torch.no_grad():
            t = self.teacher(x) if self.teacher is not None else logits.detach()
        epoch = (step or 0) // self.steps_per_epoch + 1
        return distillation_objective(self.method, logits, t, y, epoch, **self.hyper)


def loss_hyper(cfg: RLDConfig, method: str) -> dict[str, Any]:
    """Return the keyword arguments of :func:`kit.rld.losses.distillation_objective` for ``method`` from ``cfg``.

    DKD is weighted by ``dkd_alpha`` / ``dkd_beta``, RLD by ``alpha`` / ``beta``. With ``logit_standardization``
    the authors' whole recipe applies (tau ``ls_temperature``, weights x ``ls_weight``;
    :func:`kit.rld.losses.logit_standardization_hyper`), not the z-scoring alone.
    """
    alpha, beta = (cfg.dkd_alpha, cfg.dkd_beta) if method == "dkd" else (cfg.alpha, cfg.beta)
    hyper = {"ce_weight": cfg.ce_weight, "alpha": alpha, "beta": beta, "temperature": cfg.temperature,
             "alpha_temperature": cfg.alpha_temperature, "warmup_epochs": cfg.warmup,
             "kd_ce_weight": cfg.kd_ce_weight, "kd_weight": cfg.kd_weight, "logit_standardization": False}
    if cfg.logit_standardization and method != "ce":
        hyper = logit_standardization_hyper(method, hyper, cfg.ls_temperature, cfg.ls_weight)
    return hyper


def student_lr(cfg: RLDConfig) -> float:
    """Return the learning rate the student trains at: ``cfg.lr``, at most 0.01 for a MobileNetV2 / ShuffleNetV2
    student on CIFAR-100 under any of its names (the authors' ``tools/train.py`` asserts 0.01 for those)."""
    if is_light_student(cfg.student, cfg.dataset):
        return min(cfg.lr, LIGHT_STUDENT_LR)
    return cfg.lr


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, device: torch.device | None = None, batch_size: int = 512,
            num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (predicted classes [N], labels [N]) of ``model`` on ``data`` (eval mode, restored after); image
    datasets are read with ``num_workers`` loader processes."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    if isinstance(data, TensorDataset):
        batches = [(data.tensors[0][i:i + batch_size], data.tensors[1][i:i + batch_size])
                   for i in range(0, len(data), batch_size)]
    else:
        batches = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    preds, labels = [], []
    for x, y in batches:
        preds.append(model(x.to(device)).argmax(1).cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(preds), torch.cat(labels)


def _lr_lambda(milestone_steps: list[int], decay: float) -> Callable[[int], float]:
    return lambda step: decay ** sum(step >= m for m in milestone_steps)


def _sgd_fit(cfg: RLDConfig, model: nn.Module, params, data: Dataset, epochs: int, lr: float, run: RunDir,
             loss_fn, eval_fn, callbacks: Sequence[Callback], seed: int, desc: str):
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    milestones = [round(m * epochs) * steps_per_epoch for m in cfg.lr_milestones]
    opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(milestones, cfg.lr_decay))
    ckpt_every = 0 if cfg.dataset == "digits" else 10 * steps_per_epoch
    return fit(model, loss_fn, data, max_steps=epochs * steps_per_epoch, batch_size=cfg.batch_size,
               optimizer=opt, scheduler=sched, eval_fn=eval_fn, eval_every=steps_per_epoch,
               log_every=steps_per_epoch, run=run, checkpoint_every=ckpt_every, callbacks=callbacks, seed=seed,
               device=cfg.device, num_workers=cfg.num_workers, desc=desc)


@dataclass
class TeacherResult:
    """A teacher and how good it is: accuracy on its own training set, on the test set, and its error on the
    student's training set (where distillation happens)."""

    model: nn.Module
    test_acc: float
    error_on_student_train: float
    seconds: float = 0.0
    source: str = "trained"


def build_teacher(cfg: RLDConfig, num_classes: int) -> nn.Module:
    """Return the teacher network of ``cfg`` freshly initialised from ``cfg.seed`` (the global RNG is seeded
    first, so the same seed gives the same initial weights whatever ran before)."""
    torch.manual_seed(cfg.seed)
    return build_network(cfg, cfg.teacher, num_classes, "teacher")


def build_student(cfg: RLDConfig, num_classes: int, seed: int) -> nn.Module:
    """Return the student network of ``cfg`` freshly initialised from ``seed``: the start of every distillation
    run (the global RNG is seeded first, as in :func:`build_teacher`)."""
    torch.manual_seed(seed)
    return build_network(cfg, cfg.student, num_classes, "student")


def teacher_error_subset(cfg: RLDConfig, data: Dataset) -> Dataset:
    """Return the training images the teacher's error is measured on: all of ``data``, or a subset of
    ``cfg.teacher_error_samples`` images drawn with ``cfg.seed`` (ImageNet's 1.28 M images take hours)."""
    n = cfg.teacher_error_samples
    if n is None or n >= len(data):
        return data
    return Subset(data, torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))[:n].tolist())


def train_teacher(cfg: RLDConfig, run: RunDir, data: SeriesData) -> TeacherResult:
    """Return the teacher: loaded from ``cfg.teacher_checkpoint`` (CRD/mdistiller layout), torchvision weights, or
    trained here with cross-entropy (resumable in ``run``), from weights initialised with ``cfg.seed``."""
    t0 = time.perf_counter()
    model = build_teacher(cfg, data.num_classes)
    source = "trained"
    if cfg.teacher_checkpoint:
        from kit.rld.models import load_mdistiller_checkpoint

        load_mdistiller_checkpoint(model, cfg.teacher_checkpoint)
        source = f"checkpoint {cfg.teacher_checkpoint}"
    elif cfg.dataset == "imagenet" and cfg.teacher_pretrained:
        source = "torchvision pretrained"
    elif cfg.dataset == "digits":
        def ce(m, b):
            return nn.functional.cross_entropy(m(b[0]), b[1])

        steps = cfg.teacher_epochs * math.ceil(len(data.teacher_train) / cfg.batch_size)
        model = fit(model, ce, data.teacher_train, max_steps=steps, batch_size=cfg.batch_size,
                    lr=cfg.teacher_lr, run=run, log_every=0, seed=cfg.seed, device=cfg.device,
                    desc="teacher").model
    else:
        def ce(m, b):
            return nn.functional.cross_entropy(m(b[0]), b[1])

        model = _sgd_fit(cfg, model, model.parameters(), data.teacher_train, cfg.teacher_epochs, cfg.teacher_lr,
                         run, ce, None, (), cfg.seed, "teacher").model
    device = pick_device(cfg.device)
    model = model.to(device).eval()
    p_test, y_test = predict(model, data.test, device, num_workers=cfg.num_workers)
    measured = teacher_error_subset(cfg, data.student_train)
    p_st, y_st = predict(model, measured, device, num_workers=cfg.num_workers)
    result = TeacherResult(model, float((p_test == y_test).float().mean()), float((p_st != y_st).float().mean()),
                           time.perf_counter() - t0, source)
    run.record("teacher", {"test_acc": result.test_acc, "error_on_student_train": result.error_on_student_train,
                           "error_measured_on": len(measured), "source": source, "network": cfg.teacher})
    return result


@dataclass
class StudentResult:
    """One distilled student: best and last test accuracy over epochs, and accuracy on the test samples the
    teacher gets wrong."""

    method: str
    seed: int
    model: nn.Module
    best_acc: float
    last_acc: float
    best_epoch: int
    acc_on_teacher_wrong: float | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_student(cfg: RLDConfig, run: RunDir, method: str, seed: int, teacher: nn.Module | None,
                  data: SeriesData, callbacks: Sequence[Callback] = ()) -> StudentResult:
    """Return a :class:`StudentResult` for ``method`` distilled from ``teacher`` with ``seed`` (resumable in run)."""
    student = build_student(cfg, data.num_classes, seed)
    lr = student_lr(cfg)
    steps_per_epoch = math.ceil(len(data.student_train) / cfg.batch_size)
    distiller = Distiller(student, teacher if method != "ce" else None, method, loss_hyper(cfg, method),
                          steps_per_epoch)
    device = pick_device(cfg.device)
    wrong_mask = None
    if teacher is not None:
        p_t, y_t = predict(teacher.to(device), data.test, device, num_workers=cfg.num_workers)
        wrong_mask = p_t != y_t

    def loss_fn(m, batch, step):
        return m(batch[0], batch[1], step)

    def eval_fn(m):
        pred, y = predict(m.student, data.test, num_workers=cfg.num_workers)
        out = {"test_acc": float((pred == y).float().mean())}
        if wrong_mask is not None and wrong_mask.any():
            out["acc_on_teacher_wrong"] = float((pred[wrong_mask] == y[wrong_mask]).float().mean())
        return out

    res = _sgd_fit(cfg, distiller, student.parameters(), data.student_train, cfg.epochs, lr, run, loss_fn,
                   eval_fn, callbacks, seed, f"{method} seed {seed}")
    evals = [e for e in res.history if e["kind"] == "eval"]
    if not evals:
        raise ValueError(f"no evaluation was recorded for {method} seed {seed}")
    best = max(evals, key=lambda e: e["test_acc"])
    out = StudentResult(method, seed, res.model.student, best["test_acc"], evals[-1]["test_acc"],
                        best["step"] // steps_per_epoch, evals[-1].get("acc_on_teacher_wrong"), res.history,
                        res.seconds)
    run.record("result", {"method": method, "seed": seed, "best_acc": out.best_acc, "last_acc": out.last_acc,
                          "best_epoch": out.best_epoch, "acc_on_teacher_wrong": out.acc_on_teacher_wrong, "lr": lr})
    return out


@dataclass
class TrainResult:
    """A teacher and the students of every method and seed."""

    teacher: TeacherResult
    students: list[StudentResult]


def train(cfg: RLDConfig, run: RunDir, callbacks: Sequence[Callback] = (), seeds: Sequence[int] | None = None
          ) -> TrainResult:
    """Return the teacher and one student per method in ``cfg.methods`` and seed (all resumable in ``run``).

    Callback events carry the method in their keys (``"rld/test_acc"``), so one live curve can show them all.
    """
    data = load_data(cfg)
    teacher = train_teacher(cfg, run.sub("teacher"), data)
    students = []
    for seed in (cfg.seeds if seeds is None else seeds):
        for method in cfg.methods:
            def tagged(event: dict, _m=method) -> None:
                ev = {k if k in ("step", "kind") else f"{_m}/{k}": v for k, v in event.items()}
                for cb in callbacks:
                    cb(ev)

            students.append(train_student(cfg, run.sub(f"{method}_seed{seed}"), method, seed, teacher.model,
                                          data, [tagged] if callbacks else ()))
    result = TrainResult(teacher, students)
    run.record("students", [{"method": s.method, "seed": s.seed, "best_acc": s.best_acc, "last_acc": s.last_acc,
                             "acc_on_teacher_wrong": s.acc_on_teacher_wrong} for s in students])
    return result


def accuracy_table(students: Sequence[StudentResult]) -> list[dict[str, Any]]:
    """Return one row per method: mean and std over seeds of best and last accuracy, and of the accuracy on the
    test samples the teacher gets wrong."""
    rows = []
    for method in dict.fromkeys(s.method for s in students):
        mine = [s for s in students if s.method == method]
        best_m, best_s = mean_std([s.best_acc for s in mine])
        last_m, last_s = mean_std([s.last_acc for s in mine])
        wrong = [s.acc_on_teacher_wrong for s in mine if s.acc_on_teacher_wrong is not None]
        row = {"method": method, "seeds": len(mine), "best_mean": best_m, "best_std": best_s,
               "last_mean": last_m, "last_std": last_s}
        if wrong:
            row["teacher_wrong_mean"], row["teacher_wrong_std"] = mean_std(wrong)
        rows.append(row)
    return rows
