"""Offline tokenizer and tiny CLIP text encoder: ids against the vocabulary order, special-token positions,
unknown words, save/load, encoder shapes, pooled token and causality."""

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from kit.diffusion.text import (  # noqa: E402
    build_text_encoder,
    build_tokenizer,
    check_prompt,
    encode_prompts,
    tiny_text_config,
    unknown_words,
)

torch.set_num_threads(1)

WORDS = ["a", "big", "small", "red", "blue", "circle", "square", "left", "of"]
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def _id(word):
    return 4 + WORDS.index(word)  # specials first, then the vocabulary in its given order


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(WORDS, max_length=12)


def test_ids_follow_vocabulary_order_with_bos_eos_pad(tok):
    enc = tok(["A big RED circle", "a square"], padding="max_length", max_length=12, truncation=True,
              return_tensors="pt")
    want0 = [BOS, _id("a"), _id("big"), _id("red"), _id("circle"), EOS] + [PAD] * 6
    want1 = [BOS, _id("a"), _id("square"), EOS] + [PAD] * 8
    assert enc.input_ids.tolist() == [want0, want1]
    assert enc.attention_mask.tolist() == [[1] * 6 + [0] * 6, [1] * 4 + [0] * 8]
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (PAD, UNK, BOS, EOS)
    assert tok.model_max_length == 12
    assert len(tok) == 4 + len(WORDS) + 6  # + default punctuation


def test_round_trip_ids_tokens_text(tok):
    prompt = "a small blue square left of a big red circle"
    ids = tok(prompt)["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens == ["<bos>"] + prompt.split() + ["<eos>"]
    assert tok.decode(ids, skip_special_tokens=True) == prompt
    assert tok.convert_tokens_to_ids(tokens) == ids


def test_punctuation_is_split_and_known(tok):
    ids = tok("a red circle, a blue square.")["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[4] == "," and ids[-2] == tok.convert_tokens_to_ids(".")
    assert UNK not in ids


def test_unknown_words_map_to_unk_and_check_prompt_raises(tok):
    ids = tok("a green hexagon")["input_ids"]
    assert ids == [BOS, _id("a"), UNK, UNK, EOS]
    assert unknown_words(tok, "A Green circle, hexagon") == ["Green", "hexagon"]
    with pytest.raises(ValueError, match="green"):
        check_prompt(tok, "a green circle")
    assert check_prompt(tok, "a red circle") == [BOS, _id("a"), _id("red"), _id("circle"), EOS]


def test_truncation_keeps_eos_and_check_prompt_rejects_long(tok):
    long = " ".join(["a", "big", "red", "circle", "left", "of", "a", "small", "blue", "square", "left", "of"])
    ids = tok(long, padding="max_length", max_length=12, truncation=True)["input_ids"]
    assert len(ids) == 12 and ids[0] == BOS and ids[-1] == EOS
    assert ids[1:-1] == [_id(w) for w in long.split()[:10]]
    with pytest.raises(ValueError, match="max_length"):
        check_prompt(tok, long)


def test_save_load_round_trip(tok, tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok.save_pretrained(tmp_path)
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    prompts = ["a big red circle", "a square, left of a circle", "a purple thing"]
    for p in prompts:
        assert loaded(p, padding="max_length", max_length=12)["input_ids"] == \
            tok(p, padding="max_length", max_length=12)["input_ids"]
    assert loaded.model_max_length == 12 and loaded.pad_token_id == PAD and loaded.eos_token_id == EOS


def test_vocabulary_is_lowercased_and_deduplicated():
    t = build_tokenizer(["Red", "red", "Blue"], max_length=8)
    assert t.convert_tokens_to_ids(["red", "blue"]) == [4, 5]


@pytest.mark.parametrize("vocab", [[], "red", ["two words"], ["red,"], [""], ["<pad>"], [3]])
def test_bad_vocabulary_raises(vocab):
    with pytest.raises(ValueError):
        build_tokenizer(vocab)


def test_bad_max_length_raises():
    with pytest.raises(ValueError, match="max_length"):
        build_tokenizer(WORDS, max_length=2)


def test_text_config_ids_match_tokenizer(tok):
    cfg = tiny_text_config(len(tok), hidden_size=32, layers=2, heads=4, max_length=12)
    assert (cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id) == (tok.pad_token_id, tok.bos_token_id,
                                                                     tok.eos_token_id)
    assert cfg.max_position_embeddings == 12 and cfg.vocab_size == len(tok)


@pytest.mark.parametrize("kw", [dict(vocab_size=3), dict(vocab_size=20, hidden_size=30, heads=4),
                                dict(vocab_size=20, layers=0), dict(vocab_size=20, max_length=1)])
def test_bad_text_config_raises(kw):
    with pytest.raises(ValueError):
        tiny_text_config(**kw)


def test_encoder_shapes_pooled_eos_and_causality(tok):
    torch.manual_seed(0)
    enc = build_text_encoder(tiny_text_config(len(tok), hidden_size=32, layers=2, heads=4, max_length=12)).eval()
    ids = tok(["a big red circle", "a square"], padding="max_length", max_length=12, truncation=True,
              return_tensors="pt").input_ids
    with torch.no_grad():
        out = enc(ids)
    assert out.last_hidden_state.shape == (2, 12, 32)
    eos_pos = [ids[b].tolist().index(EOS) for b in range(2)]
    assert eos_pos == [5, 3]
    for b, p in enumerate(eos_pos):  # the pooled state is the first <eos>'s
        torch.testing.assert_close(out.pooler_output[b], out.last_hidden_state[b, p])
    # causal: tokens after position p do not change positions <= p
    ids2 = ids.clone()
    ids2[1, 5:] = _id("blue")
    with torch.no_grad():
        out2 = enc(ids2).last_hidden_state
    torch.testing.assert_close(out2[1, :5], out.last_hidden_state[1, :5])
    assert (out2[1, 5:] - out.last_hidden_state[1, 5:]).abs().max() > 1e-4
    hidden = encode_prompts(tok, enc, ["a big red circle", "a square"])
    torch.testing.assert_close(hidden, out.last_hidden_state)


def test_build_text_encoder_rejects_non_config():
    with pytest.raises(ValueError, match="CLIPTextConfig"):
        build_text_encoder({"vocab_size": 10})
