"""What the CMDFD notebooks and widgets show: one clip through the student and the teachers (the per-frame
correlation c_t beside the target r_t, the T x T correlation maps whose diagonal they are), what an audio offset does
to them and to the fake score, the ablation table across seeds with what the distilled correlation reads out, and
the committed students re-measured on fresh clips.

Offsets move the audio against the video by whole frames: ``k > 0`` delays the audio (its first k frames silent,
its last k dropped), ``k < 0`` advances it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from kit.cmdfd.experiment import Prepared, Teachers, evaluate, features_of
from kit.cmdfd.losses import correlation_matrix, student_correlation_matrix
from kit.cmdfd.models import TalkNetStudent

__all__ = ["ClipView", "Remeasured", "shift_audio", "clip_view", "offset_sweep", "ridge_offset", "ablation_table",
           "unseen_gain", "correlation_readout", "remeasure", "roc_points"]

SAMPLES_PER_FRAME = 640
KIND_NAMES = {"lipsync": "lip-sync", "talking_head": "talking head"}


def shift_audio(audio: np.ndarray, k: int) -> np.ndarray:
    """The waveform moved by ``k`` video frames (640 samples each): positive delays it, the gap filled with silence;
    the length is kept."""
    a = np.asarray(audio, np.float32)
    n = int(k) * SAMPLES_PER_FRAME
    if abs(n) >= len(a):
        raise ValueError(f"an offset of {k} frames leaves nothing of a {len(a) // SAMPLES_PER_FRAME}-frame clip")
    if n == 0:
        return a.copy()
    out = np.zeros_like(a)
    if n > 0:
        out[n:] = a[:-n]
    else:
        out[:n] = a[-n:]
    return out


@dataclass
class ClipView:
    """One clip through the models: ``student`` / ``teacher`` [T, T] correlation maps (audio frame i, video frame j),
    ``c`` / ``r`` [T] their diagonals, ``frame_fake`` [T] the per-frame fake-minus-real logit, ``score`` the clip's
    averaged fake logit, ``p_fake`` the softmax of the averaged logits, ``energy`` [T] the audio's RMS per frame."""

    student: np.ndarray
    teacher: np.ndarray | None
    c: np.ndarray
    r: np.ndarray | None
    frame_fake: np.ndarray
    score: float
    p_fake: float
    energy: np.ndarray


@torch.no_grad()
def clip_view(model: TalkNetStudent, video: np.ndarray, audio: np.ndarray, teachers: Teachers | None = None,
              offset: int = 0, features: str = "log_mel", kind: str = "paper") -> ClipView:
    """A :class:`ClipView` of one clip (``video`` uint8 [T, S, S], ``audio`` float32 [T * 640] at 16 kHz), its audio
    moved by ``offset`` frames first."""
    v = np.asarray(video)
    if v.ndim != 3:
        raise ValueError(f"video must be grey frames [T, S, S], got shape {v.shape}")
    t = len(v)
    if len(audio) != t * SAMPLES_PER_FRAME:
        raise ValueError(f"audio must hold {t} x 640 samples for {t} frames, got {len(audio)}")
    a = shift_audio(audio, offset)
    feats = torch.from_numpy(features_of(a, t, features))[None]
    frames = torch.from_numpy(v)[None].float() / 255.0
    model.eval()
    dev = next(model.parameters()).device
    out = model(feats.to(dev), frames.to(dev))
    s_map = student_correlation_matrix(out.a[0], out.v[0]).cpu().numpy()
    logits = out.logits[0].float().cpu()
    mean = logits.mean(0)
    t_map = r = None
    if teachers is not None:
        teachers.audio.eval()
        teachers.video.eval()
        p, q = teachers.audio(feats)[0], teachers.video(frames)[0]
        t_map = correlation_matrix(p, q, kind).numpy()
        r = np.diagonal(t_map).copy()
    energy = np.sqrt((a.reshape(t, SAMPLES_PER_FRAME).astype(np.float64) ** 2).mean(1))
    return ClipView(s_map, t_map, np.diagonal(s_map).copy(), r, (logits[:, 1] - logits[:, 0]).numpy(),
                    float(mean[1]), float(torch.softmax(mean, 0)[1]), energy.astype(np.float32))


def ridge_offset(matrix: np.ndarray, max_offset: int = 15) -> int:
    """The diagonal offset k in [-max_offset, max_offset] (entries (i + k, i): audio frame i + k against video frame
    i) with the highest mean: where the correlation ridge sits."""
    m = np.asarray(matrix, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a square correlation map is needed, got shape {m.shape}")
    ks = range(-min(max_offset, len(m) - 1), min(max_offset, len(m) - 1) + 1)
    return max(ks, key=lambda k: np.diagonal(m, -k).mean())


def offset_sweep(model: TalkNetStudent, video: np.ndarray, audio: np.ndarray, teachers: Teachers | None = None,
                 offsets: Sequence[int] = range(-15, 16), features: str = "log_mel", kind: str = "paper"
                 ) -> dict[str, np.ndarray]:
    """SyncNet-style sweep: for each offset, the mean diagonal correlation of the student (``c``) and of the teachers
    (``r``), and the clip's fake score and P(fake)."""
    rows = [clip_view(model, video, audio, teachers, k, features, kind) for k in offsets]
    return {"offsets": np.asarray(list(offsets)), "c": np.array([v.c.mean() for v in rows]),
            "r": np.array([v.r.mean() for v in rows]) if teachers is not None else None,
            "score": np.array([v.score for v in rows]), "p_fake": np.array([v.p_fake for v in rows])}


def ablation_table(rows: Sequence[dict], kinds: Sequence[str] | None = None) -> list[dict]:
    """Mean, std and per-seed AUC per (training config, loss, fake kind) of build rows
    ``{"config", "loss", "seed", "per_kind": {kind: auc}}``."""
    out = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["loss"]), []).append(r)
    for (config, loss), rs in groups.items():
        ks = kinds or list(rs[0]["per_kind"])
        for k in ks:
            ordered = sorted(rs, key=lambda r: r["seed"])
            vals = [r["per_kind"][k] for r in ordered]
            out.append({"config": config, "loss": loss, "kind": k, "mean": float(np.mean(vals)),
                        "std": float(np.std(vals)), "per_seed": vals, "seeds": [r["seed"] for r in ordered]})
    return out


def unseen_gain(table: Sequence[dict], kinds: Sequence[str] = ("lipsync", "talking_head"),
                base: str = "ce", method: str = "ce_cd_jc") -> dict[str, dict[str, float]]:
    """{"<config>/<kind>": {base, method: mean AUC, "gain": method - base}} of an :func:`ablation_table` for each
    training configuration and each of ``kinds`` (the fake kinds training never saw)."""
    out = {}
    for config in dict.fromkeys(r["config"] for r in table):
        for k in kinds:
            m = {r["loss"]: r["mean"] for r in table if r["config"] == config and r["kind"] == k}
            out[f"{config}/{k}"] = {base: m[base], method: m[method], "gain": m[method] - m[base]}
    return out


def correlation_readout(rows: Sequence[dict]) -> list[dict]:
    """Per (training config, loss, fake kind) of build rows ``{"config", "loss", "per_kind_c": {kind: auc}}``, the
    mean over seeds of the AUC of the student's own 1 - mean c as a fake score (what the distilled correlation
    knows): rows {"training fakes", "loss", "fake kind", "AUC of 1 - mean c"}."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        for k, v in r["per_kind_c"].items():
            groups.setdefault((r["config"], r["loss"], k), []).append(v)
    return [{"training fakes": c, "loss": loss, "fake kind": k, "AUC of 1 - mean c": float(np.mean(v))}
            for (c, loss, k), v in groups.items()]


@dataclass
class Remeasured:
    """Students scored on one test split: ``measured`` {loss: {"per_kind": {kind: AUC}, "overall": video_metrics}},
    ``curves`` {"<loss> · <kind>": (clip scores, labels) of the real clips and that kind's fakes} (for a ROC
    panel), ``rows`` one table row per loss (AUC per fake kind, overall EER and HTER)."""

    measured: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)


def remeasure(students: Mapping[str, TalkNetStudent], test: Prepared, kind: str = "lipsync") -> Remeasured:
    """:func:`kit.cmdfd.experiment.evaluate` of each student (by loss) on ``test``, with the ROC input of the real
    clips against ``kind``'s fakes."""
    out = Remeasured()
    sel = (test.kind == "real") | (test.kind == kind)
    labels = test.label.numpy()[sel]
    for loss, model in students.items():
        ev = evaluate(model, test)
        out.measured[loss] = {"per_kind": ev["per_kind"], "overall": ev["overall"]}
        out.curves[f"{loss} · {KIND_NAMES.get(kind, kind)}"] = (np.asarray(ev["scores"]["score"])[sel], labels)
        out.rows.append({"loss": loss, **ev["per_kind"], "EER": ev["overall"]["eer"], "HTER": ev["overall"]["hter"]})
    return out


def roc_points(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray | float]:
    """{"fpr", "tpr", "auc", "eer", "eer_point"} of clip scores (sklearn's ROC; the EER point on it)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from kit.cmdfd.metrics import eer

    fpr, tpr, _ = roc_curve(labels, scores)
    e = eer(scores, labels)
    return {"fpr": fpr, "tpr": tpr, "auc": float(roc_auc_score(labels, scores)), "eer": e, "eer_point": (e, 1 - e)}
