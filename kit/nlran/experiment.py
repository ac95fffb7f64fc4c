"""Entry points of the NL-RAN series: the data of a run, training one network (NL-RAN or a baseline) on
``kit.core.fit`` with the best validation macro-AUC kept, prediction, the comparison table, and the heat-map scores
of the attention masks against CAM and Grad-CAM.

Normalisation (spec §6): with BatchNorm at batch 8 the running statistics that eval mode uses lagged the weights,
and a prototype scored far worse in eval mode than in train mode. Evaluating in train mode would be wrong (a
prediction would depend on the rest of its batch). The fix here [C]: after training (and before each validation)
the BatchNorm statistics are re-estimated on training batches with the weights frozen ("precise BN",
:func:`kit.nlran.models.recalibrate_batchnorm`); ``norm="group"`` is the alternative with no statistics at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kit.core import RunDir, fit, pick_device, save_weights
from kit.nlran.config import NLRANConfig
from kit.nlran.metrics import REPORT_KEYS

Callback = Callable[[dict], None]


@dataclass
class SeriesData:
    """Train / validation / test datasets of a run; items are (x float32 [1, D, H, W], y int64)."""

    train: Dataset
    val: Dataset
    test: Dataset
    source: str


def load_data(cfg: NLRANConfig) -> SeriesData:
    """Return the datasets of ``cfg``: disjoint phantom streams (seeds ``seed``, ``seed + 1``, ``seed + 2``), or the
    real CC-CCII / NIfTI folders split by patient in the paper's 3263/408/408 proportions."""
    if cfg.data == "phantom":
        from kit.nlran.data import PhantomDataset

        if len(set(cfg.size)) != 1:
            raise ValueError(f"phantoms are cubes: size must be (n, n, n), got {cfg.size}")
        knobs: dict[str, Any] = {"noise_hu": cfg.noise_hu, "layout": cfg.phantom_layout}
        if cfg.blob_radius is not None:
            knobs["blob_radius"] = tuple(cfg.blob_radius)
        n = cfg.size[0]
        sets = [PhantomDataset(k, seed=cfg.seed * 1000 + j, size=n, cache=True, **knobs)
                for j, k in enumerate((cfg.n_train, cfg.n_val, cfg.n_test))]
        return SeriesData(*sets, source=f"phantoms {n}^3 ({cfg.phantom_layout} layout)")
    from kit.nlran import data as real

    kind = real.CCCIIDataset if cfg.data == "ccccii" else real.NiftiDataset

    def make(split: str, augment: bool) -> Dataset:
        return kind(cfg.data_dir, split=split, size=cfg.size, seed=cfg.seed, skip_bad=cfg.skip_bad, augment=augment,
                    fractions=cfg.split)

    name = "CC-CCII" if cfg.data == "ccccii" else "NIfTI volumes"
    return SeriesData(make("train", cfg.augment), make("val", False), make("test", False),
                      source=f"{name} at {cfg.data_dir}")


def build(cfg: NLRANConfig, name: str | None = None) -> nn.Module:
    """Return a fresh network ``name`` (default ``cfg.model``) at the preset's size, seeded by ``cfg.seed``."""
    from kit.nlran.baselines import build_model

    torch.manual_seed(cfg.seed)
    return build_model(name or cfg.model, preset=cfg.model_preset, num_classes=3, in_channels=1, norm=cfg.norm)


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, batch_size: int = 16, device: torch.device | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels [N] int, class probabilities [N, 3]) of ``model`` on ``data``, in eval mode (restored after)."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    ys, ps = [], []
    for x, y in DataLoader(data, batch_size=batch_size, shuffle=False):
        ps.append(torch.softmax(model(x.to(device)).float(), 1).cpu())
        ys.append(y)
    model.train(was_training)
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _recalibrate(model: nn.Module, data: Dataset, batch_size: int, max_batches: int = 32) -> None:
    from kit.nlran.models import recalibrate_batchnorm

    device = next(model.parameters()).device
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    recalibrate_batchnorm(model, (x.to(device) for x, _ in loader), max_batches=max_batches)


@dataclass
class TrainedModel:
    """A trained network and its record: the validation curve, the best validation macro-AUC and when it was
    reached, and the training time (wall and this process's CPU seconds)."""

    name: str
    model: nn.Module
    best_val_auc: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    params: int = 0


def train_model(cfg: NLRANConfig, data: SeriesData, name: str | None = None, run: RunDir | None = None,
                callbacks: Sequence[Callback] = ()) -> TrainedModel:
    """Return network ``name`` trained with cross-entropy (class-balanced weights), Adam, ``cfg.epochs`` epochs;
    after every epoch the BatchNorm statistics are re-estimated (when ``cfg.recalibrate_bn``) and the validation
    macro-AUC is measured in eval mode; the weights of the best epoch are returned. Resumable in ``run``."""
    from kit.nlran.metrics import classification_report
    from kit.nlran.models import count_parameters

    name = name or cfg.model
    model = build(cfg, name)
    labels = _labels(data.train)
    counts = np.bincount(labels, minlength=3).astype(float)
    weight = torch.tensor(counts.sum() / (3 * np.maximum(counts, 1)), dtype=torch.float32)
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)

    def loss_fn(m, batch):
        x, y = batch
        return nn.functional.cross_entropy(m(x), y, weight=weight.to(x.device))

    def eval_fn(m, step):
        epoch = step // steps_per_epoch  # from the step, so a resumed run numbers its epochs as an uninterrupted one
        if cfg.recalibrate_bn and _has_batchnorm(m):
            _recalibrate(m, data.train, cfg.batch_size)
        y, p = predict(m, data.val)
        rep = classification_report(y, p)
        return {"val_auc": rep["auc_macro"], "val_accuracy": rep["accuracy"], "epoch": epoch}

    opt = lambda params: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # noqa: E731
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit(model, loss_fn, data.train, max_steps=cfg.epochs * steps_per_epoch, batch_size=cfg.batch_size,
              optimizer=opt, eval_fn=eval_fn, eval_every=steps_per_epoch, select="val_auc",
              log_every=max(1, steps_per_epoch // 4), run=run,
              checkpoint_every=0 if run is None else steps_per_epoch * 5, callbacks=callbacks, patience=cfg.patience,
              seed=cfg.seed, device=cfg.device, num_workers=cfg.num_workers, desc=f"train {name}")
    model = res.model
    if res.best_state is not None:  # the best epoch's weights (kept in every checkpoint, so resuming returns them)
        model.load_state_dict(res.best_state)
    model.eval()
    return TrainedModel(name, model, float(res.best_metrics.get("val_auc", float("nan"))),
                        int(res.best_metrics.get("epoch", 0)),
                        [e for e in res.history if e["kind"] == "eval"], time.perf_counter() - t0,
                        time.process_time() - c0, count_parameters(model))


def _labels(data: Dataset) -> np.ndarray:
    if hasattr(data, "labels"):
        return np.asarray(data.labels, dtype=int)
    return np.array([int(data[i][1]) for i in range(len(data))])


def evaluate(model: nn.Module, data: Dataset) -> dict[str, Any]:
    """Return :func:`kit.nlran.metrics.classification_report` of ``model`` on ``data`` (eval mode)."""
    from kit.nlran.metrics import classification_report

    y, p = predict(model, data)
    return classification_report(y, p)


def compare(cfg: NLRANConfig, data: SeriesData, names: Sequence[str] | None = None, run: RunDir | None = None,
            callbacks: Sequence[Callback] = ()) -> dict[str, dict[str, Any]]:
    """Return {name: {"trained": TrainedModel, "test": report}} for NL-RAN and the baselines on the same data."""
    names = list(names) if names is not None else [cfg.model, *cfg.baselines]
    out = {}
    for name in names:
        tm = train_model(cfg, data, name, run=None if run is None else run.sub(name), callbacks=callbacks)
        out[name] = {"trained": tm, "test": evaluate(tm.model, data.test)}
    return out



def report_rows(reports: dict[str, dict[str, Any]], info: dict[str, dict[str, Any]] | None = None
                ) -> list[dict[str, Any]]:
    """Return one JSON-able row per model: the test numbers ``REPORT_KEYS`` of its classification report, plus
    whatever ``info[name]`` adds (parameters, training seconds, ...)."""
    info = info or {}
    return [{"model": name, **{k: r[k] for k in REPORT_KEYS}, **info.get(name, {})} for name, r in reports.items()]


def comparison_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return :func:`report_rows` of :func:`compare`'s results, with the best validation AUC and epoch, parameters
    and training seconds (wall and CPU) of each model."""
    return report_rows({n: r["test"] for n, r in results.items()}, {
        n: {"best_val_auc": tm.best_val_auc, "best_epoch": tm.best_epoch, "params": tm.params,
            "train_seconds": round(tm.seconds, 1), "train_cpu_seconds": round(tm.cpu_seconds, 1)}
        for n, tm in ((n, r["trained"]) for n, r in results.items())})


def device_of(cfg: NLRANConfig) -> torch.device:
    """Return the device ``cfg.device`` resolves to."""
    return pick_device(cfg.device)


def train(cfg: NLRANConfig, run: RunDir, callbacks: Sequence[Callback] = ()) -> TrainedModel:
    """Return ``cfg.model`` trained on ``cfg``'s data (the entry point of ``python -m kit train nlran`` and of
    ``accelerate launch -m kit train nlran -p preset full -p data_dir ...``): resumable in ``run/<model>/``, the best
    epoch's weights written to ``run/<model>.safetensors`` and the test report recorded as "test"."""
    data = load_data(cfg)
    trained = train_model(cfg, data, cfg.model, run=run.sub(cfg.model), callbacks=callbacks)
    report = evaluate(trained.model, data.test)
    if run.is_main:
        save_weights(trained.model, run.path / f"{cfg.model}.safetensors", dtype=torch.float32)
    run.record("trained", {"model": cfg.model, "best_val_auc": trained.best_val_auc, "best_epoch": trained.best_epoch,
                           "params": trained.params, "seconds": round(trained.seconds, 1),
                           "cpu_seconds": round(trained.cpu_seconds, 1), "test_volumes": len(data.test)})
    run.record("test", report)
    return trained
