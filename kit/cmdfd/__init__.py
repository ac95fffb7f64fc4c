"""Audio-visual deepfake detection by cross-modal correlation distillation (arXiv:2404.19171): a TalkNet student
whose per-frame audio / visual correlation is distilled from frozen content teachers (ASR and VSR posteriors), with
the joint-modal contrastive term, against the plain detector; offline on espeak-ng speech and procedural mouths
(kit.data.talking), on FakeAVCeleb / CMDFD with ``data_dir=`` (kit.cmdfd.real, kit.data.avclips)."""

from kit.cmdfd.assets import committed_results, load_student, load_teachers, save_student
from kit.cmdfd.config import LOSSES, TRAIN_CONFIGS, CMDFDConfig, preset
from kit.cmdfd.experiment import attach_teachers, clip_scores, evaluate, make_data, train, train_teachers
from kit.cmdfd.explore import ablation_table, clip_view, offset_sweep, ridge_offset, shift_audio
from kit.cmdfd.losses import (
    cd_loss,
    correlation_matrix,
    correlation_target,
    jc_loss,
    student_correlation,
    total_loss,
)
from kit.cmdfd.metrics import PAPER_W2L, eer, video_metrics
from kit.cmdfd.models import TalkNetStudent

__all__ = [
    "LOSSES", "PAPER_W2L", "TRAIN_CONFIGS", "CMDFDConfig", "TalkNetStudent", "ablation_table", "attach_teachers",
    "cd_loss", "clip_scores", "clip_view", "committed_results", "correlation_matrix", "correlation_target", "eer",
    "evaluate", "jc_loss", "load_student", "load_teachers", "make_data", "offset_sweep", "preset", "ridge_offset",
    "save_student", "shift_audio", "student_correlation", "total_loss", "train", "train_teachers", "video_metrics",
]
