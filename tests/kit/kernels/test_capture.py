"""kit.kernels.cross_attention_capture: output and captured maps against explicit softmax probabilities, for the
torch reference and the Triton kernel (interpreter), across head sizes, dtypes, row ranges and masks."""

import pytest
import torch

from kit.kernels import cross_attention_capture

pytest.importorskip("triton")
torch.set_num_threads(1)


def _qkv(b=2, heads=3, n_q=70, n_k=77, d=40, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, heads, n, d, generator=g).to(dtype) for n in (n_q, n_k, n_k))


def _explicit(q, k, v, tokens, rows, scale=None, mask=None):
    """softmax(q k^T scale + mask) in float64, its output, and its head-mean token columns for ``rows``."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if mask is not None:
        s = s + mask.double()
    p = torch.softmax(s, dim=-1)
    return p @ v.double(), p[rows][..., tokens].mean(dim=1)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("d", [40, 80, 160])
def test_output_and_maps_match_explicit_probabilities(backend, d):
    q, k, v = _qkv(d=d)
    tokens = [1, 4, 76]
    acc = torch.zeros(1, 70, 3)
    out = cross_attention_capture(q, k, v, tokens=tokens, accum=acc, row_offset=1, backend=backend)
    want_out, want_maps = _explicit(q, k, v, tokens, slice(1, 2))
    assert out.shape == q.shape and out.dtype == q.dtype
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(acc.double(), want_maps, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_accumulates_over_calls_and_leaves_other_rows(backend):
    q, k, v = _qkv(b=3, heads=2, n_q=33, n_k=10, d=16)
    acc = torch.full((2, 33, 2), 0.25)
    for _ in range(3):
        cross_attention_capture(q, k, v, tokens=[0, 9], accum=acc, row_offset=0, scale=0.3, backend=backend)
    _, maps = _explicit(q, k, v, [0, 9], slice(0, 2), scale=0.3)
    torch.testing.assert_close(acc.double(), 0.25 + 3 * maps, rtol=1e-5, atol=1e-6)
    # the maps of all K tokens sum to one per query
    full = torch.zeros(3, 33, 10)
    cross_attention_capture(q, k, v, tokens=list(range(10)), accum=full, backend=backend)
    torch.testing.assert_close(full.sum(-1), torch.ones(3, 33))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_no_tokens_or_no_accumulator_is_plain_attention(backend):
    q, k, v = _qkv(b=1, heads=2, n_q=20, n_k=5, d=8)
    want, _ = _explicit(q, k, v, [0], slice(0, 1))
    torch.testing.assert_close(cross_attention_capture(q, k, v, backend=backend).double(), want, rtol=1e-5,
                               atol=1e-5)
    acc = torch.zeros(1, 20, 0)
    out = cross_attention_capture(q, k, v, tokens=[], accum=acc, backend=backend)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_half_precision_kernel_within_tolerance():
    q, k, v = _qkv(dtype=torch.float16)
    want_out, want_maps = _explicit(q, k, v, [2, 3], slice(0, 2))
    for backend in ("torch", "triton"):
        acc = torch.zeros(2, 70, 2)
        out = cross_attention_capture(q, k, v, tokens=[2, 3], accum=acc, backend=backend)
        assert out.dtype == torch.float16
        torch.testing.assert_close(out.double(), want_out, rtol=2e-3, atol=2e-3)
        torch.testing.assert_close(acc.double(), want_maps, rtol=2e-3, atol=2e-4)


def test_a_mask_runs_the_reference_with_the_mask():
    q, k, v = _qkv(b=1, heads=2, n_q=12, n_k=6, d=8)
    mask = torch.zeros(1, 1, 1, 6)
    mask[..., 4:] = -1e4  # padding keys
    acc = torch.zeros(1, 12, 2)
    out = cross_attention_capture(q, k, v, tokens=[0, 5], accum=acc, mask=mask, backend="triton")
    want_out, want_maps = _explicit(q, k, v, [0, 5], slice(0, 1), mask=mask)
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(acc.double(), want_maps, rtol=1e-5, atol=1e-6)
    assert float(acc[..., 1].abs().max()) < 1e-4


def test_long_key_sets_fall_back_to_the_reference():
    q, k, v = _qkv(b=1, heads=1, n_q=8, n_k=300, d=8)
    acc = torch.zeros(1, 8, 1)
    out = cross_attention_capture(q, k, v, tokens=[299], accum=acc, backend="triton")
    want_out, want_maps = _explicit(q, k, v, [299], slice(0, 1))
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(acc.double(), want_maps, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_cuda_matches_the_reference(dtype):
    q, k, v = (t.cuda() for t in _qkv(b=4, heads=8, n_q=4096, n_k=77, d=40, dtype=dtype))
    accs = [torch.zeros(2, 4096, 4, device="cuda") for _ in range(2)]
    outs = [cross_attention_capture(q, k, v, tokens=[1, 2, 5, 6], accum=a, row_offset=2, backend=b)
            for a, b in zip(accs, ("torch", "triton"))]
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(outs[1].float(), outs[0].float(), rtol=tol, atol=tol)
    torch.testing.assert_close(accs[1], accs[0], rtol=tol, atol=tol / 10)


@pytest.mark.parametrize("call,match", [
    (lambda q, k, v: cross_attention_capture(q[0], k, v), r"\[B, heads"),
    (lambda q, k, v: cross_attention_capture(q, k[:, :1], v), "fit together"),
    (lambda q, k, v: cross_attention_capture(q, k, v, tokens=[77], accum=torch.zeros(2, 70, 1)), "tokens"),
    (lambda q, k, v: cross_attention_capture(q, k, v, tokens=[1.5]), "tokens"),
    (lambda q, k, v: cross_attention_capture(q, k, v, tokens=[1], accum=torch.zeros(2, 70, 2)), "accum"),
    (lambda q, k, v: cross_attention_capture(q, k, v, tokens=[1], accum=torch.zeros(2, 70, 1).half()), "float32"),
    (lambda q, k, v: cross_attention_capture(q, k, v, tokens=[1], accum=torch.zeros(2, 70, 1), row_offset=1),
     "rows"),
    (lambda q, k, v: cross_attention_capture(q, k, v, tokens=[1, 2], accum=torch.zeros(2, 2, 70).transpose(1, 2)),
     "contiguous"),
    (lambda q, k, v: cross_attention_capture(q, k, v, backend="fast"), "backend"),
])
def test_bad_input_names_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call(*_qkv())
