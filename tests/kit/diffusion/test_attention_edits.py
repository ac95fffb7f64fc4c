"""Attention control on a tiny random UNet2DConditionModel: the ``with`` form and its restore, Q/K/V edits against
hand-computed attention (and on the fused SDPA path), self-attention injection checked through forward hooks,
RestrictEdit / ComposeEdits / step windows, the token-mapped cross-attention edits against hand loops, identity
edits through the text-to-image pipeline, and bad arguments."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from kit.diffusion.attention import (  # noqa: E402
    AttentionStore,
    RecordingAttnProcessor,
    ReplaceCrossAttention,
    ReweightTokens,
    attention_control,
    find_attention_store,
    register_attention_store,
)
from kit.diffusion.attention_edits import (  # noqa: E402
    ComposeEdits,
    InjectSelfAttention,
    RefineCrossAttention,
    RestrictEdit,
    WordSwapCrossAttention,
    step_window,
)

torch.set_num_threads(1)

K_TOKENS = 6
SELF = "down_blocks.1.attentions.0.transformer_blocks.0.attn1"  # 8x8: Q = 64


def _inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 16, 16, generator=g), torch.randn(batch, K_TOKENS, 32, generator=g)


def _run(unet, x, ctx, t=50):
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=ctx).sample


def _self_layers(unet):
    return [n for n, _ in unet.named_modules() if n.endswith("attn1")]


class _Outputs:
    """Forward hooks keeping every call's input hidden states and output of the named attention modules."""

    def __init__(self, unet, names):
        self.inputs: dict[str, list] = {n: [] for n in names}
        self.outputs: dict[str, list] = {n: [] for n in names}
        self.handles = []
        for n in names:
            m = unet.get_submodule(n)
            self.handles.append(m.register_forward_pre_hook(
                lambda mod, args, kw, n=n: self.inputs[n].append((args[0] if args else kw["hidden_states"]).detach()),
                with_kwargs=True))
            self.handles.append(m.register_forward_hook(lambda mod, a, out, n=n: self.outputs[n].append(out.detach())))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _hand_attention(module, h_q, h_kv):
    """The attention module's output for query states h_q [N, C] and key/value states h_kv [M, C], by hand."""
    heads = module.heads
    q = module.to_q(h_q).unflatten(-1, (heads, -1)).transpose(0, 1)
    k = module.to_k(h_kv).unflatten(-1, (heads, -1)).transpose(0, 1)
    v = module.to_v(h_kv).unflatten(-1, (heads, -1)).transpose(0, 1)
    p = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    return module.to_out[0]((p @ v).transpose(0, 1).flatten(-2))


# ------------------------------------------------------------------------------------------ the with form


def test_attention_control_yields_store_restores_after_exceptions_and_refuses_nesting(unet):
    before = dict(unet.attn_processors)
    x, ctx = _inputs()
    with attention_control(unet) as store:
        assert isinstance(store, AttentionStore) and find_attention_store(unet) is store
        _run(unet, x, ctx)
        with pytest.raises(ValueError, match="nested"), attention_control(unet):
            pass
        assert find_attention_store(unet) is store  # the refused inner block did not restore the outer one
    assert store.steps == [0] and store.layers
    mine = AttentionStore(record_self=True)
    with pytest.raises(RuntimeError, match="boom"), attention_control(unet, mine) as got:
        assert got is mine
        raise RuntimeError("boom")

    def failing(probs, name, is_cross, step):
        raise RuntimeError("edit failed")

    with pytest.raises(RuntimeError, match="edit failed"), attention_control(unet, edit=failing):
        _run(unet, x, ctx)
    after = unet.attn_processors
    assert set(after) == set(before) and all(after[k] is before[k] for k in before)
    assert find_attention_store(unet) is None
    _run(unet, x, ctx)
    assert store.step == 0  # the step hook is gone
    restore = register_attention_store(unet, AttentionStore())
    try:
        with pytest.raises(ValueError, match="nested"), attention_control(unet):
            pass
    finally:
        restore()
    with pytest.raises(ValueError, match="store"), attention_control(unet, store="maps"):
        pass
    with pytest.raises(ValueError, match="edit"), attention_control(unet, edit=object()):
        pass
    assert find_attention_store(unet) is None


def test_record_cross_false_records_nothing_and_keeps_the_fused_path(unet, monkeypatch):
    x, ctx = _inputs()
    ref = _run(unet, x, ctx)

    def no_probs(*args, **kw):
        raise AssertionError("explicit probabilities were computed")

    monkeypatch.setattr(RecordingAttnProcessor, "_probs", staticmethod(no_probs))
    with attention_control(unet, AttentionStore(record_cross=False)) as store:
        out = _run(unet, x, ctx)
    assert store.steps == [] and not store.skipped
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


# ------------------------------------------------------------------------------------------ Q/K/V edits


class _ScaleQuery:
    """Q/K/V edit: multiply the queries of one layer by ``factor`` (no probability edit)."""

    edits_self = True

    def __init__(self, layer, factor):
        self.layer, self.factor = layer, factor

    def qkv(self, q, k, v, name, is_cross, step):
        return (q * self.factor, k, v) if name == self.layer else (q, k, v)


def test_qkv_edit_matches_hand_attention_on_the_sdpa_path(unet, monkeypatch):
    x, ctx = _inputs()
    ref = _run(unet, x, ctx)
    calls = []
    real = RecordingAttnProcessor._probs

    def counting(attn, q, k, mask):
        calls.append(q.shape)
        return real(attn, q, k, mask)

    monkeypatch.setattr(RecordingAttnProcessor, "_probs", staticmethod(counting))
    with _Outputs(unet, [SELF]) as hooks, attention_control(unet, AttentionStore(record_cross=False),
                                                            edit=_ScaleQuery(SELF, 3.0)):
        _run(unet, x, ctx)
    assert calls == []  # a Q/K/V edit alone needs no explicit probabilities
    module = unet.get_submodule(SELF)
    h, got = hooks.inputs[SELF][0], hooks.outputs[SELF][0]
    with torch.no_grad():
        for b in range(2):
            scaled = module.to_q(h[b]).mul(3.0)  # q of the edited layer, by hand: to_q is linear without bias
            heads = module.heads
            q = scaled.unflatten(-1, (heads, -1)).transpose(0, 1)
            k = module.to_k(h[b]).unflatten(-1, (heads, -1)).transpose(0, 1)
            v = module.to_v(h[b]).unflatten(-1, (heads, -1)).transpose(0, 1)
            p = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
            want = module.to_out[0]((p @ v).transpose(0, 1).flatten(-2))
            torch.testing.assert_close(got[b], want, rtol=1e-4, atol=1e-5)
            assert (got[b] - _hand_attention(module, h[b], h[b])).abs().max() > 1e-3  # the edit changed it
    identity = _ScaleQuery(SELF, 1.0)
    identity.qkv = lambda q, k, v, name, is_cross, step: (q, k, v)
    with attention_control(unet, AttentionStore(record_cross=False), edit=identity):
        out = _run(unet, x, ctx)
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert calls == []


@pytest.mark.parametrize("same_prompt", [True, False])
def test_inject_qkv_makes_target_self_attention_output_the_sources(unet, same_prompt):
    x, ctx = _inputs()  # two different latents
    if same_prompt:
        ctx = torch.cat([ctx[:1], ctx[:1]])
    names = _self_layers(unet)
    inside = [n for n in names if n.startswith("down_blocks.1.")]
    with _Outputs(unet, names) as hooks, attention_control(
            unet, AttentionStore(record_cross=False), InjectSelfAttention(0, 1, take="qkv", layers="down_blocks.1")):
        _run(unet, x, ctx)
    for n in names:
        out = hooks.outputs[n][0]
        if n in inside:
            torch.testing.assert_close(out[1], out[0], rtol=1e-5, atol=1e-6)
        else:
            assert (out[1] - out[0]).abs().max() > 1e-3, n
    # Q, K only: row 1's self-attention probabilities become row 0's, its values stay its own
    store = AttentionStore(record_self=True, record_cross=False, max_query_pixels=4096, average_heads=False,
                           store_dtype=torch.float32)
    with _Outputs(unet, [SELF]) as hooks, attention_control(unet, store, InjectSelfAttention(0, [1], take=("q", "k"))):
        _run(unet, x, ctx)
    for n in store.self_layers:
        p = store.attention(n, 0)
        torch.testing.assert_close(p[1], p[0], rtol=1e-5, atol=1e-6)
    module, h = unet.get_submodule(SELF), hooks.inputs[SELF][0]
    with torch.no_grad():
        heads = module.heads
        v1 = module.to_v(h[1]).unflatten(-1, (heads, -1)).transpose(0, 1)
        want = module.to_out[0]((store.attention(SELF, 0)[0] @ v1).transpose(0, 1).flatten(-2))
    torch.testing.assert_close(hooks.outputs[SELF][0][1], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("include_uncond", [True, False])
def test_inject_guided_halves_and_step_window(unet, include_uncond):
    x, ctx = _inputs(4, seed=1)  # UNet batch [u0, u1, c0, c1]
    edit = InjectSelfAttention(0, 1, take="qkv", steps=(1, 2), include_uncond=include_uncond)
    with _Outputs(unet, [SELF]) as hooks, attention_control(unet, AttentionStore(record_cross=False), edit) as store:
        store.begin(batch_size=2, guided=True)
        for _ in range(3):
            _run(unet, x, ctx)
    for step, out in enumerate(hooks.outputs[SELF]):
        cond_equal = torch.allclose(out[3], out[2], rtol=1e-5, atol=1e-6)
        uncond_equal = torch.allclose(out[1], out[0], rtol=1e-5, atol=1e-6)
        assert cond_equal == (step == 1)
        assert uncond_equal == (step == 1 and include_uncond)
    fractions = InjectSelfAttention(0, 1, "qkv", steps=(0.0, 0.5), total_steps=4)
    assert [fractions.active(SELF, False, s) for s in range(4)] == [True, True, False, False]
    assert not fractions.active(SELF.replace("attn1", "attn2"), True, 0)  # self-attention only


def test_parallel_edits_branch_wiring_in_one_batched_pass(unet):
    """Rows (src, t1, m1): before the switch t1 takes src's Q, K and m1 all of src's Q, K, V; after it m1 takes
    t1's Q and src's K, V (ParallelEdits' mutual self-attention). Checked against hand attention per row."""
    x, ctx = _inputs(3, seed=2)
    before = InjectSelfAttention([0, 0], [1, 2], take=["qk", "qkv"], steps=(0, 1))
    after = InjectSelfAttention([1, 0], [2, 2], take=["q", "kv"], steps=(1, None))
    module = unet.get_submodule(SELF)
    with _Outputs(unet, [SELF]) as hooks, attention_control(unet, AttentionStore(record_cross=False),
                                                            ComposeEdits([before, after])):
        _run(unet, x, ctx)
        _run(unet, x, ctx)

    def hand(hq, hk, hv):
        heads = module.heads
        q = module.to_q(hq).unflatten(-1, (heads, -1)).transpose(0, 1)
        k = module.to_k(hk).unflatten(-1, (heads, -1)).transpose(0, 1)
        v = module.to_v(hv).unflatten(-1, (heads, -1)).transpose(0, 1)
        p = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        return module.to_out[0]((p @ v).transpose(0, 1).flatten(-2))

    with torch.no_grad():
        for step, (h, out) in enumerate(zip(hooks.inputs[SELF], hooks.outputs[SELF])):
            src, t1, m1 = h
            wants = ([hand(src, src, src), hand(src, src, t1), hand(src, src, src)] if step == 0
                     else [hand(src, src, src), hand(t1, t1, t1), hand(t1, src, src)])
            for row, want in enumerate(wants):
                torch.testing.assert_close(out[row], want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ filters, composition


class _Spy:
    """Edit recording every call it receives; probabilities times 2, queries plus 1."""

    def __init__(self, edits_self=False, edits_uncond=False):
        self.edits_self, self.edits_uncond = edits_self, edits_uncond
        self.calls, self.qkv_calls = [], []

    def __call__(self, probs, name, is_cross, step):
        self.calls.append((name, is_cross, step))
        return probs * 2

    def qkv(self, q, k, v, name, is_cross, step, uncond=False):
        self.qkv_calls.append((name, is_cross, step, uncond))
        return q + 1, k, v


def test_step_window():
    assert step_window(None) is None
    assert step_window(0.7, 10) == (0, 7) and step_window((0.0, 0.7), 15) == (0, 10)
    assert step_window((0.3, 0.7), 10) == (3, 7) and step_window((0.0, 0.29), 100) == (0, 29)
    assert step_window(3) == (0, 3) and step_window((2, None)) == (2, None) and step_window([1, 4]) == (1, 4)
    for bad, match in (((0, 0.7), "mixes"), ((0.0, 0.7), "total_steps"), ((0.8, 0.2), "start <= stop"),
                       ((3, 1), "start <= stop"), ((True, 2), "ints"), ((1, 2, 3), "pair"), ("ab", "ints")):
        with pytest.raises(ValueError, match=match):
            step_window(bad, None if bad != (0.8, 0.2) else 10)


def test_restrict_edit_passes_only_the_chosen_layers_kinds_and_steps(unet, monkeypatch):
    probs, q = torch.rand(2, 2, 4, K_TOKENS), torch.randn(2, 2, 4, 3)
    spy = _Spy(edits_self=True)
    edit = RestrictEdit(spy, layers=["down_blocks.1", "*up_blocks.0.*attn2"], attention="cross", steps=(0.25, 0.75),
                        total_steps=4)
    cross_in = "down_blocks.1.attentions.0.transformer_blocks.0.attn2"
    torch.testing.assert_close(edit(probs, cross_in, True, 1), probs * 2)
    torch.testing.assert_close(edit(probs, "up_blocks.0.attentions.2.transformer_blocks.0.attn2", True, 2), probs * 2)
    for name, is_cross, step in ((cross_in, True, 0), (cross_in, True, 3), (SELF, False, 1),
                                 ("down_blocks.10.attentions.0.transformer_blocks.0.attn2", True, 1),
                                 ("up_blocks.1.attentions.0.transformer_blocks.0.attn2", True, 1)):
        assert edit(probs, name, is_cross, step) is probs
        assert not edit.needs_probs(name, is_cross, step)
        got = edit.qkv(q, q, q, name, is_cross, step)
        assert all(g is q for g in got)
    assert not edit.edits_self and RestrictEdit(spy).edits_self and not RestrictEdit(_Spy()).edits_self
    assert RestrictEdit(spy, attention="self").qkv(q, q, q, SELF, False, 0)[0].equal(q + 1)
    assert spy.calls == [(cross_in, True, 1), ("up_blocks.0.attentions.2.transformer_blocks.0.attn2", True, 2)]
    # on the UNet: only the asked layers and steps reach the edit, and only they compute explicit probabilities
    n_probs = []
    real = RecordingAttnProcessor._probs
    monkeypatch.setattr(RecordingAttnProcessor, "_probs",
                        staticmethod(lambda attn, q, k, mask: n_probs.append(1) or real(attn, q, k, mask)))
    spy = _Spy()
    x, ctx = _inputs()
    with attention_control(unet, AttentionStore(record_cross=False), RestrictEdit(spy, "up_blocks.1", steps=(1, 2))):
        for _ in range(3):
            _run(unet, x, ctx)
    want = sorted(n for n, _ in unet.named_modules() if n.startswith("up_blocks.1.") and n.endswith("attn2"))
    assert sorted(n for n, _, _ in spy.calls) == want and {(c, s) for _, c, s in spy.calls} == {(True, 1)}
    assert len(n_probs) == len(want)


def test_compose_edits_applies_parts_in_order_and_merges_flags():
    probs, q = torch.rand(2, 2, 4, K_TOKENS), torch.randn(2, 2, 4, 3)

    def double(p, *a):
        return p * 2

    def plus_one(p, *a):
        return p + 1

    torch.testing.assert_close(ComposeEdits([double, plus_one])(probs, "x", True, 0), probs * 2 + 1)
    torch.testing.assert_close(ComposeEdits([plus_one, double])(probs, "x", True, 0), (probs + 1) * 2)

    class Q:
        edits_self = True

        def __init__(self, f):
            self.f = f

        def qkv(self, q, k, v, *a):
            return self.f(q), k, v

    a, b = Q(lambda t: t * 2), Q(lambda t: t + 1)
    torch.testing.assert_close(ComposeEdits([a, b]).qkv(q, q, q, "x", False, 0)[0], q * 2 + 1)
    torch.testing.assert_close(ComposeEdits([b, a]).qkv(q, q, q, "x", False, 0)[0], (q + 1) * 2)
    mixed = ComposeEdits([double, a])
    assert mixed.edits_self and not mixed.edits_uncond
    assert mixed.needs_probs("x", True, 0) and not mixed.needs_probs("x", False, 0)
    assert mixed(probs, "x", False, 0) is probs  # the probability part edits cross-attention only
    uncond_spy, cond_spy = _Spy(edits_self=True, edits_uncond=True), _Spy(edits_self=True)
    both = ComposeEdits([cond_spy, uncond_spy])
    assert both.edits_uncond
    torch.testing.assert_close(both.qkv(q, q, q, "x", False, 3, uncond=True)[0], q + 1)
    assert cond_spy.qkv_calls == [] and uncond_spy.qkv_calls == [("x", False, 3, True)]
    restricted = ComposeEdits([RestrictEdit(double, steps=(0, 1)), plus_one])
    torch.testing.assert_close(restricted(probs, "x", True, 5), probs + 1)
    with pytest.raises(ValueError, match="edits"):
        ComposeEdits([])
    with pytest.raises(ValueError, match=r"edits\[1\]"):
        ComposeEdits([double, 3])
    with pytest.raises(ValueError, match=r"edits\[0\]"):
        ComposeEdits([lambda p, *a: p[:1]])(probs, "x", True, 0)


# ------------------------------------------------------------------------------------------ token-mapped cross edits


def test_refine_and_word_swap_against_hand_loops():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 2, 4, K_TOKENS, generator=g), -1)
    mapper = [0, 1, -1, 2, 3, 5]
    alphas = [1.0, 1.0, 0.0, 1.0, 0.5, 1.0]
    got = RefineCrossAttention(mapper, alphas, source_rows=[0, 1], target_rows=[1, 2])(probs, "x", True, 0)
    want = probs.clone()
    for s, t in ((0, 1), (1, 2)):  # both read the pre-edit rows
        for h in range(2):
            for qi in range(4):
                for n in range(K_TOKENS):
                    src = probs[s, h, qi, max(mapper[n], 0)]
                    want[t, h, qi, n] = alphas[n] * src + (1 - alphas[n]) * probs[t, h, qi, n]
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got[0], probs[0])
    swap = torch.zeros(K_TOKENS, K_TOKENS)
    swap[0, 0] = swap[1, 1] = swap[4, 4] = swap[5, 5] = 1.0
    swap[2, 2] = swap[2, 3] = 0.5  # one source token spread over two target tokens
    swap[3, 4] = 1.0
    per_target = torch.stack([swap, torch.eye(K_TOKENS)])
    got = WordSwapCrossAttention(per_target, source_rows=0, target_rows=[1, 2])(probs, "x", True, 0)
    want = probs.clone()
    for i, t in enumerate((1, 2)):
        for h in range(2):
            for qi in range(4):
                for n in range(K_TOKENS):
                    want[t, h, qi, n] = sum(probs[0, h, qi, w] * per_target[i, w, n] for w in range(K_TOKENS))
    torch.testing.assert_close(got, want)
    live = ReplaceCrossAttention(source_index=0, target_indices=[1, 2])(probs, "x", True, 0)
    torch.testing.assert_close(WordSwapCrossAttention(torch.eye(K_TOKENS), 0, [1, 2])(probs, "x", True, 0), live)
    torch.testing.assert_close(
        RefineCrossAttention(torch.arange(K_TOKENS), torch.ones(K_TOKENS), 0, [1, 2])(probs, "x", True, 0), live)
    assert RefineCrossAttention(mapper, alphas, 0, 1)(probs, "x", False, 0) is probs
    assert WordSwapCrossAttention(swap, 0, 1)(probs, "x", False, 0) is probs


def test_identity_edits_leave_the_pipeline_output_unchanged():
    pytest.importorskip("transformers")
    from kit.diffusion.t2i import TextToImagePipeline, build_unet
    from kit.diffusion.text import build_text_encoder, build_tokenizer, tiny_text_config

    length = 6
    tok = build_tokenizer(["a", "red", "blue", "circle"], max_length=length)
    torch.manual_seed(0)
    enc = build_text_encoder(tiny_text_config(len(tok), hidden_size=16, layers=1, heads=2, max_length=length)).eval()
    net = build_unet(sample_size=8, block_out_channels=(8, 16), cross_attention_dim=16, attention_head_dim=2).eval()
    with torch.no_grad():
        net.conv_out.weight.mul_(20.0)
    pipe = TextToImagePipeline(net, enc, tok, solver="dpmpp2m")

    def sample():
        return pipe(["a red circle", "a blue circle"], num_inference_steps=3, guidance_scale=[1.0, 3.0],
                    output_type="latent", generator=torch.Generator().manual_seed(0)).latents

    ref = sample()
    identity = ComposeEdits([
        InjectSelfAttention([0, 1], [0, 1], take="qkv"),
        RefineCrossAttention(torch.arange(length), torch.ones(length), [0, 1], [0, 1]),
        WordSwapCrossAttention(torch.eye(length), 0, 0),
        RestrictEdit(ReweightTokens([1], 3.0), layers="no_such_block", steps=(0.0, 1.0), total_steps=3),
        RestrictEdit(InjectSelfAttention(0, 1, "qkv"), steps=(3, None)),  # after the last step
    ])
    with attention_control(net, AttentionStore(record_self=True), identity) as store:
        out = sample()
    assert store.steps == [0, 1, 2] and store.guided
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    with attention_control(net, AttentionStore(record_cross=False), InjectSelfAttention(0, 1, "qkv")):
        moved = sample()  # nothing recorded: every layer on SDPA, as without control
    assert (moved[1] - ref[1]).abs().max() > 1e-3 * ref.abs().max()
    torch.testing.assert_close(moved[0], ref[0], rtol=0, atol=1e-6 * ref.abs().max())


# ------------------------------------------------------------------------------------------ bad arguments


def test_bad_arguments_raise():
    probs = torch.rand(2, 2, 4, K_TOKENS)
    q = torch.rand(2, 2, 4, 3)
    cases = [
        (lambda: InjectSelfAttention(0, 1, take="qx"), "take"),
        (lambda: InjectSelfAttention(0, 1, take=""), "take"),
        (lambda: InjectSelfAttention([0, 1, 2], [1, 2]), "source_rows"),
        (lambda: InjectSelfAttention(-1, 1), "source_rows"),
        (lambda: InjectSelfAttention(0, [1, 1], take=["qk", "kv"]), "target row 1"),
        (lambda: InjectSelfAttention(0, [1, 2], take=["qk", "kv", "q"]), "take"),
        (lambda: InjectSelfAttention(0, 1, layers=[]), "layers"),
        (lambda: InjectSelfAttention(0, 1, steps=(0.0, 0.5)), "total_steps"),
        (lambda: InjectSelfAttention(0, 3).qkv(q, q, q, SELF, False, 0), "target_rows"),
        (lambda: RestrictEdit(None), "edit"),
        (lambda: RestrictEdit(object()), "edit"),
        (lambda: RestrictEdit(lambda p, *a: p, attention="both"), "attention"),
        (lambda: RefineCrossAttention([0, 1, -1], [1, 1, 1], 0, 1), "alphas must be 0"),
        (lambda: RefineCrossAttention([0, 1, 9], [1, 1, 1], 0, 1), "mapper entries"),
        (lambda: RefineCrossAttention([0, 1, 2], [1, 1], 0, 1), "alphas"),
        (lambda: RefineCrossAttention([0, 1, 2], [1, 2, 1], 0, 1), r"\[0, 1\]"),
        (lambda: RefineCrossAttention([[0, 1, 2]] * 3, [[1, 1, 1]] * 3, 0, [1]), "one per target"),
        (lambda: RefineCrossAttention("map", [1.0], 0, 1), "mapper"),
        (lambda: RefineCrossAttention([0, 1, 2], [1, 1, 1], 0, 1)(probs, "x", True, 0), "attends to"),
        (lambda: RefineCrossAttention(torch.arange(K_TOKENS), torch.ones(K_TOKENS), 2, 1)(probs, "x", True, 0),
         "source_rows"),
        (lambda: WordSwapCrossAttention(torch.ones(3, 4), 0, 1), "square"),
        (lambda: WordSwapCrossAttention(torch.eye(3), 0, 1)(probs, "x", True, 0), "attends to"),
        (lambda: WordSwapCrossAttention(torch.eye(K_TOKENS), 0, 5)(probs, "x", True, 0), "target_rows"),
        (lambda: RecordingAttnProcessor(AttentionStore(), "x", edit=object()), "edit"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()


def test_qkv_edits_returning_wrong_shapes_raise(unet):
    class Bad:
        edits_self = True

        def qkv(self, q, k, v, *a):
            return q[:, :1], k, v

    x, ctx = _inputs()
    with pytest.raises(ValueError, match="qkv returned q"), attention_control(unet, edit=Bad()):
        _run(unet, x, ctx)
    assert find_attention_store(unet) is None
