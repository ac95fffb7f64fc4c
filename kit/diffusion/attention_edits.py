"""Attention edits for :func:`kit.diffusion.attention.attention_control`: Q/K/V injection, token-mapped
cross-attention, and the filters and composition that assemble them into one controller.

Every edit follows the protocol of :mod:`kit.diffusion.attention` and works on the conditional rows of one UNet call
(row ``b`` = prompt ``b``), so one batched pass can carry several branches, each with its own reference row, as
ParallelEdits does (arXiv:2406.00985: controller k sees the rows (reference, t_k, m_k)). Within one edit every copy
reads the tensors it was given (the pre-edit values of all rows), as the authors' processor reads the original
q, k, v of each branch; edits composed with :class:`ComposeEdits` see their predecessors' results.

- :class:`InjectSelfAttention`: copy chosen queries / keys / values of a source row into target rows in
  self-attention (InfEdit's unified attention control, arXiv:2312.04965; ParallelEdits' mutual self-attention).
- :class:`RefineCrossAttention`: prompt-to-prompt's refinement edit (arXiv:2208.01626, "adding a new phrase"):
  target maps = alpha * source maps gathered through a token mapper + (1 - alpha) * own maps
  (mappers from :func:`kit.diffusion.align.refinement_mapper`).
- :class:`WordSwapCrossAttention`: prompt-to-prompt's word swap through an [L, L] mapper, ``einsum("hqw,wn->hqn")``
  (mappers from :func:`kit.diffusion.align.replacement_mapper`).
- :class:`RestrictEdit`: any edit restricted to layer-name patterns, cross or self layers and a step window.
- :class:`ComposeEdits`: several edits applied in order.

Steps are the store's UNet-call counter (:class:`kit.diffusion.attention.AttentionStore`). A step window is
``(start, stop)`` of step indices (ints, ``start <= step < stop``) or of fractions of ``total_steps`` (floats):
step ``i`` is inside when ``floor(start * total) <= i < floor(stop * total)``, prompt-to-prompt's
``int(fraction * num_steps)`` rule; a single number ``f`` means ``(0, f)``. ParallelEdits' cross-attention test
``(i + 1) / N <= f`` is exactly the window ``(0.0, f)``; its strict self-attention test ``(i + 1) / N < f`` differs
only when ``f * N`` is an integer, and is the index window ``(0, ceil(f * N) - 1)``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from kit.diffusion.attention import (
    _as_int_list,
    _check_edit,
    _check_qkv,
    _edit_applies,
    _edit_has_qkv,
    _edit_needs_probs,
)

__all__ = [
    "step_window",
    "RestrictEdit",
    "ComposeEdits",
    "InjectSelfAttention",
    "RefineCrossAttention",
    "WordSwapCrossAttention",
]

ATTENTION_KINDS = ("cross", "self")
_EPS = 1e-9  # fractions * steps within float round-off of an integer count as that integer (0.29 * 100 -> 29)


def step_window(steps: int | float | Sequence[int | float] | None, total_steps: int | None = None
                ) -> tuple[int, int | None] | None:
    """Return the step-index window ``(start, stop)`` (stop None: open) of ``steps``, or None for every step.

    ``steps``: None; ``(start, stop)`` of ints (indices; stop may be None) or of floats (fractions of
    ``total_steps``, which is then required); or one number ``f`` for ``(0, f)``. Fractions become
    ``floor(fraction * total_steps)`` (prompt-to-prompt's rule, arXiv:2208.01626).
    """
    if steps is None:
        return None
    if isinstance(steps, bool):
        raise ValueError(f"steps must be None, a number or a (start, stop) pair, got {steps!r}")
    pair = (0 if isinstance(steps, int) else 0.0, steps) if isinstance(steps, int | float) else tuple(steps)
    if len(pair) != 2:
        raise ValueError(f"steps must be a (start, stop) pair, got {steps!r}")
    start, stop = pair
    kinds = {type(x) for x in pair if x is not None}
    if any(isinstance(x, bool) for x in pair) or not kinds <= {int, float} or start is None:
        raise ValueError(f"steps must hold ints (step indices) or floats (fractions), got {steps!r}")
    if kinds == {int, float}:
        raise ValueError(f"steps mixes ints (step indices) and floats (fractions): {steps!r}; write (0.0, 0.7) "
                         "for fractions or (0, 7) for indices")
    if kinds == {float}:
        if stop is None or not 0.0 <= start <= stop <= 1.0:
            raise ValueError(f"fractional steps must satisfy 0 <= start <= stop <= 1, got {steps!r}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int when steps are fractions {steps!r}, "
                             f"got {total_steps!r}")
        return math.floor(start * total_steps + _EPS), math.floor(stop * total_steps + _EPS)
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"step indices must satisfy 0 <= start <= stop, got {steps!r}")
    return start, stop


def _in_window(window: tuple[int, int | None] | None, step: int) -> bool:
    return window is None or (window[0] <= step and (window[1] is None or step < window[1]))


def _layer_patterns(layers: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if layers is None:
        return None
    items = [layers] if isinstance(layers, str) else list(layers)
    if not items or any(not isinstance(p, str) or not p for p in items):
        raise ValueError(f"layers must be None, a pattern or a non-empty list of patterns, got {layers!r}")
    return tuple(items)


def _layer_matches(patterns: tuple[str, ...] | None, name: str) -> bool:
    """A layer matches a pattern that globs it (``*attn1``) or that names it or a module above it (``up_blocks.1``)."""
    if patterns is None:
        return True
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".") for p in patterns)


def _call_qkv(edit, q: Tensor, k: Tensor, v: Tensor, name: str, is_cross: bool, step: int, uncond: bool):
    """Return ``edit.qkv(...)`` (passing ``uncond=True`` only on the unconditional rows), validated."""
    got = edit.qkv(q, k, v, name, is_cross, step, uncond=True) if uncond else edit.qkv(q, k, v, name, is_cross, step)
    return _check_qkv(got, (q, k, v), type(edit).__name__)


def _qkv_applies(edit, is_cross: bool, uncond: bool) -> bool:
    return _edit_applies(edit, is_cross) and _edit_has_qkv(edit) and (
        not uncond or bool(getattr(edit, "edits_uncond", False)))


class RestrictEdit:
    """Edit: ``edit`` restricted to layers matching ``layers``, to ``attention`` ("cross", "self" or None for both)
    and to the step window ``steps`` (see :func:`step_window`; fractions need ``total_steps``). Calls outside
    return their input unchanged, and layers outside need no explicit probabilities (they stay on SDPA).

    ``layers``: glob patterns on diffusers module names (``"*attn1"``, ``"up_blocks.*"``) or module prefixes
    (``"down_blocks.1"`` matches every attention module under it). Prompt-to-prompt's ``cross_replace_steps`` and
    ``self_replace_steps`` (arXiv:2208.01626) and ParallelEdits' replace windows are such restrictions.
    """

    def __init__(self, edit, layers: str | Sequence[str] | None = None, attention: str | None = None,
                 steps: int | float | Sequence[int | float] | None = None, total_steps: int | None = None) -> None:
        if edit is None:
            raise ValueError("edit must be an attention edit, got None")
        _check_edit(edit)
        if attention is not None and attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS} or None, got {attention!r}")
        self.edit, self.attention = edit, attention
        self.layers = _layer_patterns(layers)
        self.window = step_window(steps, total_steps)

    @property
    def edits_self(self) -> bool:
        """Whether self-attention layers reach the wrapped edit."""
        return self.attention != "cross" and bool(getattr(self.edit, "edits_self", False))

    @property
    def edits_uncond(self) -> bool:
        """Whether the wrapped edit's ``qkv`` also edits the unconditional rows."""
        return bool(getattr(self.edit, "edits_uncond", False))

    def allows(self, name: str, is_cross: bool, step: int) -> bool:
        """Return whether a call at layer ``name`` of this kind at ``step`` reaches the wrapped edit."""
        if self.attention is not None and (self.attention == "cross") != is_cross:
            return False
        return (_edit_applies(self.edit, is_cross) and _in_window(self.window, step)
                and _layer_matches(self.layers, name))

    def needs_probs(self, name: str, is_cross: bool, step: int) -> bool:
        """Return whether the wrapped probability edit runs at this layer and step."""
        return self.allows(name, is_cross, step) and _edit_needs_probs(self.edit, name, is_cross, step)

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        """Return probs [B, heads, Q, K], edited by the wrapped edit inside the restriction, else unchanged."""
        if not self.needs_probs(name, is_cross, step):
            return probs
        return self.edit(probs, name, is_cross, step)

    def qkv(self, q: Tensor, k: Tensor, v: Tensor, name: str, is_cross: bool, step: int,
            uncond: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Return (q, k, v), edited by the wrapped edit's ``qkv`` inside the restriction, else unchanged."""
        if not (_qkv_applies(self.edit, is_cross, uncond) and self.allows(name, is_cross, step)):
            return q, k, v
        return _call_qkv(self.edit, q, k, v, name, is_cross, step, uncond)


class ComposeEdits:
    """Edit: ``edits`` applied in order. Probability edits are chained (each sees the previous one's output),
    and so are ``qkv`` edits; each part still sees only the layers it asks for (``edits_self``), the unconditional
    rows only if it has ``edits_uncond``, and runs only where its ``needs_probs`` says so."""

    def __init__(self, edits: Sequence) -> None:
        if isinstance(edits, str) or not isinstance(edits, Sequence) or not edits:
            raise ValueError(f"edits must be a non-empty list of attention edits, got {edits!r}")
        for i, e in enumerate(edits):
            if e is None:
                raise ValueError(f"edits[{i}] is None")
            _check_edit(e, f"edits[{i}]")
        self.edits = list(edits)

    @property
    def edits_self(self) -> bool:
        """Whether any part edits self-attention layers."""
        return any(getattr(e, "edits_self", False) for e in self.edits)

    @property
    def edits_uncond(self) -> bool:
        """Whether any part's ``qkv`` edits the unconditional rows."""
        return any(getattr(e, "edits_uncond", False) for e in self.edits)

    def needs_probs(self, name: str, is_cross: bool, step: int) -> bool:
        """Return whether any part's probability edit runs at this layer and step."""
        return any(_edit_needs_probs(e, name, is_cross, step) for e in self.edits)

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        """Return probs [B, heads, Q, K] after every part's probability edit, in order."""
        for i, e in enumerate(self.edits):
            if _edit_needs_probs(e, name, is_cross, step):
                out = e(probs, name, is_cross, step)
                if not isinstance(out, Tensor) or out.shape != probs.shape:
                    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise ValueError(f"edits[{i}] ({type(e).__name__}) must return a tensor of shape "
                                     f"{tuple(probs.shape)}, got {got}")
                probs = out
        return probs

    def qkv(self, q: Tensor, k: Tensor, v: Tensor, name: str, is_cross: bool, step: int,
            uncond: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Return (q, k, v) after every part's ``qkv`` edit, in order."""
        for e in self.edits:
            if _qkv_applies(e, is_cross, uncond):
                q, k, v = _call_qkv(e, q, k, v, name, is_cross, step, uncond)
        return q, k, v


def _pair_rows(source_rows: int | Sequence[int], target_rows: int | Sequence[int]) -> tuple[list[int], list[int]]:
    sources = _as_int_list(source_rows, "source_rows")
    targets = _as_int_list(target_rows, "target_rows")
    if any(r < 0 for r in sources) or any(r < 0 for r in targets):
        raise ValueError(f"source_rows and target_rows must be >= 0, got {sources} and {targets}")
    if len(sources) == 1:
        sources = sources * len(targets)
    if len(sources) != len(targets):
        raise ValueError(f"source_rows must hold one row or one per target row ({len(targets)}), got {sources}")
    return sources, targets


def _check_rows(rows: Sequence[int], n: int, name: str) -> None:
    if any(r >= n for r in rows):
        raise ValueError(f"{name} must be in [0, {n}) (the conditional rows of this call), got {list(rows)}")


def _parse_take(take) -> frozenset[str]:
    letters = list(take) if isinstance(take, str | Sequence) else None
    if not letters or any(t not in ("q", "k", "v") for t in letters) or len(set(letters)) != len(letters):
        raise ValueError(f"take must name some of 'q', 'k', 'v' once each (e.g. 'qk' or ('q', 'k', 'v')), "
                         f"got {take!r}")
    return frozenset(letters)


class InjectSelfAttention:
    """Q/K/V edit: in self-attention, target row ``target_rows[i]`` takes the queries / keys / values named by
    ``take`` from row ``source_rows[i]`` (InfEdit's unified attention control, arXiv:2312.04965, which ParallelEdits
    uses, arXiv:2406.00985: before 70 % of the steps a branch t_k takes its reference's Q, K and keeps its V, the
    mutual branch m_k takes all of Q, K, V; afterwards m_k takes t_k's Q and the reference's K, V).

    ``source_rows``: one row for all targets or one per target. ``take``: ``"qk"``, ``("q", "k", "v")``, ... for
    every target, or a list with one per target (``["qk", "qkv"]``, ``["q", "kv"]``; a list of one-letter strings
    only is one spec: write ``[("q",), ("v",)]`` for per-target single letters); a target may appear several times
    with disjoint ``take`` (e.g. Q from one row, K and V from another). All copies read the pre-edit tensors. ``steps`` / ``total_steps``: the
    step window (:func:`step_window`); ``layers``: name patterns (:class:`RestrictEdit`). ``include_uncond``: also
    edit the unconditional rows of a guided batch (row b = prompt b), as the authors' code does (default True).
    Needs no explicit probabilities: the layer runs on SDPA with the edited tensors.
    """

    edits_self = True

    def __init__(self, source_rows: int | Sequence[int], target_rows: int | Sequence[int],
                 take: str | Sequence[str] | Sequence[str | Sequence[str]] = ("q", "k"),
                 steps: int | float | Sequence[int | float] | None = None, total_steps: int | None = None,
                 layers: str | Sequence[str] | None = None, include_uncond: bool = True) -> None:
        self.source_rows, self.target_rows = _pair_rows(source_rows, target_rows)
        n = len(self.target_rows)
        per_target = not isinstance(take, str) and isinstance(take, Sequence) and any(
            not (isinstance(t, str) and len(t) == 1) for t in take)
        if per_target:
            if len(take) != n:
                raise ValueError(f"take must be one spec for all targets or one per target ({n}), got {take!r}")
            self.take = [_parse_take(t) for t in take]
        else:
            self.take = [_parse_take(take)] * n
        seen: dict[int, frozenset[str]] = {}
        for t, letters in zip(self.target_rows, self.take):
            if seen.get(t, frozenset()) & letters:
                raise ValueError(f"target row {t} takes {sorted(seen[t] & letters)} from two sources; give each "
                                 "tensor of a target one source")
            seen[t] = seen.get(t, frozenset()) | letters
        self.window = step_window(steps, total_steps)
        self.layers = _layer_patterns(layers)
        self.edits_uncond = bool(include_uncond)

    def active(self, name: str, is_cross: bool, step: int) -> bool:
        """Return whether the injection runs at layer ``name`` (self-attention only) at ``step``."""
        return not is_cross and _in_window(self.window, step) and _layer_matches(self.layers, name)

    def qkv(self, q: Tensor, k: Tensor, v: Tensor, name: str, is_cross: bool, step: int,
            uncond: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Return (q, k, v) [B, heads, N, d] with the chosen tensors of the target rows copied from their sources."""
        if not self.active(name, is_cross, step):
            return q, k, v
        n = q.shape[0]
        _check_rows(self.source_rows, n, "source_rows")
        _check_rows(self.target_rows, n, "target_rows")
        given = {"q": q, "k": k, "v": v}
        out = {key: t.clone() if any(key in letters for letters in self.take) else t for key, t in given.items()}
        for s, t, letters in zip(self.source_rows, self.target_rows, self.take):
            for key in letters:
                out[key][t] = given[key][s]
        return out["q"], out["k"], out["v"]


def _as_tensor(x, dtype: torch.dtype, name: str) -> Tensor:
    try:
        return torch.as_tensor(x, dtype=dtype).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a tensor or a nested list of numbers, got {type(x).__name__}") from err


def _per_target(t: Tensor, n: int, base_ndim: int, name: str) -> Tensor:
    if t.ndim == base_ndim:
        t = t.unsqueeze(0)
    if t.ndim != base_ndim + 1 or t.shape[0] not in (1, n):
        raise ValueError(f"{name} must be one mapper or one per target row ({n}), got shape {tuple(t.shape)}")
    return t.expand(n, *t.shape[1:])


class RefineCrossAttention:
    """Edit: prompt-to-prompt's refinement (arXiv:2208.01626, "adding a new phrase"; ParallelEdits' mapper for
    non-rigid edits, arXiv:2406.00985): target row ``target_rows[i]`` gets, per token n,
    ``alphas[i, n] * probs[source_rows[i], ..., mapper[i, n]] + (1 - alphas[i, n]) * probs[target_rows[i], ..., n]``.

    ``mapper`` [L] or [T, L] (source token of each target token, -1 when unaligned) and ``alphas`` [L] or [T, L]
    (1 aligned, 0 new; fractions blend) from :func:`kit.diffusion.align.refinement_mapper`; one per target row or
    one shared. Source rows are rows of the live batch. Cross-attention only; wrap in :class:`RestrictEdit` for
    prompt-to-prompt's ``cross_replace_steps`` window.
    """

    def __init__(self, mapper, alphas, source_rows: int | Sequence[int], target_rows: int | Sequence[int]) -> None:
        self.source_rows, self.target_rows = _pair_rows(source_rows, target_rows)
        n = len(self.target_rows)
        mapper = _per_target(_as_tensor(mapper, torch.long, "mapper"), n, 1, "mapper")
        alphas = _per_target(_as_tensor(alphas, torch.float32, "alphas"), n, 1, "alphas")
        if alphas.shape != mapper.shape:
            raise ValueError(f"alphas {tuple(alphas.shape)} must match mapper {tuple(mapper.shape)}")
        if bool(((alphas < 0) | (alphas > 1) | ~torch.isfinite(alphas)).any()):
            raise ValueError("alphas must lie in [0, 1]")
        length = mapper.shape[1]
        if bool(((mapper < -1) | (mapper >= length)).any()):
            raise ValueError(f"mapper entries must be source token indices in [0, {length}) or -1, got "
                             f"{sorted(set(mapper[(mapper < -1) | (mapper >= length)].tolist()))}")
        if bool(((mapper < 0) & (alphas > 0)).any()):
            raise ValueError("alphas must be 0 where mapper is -1 (an unaligned token has no source map)")
        self.mapper, self.alphas = mapper.clamp(min=0), alphas

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        """Return probs [B, heads, Q, L] with the target rows refined from their source rows (cross-attention)."""
        if not is_cross:
            return probs
        n, length = probs.shape[0], probs.shape[-1]
        if self.mapper.shape[1] != length:
            raise ValueError(f"mapper has {self.mapper.shape[1]} tokens but the layer attends to {length}")
        _check_rows(self.source_rows, n, "source_rows")
        _check_rows(self.target_rows, n, "target_rows")
        mapper = self.mapper.to(probs.device)
        alphas = self.alphas.to(probs.device, probs.dtype)
        out = probs.clone()
        for i, (s, t) in enumerate(zip(self.source_rows, self.target_rows)):
            gathered = probs[s][..., mapper[i]]  # [heads, Q, L]: the source map of each target token's source
            out[t] = gathered * alphas[i] + probs[t] * (1 - alphas[i])
        return out


class WordSwapCrossAttention:
    """Edit: prompt-to-prompt's word swap through a token mapper (arXiv:2208.01626; ParallelEdits' mapper for rigid
    edits with equal word counts, arXiv:2406.00985): target row ``target_rows[i]`` gets
    ``einsum("hqw,wn->hqn", probs[source_rows[i]], mapper[i])``.

    ``mapper`` [L, L] or [T, L, L] (source token w to target token n) from
    :func:`kit.diffusion.align.replacement_mapper`, one per target row or one shared; source rows are rows of the
    live batch. Cross-attention only; wrap in :class:`RestrictEdit` for a step window.
    """

    def __init__(self, mapper, source_rows: int | Sequence[int], target_rows: int | Sequence[int]) -> None:
        self.source_rows, self.target_rows = _pair_rows(source_rows, target_rows)
        mapper = _per_target(_as_tensor(mapper, torch.float32, "mapper"), len(self.target_rows), 2, "mapper")
        if mapper.shape[1] != mapper.shape[2]:
            raise ValueError(f"mapper must be square [L, L], got {tuple(mapper.shape[1:])}")
        if not bool(torch.isfinite(mapper).all()):
            raise ValueError("mapper must be finite")
        self.mapper = mapper

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        """Return probs [B, heads, Q, L] with the target rows' maps mapped from their source rows (cross-attention)."""
        if not is_cross:
            return probs
        n, length = probs.shape[0], probs.shape[-1]
        if self.mapper.shape[1] != length:
            raise ValueError(f"mapper is [{self.mapper.shape[1]}, {self.mapper.shape[1]}] but the layer attends to "
                             f"{length} tokens")
        _check_rows(self.source_rows, n, "source_rows")
        _check_rows(self.target_rows, n, "target_rows")
        mapper = self.mapper.to(probs.device, probs.dtype)
        out = probs.clone()
        for i, (s, t) in enumerate(zip(self.source_rows, self.target_rows)):
            out[t] = torch.einsum("hqw,wn->hqn", probs[s], mapper[i])
        return out
