"""Offline text side of a text-to-image model: a word-level tokenizer and a tiny CLIP text encoder.

The tokenizer is a ``tokenizers`` WordLevel model over a closed vocabulary (e.g. every ShapesWorld caption
word), wrapped in a ``transformers`` fast tokenizer so it is called exactly like Stable Diffusion's CLIP tokenizer:
``tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
return_tensors="pt")``. Text is lower-cased and split on whitespace and punctuation; every prompt becomes
``<bos> w1 ... wn <eos> <pad> ...``. Ids are fixed by the vocabulary order: ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2,
``<eos>`` 3, then the words in the given order, then the punctuation marks not already listed.

Unknown words map to ``<unk>`` (id 1) silently, as any tokenizer does; :func:`check_prompt` is the strict path that
raises a ``ValueError`` naming them. Truncation keeps ``<eos>`` (the post-processor adds it after truncating).

The text encoder is a ``transformers.CLIPTextModel`` (causal transformer, as in CLIP, arXiv:2103.00020) whose
config carries the tokenizer's special ids. Its pooled output is taken at the first ``<eos>``: transformers picks
the pooled token by ``config.eos_token_id`` (the legacy argmax rule only applies when ``eos_token_id == 2``, which
is why ``<eos>`` is id 3 here). Text-to-image models use ``last_hidden_state`` [B, L, hidden].
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "PAD",
    "UNK",
    "BOS",
    "EOS",
    "SPECIAL_TOKENS",
    "PUNCTUATION",
    "build_tokenizer",
    "check_prompt",
    "unknown_words",
    "tiny_text_config",
    "build_text_encoder",
    "encode_prompts",
]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3
PUNCTUATION: tuple[str, ...] = (",", ".", ";", ":", "!", "?")


def _pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])


def _check_max_length(max_length: int) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
        raise ValueError(f"max_length must be an int >= 3 (<bos>, one word, <eos>), got {max_length!r}")
    return max_length


def build_tokenizer(
    vocabulary: Sequence[str], max_length: int = 16, punctuation: Sequence[str] = PUNCTUATION
):
    """Return a ``transformers`` fast tokenizer (WordLevel) over ``vocabulary`` + ``punctuation``.

    ``vocabulary``: the known words (case-insensitive; duplicates after lower-casing are dropped, first kept).
    Each word must be a single pre-token (no spaces, no punctuation inside). ``max_length`` is the padded
    length L (``model_max_length``) including ``<bos>`` and ``<eos>``. Unknown words encode to ``<unk>``.
    Save with ``save_pretrained(folder)``, load with ``transformers.PreTrainedTokenizerFast.from_pretrained``.
    """
    from tokenizers import Tokenizer, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    _check_max_length(max_length)
    if isinstance(vocabulary, str) or not isinstance(vocabulary, Sequence) or len(vocabulary) == 0:
        raise ValueError("vocabulary must be a non-empty sequence of words (not a single string)")
    pre = _pre_tokenizer()
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for source, words in (("vocabulary", vocabulary), ("punctuation", punctuation)):
        for word in words:
            if not isinstance(word, str) or not word.strip():
                raise ValueError(f"{source} entries must be non-empty strings, got {word!r}")
            w = word.lower()
            pieces = [p for p, _ in pre.pre_tokenize_str(w)]
            if pieces != [w]:
                raise ValueError(
                    f"{source} entry {word!r} is not a single token (splits into {pieces}); give single words"
                )
            if w in SPECIAL_TOKENS:
                raise ValueError(f"{source} entry {word!r} clashes with a special token {SPECIAL_TOKENS}")
            vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    bos, eos = vocab[BOS], vocab[EOS]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", pair=f"{BOS} $A {EOS} $B:1 {EOS}:1", special_tokens=[(BOS, bos), (EOS, eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=max_length,
        padding_side="right",
        truncation_side="right",
    )


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """Return the words of ``prompt`` (after normalisation) that ``tokenizer`` maps to its unknown token."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    unk_id = tokenizer.unk_token_id
    if unk_id is None:
        raise ValueError("tokenizer has no unk_token; it cannot mark unknown words")
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    return [prompt[a:b] for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk_id]


def check_prompt(tokenizer, prompt: str) -> list[int]:
    """Return the prompt's token ids (with ``<bos>``/``<eos>``, unpadded) or raise for unknown or too many words.

    The strict path: raises ``ValueError`` naming every word outside the vocabulary, and when the prompt does not
    fit ``tokenizer.model_max_length`` tokens (it would be truncated).
    """
    unknown = unknown_words(tokenizer, prompt)
    if unknown:
        raise ValueError(f"prompt {prompt!r} has words outside the tokenizer's vocabulary: {unknown}")
    ids = tokenizer(prompt)["input_ids"]
    if len(ids) > tokenizer.model_max_length:
        raise ValueError(
            f"prompt {prompt!r} needs {len(ids)} tokens (with <bos>/<eos>) but max_length is "
            f"{tokenizer.model_max_length}"
        )
    return list(ids)


def tiny_text_config(
    vocab_size: int, hidden_size: int = 64, layers: int = 2, heads: int = 4, max_length: int = 16
):
    """Return a small ``transformers.CLIPTextConfig`` whose pad/bos/eos ids match :func:`build_tokenizer`."""
    from transformers import CLIPTextConfig

    for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size), ("layers", layers),
                        ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    _check_max_length(max_length)
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    if hidden_size % heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of heads ({heads})")
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        projection_dim=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_length,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
    )


def build_text_encoder(config):
    """Return a randomly initialised ``transformers.CLIPTextModel`` for ``config`` (see :func:`tiny_text_config`)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    if not isinstance(config, CLIPTextConfig):
        raise ValueError(f"config must be a transformers.CLIPTextConfig, got {type(config).__name__}")
    return CLIPTextModel(config)


def encode_prompts(tokenizer, text_encoder, prompts: str | Sequence[str], device=None):
    """Return the text encoder's last hidden states [B, L, hidden] for prompts padded to ``model_max_length``.

    The Stable Diffusion convention: pad to the maximum length, truncate, no attention mask (the encoder is
    causal, so padding after ``<eos>`` does not change earlier tokens).
    """
    import torch

    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Sequence) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a non-empty list of strings")
    ids = tokenizer(
        list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids
    if device is None:
        device = next(text_encoder.parameters()).device
    with torch.no_grad():
        return text_encoder(ids.to(device))[0]
