"""Token-capture AttentionStore (``tokens=...``): the recording processor's fused path through kit.kernels gives the
same word maps as the full per-step store, with a fraction of its memory, for both kernel backends."""

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("triton")

from kit.diffusion.attention import (  # noqa: E402
    AttentionStore,
    ReplaceCrossAttention,
    ReweightTokens,
    attention_control,
)

torch.set_num_threads(1)
K_TOKENS = 6


def _inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 16, 16, generator=g), torch.randn(batch, K_TOKENS, 32, generator=g)


def _steps(unet, store, edit=None, n=3, guided_rows=None):
    outs = []
    with attention_control(unet, store, edit) as st, torch.no_grad():
        if guided_rows:
            st.begin(batch_size=guided_rows, guided=True)
        for i in range(n):
            x, ctx = _inputs(seed=i)
            outs.append(unet(x, 50 + 10 * i, encoder_hidden_states=ctx).sample)
    return outs


@pytest.fixture(params=["torch", "triton"])
def backend(request, monkeypatch):
    monkeypatch.setenv("KIT_KERNELS", request.param)
    return request.param


def test_capture_maps_equal_the_full_store_and_take_less_memory(unet, backend):
    full = AttentionStore(max_query_pixels=256, store_dtype=torch.float32)
    want_out = _steps(unet, full)
    cap = AttentionStore(max_query_pixels=256, tokens=[2, 3, 5])
    got_out = _steps(unet, cap)
    for a, b in zip(got_out, want_out):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # the UNet's output is unchanged
    assert cap.steps == full.steps == [0, 1, 2]
    assert sorted(cap.layers) == sorted(full.layers)
    assert cap.layers_at(8) == full.layers_at(8) and cap.layers_at(16) == full.layers_at(16)
    for tokens in (3, [2, 5]):
        for b in (0, 1):
            torch.testing.assert_close(cap.maps(tokens, batch_index=b), full.maps(tokens, batch_index=b),
                                       rtol=1e-5, atol=1e-6)
    small = full.layers_at(8)[:2]
    torch.testing.assert_close(cap.maps(2, layers=small, resolution=(5, 7)),
                               full.maps(2, layers=small, resolution=(5, 7)), rtol=1e-5, atol=1e-6)
    # 3 steps, float32 per-step store with all 6 tokens vs step-summed 3 tokens: 3 x 6 / 3 = 6x
    assert full.nbytes == 6 * cap.nbytes


def test_guided_layout_captures_the_conditional_rows(unet, backend):
    full = AttentionStore(max_query_pixels=256, store_dtype=torch.float32)
    _steps(unet, full, n=2, guided_rows=1)
    cap = AttentionStore(max_query_pixels=256, tokens=[1, 4])
    _steps(unet, cap, n=2, guided_rows=1)
    name = cap.layers[0]
    assert cap._accum[name].shape[0] == 1
    torch.testing.assert_close(cap.maps([1, 4]), full.maps([1, 4]), rtol=1e-5, atol=1e-6)


def test_an_edit_that_needs_probabilities_still_feeds_the_capture(unet):
    edit = ReweightTokens([3], 2.0)
    full = AttentionStore(max_query_pixels=256, store_dtype=torch.float32)
    want = _steps(unet, full, edit=edit, n=2)
    cap = AttentionStore(max_query_pixels=256, tokens=[3])
    got = _steps(unet, cap, edit=edit, n=2)
    torch.testing.assert_close(got[-1], want[-1])
    torch.testing.assert_close(cap.maps(3), full.maps(3), rtol=1e-5, atol=1e-6)


def test_capture_store_refuses_what_it_does_not_keep(unet):
    cap = AttentionStore(max_query_pixels=256, tokens=[2])
    _steps(unet, cap, n=1)
    with pytest.raises(ValueError, match="step-summed"):
        cap.attention(cap.layers[0], 0)
    with pytest.raises(ValueError, match="per-step probabilities"):
        _steps(unet, AttentionStore(max_query_pixels=256), edit=ReplaceCrossAttention(source=cap), n=1)
    with pytest.raises(ValueError, match="step=None"):
        cap.maps(2, step=0)
    with pytest.raises(ValueError, match="not captured"):
        cap.maps(3)
    with pytest.raises(ValueError, match="batch_index"):
        cap.maps(2, batch_index=5)
    with pytest.raises(ValueError, match="cross-attention"):
        AttentionStore(tokens=[1], record_self=True)
    with pytest.raises(ValueError, match="head-averaged"):
        AttentionStore(tokens=[1], average_heads=False)
    with pytest.raises(ValueError, match="distinct"):
        AttentionStore(tokens=[1, 1])
    with pytest.raises(ValueError, match="tokens"):
        AttentionStore(tokens=[])
    bad = AttentionStore(max_query_pixels=256, tokens=[K_TOKENS])
    with pytest.raises(ValueError, match="tokens"):
        _steps(unet, bad, n=1)
    with pytest.raises(ValueError, match="token-capture"):
        AttentionStore().accumulator("x", 1, 4, torch.device("cpu"))
