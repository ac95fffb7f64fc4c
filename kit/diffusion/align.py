"""Token alignment between a source and a target prompt, the mappers of cross-attention editing.

Positions are those of the padded token sequence the text encoder sees (``<bos> w1 ... wn <eos> <pad> ...``, right
padding to ``length = tokenizer.model_max_length``), so a mapper indexes the last axis of cross-attention
probabilities [B, heads, Q, L] directly (see :mod:`kit.diffusion.text`). Inputs are token-id lists as the repo's
tokenizers produce them (``tokenizer(prompt)["input_ids"]``: unpadded, with the special tokens).

- :func:`replacement_mapper`: prompt-to-prompt's word-swap mapper (Hertz et al., arXiv:2208.01626): M [L, L] with
  target maps ``A_t = A_s @ M``; a swapped word's source tokens spread their maps evenly over its target tokens
  (each source token's row sums to 1), tokens of unchanged words map one to one.
- :func:`global_align` / :func:`refinement_mapper`: prompt-to-prompt's refinement mapper ("adding a new phrase"):
  a global (Needleman-Wunsch) alignment of the two id sequences with gap 0, match 1, mismatch -1 gives each target
  token the source token it copies (-1 when unaligned) and alphas (1 aligned, 0 new).
- ``refinement_mapper(..., gap_fill="cosine")``: ParallelEdits' variant (Huang et al., arXiv:2406.00985): in each
  run of unaligned target tokens, the target token and the source token between the run's aligned neighbours with
  the most cosine-similar text-encoder outputs are matched (one pair per run, as the authors' code does;
  ``per_token=True`` matches every unaligned target token to its most similar source token in the gap).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "GAP_FILLS",
    "prompt_token_ids",
    "word_token_ids",
    "word_positions",
    "global_align",
    "refinement_mapper",
    "replacement_mapper",
    "prompt_refinement_mapper",
    "prompt_replacement_mapper",
]

GAP_FILLS = ("none", "cosine", "cosine_code")
_DIAG, _LEFT, _UP = 0, 1, 2


def _ids(x, name: str) -> list[int]:
    if isinstance(x, Tensor):
        if x.ndim != 1:
            raise ValueError(f"{name} must be a 1-d list of token ids, got a tensor of shape {tuple(x.shape)}")
        x = x.tolist()
    if isinstance(x, str) or not isinstance(x, Sequence):
        raise ValueError(f"{name} must be a list of token ids, got {type(x).__name__}")
    items = list(x)
    if any(isinstance(i, bool) or not isinstance(i, int) for i in items):
        raise ValueError(f"{name} must hold ints (token ids), got {items!r}")
    return items


def _length(length: int, name: str = "length") -> int:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"{name} must be a positive int, got {length!r}")
    return length


def global_align(source: Sequence[int], target: Sequence[int], gap: int = 0, match: int = 1,
                 mismatch: int = -1) -> list[int]:
    """Return, for each target token, the index of the source token aligned with it, or -1 (unaligned).

    Needleman-Wunsch global alignment (the refinement mapper of arXiv:2208.01626) of two token-id sequences,
    scores ``gap`` / ``match`` / ``mismatch``. Among equal-scoring moves the traceback prefers a target token left
    unaligned, then a source token dropped, then a (mis)match, as prompt-to-prompt's aligner does. With the
    default scores a mismatch never wins (two gaps score more), so every aligned pair is a match.
    """
    x, y = _ids(source, "source"), _ids(target, "target")
    for name, value in (("gap", gap), ("match", match), ("mismatch", mismatch)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
    n, m = len(x), len(y)
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[_DIAG] * (m + 1) for _ in range(n + 1)]
    for j in range(1, m + 1):
        score[0][j], move[0][j] = j * gap, _LEFT
    for i in range(1, n + 1):
        score[i][0], move[i][0] = i * gap, _UP
    for i in range(1, n + 1):
        row, prev = score[i], score[i - 1]
        for j in range(1, m + 1):
            left, up = row[j - 1] + gap, prev[j] + gap
            diag = prev[j - 1] + (match if x[i - 1] == y[j - 1] else mismatch)
            best = max(left, up, diag)
            row[j] = best
            move[i][j] = _LEFT if best == left else _UP if best == up else _DIAG
    aligned = [-1] * m
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == _DIAG:
            aligned[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif step == _LEFT:
            j -= 1
        else:
            i -= 1
    return aligned


def _states(states, n_needed: int, name: str) -> Tensor:
    if not isinstance(states, Tensor):
        raise ValueError(f"{name} must be a tensor [L, D] of text-encoder outputs, got {type(states).__name__}")
    if states.ndim == 3 and states.shape[0] == 1:
        states = states[0]
    if states.ndim != 2 or states.shape[0] < n_needed:
        raise ValueError(f"{name} must be [L >= {n_needed}, D] (text-encoder outputs of the padded prompt), got "
                         f"{tuple(states.shape)}")
    return states.detach().float()


def _fill_gaps(mapper: list[int], n_source: int, source_states: Tensor, target_states: Tensor, per_token: bool,
               code_indexing: bool) -> list[int]:
    """Return ``mapper`` with unaligned runs matched by cosine similarity (see :func:`refinement_mapper`)."""
    filled = list(mapper)
    src = torch.nn.functional.normalize(source_states, dim=-1)
    tgt = torch.nn.functional.normalize(target_states, dim=-1)

    def sim(t: int, s: int) -> float:
        if code_indexing:  # the authors' code compares source states at t with target states at s
            return float(src[t] @ tgt[s])
        return float(src[s] @ tgt[t])

    m, j = len(mapper), 0
    while j < m:
        if mapper[j] != -1:
            j += 1
            continue
        start = j
        while j < m and mapper[j] == -1:
            j += 1
        lo = mapper[start - 1] + 1 if start > 0 else 0  # source tokens strictly between the aligned neighbours
        hi = mapper[j] if j < m else n_source
        candidates = range(lo, hi)
        if not candidates:
            continue
        if per_token:
            for t in range(start, j):
                filled[t] = max(candidates, key=lambda s, t=t: (sim(t, s), -s))
        else:
            best, pair = float("-inf"), None
            for t in range(start, j):
                for s in candidates:
                    value = sim(t, s)
                    if value > best:
                        best, pair = value, (t, s)
            if pair is not None:
                filled[pair[0]] = pair[1]
    return filled


def refinement_mapper(source_ids: Sequence[int], target_ids: Sequence[int], length: int,
                      gap_fill: str = "none", source_states: Tensor | None = None,
                      target_states: Tensor | None = None, per_token: bool = False) -> tuple[Tensor, Tensor]:
    """Return (mapper [L] int64, alphas [L] float32): for each target position the source position whose map it
    copies (-1: none) and 1 where it copies, 0 where the target token is new (prompt-to-prompt's refinement mapper,
    arXiv:2208.01626).

    ``source_ids`` / ``target_ids``: unpadded token ids with the special tokens, at most ``length`` each. Positions
    from ``len(target_ids)`` on (the target's padding) copy the same source position with alpha 1.
    ``gap_fill``: "none" (plain refinement); "cosine", ParallelEdits' variant (arXiv:2406.00985): in each run of
    unaligned target tokens the pair (target token in the run, source token strictly between the run's aligned
    neighbours) with the most cosine-similar ``source_states`` / ``target_states`` (text-encoder outputs [L, D] of
    the padded prompts) is matched, alpha 1; ``per_token=True`` matches every token of the run instead;
    "cosine_code", the same with the authors' code's indexing (source states at the target position against target
    states at the source position), kept as an option.
    """
    length = _length(length)
    x, y = _ids(source_ids, "source_ids"), _ids(target_ids, "target_ids")
    for name, ids in (("source_ids", x), ("target_ids", y)):
        if not ids or len(ids) > length:
            raise ValueError(f"{name} must hold 1..{length} token ids (length), got {len(ids)}")
    if gap_fill not in GAP_FILLS:
        raise ValueError(f"gap_fill must be one of {GAP_FILLS}, got {gap_fill!r}")
    aligned = global_align(x, y)
    if gap_fill != "none":
        if source_states is None or target_states is None:
            raise ValueError(f"gap_fill={gap_fill!r} needs source_states and target_states (text-encoder outputs)")
        need = max(len(x), len(y))
        aligned = _fill_gaps(aligned, len(x), _states(source_states, need, "source_states"),
                             _states(target_states, need, "target_states"), bool(per_token),
                             gap_fill == "cosine_code")
    mapper = torch.arange(length, dtype=torch.int64)
    mapper[: len(y)] = torch.tensor(aligned, dtype=torch.int64)
    alphas = (mapper >= 0).float()
    return mapper, alphas


def _words(words, name: str) -> list[list[int]]:
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise ValueError(f"{name} must be a list of words, each a list of token ids, got {type(words).__name__}")
    out = [_ids(w, f"{name}[{i}]") for i, w in enumerate(words)]
    if any(not w for w in out):
        raise ValueError(f"{name} has a word with no tokens: {out!r}")
    return out


def replacement_mapper(source_words: Sequence[Sequence[int]], target_words: Sequence[Sequence[int]], length: int,
                       prefix: int = 1) -> Tensor:
    """Return the word-swap mapper M [L, L] float32 (prompt-to-prompt, arXiv:2208.01626): target maps are
    ``einsum("hqw,wn->hqn", source_maps, M)``.

    ``source_words`` / ``target_words``: the token ids of each whitespace-separated word (same number of words, as
    prompt-to-prompt requires; see :func:`word_token_ids`), after ``prefix`` special tokens (``<bos>``). A word
    whose tokens differ and whose token count differs spreads every source token's map evenly over its target
    tokens (``M[s, t] = 1 / n_target``); other words map token to token. The positions after the words (``<eos>``
    and padding) map one to one in order, so where the target has fewer tokens its last padding positions, left
    without a source, map to themselves, and where it has more the source's last padding positions are dropped.
    (The reference code instead maps the same absolute position after the last swapped word, which shifts the
    words after a swap that changes the token count.)
    """
    length = _length(length)
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 0 <= prefix < length:
        raise ValueError(f"prefix must be an int in [0, {length}), got {prefix!r}")
    xs, ys = _words(source_words, "source_words"), _words(target_words, "target_words")
    if len(xs) != len(ys):
        raise ValueError(f"a word swap needs prompts with the same number of words, got {len(xs)} (source_words) "
                         f"and {len(ys)} (target_words); use refinement_mapper for insertions and deletions")
    n_x, n_y = prefix + sum(map(len, xs)), prefix + sum(map(len, ys))
    if max(n_x, n_y) > length:
        raise ValueError(f"the words take {n_x} (source) and {n_y} (target) positions, more than length {length}")
    mapper = torch.zeros(length, length, dtype=torch.float32)
    for p in range(prefix):
        mapper[p, p] = 1.0
    i = j = prefix
    for ws, wt in zip(xs, ys):
        if ws != wt and len(ws) != len(wt):
            mapper[i: i + len(ws), j: j + len(wt)] = 1.0 / len(wt)
        else:
            for a in range(len(ws)):
                mapper[i + a, j + a] = 1.0
        i, j = i + len(ws), j + len(wt)
    while i < length and j < length:
        mapper[i, j] = 1.0
        i, j = i + 1, j + 1
    for t in range(j, length):  # the target is shorter: its last padding positions copy themselves
        mapper[t, t] = 1.0
    return mapper


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """Return the prompt's token ids (unpadded, with the special tokens); raise when it exceeds
    ``tokenizer.model_max_length`` (it would be truncated and its positions would not match the encoder's)."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    ids = list(tokenizer(prompt)["input_ids"])
    if len(ids) > tokenizer.model_max_length:
        raise ValueError(f"prompt {prompt!r} needs {len(ids)} tokens but the tokenizer's max_length is "
                         f"{tokenizer.model_max_length}")
    return ids


def word_token_ids(tokenizer, prompt: str) -> tuple[list[list[int]], int]:
    """Return (the token ids of each whitespace-separated word, the number of special tokens before them).

    Raises when the words tokenized one by one do not concatenate to the prompt's tokens (a tokenizer that merges
    across spaces), since the word-swap mapper's positions would then be wrong.
    """
    ids = prompt_token_ids(tokenizer, prompt)
    words = [list(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in prompt.split()]
    flat = [i for w in words for i in w]
    for prefix in (1, 0):
        if ids[prefix: prefix + len(flat)] == flat:
            return words, prefix
    raise ValueError(f"the words of {prompt!r} tokenized one by one ({flat}) are not the prompt's tokens ({ids})")


def word_positions(tokenizer, prompt: str) -> list[list[int]]:
    """Return, for each whitespace-separated word of ``prompt``, its positions in the padded token sequence (the
    last axis of cross-attention probabilities): ``<bos>`` is position 0, so a one-token word i sits at i + 1."""
    words, prefix = word_token_ids(tokenizer, prompt)
    out, at = [], prefix
    for w in words:
        out.append(list(range(at, at + len(w))))
        at += len(w)
    return out


def prompt_replacement_mapper(tokenizer, source: str, target: str) -> Tensor:
    """Return :func:`replacement_mapper` [L, L] of two prompts (L = ``tokenizer.model_max_length``)."""
    (xs, p), (ys, q) = word_token_ids(tokenizer, source), word_token_ids(tokenizer, target)
    if p != q:
        raise ValueError(f"source and target have different special-token prefixes ({p} and {q})")
    return replacement_mapper(xs, ys, tokenizer.model_max_length, prefix=p)


def prompt_refinement_mapper(tokenizer, source: str, target: str, gap_fill: str = "none", text_encoder=None,
                             per_token: bool = False) -> tuple[Tensor, Tensor]:
    """Return :func:`refinement_mapper` (mapper [L], alphas [L]) of two prompts; the cosine gap fills take the
    text-encoder outputs of the padded prompts from ``text_encoder`` (as ParallelEdits does, arXiv:2406.00985)."""
    x, y = prompt_token_ids(tokenizer, source), prompt_token_ids(tokenizer, target)
    states: tuple[Tensor | None, Tensor | None] = (None, None)
    if gap_fill != "none" and gap_fill in GAP_FILLS:
        if text_encoder is None:
            raise ValueError(f"gap_fill={gap_fill!r} needs text_encoder")
        from kit.diffusion.text import encode_prompts

        both = encode_prompts(tokenizer, text_encoder, [source, target])
        states = (both[0], both[1])
    return refinement_mapper(x, y, tokenizer.model_max_length, gap_fill=gap_fill, source_states=states[0],
                             target_states=states[1], per_token=per_token)
