"""Audio features of the CMDFD series (arXiv:2404.19171), 4 feature frames per 40 ms video frame at 16 kHz.

- :func:`mfcc`: the student's 13 MFCCs as the authors compute them (python_speech_features' recipe: pre-emphasis
  0.97, 40 ms rectangular frames every 10 ms, a 640-point power spectrum, 26 triangular mel filters, log, DCT-II,
  a sine lifter of 22, and the first coefficient replaced by the log frame energy);
- :func:`stft_features`: the ASR teacher's 321-bin |STFT| (Hamming, 40 ms, 30 ms overlap: 100 Hz), of the audio
  scaled to unit peak then unit RMS, as deep_avsr feeds its AudioNet;
- :func:`log_mel`: a 32-band log-mel spectrum (Hamming, the same framing) for the CPU-sized student and teachers.

Each returns float32 [4 T, F] for ``n_frames = T``: shorter feature sequences are wrapped around (the authors' padding),
longer ones cut.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["SR", "FEATURES_PER_FRAME", "mfcc", "stft_features", "log_mel", "mel_filterbank", "frames_of"]

SR = 16000
FEATURES_PER_FRAME = 4
_WIN, _HOP = 640, 160  # 40 ms, 10 ms at 16 kHz


def _check(audio: np.ndarray, n_frames: int | None) -> tuple[np.ndarray, int]:
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"audio must be a non-empty 1-D waveform, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("audio holds NaN or infinite samples")
    n = int(n_frames) if n_frames is not None else int(round(len(a) / (SR / 25)))
    if n < 1:
        raise ValueError(f"n_frames must be >= 1, got {n}")
    return a, n


def frames_of(audio: np.ndarray, win: int = _WIN, hop: int = _HOP) -> np.ndarray:
    """float64 [K, win]: frames every ``hop`` samples, K = 1 + ceil((len - win) / hop), the last zero-padded."""
    a = np.asarray(audio, dtype=np.float64)
    k = 1 if len(a) <= win else 1 + int(np.ceil((len(a) - win) / hop))
    padded = np.concatenate([a, np.zeros(max(0, (k - 1) * hop + win - len(a)))])
    idx = np.arange(win)[None, :] + hop * np.arange(k)[:, None]
    return padded[idx]


def _fit(feats: np.ndarray, n_frames: int) -> np.ndarray:
    want = FEATURES_PER_FRAME * n_frames
    if len(feats) < want:
        feats = np.pad(feats, ((0, want - len(feats)), (0, 0)), mode="wrap")
    return feats[:want].astype(np.float32)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, float) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, float) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_filters: int = 26, n_fft: int = _WIN, sr: int = SR) -> np.ndarray:
    """float64 [n_filters, n_fft // 2 + 1]: triangles between mel-spaced FFT bins (python_speech_features' layout:
    edge bins floor((n_fft + 1) * f / sr))."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_filters + 2))
    bins = np.floor((n_fft + 1) * edges / sr).astype(int)
    fb = np.zeros((n_filters, n_fft // 2 + 1))
    for j in range(n_filters):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(lo, mid):
            fb[j, i] = (i - lo) / max(mid - lo, 1)
        for i in range(mid, hi):
            fb[j, i] = (hi - i) / max(hi - mid, 1)
    fb.setflags(write=False)
    return fb


def mfcc(audio: np.ndarray, n_frames: int | None = None, n_mfcc: int = 13, n_filters: int = 26,
         preemph: float = 0.97, lifter: int = 22) -> np.ndarray:
    """float32 [4 T, n_mfcc]: the student's MFCCs (module docstring) of 16 kHz ``audio`` for ``n_frames`` = T video
    frames (default: len / 640)."""
    from scipy.fft import dct

    a, n = _check(audio, n_frames)
    a = np.append(a[0], a[1:] - preemph * a[:-1])
    frames = frames_of(a)
    power = np.abs(np.fft.rfft(frames, _WIN)) ** 2 / _WIN
    energy = np.maximum(power.sum(1), np.finfo(float).eps)
    fbank = np.maximum(power @ mel_filterbank(n_filters).T, np.finfo(float).eps)
    c = dct(np.log(fbank), type=2, axis=1, norm="ortho")[:, :n_mfcc]
    c *= 1 + (lifter / 2) * np.sin(np.pi * np.arange(n_mfcc) / lifter)
    c[:, 0] = np.log(energy)
    return _fit(c, n)


def stft_features(audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """float32 [4 T, 321]: the ASR teacher's |STFT| (module docstring)."""
    from scipy.signal import stft

    a, n = _check(audio, n_frames)
    peak = np.abs(a).max()
    a = a / peak if peak > 0 else a
    rms = np.sqrt(np.mean(a ** 2))
    a = a / rms if rms > 0 else a
    _, _, z = stft(a, SR, window="hamming", nperseg=_WIN, noverlap=_WIN - _HOP, boundary=None, padded=False)
    return _fit(np.abs(z).T, n)


def log_mel(audio: np.ndarray, n_frames: int | None = None, n_bands: int = 32) -> np.ndarray:
    """float32 [4 T, n_bands]: log(1e-6 + mel energies) of Hamming-windowed 40 ms frames every 10 ms."""
    a, n = _check(audio, n_frames)
    power = np.abs(np.fft.rfft(frames_of(a) * np.hamming(_WIN), _WIN)) ** 2 / _WIN
    return _fit(np.log(1e-6 + power @ mel_filterbank(n_bands).T), n)
