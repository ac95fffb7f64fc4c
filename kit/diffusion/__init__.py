"""Shared diffusion core: EDM-convention denoisers, time schedules, probability-flow ODE solvers, preconditioning
and the bridge to diffusers models."""

from kit.diffusion.denoisers import (
    EmpiricalDenoiser,
    GaussianDenoiser,
    GaussianMixtureDenoiser,
    as_sigma_batch,
)
from kit.diffusion.hf import from_diffusers, sigma_to_timestep, timestep_to_sigma
from kit.diffusion.precond import EDMPrecond, MLPDenoiserNet, edm_loss
from kit.diffusion.schedules import (
    SCHEDULES,
    edm_sigmas,
    get_schedule,
    logsnr_sigmas,
    time_quadratic_sigmas,
    time_uniform_sigmas,
)
from kit.diffusion.solvers import SOLVERS, CountingDenoiser, sample, solver_nfe, steps_for_nfe

__all__ = [
    "SCHEDULES",
    "SOLVERS",
    "CountingDenoiser",
    "EDMPrecond",
    "EmpiricalDenoiser",
    "GaussianDenoiser",
    "GaussianMixtureDenoiser",
    "MLPDenoiserNet",
    "as_sigma_batch",
    "edm_loss",
    "edm_sigmas",
    "from_diffusers",
    "get_schedule",
    "logsnr_sigmas",
    "sample",
    "sigma_to_timestep",
    "solver_nfe",
    "steps_for_nfe",
    "time_quadratic_sigmas",
    "time_uniform_sigmas",
    "timestep_to_sigma",
]
