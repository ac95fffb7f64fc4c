"""The real-data path of the CMDFD series (``preset("full", data_dir=...)``, a GPU): TalkNet trained on FakeAVCeleb
with deep_avsr's frozen ASR / VSR teachers, tested on FakeAVCeleb and the CMDFD subsets, all read from the authors'
CSVs (kit.data.avclips).

As the authors' loader and train.py do it:

- student input: 13 MFCCs (4 per frame) and grey 112 x 112 face crops; teachers: the 321-bin |STFT| (AudioNet) and
  the 512-d lip features stored beside each mp4 as ``<stem>.npy`` (VideoNet; a clip without them is an error
  naming it when the CD / JC terms are on);
- clips sorted by length into batches and each batch cut to its shortest clip [the authors pack about 2000 frames
  per batch; here ``batch_size`` clips], at most ``max_frames`` frames;
- clip-level visual augmentation in training: one of original, horizontal flip, a 70-100 % crop resized back, a
  rotation within +-15 degrees;
- Adam, StepLR(1 epoch, ``lr_decay``), the weights of the best validation AUC kept; inference on whole clips, score
  = the averaged fake logit.

Teachers are read from ``teacher_dir``: ``audio-only.pt`` and ``video-only.pt`` (deep_avsr's checkpoints; an
optional ``teachers.json`` of {"d", "heads", "layers", "ff"} describes smaller ones, as the tests use).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kit.cmdfd.config import CMDFDConfig
from kit.cmdfd.experiment import TrainResult, build_student, fit_student
from kit.cmdfd.features import mfcc, stft_features
from kit.cmdfd.metrics import video_metrics
from kit.cmdfd.teachers import AudioNet, VideoNet, load_deep_avsr
from kit.core import RunDir, pick_device, seed_everything
from kit.data.avclips import AVClipList

__all__ = ["RealClips", "length_batches", "crop_collate", "load_teachers", "train_real", "evaluate_real",
           "open_csv"]


def open_csv(cfg: CMDFDConfig, name: str) -> AVClipList:
    """The clips of CSV ``name`` (relative to ``cfg.data_dir``, or absolute) at the student's input size."""
    if not cfg.data_dir:
        raise ValueError("the real-data path needs data_dir= (the folder of the authors' CSVs)")
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir {root} does not exist: it should hold FAV_train.csv, FAV_test.csv and the "
                                "CMDFD lists (W2L.csv, MakeItTalk.csv, ...)")
    path = Path(name) if Path(name).is_absolute() else root / name
    # the authors cut or wrap the audio to the frames, never reject a clip: no length check here
    return AVClipList(path, root=root, size=cfg.size, max_frames=cfg.max_frames, av_tolerance_frames=None)


def _augment(video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    choice = rng.integers(4)
    t, h, w = video.shape
    if choice == 1:
        return video[:, :, ::-1].copy()
    if choice == 2:
        s = rng.uniform(0.7, 1.0)
        ch, cw = int(round(h * s)), int(round(w * s))
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        return np.stack([cv2.resize(f[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA) for f in video])
    if choice == 3:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), 1.0)
        return np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT) for f in video])
    return video


class RealClips(torch.utils.data.Dataset):
    """(mfcc [4T, 13], video float [T, S, S], label, stft [4T, 321], lip [T, D]) per clip of an :class:`AVClipList`;
    ``augment`` draws the clip-level visual augmentation from a generator seeded by (seed, epoch, index);
    ``need_lip`` makes a clip without lip features an error naming it."""

    def __init__(self, clips: AVClipList, augment: bool = False, seed: int = 0, need_lip: bool = True) -> None:
        self.clips, self.augment, self.seed, self.epoch, self.need_lip = clips, augment, seed, 0, need_lip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def lengths(self) -> np.ndarray:
        cap = self.clips.max_frames or 10**9
        return np.array([min(r.frame_len, cap) for r in self.clips.rows])

    def __getitem__(self, i: int):
        item = self.clips[i]
        video, audio = item["video"], item["audio"]
        t = len(video)
        if self.augment:
            video = _augment(video, np.random.default_rng((self.seed, self.epoch, i)))
        lip = item["lip_features"]
        if lip is None:
            if self.need_lip:
                raise FileNotFoundError(f"clip {item['name']!r} has no lip features (<video stem>.npy beside its mp4): "
                                        "the VSR teacher reads them")
            lip = np.zeros((t, 1), np.float32)
        return (torch.from_numpy(mfcc(audio, t)), torch.from_numpy(np.ascontiguousarray(video)).float() / 255.0,
                torch.tensor(item["label"]), torch.from_numpy(stft_features(audio, t)), torch.from_numpy(lip[:t]))


def length_batches(lengths: np.ndarray, batch_size: int, seed: int = 0) -> list[list[int]]:
    """Indices sorted by clip length, cut into batches of ``batch_size``, the batches in a seeded order."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [batches[k] for k in np.random.default_rng(seed).permutation(len(batches))]


def crop_collate(items: Sequence[tuple]) -> tuple[torch.Tensor, ...]:
    """Stack clips cut to the shortest one's frame count (4 audio feature rows per frame)."""
    t = min(len(it[1]) for it in items)
    return (torch.stack([it[0][:4 * t] for it in items]), torch.stack([it[1][:t] for it in items]),
            torch.stack([it[2] for it in items]), torch.stack([it[3][:4 * t] for it in items]),
            torch.stack([it[4][:t] for it in items]))


class _Batches(torch.utils.data.Sampler):
    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def __iter__(self):
        self.epoch += 1
        return iter(length_batches(self.lengths, self.batch_size, self.seed + self.epoch))

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def load_teachers(teacher_dir: str | Path) -> tuple[AudioNet, VideoNet]:
    """deep_avsr's frozen AudioNet and VideoNet from ``teacher_dir`` (module docstring)."""
    d = Path(teacher_dir)
    dims = json.loads((d / "teachers.json").read_text()) if (d / "teachers.json").is_file() else {}
    return (load_deep_avsr(AudioNet(**dims), d / "audio-only.pt"), load_deep_avsr(VideoNet(**dims), d / "video-only.pt"))


def train_real(cfg: CMDFDConfig, run: RunDir | None = None, callbacks: Sequence[Callable[[dict], None]] = (),
               progress: bool = True) -> TrainResult:
    """Train the student on ``cfg.train_csv`` with ``cfg.loss``, validating on ``cfg.val_csv`` every epoch."""
    _, w_cd, w_jc = cfg.weights
    needs = bool(w_cd or w_jc)
    if needs and not cfg.teacher_dir:
        raise ValueError(f"loss {cfg.loss!r} needs deep_avsr's teachers: pass teacher_dir= (audio-only.pt, "
                         "video-only.pt)")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    teachers = [t.to(device) for t in load_teachers(cfg.teacher_dir)] if needs else None
    train_set = RealClips(open_csv(cfg, cfg.train_csv), augment=True, seed=cfg.seed, need_lip=needs)
    val = open_csv(cfg, cfg.val_csv)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=_Batches(train_set.lengths(), cfg.batch_size,
                                                                            cfg.seed),
                                         collate_fn=crop_collate, num_workers=cfg.num_workers)
    model = build_student(cfg)

    def posteriors(stft: torch.Tensor, lip: torch.Tensor):
        if teachers is None:
            return None, None
        with torch.no_grad():
            return teachers[0](stft), teachers[1](lip)

    def eval_fn(m) -> dict[str, float]:
        ev = _score(m, val, device)
        met = video_metrics(ev["score"], ev["label"], ev["pred"])
        return {"val_auc": met["auc"], "val_acc": met["acc"]}

    return fit_student(cfg, model, loader, eval_fn, len(loader), posteriors, run=run, callbacks=callbacks,
                       progress=progress, desc="TalkNet", logs_per_epoch=10)


@torch.no_grad()
def _score(model, clips: AVClipList, device) -> dict[str, Any]:
    was = model.training
    model.eval()
    scores, preds = [], []
    for i in range(len(clips)):
        item = clips[i]
        t = len(item["video"])
        out = model(torch.from_numpy(mfcc(item["audio"], t))[None].to(device),
                    torch.from_numpy(item["video"])[None].float().to(device) / 255.0)
        mean = out.logits[0].float().mean(0).cpu()
        scores.append(float(mean[1]))
        preds.append(int(mean.argmax()))
    model.train(was)
    return {"score": np.array(scores), "pred": np.array(preds), "label": clips.labels.copy(), "names": clips.names}


def evaluate_real(model, cfg: CMDFDConfig, csvs: Sequence[str] | None = None) -> dict[str, dict]:
    """{csv name: video_metrics} of the student on each test CSV (default ``cfg.test_csvs``; a missing one is
    skipped with a warning naming it)."""
    import warnings

    device = next(model.parameters()).device
    out = {}
    for name in csvs or cfg.test_csvs:
        try:
            clips = open_csv(cfg, name)
        except FileNotFoundError as e:
            warnings.warn(f"skipping {name}: {e}", stacklevel=2)
            continue
        s = _score(model, clips, device)
        out[Path(name).stem] = video_metrics(s["score"], s["label"], s["pred"])
    return out
