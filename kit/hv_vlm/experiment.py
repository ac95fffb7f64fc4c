"""Entry points of the hv_vlm series (arXiv:2407.21788): data, Siamese training, and the verification table.

``load_data(cfg)`` builds writer-disjoint train / validation / test sets (synthetic writers offline, or CEDAR AND
crops under ``data_dir``) with the paper's pairing; ``train(cfg, run)`` fits the Siamese ResNet-18 on
:func:`kit.core.fit` (cross-entropy on raw logits, the best validation F1 kept, optional early stopping);
``evaluate(cfg, model)`` scores it beside the handcrafted baselines and an examiner backend on held-out writers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kit.core import RunDir, fit, pick_device, seed_everything
from kit.hv_vlm.config import HVConfig
from kit.hv_vlm.model import SiameseVerifier, load_imagenet_trunk, pair_logits
from kit.verification.metrics import pair_metrics
from kit.verification.pairs import PairData, RandomPairs, balanced_subset, load_pair_data

__all__ = ["HVData", "RandomPairs", "TrainResult", "balanced_subset", "build_model", "check_unseen", "evaluate",
           "load_data", "predict_pairs", "siamese_scores", "train"]

Callback = Callable[[dict], None]


HVData = PairData  # the series' name for the shared pair data


def load_data(cfg: HVConfig, train: bool = True) -> HVData:
    """Return the run's :class:`HVData`; ``train=False`` builds only the test writers and up to 200 labelled
    training writers (for fitting the baselines' thresholds), which is what evaluation needs."""
    return load_pair_data(source=cfg.data, data_dir=cfg.data_dir, n_writers=cfg.n_writers,
                          writer_seed=cfg.writer_seed, noise=cfg.noise, size=cfg.size,
                          samples_per_writer=cfg.samples_per_writer, split=cfg.split,
                          label_fraction=cfg.label_fraction, seed=cfg.seed,
                          max_train_writers=None if train else 200, skip_val=not train,
                          n_test_pairs=cfg.n_test_pairs)


def build_model(cfg: HVConfig) -> SiameseVerifier:
    """Return an untrained Siamese verifier of ``cfg`` (ImageNet trunk weights when ``cfg.pretrained``)."""
    model = SiameseVerifier(cfg.width, signed_difference=cfg.signed_difference)
    return load_imagenet_trunk(model) if cfg.pretrained else model


def siamese_scores(model: SiameseVerifier, data: HVData, pairs: np.ndarray) -> np.ndarray:
    """P(same writer) [P] of ``pairs`` under ``model``."""
    return torch.softmax(pair_logits(model, data.x, pairs), 1)[:, 1].numpy()


@dataclass
class TrainResult:
    model: SiameseVerifier
    history: list[dict] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # the kept (best) validation evaluation
    best_step: int | None = None
    seconds: float = 0.0
    steps: int = 0
    stopped_early: bool = False


def _loss(model: SiameseVerifier, batch) -> torch.Tensor:
    a, b, y = batch
    return F.cross_entropy(model(a, b), y)  # raw logits (the authors' softmax before it is a bug)


def train(cfg: HVConfig, run: RunDir | None = None, data: HVData | None = None, callbacks: Sequence[Callback] = (),
          progress: bool = True) -> TrainResult:
    """Return the Siamese ResNet-18 trained by ``cfg`` on the labelled training writers (Adam, cross-entropy).

    The weights of the best validation F1 are kept (early stopping after ``cfg.patience`` evaluations without a
    ``cfg.min_delta`` gain, as the authors stop on F1). With a ``run``, checkpoints go there and an interrupted run
    resumes.
    """
    data = data or load_data(cfg)
    if "val" not in data.pairs:
        raise ValueError("training needs validation writers (cfg.split gives the val split no writers)")
    seed_everything(cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = None
    if cfg.schedule == "onecycle" and cfg.steps > 0:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    idx = data.indices("train")
    sampler = RandomPairs(data.x, idx, data.writer_of[idx], cfg.batch_size)
    val = data.pairs["val"]

    def evaluate_val(model: SiameseVerifier) -> dict[str, float]:
        m = pair_metrics(siamese_scores(model, data, val), val[:, 2])
        return {f"val_{k}": v for k, v in m.items() if k in ("accuracy", "f1", "auc")}

    t0 = time.perf_counter()
    res = fit(model, _loss, sampler, max_steps=cfg.steps, batch_size=cfg.batch_size, optimizer=opt,
              scheduler=scheduler, eval_fn=evaluate_val, eval_every=cfg.eval_every, select="val_f1",
              patience=cfg.patience, min_delta=cfg.min_delta, run=run,
              checkpoint_every=cfg.eval_every if run is not None else 0, callbacks=callbacks, seed=cfg.seed,
              device=cfg.device, mixed_precision=cfg.mixed_precision, progress=progress, desc="Siamese ResNet-18",
              log_every=10)
    model = res.model
    if res.best_state is not None:
        model.load_state_dict(res.best_state)
    out = TrainResult(model.eval(), res.history, dict(res.best_metrics or res.metrics), res.best_step,
                      time.perf_counter() - t0, res.step, res.stopped_early)
    if run is not None:
        run.record("train", {"steps": out.steps, "seconds": out.seconds, "best_step": out.best_step,
                             "stopped_early": out.stopped_early, **out.metrics})
    return out


def predict_pairs(model: SiameseVerifier, data: HVData, pairs: np.ndarray, device: str = "auto") -> np.ndarray:
    """P(same writer) [P] of ``pairs`` [P, >=2] on ``device``."""
    model = model.to(pick_device(device))
    return siamese_scores(model, data, pairs)


def check_unseen(data: HVData, train_writers: Sequence, writer_seed: int, model_writer_seed: int) -> None:
    """Raise ValueError when a test writer of ``data`` was a training writer of the model being evaluated."""
    if data.source != "synthetic" or writer_seed != model_writer_seed:
        return
    seen = np.intersect1d(data.writers["test"], np.asarray(train_writers))
    if len(seen):
        raise ValueError(f"{len(seen)} test writers (e.g. {seen[:3].tolist()}) trained the model being evaluated; "
                         f"use another writer_seed (a new population) or the model's own test split")


def evaluate(cfg: HVConfig, model: SiameseVerifier | None = None, data: HVData | None = None,
             run: RunDir | None = None, examiner: Any = "offline", n_examiner_pairs: int = 200,
             progress: bool = True) -> dict[str, Any]:
    """Return the verification table on held-out writers: the Siamese model, the handcrafted baselines and an
    examiner backend, each with accuracy / precision / recall / F1 (positive = same writer) and coverage.

    ``model=None`` loads the committed model (its training writers must not be among the test writers).
    ``examiner``: "offline" (the :class:`OfflineExaminer`, fitted on training pairs), a ChatBackend, or None;
    it answers ``n_examiner_pairs`` balanced test pairs (the Siamese model and HOG cosine are scored on those too).
    """
    from kit.hv_vlm.assets import committed_results, load_pretrained
    from kit.hv_vlm.report import baseline_rows, examiner_rows

    data = data or load_data(cfg, train=False)
    if model is None:
        model = load_pretrained()
        info = committed_results()
        check_unseen(data, info["train_writers"], cfg.writer_seed, info["config"]["writer_seed"])
    test = data.pairs["test"]
    t0 = time.perf_counter()
    p_same = predict_pairs(model, data, test, cfg.device)
    seconds = time.perf_counter() - t0
    rows = [{"method": "Siamese ResNet-18", **pair_metrics(p_same, test[:, 2], threshold=0.5), "coverage": 1.0,
             "n_pairs": len(test)}]
    rows += baseline_rows(cfg, data, progress=progress)
    result: dict[str, Any] = {"rows": rows, "n_test_writers": len(data.writers["test"]),
                              "n_test_pairs": len(test), "siamese_seconds": seconds,
                              "scores": {"siamese": p_same, "labels": test[:, 2]}}
    if examiner is not None and n_examiner_pairs > 0:
        result.update(examiner_rows(cfg, data, examiner, model, n_examiner_pairs, progress=progress))
    if run is not None:
        for row in result["rows"]:
            run.record(f"test/{row['method']}", {k: v for k, v in row.items() if k != "method"})
    return result
