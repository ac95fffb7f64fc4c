"""Talking mouths (kit.data.talking): espeak-ng speech, syllable bank + cache, exact viseme timelines, the
procedural mouth, and the real/fake data set (labels, shifts, swaps, silence statistics, determinism)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kit.data import talking as tk

T = 50


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("talking-bank")


@pytest.fixture(scope="module")
def bank(bank_dir):
    t0 = time.perf_counter()
    b = tk.syllable_bank(bank_dir)
    assert time.perf_counter() - t0 < 30.0
    return b


@pytest.fixture(scope="module")
def full_set(bank):
    t0 = time.perf_counter()
    ds = tk.make_talking(200, seed=0, kinds=tk.FAKE_KINDS, fake_fraction=0.5, n_frames=T, size=32, bank=bank)
    elapsed = time.perf_counter() - t0
    assert elapsed < 20.0, f"200 clips took {elapsed:.1f} s"
    return ds


def _energy(audio: np.ndarray) -> np.ndarray:
    return np.sqrt((audio.reshape(-1, tk.SAMPLES_PER_FRAME).astype(np.float64) ** 2).mean(axis=1))


def _xcorr(e: np.ndarray, r: np.ndarray, max_lag: int = 12) -> np.ndarray:
    """c[j] for lag j - max_lag: sum_t (e[t + lag] - mean)(r[t] - mean) (positive lag: e late)."""
    e, r = e - e.mean(), r - r.mean()
    full = np.correlate(e, r, mode="full")
    mid = len(r) - 1
    return full[mid - max_lag:mid + max_lag + 1]


def _vowel_feature(s: tk.Syllable) -> np.ndarray:
    """Mean log power in 160 Hz bands up to 5 kHz over 100 ms of the vowel, 20 ms after its onset."""
    x = s.audio[s.onset + 320:s.onset + 320 + 1600]
    frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::128] * np.hanning(512)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)[:161]
    bands = np.log(np.add.reduceat(power, np.arange(0, 161, 5)) + 1e-10)
    return bands - bands.mean()


# --- espeak-ng ---------------------------------------------------------------------------------------------


def test_synthesize_gives_16khz_speech_and_phoneme_events():
    audio, events = tk.synthesize("ba", "en-us", 175)
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.abs(audio).max() <= 1.0
    assert 0.2 < len(audio) / tk.SR < 0.6                      # "ba" is about 0.34 s
    assert np.abs(audio).max() > 0.1
    names = [n.lstrip("',") for _, n in events]
    assert names[0] == "b" and names[1] == "A:"
    times = [t for t, _ in events]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= len(audio) / tk.SR + 0.02
    slow, _ = tk.synthesize("a quick test of the rate", "en", 120)
    fast, _ = tk.synthesize("a quick test of the rate", "en", 300)
    assert len(fast) < 0.7 * len(slow)
    assert tk.espeak_version()


@pytest.mark.parametrize("text, voice, match", [("ba", "xx-nonexistent", "no voice"), ("", "en", "non-empty"),
                                                ("   ", "en", "non-empty")])
def test_synthesize_rejects_bad_input(text, voice, match):
    with pytest.raises(ValueError, match=match):
        tk.synthesize(text, voice)
    assert len(tk.synthesize("ma", "en")[0]) > 0                 # the engine still works afterwards


# --- the syllable bank -------------------------------------------------------------------------------------


def test_bank_has_every_syllable_with_an_onset_inside(bank):
    keys = set(itertools.product(tk.CONSONANTS, tk.VOWELS, tk.VOICES, tk.RATES))
    assert set(bank) == keys and len(bank) == 200
    for key, s in bank.items():
        assert s.key == key and s.audio.dtype == np.float32 and s.audio.ndim == 1
        assert 0 < s.onset < len(s.audio)
        assert 0.1 < len(s.audio) / tk.SR < 0.7
        # trimmed: the ends are quiet, the vowel is loud
        assert max(abs(s.audio[0]), abs(s.audio[-1])) < 0.05 < np.abs(s.audio[s.onset:]).max()
    for voice in tk.VOICES:
        slow = np.mean([len(s.audio) for k, s in bank.items() if k[2] == voice and k[3] == 150])
        fast = np.mean([len(s.audio) for k, s in bank.items() if k[2] == voice and k[3] == 210])
        assert fast < 0.85 * slow
    # b/m/l: a voiced consonant well before the vowel; t: a short burst
    assert np.mean([s.onset for k, s in bank.items() if k[0] == "m"]) > 1.5 * np.mean(
        [s.onset for k, s in bank.items() if k[0] == "t"])


def test_bank_cache_round_trips(bank, bank_dir, monkeypatch):
    assert len(list(bank_dir.glob("*.wav"))) == 200 and (bank_dir / "onsets.json").is_file()

    def no_synthesis(*args):
        raise AssertionError("the second call must read the cache, not synthesise")

    monkeypatch.setattr(tk, "_make_syllable", no_synthesis)
    t0 = time.perf_counter()
    again = tk.syllable_bank(bank_dir)
    assert time.perf_counter() - t0 < 5.0
    assert set(again) == set(bank)
    for key in bank:
        assert again[key].onset == bank[key].onset
        np.testing.assert_array_equal(again[key].audio, bank[key].audio)


def test_default_bank_lives_in_kit_cache_dir_and_is_memoised(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    tk._default_bank.cache_clear()
    try:
        first, second = tk.syllable_bank(), tk.syllable_bank()
        folder = tk.default_cache_dir()
        assert folder.parent == tmp_path / "talking" and tk.espeak_version() in folder.name
        assert len(list(folder.glob("*.wav"))) == 200
        assert all(first[k] is second[k] for k in first)         # the same objects: memoised in-process
    finally:
        tk._default_bank.cache_clear()


def test_vowels_have_distinct_spectra_across_voices(bank):
    """Nearest-centroid vowel classifier on log spectra of the vowel part; centroids from four consonants (all
    voices and rates pooled), tested on the fifth."""
    feats = {k: _vowel_feature(s) for k, s in bank.items()}
    correct = []
    for held in tk.CONSONANTS:
        cents = {v: np.mean([f for k, f in feats.items() if k[0] != held and k[1] == v], axis=0) for v in tk.VOWELS}
        for k, f in feats.items():
            if k[0] == held:
                correct.append(min(cents, key=lambda v: np.sum((f - cents[v]) ** 2)) == k[1])
    assert np.mean(correct) > 0.8


# --- clips -------------------------------------------------------------------------------------------------


def _expected_visemes(clip: tk.Clip) -> np.ndarray:
    """The frame-centre rule, written out independently."""
    out = np.zeros(clip.n_frames, np.int64)
    for t in range(clip.n_frames):
        c = t * 640 + 320
        for (start, onset, end), name in zip(clip.segments, clip.syllables):
            if onset <= c < end:
                out[t] = tk.VISEMES.index(name[1])
            elif start <= c < onset and name[0] in "lst":
                out[t] = tk.VISEMES.index(name[1])
    return out


def test_make_clip_lengths_timeline_energy_and_silences(bank):
    rng = np.random.default_rng(7)
    vowel_energy, silent_energy, leads = [], [], []
    for i in range(30):
        clip = tk.make_clip(bank, rng, n_frames=T, voice=tk.VOICES[i % 4])
        assert clip.voice == tk.VOICES[i % 4] and clip.n_frames == T
        assert clip.audio.shape == (T * 640,) and clip.audio.dtype == np.float32
        assert clip.visemes.shape == (T,) and clip.visemes.dtype == np.int64
        assert clip.energy.shape == (T,) and clip.energy.dtype == np.float32 and clip.energy.max() == 1.0
        assert len(clip.syllables) == len(clip.segments) >= 2
        np.testing.assert_array_equal(clip.visemes, _expected_visemes(clip))
        # each syllable sits at its segment: the audio there is the bank's syllable (times a gain, plus noise)
        for (start, onset, end), name in zip(clip.segments, clip.syllables):
            syl = bank[(name[0], name[1], clip.voice, clip.rate)]
            assert end - start == len(syl.audio) and onset - start == syl.onset
            assert np.corrcoef(clip.audio[start:end], syl.audio)[0, 1] > 0.99
        gaps = [b[0] - a[2] for a, b in zip(clip.segments, clip.segments[1:])]
        assert min(gaps) >= 0.06 * tk.SR - 1 and max(gaps) <= 0.25 * tk.SR + 1
        lead, trail = clip.segments[0][0] / tk.SR, (T * 640 - clip.segments[-1][2]) / tk.SR
        assert 0.08 - 1e-3 <= lead <= 0.2 + 1e-3 and 0.08 - 1e-3 <= trail <= 0.2 + 1e-3
        measured_lead, _ = tk.silence_bounds(clip.audio)
        assert abs(measured_lead - lead) < 0.005
        leads.append(lead)
        centres = np.arange(T) * 640 + 320
        inside = np.zeros(T, bool)
        for start, _, end in clip.segments:
            inside |= (centres >= start - 640) & (centres < end + 640)
        vowel_energy.append(clip.energy[clip.visemes > 0].mean())
        silent_energy.append(clip.energy[(clip.visemes == 0) & ~inside].mean())
    assert np.mean(vowel_energy) > 3 * np.mean(silent_energy)
    assert np.std(leads) > 0.015                                 # drawn, not constant


def test_make_clip_rejects_bad_input(bank):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="not in the syllable bank"):
        tk.make_clip(bank, rng, voice="de")
    with pytest.raises(ValueError, match="n_frames"):
        tk.make_clip(bank, rng, n_frames=3)


# --- the mouth ---------------------------------------------------------------------------------------------


def _dark_area(frames: np.ndarray) -> np.ndarray:
    return (frames < 70).sum(axis=(1, 2))


def _darkness(frames: np.ndarray) -> np.ndarray:
    """Summed darkness below grey 90 per frame (the cavity and the lip seam; skin is >= 140)."""
    return np.clip(90.0 - frames, 0.0, None).sum(axis=(1, 2))


def test_render_mouth_shapes_and_openings():
    a, closed, u = tk.VISEMES.index("a"), tk.VISEMES.index("closed"), tk.VISEMES.index("u")
    video = tk.render_mouth(np.array([closed, a]), np.array([0.0, 1.0]), np.random.default_rng(0), size=32)
    assert video.shape == (2, 32, 32) and video.dtype == np.uint8
    assert _dark_area(video)[1] > 3 * max(_dark_area(video)[0], 1)
    opening = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for v in range(1, len(tk.VISEMES)):                          # every shape: darkness grows with the opening
        dark = np.mean([_darkness(tk.render_mouth(np.full(6, v), opening, np.random.default_rng(seed)))
                        for seed in range(6)], axis=0)
        assert np.all(np.diff(dark) > 0), (tk.VISEMES[v], dark)
        assert dark[-1] > 2 * dark[0]
    # shape_of sets the shape: a "u" is narrower than an "a" at the same opening
    same = np.full(4, a)
    wide = tk.render_mouth(same, np.ones(4), np.random.default_rng(1))
    narrow = tk.render_mouth(same, np.ones(4), np.random.default_rng(1), shape_of=np.full(4, u))
    assert _dark_area(narrow).mean() < 0.6 * _dark_area(wide).mean()
    # larger sizes work; blur smooths the mouth region
    sharp = tk.render_mouth(same, np.ones(4), np.random.default_rng(2), size=64)
    soft = tk.render_mouth(same, np.ones(4), np.random.default_rng(2), size=64, blur=1.5)
    assert sharp.shape == (4, 64, 64)
    lap = lambda v: np.abs(np.diff(v.astype(float), 2, axis=2)).mean()
    assert lap(soft) < 0.7 * lap(sharp)


@pytest.mark.parametrize("kw, match", [
    ({"visemes": np.zeros(3, int), "opening": np.zeros(4)}, "same length"),
    ({"visemes": np.full(3, 6), "opening": np.zeros(3)}, "viseme indices"),
    ({"visemes": np.zeros(3, int), "opening": np.full(3, 1.5)}, "opening"),
    ({"visemes": np.zeros(3, int), "opening": np.zeros(3), "size": 8}, "size"),
    ({"visemes": np.zeros(3, int), "opening": np.zeros(3), "shape_of": np.zeros(2, int)}, "shape_of"),
])
def test_render_mouth_rejects_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        tk.render_mouth(rng=np.random.default_rng(0), **kw)


# --- the data set ------------------------------------------------------------------------------------------


def test_talking_set_labels_kinds_offsets_and_shapes(full_set):
    ds = full_set
    n = len(ds)
    assert n == 200 and ds.video.shape == (n, T, 32, 32) and ds.video.dtype == np.uint8
    assert ds.audio.shape == (n, T * 640) and ds.audio.dtype == np.float32
    for name in ("visemes_audio", "visemes_video"):
        arr = getattr(ds, name)
        assert arr.shape == (n, T) and arr.dtype == np.int64 and arr.min() >= 0 and arr.max() < len(tk.VISEMES)
    kinds, counts = np.unique(ds.kind, return_counts=True)
    assert dict(zip(kinds, counts)) == {"real": 100, "swap": 25, "shift": 25, "lipsync": 25, "talking_head": 25}
    np.testing.assert_array_equal(ds.label, (ds.kind != "real").astype(np.int64))
    shift = ds.kind == "shift"
    assert np.all(ds.offset[~shift] == 0)
    assert np.all((np.abs(ds.offset[shift]) >= 4) & (np.abs(ds.offset[shift]) <= 10))
    assert (ds.offset[shift] > 0).any() and (ds.offset[shift] < 0).any()
    assert set(ds.voice) <= set(tk.VOICES) and len(set(ds.voice)) == 4
    assert not np.all(ds.kind[:20] == np.sort(ds.kind[:20]))      # shuffled


def test_real_and_fake_contents(full_set):
    ds = full_set
    real, swap, lip, head = (ds.kind == k for k in ("real", "swap", "lipsync", "talking_head"))
    np.testing.assert_array_equal(ds.visemes_video[real], ds.visemes_audio[real])
    assert np.all(ds.voice[swap] != ds.voice_video[swap]) and np.all(ds.voice[~swap] == ds.voice_video[~swap])
    assert np.mean(ds.visemes_video[swap] != ds.visemes_audio[swap]) > 0.3
    # lip-sync: opens and closes with the audio, shows other vowels
    va, vv = ds.visemes_audio[lip], ds.visemes_video[lip]
    np.testing.assert_array_equal(vv > 0, va > 0)
    assert np.mean(vv[va > 0] != va[va > 0]) > 0.5
    assert set(np.unique(ds.visemes_video[head])) == {0, tk.TALKING_HEAD_SHAPE}
    # the mouth opens where the video says so
    area = (ds.video < 70).sum(axis=(2, 3))
    for rows in (real, swap, lip):
        assert area[rows][ds.visemes_video[rows] > 0].mean() > 3 * area[rows][ds.visemes_video[rows] == 0].mean()


def test_shift_fakes_are_the_source_shifted(full_set):
    ds = full_set
    for i in np.flatnonzero(ds.kind == "shift"):
        k = int(ds.offset[i])
        va, vv = ds.visemes_audio[i], ds.visemes_video[i]
        np.testing.assert_array_equal(va[max(k, 0):T + min(k, 0)], vv[max(-k, 0):T + min(-k, 0)])
    hits, aligned_better = [], []
    for i in np.flatnonzero(np.isin(ds.kind, ["shift", "real"])):
        k = int(ds.offset[i])
        c = _xcorr(_energy(ds.audio[i]), ds.opening[i])              # the video's opening vs the audio's energy
        hits.append(abs(int(np.argmax(c)) - 12 - k) <= 1)
        if k:
            aligned_better.append(c[12 + k] > c[12])
    assert np.mean(hits) > 0.85 and all(aligned_better)


def test_leading_silence_does_not_tell_real_from_fake(full_set):
    ds = full_set
    bounds = np.array([tk.silence_bounds(a) for a in ds.audio])
    for col in (0, 1):
        real, fake = bounds[ds.label == 0, col], bounds[ds.label == 1, col]
        assert abs(real.mean() - fake.mean()) < 0.020
        for kind in tk.FAKE_KINDS[1:]:
            assert abs(bounds[ds.kind == kind, col].mean() - real.mean()) < 0.040
    assert 0.075 <= bounds[:, 0].min() and bounds[:, 0].max() <= 0.21


def test_dataset_protocol_and_subset(full_set):
    ds = full_set
    item = ds[3]
    assert item["video"].dtype == torch.float32 and item["video"].shape == (T, 32, 32)
    assert 0.0 <= float(item["video"].min()) and float(item["video"].max()) <= 1.0
    assert item["audio"].shape == (T * 640,) and item["label"].item() == ds.label[3]
    assert item["visemes_audio"].dtype == torch.int64 and item["offset"].item() == ds.offset[3]
    assert item["kind"] == ds.kind[3]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["video"].shape == (4, T, 32, 32) and len(batch["kind"]) == 4
    fakes = ds.subset(ds.label == 1)
    assert len(fakes) == 100 and np.all(fakes.label == 1)
    picked = ds.subset([5, 2])
    np.testing.assert_array_equal(picked.video[0], ds.video[5])
    assert picked.kind[1] == ds.kind[2]
    with pytest.raises(ValueError, match="mask"):
        ds.subset(np.ones(3, bool))


def test_make_talking_is_deterministic_per_seed(bank):
    kw = {"kinds": tk.FAKE_KINDS, "n_frames": 25, "size": 24, "bank": bank}
    a, b, c = tk.make_talking(10, seed=5, **kw), tk.make_talking(10, seed=5, **kw), tk.make_talking(10, seed=6, **kw)
    for name in ("video", "audio", "visemes_audio", "visemes_video", "label", "kind", "offset", "voice"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.audio, c.audio)
    assert a.video.shape == (10, 25, 24, 24)


def test_lipsync_blur_only_blurs(bank):
    kw = {"kinds": ("lipsync",), "fake_fraction": 1.0, "n_frames": 20, "bank": bank}
    sharp, soft = tk.make_talking(6, seed=1, **kw), tk.make_talking(6, seed=1, lipsync_blur=1.0, **kw)
    np.testing.assert_array_equal(sharp.audio, soft.audio)
    lap = lambda v: np.abs(np.diff(v.astype(float), 2, axis=3)).mean()
    assert lap(soft.video) < 0.8 * lap(sharp.video)


@pytest.mark.parametrize("kw, match", [
    ({"kinds": ("real", "deepfake")}, "unknown kind"),
    ({"kinds": ("swap", "shift")}, "no 'real'"),
    ({"kinds": ("real",)}, "no fake kind"),
    ({"kinds": ("real", "swap", "swap")}, "repeats"),
    ({"n": 0}, "n must be"),
    ({"n_frames": 19}, "n_frames"),
    ({"fake_fraction": 1.5}, "fake_fraction"),
    ({"lipsync_blur": -1.0}, "lipsync_blur"),
])
def test_make_talking_rejects_bad_input(bank, kw, match):
    args = {"n": 4, "bank": bank} | kw
    with pytest.raises(ValueError, match=match):
        tk.make_talking(**args)


def test_make_talking_edge_fractions(bank):
    only_real = tk.make_talking(3, kinds=("real",), fake_fraction=0.0, n_frames=20, bank=bank)
    assert np.all(only_real.label == 0)
    only_fake = tk.make_talking(4, kinds=("talking_head", "lipsync"), fake_fraction=1.0, n_frames=20, bank=bank)
    assert np.all(only_fake.label == 1) and sorted(only_fake.kind) == ["lipsync", "lipsync", "talking_head",
                                                                       "talking_head"]
