"""Entry points of the CMDFD series (arXiv:2404.19171) on the offline talking-mouth clips (kit.data.talking):
data, the content teachers, the student under the loss ablation, and its video-level evaluation per fake kind.

A run: ``data = make_data(cfg)`` (train / val with ``cfg.train_kinds``, test with every kind, a separate set of real
clips for the teachers), ``teachers = train_teachers(cfg, data)`` (viseme classifiers from audio and from the mouth,
then their posteriors p, q attached to every split), ``result = train(cfg, data)`` (the student with CE, + CD,
+ JC as ``cfg.loss`` says), ``evaluate(result.model, data["test"])`` (video-level metrics and AUC per fake kind:
the real test clips against that kind's fakes). Inference averages the per-frame logits over the clip; the score
is the averaged fake logit and the prediction the larger averaged logit, as in the authors' code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kit.cmdfd.config import CMDFDConfig
from kit.cmdfd.features import log_mel, mfcc
from kit.cmdfd.losses import total_loss
from kit.cmdfd.metrics import video_metrics
from kit.cmdfd.models import TalkNetStudent
from kit.cmdfd.teachers import VisemeTeacher
from kit.core import RunDir, fit, pick_device, seed_everything

__all__ = ["Prepared", "Teachers", "TrainResult", "features_of", "prepare", "make_data", "train_teachers",
           "attach_teachers", "train", "fit_student", "clip_scores", "evaluate", "build_student"]

Callback = Callable[[dict], None]


def features_of(audio: np.ndarray, n_frames: int, kind: str = "log_mel") -> np.ndarray:
    """float32 [4 T, F] student features of one clip's 16 kHz audio: "log_mel" (32 bands) or "mfcc" (13)."""
    if kind == "log_mel":
        return log_mel(audio, n_frames)
    if kind == "mfcc":
        return mfcc(audio, n_frames)
    raise ValueError(f"features must be 'log_mel' or 'mfcc', got {kind!r}")


@dataclass
class Prepared(torch.utils.data.Dataset):
    """One split as tensors: ``video`` uint8 [N, T, S, S], ``feats`` float32 [N, 4T, F], ``label`` int64 [N] (1 =
    fake), ``kind`` str [N], the viseme timelines [N, T] (offline), and the teachers' posteriors ``p`` (audio), ``q``
    (mouth) [N, T, C] once :func:`attach_teachers` ran; ``source`` is the generator's TalkingSet."""

    video: torch.Tensor
    feats: torch.Tensor
    label: torch.Tensor
    kind: np.ndarray
    visemes_audio: torch.Tensor | None = None
    visemes_video: torch.Tensor | None = None
    p: torch.Tensor | None = None
    q: torch.Tensor | None = None
    source: Any = None

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int):
        """(feats, video float [T, S, S] in [0, 1], label, p, q) of clip ``i`` (p, q zeros before the teachers)."""
        p = self.p[i] if self.p is not None else torch.zeros(self.video.shape[1], 1)
        q = self.q[i] if self.q is not None else torch.zeros(self.video.shape[1], 1)
        return self.feats[i], self.video[i].float() / 255.0, self.label[i], p, q


def prepare(ts, features: str = "log_mel") -> Prepared:
    """A :class:`Prepared` split of a kit.data.talking ``TalkingSet`` (student features computed once)."""
    t = ts.video.shape[1]
    feats = np.stack([features_of(a, t, features) for a in ts.audio])
    return Prepared(torch.from_numpy(np.ascontiguousarray(ts.video)), torch.from_numpy(feats),
                    torch.from_numpy(np.asarray(ts.label, np.int64)), np.asarray(ts.kind),
                    torch.from_numpy(np.asarray(ts.visemes_audio, np.int64)),
                    torch.from_numpy(np.asarray(ts.visemes_video, np.int64)), source=ts)


def make_data(cfg: CMDFDConfig) -> dict[str, Prepared]:
    """{"train", "val", "test", "teacher"}: fresh clips per split (seeded by ``cfg.seed``); train and val hold
    ``cfg.train_kinds``, test every kind of ``cfg.test_kinds``, "teacher" only real clips."""
    from kit.data.talking import make_talking

    if cfg.data_dir:
        raise ValueError("data_dir= (FakeAVCeleb / CMDFD) is read by kit.cmdfd.real, not by the offline make_data")
    kw = dict(n_frames=cfg.n_frames, size=cfg.size, lipsync_blur=cfg.lipsync_blur)
    sets = {"train": make_talking(cfg.n_train, seed=cfg.seed, kinds=cfg.train_kinds, **kw),
            "val": make_talking(cfg.n_val, seed=cfg.seed + 500, kinds=cfg.train_kinds, **kw),
            "test": make_talking(cfg.n_test, seed=cfg.seed + 1000, kinds=cfg.test_kinds,
                                 fake_fraction=1 - 1 / len(cfg.test_kinds), **kw),
            "teacher": make_talking(cfg.n_teacher, seed=cfg.seed + 2000, kinds=("real",), fake_fraction=0.0, **kw)}
    return {k: prepare(v, cfg.features) for k, v in sets.items()}


@dataclass
class Teachers:
    """The frozen content teachers: ``audio`` reads student-style features [B, 4T, F], ``video`` mouths
    [B, T, S, S]; ``accuracy`` is their frame accuracy on real test clips."""

    audio: torch.nn.Module
    video: torch.nn.Module
    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @torch.no_grad()
    def posteriors(self, prep: Prepared, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(p, q) [N, T, C] of a split."""
        self.audio.eval()
        self.video.eval()
        p = torch.cat([self.audio(prep.feats[i:i + batch_size]) for i in range(0, len(prep), batch_size)])
        q = torch.cat([self.video(prep.video[i:i + batch_size].float() / 255.0) for i in range(0, len(prep), batch_size)])
        return p, q


class _Frames(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, video: bool) -> None:
        self.x, self.y, self.video = x, y, video

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (self.x[i].float() / 255.0 if self.video else self.x[i]), self.y[i]


def train_teachers(cfg: CMDFDConfig, data: dict[str, Prepared], progress: bool = True) -> Teachers:
    """Train the offline viseme teachers on ``data["teacher"]`` (audio: features -> what is said; video: mouth ->
    what it shows), freeze them and attach their posteriors to every split (:func:`attach_teachers`)."""
    from kit.data.talking import VISEMES

    t0 = time.perf_counter()
    src = data["teacher"]
    out = {}
    for modality, x, y in (("audio", src.feats, src.visemes_audio), ("video", src.video, src.visemes_video)):
        seed_everything(cfg.seed + (7 if modality == "video" else 3))
        model = VisemeTeacher(modality, len(VISEMES), n_features=src.feats.shape[-1])

        def loss_fn(m, batch, _modality=modality):
            xb, yb = batch
            return F.cross_entropy(m.logits(xb).flatten(0, 1), yb.flatten())

        steps = cfg.teacher_epochs * math.ceil(len(src) / cfg.batch_size)
        res = fit(model, loss_fn, _Frames(x, y, modality == "video"), max_steps=steps, batch_size=cfg.batch_size,
                  lr=cfg.teacher_lr, seed=cfg.seed, device="cpu", progress=progress, desc=f"{modality} teacher",
                  log_every=max(1, steps // 10))
        out[modality] = res.model.eval()
        for prm in out[modality].parameters():
            prm.requires_grad_(False)
    teachers = Teachers(out["audio"], out["video"], seconds=time.perf_counter() - t0)
    attach_teachers(data, teachers)
    real = data["test"].label == 0
    for name, post, truth in (("audio", data["test"].p, data["test"].visemes_audio),
                              ("video", data["test"].q, data["test"].visemes_video)):
        teachers.accuracy[name] = float((post[real].argmax(-1) == truth[real]).float().mean())
    return teachers


def attach_teachers(data: dict[str, Prepared], teachers: Teachers) -> None:
    """Set ``p``, ``q`` of every split from the frozen ``teachers``."""
    for prep in data.values():
        prep.p, prep.q = teachers.posteriors(prep)


def build_student(cfg: CMDFDConfig, n_features: int | None = None) -> TalkNetStudent:
    return TalkNetStudent(cfg.arch, n_features)


@dataclass
class TrainResult:
    model: TalkNetStudent
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    best_metrics: dict[str, float] = field(default_factory=dict)


def fit_student(cfg: CMDFDConfig, model: TalkNetStudent, batches, eval_fn: Callable[[TalkNetStudent], dict],
                per_epoch: int, posteriors: Callable | None = None, run: RunDir | None = None,
                callbacks: Sequence[Callback] = (), progress: bool = True, desc: str = "student",
                logs_per_epoch: int = 4) -> TrainResult:
    """Fit ``model`` on ``batches`` (a dataset or loader of (feats, video, label, a, b)) with ``cfg.loss`` for
    ``cfg.epochs`` epochs of ``per_epoch`` steps: Adam, StepLR(1 epoch, ``cfg.lr_decay``) when it decays, ``eval_fn``
    (-> "val_auc", "val_acc") every epoch, the weights of the best validation AUC kept. ``posteriors(a, b)`` gives
    the teachers' (p, q); None: a, b are p, q already (the offline clips carry them)."""
    w_ce, w_cd, w_jc = cfg.weights
    device = pick_device(cfg.device)

    def loss_fn(m: TalkNetStudent, batch) -> dict[str, torch.Tensor]:
        feats, video, y, a, b = (t.to(device) for t in batch)
        out = m(feats, video)
        p, q = (a, b) if posteriors is None else posteriors(a, b)
        terms = total_loss(out.logits, out.a, out.v, y, p, q, w_ce=w_ce, w_cd=w_cd, w_jc=w_jc, margin=cfg.margin,
                           kind=cfg.kind)
        return {"loss": terms["loss"], "ce": terms["ce"].detach(), "cd": terms["cd"].detach(),
                "jc": terms["jc"].detach()}

    scheduler = None
    if cfg.lr_decay < 1:
        scheduler = lambda o: torch.optim.lr_scheduler.StepLR(o, per_epoch, cfg.lr_decay)  # noqa: E731
    t0 = time.perf_counter()
    res = fit(model, loss_fn, batches, max_steps=cfg.epochs * per_epoch, batch_size=cfg.batch_size,
              optimizer=lambda ps: torch.optim.Adam(ps, lr=cfg.lr), scheduler=scheduler, eval_fn=eval_fn,
              eval_every=per_epoch, select="val_auc", run=run, checkpoint_every=per_epoch if run is not None else 0,
              callbacks=callbacks, seed=cfg.seed, device=cfg.device, progress=progress, desc=f"{desc} {cfg.loss}",
              log_every=max(1, per_epoch // logs_per_epoch))
    model = res.model
    if res.best_state is not None:
        model.load_state_dict(res.best_state)
    return TrainResult(model.eval(), res.history, time.perf_counter() - t0, dict(res.best_metrics or res.metrics))


def train(cfg: CMDFDConfig, data: dict[str, Prepared], run: RunDir | None = None, callbacks: Sequence[Callback] = (),
          progress: bool = True) -> TrainResult:
    """Train the student on ``data["train"]`` with ``cfg.loss`` (:func:`fit_student`), validated on ``data["val"]``.
    The CD / JC terms need the teachers' posteriors (:func:`train_teachers`)."""
    _, w_cd, w_jc = cfg.weights
    if (w_cd or w_jc) and data["train"].p is None:
        raise ValueError(f"loss {cfg.loss!r} needs the teachers' posteriors: run train_teachers(cfg, data) first")
    seed_everything(cfg.seed)
    model = build_student(cfg, data["train"].feats.shape[-1])

    def eval_fn(m: TalkNetStudent) -> dict[str, float]:
        ev = evaluate(m, data["val"])["overall"]
        return {"val_auc": ev["auc"], "val_acc": ev["acc"]}

    return fit_student(cfg, model, data["train"], eval_fn, math.ceil(len(data["train"]) / cfg.batch_size),
                       run=run, callbacks=callbacks, progress=progress)


@torch.no_grad()
def clip_scores(model: TalkNetStudent, prep: Prepared, batch_size: int = 64) -> dict[str, np.ndarray]:
    """{"score": the averaged fake logit [N], "pred": argmax of the averaged logits [N], "frame_logits" [N, T, 2],
    "c": the student's per-frame correlation [N, T]} of a split."""
    from kit.cmdfd.losses import student_correlation

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    logits, cs = [], []
    for i in range(0, len(prep), batch_size):
        out = model(prep.feats[i:i + batch_size].to(dev), prep.video[i:i + batch_size].to(dev).float() / 255.0)
        logits.append(out.logits.float().cpu())
        cs.append(student_correlation(out.a, out.v).float().cpu())
    model.train(was)
    frame = torch.cat(logits)
    mean = frame.mean(1)
    return {"score": mean[:, 1].numpy(), "pred": mean.argmax(1).numpy(), "frame_logits": frame.numpy(),
            "c": torch.cat(cs).numpy()}


def evaluate(model: TalkNetStudent, prep: Prepared) -> dict[str, Any]:
    """{"overall": video_metrics of every clip, "per_kind": {fake kind: AUC of the real clips against that kind},
    "per_kind_metrics": {fake kind: video_metrics on reals + that kind}, "per_kind_c": {fake kind: AUC of the
    student's own mean correlation 1 - mean_t c_t as a fake score (not the detector's output: what the distilled
    embeddings know)}, "scores": per-clip scores, mean c and kinds}."""
    from sklearn.metrics import roc_auc_score

    s = clip_scores(model, prep)
    y, kinds = prep.label.numpy(), np.asarray(prep.kind)
    mean_c = s["c"].mean(1)
    out: dict[str, Any] = {"overall": video_metrics(s["score"], y, s["pred"]), "per_kind": {}, "per_kind_metrics": {},
                           "per_kind_c": {}}
    real = kinds == "real"
    for k in [k for k in dict.fromkeys(kinds.tolist()) if k != "real"]:
        sel = real | (kinds == k)
        m = video_metrics(s["score"][sel], y[sel], s["pred"][sel])
        out["per_kind"][k], out["per_kind_metrics"][k] = m["auc"], m
        out["per_kind_c"][k] = float(roc_auc_score(y[sel], -mean_c[sel])) if real.any() else None
    out["scores"] = {"score": s["score"].tolist(), "mean_c": mean_c.tolist(), "label": y.tolist(),
                     "kind": kinds.tolist()}
    return out
