"""PaliGemma examiner on a tiny PaliGemma built in code: canvas, greedy chat, LoRA fine-tuning, adapter files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.hv_vlm.examiner import ScriptedBackend, verify
from kit.hv_vlm.paligemma import (
    DECIDE_PREFIX,
    EXPLAIN_PREFIX,
    PaliGemmaBackend,
    load_adapter,
    lora_finetune,
    paligemma_examples,
    save_adapter,
    side_by_side,
    suffix_loss,
)

# peft asks transformers a deprecated question; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

WORDS = ["answer", "en", "describe", "the", "differences", "in", "handwriting", "same", "writer", "?", "yes",
         "or", "no"]


def tiny_processor():
    """A real PaliGemmaProcessor over a word-level tokenizer made here and a 32-px SigLIP image processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PaliGemmaProcessor, PreTrainedTokenizerFast, SiglipImageProcessor

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # splits "writer?" into "writer", "?"; drops the "\n"
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  unk_token="<unk>")
    images = SiglipImageProcessor(size={"height": 32, "width": 32})
    images.image_seq_length = 4  # (32 / 16) ** 2 patches; the processor repeats <image> this often
    return PaliGemmaProcessor(image_processor=images, tokenizer=tok)  # adds <image> and the <loc>/<seg> tokens


def tiny_paligemma(processor, seed=0):
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        SiglipVisionConfig,
    )

    tok = processor.tokenizer
    vision = SiglipVisionConfig(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=1, num_attention_heads=2, vision_use_head=False)
    text = GemmaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg = PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=processor.image_token_id,
                          vocab_size=len(tok), projection_dim=32, hidden_size=32)
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # wider (tied) embeddings than the 0.02 init, so that 32-d logits can be confident
        model.get_input_embeddings().weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
    return model


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def _pairs(n=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    knowns = [rng.integers(0, 256, (24, 40), dtype=np.uint8) for _ in range(n)]
    # "same writer" pairs are a bright questioned image, "different" a dark one: learnable from the canvas
    questioneds = [np.full((30, 30), 230 if y else 20, np.uint8) for y in labels]
    return knowns, questioneds, labels


def test_side_by_side_letterboxes_known_left_and_questioned_right():
    known = np.zeros((10, 40), np.uint8)  # wide, black
    questioned = np.zeros((40, 10, 3), np.uint8)  # tall, black
    c = side_by_side(known, questioned, size=224)
    assert c.shape == (224, 224, 3) and c.dtype == np.uint8
    assert (c[:, 111:113] == 128).all()  # the separator
    ink_l = np.argwhere(c[:, :111, 0] < 64)
    ink_r = np.argwhere(c[:, 113:, 0] < 64)
    h_l, w_l = np.ptp(ink_l, axis=0) + 1
    h_r, w_r = np.ptp(ink_r, axis=0) + 1
    assert w_l == 111 and abs(h_l - 111 / 4) <= 1  # aspect 1:4 kept, centred on white paper
    assert h_r == 224 and abs(w_r - 56) <= 1
    assert (c[0, :111] == 255).all() and (c[:, 113:140] == 255).all()
    assert side_by_side(known, questioned, size=32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="questioned"):
        side_by_side(known, np.zeros((4, 4), np.float32))


def test_chat_is_a_deterministic_string_and_picks_the_prefix(processor):
    model = tiny_paligemma(processor)
    backend = PaliGemmaBackend(model, processor, max_new_tokens=4)
    known, questioned, _ = _pairs(2)
    first = [{"role": "system", "content": "s"}, {"role": "user", "content": "explain"}]
    a = backend.chat(first, [known[0], questioned[0]])
    assert isinstance(a, str) and a == backend.chat(first, [known[0], questioned[0]])
    assert backend.last_meta["prefix"] == EXPLAIN_PREFIX and backend.canvas_size == 32
    second = first + [{"role": "assistant", "content": a}, {"role": "user", "content": "decide"}]
    backend.chat(second, [known[0], questioned[0]], temperature=1.0, max_tokens=2)
    assert backend.last_meta["prefix"] == DECIDE_PREFIX
    v = verify(backend, known[1], questioned[1])
    assert v.meta["backend"] == "paligemma" and v.meta["lora"] is False and v.decision in ("same", "different",
                                                                                          "unknown", "both")
    with pytest.raises(ValueError, match="two images"):
        backend.chat(first, [known[0]])
    with pytest.raises(TypeError, match="PaliGemmaProcessor"):
        PaliGemmaBackend(model, ScriptedBackend(["x"]))


def test_examples_hold_canvas_prefix_and_yes_no(processor):
    knowns, questioneds, labels = _pairs(4)
    ex = paligemma_examples(knowns, questioneds, labels, size=32)
    assert [e["suffix"] for e in ex] == ["no", "yes", "no", "yes"] and ex[0]["prefix"] == DECIDE_PREFIX
    assert ex[0]["image"].shape == (32, 32, 3)
    batch = processor(text=[processor.image_token + e["prefix"] for e in ex[:2]], images=[e["image"] for e in ex[:2]],
                      suffix=[e["suffix"] for e in ex[:2]], return_tensors="pt", padding="longest")
    targets = [processor.tokenizer.convert_ids_to_tokens(row[row != -100]) for row in batch["labels"]]
    assert targets == [["no", "<eos>"], ["yes", "<eos>"]]  # only the suffix is learned
    with pytest.raises(ValueError, match="length"):
        paligemma_examples(knowns, questioneds[:2], labels)
    with pytest.raises(ValueError, match="labels"):
        paligemma_examples(knowns[:1], questioneds[:1], [3])


def test_lora_lowers_the_loss_and_touches_only_lora_weights(processor):
    model = tiny_paligemma(processor)
    ex = paligemma_examples(*_pairs(8), size=32)
    frozen = [(n, p, p.detach().clone()) for n, p in model.named_parameters()]
    before = suffix_loss(model, processor, ex)
    history = []
    peft_model = lora_finetune(model, processor, ex, r=4, alpha=8, lr=5e-2, epochs=4, batch_size=4,
                               progress=False, history=history)
    after = suffix_loss(peft_model, processor, ex)
    assert len(history) == 8 and after < 0.5 * before, (before, after, history)
    for n, p, p0 in frozen:
        assert torch.equal(p, p0), f"base weight {n} changed"
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    assert not any("vision_tower" in n for n, _ in peft_model.named_modules() if "lora_" in n)
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in peft_model.named_parameters())
    mlp = lora_finetune(tiny_paligemma(processor), processor, ex[:2], train_mlp=True, progress=False)
    assert any("mlp.down_proj.lora_A" in n for n, _ in mlp.named_parameters())
    with pytest.raises(ValueError, match="target_modules"):
        lora_finetune(tiny_paligemma(processor), processor, ex, target_modules=("nope",), progress=False)


def test_adapter_roundtrip_gives_the_same_outputs(processor, tmp_path):
    ex = paligemma_examples(*_pairs(4), size=32)
    trained = lora_finetune(tiny_paligemma(processor, seed=1), processor, ex, r=4, lr=2e-2, epochs=2,
                            progress=False)
    save_adapter(trained, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    loaded = load_adapter(tiny_paligemma(processor, seed=1), tmp_path / "adapter")
    base = tiny_paligemma(processor, seed=1)
    batch = processor(text=[processor.image_token + DECIDE_PREFIX] * 2, images=[e["image"] for e in ex[:2]],
                      return_tensors="pt")
    with torch.no_grad():
        out_t, out_l, out_b = (m(**batch).logits for m in (trained, loaded, base))
    torch.testing.assert_close(out_l, out_t)
    assert not torch.allclose(out_b, out_t)
    k, q, _ = _pairs(1)
    first = [{"role": "user", "content": "explain"}]
    answers = [PaliGemmaBackend(m, processor, max_new_tokens=3).chat(first, [k[0], q[0]]) for m in (trained, loaded)]
    assert answers[0] == answers[1]
    with pytest.raises(FileNotFoundError, match="adapter_config"):
        load_adapter(base, tmp_path / "missing")
    with pytest.raises(TypeError, match="peft"):
        save_adapter(base, tmp_path / "x")
