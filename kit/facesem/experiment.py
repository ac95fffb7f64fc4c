"""Entry points of the facesem series (arXiv:2405.08487) on procedural faces: data per protocol, training of the
semantics-oriented detector (the label graph's HEX loss with Auto-lambda weighting its three levels) and of its
baselines (binary, multi-class, independent sigmoids on the same 12 nodes), and their evaluation.

Protocols (offline): ``"in_distribution"`` (every edit and generators A, B in training and test); ``"protocol1"``
(unseen method: test fakes made by generator C only); ``"protocol2"`` (unseen attribute: ``held_out`` edited
nowhere in training, the only edit of the test fakes). Test faces are always people no training face shows.
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
from kit.core.presets import preset as _preset
from kit.data.faces import EDITS, FaceSet, make_faces
from kit.facesem.autolambda import AutoLambda
from kit.facesem.graph import graph_loss, hex_marginals, impossible_rate, map_states
from kit.facesem.models import MODES, FaceDetector, build_detector

__all__ = ["FaceConfig", "PROTOCOLS", "preset", "make_data", "method_classes", "train", "evaluate", "fake_scores"]

PROTOCOLS = ("in_distribution", "protocol1", "protocol2")
Callback = Callable[[dict], None]


@dataclass(frozen=True)
class FaceConfig:
    """Everything a facesem run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    mode: str = "so"  # "so" | "sigmoid" | "binary" | "multiclass"
    backbone: str = "small"
    pretrained: bool = False
    protocol: str = "in_distribution"
    held_out: str = "smile"  # protocol2: the edit left out of training
    n_train: int = 3000
    n_val: int = 400
    n_test: int = 1000
    n_identities: int = 300
    size: int = 48
    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-3
    lambda_init: float = 1.0  # the authors' README
    lambda_lr: float = 1e-2  # [PROPOSED for a short CPU run; the authors: 1e-3 (Xception), 1e-4 (ViT)]
    eval_every: int = 100
    augment: float = 0.0  # probability of one of the authors' degradations per training face (theirs: 0.3)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.held_out not in EDITS:
            raise ValueError(f"held_out must be one of {EDITS}, got {self.held_out!r}")
        for name in ("n_train", "n_val", "n_test", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.lr <= 0 or self.lambda_lr <= 0:
            raise ValueError("steps must be >= 0 and the learning rates > 0")
        if not 0.0 <= self.augment <= 1.0:
            raise ValueError(f"augment must be a probability in [0, 1], got {self.augment}")


PRESETS = {
    "tiny": {"n_train": 600, "n_val": 150, "n_test": 300, "n_identities": 80, "steps": 60, "batch_size": 32,
             "eval_every": 30},
    "lite": {},
    "full": {"backbone": "xception", "pretrained": True, "size": 299, "batch_size": 32, "lr": 1e-4,
             "lambda_lr": 1e-3, "steps": 20_000, "eval_every": 1000, "augment": 0.3},
}


def preset(name: str = "tiny", **overrides) -> FaceConfig:
    """The :class:`FaceConfig` of preset ``name`` ("tiny", "lite", "full") with ``overrides``."""
    return _preset(FaceConfig, PRESETS, name, **overrides)


def make_data(cfg: FaceConfig) -> dict[str, FaceSet]:
    """{"train", "val", "test"} face sets of ``cfg.protocol``; validation is drawn like training, test from people
    no training face shows."""
    edits = tuple(e for e in EDITS if not (cfg.protocol == "protocol2" and e == cfg.held_out))
    kw = dict(size=cfg.size, n_identities=cfg.n_identities)
    train = make_faces(cfg.n_train, seed=cfg.seed, edits=edits, generators=("A", "B"), identity_seed=cfg.seed, **kw)
    val = make_faces(cfg.n_val, seed=cfg.seed + 500, edits=edits, generators=("A", "B"), identity_seed=cfg.seed,
                     **kw)
    test_edits = (cfg.held_out,) if cfg.protocol == "protocol2" else EDITS
    test_gens = ("C",) if cfg.protocol == "protocol1" else ("A", "B")
    test = make_faces(cfg.n_test, seed=cfg.seed + 1000, edits=test_edits, generators=test_gens,
                      identity_seed=cfg.seed + 1000, **kw)
    return {"train": train, "val": val, "test": test}


def method_classes(faces: FaceSet, methods: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(class int64 [N], methods): 0 for real, 1 + k for the k-th "edit/generator" method of the fakes."""
    names = [f"{e}/{g}" for e, g in zip(faces.edit, faces.generator)]
    fake = faces.is_fake.astype(bool)
    methods = list(methods) if methods is not None else sorted({n for n, f in zip(names, fake) if f})
    index = {m: k + 1 for k, m in enumerate(methods)}
    return np.array([index.get(n, 0) if f else 0 for n, f in zip(names, fake)], np.int64), methods


class _Batches:
    """``batch(step)`` -> (x float [B, 3, S, S], labels [B, 12], class [B]) drawn uniformly (a seeded generator);
    each face degraded by :func:`kit.facesem.augment.augment` with probability ``augment``."""

    def __init__(self, faces: FaceSet, classes: np.ndarray, batch_size: int, seed: int, augment: float = 0.0) -> None:
        self.images = faces.images
        self.x = torch.from_numpy(faces.images).permute(0, 3, 1, 2).contiguous()
        self.y, self.c = torch.from_numpy(faces.labels), torch.from_numpy(classes)
        self.batch_size, self.g = batch_size, torch.Generator().manual_seed(seed)
        self.augment, self.rng = float(augment), np.random.default_rng(seed)

    def __call__(self, step: int = 0):
        i = torch.randint(len(self.x), (self.batch_size,), generator=self.g)
        if self.augment > 0:
            from kit.facesem.augment import augment

            imgs = np.stack([augment(self.images[k], self.rng, self.augment) for k in i.tolist()])
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        else:
            x = self.x[i]
        return x.float() / 255.0, self.y[i], self.c[i]


def _level_losses(model: FaceDetector, mode: str, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x, y, c = batch
    f = model(x)
    if mode in ("so", "sigmoid"):
        probs = hex_marginals(f) if mode == "so" else torch.sigmoid(f)
        out = graph_loss(probs, y)
        return torch.stack([out["L1"], out["L2"], out["L3"]]), {}
    if mode == "binary":
        return F.binary_cross_entropy_with_logits(f[:, 0], y[:, 0].float()).reshape(1), {}
    return F.cross_entropy(f, c).reshape(1), {}


@dataclass
class TrainResult:
    model: FaceDetector
    history: list[dict] = field(default_factory=list)
    lambdas: list[list[float]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    seconds: float = 0.0
    best_metrics: dict[str, float] = field(default_factory=dict)


def train(cfg: FaceConfig, data: dict[str, FaceSet] | None = None, run: RunDir | None = None,
          callbacks: Sequence[Callback] = (), progress: bool = True) -> TrainResult:
    """Train ``cfg.mode`` on ``data["train"]`` (Adam; "so" weights L1 / L2 / L3 with Auto-lambda, whose second
    batch comes from another shuffled draw of the training set); the weights of the best validation AUC are kept."""
    data = data or make_data(cfg)
    seed_everything(cfg.seed)
    classes, methods = method_classes(data["train"])
    model = build_detector(cfg.mode, cfg.backbone, len(methods), cfg.pretrained)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = _Batches(data["train"], classes, cfg.batch_size, cfg.seed, cfg.augment)
    second = _Batches(data["train"], classes, cfg.batch_size, cfg.seed + 1, cfg.augment)
    auto = AutoLambda(model, 3, cfg.lambda_init, cfg.lambda_lr) if cfg.mode == "so" else None
    device = pick_device(cfg.device)

    def level_fn(m, batch):
        return _level_losses(m, cfg.mode, tuple(t.to(device) for t in batch))[0]

    def loss_fn(m: FaceDetector, batch, step: int) -> dict[str, torch.Tensor]:
        if auto is not None:
            auto.step(level_fn, batch, second(step), alpha=opt.param_groups[0]["lr"])
        levels = level_fn(m, batch)
        weights = auto.lambdas.detach() if auto is not None else torch.ones_like(levels)
        out = {"loss": (weights.to(levels) * levels).sum()}
        if len(levels) == 3:
            out.update({f"L{k + 1}": levels[k].detach() for k in range(3)})
        if auto is not None:
            out.update({f"lambda{k + 1}": float(auto.lambdas[k].detach()) for k in range(3)})
        return out

    def eval_fn(m: FaceDetector) -> dict[str, float]:
        ev = evaluate(m, cfg.mode, data["val"])
        return {"val_auc": ev["auc"], "val_acc": ev["acc"]}

    t0 = time.perf_counter()
    res = fit(model, loss_fn, batches, max_steps=cfg.steps, batch_size=cfg.batch_size, optimizer=opt,
              eval_fn=eval_fn, eval_every=cfg.eval_every, select="val_auc", run=run,
              checkpoint_every=cfg.eval_every if run is not None else 0, callbacks=callbacks, seed=cfg.seed,
              device=cfg.device, progress=progress, desc=f"facesem {cfg.mode}", log_every=5)
    model = res.model
    if res.best_state is not None:
        model.load_state_dict(res.best_state)
    return TrainResult(model.eval(), res.history, auto.history if auto else [], methods,
                       time.perf_counter() - t0, dict(res.best_metrics or res.metrics))


@torch.no_grad()
def _scores(model: FaceDetector, faces: FaceSet, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    x = torch.from_numpy(faces.images).permute(0, 3, 1, 2)
    out = torch.cat([model(x[i:i + batch_size].to(dev).float() / 255.0).cpu() for i in range(0, len(x), batch_size)])
    model.train(was)
    return out


def fake_scores(scores: torch.Tensor, mode: str) -> np.ndarray:
    """P(fake) [N] from a detector's raw ``scores`` [N, out]: the graph marginal of "fake" ("so"), the sigmoid of
    node 0 ("sigmoid", "binary"), 1 - P(real) ("multiclass")."""
    if mode == "so":
        return hex_marginals(scores)[:, 0].numpy()
    if mode in ("sigmoid", "binary"):
        return torch.sigmoid(scores[:, 0]).numpy()
    return (1 - torch.softmax(scores, 1)[:, 0]).numpy()


def evaluate(model: FaceDetector, mode: str, faces: FaceSet) -> dict[str, Any]:
    """{"auc", "acc" (at 0.5), "n"} of P(fake) on ``faces``; for the 12-node modes also "impossible_rate" (label sets
    thresholded at 0.5 that break the graph) and, for "so", "map_impossible_rate" (of its MAP legal states: 0)."""
    from kit.facesem.metrics import image_metrics

    s = _scores(model, faces)
    p = fake_scores(s, mode)
    out: dict[str, Any] = {**image_metrics(p, faces.is_fake), "n": int(len(p))}
    if mode in ("so", "sigmoid"):
        probs = hex_marginals(s) if mode == "so" else torch.sigmoid(s)
        out["impossible_rate"] = impossible_rate(probs)
        if mode == "so":
            out["map_impossible_rate"] = impossible_rate(map_states(s))
    return out
