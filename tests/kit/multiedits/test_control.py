"""Multi-branch attention control and local blending, checked against hand computations on the rows
[src, t_0, m_0, t_1, m_1]."""

from __future__ import annotations

import pytest
import torch

from kit.diffusion.attention import AttentionStore
from kit.diffusion.text import build_tokenizer
from kit.multiedits.control import (
    BranchMapper,
    LocalBlend,
    _early_self_steps,
    branch_attention_edit,
    branch_mappers,
    row_layout,
)

torch.set_num_threads(1)
L = 8
SELF, CROSS = "up_blocks.1.attentions.0.transformer_blocks.0.attn1", "up_blocks.1.attentions.0.transformer_blocks.0.attn2"


def test_row_layout_and_the_strict_self_attention_window():
    assert row_layout(3) == {"t": [1, 3, 5], "m": [2, 4, 6], "ref": [0, 1, 3]}
    with pytest.raises(ValueError, match="num_branches"):
        row_layout(0)
    for f in (0.0, 0.3, 0.5, 0.7, 1.0):
        for n in (1, 4, 10, 15, 20):
            assert _early_self_steps(f, n) == sum((i + 1) / n < f for i in range(n)), (f, n)


def _mappers():
    perm = torch.eye(L)[[0, 2, 1, 3, 4, 5, 6, 7]]  # a swap mapper that exchanges tokens 1 and 2
    mapper = torch.tensor([0, 1, -1, 2, 3, 4, 5, 6])  # refine: token 2 is new, later tokens shift by one
    alphas = (mapper >= 0).float()
    return [BranchMapper("swap", perm), BranchMapper("refine", mapper, alphas)]


def test_carry_is_the_swap_einsum_and_the_refinement_blend():
    swap, refine = _mappers()
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.rand(3, 5, L, generator=g), torch.rand(3, 5, L, generator=g)
    torch.testing.assert_close(swap.carry(src, tgt), src[..., [0, 2, 1, 3, 4, 5, 6, 7]])
    hand = tgt.clone()
    for n, s in enumerate(refine.mapper.tolist()):
        if s >= 0:
            hand[..., n] = src[..., s]
    torch.testing.assert_close(refine.carry(src, tgt), hand)


def test_self_attention_control_early_and_late_and_only_where_asked():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(5, 2, 6, 4, generator=g) for _ in range(3))
    edit = branch_attention_edit(_mappers(), [True, True], total_steps=10, self_replace=0.5)
    # early (steps 0..3: (i + 1) / 10 < 0.5): t_k takes its reference's Q, K; m_k takes its reference's Q, K, V
    eq, ek, ev = edit.qkv(q, k, v, SELF, False, 0)
    for t, m, ref in ((1, 2, 0), (3, 4, 1)):
        assert torch.equal(eq[t], q[ref]) and torch.equal(ek[t], k[ref]) and torch.equal(ev[t], v[t])
        assert torch.equal(eq[m], q[ref]) and torch.equal(ek[m], k[ref]) and torch.equal(ev[m], v[ref])
    assert torch.equal(eq[0], q[0]) and torch.equal(ev[0], v[0])
    # late (step 4 on): t_k is free; m_k takes t_k's Q and its reference's K, V
    lq, lk, lv = edit.qkv(q, k, v, SELF, False, 4)
    for t, m, ref in ((1, 2, 0), (3, 4, 1)):
        assert torch.equal(lq[t], q[t]) and torch.equal(lk[t], k[t]) and torch.equal(lv[t], v[t])
        assert torch.equal(lq[m], q[t]) and torch.equal(lk[m], k[ref]) and torch.equal(lv[m], v[ref])
    # the unconditional half is edited the same way (the authors' code edits both halves)
    uq, _, _ = edit.qkv(q, k, v, SELF, False, 0, uncond=True)
    assert torch.equal(uq, eq)
    only_second = branch_attention_edit(_mappers(), [False, True], total_steps=10, self_replace=0.5)
    oq, ok, ov = only_second.qkv(q, k, v, SELF, False, 0)
    assert all(torch.equal(a[r], b[r]) for a, b in ((oq, q), (ok, k), (ov, v)) for r in (1, 2))
    assert torch.equal(oq[3], q[1]) and torch.equal(ov[4], v[1])


def test_cross_attention_control_maps_each_branch_from_its_reference_inside_the_window():
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax(torch.randn(5, 2, 6, L, generator=g), dim=-1)
    swap, refine = _mappers()
    edit = branch_attention_edit([swap, refine], [False, False], total_steps=10, cross_replace=0.7)
    out = edit(probs, CROSS, True, 6)  # (6 + 1) / 10 <= 0.7: inside
    torch.testing.assert_close(out[1], swap.carry(probs[0], probs[1]))
    torch.testing.assert_close(out[3], refine.carry(probs[1], probs[3]))  # from t_0's own (pre-edit) maps
    for r in (0, 2, 4):
        assert torch.equal(out[r], probs[r])  # source and mutual rows keep their maps
    assert torch.equal(edit(probs, CROSS, True, 7), probs)  # (7 + 1) / 10 > 0.7: outside
    assert torch.equal(edit(probs, SELF, False, 0), probs)


def test_branch_mappers_choose_swap_for_rigid_equal_length_branches():
    tok = build_tokenizer(["a", "red", "blue", "big", "circle", "square"], max_length=L)
    prompts = ["a red circle", "a blue circle", "a big blue circle", "a big blue square"]
    kinds = [m.kind for m in branch_mappers(tok, prompts, [True, True, False], gap_fill="none")]
    assert kinds == ["swap", "refine", "refine"]  # rigid but "a blue circle" -> "a big blue circle" adds a word
    with pytest.raises(ValueError, match="rigid flags"):
        branch_mappers(tok, prompts, [True])


def _blend_setup(n_steps=3):
    tok = build_tokenizer(["a", "red", "blue", "circle", "square"], max_length=L)
    prompts = ["a red circle", "a blue circle", "a blue square"]
    mappers = branch_mappers(tok, prompts, [True, True], gap_fill="none")
    store = AttentionStore()
    store.begin(batch_size=5)
    g = torch.Generator().manual_seed(3)
    for _ in range(n_steps):
        store.next_step()
        p = torch.rand(5, 1, 16, L, generator=g) * 0.1
        p[2, 0, :, 3] = 0.0
        p[2, 0, [0, 1, 4, 5], 3] = torch.tensor([1.0, 0.6, 0.8, 0.4])  # m_0's "circle": the top-left corner
        p[3, 0, :, 3] = torch.linspace(0, 1, 16)  # t_1's "square" (its own map: word swapped)
        store.record(CROSS, p, True)
        store.record("mid_block.attentions.0.transformer_blocks.0.attn2", p[..., :4, :], True)
    abar = torch.tensor([0.02, 0.3, 0.8, 1.0])
    return store, tok, prompts, mappers, abar


def test_local_blend_keeps_the_edit_inside_the_mask_and_the_mutual_row_outside():
    store, tok, prompts, mappers, abar = _blend_setup()
    blend = LocalBlend(store, tok, prompts, mappers, abar, [["circle"], ["square"]])
    x = torch.arange(4 * 1 * 4 * 4, dtype=torch.float32).reshape(4, 1, 4, 4)
    src = torch.full((1, 1, 4, 4), -1.0)
    first = blend(0, x, src)
    assert torch.equal(first, x) and not blend.masks[0][0].any()  # nothing is blended at the first step
    out = blend(1, x, src)
    theta = max(0.15 / 0.3 ** 0.5, 0.5)
    # branch 0's map: the summed "circle" maps of m_0 carried through the swap mapper, normalised by their maximum
    expect = torch.zeros(16)
    expect[[0, 1, 4, 5]] = torch.tensor([1.0, 0.6, 0.8, 0.4])
    mask0 = (expect.reshape(4, 4) > theta)
    assert torch.equal(blend.masks[0][-1], mask0) and blend.masks[0][-1].dtype == torch.bool
    torch.testing.assert_close(out[0], torch.where(mask0, x[0], x[1]))
    mask1 = blend.masks[1][-1]
    torch.testing.assert_close(out[2], torch.where(mask1, x[2], x[3]))
    assert torch.equal(out[1], x[1]) and torch.equal(out[3], x[3])  # mutual rows are never blended
    maps = blend.maps[1][-1].float()
    assert float(maps.max()) == pytest.approx(1.0, abs=1e-3)
    masks = [maps > th for th in (0.2, 0.4, 0.6, 0.8)]  # binary and monotone in the threshold
    assert all(bool((b & ~a).sum() == 0) for a, b in zip(masks, masks[1:]))
    assert [int(m.sum()) for m in masks] == sorted([int(m.sum()) for m in masks], reverse=True)


def test_local_blend_skips_branches_without_words_and_preserves_words_from_the_reference():
    store, tok, prompts, mappers, abar = _blend_setup()
    blend = LocalBlend(store, tok, prompts, mappers, abar, [[], ["square"]], preserve_words=[[], ["blue"]],
                       thresh_m=0.1)
    x = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    src = torch.zeros(1, 1, 4, 4)
    blend(0, x, src)
    out = blend(1, x, src)
    assert torch.equal(out[0], x[0])  # branch 0 has no blend word (a global branch): untouched
    assert blend.masks[0][-1].sum() == 0
    changed = ~torch.isclose(out[2], torch.where(blend.masks[1][-1], x[2], x[3]))
    assert changed.any()  # where the preserved word lies, t_1 takes its reference's (t_0's) new latent
    assert torch.equal(out[2][changed], x[0][changed])
    with pytest.raises(ValueError, match="need 3 prompts"):
        LocalBlend(store, tok, prompts[:2], mappers, abar, [[], []])
