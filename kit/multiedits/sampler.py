"""The inversion-free DDCM sampler ParallelEdits edits with (arXiv:2406.00985, built on InfEdit's denoising
consistent model sampling, arXiv:2312.04965).

Every branch k keeps a latent x_t and a *reference*: a latent r_t and a clean estimate r0 of the image it edits. At
each step the model predicts eps for the branch (its own prompt, classifier-free guided) and eps_r for the reference
(the source prompt, usually unguided), and with one Gaussian z shared by all branches:

    x0_hat  = r0 + [(x_t - r_t) - sqrt(1 - abar_t) (eps - eps_r)] / sqrt(abar_t)
    x_{t-1} = sqrt(abar_{t-1}) x0_hat + sqrt(1 - abar_{t-1}) z
    r_{t-1} = sqrt(abar_{t-1}) r0     + sqrt(1 - abar_{t-1}) z

(eta = 1: no deterministic direction term). Nothing is inverted: the source image r0 enters through the reference,
and a branch that predicts what its reference predicts (x_t = r_t, eps = eps_r) gets x0_hat = r0 exactly, the
invariant :func:`ddcm_step` is tested for. The output is the last branch's final x0_hat.

References: until ``switch_step`` every branch references the source; from then on branch k references branch
k - 1's latent and last x0_hat (``reference="previous"``, the default, as the attention wiring of the authors'
code implies), or the authors' concatenation order (``reference="code_order"``: branch k references branch k + 1
and the last one the source), kept as the option the spec flags as contradictory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from kit.diffusion.editing import eps_from_output  # the DDCM step's eps (re-exported)

__all__ = ["REFERENCES", "REFERENCE_EPS", "ddcm_step", "eps_from_output", "reference_indices", "DDCMResult", "ddcm_sample"]

REFERENCES = ("previous", "code_order")
REFERENCE_EPS = ("reference", "source", "reference_source_scale")


def ddcm_step(x: Tensor, r: Tensor, r0: Tensor, eps: Tensor, eps_r: Tensor, abar: Tensor | float,
              abar_prev: Tensor | float, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return (x_prev, r_prev, x0_hat) of one DDCM step for branch latents x [K, ...] with references r, r0 and
    noise predictions eps (branch) and eps_r (reference); ``z`` is the step's shared noise."""
    shapes = {tuple(t.shape) for t in (x, r, r0, eps, eps_r)}
    if len(shapes) != 1:
        raise ValueError(f"x, r, r0, eps and eps_r must have one shape, got {sorted(shapes)}")
    if z.shape[1:] != x.shape[1:]:
        raise ValueError(f"z must be [1 or K, {', '.join(map(str, x.shape[1:]))}], got {tuple(z.shape)}")
    a = torch.as_tensor(abar, dtype=x.dtype, device=x.device)
    a_prev = torch.as_tensor(abar_prev, dtype=x.dtype, device=x.device)
    x0_hat = r0 + ((x - r) - (1 - a).sqrt() * (eps - eps_r)) / a.sqrt()
    x_prev = a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * z
    r_prev = a_prev.sqrt() * r0 + (1 - a_prev).sqrt() * z
    return x_prev, r_prev, x0_hat


def reference_indices(num_branches: int, step: int, switch_step: int, reference: str = "previous") -> list[int]:
    """Return, for each branch k, the branch it references at ``step``: -1 for the source, else a branch index."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if num_branches < 1:
        raise ValueError(f"num_branches must be >= 1, got {num_branches}")
    if step < switch_step:
        return [-1] * num_branches
    if reference == "previous":
        return [k - 1 for k in range(num_branches)]
    return [k + 1 if k + 1 < num_branches else -1 for k in range(num_branches)]


@dataclass
class DDCMResult:
    """What :func:`ddcm_sample` returns: the final x0_hat of every branch [K, ...] (the edit is the last one's),
    the x0_hat of every step [n, K, ...] (for a Play widget), and the references used at each step."""

    x0: Tensor
    x0_steps: Tensor
    references: list[list[int]] = field(default_factory=list)

    @property
    def edit(self) -> Tensor:
        """Return the last branch's final clean estimate [1, ...]: the edited image's latent."""
        return self.x0[-1:]


# predict(x [R, ...], t, step) -> eps [R, ...] for R = 1 + K rows: row 0 the source prompt (the reference's
# prediction), rows 1..K the branches (their prompts, guided); the caller wires prompts, guidance and attention.
# It may return (eps, eps_as_reference): each row's prediction at the source's guidance scale as well, for
# reference_eps="reference_source_scale"
Predict = Callable[[Tensor, Tensor, int], Tensor]


@torch.no_grad()
def ddcm_sample(predict: Predict, source: Tensor, timesteps: Sequence[int] | Tensor, abar: Tensor,
                num_branches: int, *, switch_step: int = 7, reference: str = "previous",
                generator: torch.Generator | None = None,
                blend: Callable[[int, Tensor, Tensor], Tensor] | None = None,
                references: Callable[[int], Sequence[int]] | None = None,
                reference_eps: str = "reference") -> DDCMResult:
    """Return the :class:`DDCMResult` of editing the clean ``source`` latent [1, c, h, w] with ``num_branches``.

    ``timesteps`` [n] (descending) and ``abar`` [n + 1] (noise level at each timestep, then the clean end: a
    :class:`kit.diffusion.editing.DDIMGrid`'s ``abar``, or an LCM schedule's); all branches and the source start at
    sqrt(abar_0) source + sqrt(1 - abar_0) z. ``predict`` sees the batch [reference rows of the source..., branches]
    as described at :data:`Predict`. A branch referencing another branch uses that branch's current latent as r_t
    and its last x0_hat as r0, and that branch's noise prediction as eps_r. ``blend(step, x_prev [K, ...],
    source_prev [1, ...]) -> x_prev`` may mix the branches' new latents with each other or with the source's new
    latent after the step (local blending).

    ``references(step) -> [K ints]`` overrides the wiring of ``switch_step`` / ``reference`` (the reference of each
    branch at that step: -1 the source, else a branch index), e.g. for ParallelEdits' mutual branches.
    ``reference_eps``: "reference" (default, ``[PROPOSED]``) uses the referenced branch's own noise prediction as
    eps_r, so a branch that predicts what its reference predicts stays on it; "source" uses the source's
    prediction for every branch, as the authors' code does (a branch referencing an edited branch then counts
    that branch's edits twice: once in r0, once in eps - eps_source). "reference_source_scale" (``[PROPOSED]``) uses
    the referenced branch's prediction at the source's guidance scale (``predict`` then returns (eps,
    eps_as_reference)): a branch then edits its reference as the first branch edits the source, and as sequential
    editing edits the previous result (its own prompt guided against the reference's prompt unguided), where
    "reference" leaves a later branch only the difference of two guided predictions.
    """
    if reference_eps not in REFERENCE_EPS:
        raise ValueError(f"reference_eps must be one of {REFERENCE_EPS}, got {reference_eps!r}")
    if source.ndim != 4 or source.shape[0] != 1:
        raise ValueError(f"source must be one clean latent [1, c, h, w], got {tuple(source.shape)}")
    ts = torch.as_tensor(timesteps)
    n = len(ts)
    if abar.shape != (n + 1,):
        raise ValueError(f"abar must hold one level per timestep and the clean end ({n + 1}), got {tuple(abar.shape)}")
    k = num_branches
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def noise() -> Tensor:
        return torch.randn(source.shape, generator=generator, device=gen_device, dtype=source.dtype).to(source.device)

    z = noise()
    src_t = abar[0].sqrt().to(source.dtype) * source + (1 - abar[0]).sqrt().to(source.dtype) * z
    x = src_t.expand(k, -1, -1, -1).clone()
    x0_last = source.expand(k, -1, -1, -1).clone()
    steps, refs_log = [], []
    for i in range(n):
        a, a_prev = abar[i], abar[i + 1]
        out = predict(torch.cat([src_t, x]), ts[i].expand(1 + k), i)
        eps_all, as_ref = out if isinstance(out, tuple) else (out, None)
        if reference_eps == "reference_source_scale" and as_ref is None:
            raise ValueError('reference_eps="reference_source_scale" needs predict to return (eps, eps_as_reference)')
        if eps_all.shape[0] != 1 + k:
            raise ValueError(f"predict must return {1 + k} rows (source + branches), got {eps_all.shape[0]}")
        eps_src, eps = eps_all[:1], eps_all[1:]
        refs = reference_indices(k, i, switch_step, reference) if references is None else list(references(i))
        if len(refs) != k or any(not -1 <= j < k for j in refs):
            raise ValueError(f"references({i}) must give {k} indices in [-1, {k}), got {refs}")
        r = torch.cat([src_t if j < 0 else x[j:j + 1] for j in refs])
        r0 = torch.cat([source if j < 0 else x0_last[j:j + 1] for j in refs])
        ref_rows = eps if as_ref is None or reference_eps != "reference_source_scale" else as_ref[1:]
        eps_r = torch.cat([eps_src if (j < 0 or reference_eps == "source") else ref_rows[j:j + 1] for j in refs])
        z = noise()
        x_prev, _, x0_hat = ddcm_step(x, r, r0, eps, eps_r, a, a_prev, z)
        src_t = a_prev.sqrt().to(source.dtype) * source + (1 - a_prev).sqrt().to(source.dtype) * z
        if blend is not None:
            x_prev = blend(i, x_prev, src_t)
        x, x0_last = x_prev, x0_hat
        steps.append(x0_hat)
        refs_log.append(refs)
    return DDCMResult(x0_last, torch.stack(steps), refs_log)
