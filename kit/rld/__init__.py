"""RLD series: Knowledge Distillation with Refined Logits (Sun et al., arXiv:2408.07703), with the baselines it
compares against (KD, DKD, label-correction methods). Networks live in :mod:`kit.rld.models`."""

from kit.rld.config import RLDConfig, preset
from kit.rld.experiment import (
    Distiller,
    StudentResult,
    TeacherResult,
    TrainResult,
    accuracy_table,
    build_teacher,
    student_lr,
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
    logit_standardization_hyper,
    mcd_loss,
    rld_loss,
    rld_mask,
    scd_loss,
    standardize_logits,
    swap_teacher_logits,
)
from kit.rld.mistakes import TeacherMistakes, mistake_outcomes, student_steps, teacher_mistakes
from kit.rld.recipes import PairRecipe, canonical_network, pair_recipe
from kit.rld.sweeps import alpha_beta_sweep, teacher_error_sweep

__all__ = [
    "METHODS",
    "Distiller",
    "PairRecipe",
    "RLDConfig",
    "StudentResult",
    "TeacherMistakes",
    "TeacherResult",
    "TrainResult",
    "accuracy_table",
    "alpha_beta_sweep",
    "build_teacher",
    "canonical_network",
    "distillation_objective",
    "dkd_loss",
    "kd_loss",
    "la_loss",
    "logit_standardization_hyper",
    "mcd_loss",
    "mistake_outcomes",
    "pair_recipe",
    "preset",
    "rld_loss",
    "rld_mask",
    "scd_loss",
    "standardize_logits",
    "student_lr",
    "student_steps",
    "swap_teacher_logits",
    "teacher_error_sweep",
    "teacher_mistakes",
    "train",
    "train_student",
    "train_teacher",
]
