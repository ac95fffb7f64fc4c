"""Trajectory series: the regularity of ODE diffusion-sampling trajectories and GITS time schedules
(Chen et al., "On the Trajectory Regularity of ODE-based Diffusion Sampling", ICML 2024, arXiv:2405.11326)."""

from kit.trajectory.config import TrajectoryConfig, preset
from kit.trajectory.evaluation import (
    RECOMMENDED_SCHEDULE,
    EvalResult,
    claims,
    evaluate,
    paper_setting_rows,
    summarize,
)
from kit.trajectory.experiment import (
    TrainResult,
    build_denoisers,
    load_pretrained,
    load_trained,
    pretrained_summary,
    train,
    train_summary,
)
from kit.trajectory.export import apply_schedule, to_diffusers_sigmas, to_diffusers_timesteps
from kit.trajectory.fid import fid_against, inception_features
from kit.trajectory.gits import (
    GITSSearch,
    cost_matrix,
    dp_path,
    gits_schedule,
    gits_search,
    teacher_trajectory,
)
from kit.trajectory.measures import (
    chord_deviation,
    explained_variance_after_chord,
    project_trajectory,
    trajectory_stats,
)

__all__ = [
    "RECOMMENDED_SCHEDULE",
    "EvalResult",
    "GITSSearch",
    "TrainResult",
    "TrajectoryConfig",
    "apply_schedule",
    "build_denoisers",
    "chord_deviation",
    "claims",
    "cost_matrix",
    "dp_path",
    "evaluate",
    "explained_variance_after_chord",
    "fid_against",
    "gits_schedule",
    "gits_search",
    "inception_features",
    "load_pretrained",
    "load_trained",
    "paper_setting_rows",
    "preset",
    "pretrained_summary",
    "project_trajectory",
    "summarize",
    "teacher_trajectory",
    "to_diffusers_sigmas",
    "to_diffusers_timesteps",
    "train",
    "train_summary",
    "trajectory_stats",
]
