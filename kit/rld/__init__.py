"""RLD series: Knowledge Distillation with Refined Logits (Sun et al., arXiv:2408.07703), with the baselines it
compares against (KD, DKD, label-correction methods). Networks live in :mod:`kit.rld.models`."""

from kit.rld.config import RLDConfig, preset
from kit.rld.experiment import (
    Distiller,
    StudentResult,
    TeacherResult,
    TrainResult,
    accuracy_table,
    teacher_error_sweep,
    train,
    train_student,
    train_teacher,
)
from kit.rld.losses import (
    METHODS,
    distillation_objective,
    dkd_loss,
    kd_loss,
    la_loss,
    mcd_loss,
    rld_loss,
    rld_mask,
    scd_loss,
    standardize_logits,
    swap_teacher_logits,
)

__all__ = [
    "METHODS",
    "Distiller",
    "RLDConfig",
    "StudentResult",
    "TeacherResult",
    "TrainResult",
    "accuracy_table",
    "distillation_objective",
    "dkd_loss",
    "kd_loss",
    "la_loss",
    "mcd_loss",
    "preset",
    "rld_loss",
    "rld_mask",
    "scd_loss",
    "standardize_logits",
    "swap_teacher_logits",
    "teacher_error_sweep",
    "train",
    "train_student",
    "train_teacher",
]
