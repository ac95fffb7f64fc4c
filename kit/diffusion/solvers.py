"""Probability-flow ODE solvers for the VE/EDM convention ``x = x0 + sigma * n`` (Karras et al. 2022,
arXiv:2206.00364), with NFE accounting.

The ODE is ``dx/dsigma = eps(x, sigma) = (x - D(x, sigma)) / sigma`` for a denoiser ``D(x, sigma) -> x0_hat``
(``x [B, ...]``, ``sigma`` a tensor [B]). A schedule ``sigmas`` is a strictly decreasing 1-D tensor of n + 1
positive values; ``sample`` integrates from sigmas[0] to sigmas[-1] in n steps. With h = s_{i+1} - s_i:

- ``euler``: x + h eps_i (DDIM is exactly this step in VE form). 1 NFE/step, order 1.
- ``heun``: Euler predictor x~, then x + h (eps_i + eps(x~, s_{i+1})) / 2 (EDM Algorithm 1). 2 NFE/step, order 2.
- ``dpm2``: Euler to s_m = sqrt(s_i s_{i+1}) (midpoint in log sigma), then x + h eps(x_m, s_m)
  (DPM-Solver-2, arXiv:2206.00927, in the EDM form). 2 NFE/step, order 2.
- ``ipndm``: fixed uniform-step Adams-Bashforth weights on eps (iPNDM; Zhang & Chen, arXiv:2204.13902).
- ``dpmpp2m`` / ``dpmpp3m``: multistep DPM-Solver++ in lambda = -log sigma (arXiv:2211.01095), no thresholding.
  3M weighs the second divided difference by its Taylor coefficient (truly third order; the reference
  code's weight, formally second order, is ``taylor_3m=False``).
- ``unipc``: UniPC bh2 predictor-corrector (arXiv:2302.04867).
- ``deis``: DEIS-tAB, Lagrange extrapolation of eps in VP time (arXiv:2204.13902).

The multistep solvers live in :mod:`kit.diffusion.solvers_multistep`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kit.diffusion import solvers_multistep as ms

__all__ = [
    "SOLVERS",
    "DEFAULT_MAX_ORDER",
    "CountingDenoiser",
    "solver_nfe",
    "steps_for_nfe",
    "check_sigmas",
    "sample",
]

Denoiser = Callable[[Tensor, Tensor], Tensor]

SOLVERS = ("euler", "heun", "dpm2", "ipndm", "dpmpp2m", "dpmpp3m", "unipc", "deis")
_TWO_STAGE = ("heun", "dpm2")
# Default (and largest allowed) max_order per multistep solver; see ``sample``.
DEFAULT_MAX_ORDER = {"ipndm": 4, "dpmpp2m": 2, "dpmpp3m": 3, "unipc": 3, "deis": 3}
_MAX_MAX_ORDER = {"ipndm": 4, "dpmpp2m": 2, "dpmpp3m": 3, "unipc": 3, "deis": 4}
# Solvers whose lower_order_final defaults to True (diffusers' default); iPNDM keeps its order to the end.
_LOWER_ORDER_FINAL_DEFAULT = {"ipndm": False, "dpmpp2m": True, "dpmpp3m": True, "unipc": True, "deis": True}


def _check_solver(solver: str) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}; got {solver!r}")
    return solver


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def solver_nfe(solver: str, n_steps: int) -> int:
    """Return the number of denoiser evaluations ``sample`` spends for n_steps steps of ``solver``."""
    _check_solver(solver)
    _check_count(n_steps, "n_steps")
    return 2 * n_steps if solver in _TWO_STAGE else n_steps


def steps_for_nfe(solver: str, nfe: int) -> int:
    """Return the number of steps that spends exactly ``nfe`` evaluations (nfe // 2 for heun and dpm2).

    Raises ValueError when no step count spends exactly nfe (odd nfe, or nfe < 2, for the 2-stage solvers).
    """
    _check_solver(solver)
    _check_count(nfe, "nfe")
    if solver in _TWO_STAGE:
        if nfe % 2:
            raise ValueError(f"nfe must be even for {solver} (2 evaluations per step), got {nfe}")
        return nfe // 2
    return nfe


class CountingDenoiser:
    """Wrap a denoiser and count its (batched) calls in ``.calls``."""

    def __init__(self, denoiser: Denoiser) -> None:
        if not callable(denoiser):
            raise ValueError(f"denoiser must be callable, got {type(denoiser).__name__}")
        self.denoiser = denoiser
        self.calls = 0

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return denoiser(x, sigma), counting the call."""
        self.calls += 1
        return self.denoiser(x, sigma)

    def reset(self) -> None:
        """Set the call counter back to 0."""
        self.calls = 0


def check_sigmas(sigmas: Tensor | Sequence[float]) -> list[float]:
    """Return the schedule as python floats after checking it is 1-D, finite, > 0, strictly decreasing, n + 1 >= 2."""
    t = torch.as_tensor(sigmas).detach()
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor with at least 2 values, got shape {tuple(t.shape)}")
    values = t.to(torch.float64).cpu()
    if not torch.isfinite(values).all() or (values <= 0).any():
        raise ValueError(f"sigmas must be finite and > 0, got min {values.min().item():.4g}")
    if (values[1:] >= values[:-1]).any():
        raise ValueError("sigmas must be strictly decreasing (sigma_max ... sigma_min)")
    return values.tolist()


def _make_evaluate(denoiser: Denoiser, x: Tensor) -> Callable[[Tensor, float], Tensor]:
    batch, shape, dtype = x.shape[0], x.shape, x.dtype

    def evaluate(x_cur: Tensor, sigma: float) -> Tensor:
        sigma_batch = torch.full((batch,), sigma, dtype=dtype, device=x_cur.device)
        d = denoiser(x_cur, sigma_batch)
        if not isinstance(d, Tensor) or d.shape != shape:
            got = tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__
            raise ValueError(f"denoiser must return a tensor of shape {tuple(shape)}, got {got}")
        if not torch.isfinite(d).all():
            raise ValueError(f"denoiser returned non-finite values at sigma={sigma:.6g}")
        return d.to(dtype)

    return evaluate


def _make_before(step_hook, x: Tensor, sigmas: list[float]) -> Callable[[int, Tensor], Tensor]:
    shape, dtype = x.shape, x.dtype

    def before(i: int, x_i: Tensor) -> Tensor:
        out = step_hook(i, x_i, sigmas[i])
        if out is None:
            return x_i
        if not isinstance(out, Tensor) or out.shape != shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"step_hook must return None or a tensor of shape {tuple(shape)}, got {got}")
        return out.to(dtype)

    return before


def _run_euler(evaluate, x, sigmas, record, steps, before=None) -> Tensor:
    for i in steps:
        x = x if before is None else before(i, x)
        s, s_next = sigmas[i], sigmas[i + 1]
        d = evaluate(x, s)
        record(i, x, d)
        x = x + (s_next - s) * (x - d) / s
    return x


def _run_heun(evaluate, x, sigmas, record, steps, before=None) -> Tensor:
    for i in steps:
        x = x if before is None else before(i, x)
        s, s_next = sigmas[i], sigmas[i + 1]
        d = evaluate(x, s)
        record(i, x, d)
        eps = (x - d) / s
        x_pred = x + (s_next - s) * eps
        eps_next = (x_pred - evaluate(x_pred, s_next)) / s_next
        x = x + (s_next - s) * (eps + eps_next) / 2
    return x


def _run_dpm2(evaluate, x, sigmas, record, steps, before=None) -> Tensor:
    for i in steps:
        x = x if before is None else before(i, x)
        s, s_next = sigmas[i], sigmas[i + 1]
        s_mid = math.sqrt(s * s_next)
        d = evaluate(x, s)
        record(i, x, d)
        x_mid = x + (s_mid - s) * (x - d) / s
        x = x + (s_next - s) * (x_mid - evaluate(x_mid, s_mid)) / s_mid
    return x


def _check_options(solver: str, max_order: int | None, lower_order_final: bool | None) -> dict:
    if solver in _TWO_STAGE or solver == "euler":
        if max_order is not None:
            raise ValueError(f"max_order is only used by multistep solvers, not {solver}; got {max_order}")
        return {}
    top = _MAX_MAX_ORDER[solver]
    if max_order is None:
        max_order = DEFAULT_MAX_ORDER[solver]
    if isinstance(max_order, bool) or not isinstance(max_order, int) or not 1 <= max_order <= top:
        raise ValueError(f"max_order for {solver} must be an int in 1..{top}, got {max_order!r}")
    if lower_order_final is None:
        lower_order_final = _LOWER_ORDER_FINAL_DEFAULT[solver]
    return {"max_order": max_order, "lower_order_final": bool(lower_order_final)}


def sample(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    solver: str = "euler",
    return_trajectory: bool = False,
    *,
    max_order: int | None = None,
    lower_order_final: bool | None = None,
    taylor_3m: bool = True,
    callback: Callable[[int, Tensor, Tensor, float], None] | None = None,
    step_hook: Callable[[int, Tensor, float], Tensor | None] | None = None,
    progress: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Return x_end [B, ...] at sigmas[-1], or (x_end, xs [n+1, B, ...], denoised [n, B, ...]).

    ``x [B, ...]`` is the start point at sigmas[0] (already scaled, e.g. sigma_max * z); the integration runs in
    x's dtype and device. ``xs`` is the sampling trajectory (xs[0] = x, xs[-1] = x_end) and ``denoised[i]`` the
    evaluation D(xs[i], sigmas[i]) made at the start of step i (for heun/dpm2 the first stage's). Exception:
    for ``unipc`` (i >= 1) it is D at the predicted point, which the corrector then moves by O(h^(p+1)).

    Options:
    - ``max_order``: multistep solvers only. ipndm 1..4 (default 4), dpmpp2m 1..2 (default 2), dpmpp3m 1..3
      (default 3), unipc 1..3 (default 3, the UniPC paper's choice for unconditional sampling; accuracy order
      max_order + 1 thanks to the corrector), deis 1..4 (default 3 = number of eps values used; the DEIS paper's
      "tAB-r" uses r + 1 values, so tAB3 is max_order=4).
    - ``lower_order_final``: cap the order at the number of steps left (steps n-1, n-2 use orders 1, 2) when
      n < 15, as in diffusers/DPM-Solver. Default True for dpmpp/unipc/deis, False for ipndm (as in iPNDM).
    - ``taylor_3m``: dpmpp3m only; False reproduces the reference code's D2 weight (formally order 2), see
      :func:`kit.diffusion.solvers_multistep.run_dpmpp`.
    - ``callback(i, x_i, denoised_i, sigma_i)`` is called at the start of every step, after D(x_i) is evaluated.
    - ``step_hook(i, x_i, sigma_i)`` is called at the start of every step *before* D is evaluated; a tensor it
      returns (same shape) replaces x_i (a latent edit, an inpainting constraint), None keeps it. Multistep
      solvers keep their history of earlier D values, as diffusers' schedulers do when a callback edits latents;
      unipc evaluates D again at a replaced x_i instead of reusing its corrector's evaluation (one more NFE).
    - ``progress``: show a tqdm.auto bar over the steps.
    """
    _check_solver(solver)
    if not callable(denoiser):
        raise ValueError(f"denoiser must be callable, got {type(denoiser).__name__}")
    if not isinstance(x, Tensor) or x.ndim < 1 or x.shape[0] < 1 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor [B, ...] with B >= 1")
    sigma_list = check_sigmas(sigmas)
    options = _check_options(solver, max_order, lower_order_final)
    if solver == "dpmpp3m":
        options["taylor_3m"] = bool(taylor_3m)
    elif not taylor_3m:
        raise ValueError(f"taylor_3m=False only applies to dpmpp3m, not {solver}")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
    if step_hook is not None and not callable(step_hook):
        raise ValueError(f"step_hook must be callable or None, got {type(step_hook).__name__}")

    n = len(sigma_list) - 1
    xs: list[Tensor] = []
    denoised: list[Tensor] = []

    def record(i: int, x_i: Tensor, d_i: Tensor) -> None:
        if return_trajectory:
            xs.append(x_i)
            denoised.append(d_i)
        if callback is not None:
            callback(i, x_i, d_i, sigma_list[i])

    steps = range(n)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=solver, leave=False)
    evaluate = _make_evaluate(denoiser, x)
    before = None if step_hook is None else _make_before(step_hook, x, sigma_list)
    if solver == "euler":
        x_end = _run_euler(evaluate, x, sigma_list, record, steps, before)
    elif solver == "heun":
        x_end = _run_heun(evaluate, x, sigma_list, record, steps, before)
    elif solver == "dpm2":
        x_end = _run_dpm2(evaluate, x, sigma_list, record, steps, before)
    elif solver == "ipndm":
        x_end = ms.run_ipndm(evaluate, x, sigma_list, record, steps, before=before, **options)
    elif solver in ("dpmpp2m", "dpmpp3m"):
        x_end = ms.run_dpmpp(evaluate, x, sigma_list, record, steps, before=before, **options)
    elif solver == "unipc":
        x_end = ms.run_unipc(evaluate, x, sigma_list, record, steps, before=before, **options)
    else:
        x_end = ms.run_deis(evaluate, x, sigma_list, record, steps, before=before, **options)
    if not return_trajectory:
        return x_end
    xs.append(x_end)
    return x_end, torch.stack(xs), torch.stack(denoised)
