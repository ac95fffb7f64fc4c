"""What the prompt explorer shows: a generated image and the cross-attention map of each prompt word."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TokenMaps:
    """One generation: the image, the prompt's words with their token positions, and the attention store."""

    prompt: str
    image: np.ndarray  # uint8 [H, W, 3]
    words: list[tuple[int, str]]  # (token index, word), <bos>/<eos>/<pad> excluded
    store: object
    steps: int
    _cache: dict = field(default_factory=dict, repr=False)

    def word_map(self, token_index: int, step: int | None = None) -> np.ndarray:
        """Return the cross-attention map [H, W] of one token, averaged over layers (and steps if ``step`` is None)."""
        key = (token_index, step)
        if key not in self._cache:
            h, w = self.image.shape[:2]
            m = self.store.maps(token_index, step=None if step is None else [step], resolution=(h, w))
            self._cache[key] = m.float().numpy()
        return self._cache[key]


@torch.no_grad()
def token_maps(pipe, prompt: str, steps: int = 20, guidance_scale: float = 3.0, seed: int = 0) -> TokenMaps:
    """Return a :class:`TokenMaps` for ``prompt``: generate with an attention store on the UNet, then index words.

    Unknown words raise ``ValueError`` naming them (the tokenizer would otherwise map them to ``<unk>``).
    """
    from kit.diffusion.attention import AttentionStore, register_attention_store
    from kit.diffusion.text import check_prompt

    check_prompt(pipe.tokenizer, prompt)
    store = AttentionStore()
    restore = register_attention_store(pipe.unet, store)
    try:
        img = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance_scale,
                   generator=torch.Generator().manual_seed(seed), output_type="np").images[0]
    finally:
        restore()
    ids = pipe.tokenizer(prompt).input_ids
    specials = {pipe.tokenizer.bos_token_id, pipe.tokenizer.eos_token_id, pipe.tokenizer.pad_token_id}
    tokens = pipe.tokenizer.convert_ids_to_tokens(ids)
    words = [(i, t) for i, (t, tid) in enumerate(zip(tokens, ids)) if tid not in specials]
    image = np.round(np.asarray(img) * 255).astype(np.uint8)
    return TokenMaps(prompt, image, words, store, len(store.steps))
