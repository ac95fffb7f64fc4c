"""Logit-distillation losses: KD, DKD, RLD and the label-correction baselines LA, LR and RC.

Every loss is a pure function of ``logits_student [B, C]``, ``logits_teacher [B, C]`` (treated as constants:
detached inside) and, where needed, ``target [B]`` (integer class indices in ``[0, C)``); it returns a 0-dim
batch-mean tensor and never NaN. KL(p||q) = sum_c p_c log(p_c / q_c) is always computed from log-probabilities
(``log_softmax`` / ``logsumexp``), never as ``log(1 - p)``, so extreme logits (+-1e4) keep finite values and
gradients.

- KD: Hinton et al., "Distilling the Knowledge in a Neural Network", arXiv:1503.02531.
- DKD: Zhao et al., "Decoupled Knowledge Distillation", arXiv:2203.08679 (TCKD + NCKD).
- RLD: Sun et al., "Knowledge Distillation with Refined Logits", arXiv:2408.07703 (SCD + MCD).
- LA / LR / RC: the label-correction baselines compared in arXiv:2408.07703 (swap the teacher's top and
  true logits; label revision; teacher-free "reverse correction" of the student's own logits).
- Logit standardization: Sun et al., "Logit Standardization in Knowledge Distillation", arXiv:2403.01427.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kit.rld.checks import check_logits, check_positive, check_target, check_weight, is_real

METHODS = ("ce", "kd", "dkd", "la", "rld", "lr", "rc")

# Fixed weights of the baselines as in the RLD authors' code (label revision and RC are not tuned there).
LR_ETA = 0.8  # teacher share of the revised target is eta / (p_max - p_y + 1)
LR_RIGHT_MSE_WEIGHT = 4.0  # logit MSE on the samples the teacher gets right
LR_WRONG_MSE_WEIGHT = 1.0  # probability MSE to the revised target on the samples it gets wrong
RC_KD_WEIGHT = 1.0
RC_WEIGHT = 0.1
# The authors' logit-standardization recipe (--logit-stand with the defaults --base-temp 2 --kd-weight 9 of
# tools/train.py in sunshangquan/logit-standardization-KD and zju-SWJ/RLD).
LS_TEMPERATURE = 2.0
LS_WEIGHT = 9.0


# ---------------------------------------------------------------- validation


def _check_inputs(logits_student: Tensor, logits_teacher: Tensor, target: Tensor | None = None):
    """Return (student, detached teacher in the student's dtype, int64 target or None) after validation."""
    check_logits("logits_student", logits_student)
    check_logits("logits_teacher", logits_teacher)
    if logits_student.shape != logits_teacher.shape:
        raise ValueError(
            f"logits_student {tuple(logits_student.shape)} and logits_teacher {tuple(logits_teacher.shape)} "
            "must have the same shape [B, C]"
        )
    t = logits_teacher.detach().to(logits_student.dtype)
    y = None if target is None else check_target(target, *logits_student.shape)
    return logits_student, t, y


# ---------------------------------------------------------------- building blocks


def _large_negative(dtype: torch.dtype) -> float:
    """A finite fill value whose exp underflows to 0 (-1e9, or less extreme for float16)."""
    return max(-1e9, torch.finfo(dtype).min / 4)


def _kl_from_logs(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Return the batch mean of KL(p||q) = sum_c p_c (log p_c - log q_c) for finite log_p, log_q [B, K]."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def _log_binary(logits: Tensor, index: Tensor, temperature: float) -> Tensor:
    """Return log [p_k, 1 - p_k] [B, 2] of p = softmax(logits / temperature) at class index [B]."""
    z = logits / temperature
    lse_all = torch.logsumexp(z, dim=1, keepdim=True)
    others = z.masked_fill(F.one_hot(index, z.shape[1]).bool(), float("-inf"))
    log_p = z.gather(1, index[:, None]) - lse_all
    log_rest = torch.logsumexp(others, dim=1, keepdim=True) - lse_all  # log(1 - p_k), no cancellation
    return torch.cat([log_p, log_rest], dim=1)


def _masked_kl(s: Tensor, t: Tensor, mask: Tensor, temperature: float) -> Tensor:
    """Return tau^2 KL(p~^t || p~^s) of the softmaxes renormalised over the classes where mask [B, C] is False.

    Masked logits are filled with a large negative FINITE value, so a fully masked row gives two identical
    uniform distributions and a loss of exactly 0 (with -inf it would be NaN); masked classes get no gradient.
    """
    neg = _large_negative(s.dtype)
    log_q = F.log_softmax((s / temperature).masked_fill(mask, neg), dim=1)
    log_p = F.log_softmax((t / temperature).masked_fill(mask, neg), dim=1)
    return temperature**2 * _kl_from_logs(log_p, log_q)


def _kd(s: Tensor, t: Tensor, temperature: float) -> Tensor:
    log_q = F.log_softmax(s / temperature, dim=1)
    log_p = F.log_softmax(t / temperature, dim=1)
    return temperature**2 * _kl_from_logs(log_p, log_q)


def _dkd_parts(s: Tensor, t: Tensor, y: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    tckd = temperature**2 * _kl_from_logs(_log_binary(t, y, temperature), _log_binary(s, y, temperature))
    nckd = _masked_kl(s, t, F.one_hot(y, s.shape[1]).bool(), temperature)
    return tckd, nckd


def _rld_mask(t: Tensor, y: Tensor) -> Tensor:
    return t >= t.gather(1, y[:, None])


def _scd(s: Tensor, t: Tensor, y: Tensor, alpha_temperature: float) -> Tensor:
    top = t.argmax(dim=1)
    log_bt = _log_binary(t, top, alpha_temperature)  # teacher: its own top class
    log_bs = _log_binary(s, y, alpha_temperature)  # student: the true class
    return alpha_temperature**2 * _kl_from_logs(log_bt, log_bs)


def _mcd(s: Tensor, t: Tensor, y: Tensor, temperature: float) -> Tensor:
    return _masked_kl(s, t, _rld_mask(t, y), temperature)


def _swap(t: Tensor, y: Tensor) -> Tensor:
    top = t.argmax(dim=1, keepdim=True)
    z_top, z_true = t.gather(1, top), t.gather(1, y[:, None])
    return t.clone().scatter_(1, y[:, None], z_top).scatter_(1, top, z_true)


def _lr_parts(s: Tensor, t: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    right = t.argmax(dim=1) == y
    zero = s.new_zeros(())
    if bool(right.any()):
        ce_right = F.cross_entropy(s[right], y[right])
        mse_right = F.mse_loss(s[right], t[right])
    else:
        ce_right, mse_right = zero, zero
    wrong = ~right
    if bool(wrong.any()):
        p_t = F.softmax(t[wrong], dim=1)
        y_w = y[wrong]
        share = LR_ETA / (p_t.max(dim=1, keepdim=True).values - p_t.gather(1, y_w[:, None]) + 1.0)
        revised = share * p_t + (1.0 - share) * F.one_hot(y_w, s.shape[1]).to(p_t.dtype)
        mse_wrong = F.mse_loss(F.softmax(s[wrong], dim=1), revised)
    else:
        mse_wrong = zero
    return ce_right, mse_right, mse_wrong


def _rc(s: Tensor, y: Tensor, temperature: float) -> Tensor:
    r = s.detach().clone()
    r.scatter_(1, y[:, None], r.gather(1, y[:, None]) + r.max(dim=1, keepdim=True).values)
    return _kd(s, r, temperature)


# ---------------------------------------------------------------- public losses


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Return the row-wise z-scored logits [B, C]: (z - mean) / (eps + std), std unbiased (arXiv:2403.01427)."""
    check_logits("logits", logits)
    check_positive("eps", eps)
    mean = logits.mean(dim=1, keepdim=True)
    return (logits - mean) / (eps + logits.std(dim=1, keepdim=True))


def kd_loss(logits_student: Tensor, logits_teacher: Tensor, temperature: float = 4.0) -> Tensor:
    """Return the KD loss tau^2 KL(softmax(z^t/tau) || softmax(z^s/tau)), batch mean (0-dim)."""
    s, t, _ = _check_inputs(logits_student, logits_teacher)
    return _kd(s, t, check_positive("temperature", temperature))


def dkd_parts(
    logits_student: Tensor, logits_teacher: Tensor, target: Tensor, temperature: float = 4.0
) -> tuple[Tensor, Tensor]:
    """Return (TCKD, NCKD) of DKD (arXiv:2203.08679), each 0-dim and already scaled by tau^2.

    TCKD = tau^2 KL([p^t_y, 1 - p^t_y] || [p^s_y, 1 - p^s_y]); NCKD = tau^2 KL over the classes c != y of the
    softmaxes renormalised to those classes.
    """
    s, t, y = _check_inputs(logits_student, logits_teacher, target)
    return _dkd_parts(s, t, y, check_positive("temperature", temperature))


def dkd_loss(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
) -> Tensor:
    """Return the DKD loss alpha * TCKD + beta * NCKD (0-dim), without CE and warm-up."""
    tckd, nckd = dkd_parts(logits_student, logits_teacher, target, temperature)
    return check_weight("alpha", alpha) * tckd + check_weight("beta", beta) * nckd


def rld_mask(logits_teacher: Tensor, target: Tensor) -> Tensor:
    """Return RLD's mask M [B, C] (bool): True for y and every class the teacher ranks at or above it.

    M = {c : z^t_c >= z^t_y}, ties included; it depends on the teacher only and is applied to both models.
    """
    check_logits("logits_teacher", logits_teacher)
    y = check_target(target, *logits_teacher.shape)
    return _rld_mask(logits_teacher.detach(), y)


def scd_loss(
    logits_student: Tensor, logits_teacher: Tensor, target: Tensor, alpha_temperature: float = 4.0
) -> Tensor:
    """Return RLD's sample-confidence distillation tau_a^2 KL(b^t || b^s), batch mean (0-dim).

    b^t = [p^t_m, 1 - p^t_m] with m the teacher's TOP class, b^s = [p^s_y, 1 - p^s_y] with y the TRUE class,
    both at temperature tau_a; its gradient w.r.t. z^s_y is tau_a (p^s_y - p^t_m) / B.
    """
    s, t, y = _check_inputs(logits_student, logits_teacher, target)
    return _scd(s, t, y, check_positive("alpha_temperature", alpha_temperature))


def mcd_loss(
    logits_student: Tensor, logits_teacher: Tensor, target: Tensor, temperature: float = 4.0
) -> Tensor:
    """Return RLD's masked-correlation distillation tau^2 KL(p~^t || p~^s), batch mean (0-dim).

    p~ is the softmax at temperature tau renormalised over the classes outside ``rld_mask`` (those the teacher
    ranks strictly below y). A row with y ranked last contributes exactly 0; masked classes get no gradient.
    """
    s, t, y = _check_inputs(logits_student, logits_teacher, target)
    return _mcd(s, t, y, check_positive("temperature", temperature))


def rld_parts(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    temperature: float = 4.0,
    alpha_temperature: float = 4.0,
) -> tuple[Tensor, Tensor]:
    """Return (SCD, MCD) of RLD (arXiv:2408.07703), each 0-dim."""
    s, t, y = _check_inputs(logits_student, logits_teacher, target)
    scd = _scd(s, t, y, check_positive("alpha_temperature", alpha_temperature))
    return scd, _mcd(s, t, y, check_positive("temperature", temperature))


def rld_loss(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    alpha_temperature: float = 4.0,
) -> Tensor:
    """Return the RLD loss alpha * SCD + beta * MCD (0-dim), without CE and warm-up.

    Equals DKD's alpha * TCKD + beta * NCKD when the teacher's argmax is the label for every sample and
    alpha_temperature == temperature.
    """
    scd, mcd = rld_parts(logits_student, logits_teacher, target, temperature, alpha_temperature)
    return check_weight("alpha", alpha) * scd + check_weight("beta", beta) * mcd


def swap_teacher_logits(logits_teacher: Tensor, target: Tensor) -> Tensor:
    """Return the teacher logits [B, C] with the top logit and the true-class logit values swapped (LA).

    Rows where the teacher is already right are unchanged; the result is detached.
    """
    check_logits("logits_teacher", logits_teacher)
    y = check_target(target, *logits_teacher.shape)
    return _swap(logits_teacher.detach(), y)


def la_loss(
    logits_student: Tensor, logits_teacher: Tensor, target: Tensor, temperature: float = 4.0
) -> Tensor:
    """Return the LA loss: KD (0-dim) towards the swapped teacher logits of ``swap_teacher_logits``."""
    s, t, y = _check_inputs(logits_student, logits_teacher, target)
    return _kd(s, _swap(t, y), check_positive("temperature", temperature))


def lr_parts(logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return label revision's (CE_right, MSE_right, MSE_wrong), each 0-dim.

    On the samples the teacher gets right: CE(z^s, y) and the logit MSE(z^s, z^t); on the wrong ones: the
    MSE between softmax(z^s) and the revised target e p^t + (1 - e) onehot(y), e = 0.8 / (p^t_max - p^t_y + 1).
    Each term is a mean over its own subset (elements for the MSEs), 0 when the subset is empty.
    """
    s, t, y = _check_inputs(logits_student, logits_teacher, target)
    return _lr_parts(s, t, y)


def lr_loss(logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
    """Return the label-revision loss CE_right + 4 MSE_right + MSE_wrong (0-dim); see ``lr_parts``."""
    ce_right, mse_right, mse_wrong = lr_parts(logits_student, logits_teacher, target)
    return ce_right + LR_RIGHT_MSE_WEIGHT * mse_right + LR_WRONG_MSE_WEIGHT * mse_wrong


def rc_loss(logits_student: Tensor, target: Tensor, temperature: float = 4.0) -> Tensor:
    """Return the RC term tau^2 KL(softmax(r/tau) || softmax(z^s/tau)) (0-dim), teacher-free.

    r is the detached student logits with r_y := z^s_y + max_c z^s_c (the true class pushed to the top).
    """
    check_logits("logits_student", logits_student)
    y = check_target(target, *logits_student.shape)
    return _rc(logits_student, y, check_positive("temperature", temperature))


# ---------------------------------------------------------------- training objective


def warmup_factor(epoch: float, warmup_epochs: float) -> float:
    """Return the distillation warm-up factor min(epoch / warmup_epochs, 1), epoch counted from 1."""
    if not is_real(epoch) or epoch < 1:
        raise ValueError(f"epoch is counted from 1 and must be a finite number >= 1, got {epoch!r}")
    check_weight("warmup_epochs", warmup_epochs)
    return 1.0 if warmup_epochs == 0 else min(epoch / warmup_epochs, 1.0)


def distillation_objective(
    method: str,
    logits_student: Tensor,
    logits_teacher: Tensor | None,
    target: Tensor,
    epoch: float,
    *,
    ce_weight: float | None = None,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    alpha_temperature: float | None = None,
    warmup_epochs: float = 20,
    kd_ce_weight: float = 0.1,
    kd_weight: float = 0.9,
    logit_standardization: bool = False,
    rc_kd_weight: float = RC_KD_WEIGHT,
    rc_weight: float = RC_WEIGHT,
) -> dict[str, Tensor]:
    """Return {"loss": total (with graph), component: detached unweighted value} of one method's objective.

    - "ce":  ce_weight * CE                                              components: ce
    - "kd":  kd_ce_weight * CE + kd_weight * KD                          components: ce, kd
    - "dkd": ce_weight * CE + w(e) * (alpha * TCKD + beta * NCKD)        components: ce, tckd, nckd
    - "rld": ce_weight * CE + w(e) * (alpha * SCD + beta * MCD)          components: ce, scd, mcd
    - "la":  KD on the swapped teacher logits, no CE                     components: ce (logged only), la
    - "lr":  ce_weight * CE_right + 4 MSE_right + MSE_wrong              components: ce, mse_right, mse_wrong
    - "rc":  ce_weight * CE + rc_kd_weight * KD + rc_weight * RC        components: ce, kd, rc

    w(e) = min(epoch / warmup_epochs, 1), epoch counted from 1. ``ce_weight=None`` means the method's own CE
    weight (1 for ce/dkd/rld/lr/rc, ``kd_ce_weight`` for kd, 0 for la); a number overrides it for every method.
    ``alpha_temperature=None`` means ``temperature`` (the authors' ``--same-t``). ``logit_standardization``
    only z-scores both logit rows before the distillation terms (not before CE); it is not defined for "lr". The
    authors' recipe with standardization also changes tau and the weights: build the keyword arguments with
    :func:`logit_standardization_hyper`.
    ``logits_teacher`` may be None for "ce" only.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "lr" and logit_standardization:
        raise ValueError("logit_standardization is not defined for method 'lr' (label revision)")
    if logits_teacher is None:
        if method != "ce":
            raise ValueError(f"logits_teacher is required for method {method!r}")
        check_logits("logits_student", logits_student)
        s, t, y = logits_student, None, check_target(target, *logits_student.shape)
    else:
        s, t, y = _check_inputs(logits_student, logits_teacher, target)
    tau = check_positive("temperature", temperature)
    tau_a = tau if alpha_temperature is None else check_positive("alpha_temperature", alpha_temperature)
    alpha, beta = check_weight("alpha", alpha), check_weight("beta", beta)
    kd_ce_weight, kd_weight = (
        check_weight("kd_ce_weight", kd_ce_weight),
        check_weight("kd_weight", kd_weight),
    )
    rc_kd_weight, rc_weight = check_weight("rc_kd_weight", rc_kd_weight), check_weight("rc_weight", rc_weight)
    default_ce = {"kd": kd_ce_weight, "la": 0.0}.get(method, 1.0)
    w_ce = default_ce if ce_weight is None else check_weight("ce_weight", ce_weight)
    warm = warmup_factor(epoch, warmup_epochs)

    ce = F.cross_entropy(s, y)
    sd, td = s, t
    if logit_standardization and t is not None:
        sd, td = standardize_logits(s), standardize_logits(t)
    parts: dict[str, Tensor] = {}
    if method == "ce":
        total = w_ce * ce
    elif method == "kd":
        parts["kd"] = _kd(sd, td, tau)
        total = w_ce * ce + kd_weight * parts["kd"]
    elif method == "dkd":
        parts["tckd"], parts["nckd"] = _dkd_parts(sd, td, y, tau)
        total = w_ce * ce + warm * (alpha * parts["tckd"] + beta * parts["nckd"])
    elif method == "rld":
        parts["scd"], parts["mcd"] = _scd(sd, td, y, tau_a), _mcd(sd, td, y, tau)
        total = w_ce * ce + warm * (alpha * parts["scd"] + beta * parts["mcd"])
    elif method == "la":
        parts["la"] = _kd(sd, _swap(td, y), tau)
        total = w_ce * ce + parts["la"]
    elif method == "lr":
        ce, parts["mse_right"], parts["mse_wrong"] = _lr_parts(s, t, y)
        total = (
            w_ce * ce + LR_RIGHT_MSE_WEIGHT * parts["mse_right"] + LR_WRONG_MSE_WEIGHT * parts["mse_wrong"]
        )
    else:  # rc
        parts["kd"], parts["rc"] = _kd(sd, td, tau), _rc(sd, y, tau)
        total = w_ce * ce + rc_kd_weight * parts["kd"] + rc_weight * parts["rc"]
    out = {"loss": total, "ce": ce.detach()}
    out.update({k: v.detach() for k, v in parts.items()})
    return out


@dataclass(frozen=True)
class DistillHyper:
    """Hyper-parameters of ``distillation_objective`` (defaults: the RLD/DKD CIFAR-100 settings, --same-t)."""

    ce_weight: float | None = None
    alpha: float = 1.0
    beta: float = 8.0
    temperature: float = 4.0
    alpha_temperature: float | None = None
    warmup_epochs: float = 20
    kd_ce_weight: float = 0.1
    kd_weight: float = 0.9
    logit_standardization: bool = False
    rc_kd_weight: float = RC_KD_WEIGHT
    rc_weight: float = RC_WEIGHT

    def __post_init__(self) -> None:
        check_positive("temperature", self.temperature)
        if self.alpha_temperature is not None:
            check_positive("alpha_temperature", self.alpha_temperature)
        for name in ("alpha", "beta", "warmup_epochs", "kd_ce_weight", "kd_weight", "rc_kd_weight", "rc_weight"):
            check_weight(name, getattr(self, name))
        if self.ce_weight is not None:
            check_weight("ce_weight", self.ce_weight)

    def objective(
        self, method: str, logits_student: Tensor, logits_teacher: Tensor | None, target: Tensor, epoch: float
    ) -> dict[str, Tensor]:
        """Return ``distillation_objective(method, ...)`` with these hyper-parameters."""
        return distillation_objective(method, logits_student, logits_teacher, target, epoch, **asdict(self))


def logit_standardization_hyper(
    method: str,
    hyper: Mapping[str, Any] | None = None,
    temperature: float = LS_TEMPERATURE,
    weight: float = LS_WEIGHT,
) -> dict[str, Any]:
    """Return the keyword arguments of ``distillation_objective`` for ``method`` with the authors'
    logit-standardization recipe (arXiv:2403.01427, used by arXiv:2408.07703 Table 5) applied to ``hyper``.

    Besides z-scoring the logits (``logit_standardization=True``), the authors' ``--logit-stand`` switch sets the
    temperature of every distillation term to ``temperature`` (2) and raises the weights by ``weight`` (9), per
    method as in their ``tools/train.py``:

    - "kd":  kd_weight := weight (set, not scaled: 0.9 becomes 9); kd_ce_weight unchanged
    - "dkd": alpha, beta x weight
    - "rld": alpha, beta x weight; alpha_temperature := temperature as well
    - "rc":  rc_kd_weight, rc_weight x weight
    - "la":  temperature only (the authors' LA term has no weight to scale)
    - "ce":  unchanged (no distillation term)

    Missing keys take ``DistillHyper``'s defaults; CE weights are never changed. "lr" has no such recipe.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "lr":
        raise ValueError("logit_standardization is not defined for method 'lr' (label revision)")
    out = asdict(DistillHyper(**dict(hyper or {})))
    if method == "ce":
        return out
    tau = check_positive("temperature", temperature)
    w = check_weight("weight", weight)
    out["logit_standardization"] = True
    out["temperature"] = tau
    if method == "kd":
        out["kd_weight"] = w
    elif method in ("dkd", "rld"):
        out["alpha"], out["beta"] = out["alpha"] * w, out["beta"] * w
        if method == "rld":
            out["alpha_temperature"] = tau
    elif method == "rc":
        out["rc_kd_weight"], out["rc_weight"] = out["rc_kd_weight"] * w, out["rc_weight"] * w
    return out
