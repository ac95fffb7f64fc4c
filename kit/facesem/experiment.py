"""Entry points of the facesem series (arXiv:2405.08487) on procedural faces: data per protocol, training of the
semantics-oriented detector (the label graph's HEX loss with Auto-lambda weighting its three levels) and of its
baselines (binary, multi-class, independent sigmoids on the same 12 nodes), and their evaluation.

Protocols (offline): ``"in_distribution"`` (every edit and generators A, B in training and test); ``"protocol1"``
(unseen method: test fakes made by generator C only); ``"protocol2"`` (unseen attribute: ``held_out`` edited
nowhere in training, the only edit of the test fakes). Test faces are always people no training face shows.

Real data (``data_dir=``: FFSC in its published layout, kit.data.ffsc): training and validation read the authors'
list files (Protocol-2: those in the held-out attribute's folder); Protocol-1 and Protocol-2 test on the test lists
(``test_lists`` or the ``test*.txt`` found there); in-distribution tests on the validation list [PROPOSED: FFSC's
Test/ holds only unseen methods]. Images are read from disk by DataLoader workers; evaluation adds the AUC per fake
method (reals against that method's fakes) and the video-level AUC (the mean frame P(fake) per video folder).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kit.core import RunDir, fit, pick_device, seed_everything
from kit.core.presets import preset as _preset
from kit.data.faces import EDITS, FaceSet, make_faces
from kit.data.ffsc import TRAIN_LIST, TRAIN_METHODS, VAL_LIST, FFSCList, find_lists
from kit.facesem.autolambda import AutoLambda
from kit.facesem.graph import graph_loss, hex_marginals, impossible_rate, map_states
from kit.facesem.models import MODES, FaceDetector, build_detector

__all__ = ["FaceConfig", "PROTOCOLS", "preset", "make_data", "test_sets", "method_classes", "train", "evaluate",
           "fake_scores", "face_image", "attributes", "ffsc_attribute"]

PROTOCOLS = ("in_distribution", "protocol1", "protocol2")
# FFSC has one expression attribute (its Protocol-2 folder), the procedural faces two expression edits
_FFSC_ATTRIBUTE = {"smile": "expression", "surprised": "expression"}
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
    held_out: str = "smile"  # protocol2: the edit left out of training (FFSC: smile / surprised = "expression")
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
    select: str = "val_auc"  # the validation metric whose best weights are kept (the authors: binary ACC)
    # real data: FFSC under data_dir (None: procedural faces); list files relative to data_dir (protocol2: to its
    # attribute folder); test_lists () = the test*.txt files found there
    data_dir: str | None = None
    train_list: str = TRAIN_LIST
    val_list: str = VAL_LIST
    test_lists: tuple[str, ...] = ()
    epochs: int = 0  # > 0: train this many passes over the training set instead of ``steps``, validating each epoch
    lr_decay_epochs: int = 0  # > 0: halve the learning rate every this many epochs (the authors' StepLR(5, 0.5))
    num_workers: int = 0  # DataLoader processes reading images from disk (real data)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.held_out not in EDITS and not (self.data_dir and self.held_out == "expression"):
            raise ValueError(f"held_out must be one of {EDITS}" + (" or 'expression'" if self.data_dir else "")
                             + f", got {self.held_out!r}")
        if self.select not in ("val_auc", "val_acc"):
            raise ValueError(f"select must be 'val_auc' or 'val_acc', got {self.select!r}")
        if self.epochs < 0 or self.lr_decay_epochs < 0 or self.num_workers < 0:
            raise ValueError("epochs, lr_decay_epochs and num_workers must be >= 0")
        if isinstance(self.test_lists, str):
            object.__setattr__(self, "test_lists", (self.test_lists,))
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
    # the authors' SO-Xception and SO-ViT-B commands: 36 epochs of 32, StepLR(5, 0.5), augmentation p = 0.3
    "full": {"backbone": "xception", "pretrained": True, "size": 299, "batch_size": 32, "lr": 1e-4,
             "lambda_lr": 1e-3, "epochs": 36, "lr_decay_epochs": 5, "augment": 0.3, "select": "val_acc",
             "num_workers": 8},
    "full_vit": {"backbone": "clip_vit_b32", "pretrained": True, "size": 224, "batch_size": 32, "lr": 1e-6,
                 "lambda_lr": 1e-4, "epochs": 36, "lr_decay_epochs": 5, "augment": 0.3, "select": "val_acc",
                 "num_workers": 8},
}


def preset(name: str = "tiny", **overrides) -> FaceConfig:
    """The :class:`FaceConfig` of preset ``name`` ("tiny", "lite"; "full": SO-Xception, "full_vit": SO-ViT-B, both
    on FFSC and needing ``data_dir=``) with ``overrides``."""
    if name.startswith("full") and not overrides.get("data_dir"):
        raise ValueError(f"preset {name!r} trains on FFSC: pass data_dir= (the FFSC root with its list files)")
    return _preset(FaceConfig, PRESETS, name, **overrides)


def ffsc_attribute(held_out: str) -> str:
    """FFSC's attribute (its Protocol-2 folder) of a held-out edit: smile and surprised are "expression"."""
    return _FFSC_ATTRIBUTE.get(held_out, held_out)


def _ffsc_data(cfg: FaceConfig) -> dict[str, FFSCList]:
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir {root} does not exist: it should be the FFSC root (Train/, Val/, Test/ "
                                "and the list files)")
    sub = Path(ffsc_attribute(cfg.held_out)) if cfg.protocol == "protocol2" else Path()
    train = FFSCList(root, root / sub / cfg.train_list, cfg.size)
    val = FFSCList(root, root / sub / cfg.val_list, cfg.size)
    if cfg.protocol == "in_distribution":
        return {"train": train, "val": val, "test": val}
    lists = [root / sub / t for t in cfg.test_lists] if cfg.test_lists else find_lists(root / sub)
    if not lists:
        raise FileNotFoundError(f"no test list in {root / sub}: name FFSC's {cfg.protocol} test lists with "
                                "test_lists=(...) (files relative to that folder)")
    return {"train": train, "val": val, "test": FFSCList(root, lists, cfg.size)}


def make_data(cfg: FaceConfig) -> dict[str, FaceSet | FFSCList]:
    """{"train", "val", "test"} face sets of ``cfg.protocol``; validation is drawn like training, test from people
    no training face shows. With ``cfg.data_dir``: FFSC's lists (module docstring)."""
    if cfg.data_dir:
        return _ffsc_data(cfg)
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


def test_sets(cfg: FaceConfig, protocols: Sequence[str] = PROTOCOLS) -> dict[str, FaceSet | FFSCList]:
    """{protocol: its test set} for ``cfg`` (procedural: every protocol; FFSC: those whose lists exist, the missing
    ones named in a warning)."""
    from dataclasses import replace

    out = {}
    for protocol in protocols:
        try:
            out[protocol] = make_data(replace(cfg, protocol=protocol))["test"]
        except FileNotFoundError as e:
            if not cfg.data_dir:
                raise
            import warnings

            warnings.warn(f"no {protocol} test set: {e}", stacklevel=2)
    return out


def face_image(faces: FaceSet | FFSCList, i: int) -> np.ndarray:
    """uint8 [S, S, 3] image ``i`` of a procedural face set (in memory) or of an FFSC list (read from disk)."""
    return faces.images[i] if isinstance(faces, FaceSet) else faces.image(i)


def attributes(faces: FaceSet | FFSCList) -> np.ndarray:
    """The edit of each face as the protocols name it ("real" for reals; FFSC: age / expression / ...)."""
    if isinstance(faces, FaceSet):
        return np.where(faces.is_fake.astype(bool), faces.edit, "real")
    return faces.attributes


def method_classes(faces: FaceSet | FFSCList, methods: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(class int64 [N], methods): 0 for real, 1 + k for the k-th method of the fakes ("edit/generator" for
    procedural faces, sorted; FFSC: ``TRAIN_METHODS``, the authors' order), -1 for a fake of another method."""
    if isinstance(faces, FaceSet):
        names = [f"{e}/{g}" for e, g in zip(faces.edit, faces.generator)]
    else:
        names = list(faces.methods)
        methods = list(TRAIN_METHODS) if methods is None else methods
    fake = faces.is_fake.astype(bool)
    methods = list(methods) if methods is not None else sorted({n for n, f in zip(names, fake) if f})
    index = {m: k + 1 for k, m in enumerate(methods)}
    default = 0 if isinstance(faces, FaceSet) else -1
    return np.array([index.get(n, default) if f else 0 for n, f in zip(names, fake)], np.int64), methods


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


class _Items(torch.utils.data.Dataset):
    """(x float [3, S, S] in [0, 1], labels [12], class) per image of a source read from disk (FFSC), each degraded
    with probability ``augment`` by a generator seeded by (seed, epoch, index): DataLoader workers agree with one
    process, and a resumed run draws what it would have drawn."""

    def __init__(self, faces: FFSCList, classes: np.ndarray | None = None, augment: float = 0.0, seed: int = 0
                 ) -> None:
        self.faces, self.augment, self.seed, self.epoch = faces, float(augment), int(seed), 0
        self.classes = np.zeros(len(faces), np.int64) if classes is None else classes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int):
        image = self.faces.image(i)
        if self.augment > 0:
            from kit.facesem.augment import augment

            image = augment(image, np.random.default_rng((self.seed, self.epoch, i)), self.augment)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
        return x, torch.from_numpy(self.faces.labels[i]), torch.tensor(self.classes[i])


class _Draws:
    """``batch(step)``: batches of an :class:`_Items` drawn with replacement in a seeded order, loaded by a DataLoader
    (Auto-lambda's second training batch on real data)."""

    def __init__(self, items: _Items, batch_size: int, seed: int, num_workers: int = 0) -> None:
        sampler = torch.utils.data.RandomSampler(items, replacement=True, num_samples=2**31 - 1,
                                                 generator=torch.Generator().manual_seed(seed))
        self.loader = torch.utils.data.DataLoader(items, batch_size, sampler=sampler, num_workers=num_workers)
        self.it = None

    def __call__(self, step: int = 0):
        if self.it is None:
            self.it = iter(self.loader)
        return next(self.it)


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
    train_set = data["train"]
    classes, methods = method_classes(train_set)
    if cfg.mode == "multiclass" and (classes < 0).any():
        odd = sorted({str(m) for m in np.asarray(train_set.methods)[classes < 0]})
        raise ValueError(f"multi-class training needs every fake made by one of {methods}; found {odd}")
    model = build_detector(cfg.mode, cfg.backbone, len(methods), cfg.pretrained)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if isinstance(train_set, FaceSet):
        batches = _Batches(train_set, classes, cfg.batch_size, cfg.seed, cfg.augment)
        second = _Batches(train_set, classes, cfg.batch_size, cfg.seed + 1, cfg.augment)
    else:  # read from disk: fit batches the data set with workers, a second loader draws Auto-lambda's batch
        batches = _Items(train_set, classes, cfg.augment, cfg.seed)
        second = _Draws(_Items(train_set, classes, cfg.augment, cfg.seed + 1), cfg.batch_size, cfg.seed + 1,
                        cfg.num_workers)
    per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    steps = cfg.epochs * per_epoch if cfg.epochs else cfg.steps
    eval_every = per_epoch if cfg.epochs else cfg.eval_every
    scheduler = None
    if cfg.lr_decay_epochs:
        scheduler = lambda o: torch.optim.lr_scheduler.StepLR(o, cfg.lr_decay_epochs * per_epoch, 0.5)  # noqa: E731
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
        ev = evaluate(m, cfg.mode, data["val"], num_workers=cfg.num_workers)
        return {"val_auc": ev["auc"], "val_acc": ev["acc"]}

    t0 = time.perf_counter()
    res = fit(model, loss_fn, batches, max_steps=steps, batch_size=cfg.batch_size, optimizer=opt, scheduler=scheduler,
              eval_fn=eval_fn, eval_every=eval_every, select=cfg.select, run=run,
              checkpoint_every=eval_every if run is not None else 0, callbacks=callbacks, seed=cfg.seed,
              num_workers=cfg.num_workers, device=cfg.device, progress=progress, desc=f"facesem {cfg.mode}",
              log_every=5)
    model = res.model
    if res.best_state is not None:
        model.load_state_dict(res.best_state)
    return TrainResult(model.eval(), res.history, auto.history if auto else [], methods,
                       time.perf_counter() - t0, dict(res.best_metrics or res.metrics))


@torch.no_grad()
def _scores(model: FaceDetector, faces: FaceSet | FFSCList, batch_size: int = 256, num_workers: int = 0
            ) -> torch.Tensor:
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    if isinstance(faces, FaceSet):
        x = torch.from_numpy(faces.images).permute(0, 3, 1, 2)
        chunks = (x[i:i + batch_size].float() / 255.0 for i in range(0, len(x), batch_size))
    else:
        loader = torch.utils.data.DataLoader(_Items(faces), batch_size, num_workers=num_workers)
        chunks = (b[0] for b in loader)
    out = torch.cat([model(x.to(dev)).float().cpu() for x in chunks])
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


def evaluate(model: FaceDetector, mode: str, faces: FaceSet | FFSCList, num_workers: int = 0) -> dict[str, Any]:
    """{"auc", "acc" (at 0.5), "n"} of P(fake) on ``faces``; for the 12-node modes also "impossible_rate" (label sets
    thresholded at 0.5 that break the graph) and, for "so", "map_impossible_rate" (of its MAP legal states: 0).
    Images read from disk (FFSC, cross-dataset frames) add "per_method" ({fake method: AUC of the reals against its
    fakes}) and, where some video has several frames, "video_auc" and "n_videos"."""
    from kit.facesem.metrics import image_metrics, video_auc

    s = _scores(model, faces, num_workers=num_workers)
    p = fake_scores(s, mode)
    y = faces.is_fake
    out: dict[str, Any] = {**image_metrics(p, y), "n": int(len(p))}
    if not isinstance(faces, FaceSet):
        methods = np.asarray(faces.methods)
        real = y == 0
        out["per_method"] = {str(m): image_metrics(np.r_[p[real], p[(methods == m) & ~real]],
                                                   np.r_[y[real], y[(methods == m) & ~real]])["auc"]
                             for m in sorted(set(methods[~real]))} if real.any() else {}
        if len(np.unique(faces.videos)) < len(p):
            out["video_auc"] = video_auc(p, y, faces.videos)
            out["n_videos"] = int(len(np.unique(faces.videos)))
    if mode in ("so", "sigmoid"):
        probs = hex_marginals(s) if mode == "so" else torch.sigmoid(s)
        out["impossible_rate"] = impossible_rate(probs)
        if mode == "so":
            out["map_impossible_rate"] = impossible_rate(map_states(s))
    return out
