"""The multi-branch attention control and local blending of ParallelEdits (arXiv:2406.00985; the spec's §2.5-2.6,
from the authors' code, which builds on InfEdit, arXiv:2312.04965).

Rows. One UNet batch (per classifier-free-guidance half) carries the source and, for each branch k = 0..K-1, a
target row t_k (prompt p_{k+1}) and a *mutual* row m_k (prompt p_k, the prompt of what branch k edits):
``[src, t_0, m_0, t_1, m_1, ...]`` (:func:`row_layout`). Branch k's attention reference is the source for k = 0 and
t_{k-1} after that (the controller of branch k sees the rows (reference, t_k, m_k)).

Cross-attention (conditional rows, steps with (i + 1) / N <= ``cross_replace``): t_k's maps become its reference's
maps carried through a token mapper from p_k to p_{k+1}: prompt-to-prompt's word-swap mapper for a rigid branch
whose prompts have equal word counts, else the refinement mapper (with ParallelEdits' cosine gap fill by default).

Self-attention (both halves, branches with ``self_control``): while (i + 1) / N < ``self_replace`` t_k takes the
reference's Q and K and keeps its V, and m_k takes the reference's Q, K and V; afterwards t_k is free and m_k takes
t_k's Q with the reference's K and V. (InfEdit's paper says K, V where its code swaps Q, K: the code is followed;
sled-group/InfEdit#22.) The authors' final pass applies it to the rigid branches only (``self_control`` default).

Local blend (:class:`LocalBlend`, every step after the first): with the running sum of the cross-attention maps of
the 16 x 16 layers (mid block excluded), branch k's edit mask is ``Mask(maps_m, blend words, theta_e)`` where
``maps_m`` are m_k's maps carried to p_{k+1} through the branch's mapper (t_k's own maps on new tokens) and
``theta_e = max(temperature / sqrt(abar_t), thresh_e)``; ``Mask`` = word tokens only, mean over layers and heads,
max over the words' tokens, nearest resize to the latent, divide by the spatial maximum, > theta. Then
``x_t <- where(mask_e, x_t, x_m)`` (outside the edit, the mutual row's reconstruction of the reference) and
``x_t <- where(mask_m, r_t, x_t)`` with ``mask_m`` from the reference's carried maps over ``preserve`` words at
``thresh_m`` (no such words in the authors' demo; nor is its last-step variant, the mutual words that are also blend
words, which is therefore left out). A branch without blend words (the global one) is not blended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kit.diffusion.align import prompt_refinement_mapper, prompt_replacement_mapper, word_positions
from kit.diffusion.attention_edits import ComposeEdits, InjectSelfAttention, RestrictEdit

__all__ = ["row_layout", "BranchMapper", "BranchCrossAttention", "branch_mappers", "branch_attention_edit", "blend_layers", "LocalBlend"]


def row_layout(num_branches: int) -> dict[str, list[int]]:
    """Return the rows of ``[src, t_0, m_0, t_1, m_1, ...]``: {"t": [...], "m": [...], "ref": [...]} where ref[k]
    is branch k's attention reference (0 = the source row, else t_{k-1})."""
    if num_branches < 1:
        raise ValueError(f"num_branches must be >= 1, got {num_branches}")
    t = [1 + 2 * k for k in range(num_branches)]
    return {"t": t, "m": [1 + 2 * k + 1 for k in range(num_branches)], "ref": [0] + t[:-1]}


@dataclass
class BranchMapper:
    """Branch k's token mapper from p_k to p_{k+1}: ``kind`` "swap" (``mapper`` [L, L]) or "refine" (``mapper`` [L]
    source index per target token, ``alphas`` [L]); :meth:`carry` applies it to maps [..., L]."""

    kind: str
    mapper: Tensor
    alphas: Tensor | None = None

    def carry(self, source: Tensor, target: Tensor) -> Tensor:
        """Return the target prompt's maps [..., L]: the ``source`` maps carried through the mapper, with the
        ``target`` maps on tokens the refinement leaves unaligned."""
        if self.kind == "swap":
            return torch.einsum("...w,wn->...n", source, self.mapper.to(source))
        alphas = self.alphas.to(source)
        return source[..., self.mapper.clamp(min=0).to(source.device)] * alphas + target * (1 - alphas)


def branch_mappers(tokenizer, prompts: Sequence[str], rigid: Sequence[bool], *, gap_fill: str = "cosine",
                   text_encoder=None) -> list[BranchMapper]:
    """Return one :class:`BranchMapper` per branch (prompts p_0..p_K): the word-swap mapper where the branch is
    rigid and p_k, p_{k+1} have equal word counts, else the refinement mapper (``gap_fill``: "cosine", ParallelEdits';
    "none", prompt-to-prompt's; "cosine_code", the authors' indexing)."""
    if len(rigid) != len(prompts) - 1:
        raise ValueError(f"{len(prompts) - 1} branches but {len(rigid)} rigid flags")
    out = []
    for k, is_rigid in enumerate(rigid):
        src, tgt = prompts[k], prompts[k + 1]
        if is_rigid and len(src.split()) == len(tgt.split()):
            out.append(BranchMapper("swap", prompt_replacement_mapper(tokenizer, src, tgt)))
        else:
            mapper, alphas = prompt_refinement_mapper(tokenizer, src, tgt, gap_fill=gap_fill, text_encoder=text_encoder)
            out.append(BranchMapper("refine", mapper, alphas))
    return out


class BranchCrossAttention:
    """Cross-attention edit: each branch's target row gets its reference row's maps carried through the branch's
    :class:`BranchMapper`. Every branch reads the rows as they came in (the authors' processor hands each
    controller the unedited probabilities), so t_1 is mapped from t_0's own maps, not from t_0's edited ones."""

    def __init__(self, mappers: Sequence[BranchMapper]) -> None:
        self.mappers = list(mappers)
        self.rows = row_layout(len(self.mappers))

    def __call__(self, probs: Tensor, name: str, is_cross: bool, step: int) -> Tensor:
        if not is_cross:
            return probs
        if probs.shape[0] != 1 + 2 * len(self.mappers):
            raise ValueError(f"{len(self.mappers)} branches need {1 + 2 * len(self.mappers)} rows, got "
                             f"{probs.shape[0]}")
        out = probs.clone()
        for mapper, ref, t in zip(self.mappers, self.rows["ref"], self.rows["t"]):
            out[t] = mapper.carry(probs[ref], probs[t])
        return out


def _early_self_steps(self_replace: float, total_steps: int) -> int:
    """Return how many steps satisfy InfEdit's strict test (i + 1) / N < self_replace."""
    return max(0, math.ceil(self_replace * total_steps - 1e-9) - 1)


def branch_attention_edit(mappers: Sequence[BranchMapper], self_control: Sequence[bool], total_steps: int, *,
                          cross_replace: float = 0.7, self_replace: float = 0.7) -> ComposeEdits:
    """Return the edit (for :func:`kit.diffusion.attention.attention_control`) of a ParallelEdits pass over the rows
    of :func:`row_layout`: per branch, the cross-attention mapping from its reference and, where ``self_control``,
    InfEdit's mutual self-attention (see the module docstring)."""
    k = len(mappers)
    if len(self_control) != k:
        raise ValueError(f"{k} branches but {len(self_control)} self_control flags")
    rows = row_layout(k)
    edits: list = [RestrictEdit(BranchCrossAttention(mappers), attention="cross", steps=(0.0, float(cross_replace)),
                                total_steps=total_steps)]
    ctl = [i for i in range(k) if self_control[i]]
    if ctl:
        e = _early_self_steps(self_replace, total_steps)
        ref, t, m = ([rows[key][i] for i in ctl] for key in ("ref", "t", "m"))
        if e > 0:
            edits.append(InjectSelfAttention(ref + ref, t + m, ["qk"] * len(ctl) + ["qkv"] * len(ctl), steps=(0, e)))
        if e < total_steps:
            edits.append(InjectSelfAttention(t + ref, m + m, [("q",)] * len(ctl) + ["kv"] * len(ctl),
                                             steps=(e, None)))
    return ComposeEdits(edits)


def blend_layers(store) -> list[str]:
    """Return the recorded cross-attention layers the local blend reads: those at the highest resolution <= 16,
    outside the mid block (Stable Diffusion 1.x at 512 px: the 16 x 16 layers of the down and up blocks)."""
    if not store.steps:
        raise ValueError("the store is empty: run the UNet with the store registered first")
    first = store.steps[0]
    sizes = sorted({store.spatial_size(store.attention(n, first).shape[2])[0] for n in store.layers
                    if not n.startswith("mid")})
    if not sizes:
        raise ValueError("no cross-attention layer outside the mid block was recorded")
    res = ([s for s in sizes if s <= 16] or sizes[:1])[-1]
    return [n for n in store.layers_at(res) if not n.startswith("mid")]


def _token_indicator(tokenizer, prompt: str, words: Sequence[str], length: int) -> Tensor:
    """Return a 0/1 [L] indicator of the tokens of ``words`` in ``prompt`` (every occurrence)."""
    ind = torch.zeros(length)
    wanted = set(words)
    for word, pos in zip(prompt.split(), word_positions(tokenizer, prompt)):
        if word in wanted:
            ind[pos] = 1.0
    return ind


class LocalBlend:
    """Local blending of every branch (see the module docstring); call as ``blend(step, x_prev, source_prev)`` from
    :func:`kit.multiedits.sampler.ddcm_sample` (``x_prev``: the branch rows [t_0, m_0, t_1, m_1, ...]).

    ``abar`` [n + 1] the noise levels of the steps; ``blend_words[k]`` / ``preserve_words[k]`` the words of
    p_{k+1} to edit (blend) and to keep from the reference (preserve; blend words win) per branch. The edit masks of each step are kept in ``masks[k]`` (bool
    [h, w] per step, latent resolution) and the normalised maps before thresholding in ``maps[k]`` (float16), for
    the explorer's threshold slider.
    """

    def __init__(self, store, tokenizer, prompts: Sequence[str], mappers: Sequence[BranchMapper], abar: Tensor,
                 blend_words: Sequence[Sequence[str]], preserve_words: Sequence[Sequence[str]] | None = None, *,
                 thresh_e: float = 0.5, thresh_m: float = 0.8, temperature: float = 0.15) -> None:
        k = len(mappers)
        if len(prompts) != k + 1 or len(blend_words) != k:
            raise ValueError(f"{k} branches need {k + 1} prompts and {k} blend word lists, got {len(prompts)} and "
                             f"{len(blend_words)}")
        preserve_words = [[] for _ in range(k)] if preserve_words is None else preserve_words
        length = tokenizer.model_max_length
        self.store, self.mappers, self.abar = store, list(mappers), abar
        self.thresh_e, self.thresh_m, self.temperature = float(thresh_e), float(thresh_m), float(temperature)
        self.rows = row_layout(k)
        self.edit_ind = [_token_indicator(tokenizer, prompts[i + 1], blend_words[i], length) for i in range(k)]
        keep = [_token_indicator(tokenizer, prompts[i + 1], preserve_words[i], length) for i in range(k)]
        self.keep_ind = [torch.clamp(keep[i] - self.edit_ind[i], min=0) for i in range(k)]
        self.n_tokens = [len(tokenizer(prompts[i + 1])["input_ids"]) for i in range(k)]
        self.masks: list[list[Tensor]] = [[] for _ in range(k)]
        self.maps: list[list[Tensor]] = [[] for _ in range(k)]
        self._sum: dict[str, Tensor] = {}
        self._layers: list[str] | None = None

    def _accumulate(self, step: int) -> None:
        if self._layers is None:
            self._layers = blend_layers(self.store)
        for name in self._layers:
            p = self.store.attention(name, step).float().mean(dim=1)  # [R, Q, L]
            self._sum[name] = p if name not in self._sum else self._sum[name] + p

    def _map(self, rows_maps: Tensor, indicator: Tensor, n_tokens: int, size: tuple[int, int]) -> Tensor:
        """Return the normalised map [h, w] of ``rows_maps`` [layers, Q, L] over the indicated word tokens."""
        q = rows_maps.shape[1]
        h, w = self.store.spatial_size(q)
        m = (rows_maps * indicator.to(rows_maps)).mean(dim=0)[:, 1:n_tokens - 1]  # word tokens only
        m = m.max(dim=-1).values.reshape(1, 1, h, w)
        m = F.interpolate(m, size=size, mode="nearest")[0, 0]
        return m / m.max().clamp_min(1e-12)

    def __call__(self, step: int, x_prev: Tensor, source_prev: Tensor) -> Tensor:
        self._accumulate(step)
        size = tuple(x_prev.shape[-2:])
        theta_e = max(self.temperature / float(self.abar[step]) ** 0.5, self.thresh_e)
        out = x_prev.clone()
        for k, mapper in enumerate(self.mappers):
            t, m, ref = self.rows["t"][k], self.rows["m"][k], self.rows["ref"][k]
            carried_m = torch.stack([mapper.carry(self._sum[n][m], self._sum[n][t]) for n in self._layers])
            maps_e = self._map(carried_m, self.edit_ind[k], self.n_tokens[k], size)
            self.maps[k].append(maps_e.half())
            if step == 0 or not bool(self.edit_ind[k].any()):
                self.masks[k].append(torch.zeros(size, dtype=torch.bool))
                continue
            mask_e = maps_e > theta_e
            bt, bm = t - 1, m - 1  # rows of x_prev (no source row)
            out[bt] = torch.where(mask_e.to(out.device), x_prev[bt], x_prev[bm])
            if bool(self.keep_ind[k].any()):
                carried_s = torch.stack([mapper.carry(self._sum[n][ref], self._sum[n][t]) for n in self._layers])
                mask_m = self._map(carried_s, self.keep_ind[k], self.n_tokens[k], size) > self.thresh_m
                r_new = source_prev[0] if ref == 0 else x_prev[ref - 1]
                out[bt] = torch.where(mask_m.to(out.device), r_new, out[bt])
            self.masks[k].append(mask_e.cpu())
        return out
