"""Record and edit the attention probabilities of a diffusers UNet (prompt-to-prompt, arXiv:2208.01626).

:func:`register_attention_store` swaps every ``diffusers`` ``Attention`` module's processor for a
:class:`RecordingAttnProcessor` that computes ``probs = softmax(q k^T * scale + mask)`` [B, heads, Q, K] explicitly,
hands the cross-attention probabilities (K = text tokens) to an :class:`AttentionStore`, lets an optional ``edit``
change them, and finishes exactly as diffusers' ``AttnProcessor`` (``probs @ v``, output projection, residual,
rescale). Layers whose probabilities are neither recorded nor edited take a fused SDPA path (same numerics up
to float round-off).

Steps: the store counts UNet calls (a forward pre-hook calls :meth:`AttentionStore.next_step`), so step ``i`` is
the i-th UNet evaluation since :meth:`AttentionStore.begin` / :meth:`AttentionStore.reset`: the i-th denoising
step for schedulers and single-stage solvers (two-stage solvers such as heun make two calls per step).

Batch rows: :class:`kit.diffusion.t2i.TextToImagePipeline` calls ``store.begin(batch_size=B, guided=...)``; with
guidance the UNet batch is ``[uncond x B, cond x B]`` and only the conditional half is recorded and edited, so
row ``b`` of the store and of an edit's ``probs`` is prompt ``b`` (as in prompt-to-prompt). Without ``begin``
(e.g. under another pipeline) every row of the UNet batch is recorded and edited.

The edit protocol. An edit is an object with some of these (duck-typed; plain functions are probability edits):

- ``edit(probs, name, is_cross, step) -> probs``: change the conditional rows' probabilities [B, heads, Q, K];
- ``edit.qkv(q, k, v, name, is_cross, step) -> (q, k, v)``: change the conditional rows' queries [B, heads, Q, d],
  keys and values [B, heads, K, d] before the probabilities are formed (InfEdit's unified attention control,
  arXiv:2312.04965, as ParallelEdits uses it, arXiv:2406.00985);
- ``edits_self`` (default False): also edit self-attention layers (otherwise only cross-attention layers);
- ``edits_uncond`` (default False): with a guided layout, ``qkv`` is called a second time, with ``uncond=True``, on
  the unconditional rows (row ``b`` = prompt ``b``'s unconditional pass), as InfEdit's code edits both halves;
- ``needs_probs(name, is_cross, step) -> bool`` (default: whether the edit is callable): whether the probability
  edit has work at this layer and step. A layer whose probabilities neither the store nor an edit needs runs on the
  fused SDPA path, with the edited q, k, v when ``qkv`` changed them.

The store records the probabilities (from the q, k after any ``qkv`` edit) before the probability edit, as
prompt-to-prompt's controller does. :func:`attention_control` is the ``with`` form of
:func:`register_attention_store`; ready edits beyond the two below are in :mod:`kit.diffusion.attention_edits`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AttentionStore",
    "RecordingAttnProcessor",
    "register_attention_store",
    "find_attention_store",
    "attention_control",
    "ReweightTokens",
    "ReplaceCrossAttention",
]

Edit = Callable[[Tensor, str, bool, int], Tensor]  # or an object with ``qkv`` (see the module docstring)


def _edit_applies(edit, is_cross: bool) -> bool:
    """Return whether ``edit`` is called at a layer of this kind (cross always, self when ``edits_self``)."""
    return edit is not None and (is_cross or bool(getattr(edit, "edits_self", False)))


def _edit_has_qkv(edit) -> bool:
    return callable(getattr(edit, "qkv", None))


def _edit_needs_probs(edit, name: str, is_cross: bool, step: int) -> bool:
    """Return whether ``edit``'s probability edit runs at this layer and step (see the module docstring)."""
    if not (_edit_applies(edit, is_cross) and callable(edit)):
        return False
    needs = getattr(edit, "needs_probs", None)
    return True if needs is None else bool(needs(name, is_cross, step))


def _check_edit(edit, name: str = "edit") -> None:
    if edit is not None and not (callable(edit) or _edit_has_qkv(edit)):
        raise ValueError(f"{name} must be callable (a probability edit), have a qkv(q, k, v, name, is_cross, step) "
                         f"method, or be None; got {type(edit).__name__}")


def _check_qkv(got, want: tuple[Tensor, Tensor, Tensor], who: str) -> tuple[Tensor, Tensor, Tensor]:
    if not (isinstance(got, tuple | list) and len(got) == 3 and all(isinstance(t, Tensor) for t in got)):
        raise ValueError(f"{who}.qkv must return a tuple (q, k, v) of tensors, got {type(got).__name__}")
    for label, g, w in zip("qkv", got, want):
        if g.shape != w.shape:
            raise ValueError(f"{who}.qkv returned {label} of shape {tuple(g.shape)}, expected {tuple(w.shape)}")
    return got[0], got[1], got[2]


def _as_int_list(value: int | Sequence[int], name: str) -> list[int]:
    items = [value] if isinstance(value, int) else list(value)
    if not items or any(isinstance(i, bool) or not isinstance(i, int) for i in items):
        raise ValueError(f"{name} must be an int or a non-empty sequence of ints, got {value!r}")
    return items


class AttentionStore:
    """Bounded per-step, per-layer store of attention probabilities [B, heads or 1, Q, K] (``store_dtype``).

    Only layers with Q <= ``max_query_pixels`` are kept (their names go to ``skipped``), heads are averaged when
    ``average_heads``; self-attention is kept only with ``record_self``, cross-attention unless ``record_cross`` is
    False (an edit-only run: nothing recorded, so layers no edit needs stay on the fused path).

    ``tokens`` makes a token-capture store: per cross-attention layer it keeps only the head-averaged maps of
    these token columns, summed over steps in float32 [B, Q, T] (B x Q x T x 4 bytes per layer however many steps
    run), filled in place by :func:`kit.kernels.cross_attention_capture` (the fused kernel on CUDA), so no
    [B, heads, Q, K] probability tensor is formed. :meth:`maps` then answers for those tokens averaged over all
    steps; per-step maps (:meth:`attention`) are not kept.
    """

    def __init__(self, record_self: bool = False, max_query_pixels: int = 32 * 32, average_heads: bool = True,
                 store_dtype: torch.dtype = torch.float16, record_cross: bool = True,
                 tokens: Sequence[int] | None = None) -> None:
        if isinstance(max_query_pixels, bool) or not isinstance(max_query_pixels, int) or max_query_pixels < 1:
            raise ValueError(f"max_query_pixels must be a positive int, got {max_query_pixels!r}")
        if not isinstance(store_dtype, torch.dtype) or not store_dtype.is_floating_point:
            raise ValueError(f"store_dtype must be a floating torch dtype, got {store_dtype!r}")
        self.record_self, self.record_cross, self.max_query_pixels = bool(record_self), bool(record_cross), \
            max_query_pixels
        self.average_heads, self.store_dtype = bool(average_heads), store_dtype
        self.tokens: list[int] | None = None
        if tokens is not None:
            self.tokens = _as_int_list(tokens, "tokens")
            if any(t < 0 for t in self.tokens) or len(set(self.tokens)) != len(self.tokens):
                raise ValueError(f"tokens must be distinct token indices >= 0, got {self.tokens}")
            if record_self or not record_cross:
                raise ValueError("a token-capture store (tokens=...) keeps cross-attention maps only: leave "
                                 "record_self=False and record_cross=True")
            if not average_heads:
                raise ValueError("a token-capture store (tokens=...) keeps head-averaged maps; per-head maps need a "
                                 "plain AttentionStore(average_heads=False)")
        self.batch_size: int | None = None
        self.guided = False
        self.latent_size: tuple[int, int] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every recorded map and set the step counter before step 0 (the batch layout is kept)."""
        self._data: dict[int, dict[str, Tensor]] = {}
        self._cross: dict[str, bool] = {}
        self._accum: dict[str, Tensor] = {}  # token-capture store: layer -> [B, Q, T] float32, summed over steps
        self._counts: dict[str, int] = {}  # layer -> steps added to its accumulator
        self._capture_steps: set[int] = set()
        self.skipped: set[str] = set()
        self.step = -1

    @property
    def capturing(self) -> bool:
        """Return whether this is a token-capture store (``tokens`` given)."""
        return self.tokens is not None

    def accumulator(self, name: str, n_rows: int, n_queries: int, device: torch.device) -> Tensor:
        """Return layer ``name``'s float32 accumulator [n_rows, n_queries, T] (zeros on first use), to be added to
        in place; then call :meth:`note_capture`."""
        if not self.capturing:
            raise ValueError("accumulator() is for a token-capture store: AttentionStore(tokens=[...])")
        acc = self._accum.get(name)
        if acc is None:
            acc = torch.zeros(n_rows, n_queries, len(self.tokens), dtype=torch.float32, device=device)
            self._accum[name] = acc
        elif acc.shape[:2] != (n_rows, n_queries):
            raise ValueError(f"layer {name!r} captured [{acc.shape[0]}, {acc.shape[1]}] rows x queries before, now "
                             f"[{n_rows}, {n_queries}]; call store.reset() between runs of different sizes")
        return acc

    def require_step(self) -> None:
        """Raise ``ValueError`` unless a step is current (:meth:`next_step` was called since the last reset)."""
        if self.step < 0:
            raise ValueError("the store has no current step: call store.next_step() before each UNet call "
                             "(register_attention_store does it)")

    def note_capture(self, name: str) -> None:
        """Count one step added to layer ``name``'s accumulator (at the current step)."""
        self._counts[name] = self._counts.get(name, 0) + 1
        self._capture_steps.add(self.step)
        self._cross[name] = True

    def begin(self, batch_size: int | None = None, guided: bool = False,
              latent_size: tuple[int, int] | None = None) -> None:
        """Reset, then set the UNet batch layout: ``[uncond x B, cond x B]`` when ``guided``, else ``[cond x B]``.

        ``latent_size`` (h, w) lets the store unflatten non-square maps; square maps need nothing.
        """
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.batch_size, self.guided = batch_size, bool(guided)
        self.latent_size = None if latent_size is None else (int(latent_size[0]), int(latent_size[1]))
        self.reset()

    def next_step(self) -> None:
        """Advance to the next UNet evaluation (called by the hook that :func:`register_attention_store` adds)."""
        self.step += 1

    def conditional_rows(self, n: int) -> slice:
        """Return the slice of a UNet batch of n rows that holds the conditional (recorded, edited) rows."""
        if self.batch_size is None:
            return slice(0, n)
        want = 2 * self.batch_size if self.guided else self.batch_size
        if n != want:
            raise ValueError(f"UNet batch has {n} rows but the store expects {want} (batch_size="
                             f"{self.batch_size}, guided={self.guided}); call store.begin(...) for this run")
        return slice(n - self.batch_size, n)

    def records(self, is_cross: bool) -> bool:
        """Return whether layers of this kind (cross- or self-attention) are recorded at all."""
        return self.record_cross if is_cross else self.record_self

    def wants(self, is_cross: bool, n_queries: int) -> bool:
        """Return whether a layer of this kind and query count is recorded."""
        return self.records(is_cross) and n_queries <= self.max_query_pixels

    def record(self, name: str, probs: Tensor, is_cross: bool) -> None:
        """Keep ``probs`` [B, heads, Q, K] of layer ``name`` at the current step (or note it as skipped)."""
        self.require_step()
        if not self.records(is_cross):
            return
        if probs.shape[2] > self.max_query_pixels:
            self.skipped.add(name)
            return
        p = probs.detach()
        if self.capturing:  # probabilities formed anyway (an edit needs them): add their token columns
            if max(self.tokens) >= p.shape[-1]:
                raise ValueError(f"tokens must be in [0, {p.shape[-1]}) for layer {name!r}, got {self.tokens}")
            acc = self.accumulator(name, p.shape[0], p.shape[2], p.device)
            acc += p[..., self.tokens].float().mean(dim=1)
            self.note_capture(name)
            return
        p = p.mean(dim=1, keepdim=True) if self.average_heads else p
        self._data.setdefault(self.step, {})[name] = p.to(self.store_dtype)
        self._cross[name] = is_cross

    @property
    def steps(self) -> list[int]:
        """Return the recorded step indices, ascending."""
        return sorted(self._capture_steps) if self.capturing else sorted(self._data)

    @property
    def layers(self) -> list[str]:
        """Return the names of the recorded cross-attention layers (in first-recorded order)."""
        return [n for n, c in self._cross.items() if c]

    @property
    def self_layers(self) -> list[str]:
        """Return the names of the recorded self-attention layers."""
        return [n for n, c in self._cross.items() if not c]

    @property
    def nbytes(self) -> int:
        """Return the bytes held by the recorded tensors."""
        held = [t for per in self._data.values() for t in per.values()] + list(self._accum.values())
        return sum(t.numel() * t.element_size() for t in held)

    def attention(self, name: str, step: int) -> Tensor:
        """Return the stored probabilities [B, heads or 1, Q, K] of layer ``name`` at ``step``."""
        if self.capturing:
            raise ValueError("a token-capture store (tokens=...) keeps only step-summed maps of its tokens; use "
                             "maps(token) or a plain AttentionStore() for per-step probabilities")
        if step not in self._data:
            raise ValueError(f"step {step} was not recorded; recorded steps: 0..{len(self._data) - 1}")
        if name not in self._data[step]:
            raise ValueError(f"layer {name!r} was not recorded at step {step}; recorded: {sorted(self._data[step])}")
        return self._data[step][name]

    def get(self, name: str, step: int) -> Tensor | None:
        """Return the stored probabilities of layer ``name`` at ``step``, or None when not recorded."""
        if self.capturing:
            raise ValueError("a token-capture store (tokens=...) keeps only step-summed maps of its tokens, not "
                             "per-step probabilities (e.g. for ReplaceCrossAttention): record with AttentionStore()")
        return self._data.get(step, {}).get(name)

    def spatial_size(self, n_queries: int) -> tuple[int, int]:
        """Return (h, w) of a layer with ``n_queries`` = h * w pixels (from ``latent_size``, else square)."""
        if self.latent_size is not None:
            lh, lw = self.latent_size
            f = math.isqrt(lh * lw // n_queries) if n_queries else 0
            if f > 0 and (lh // f) * (lw // f) == n_queries:
                return lh // f, lw // f
        side = math.isqrt(n_queries)
        if side * side != n_queries:
            raise ValueError(f"cannot unflatten {n_queries} queries: not square; call store.begin(latent_size=...)")
        return side, side

    def layers_at(self, size: int) -> list[str]:
        """Return the recorded cross-attention layers whose maps are ``size`` pixels high."""
        if self.capturing:
            n_queries = {n: a.shape[1] for n, a in self._accum.items()}
        else:
            first = self._data[self.steps[0]] if self._data else {}
            n_queries = {n: t.shape[2] for n, t in first.items()}
        return [n for n in self.layers if n in n_queries and self.spatial_size(n_queries[n])[0] == size]

    def maps(self, token_index: int | Sequence[int], step: int | Sequence[int] | None = None,
             layers: Sequence[str] | None = None, batch_index: int = 0,
             resolution: int | tuple[int, int] | None = None) -> Tensor:
        """Return the cross-attention map [H, W] (float32) of token(s) ``token_index`` for row ``batch_index``.

        Mean over heads, the given tokens, the chosen steps (None: all) and layers (None: all recorded cross
        layers); each layer's map is resized bilinearly to ``resolution`` (default: the largest chosen layer's).
        A token-capture store answers for its ``tokens`` over all steps (``step`` None).
        """
        tokens = _as_int_list(token_index, "token_index")
        steps = self.steps if step is None else _as_int_list(step, "step")
        if not steps:
            raise ValueError("the store is empty: run the UNet with the store registered first")
        names = self.layers if layers is None else list(layers)
        if not names:
            raise ValueError("no cross-attention layer chosen (layers is empty or nothing was recorded)")
        if self.capturing:
            flat = self._captured_maps(tokens, step, names, batch_index)
        else:
            entries = [self.attention(n, s) for s in steps for n in names]
            n_rows, n_tokens = entries[0].shape[0], entries[0].shape[-1]
            if not 0 <= batch_index < n_rows:
                raise ValueError(f"batch_index must be in [0, {n_rows}), got {batch_index}")
            if any(not -n_tokens <= t < n_tokens for t in tokens):
                raise ValueError(f"token_index must be in [0, {n_tokens}), got {tokens}")
            flat = [e[batch_index].float().mean(dim=0)[:, tokens].mean(dim=-1) for e in entries]
        sizes = [self.spatial_size(m.shape[0]) for m in flat]
        if resolution is None:
            out_size = max(sizes)
        else:
            out_size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        total = torch.zeros(out_size, dtype=torch.float32)
        for e, (h, w) in zip(flat, sizes):
            m = e.reshape(1, 1, h, w).cpu()
            if (h, w) != out_size:
                m = F.interpolate(m, size=out_size, mode="bilinear", align_corners=False)
            total += m[0, 0]
        return total / len(flat)

    def _captured_maps(self, tokens: list[int], step, names: list[str], batch_index: int) -> list[Tensor]:
        """Return, per layer, the step-averaged map [Q] of ``tokens`` (a token-capture store)."""
        if step is not None:
            raise ValueError("a token-capture store (tokens=...) sums its maps over all steps: call maps(..., "
                             "step=None), or record with a plain AttentionStore() for per-step maps")
        missing = [t for t in tokens if t not in self.tokens]
        if missing:
            raise ValueError(f"token_index {missing} was not captured; this store captures tokens {self.tokens}")
        cols = [self.tokens.index(t) for t in tokens]
        out = []
        for n in names:
            if n not in self._accum:
                raise ValueError(f"layer {n!r} was not captured; captured: {sorted(self._accum)}")
            acc = self._accum[n]
            if not 0 <= batch_index < acc.shape[0]:
                raise ValueError(f"batch_index must be in [0, {acc.shape[0]}), got {batch_index}")
            out.append(acc[batch_index][:, cols].mean(dim=-1) / self._counts[n])
        return out


class RecordingAttnProcessor:
    """diffusers attention processor that records (``store``) and optionally edits (``edit``) q, k, v and
    probabilities (the protocol is in the module docstring)."""

    def __init__(self, store: AttentionStore, name: str, edit: Edit | None = None) -> None:
        if not isinstance(store, AttentionStore):
            raise ValueError(f"store must be an AttentionStore, got {type(store).__name__}")
        _check_edit(edit)
        self.store, self.name, self.edit = store, name, edit

    def _edit_qkv(self, q: Tensor, k: Tensor, v: Tensor, is_cross: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Return q, k, v [B_unet, heads, N, d] with the edit's ``qkv`` applied to the conditional rows (and to the
        unconditional rows when the edit has ``edits_uncond`` and the layout is guided)."""
        edit = self.edit
        if not (_edit_applies(edit, is_cross) and _edit_has_qkv(edit)):
            return q, k, v
        cond = self.store.conditional_rows(q.shape[0])
        halves: list[tuple[slice, dict]] = [(cond, {})]
        if getattr(edit, "edits_uncond", False) and self.store.guided and cond.start > 0:
            halves.append((slice(0, cond.start), {"uncond": True}))
        for rows, kw in halves:
            part = (q[rows], k[rows], v[rows])
            got = _check_qkv(edit.qkv(*part, self.name, is_cross, self.store.step, **kw), part, "edit")
            if all(g is p for g, p in zip(got, part)):
                continue
            q, k, v = (t if g is p else torch.cat([t[: rows.start], g.to(t.dtype), t[rows.stop:]])
                       for t, g, p in zip((q, k, v), got, part))
        return q, k, v

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, *args, **kwargs) -> Tensor:
        """Return the attention block's output, as diffusers' ``AttnProcessor`` computes it."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b4, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(b4, channel, height * width).transpose(1, 2)
        is_cross = encoder_hidden_states is not None
        batch, seq_len = (encoder_hidden_states if is_cross else hidden_states).shape[:2]
        attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if not is_cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        q = query.view(batch, -1, heads, head_dim).transpose(1, 2)  # [B, heads, Q, d]
        k = key.view(batch, -1, heads, head_dim).transpose(1, 2)  # [B, heads, K, d]
        v = value.view(batch, -1, heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        mask = None if attention_mask is None else attention_mask.view(batch, heads, -1, attention_mask.shape[-1])
        q, k, v = self._edit_qkv(q, k, v, is_cross)
        edit_probs = _edit_needs_probs(self.edit, self.name, is_cross, self.store.step)
        store = self.store
        if store.capturing and not edit_probs and store.wants(is_cross, q.shape[2]):
            # token capture: the output and the tokens' head-averaged maps in one fused call (kit.kernels)
            from kit.kernels import cross_attention_capture

            store.require_step()
            rows = store.conditional_rows(q.shape[0])
            acc = store.accumulator(self.name, rows.stop - rows.start, q.shape[2], q.device)
            out = cross_attention_capture(q, k, v, scale=attn.scale, tokens=store.tokens, accum=acc,
                                          row_offset=rows.start, mask=mask)
            store.note_capture(self.name)
        elif edit_probs or store.wants(is_cross, q.shape[2]):
            probs = self._probs(attn, q, k, mask)
            probs = self._record_and_edit(probs, is_cross, edit_probs)
            out = probs @ v
        else:
            if self.store.records(is_cross):  # a layer over the memory bound
                self.store.skipped.add(self.name)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
        hidden_states = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b4, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    @staticmethod
    def _probs(attn, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        dtype = q.dtype
        if attn.upcast_attention:
            q, k = q.float(), k.float()
        scores = (q @ k.transpose(-1, -2)) * attn.scale  # [B, heads, Q, K]
        if mask is not None:
            scores = scores + mask
        if attn.upcast_softmax:
            scores = scores.float()
        return scores.softmax(dim=-1).to(dtype)

    def _record_and_edit(self, probs: Tensor, is_cross: bool, edit_probs: bool) -> Tensor:
        rows = self.store.conditional_rows(probs.shape[0])
        cond = probs[rows]
        self.store.record(self.name, cond, is_cross)
        if not edit_probs:
            return probs
        edited = self.edit(cond, self.name, is_cross, self.store.step)
        if not isinstance(edited, Tensor) or edited.shape != cond.shape:
            got = tuple(edited.shape) if isinstance(edited, Tensor) else type(edited).__name__
            raise ValueError(f"edit must return a tensor of shape {tuple(cond.shape)}, got {got}")
        return torch.cat([probs[: rows.start], edited.to(probs.dtype), probs[rows.stop:]])


def _attention_modules(unet) -> list[tuple[str, torch.nn.Module]]:
    from diffusers.models.attention_processor import Attention

    return [(n, m) for n, m in unet.named_modules() if isinstance(m, Attention)]


def find_attention_store(unet) -> AttentionStore | None:
    """Return the AttentionStore registered on ``unet`` by :func:`register_attention_store`, or None."""
    for m in unet.modules():
        proc = getattr(m, "processor", None)
        if isinstance(proc, RecordingAttnProcessor):
            return proc.store
    return None


def register_attention_store(unet, store: AttentionStore, edit: Edit | None = None) -> Callable[[], None]:
    """Return ``restore()`` after installing a RecordingAttnProcessor on every attention module of ``unet``.

    Also adds a forward pre-hook that advances ``store`` by one step per UNet call and resets the store.
    ``restore()`` puts the original processors back and removes the hook.
    """
    if not isinstance(store, AttentionStore):
        raise ValueError(f"store must be an AttentionStore, got {type(store).__name__}")
    _check_edit(edit)
    if find_attention_store(unet) is not None:
        raise ValueError("an AttentionStore is already registered on this unet; call its restore() first")
    modules = _attention_modules(unet)
    if not modules:
        raise ValueError(f"unet has no diffusers Attention modules ({type(unet).__name__})")
    originals = {n: m.processor for n, m in modules}
    for n, m in modules:
        m.set_processor(RecordingAttnProcessor(store, n, edit))
    handle = unet.register_forward_pre_hook(lambda module, args: store.next_step())
    store.reset()

    def restore() -> None:
        handle.remove()
        for n, m in modules:
            m.set_processor(originals[n])

    return restore


@contextmanager
def attention_control(unet, store: AttentionStore | None = None, edit: Edit | None = None
                      ) -> Iterator[AttentionStore]:
    """Yield the AttentionStore that records (and ``edit`` edits) ``unet``'s attention inside a ``with`` block.

    ``with attention_control(pipe.unet, edit=...) as store: pipe(...)`` is :func:`register_attention_store` with
    the original processors and the step hook restored on leaving the block, also when it raises. ``store``:
    the store to fill (default a new ``AttentionStore()``; ``AttentionStore(record_cross=False)`` records nothing).
    Nesting is refused: one control per UNet at a time (prompt-to-prompt's ``register_attention_control``,
    arXiv:2208.01626, likewise replaces every processor).
    """
    if store is None:
        store = AttentionStore()
    elif not isinstance(store, AttentionStore):
        raise ValueError(f"store must be an AttentionStore or None, got {type(store).__name__}")
    _check_edit(edit)
    if find_attention_store(unet) is not None:
        raise ValueError("attention_control cannot be nested: this unet already has an AttentionStore registered "
                         "(an enclosing attention_control block, or register_attention_store without restore()); "
                         "leave that block or call its restore() first, and pass one edit (ComposeEdits for several)")
    restore = register_attention_store(unet, store, edit)
    try:
        yield store
    finally:
        restore()


def _rows(batch_indices: Sequence[int] | None, n: int, name: str) -> list[int]:
    rows = list(range(n)) if batch_indices is None else _as_int_list(batch_indices, name)
    if any(not 0 <= r < n for r in rows):
        raise ValueError(f"{name} must be in [0, {n}), got {rows}")
    return rows


class ReweightTokens:
    """Edit: scale the cross-attention probabilities of ``token_indices`` by ``scale`` (prompt-to-prompt's
    attention re-weighting); the rows are not renormalised, so ``scale`` > 1 strengthens the tokens' values in
    the output. ``batch_indices``: the prompts to edit (default all)."""

    def __init__(self, token_indices: int | Sequence[int], scale: float,
                 batch_indices: Sequence[int] | None = None) -> None:
        self.token_indices = _as_int_list(token_indices, "token_indices")
        if not math.isfinite(scale):
            raise ValueError(f"scale must be finite, got {scale}")
        self.scale, self.batch_indices = float(scale), batch_indices

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        """Return probs [B, heads, Q, K] with the chosen token columns scaled (cross-attention only)."""
        if not is_cross:
            return probs
        n_tokens = probs.shape[-1]
        if any(not 0 <= t < n_tokens for t in self.token_indices):
            raise ValueError(f"token_indices must be in [0, {n_tokens}), got {self.token_indices}")
        rows = _rows(self.batch_indices, probs.shape[0], "batch_indices")
        weight = torch.ones(probs.shape[0], 1, 1, n_tokens, dtype=probs.dtype, device=probs.device)
        weight[rows, :, :, self.token_indices] = self.scale
        return probs * weight


class ReplaceCrossAttention:
    """Edit: give the target prompts the source's cross-attention maps for steps < ``until_step``
    (prompt-to-prompt's word swap, which needs prompts with the same token count).

    ``source``: an AttentionStore recorded on a previous run with the same schedule (its row ``source_index``;
    layers it skipped are left unedited; a head-averaged store gives every head the mean map), or None for the
    live batch (row ``source_index`` of the same call, the one-pass form). ``target_indices``: rows to overwrite
    (default: all but the live source row). ``token_indices``: only these token columns (default all).
    """

    def __init__(self, source: AttentionStore | None = None, source_index: int = 0,
                 target_indices: Sequence[int] | None = None, token_indices: Sequence[int] | None = None,
                 until_step: int | None = None) -> None:
        if source is not None and not isinstance(source, AttentionStore):
            raise ValueError(f"source must be an AttentionStore or None, got {type(source).__name__}")
        if until_step is not None and (isinstance(until_step, bool) or not isinstance(until_step, int)):
            raise ValueError(f"until_step must be an int or None, got {until_step!r}")
        self.source, self.source_index, self.until_step = source, source_index, until_step
        self.target_indices = target_indices
        self.token_indices = None if token_indices is None else _as_int_list(token_indices, "token_indices")

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        """Return probs [B, heads, Q, K] with the target rows' maps replaced by the source's."""
        if not is_cross or (self.until_step is not None and step >= self.until_step):
            return probs
        n = probs.shape[0]
        if self.source is None:
            if not 0 <= self.source_index < n:
                raise ValueError(f"source_index must be in [0, {n}), got {self.source_index}")
            src = probs[self.source_index]
        else:
            if step not in self.source.steps:
                raise ValueError(f"the source store has no step {step} (recorded: {len(self.source.steps)} steps)")
            stored = self.source.get(name, step)
            if stored is None:
                return probs  # skipped by the source's memory bound
            if not 0 <= self.source_index < stored.shape[0]:
                raise ValueError(f"source_index must be in [0, {stored.shape[0]}), got {self.source_index}")
            src = stored[self.source_index].to(probs.dtype)
            if src.shape[1:] != probs.shape[2:]:
                raise ValueError(f"source maps {tuple(src.shape)} do not match probs {tuple(probs.shape[1:])}")
        default = [r for r in range(n) if self.source is not None or r != self.source_index]
        rows = default if self.target_indices is None else _rows(self.target_indices, n, "target_indices")
        tokens = slice(None) if self.token_indices is None else self.token_indices
        out = probs.clone()
        for r in rows:
            out[r, :, :, tokens] = src.expand_as(probs[r])[:, :, tokens]
        return out
