"""A tiny randomly initialised Stable Diffusion 1.x folder in diffusers' layout (unet, text_encoder, tokenizer, vae,
scheduler), saved with save_pretrained, for tests of the "full" path. Loaded by path (tests are not a package)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

MAX_LENGTH = 32


def _words() -> list[str]:
    """Every word of the prompts the t2i notebooks and kit use on Stable Diffusion, longest first."""
    from kit.t2i.explore import SD_SWAP_PAIRS
    from kit.t2i.schedules import SD_PROMPTS, SD_WARMUP_PROMPTS, SHAPES_PROMPTS

    text = " ".join([*SD_PROMPTS, *SD_WARMUP_PROMPTS, *SHAPES_PROMPTS, *(p for pair in SD_SWAP_PAIRS for p in pair),
                     "a big red circle left of a small blue square"])
    return sorted(set(re.findall(r"[a-z]+", text)), key=lambda w: (-len(w), w))


def _bpe(word: tuple[str, ...], ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """CLIP's byte-pair merge loop: repeatedly merge the adjacent pair of lowest rank."""
    while len(word) > 1:
        pairs = [(ranks.get(p, float("inf")), i, p) for i, p in enumerate(zip(word[:-1], word[1:]))]
        rank, _, (a, b) = min(pairs)
        if rank == float("inf"):
            break
        out, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = tuple(out)
    return word


def write_clip_tokenizer(folder: Path):
    """Return a CLIPTokenizer saved in ``folder`` whose byte-pair merges make every word of :func:`_words` one token
    (letters and their end-of-word forms cover any other word). Each word's merges join, left to right, the pieces
    the merges before it leave, so they come after (and never break) the merges of the words before it."""
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab: dict[str, int] = {}
    for t in [*letters, *(c + "</w>" for c in letters)]:
        vocab.setdefault(t, len(vocab))
    ranks: dict[tuple[str, str], int] = {}
    for w in _words():
        pieces = _bpe((*w[:-1], w[-1] + "</w>"), ranks)
        cur = pieces[0]
        for nxt in pieces[1:]:
            ranks.setdefault((cur, nxt), len(ranks))
            cur = cur + nxt
            vocab.setdefault(cur, len(vocab))
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    merges = sorted(ranks, key=ranks.get)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_LENGTH)


def save_tiny_sd(root: Path, seed: int = 0) -> Path:
    """Return ``root`` after saving a random tiny SD 1.x: 16x16 images from 4x8x8 latents (VAE factor 2), a 1-layer
    CLIP text encoder (hidden 32), SD's scaled-linear DDIM scheduler (epsilon prediction)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from kit.diffusion.t2i import default_scheduler, tiny_unet_config

    root = Path(root)
    tok = write_clip_tokenizer(root / "_raw_tokenizer")
    torch.manual_seed(seed)
    enc = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, max_position_embeddings=MAX_LENGTH,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id))
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, sample_size=16)
    unet = UNet2DConditionModel(**tiny_unet_config(sample_size=8, in_channels=4, block_out_channels=(16, 32),
                                                   cross_attention_dim=32, attention_head_dim=4))
    for sub, obj in (("unet", unet), ("text_encoder", enc), ("vae", vae), ("tokenizer", tok),
                     ("scheduler", default_scheduler(latent=True))):
        obj.save_pretrained(root / sub)
    return root

