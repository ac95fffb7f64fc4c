"""Attention recording and editing on a tiny random UNet2DConditionModel: probabilities against a hand-computed
softmax, outputs against diffusers' default processors, edits, restore, step counting and the memory bound."""

import pytest
import torch
import torch.nn.functional as F

diffusers = pytest.importorskip("diffusers")

from kit.diffusion.attention import (  # noqa: E402
    AttentionStore,
    RecordingAttnProcessor,
    ReplaceCrossAttention,
    ReweightTokens,
    find_attention_store,
    register_attention_store,
)

torch.set_num_threads(1)

K_TOKENS = 6  # text length


def _inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 16, 16, generator=g), torch.randn(batch, K_TOKENS, 32, generator=g)


def _run(unet, x, ctx, t=50):
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=ctx).sample


def _registered(unet, store, edit=None):
    restore = register_attention_store(unet, store, edit)
    return restore


def test_recorded_probs_match_hand_softmax_and_sum_to_one(unet):
    x, ctx = _inputs()
    name = "down_blocks.1.attentions.0.transformer_blocks.0.attn2"
    module = unet.get_submodule(name)
    captured = {}

    def grab(m, args, kw):
        captured.setdefault("h", args[0] if args else kw["hidden_states"])

    hook = module.register_forward_pre_hook(grab, with_kwargs=True)
    store = AttentionStore(average_heads=False, store_dtype=torch.float32)
    restore = _registered(unet, store)
    try:
        _run(unet, x, ctx)
    finally:
        restore()
        hook.remove()
    got = store.attention(name, 0)
    h = captured["h"]  # [B, Q, C] entering attn2 (after its norm)
    heads = module.heads
    q = module.to_q(h).unflatten(-1, (heads, -1)).transpose(1, 2)
    k = module.to_k(ctx).unflatten(-1, (heads, -1)).transpose(1, 2)
    d = q.shape[-1]
    want = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    assert got.shape == (2, heads, 64, K_TOKENS)
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)
    half = AttentionStore()  # float16, head-averaged
    restore = _registered(unet, half)
    try:
        _run(unet, x, ctx)
    finally:
        restore()
    p = half.attention(name, 0)
    assert p.dtype == torch.float16 and p.shape == (2, 1, 64, K_TOKENS)
    torch.testing.assert_close(p.float().sum(-1), torch.ones(2, 1, 64), rtol=0, atol=2e-3)
    torch.testing.assert_close(p.float(), want.mean(1, keepdim=True).detach(), rtol=0, atol=1e-3)


def test_output_equals_default_processors_and_identity_edits(unet):
    x, ctx = _inputs()
    ref = _run(unet, x, ctx)
    for edit in (None, lambda p, name, is_cross, step: p, ReweightTokens([1, 2], 1.0)):
        store = AttentionStore(record_self=True, max_query_pixels=4096)
        restore = _registered(unet, store, edit)
        try:
            out = _run(unet, x, ctx)
        finally:
            restore()
        assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()  # float32 round-off (outputs are ~3)
        assert store.self_layers and store.layers


def test_reweight_changes_output_and_scales_columns_without_renormalising(unet):
    probs = torch.softmax(torch.randn(2, 3, 5, K_TOKENS), -1)
    edit = ReweightTokens([1, 4], 2.0, batch_indices=[1])
    got = edit(probs, "x", True, 0)
    want = probs.clone()
    want[1, :, :, 1] *= 2.0
    want[1, :, :, 4] *= 2.0
    torch.testing.assert_close(got, want)
    assert torch.equal(edit(probs, "x", False, 0), probs)  # self-attention untouched
    x, ctx = _inputs()
    ref = _run(unet, x, ctx)
    restore = _registered(unet, AttentionStore(), ReweightTokens([2], 3.0))
    try:
        out = _run(unet, x, ctx)
    finally:
        restore()
    assert (out - ref).abs().max() > 1e-3
    with pytest.raises(ValueError, match="token_indices"):
        ReweightTokens([K_TOKENS], 2.0)(probs, "x", True, 0)
    with pytest.raises(ValueError, match="scale"):
        ReweightTokens([0], float("nan"))


def test_restore_puts_processors_back_and_removes_step_hook(unet):
    before = dict(unet.attn_processors)
    store = AttentionStore()
    restore = _registered(unet, store)
    assert all(isinstance(p, RecordingAttnProcessor) for p in unet.attn_processors.values())
    assert find_attention_store(unet) is store
    with pytest.raises(ValueError, match="already registered"):
        register_attention_store(unet, AttentionStore())
    x, ctx = _inputs(1)
    for _ in range(3):
        _run(unet, x, ctx)
    assert store.steps == [0, 1, 2] and store.step == 2
    restore()
    after = unet.attn_processors
    assert set(after) == set(before) and all(after[k] is before[k] for k in before)
    assert find_attention_store(unet) is None
    _run(unet, x, ctx)
    assert store.step == 2


def test_memory_bound_skips_large_layers_and_nbytes(unet):
    store = AttentionStore(max_query_pixels=100)
    restore = _registered(unet, store)
    x, ctx = _inputs()
    try:
        _run(unet, x, ctx)
        _run(unet, x, ctx)
    finally:
        restore()
    assert store.layers and all(store.attention(n, 0).shape[2] == 64 for n in store.layers)
    assert store.skipped and all("down_blocks.0" in n or "up_blocks.1" in n for n in store.skipped)
    n_layers = len(store.layers)
    assert store.nbytes == 2 * n_layers * (2 * 1 * 64 * K_TOKENS) * 2  # steps x layers x numel x fp16
    assert store.layers_at(8) == store.layers and store.layers_at(16) == []
    store.reset()
    assert store.nbytes == 0 and store.steps == [] and store.step == -1


def test_maps_average_steps_layers_and_resize(unet):
    store = AttentionStore(max_query_pixels=256)
    restore = _registered(unet, store)
    try:
        for seed in (0, 1):
            x, ctx = _inputs(seed=seed)
            _run(unet, x, ctx)
    finally:
        restore()
    small, big = store.layers_at(8)[0], store.layers_at(16)[0]
    m = store.maps(3, layers=[small], batch_index=1)
    want = sum(store.attention(small, s)[1, 0, :, 3].float().reshape(8, 8) for s in (0, 1)) / 2
    assert m.shape == (8, 8)
    torch.testing.assert_close(m, want)
    both = store.maps([2, 3], step=1, layers=[small, big])
    a = store.attention(small, 1)[0, 0, :, 2:4].float().mean(-1).reshape(1, 1, 8, 8)
    b = store.attention(big, 1)[0, 0, :, 2:4].float().mean(-1).reshape(16, 16)
    want = (F.interpolate(a, size=(16, 16), mode="bilinear", align_corners=False)[0, 0] + b) / 2
    assert both.shape == (16, 16)
    torch.testing.assert_close(both, want)
    assert store.maps(0, resolution=(4, 6)).shape == (4, 6)
    with pytest.raises(ValueError, match="token_index"):
        store.maps(K_TOKENS)
    with pytest.raises(ValueError, match="batch_index"):
        store.maps(0, batch_index=2)
    with pytest.raises(ValueError, match="step"):
        store.maps(0, step=5)


def test_guided_layout_records_conditional_rows_only(unet):
    x, ctx = _inputs(2)  # row 0 plays the unconditional half, row 1 the conditional one
    full = AttentionStore()
    restore = _registered(unet, full)
    try:
        _run(unet, x, ctx)
    finally:
        restore()
    cond = AttentionStore()
    restore = _registered(unet, cond)
    cond.begin(batch_size=1, guided=True)
    try:
        _run(unet, x, ctx)
        name = cond.layers[0]
        assert cond.attention(name, 0).shape[0] == 1
        torch.testing.assert_close(cond.attention(name, 0)[0], full.attention(name, 0)[1])
        with pytest.raises(ValueError, match="rows"):
            _run(unet, torch.cat([x, x]), torch.cat([ctx, ctx]))
    finally:
        restore()


def test_replace_cross_attention_live_and_stored(unet):
    probs = torch.softmax(torch.randn(3, 2, 4, K_TOKENS), -1)
    got = ReplaceCrossAttention(source_index=0, token_indices=[1, 2])(probs, "x", True, 0)
    want = probs.clone()
    want[1:, :, :, 1:3] = probs[0, :, :, 1:3]
    torch.testing.assert_close(got, want)
    assert torch.equal(ReplaceCrossAttention(until_step=2)(probs, "x", True, 2), probs)
    assert torch.equal(ReplaceCrossAttention()(probs, "x", False, 0), probs)
    # stored source: replaying a prompt's own exact maps leaves its output unchanged; another prompt changes
    x, ctx_a = _inputs(1, seed=0)
    _, ctx_b = _inputs(1, seed=1)
    source = AttentionStore(average_heads=False, store_dtype=torch.float32, max_query_pixels=4096)
    restore = _registered(unet, source)
    try:
        ref_a = _run(unet, x, ctx_a)
    finally:
        restore()
    ref_b = _run(unet, x, ctx_b)
    for ctx, ref, same in ((ctx_a, ref_a, True), (ctx_b, ref_b, False)):
        restore = _registered(unet, AttentionStore(), ReplaceCrossAttention(source))
        try:
            out = _run(unet, x, ctx)
        finally:
            restore()
        if same:
            assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
        else:
            assert (out - ref).abs().max() > 1e-4
    with pytest.raises(ValueError, match="source"):
        ReplaceCrossAttention(source="maps")


def test_pipeline_tells_the_store_steps_and_rows():
    pytest.importorskip("transformers")
    from kit.diffusion.t2i import TextToImagePipeline, build_unet
    from kit.diffusion.text import build_text_encoder, build_tokenizer, tiny_text_config

    tok = build_tokenizer(["a", "red", "circle"], max_length=6)
    torch.manual_seed(0)
    enc = build_text_encoder(tiny_text_config(len(tok), hidden_size=16, layers=1, heads=2, max_length=6)).eval()
    net = build_unet(sample_size=8, block_out_channels=(8, 16), cross_attention_dim=16, attention_head_dim=2).eval()
    pipe = TextToImagePipeline(net, enc, tok, solver="dpmpp2m")
    store = AttentionStore()
    restore = register_attention_store(net, store)
    try:
        pipe(["a red circle", "a circle"], num_inference_steps=3, guidance_scale=2.0, output_type="pt",
             generator=torch.Generator().manual_seed(0))
    finally:
        restore()
    assert store.steps == [0, 1, 2] and store.batch_size == 2 and store.guided
    assert store.attention(store.layers[0], 2).shape[:2] == (2, 1)
    assert store.maps(2, batch_index=1).shape == (4, 4)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="max_query_pixels"):
        AttentionStore(max_query_pixels=0)
    with pytest.raises(ValueError, match="store_dtype"):
        AttentionStore(store_dtype=torch.int8)
    with pytest.raises(ValueError, match="store"):
        RecordingAttnProcessor("store", "name")
    with pytest.raises(ValueError, match="no diffusers Attention"):
        register_attention_store(torch.nn.Linear(2, 2), AttentionStore())
    with pytest.raises(ValueError, match="next_step"):
        AttentionStore().record("x", torch.ones(1, 1, 4, 3), True)
