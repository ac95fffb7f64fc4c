"""Token alignment: Needleman-Wunsch against hand-aligned id lists (insertions, deletions, swaps, multi-token
words) and a brute-force optimum, refinement mappers with their padding tail, ParallelEdits' cosine gap fill on
hand-built states, word-swap mappers against hand-built matrices, the tokenizer helpers, and bad arguments."""

import itertools
import random

import pytest
import torch

from kit.diffusion.align import (
    global_align,
    prompt_refinement_mapper,
    prompt_replacement_mapper,
    prompt_token_ids,
    refinement_mapper,
    replacement_mapper,
    word_token_ids,
)

BOS, EOS = 2, 3


@pytest.mark.parametrize("source, target, want", [
    ([2, 5, 6, 3], [2, 5, 6, 3], [0, 1, 2, 3]),  # identical
    ([2, 5, 6, 3], [2, 5, 7, 6, 3], [0, 1, -1, 2, 3]),  # insertion
    ([2, 5, 7, 6, 3], [2, 5, 6, 3], [0, 1, 3, 4]),  # deletion
    ([2, 5, 6, 3], [2, 5, 8, 3], [0, 1, -1, 3]),  # substitution: a mismatch never aligns
    ([2, 5, 6, 3], [2, 9, 10, 5, 6, 3], [0, -1, -1, 1, 2, 3]),  # two-token insertion
    ([2, 5, 11, 12, 6, 3], [2, 5, 13, 6, 3], [0, 1, -1, 4, 5]),  # two tokens swapped for one
    ([2, 5, 6, 3], [2, 6, 5, 3], [0, 2, -1, 3]),  # reorder: the later match wins the tie
    ([2, 5, 5, 3], [2, 5, 3], [0, 1, 3]),  # duplicate: the first copy is kept
    ([], [4, 5], [-1, -1]),
    ([4], [], []),
])
def test_global_align_hand_cases(source, target, want):
    assert global_align(source, target) == want


def _best_score(x, y):
    """The best alignment score by brute force: every order-preserving set of aligned pairs (gaps score 0)."""
    best = 0
    for k in range(1, min(len(x), len(y)) + 1):
        for xs in itertools.combinations(range(len(x)), k):
            for ys in itertools.combinations(range(len(y)), k):
                best = max(best, sum(1 if x[i] == y[j] else -1 for i, j in zip(xs, ys)))
    return best


def test_global_align_is_optimal_and_order_preserving():
    rng = random.Random(0)
    for _ in range(150):
        x = [rng.randint(4, 7) for _ in range(rng.randint(0, 5))]
        y = [rng.randint(4, 7) for _ in range(rng.randint(0, 5))]
        got = global_align(x, y)
        pairs = [(s, t) for t, s in enumerate(got) if s >= 0]
        assert all(x[s] == y[t] for s, t in pairs)
        assert [s for s, _ in pairs] == sorted({s for s, _ in pairs})  # strictly increasing
        assert len(pairs) == _best_score(x, y)


def test_refinement_mapper_alphas_and_padding_tail():
    mapper, alphas = refinement_mapper([BOS, 5, 6, EOS], [BOS, 5, 9, 6, EOS], length=8)
    assert mapper.dtype == torch.int64 and alphas.dtype == torch.float32
    assert mapper.tolist() == [0, 1, -1, 2, 3, 5, 6, 7]  # target padding (5..7) copies the same positions
    assert alphas.tolist() == [1, 1, 0, 1, 1, 1, 1, 1]
    mapper, alphas = refinement_mapper([BOS, 5, 9, 10, 6, EOS], [BOS, 5, 6, EOS], length=7)
    assert mapper.tolist() == [0, 1, 4, 5, 4, 5, 6] and alphas.tolist() == [1] * 7


def _unit(*xs):
    v = torch.tensor(xs, dtype=torch.float32)
    return v / v.norm()


def test_cosine_gap_fill_matches_within_the_gap():
    # source "<bos> 5 6 7 <eos>", target "<bos> 5 8 9 <eos>": 6, 7 left and 8, 9 new in one gap
    source, target = [BOS, 5, 6, 7, EOS], [BOS, 5, 8, 9, EOS]
    e3 = _unit(0, 0, 0, 1)
    src = torch.stack([e3, e3, _unit(0, 0.8, 0.6, 0), _unit(0.9, 0, 0.19 ** 0.5, 0), e3, e3])
    tgt = torch.stack([e3, e3, _unit(1, 0, 0, 0), _unit(0, 1, 0, 0), e3, e3])
    # cos(target 8, source 7) = 0.9 > cos(target 9, source 6) = 0.8 > the two zero pairs
    plain, plain_alphas = refinement_mapper(source, target, 6)
    assert plain.tolist()[:5] == [0, 1, -1, -1, 4] and plain_alphas.tolist()[:5] == [1, 1, 0, 0, 1]
    one, one_alphas = refinement_mapper(source, target, 6, gap_fill="cosine", source_states=src, target_states=tgt)
    assert one.tolist() == [0, 1, 3, -1, 4, 5] and one_alphas.tolist() == [1, 1, 1, 0, 1, 1]  # one pair per run
    every, every_alphas = refinement_mapper(source, target, 6, gap_fill="cosine", source_states=src,
                                            target_states=tgt, per_token=True)
    assert every.tolist() == [0, 1, 3, 2, 4, 5] and every_alphas.tolist() == [1] * 6
    # the authors' indexing compares source states at the target position with target states at the source one:
    # (t=3, s=2) scores cos(src[3], tgt[2]) = 0.9, the best
    code, code_alphas = refinement_mapper(source, target, 6, gap_fill="cosine_code", source_states=src,
                                          target_states=tgt)
    assert code.tolist() == [0, 1, -1, 2, 4, 5] and code_alphas.tolist() == [1, 1, 0, 1, 1, 1]
    # an insertion with no source token in its gap stays new
    ins, ins_alphas = refinement_mapper([BOS, 5, EOS], [BOS, 5, 8, EOS], 6, gap_fill="cosine",
                                        source_states=src, target_states=tgt)
    assert ins.tolist()[:4] == [0, 1, -1, 2] and ins_alphas.tolist()[:4] == [1, 1, 0, 1]


def _hand(length, ones=(), halves=()):
    m = torch.zeros(length, length)
    for i, j in ones:
        m[i, j] = 1.0
    for i, j in halves:
        m[i, j] = 0.5
    return m


def test_replacement_mapper_hand_matrices():
    # "x y z" -> "x [u v] z": y's map is spread over u and v, z and the tail shift by one
    got = replacement_mapper([[5], [6], [7]], [[5], [8, 9], [7]], length=8)
    want = _hand(8, ones=[(0, 0), (1, 1), (3, 4), (4, 5), (5, 6), (6, 7)], halves=[(2, 2), (2, 3)])
    torch.testing.assert_close(got, want)
    assert got[:7].sum(1).tolist() == [1.0] * 7  # each source token's mass is kept (the last padding falls off)
    # "x [u v] z" -> "x y z": both source tokens feed y; the target's last padding position maps to itself
    got = replacement_mapper([[5], [8, 9], [7]], [[5], [6], [7]], length=8)
    want = _hand(8, ones=[(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (7, 7)])
    torch.testing.assert_close(got, want)
    # equal token counts map token to token, swapped or not: the identity
    torch.testing.assert_close(replacement_mapper([[5], [8, 9]], [[5], [10, 11]], length=6), torch.eye(6))
    # no special prefix, a three-token word for one
    # (target positions 3, 4 have no source left: they map to themselves)
    got = replacement_mapper([[4, 5, 6], [7]], [[8], [7]], length=5, prefix=0)
    torch.testing.assert_close(got, _hand(5, ones=[(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (3, 3), (4, 4)]))


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    from kit.diffusion.text import build_tokenizer

    return build_tokenizer(["a", "big", "red", "blue", "circle", "square"], max_length=8)


def test_tokenizer_helpers_and_prompt_mappers(tokenizer):
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in ("a", "big", "red", "blue", "circle", ",")}
    assert prompt_token_ids(tokenizer, "a red circle") == [BOS, ids["a"], ids["red"], ids["circle"], EOS]
    words, prefix = word_token_ids(tokenizer, "a red, circle")
    assert words == [[ids["a"]], [ids["red"], ids[","]], [ids["circle"]]] and prefix == 1
    got = prompt_replacement_mapper(tokenizer, "a red, circle", "a blue circle")
    want = _hand(8, ones=[(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (7, 7)])
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(prompt_replacement_mapper(tokenizer, "a red circle", "a blue circle"), torch.eye(8))
    mapper, alphas = prompt_refinement_mapper(tokenizer, "a red circle", "a big red circle")
    assert mapper.tolist() == [0, 1, -1, 2, 3, 4, 6, 7] and alphas.tolist() == [1, 1, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="max_length"):
        prompt_token_ids(tokenizer, "a big red circle a big red circle")
    with pytest.raises(ValueError, match="same number of words"):
        prompt_replacement_mapper(tokenizer, "a red circle", "a big red circle")


def test_prompt_refinement_cosine_fill_turns_a_swap_into_a_copy(tokenizer):
    from kit.diffusion.text import build_text_encoder, tiny_text_config

    torch.manual_seed(0)
    enc = build_text_encoder(tiny_text_config(len(tokenizer), hidden_size=16, layers=1, heads=2, max_length=8))
    plain, plain_alphas = prompt_refinement_mapper(tokenizer, "a red circle", "a blue circle")
    assert plain.tolist()[:5] == [0, 1, -1, 3, 4] and plain_alphas.tolist()[2] == 0
    mapper, alphas = prompt_refinement_mapper(tokenizer, "a red circle", "a blue circle", gap_fill="cosine",
                                              text_encoder=enc)
    assert mapper.tolist() == list(range(8)) and alphas.tolist() == [1.0] * 8  # blue copies red, the only candidate
    with pytest.raises(ValueError, match="text_encoder"):
        prompt_refinement_mapper(tokenizer, "a red circle", "a blue circle", gap_fill="cosine")


def test_bad_arguments_raise():
    states = torch.zeros(6, 4)
    cases = [
        (lambda: global_align("abc", [1]), "source"),
        (lambda: global_align([1], [1.5]), "target"),
        (lambda: global_align([1], [1], gap="0"), "gap"),
        (lambda: refinement_mapper([2, 5, 3], [2, 5, 6, 7, 3], length=4), "target_ids"),
        (lambda: refinement_mapper([], [2, 3], length=4), "source_ids"),
        (lambda: refinement_mapper([2, 3], [2, 3], length=0), "length"),
        (lambda: refinement_mapper([2, 3], [2, 3], length=4, gap_fill="nearest"), "gap_fill"),
        (lambda: refinement_mapper([2, 3], [2, 3], length=4, gap_fill="cosine"), "source_states"),
        (lambda: refinement_mapper([2, 5, 3], [2, 6, 3], length=6, gap_fill="cosine", source_states=states[:2],
                                   target_states=states), "source_states"),
        (lambda: refinement_mapper(torch.zeros(2, 2, dtype=torch.long), [2, 3], length=4), "1-d"),
        (lambda: replacement_mapper([[5], [6]], [[5]], length=6), "same number of words"),
        (lambda: replacement_mapper([[5], []], [[5], [6]], length=6), "no tokens"),
        (lambda: replacement_mapper([[5, 6, 7, 8, 9]], [[5]], length=5), "length"),
        (lambda: replacement_mapper([[5]], [[6]], length=5, prefix=-1), "prefix"),
        (lambda: replacement_mapper("ab", [[6]], length=5), "source_words"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()
