"""Fixtures shared by the series' tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def make_tiny_clip():
    """Return a builder ``(vocab) -> (CLIPModel, tokenizer, CLIPImageProcessor)`` of a tiny random CLIP made offline
    (word-level tokenizer over ``vocab``, 16-wide towers, 32 x 32 images in 8 x 8 patches, projection 8; seeded)."""
    def build(vocab):
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        from kit.diffusion.text import build_tokenizer

        tok = build_tokenizer(vocab, max_length=16)
        torch.manual_seed(0)
        cfg = CLIPConfig(
            text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, max_position_embeddings=16, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
            vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                               num_hidden_layers=1, num_attention_heads=2),
            projection_dim=8,
        )
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        return CLIPModel(cfg).eval(), tok, proc

    return build
