"""Entry points of the sslhv series (arXiv:2405.18320): data, self-supervised pre-training, and the downstream
verification of the pre-trained encoder.

``load_data(cfg)`` builds writer-disjoint writers and pairs (synthetic offline, CEDAR AND with ``data_dir``) with
every training writer's images for pre-training; ``pretrain(cfg, run)`` trains ``cfg.method`` on
:func:`kit.core.fit` on unlabelled images (the loss terms logged each step for the live curves, the validation
writers' intra- vs inter-writer cosine at each evaluation); ``frozen_head`` trains the authors' pair head on the
frozen embeddings of the labelled writers, ``finetune`` unfreezes the encoder at a low learning rate with its batch
norm frozen, and ``supervised`` trains the same encoder and head from scratch on the labelled writers' pairs: the
supervised Siamese baseline at equal architecture.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kit.core import RunDir, fit, pick_device, seed_everything
from kit.data.handwriting import label_subset
from kit.sslhv.config import SSLConfig
from kit.sslhv.encoders import build_encoder
from kit.sslhv.evaluation import PairHead, embed_all, intra_inter_cosine, pair_probabilities, train_pair_head
from kit.sslhv.losses import collapse_report
from kit.sslhv.methods import SSLMethod
from kit.verification.metrics import pair_metrics
from kit.verification.pairs import PairData, RandomPairs, load_pair_data

Callback = Callable[[dict], None]

__all__ = ["PairModel", "PretrainResult", "build_method", "finetune", "frozen_embeddings", "frozen_head",
           "labelled_pairs", "load_data", "pretrain", "pretrain_indices", "supervised", "test_metrics"]


def load_data(cfg: SSLConfig, progress: bool = True) -> PairData:
    """The run's images and pairs: every training writer's images (pre-training reads them without labels),
    ``pairs["train"]`` among the ``cfg.label_fraction`` labelled ones, validation and test pairs."""
    return load_pair_data(source=cfg.data, data_dir=cfg.data_dir, n_writers=cfg.n_writers,
                          writer_seed=cfg.writer_seed, noise=cfg.noise, size=cfg.size,
                          samples_per_writer=cfg.samples_per_writer, split=cfg.split,
                          label_fraction=cfg.label_fraction, seed=cfg.seed, split_seed=cfg.split_seed,
                          unlabelled=True, progress=progress)


def pretrain_indices(cfg: SSLConfig, data: PairData) -> np.ndarray:
    """Image indices pre-training reads: the training writers' (default) or every image (the authors' folder)."""
    return data.indices("train_all") if cfg.pretrain_writers == "train" else np.arange(len(data.writer_of))


def labelled_pairs(cfg: SSLConfig, data: PairData, fraction: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(writers, pairs [P, 3]) of the labelled training writers at ``fraction`` (default ``cfg.label_fraction``;
    at least 2 writers, the fewest that give different-writer pairs)."""
    if fraction is None or fraction == cfg.label_fraction:
        return data.writers["train"], data.pairs["train"]
    pool = data.writers["train_all"]
    writers = label_subset(pool, max(float(fraction), min(1.0, 2 / len(pool))), seed=cfg.seed)
    return writers, data.pairs_of(writers, seed=cfg.seed)


def build_method(cfg: SSLConfig) -> SSLMethod:
    """An untrained :class:`SSLMethod` of ``cfg``."""
    return SSLMethod(cfg.method, cfg.encoder, cfg.width, cfg.proj_scale, cfg.latent_dim,
                     vae_embedding=cfg.vae_embedding, size=cfg.size)


def _optimizer(kind: str, groups: list[dict], steps: int, schedule: str, momentum: float, weight_decay: float):
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(groups, lr=groups[0]["lr"], weight_decay=weight_decay)
    sched = None
    if schedule == "onecycle" and steps > 0:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups], total_steps=steps, pct_start=0.1)
    elif schedule == "cosine" and steps > 0:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    return opt, sched


class _Unlabelled:
    """``batch(step)`` -> images [B, 1, S, S] drawn uniformly from ``x[indices]`` (the global torch RNG)."""

    def __init__(self, x: torch.Tensor, indices: np.ndarray, batch_size: int) -> None:
        if len(indices) < 2:
            raise ValueError("pre-training needs at least 2 images")
        self.x, self.indices, self.batch_size = x, torch.as_tensor(indices), int(batch_size)

    def __call__(self, step: int) -> torch.Tensor:
        return self.x[self.indices[torch.randint(len(self.indices), (self.batch_size,))]]


@dataclass
class PretrainResult:
    method: SSLMethod
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def _embedding_check(method: SSLMethod, x: torch.Tensor, writer_of: np.ndarray) -> dict[str, float]:
    emb = embed_all(method.embed, x)
    cos = intra_inter_cosine(emb.cpu(), writer_of)
    rep = collapse_report(emb.cpu())
    return {"val_intra": cos["intra"], "val_inter": cos["inter"], "val_gap": cos["gap"],
            "val_std_min": float(rep["std_per_dim"].min()), "val_effective_rank": float(rep["effective_rank"])}


def pretrain(cfg: SSLConfig, run: RunDir | None = None, data: PairData | None = None,
             callbacks: Sequence[Callback] = (), progress: bool = True) -> PretrainResult:
    """Return ``cfg.method`` pre-trained for ``cfg.steps`` steps of ``cfg.batch_size`` unlabelled images.

    Each logged step carries the method's loss terms (VICReg's invariance / variance / covariance, Barlow Twins'
    on- / off-diagonal parts, the VAE's KL and reconstruction log-likelihood); each evaluation the validation
    writers' intra- and inter-writer cosine of the embeddings, their gap, the smallest per-dimension std and the
    effective rank (collapse shows as both falling). With a ``run``, checkpoints go there and an interrupted run
    resumes.
    """
    data = data or load_data(cfg, progress=progress)
    seed_everything(cfg.seed)
    method = build_method(cfg)
    opt, sched = _optimizer(cfg.optimizer, [{"params": list(method.parameters()), "lr": cfg.lr}], cfg.steps,
                            cfg.schedule, cfg.momentum, cfg.weight_decay)
    batches = _Unlabelled(data.x, pretrain_indices(cfg, data), cfg.batch_size)
    val = data.indices("val")
    eval_fn = (lambda m: _embedding_check(m, data.x[val], data.writer_of[val])) if len(val) else None

    def loss_fn(model: SSLMethod, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return model.training_loss(x, step, cfg.steps)

    t0 = time.perf_counter()
    res = fit(method, loss_fn, batches, max_steps=cfg.steps, batch_size=cfg.batch_size, optimizer=opt,
              scheduler=sched, eval_fn=eval_fn, eval_every=cfg.eval_every if eval_fn else 0, run=run,
              checkpoint_every=cfg.eval_every if run is not None else 0, callbacks=callbacks, seed=cfg.seed,
              device=cfg.device, mixed_precision=cfg.mixed_precision, progress=progress,
              desc=f"pre-train {cfg.method}", log_every=5)
    out = PretrainResult(res.model.eval(), res.history, time.perf_counter() - t0, res.step)
    if run is not None:
        run.record("pretrain", {"method": cfg.method, "steps": out.steps, "seconds": out.seconds, **res.metrics})
    return out


def frozen_embeddings(method: SSLMethod | nn.Module, data: PairData, device: str = "cpu") -> torch.Tensor:
    """Embeddings [N, D] (on the CPU) of every image of ``data`` under ``method.embed`` (or the module itself)."""
    method = method.to(pick_device(device))
    return _embed(method, data.x, next(method.parameters()).device)


def _embed(module: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    fn = module.embed if hasattr(module, "embed") else module
    was = module.training
    module.eval()
    with torch.no_grad():
        out = torch.cat([fn(x[i:i + 512].to(device)).cpu() for i in range(0, len(x), 512)])
    module.train(was)
    return out


def test_metrics(p_same: np.ndarray, pairs: np.ndarray) -> dict[str, float]:
    """{accuracy, precision, recall, f1, auc, n_pairs} of P(same writer) ``p_same`` on ``pairs`` [P, 3] at 0.5."""
    return {**pair_metrics(p_same, pairs[:, 2], threshold=0.5), "n_pairs": int(len(pairs))}


def frozen_head(cfg: SSLConfig, embeddings: torch.Tensor, data: PairData, fraction: float | None = None
                ) -> tuple[PairHead, dict[str, Any]]:
    """The authors' pair head on frozen ``embeddings`` [N, D], trained on the labelled writers' pairs at
    ``fraction`` (early stopping on validation F1), and {"test": metrics, "val_f1", "history"}."""
    _, train_pairs = labelled_pairs(cfg, data, fraction)
    head, history = train_pair_head(embeddings, train_pairs, data.pairs["val"], epochs=cfg.head_epochs,
                                    lr=cfg.head_lr, patience=cfg.head_patience, seed=cfg.seed)
    test = data.pairs["test"]
    return head, {"test": test_metrics(pair_probabilities(head, embeddings, test), test),
                  "val_f1": max(h["val_f1"] for h in history), "history": history}


class PairModel(nn.Module):
    """A Siamese verifier: one shared encoder, the authors' pair head; ``forward(a, b)`` -> logits [B, 2].

    With ``freeze_bn`` the encoder's batch-norm layers stay in eval mode (running statistics kept) when the model
    trains: the fine-tuning collapse guard [PROPOSED]."""

    def __init__(self, encoder: nn.Module, head: PairHead, freeze_bn: bool = False) -> None:
        super().__init__()
        self.encoder, self.head, self.freeze_bn = encoder, head, bool(freeze_bn)

    def train(self, mode: bool = True) -> PairModel:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        e = self.encoder(torch.cat([a, b]))
        return self.head(e[:len(a)], e[len(a):])


def _pair_loss(model: PairModel, batch) -> torch.Tensor:
    a, b, y = batch
    return F.cross_entropy(model(a, b), y)


def _train_pairs(cfg: SSLConfig, model: PairModel, data: PairData, writers: np.ndarray, steps: int,
                 groups: list[dict], schedule: str, desc: str, progress: bool, callbacks: Sequence[Callback] = ()
                 ) -> tuple[PairModel, dict[str, Any]]:
    idx = np.flatnonzero(np.isin(data.writer_of, writers))
    sampler = RandomPairs(data.x, idx, data.writer_of[idx], cfg.pair_batch)
    val = data.pairs["val"]

    def evaluate_val(m: PairModel) -> dict[str, float]:
        emb = _embed(m.encoder, data.x, next(m.parameters()).device)
        met = pair_metrics(_probs(m, emb, val), val[:, 2])
        return {"val_f1": met["f1"], "val_accuracy": met["accuracy"]}

    opt, sched = _optimizer("adam", groups, steps, schedule, 0.0, 0.0)
    every = max(1, steps // 5)
    t0 = time.perf_counter()
    res = fit(model, _pair_loss, sampler, max_steps=steps, batch_size=cfg.pair_batch, optimizer=opt,
              scheduler=sched, eval_fn=evaluate_val, eval_every=every, select="val_f1", seed=cfg.seed,
              device=cfg.device, progress=progress, desc=desc, log_every=5, callbacks=callbacks)
    model = res.model
    if res.best_state is not None:
        model.load_state_dict(res.best_state)
    model.eval().cpu()
    emb = _embed(model.encoder, data.x, torch.device("cpu"))
    test = data.pairs["test"]
    return model, {"test": test_metrics(_probs(model, emb, test), test),
                   "val_f1": float((res.best_metrics or res.metrics).get("val_f1", 0.0)), "history": res.history,
                   "seconds": time.perf_counter() - t0}


@torch.no_grad()
def _probs(model: PairModel, emb: torch.Tensor, pairs: np.ndarray) -> np.ndarray:
    head = model.head
    dev = next(head.parameters()).device
    return pair_probabilities(head, emb.to(dev), pairs)


def supervised(cfg: SSLConfig, data: PairData, fraction: float | None = None, progress: bool = True,
               callbacks: Sequence[Callback] = ()) -> tuple[PairModel, dict[str, Any]]:
    """The supervised Siamese baseline: ``cfg.encoder`` and the pair head trained from scratch on the labelled
    writers' pairs at ``fraction`` (Adam, one-cycle at ``cfg.supervised_lr``, fresh pairs every step, the best
    validation F1 kept); returns the model and {"test", "val_f1", "history", "seconds"}."""
    seed_everything(cfg.seed)
    kw = {"width": cfg.width} if cfg.encoder == "resnet18" else {}
    encoder = build_encoder(cfg.encoder, **kw)
    model = PairModel(encoder, PairHead(encoder.out_features))
    writers, _ = labelled_pairs(cfg, data, fraction)
    return _train_pairs(cfg, model, data, writers, cfg.supervised_steps,
                        [{"params": list(model.parameters()), "lr": cfg.supervised_lr}], "onecycle",
                        f"supervised {fraction or cfg.label_fraction:.0%}", progress, callbacks)


def finetune(cfg: SSLConfig, method: SSLMethod, head: PairHead, frozen_val_f1: float, data: PairData,
             fraction: float | None = None, progress: bool = True) -> tuple[PairModel, dict[str, Any]]:
    """The fine-tuned mode: ``method``'s encoder unfrozen at ``cfg.finetune_lr`` (the head at ``cfg.head_lr``),
    its batch norm frozen, started from the frozen-embedding ``head``, on the labelled pairs at ``fraction``.

    The collapse guard: batch-norm statistics stay those of pre-training, and when no fine-tuned evaluation beats
    the frozen model's validation F1 ``frozen_val_f1`` the frozen encoder and head are returned
    (``"kept_frozen": True``)."""
    seed_everything(cfg.seed)
    encoder = copy.deepcopy(method.encoder if method.name != "vae" or cfg.vae_embedding == "encoder"
                            else _VAEMean(method))
    model = PairModel(encoder, copy.deepcopy(head), freeze_bn=True)
    writers, _ = labelled_pairs(cfg, data, fraction)
    groups = [{"params": list(model.encoder.parameters()), "lr": cfg.finetune_lr},
              {"params": list(model.head.parameters()), "lr": cfg.head_lr}]
    tuned, out = _train_pairs(cfg, model, data, writers, cfg.finetune_steps, groups, "constant",
                              f"fine-tune {method.name}", progress)
    out["kept_frozen"] = bool(out["val_f1"] < frozen_val_f1)
    if out["kept_frozen"]:
        frozen = PairModel(copy.deepcopy(encoder), copy.deepcopy(head)).eval()
        emb = _embed(frozen.encoder, data.x, torch.device("cpu"))
        out["test"] = test_metrics(_probs(frozen, emb, data.pairs["test"]), data.pairs["test"])
        out["val_f1"] = frozen_val_f1
        return frozen, out
    return tuned, out


class _VAEMean(nn.Module):
    """The VAE's encoder and ``fc_mu`` as one module: the mean embedding, trainable (fine-tuning the VAE)."""

    def __init__(self, method: SSLMethod) -> None:
        super().__init__()
        self.encoder, self.fc_mu = method.vae.encoder, method.vae.fc_mu
        self.out_features = method.vae.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_mu(self.encoder(x))
