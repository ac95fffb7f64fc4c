"""Audio features against naive computations, the students' and teachers' shapes and gradients, and the
video-level metrics against the authors' published counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.fft import dct

from kit.cmdfd.features import log_mel, mel_filterbank, mfcc, stft_features
from kit.cmdfd.metrics import PAPER_W2L, eer, video_metrics
from kit.cmdfd.models import TalkNetStudent
from kit.cmdfd.teachers import AudioNet, VideoNet, VisemeTeacher, load_deep_avsr

torch.set_num_threads(1)


def _audio(n=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=n)).astype(np.float32)


def test_mfcc_matches_a_naive_loop():
    a = _audio(6400)  # 10 video frames
    got = mfcc(a, 10)
    assert got.shape == (40, 13) and got.dtype == np.float32
    x = np.asarray(a, float)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    fb = mel_filterbank(26)
    rows = []
    for k in range(37):  # 1 + ceil((6400 - 640) / 160) frames, as python_speech_features frames it
        seg = np.zeros(640)
        chunk = x[k * 160: k * 160 + 640]
        seg[:len(chunk)] = chunk
        spec = np.abs(np.fft.rfft(seg)) ** 2 / 640
        c = dct(np.log(np.maximum(fb @ spec, np.finfo(float).eps)), type=2, norm="ortho")[:13]
        c = c * np.array([1 + 11 * math.sin(math.pi * i / 22) for i in range(13)])
        c[0] = math.log(spec.sum())
        rows.append(c)
    rows = np.array(rows)
    np.testing.assert_allclose(got, np.concatenate([rows, rows[:3]]), rtol=1e-4, atol=1e-4)  # wrapped to 4 T


def test_mel_filterbank_triangles_cover_the_spectrum():
    fb = mel_filterbank(26)
    assert fb.shape == (26, 321) and fb.max() == pytest.approx(1.0) and (fb >= 0).all()
    peaks = fb.argmax(1)
    assert (np.diff(peaks) > 0).all()  # mel-spaced, increasing


def test_stft_and_log_mel_shapes_and_wrap_padding():
    a = _audio(16000)
    s = stft_features(a, 25)
    assert s.shape == (100, 321)
    np.testing.assert_allclose(stft_features(a * 7, 25), s, rtol=1e-4)  # peak / RMS normalised
    short = log_mel(a[:3200], 10)  # 5 frames of audio (17 feature frames) for 10 video frames: wrapped around
    assert short.shape == (40, 32)
    np.testing.assert_allclose(short[17:34], short[:17], rtol=1e-5)
    with pytest.raises(ValueError, match="1-D"):
        mfcc(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="NaN"):
        log_mel(np.array([0.0, np.nan]), 1)


@pytest.mark.parametrize("arch,feat,size,t", [("tiny", 32, 32, 12), ("full", 13, 112, 3)])
def test_students_shapes_gradients_and_bad_inputs(arch, feat, size, t):
    torch.manual_seed(0)
    m = TalkNetStudent(arch)
    out = m(torch.randn(2, 4 * t, feat), torch.rand(2, t, size, size))
    assert out.logits.shape == (2, t, 2) and out.a.shape == out.v.shape == (2, t, m.d)
    (out.logits.sum() + out.a.sum()).backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if p.requires_grad and "self_av" not in n)
    with pytest.raises(ValueError, match="4 frames per video frame"):
        m(torch.randn(2, 4 * t + 1, feat), torch.rand(2, t, size, size))
    with pytest.raises(ValueError, match=f"{feat}"):
        m(torch.randn(2, 4 * t, feat + 1), torch.rand(2, t, size, size))


def test_full_student_has_talknets_size():
    n = sum(p.numel() for p in TalkNetStudent("full").parameters())
    assert 14.5e6 < n < 16.5e6  # TalkNet: 15.0 M parameters


def test_teachers_give_posteriors_and_load_checkpoints(tmp_path):
    torch.manual_seed(0)
    small = dict(d=32, heads=4, layers=1, ff=64)
    an, vn = AudioNet(**small).eval(), VideoNet(**small).eval()
    p = an(torch.randn(2, 20, 321))
    assert p.shape == (2, 5, 40)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 5))
    with pytest.raises(ValueError, match="lip features"):
        vn(torch.randn(2, 5, 31))
    torch.save(an.state_dict(), tmp_path / "audio-only.pt")
    other = load_deep_avsr(AudioNet(**small), tmp_path / "audio-only.pt")
    x = torch.randn(1, 8, 321)
    torch.testing.assert_close(other(x), an(x))
    assert not any(q.requires_grad for q in other.parameters())
    with pytest.raises(FileNotFoundError, match="audio-only.pt"):
        load_deep_avsr(AudioNet(**small), tmp_path / "none.pt")
    torch.save(vn.state_dict(), tmp_path / "video-only.pt")
    with pytest.raises(ValueError, match="does not fit"):
        load_deep_avsr(AudioNet(**small), tmp_path / "video-only.pt")
    for modality, x in (("audio", torch.randn(2, 40, 32)), ("video", torch.rand(2, 10, 32, 32))):
        post = VisemeTeacher(modality)(x)
        assert post.shape == (2, 10, 6)
        torch.testing.assert_close(post.sum(-1), torch.ones(2, 10))


def test_metrics_reproduce_the_authors_w2l_counts():
    y = np.r_[np.zeros(1000), np.ones(998)]
    pred = np.r_[np.zeros(643), np.ones(357), np.zeros(2), np.ones(996)]
    m = video_metrics(pred - 0.5, y, pred)
    for k in ("acc", "f1", "bacc", "recall_real", "recall_fake", "hter"):
        assert 100 * m[k] == pytest.approx(PAPER_W2L[k], abs=0.01), k
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (643, 357, 2, 996)


def test_eer_against_a_threshold_scan():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(300), np.ones(300)]
    s = np.r_[rng.normal(0, 1, 300), rng.normal(1.5, 1, 300)]
    thr = np.sort(s)
    far = np.array([(s[y == 0] >= t).mean() for t in thr])
    frr = np.array([(s[y == 1] < t).mean() for t in thr])
    k = np.argmin(np.abs(far - frr))
    assert eer(s, y) == pytest.approx((far[k] + frr[k]) / 2, abs=0.01)
    assert eer(np.r_[0.0, 1.0], np.r_[0, 1]) == 0.0
    with pytest.raises(ValueError, match="real and fake"):
        eer(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="one length"):
        video_metrics(np.ones(3), np.ones(2))


def test_benchmark_quick_runs(capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    monkeypatch.syspath_prepend(str(repo / "benchmarks"))  # as `python benchmarks/cmdfd.py` finds timing.py
    spec = importlib.util.spec_from_file_location("bench_cmdfd", repo / "benchmarks" / "cmdfd.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    try:
        assert bench.main(["--quick", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert "CE + CD + JC step" in out and "clips/s" in out
