"""Hand VE sigma schedules (GITS among them) to diffusers schedulers. The implementation lives in
:mod:`kit.diffusion.export` (the text-to-image pipeline uses it too); this module is the series' name for it."""

from kit.diffusion.export import (  # noqa: F401
    apply_schedule,
    scheduler_sigma_range,
    to_diffusers_sigmas,
    to_diffusers_timesteps,
)

__all__ = ["apply_schedule", "scheduler_sigma_range", "to_diffusers_sigmas", "to_diffusers_timesteps"]
