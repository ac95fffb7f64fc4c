"""GITS time schedules (Sec. 4 of arXiv:2405.11326). The implementation lives in :mod:`kit.diffusion.gits`
because the text-to-image core drives its samplers with GITS schedules too; this module is the series' name for it."""

from kit.diffusion.gits import (  # noqa: F401
    METRICS,
    GITSSearch,
    cost_matrix,
    cost_matrix_from_teacher,
    dp_path,
    gits_schedule,
    gits_search,
    teacher_trajectory,
)

__all__ = ["METRICS", "GITSSearch", "cost_matrix", "cost_matrix_from_teacher", "dp_path", "gits_schedule",
           "gits_search", "teacher_trajectory"]
