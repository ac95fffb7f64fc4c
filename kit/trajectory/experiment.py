"""Entry points of the trajectory series: ``train`` (01), ``evaluate`` (02) and the pieces 03 explores.

``evaluate`` (`kit.trajectory.evaluation`) measures what the paper's FID tables measure, offline without FID: for
every denoiser, solver, time schedule and NFE it integrates the probability-flow ODE from the same noises and
reports the mean L2 distance of the samples to an accurate reference solution (Heun with ``ref_steps`` EDM steps)
and the sliced Wasserstein distance between the two sample sets; the full preset adds FID on image samples where
torchmetrics' Inception weights are local (`kit.trajectory.fid`). GITS schedules (Sec. 4 of
arXiv:2405.11326) come from one search per denoiser on warmup noises drawn with a seed disjoint from the
evaluation noises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import TensorDataset

from kit.core import FitResult, RunDir, fit, load_training_state, pick_device
from kit.diffusion.denoisers import EmpiricalDenoiser
from kit.diffusion.hf import from_diffusers
from kit.diffusion.precond import edm_loss
from kit.trajectory.config import TrajectoryConfig
from kit.trajectory.data import load_cifar10, load_digits_data, ring2d
from kit.trajectory.model import denoiser_gap, make_denoiser

Tensor = torch.Tensor
TRAINABLE = ("digits", "ring2d")
WARMUP_SEED_OFFSET, EVAL_SEED_OFFSET = 1000, 2000  # disjoint noise streams for GITS search and evaluation


@dataclass
class TrainResult:
    """A trained denoiser with its training history and its per-sigma gap to the optimal denoiser."""

    model: torch.nn.Module
    dataset: str
    fit: FitResult
    gap: dict[str, list[float]]


def training_data(cfg: TrajectoryConfig, dataset: str) -> tuple[Tensor, Callable[[Tensor, float], Tensor]]:
    """Return (training samples [N, d] float32, the exact optimal denoiser of that training set)."""
    if dataset == "digits":
        data = load_digits_data()
        return data.float(), EmpiricalDenoiser(data)
    if dataset == "ring2d":
        gmm = ring2d()
        data = gmm.sample(cfg.toy_samples, torch.Generator().manual_seed(cfg.seed))
        return data.float(), gmm
    raise ValueError(f"an MLP denoiser is trained on {TRAINABLE}, not {dataset!r}; use pretrained= for CIFAR-10")


def _model_for(cfg: TrajectoryConfig, dim: int) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)
    return make_denoiser(dim, hidden=cfg.hidden, depth=cfg.depth)


def train(cfg: TrajectoryConfig, run: RunDir, dataset: str | None = None,
          callbacks: Sequence[Callable[[dict], None]] = ()) -> TrainResult:
    """Return a :class:`TrainResult`: an EDM-preconditioned MLP trained with the EDM loss on ``dataset``.

    Checkpoints go to ``run``; a second call with the same ``run`` resumes (or returns the finished model).
    """
    dataset = dataset or (cfg.dataset if cfg.dataset in TRAINABLE else "digits")
    data, optimal = training_data(cfg, dataset)
    model = _model_for(cfg, data.shape[1])
    result = fit(model, lambda m, b: edm_loss(m, b[0]), TensorDataset(data), max_steps=cfg.max_steps,
                 batch_size=cfg.batch_size, lr=cfg.lr, run=run, checkpoint_every=cfg.checkpoint_every,
                 log_every=25, callbacks=callbacks, seed=cfg.seed, device=cfg.device, desc=f"EDM {dataset}",
                 scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=max(cfg.max_steps, 1)))
    trained = result.model.cpu().eval()
    sigmas = torch.logspace(-2, 1.5, 15).tolist()  # 0.01 .. 31.6
    gap = denoiser_gap(trained, optimal, data.double(), sigmas, n=256, seed=cfg.seed)
    run.record("dataset", dataset)
    run.record("final_loss", [e["loss"] for e in result.history if e["kind"] == "train"][-1]
               if result.history else None)
    run.record("train_seconds", round(result.seconds, 2))
    run.record("gap_to_optimal", gap)
    return TrainResult(trained, dataset, result, gap)


def train_summary(result: TrainResult) -> dict[str, Any]:
    """Return what 01_train records per dataset: the final loss, steps, seconds, the gap to the optimal denoiser at the
    smallest and the middle sigma and its maximum, and where the network is nearest the optimal one relative to its
    own error (``min_gap_over_learned`` at ``sigma_at_min_gap_over_learned``), and that ratio at the smallest sigma,
    where the optimal denoiser returns the nearest training point (``gap_over_learned_at_smallest_sigma``, about 1
    for a network that does not memorise)."""
    gap = result.gap
    i_small, i_mid = 0, len(gap["sigma"]) // 2
    ratio = [g / max(e, 1e-12) for g, e in zip(gap["gap"], gap["learned"])]
    i_best = min(range(len(ratio)), key=ratio.__getitem__)
    losses = [e["loss"] for e in result.fit.history if e["kind"] == "train"]
    return {"final_loss": losses[-1] if losses else None, "steps": result.fit.step,
            "seconds": round(result.fit.seconds, 1),
            f"gap_at_sigma_{gap['sigma'][i_small]:.3g}": gap["gap"][i_small],
            f"gap_at_sigma_{gap['sigma'][i_mid]:.3g}": gap["gap"][i_mid],
            "max_gap": max(gap["gap"]),
            "gap_over_learned_at_smallest_sigma": ratio[i_small],
            "min_gap_over_learned": ratio[i_best], "sigma_at_min_gap_over_learned": gap["sigma"][i_best]}


def pretrained_summary(denoiser: Any, path_or_id: str) -> dict[str, Any]:
    """Return {"id", "parameters", "sigma_range"} of a :func:`load_pretrained` denoiser (01_train's record)."""
    return {"id": path_or_id, "parameters": sum(p.numel() for p in denoiser.unet.parameters()),
            "sigma_range": [denoiser.sigma_min, denoiser.sigma_max]}


def load_trained(cfg: TrajectoryConfig, run: RunDir, dataset: str = "digits") -> torch.nn.Module:
    """Return the denoiser saved in ``run``'s latest checkpoint (``FileNotFoundError`` if there is none)."""
    ckpt = run.latest_checkpoint()
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {run.checkpoints_dir}; run 01_train (or train()) first")
    data, _ = training_data(cfg, dataset)
    model = _model_for(cfg, data.shape[1])
    load_training_state(ckpt, model=model, restore_rng=False)
    return model.eval()


def load_pretrained(path_or_id: str, device: str | torch.device = "cpu"):
    """Return an EDM denoiser around a diffusers ``UNet2DModel`` + scheduler saved at ``path_or_id``.

    A hub id is fetched only here, when a notebook asks for ``pretrained=``; offline, a missing model raises a
    ``FileNotFoundError`` that says what to do.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    try:
        unet = UNet2DModel.from_pretrained(path_or_id, subfolder="unet" if _has_sub(path_or_id, "unet") else None)
        scheduler = DDPMScheduler.from_pretrained(
            path_or_id, subfolder="scheduler" if _has_sub(path_or_id, "scheduler") else None)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"could not load the diffusers model {path_or_id!r} ({type(e).__name__}: {str(e).splitlines()[0]}). "
            "Give a local folder saved with save_pretrained, or a hub id with network access "
            "(unset HF_HUB_OFFLINE).") from e
    return from_diffusers(unet.to(device).eval(), scheduler)


def _has_sub(path_or_id: str, name: str) -> bool:
    from pathlib import Path

    return (Path(path_or_id) / name).is_dir()


@dataclass
class DenoiserCase:
    """One denoiser under evaluation: the callable, its sample shape, sigma range, GITS metric and data."""

    name: str
    denoiser: Callable[[Tensor, Tensor], Tensor]
    shape: tuple[int, ...]
    sigma_min: float
    sigma_max: float
    metric: str
    data: EmpiricalDenoiser | None = None  # for the basin-agreement measure of memorising denoisers


def build_denoisers(cfg: TrajectoryConfig, trained: torch.nn.Module | None = None) -> list[DenoiserCase]:
    """Return the denoisers ``cfg.denoisers`` names, in that order (exact ones, the trained MLP, a real model)."""
    cases = []
    image_data = None
    for name in cfg.denoisers:
        lo, hi = cfg.sigma_min, cfg.sigma_max
        if name in ("kde", "empirical"):
            if image_data is None:
                image_data = (load_cifar10(cfg.data_dir) if cfg.dataset == "cifar10" else load_digits_data())
            emp = EmpiricalDenoiser(image_data, bandwidth=cfg.bandwidth if name == "kde" else 0.0)
            cases.append(DenoiserCase(name, emp, tuple(image_data.shape[1:]), lo, hi, cfg.gits_metric,
                                      emp if name == "empirical" else None))
        elif name == "gmm2d":
            cases.append(DenoiserCase(name, ring2d(), (2,), lo, hi, cfg.gits_metric_2d))
        elif name == "trained":
            if trained is None:
                raise ValueError("the 'trained' denoiser needs a model: pass trained= (evaluate trains one if absent)")
            dim = trained.net.dim
            cases.append(DenoiserCase(name, trained, (dim,), lo, hi, cfg.gits_metric if dim > 2 else cfg.gits_metric_2d))
        elif name == "pretrained":
            if not cfg.pretrained:
                raise ValueError("the 'pretrained' denoiser needs cfg.pretrained (a diffusers folder or hub id)")
            den = load_pretrained(cfg.pretrained, device=pick_device(cfg.device))
            size = den.unet.config.sample_size
            shape = (den.unet.config.in_channels, size, size)
            cases.append(DenoiserCase(name, den, shape, max(lo, den.sigma_min), min(hi, den.sigma_max),
                                      cfg.gits_metric))
    return cases
