"""Shared diffusion core: EDM-convention denoisers, time schedules, probability-flow ODE solvers, preconditioning
and the bridge to diffusers models."""

from kit.diffusion.attention import (
    AttentionStore,
    RecordingAttnProcessor,
    ReplaceCrossAttention,
    ReweightTokens,
    find_attention_store,
    register_attention_store,
)
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
from kit.diffusion.t2i import (
    T2IOutput,
    TextToImagePipeline,
    build_unet,
    default_scheduler,
    from_pretrained_sd,
    load_shapes_pipeline,
    tiny_unet_config,
)
from kit.diffusion.text import (
    build_text_encoder,
    build_tokenizer,
    check_prompt,
    encode_prompts,
    tiny_text_config,
    unknown_words,
)

__all__ = [
    "AttentionStore",
    "RecordingAttnProcessor",
    "ReplaceCrossAttention",
    "ReweightTokens",
    "T2IOutput",
    "TextToImagePipeline",
    "build_text_encoder",
    "build_tokenizer",
    "build_unet",
    "check_prompt",
    "default_scheduler",
    "encode_prompts",
    "find_attention_store",
    "from_pretrained_sd",
    "load_shapes_pipeline",
    "register_attention_store",
    "tiny_text_config",
    "tiny_unet_config",
    "unknown_words",
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
