"""Few-step sampling of a text-to-image model: the same prompts and noise at several step counts and schedules,
and a GITS schedule (arXiv:2405.11326) searched with the authors' recipe for latent text-to-image models.

The recipe (their Stable Diffusion command, ``launch.sh`` of the official code): a DPM-Solver++ teacher on a base grid
of 61 points spaced uniformly in the model's discrete timestep (``schedule_type='discrete'``, rho 1), the ``dev``
cost, DP coefficient 1.20, a DPM-Solver++ student, classifier-free guidance inside the searched model, and warm-up
trajectories from prompts of the caption distribution (they draw MS-COCO captions). Here the warm-up prompts are
drawn disjoint from the prompts the schedule is then evaluated on, so the comparison is out of sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# the GITS authors' setting for Stable Diffusion (ms_coco in their launch.sh): teacher and student DPM-Solver++,
# 61 teacher timestamps on the discrete (uniform-in-t) grid, dev metric, coefficient 1.20
GITS_T2I_RECIPE = {"teacher_solver": "dpmpp2m", "solver": "dpmpp2m", "grid_points": 61, "metric": "dev",
                   "coeff": 1.20}

# prompts the few-step comparison is shown and measured on
SHAPES_PROMPTS = ("a big red circle", "a small blue square", "a big yellow triangle",
                  "a big white cross left of a small purple circle")
SD_PROMPTS = ("a red car parked next to a blue bicycle", "a cat sitting on a wooden chair",
              "a lighthouse on a rocky coast at sunset", "a bowl of green apples on a kitchen table")
# warm-up prompts of the Stable Diffusion search (everyday captions in the style of MS-COCO, none of SD_PROMPTS)
SD_WARMUP_PROMPTS = ("a dog running on a sandy beach", "a city street at night with bright signs",
                     "a plate of pasta with tomato sauce", "a mountain lake surrounded by pine trees",
                     "a yellow bus on a country road", "an old man reading a newspaper in a park",
                     "a vase of sunflowers by a window", "a sailboat on a calm sea",
                     "two horses standing in a green field", "a kitchen with white cabinets and a wooden floor",
                     "a person riding a bicycle down a hill", "a train crossing a bridge over a river",
                     "a pizza with olives on a table", "a living room with a grey sofa and a lamp",
                     "a group of people flying kites in a park", "a bird sitting on a tree branch")


def warmup_prompts(n: int, exclude: Sequence[str], seed: int = 0, shapes_world: bool = True) -> list[str]:
    """Return ``n`` warm-up prompts for a GITS search, none of them in ``exclude`` (the evaluation prompts).

    ShapesWorld: captions of random 1- and 2-object scenes (the training distribution) drawn with ``seed``, without
    repeats. Stable Diffusion: the first ``n`` of :data:`SD_WARMUP_PROMPTS` not in ``exclude``.
    """
    from kit.data.shapes import caption, sample_scene

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    banned = {p.strip().lower() for p in exclude}
    if not shapes_world:
        pool = [p for p in SD_WARMUP_PROMPTS if p not in banned]
        if n > len(pool):
            raise ValueError(f"only {len(pool)} Stable Diffusion warm-up prompts are not excluded; asked for {n}")
        return pool[:n]
    rng = np.random.default_rng((seed, 20))
    out: list[str] = []
    for _ in range(100 * n):
        p = caption(sample_scene(rng, (1, 2)))
        if p not in banned and p not in out:
            out.append(p)
            if len(out) == n:
                return out
    raise ValueError(f"could not draw {n} distinct warm-up captions outside the {len(banned)} excluded prompts")


def _noise(pipe, n: int, seed: int) -> torch.Tensor:
    return torch.randn(pipe.latent_shape(n), generator=torch.Generator().manual_seed(seed))


def gits_t2i_search(pipe, warmup: Sequence[str], guidance_scale: float, seed: int = 0,
                    grid_points: int = GITS_T2I_RECIPE["grid_points"],
                    teacher_solver: str = GITS_T2I_RECIPE["teacher_solver"], metric: str = GITS_T2I_RECIPE["metric"]):
    """Return the :class:`kit.diffusion.gits.GITSSearch` of the guided model ``pipe`` (a
    :class:`kit.diffusion.t2i.TextToImagePipeline`) on the ``warmup`` prompts, one noise each (``seed``): teacher
    ``teacher_solver`` over the ``grid_points`` discrete-timestep sigmas (:func:`kit.diffusion.hf.discrete_timestep_sigmas`),
    cost ``metric``, the authors' recipe by default (:data:`GITS_T2I_RECIPE`)."""
    from kit.diffusion.gits import gits_search
    from kit.diffusion.hf import discrete_timestep_sigmas

    warmup = list(warmup)
    if not warmup:
        raise ValueError("warmup must hold at least one prompt")
    den = pipe.guided_denoiser(warmup, guidance_scale=guidance_scale)
    grid = discrete_timestep_sigmas(pipe.scheduler, grid_points)
    x = float(grid[0]) * _noise(pipe, len(warmup), seed).to(pipe.device)
    return gits_search(den, x, grid=grid, metric=metric, teacher_solver=teacher_solver)


@dataclass
class ScheduleStudy:
    """The same prompts and noises sampled with each schedule: ``images`` {label: uint8 [N, H, W, 3]}, ``rmse``
    {label: root-mean-square difference (images in [0, 1]) from the teacher on the full grid, the last row},
    ``sigmas`` {label: the schedule}, the prompts (``prompts`` evaluated, ``warmup`` searched) and the search."""

    prompts: list[str]
    warmup: list[str]
    images: dict[str, np.ndarray]
    rmse: dict[str, float]
    sigmas: dict[str, list[float]]
    nfe: int
    coeff: float
    search: Any = field(repr=False, default=None)

    def record(self) -> dict[str, Any]:
        """Return what metrics.json keeps: schedules, errors, prompts and the search's cost."""
        return {"nfe": self.nfe, "coeff": self.coeff, "recipe": dict(GITS_T2I_RECIPE, coeff=self.coeff),
                "sigmas": self.sigmas[f"GITS {self.nfe}"], "schedules": self.sigmas, "rmse_to_teacher": self.rmse,
                "prompts": self.prompts, "warmup_prompts": self.warmup,
                "search_seconds": round(self.search.seconds, 2),
                "network_evaluations": self.search.teacher_evaluations}

    def grid(self) -> tuple[np.ndarray, list[str]]:
        """Return (images [S * N, H, W, 3], titles): one row per schedule (the teacher last), one column per
        prompt; the first column's title names the prompt ("left of" as an arrow)."""
        rows, titles = [], []
        for label, imgs in self.images.items():
            rows.extend(imgs)
            titles.extend(f"{label}: {p.replace(' left of ', ' ← ').replace(' right of ', ' → ')}" if i == 0 else label
                          for i, p in enumerate(self.prompts))
        return np.stack(rows), titles

    def markdown(self) -> str:
        """Return a table: schedule, steps, RMSE to the reference."""
        rows = ["| schedule | steps | RMSE to the teacher (images in [0, 1]) |", "|---|---|---|"]
        rows += [f"| {k} | {len(self.sigmas[k]) - 1} | {v:.4f} |" for k, v in self.rmse.items()]
        return "\n".join(rows)


def schedule_study(pipe, prompts: Sequence[str], warmup: Sequence[str], nfe: int = 10, guidance_scale: float = 3.0,
                   seed: int = 0, coeff: float = GITS_T2I_RECIPE["coeff"], low_steps: int = 5,
                   other_coeffs: Sequence[float] = ()) -> ScheduleStudy:
    """Return a :class:`ScheduleStudy` of ``prompts`` with DPM-Solver++(2M) at ``low_steps`` and ``nfe`` steps on the
    pipeline's own schedule, at ``nfe`` steps uniform in the discrete timestep (Stable Diffusion's default spacing)
    and on the GITS schedule searched on ``warmup`` (which must not share a prompt with ``prompts``: the schedule is
    judged out of sample), each against the teacher (DPM-Solver++ over the 61-point discrete grid, the last row)
    from the same noise (``seed``). The warm-up noises use ``seed + 1000``. ``other_coeffs`` add GITS schedules of
    the same search (same cost matrix) with other DP coefficients, labelled "GITS {nfe}, coeff {c}"."""
    from kit.diffusion.hf import discrete_timestep_sigmas
    from kit.diffusion.schedules import get_schedule

    prompts, warmup = list(prompts), list(warmup)
    shared = sorted(set(prompts) & set(warmup))
    if shared:
        raise ValueError(f"warm-up prompts must be disjoint from the evaluation prompts; both hold {shared}")
    search = gits_t2i_search(pipe, warmup, guidance_scale, seed=seed + 1000)
    den = pipe.guided_denoiser(prompts, guidance_scale=guidance_scale)
    teacher = f"teacher ({search.grid.numel() - 1} steps)"
    sigmas = {f"{n} steps": get_schedule(pipe.schedule, n, sigma_min=den.sigma_min, sigma_max=den.sigma_max)
              for n in dict.fromkeys((low_steps, nfe))}
    sigmas.update({f"time-uniform {nfe}": discrete_timestep_sigmas(pipe.scheduler, nfe + 1),
                   f"GITS {nfe}": search.schedule(nfe, solver=GITS_T2I_RECIPE["solver"], coeff=coeff)})
    sigmas.update({f"GITS {nfe}, coeff {c:g}": search.schedule(nfe, solver=GITS_T2I_RECIPE["solver"], coeff=c)
                   for c in other_coeffs})
    sigmas[teacher] = search.grid
    noise = _noise(pipe, len(prompts), seed)
    images, floats = {}, {}
    for label, s in sigmas.items():
        out = pipe(prompts, guidance_scale=guidance_scale, latents=noise, sigmas=s, solver=GITS_T2I_RECIPE["solver"],
                   output_type="np").images
        floats[label] = np.asarray(out, dtype=np.float64)
        images[label] = np.round(floats[label] * 255).astype(np.uint8)
    ref = floats.pop(teacher)
    rmse = {k: float(np.sqrt(np.mean((v - ref) ** 2))) for k, v in floats.items()}
    return ScheduleStudy(prompts, warmup, images, rmse, {k: [float(x) for x in v] for k, v in sigmas.items()},
                         nfe, float(coeff), search)
