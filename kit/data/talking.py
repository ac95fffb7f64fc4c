"""Talking mouths: spoken syllables from espeak-ng, an exact viseme timeline, a procedural mouth video, fakes.

The offline data generator of the cross-modal correlation distillation series (arXiv:2404.19171): short
audio-visual clips of a talking mouth whose audio is real synthetic speech and whose frame-by-frame content is
known exactly, plus four kinds of audio-visual fakes. Everything runs on a CPU with no network and no system
packages: libespeak-ng and its voice data come in the ``espeakng-loader`` wheel and are driven through ctypes.

Units: audio is float32 mono in [-1, 1] at ``SR`` = 16 kHz; video runs at ``FPS`` = 25 frames/s, so one frame is
``SAMPLES_PER_FRAME`` = 640 samples (40 ms) and a clip of ``T`` frames has exactly ``T * 640`` samples.

Pieces, bottom up:

* ``synthesize`` speaks a text with one espeak-ng voice and returns the audio and the phoneme events.
* ``syllable_bank`` speaks every consonant x vowel x voice x rate syllable once (200 of them), trims the
  silence around each and finds the consonant/vowel boundary (``Syllable.onset``) from the phoneme events; the
  bank is cached as WAV files + a JSON of onsets. The syllables are given to espeak-ng in its phoneme notation
  (``[[b'A:]]``, see ``SPELLINGS``) so that every vowel class is one steady monophthong: plain English spellings
  give diphthongs for two of the five classes ("bay" is /eI/, "bo"/"boh" is /oU/) and the odd irregular word
  ("meh" is /E/ but "beh" is /eI/).
* ``make_clip`` strings random syllables of one voice and rate together with random pauses, and derives the
  per-frame viseme timeline from the sample positions where each syllable went (``Clip``).
* ``render_mouth`` draws a grey procedural mouth per frame from a viseme (shape) and an opening (height).
* ``make_talking`` builds a ``TalkingSet`` of real clips and fakes (``FAKE_KINDS``):

  - ``real``: the mouth shows the clip's own visemes, its opening driven by the clip's audio energy;
  - ``swap``: the video of one clip with the audio of another clip spoken by another voice;
  - ``shift``: audio and video of one utterance offset by ``offset`` frames (4..10, either sign);
  - ``lipsync``: the mouth opens and closes in sync with the audio's energy, but the mouth *shapes* come from
    other content (a third clip's visemes), optionally with a blurred mouth region (``lipsync_blur``);
  - ``talking_head``: one generic mid-open shape for the whole clip whose opening follows the audio energy
    smoothed over 5 frames and one frame late.

Silence statistics: every clip's audio (fakes included) starts with a pause drawn uniformly from
``LEAD_RANGE_S`` and ends with a pause drawn from the same distribution, so the leading/trailing silence carries
no information about the label (the FakeAVCeleb shortcut). The video of a ``shift`` fake necessarily starts
``|offset|`` frames away from the utterance start (see ``make_talking``).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

FPS = 25
SR = 16000
SAMPLES_PER_FRAME = SR // FPS  # 640
VISEMES = ("closed", "a", "e", "i", "o", "u")
CONSONANTS = ("b", "m", "l", "s", "t")
VOWELS = ("a", "e", "i", "o", "u")
VOICES = ("en", "en-us", "en+m3", "en+f3")
RATES = (150, 210)
FAKE_KINDS = ("real", "swap", "shift", "lipsync", "talking_head")

# espeak-ng phoneme per vowel class (its phoneme mnemonics, as the phoneme events name them) and the syllable
# text fed to espeak-ng: "[[...]]" is espeak-ng's phoneme input, "'" puts the stress on the vowel.
VOWEL_PHONEMES = {"a": "A:", "e": "E", "i": "i:", "o": "o:", "u": "u:"}
SPELLINGS = {"a": "[[{c}'A:]]", "e": "[[{c}'E:]]", "i": "[[{c}'i:]]", "o": "[[{c}'o:]]", "u": "[[{c}'u:]]"}
CLOSED_CONSONANTS = ("b", "m")  # lips shut during the consonant: viseme 0
LEAD_RANGE_S = (0.08, 0.20)  # leading (and trailing) silence of every clip, uniform, seconds
GAP_RANGE_S = (0.06, 0.25)  # pauses between syllables, seconds
NOISE_DB = -50.0  # background noise RMS relative to the clip's peak amplitude
TRIM_REL = 0.03  # syllable trimming: first/last sample above 3% of the syllable's peak
ONSET_OPENNESS = 0.5  # openness of l/s/t consonant frames (the following vowel's shape, half open)
TALKING_HEAD_SHAPE = VISEMES.index("e")  # the generic mid-open shape of the talking_head fakes
OPEN_THRESHOLD = 0.15  # talking_head: a frame counts as open (visemes_video > 0) from this opening on
SHIFT_RANGE = (4, 10)  # |offset| of the shift fakes, frames

_BANK_VERSION = 1
_GAIN_RANGE = (0.5, 0.9)  # clip peak amplitude
_FADE_S = 0.002  # raised-cosine fade at both ends of every trimmed syllable (no clicks)

# --- espeak-ng through ctypes ------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_CHARS_UTF8 = 1
_PHONEME_INPUT = 0x100  # espeakPHONEMES: text inside [[ ]] is read as espeak phoneme mnemonics


class _Event(ctypes.Structure):
    """``espeak_EVENT``; ``id`` is the union's 8-byte ``string`` member (the phoneme name of a phoneme event)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.POINTER(_Event))


class _Engine:
    """One initialised libespeak-ng (synchronous output, phoneme events); use only under ``_LOCK``."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                     _INITIALIZE_PHONEME_EVENTS)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate})")
        self.lib = lib
        self.sample_rate = int(rate)
        self.version = (lib.espeak_Info(None) or b"").decode(errors="replace")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: the C side holds only a pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n: int, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((int(events[i].audio_position), events[i].id.decode(errors="replace")))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """int16 samples at ``sample_rate`` and the phoneme events (milliseconds, name)."""
        err = self.lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (espeak_SetVoiceByName returned {err})")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        data = text.encode("utf-8")
        self._chunks, self._events = [], []
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8 | _PHONEME_INPUT, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed for {text!r} (returned {err})")
        self.lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples, list(self._events)


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    """The module's espeak-ng engine, initialised on first use (call under ``_LOCK``)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def espeak_version() -> str:
    """libespeak-ng's version string (``espeak_Info``), or the ``espeakng-loader`` wheel's version."""
    try:
        with _LOCK:
            version = _engine().version
        if version:
            return version
    except (OSError, RuntimeError):
        pass
    from importlib.metadata import version as dist_version

    return "wheel-" + dist_version("espeakng-loader")


def synthesize(text: str, voice: str = "en-us", rate: int = 175) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Speak ``text`` with espeak-ng.

    ``voice`` is an espeak-ng voice name, optionally with a variant (``"en+f3"``); ``rate`` is in words per
    minute (espeak-ng accepts about 80..450). Text in ``[[ ]]`` is read as espeak-ng phoneme mnemonics.
    Returns float32 mono audio in [-1, 1] at ``SR`` (16 kHz, resampled from espeak-ng's 22.05 kHz) and the
    phoneme events ``(time in seconds from the start of the audio, phoneme name)``, e.g. for "ba" (en-us)
    ``[(0.012, 'b'), (0.059, "'A:"), (0.336, '_:'), (0.343, '_')]``; ``'`` and ``,`` mark stress, ``_`` pauses.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"synthesize needs a non-empty text, got {text!r}")
    if not 50 <= int(rate) <= 600:
        raise ValueError(f"rate must be in 50..600 words per minute, got {rate}")
    with _LOCK:
        engine = _engine()
        samples, events = engine.synth(text, voice, int(rate))
        sample_rate = engine.sample_rate
    x = samples.astype(np.float32) / 32768.0
    if sample_rate != SR:
        g = np.gcd(SR, sample_rate)
        x = resample_poly(x, SR // g, sample_rate // g).astype(np.float32)
    return np.clip(x, -1.0, 1.0), [(ms / 1000.0, name) for ms, name in events]


# --- the syllable bank -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Syllable:
    """One spoken CV syllable: ``audio`` float32 [L] at 16 kHz, silence trimmed; ``onset``: the sample (0 < onset
    < L) where the consonant ends and the vowel begins (from espeak-ng's phoneme events)."""

    audio: np.ndarray
    onset: int
    consonant: str
    vowel: str
    voice: str
    rate: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        """``(consonant, vowel, voice, rate)``, the bank's key."""
        return (self.consonant, self.vowel, self.voice, self.rate)


BankKey = tuple[str, str, str, int]


def _strip_stress(name: str) -> str:
    return name.lstrip("',")


def _make_syllable(consonant: str, vowel: str, voice: str, rate: int) -> Syllable:
    """Synthesise, check the phonemes, trim, fade and quantise (to 16 bits, as the cache stores) one syllable."""
    text = SPELLINGS[vowel].format(c=consonant)
    x, events = synthesize(text, voice, rate)
    spoken = [(t, _strip_stress(n)) for t, n in events if not _strip_stress(n).startswith("_")]
    names = [n for _, n in spoken]
    if len(spoken) != 2 or not names[0].startswith(consonant) or names[1] != VOWEL_PHONEMES[vowel]:
        raise RuntimeError(f"espeak-ng spoke {text!r} ({voice}, {rate} wpm) as {names}, expected "
                           f"[{consonant!r}, {VOWEL_PHONEMES[vowel]!r}]")
    peak = float(np.abs(x).max())
    loud = np.flatnonzero(np.abs(x) > TRIM_REL * peak)
    start, end = int(loud[0]), int(loud[-1]) + 1
    onset = int(round(spoken[1][0] * SR)) - start
    if not 0 < onset < end - start:
        raise RuntimeError(f"{text!r} ({voice}, {rate} wpm): the vowel onset {onset} falls outside the trimmed "
                           f"syllable of {end - start} samples")
    y = x[start:end].copy()
    n_fade = int(_FADE_S * SR)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n_fade) + 0.5) / n_fade)).astype(np.float32)
    y[:n_fade] *= ramp
    y[-n_fade:] *= ramp[::-1]
    y = _from_pcm16(_to_pcm16(y))
    return Syllable(y, onset, consonant, vowel, voice, rate)


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def _from_pcm16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 32767.0


def _bank_keys() -> list[BankKey]:
    return [(c, v, voice, rate) for voice in VOICES for rate in RATES for c in CONSONANTS for v in VOWELS]


def _wav_name(key: BankKey) -> str:
    c, v, voice, rate = key
    return f"{voice.replace('+', '_')}-{rate}-{c}{v}.wav"


def _key_str(key: BankKey) -> str:
    return "|".join(map(str, key))


def default_cache_dir() -> Path:
    """``$KIT_CACHE_DIR`` (or ``~/.cache/kit``) / ``talking`` / ``espeak-<version>-v<bank version>``."""
    root = Path(os.environ.get("KIT_CACHE_DIR") or Path.home() / ".cache" / "kit")
    return root / "talking" / f"espeak-{espeak_version()}-v{_BANK_VERSION}"


def _read_bank(folder: Path) -> dict[BankKey, Syllable] | None:
    index = folder / "onsets.json"
    if not index.is_file():
        return None
    try:
        meta = json.loads(index.read_text())
        onsets = meta["onsets"]
        if meta.get("bank_version") != _BANK_VERSION or meta.get("spellings") != SPELLINGS:
            return None
        bank = {}
        for key in _bank_keys():
            rate, audio = wavfile.read(folder / _wav_name(key))
            if rate != SR or audio.dtype != np.int16 or audio.ndim != 1:
                return None
            bank[key] = Syllable(_from_pcm16(audio), int(onsets[_key_str(key)]), *key)
        return bank
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_bank(folder: Path, bank: dict[BankKey, Syllable]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, syl in bank.items():
        wavfile.write(folder / _wav_name(key), SR, _to_pcm16(syl.audio))
    meta = {"bank_version": _BANK_VERSION, "espeak": espeak_version(), "sample_rate": SR, "spellings": SPELLINGS,
            "onsets": {_key_str(k): s.onset for k, s in bank.items()}}
    tmp = folder / f"onsets.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(folder / "onsets.json")  # the index goes last: a half-written bank is never read


def _load_or_build(folder: Path) -> dict[BankKey, Syllable]:
    bank = _read_bank(folder)
    if bank is None:
        bank = {key: _make_syllable(*key) for key in _bank_keys()}
        try:
            _write_bank(folder, bank)
        except OSError:
            pass  # a read-only cache dir only costs a rebuild next time
    return bank


@functools.lru_cache(maxsize=1)
def _default_bank(folder: str) -> dict[BankKey, Syllable]:
    return _load_or_build(Path(folder))


def syllable_bank(cache_dir: str | Path | None = None) -> dict[BankKey, Syllable]:
    """All ``CONSONANTS x VOWELS x VOICES x RATES`` syllables (200), keyed ``(consonant, vowel, voice, rate)``.

    Read from ``cache_dir`` (WAV files, 16-bit PCM, + ``onsets.json``) when it holds a complete bank of this
    version, else synthesised (about a second) and written there. ``None``: ``default_cache_dir()``, and the bank
    is also memoised in-process. The returned dict is a fresh copy; its ``Syllable`` objects are shared.
    """
    if cache_dir is None:
        return dict(_default_bank(str(default_cache_dir())))
    return _load_or_build(Path(cache_dir))


# --- clips -------------------------------------------------------------------------------------------------


@dataclass
class Clip:
    """One utterance of random syllables, ``n_frames`` video frames long.

    ``audio`` float32 [n_frames * 640] at 16 kHz. ``visemes`` int64 [n_frames]: index into ``VISEMES`` of what
    is spoken in each 40 ms frame, decided by the syllable part that covers the frame's centre sample: the
    vowel's index during the vowel; during the consonant 0 (closed) for b/m and the following vowel's index for
    l/s/t (lips already shaped for the vowel, at ``ONSET_OPENNESS`` = half opening); 0 in the pauses.
    ``openness`` float32 [n_frames]: that articulatory target opening (1 vowel, 0.5 l/s/t consonant, 0 closed).
    ``energy`` float32 [n_frames]: RMS per frame divided by the clip's largest frame RMS (max 1).
    ``segments``: per syllable ``(start, onset, end)`` sample positions in ``audio`` (onset = start of the
    vowel; ``start`` may be negative / ``end`` past the end for syllables cut by a window). ``syllables``: their
    names (``"ba"``). ``voice``/``rate``: the espeak-ng voice and words-per-minute rate of every syllable.
    """

    audio: np.ndarray
    visemes: np.ndarray
    energy: np.ndarray
    voice: str
    syllables: list[str]
    n_frames: int
    openness: np.ndarray
    rate: int
    segments: list[tuple[int, int, int]]


def _s2n(seconds: float) -> int:
    return int(round(seconds * SR))


def _draw_silence(rng: np.random.Generator) -> int:
    lo, hi = LEAD_RANGE_S
    return int(rng.integers(_s2n(lo), _s2n(hi) + 1))


def _draw_gap(rng: np.random.Generator) -> int:
    lo, hi = GAP_RANGE_S
    return int(rng.integers(_s2n(lo), _s2n(hi) + 1))


def _fill(pool: Sequence[Syllable], rng: np.random.Generator, space: int) -> tuple[list[Syllable], list[int]]:
    """Random syllables and the pauses between them (drawn from ``GAP_RANGE_S``, the last one shortened if that
    lets another syllable fit) that fit into ``space`` samples; returns (syllables, gaps between them)."""
    g_lo = _s2n(GAP_RANGE_S[0])
    lengths = np.array([len(s.audio) for s in pool])
    chosen: list[Syllable] = []
    gaps: list[int] = []
    used = 0
    while True:
        gap = _draw_gap(rng) if chosen else 0
        fits = np.flatnonzero(lengths <= space - used - gap)
        if len(fits) == 0 and chosen:
            room = space - used - g_lo
            fits = np.flatnonzero(lengths <= room)
            if len(fits) == 0:
                return chosen, gaps
            syl = pool[int(rng.choice(fits))]
            gap = int(rng.integers(g_lo, space - used - len(syl.audio) + 1))
        elif len(fits) == 0:
            return chosen, gaps
        else:
            syl = pool[int(rng.choice(fits))]
        if chosen:
            gaps.append(gap)
        chosen.append(syl)
        used += gap + len(syl.audio)


def _place_exact(pool: Sequence[Syllable], rng: np.random.Generator, n_samples: int) -> list[tuple[Syllable, int]]:
    """(syllable, start sample) with a leading and a trailing silence each drawn from ``LEAD_RANGE_S``.

    The spare room left after the last syllable that fits goes into the pauses, in proportion to how far each
    is below the longest pause; if they cannot take it all (only with clips of about 1 s), another draw is
    tried, and as a last resort the trailing silence gets longer.
    """
    lead, trail = _draw_silence(rng), _draw_silence(rng)
    space = n_samples - lead - trail
    g_hi = _s2n(GAP_RANGE_S[1])
    best: tuple[int, list[Syllable], list[int]] | None = None
    for _ in range(32):
        syls, gaps = _fill(pool, rng, space)
        if not syls:
            break
        spare = space - sum(len(s.audio) for s in syls) - sum(gaps)
        room = np.array([g_hi - g for g in gaps], dtype=np.int64)
        excess = spare - int(room.sum())
        if best is None or excess < best[0]:
            best = (excess, syls, gaps)
        if excess <= 0:
            break
    if best is None:
        raise ValueError(f"a clip of {n_samples / SR:.2f} s has no room for one syllable after its lead-in "
                         f"and trailing silence; use more frames")
    _, syls, gaps = best
    spare = space - sum(len(s.audio) for s in syls) - sum(gaps)
    room = np.array([g_hi - g for g in gaps], dtype=np.int64)
    if len(gaps) and room.sum() > 0:
        add = np.floor(room * min(1.0, spare / room.sum())).astype(np.int64)
        rest = min(spare, int(room.sum())) - int(add.sum())
        for j in np.argsort(-(room - add))[:rest]:
            add[j] += 1
        gaps = [g + int(a) for g, a in zip(gaps, add)]
    placed, pos = [], lead
    for j, syl in enumerate(syls):
        placed.append((syl, pos))
        pos += len(syl.audio) + (gaps[j] if j < len(gaps) else 0)
    return placed


def _place_open(pool: Sequence[Syllable], rng: np.random.Generator, n_samples: int,
                lead: int) -> list[tuple[Syllable, int]]:
    """(syllable, start) after a pause of ``lead`` samples, filled up to and across ``n_samples`` (the last
    syllable may run past the end)."""
    placed, pos = [], lead
    while pos < n_samples:
        syl = pool[int(rng.integers(len(pool)))]
        placed.append((syl, pos))
        pos += len(syl.audio) + _draw_gap(rng)
    return placed


def _timeline(placed: Sequence[tuple[Syllable, int]], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """visemes int64 [n_frames] and openness float32 [n_frames] from the frame-centre rule (see ``Clip``)."""
    centres = np.arange(n_frames) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2
    visemes = np.zeros(n_frames, np.int64)
    openness = np.zeros(n_frames, np.float32)
    for syl, start in placed:
        v = VISEMES.index(syl.vowel)
        onset, end = start + syl.onset, start + len(syl.audio)
        vowel = (centres >= onset) & (centres < end)
        visemes[vowel], openness[vowel] = v, 1.0
        if syl.consonant not in CLOSED_CONSONANTS:
            cons = (centres >= start) & (centres < onset)
            visemes[cons], openness[cons] = v, ONSET_OPENNESS
    return visemes, openness


def _frame_energy(audio: np.ndarray) -> np.ndarray:
    """RMS per 640-sample frame, divided by its maximum: float32 [len(audio) // 640]."""
    rms = np.sqrt(np.mean(audio.reshape(-1, SAMPLES_PER_FRAME).astype(np.float64) ** 2, axis=1))
    return (rms / max(float(rms.max()), 1e-12)).astype(np.float32)


def _mix(placed: Sequence[tuple[Syllable, int]], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """The syllables added at their positions (cut at both ends), scaled to a random peak, plus the noise floor."""
    audio = np.zeros(n_samples, np.float32)
    for syl, start in placed:
        a, b = max(start, 0), min(start + len(syl.audio), n_samples)
        if a < b:
            audio[a:b] += syl.audio[a - start:b - start]
    peak = float(rng.uniform(*_GAIN_RANGE))
    audio *= peak / max(float(np.abs(audio).max()), 1e-12)
    audio += rng.normal(0.0, peak * 10 ** (NOISE_DB / 20), n_samples).astype(np.float32)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _pool(bank: dict[BankKey, Syllable], voice: str, rate: int) -> list[Syllable]:
    pool = [s for (_, _, v, r), s in bank.items() if v == voice and r == rate]
    if not pool:
        raise ValueError(f"the syllable bank has no syllables of voice {voice!r} at {rate} wpm")
    return pool


def _bank_voices(bank: dict[BankKey, Syllable]) -> list[str]:
    return [v for v in VOICES if any(k[2] == v for k in bank)] or sorted({k[2] for k in bank})


def _clip_from(placed: Sequence[tuple[Syllable, int]], audio: np.ndarray, first_frame: int, n_frames: int,
               voice: str, rate: int) -> Clip:
    """The window ``[first_frame, first_frame + n_frames)`` of a longer utterance as a ``Clip``."""
    shift = first_frame * SAMPLES_PER_FRAME
    moved = [(syl, start - shift) for syl, start in placed]
    end = n_frames * SAMPLES_PER_FRAME
    inside = [(syl, s) for syl, s in moved if s < end and s + len(syl.audio) > 0]
    window = audio[shift:shift + end]
    visemes, openness = _timeline(inside, n_frames)
    return Clip(audio=window.copy(), visemes=visemes, energy=_frame_energy(window), voice=voice,
                syllables=[syl.consonant + syl.vowel for syl, _ in inside], n_frames=n_frames, openness=openness,
                rate=rate, segments=[(s, s + syl.onset, s + len(syl.audio)) for syl, s in inside])


def _check_frames(n_frames: int, least: int = 10) -> None:
    if int(n_frames) != n_frames or n_frames < least:
        raise ValueError(f"n_frames must be an integer >= {least}, got {n_frames}")


def _voice_and_rate(bank: dict[BankKey, Syllable], rng: np.random.Generator,
                    voice: str | None) -> tuple[str, int]:
    voices = _bank_voices(bank)
    if voice is None:
        voice = voices[int(rng.integers(len(voices)))]
    elif voice not in voices:
        raise ValueError(f"voice {voice!r} is not in the syllable bank (it has {voices})")
    rates = [r for r in RATES if any(k[2] == voice and k[3] == r for k in bank)]
    return voice, rates[int(rng.integers(len(rates)))]


def make_clip(bank: dict[BankKey, Syllable], rng: np.random.Generator, n_frames: int = 50,
              voice: str | None = None) -> Clip:
    """A random utterance of ``n_frames`` frames (``n_frames * 640`` samples) by one voice at one rate.

    A leading silence from ``LEAD_RANGE_S`` (80-200 ms), then random syllables of the voice (random if None) and
    a random rate from ``RATES`` separated by pauses within ``GAP_RANGE_S`` (60-250 ms), then a trailing silence
    from the same distribution as the leading one (with clips shorter than about 1.2 s it may be longer). The
    peak amplitude is random in 0.5..0.9 and noise at -50 dB below the peak lies under everything. The viseme
    timeline is derived from the sample positions of the syllables (see ``Clip``).
    """
    _check_frames(n_frames)
    voice, rate = _voice_and_rate(bank, rng, voice)
    n_samples = n_frames * SAMPLES_PER_FRAME
    placed = _place_exact(_pool(bank, voice, rate), rng, n_samples)
    return _clip_from(placed, _mix(placed, n_samples, rng), 0, n_frames, voice, rate)


def _shifted_pair(bank: dict[BankKey, Syllable], rng: np.random.Generator, n_frames: int, offset: int,
                  voice: str | None = None) -> tuple[Clip, Clip]:
    """(audio clip, video clip) of one longer utterance, the audio window ``offset`` frames earlier in it than
    the video window (so in the pair the audio is ``offset`` frames late). The audio window is an ordinary
    ``make_clip`` utterance; the ``|offset|`` frames the video window reaches beyond it (after it if
    ``offset > 0``, before it if < 0) hold more syllables of the same voice after/before a pause."""
    voice, rate = _voice_and_rate(bank, rng, voice)
    pool = _pool(bank, voice, rate)
    n_main, k = n_frames * SAMPLES_PER_FRAME, abs(offset)
    n_extra = k * SAMPLES_PER_FRAME
    main = _place_exact(pool, rng, n_main)
    extra = _place_open(pool, rng, n_extra, _draw_gap(rng))
    if offset > 0:  # utterance = main + extra; audio window at frame 0, video window at frame k
        placed = main + [(syl, n_main + s) for syl, s in extra]
        audio_at, video_at = 0, k
    else:  # utterance = mirrored extra + main; video window at frame 0, audio window at frame k
        placed = [(syl, n_extra - s - len(syl.audio)) for syl, s in extra] + [(syl, n_extra + s) for syl, s in main]
        audio_at, video_at = k, 0
    audio = _mix(placed, n_main + n_extra, rng)
    return (_clip_from(placed, audio, audio_at, n_frames, voice, rate),
            _clip_from(placed, audio, video_at, n_frames, voice, rate))


def silence_bounds(audio: np.ndarray, threshold: float = 0.02) -> tuple[float, float]:
    """(leading, trailing) silence of a clip's ``audio`` [L] in seconds: time before the first and after the
    last sample whose magnitude exceeds ``threshold`` times the clip's peak (2% lies about 6 noise sigmas above
    the -50 dB floor and below every syllable's trimmed edge)."""
    x = np.abs(np.asarray(audio, np.float32))
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"audio must be a non-empty 1-D array, got shape {x.shape}")
    loud = np.flatnonzero(x > threshold * float(x.max()))
    if len(loud) == 0:
        return len(x) / SR, len(x) / SR
    return loud[0] / SR, (len(x) - 1 - loud[-1]) / SR


# --- the mouth ---------------------------------------------------------------------------------------------

# Per viseme, in units of the image side: mouth (cavity) width, cavity height at opening 1, lip thickness,
# teeth visible (0/1). "closed" only matters where a closed shape is given a non-zero opening.
_SHAPES = {
    "closed": (0.40, 0.16, 0.050, 0.0),
    "a": (0.46, 0.34, 0.045, 1.0),   # wide, wide open
    "e": (0.50, 0.21, 0.040, 1.0),   # wide, medium
    "i": (0.56, 0.10, 0.035, 1.0),   # widest, narrow slit
    "o": (0.30, 0.28, 0.070, 0.0),   # round
    "u": (0.20, 0.17, 0.080, 0.0),   # small round, pursed
}
_SHAPE_TABLE = np.array([_SHAPES[v] for v in VISEMES], dtype=np.float64)
_SUB = 16  # cv2 drawing precision: coordinates in 1/16 pixel (shift=4)


def _smooth_jitter(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random wobble over frames ``t``: two sinusoids of 0.15-0.8 Hz, peak about ``amplitude``."""
    out = np.zeros(len(t))
    for _ in range(2):
        f, phase = rng.uniform(0.15, 0.8), rng.uniform(0, 2 * np.pi)
        out += 0.5 * amplitude * np.sin(2 * np.pi * f * t / FPS + phase)
    return out


def _ellipse(mask: np.ndarray, centre: tuple[int, int], ax: float, ay: float) -> np.ndarray:
    """Clear the uint8 ``mask`` and fill an axis-aligned anti-aliased ellipse into it (255 = inside); half-axes
    in pixels, ``centre`` in 1/16 pixel."""
    mask[:] = 0
    axes = (max(int(round(ax * _SUB)), 1), max(int(round(ay * _SUB)), 1))
    cv2.ellipse(mask, centre, axes, 0.0, 0.0, 360.0, 255, -1, cv2.LINE_AA, 4)
    return mask


def _paint(frame: np.ndarray, mask: np.ndarray, value: np.ndarray | float, alpha: float = 1.0) -> None:
    """Blend ``value`` into the float ``frame`` with the coverage ``alpha * mask / 255``."""
    frame += (alpha / 255.0 * mask) * (value - frame)


def render_mouth(visemes: np.ndarray, opening: np.ndarray, rng: np.random.Generator, size: int = 32,
                 shape_of: np.ndarray | None = None, blur: float = 0.0) -> np.ndarray:
    """A grey procedural mouth video: uint8 [T, size, size].

    ``visemes`` int [T] (indices into ``VISEMES``) set each frame's mouth shape (width, height at full
    opening, lip thickness, teeth): a wide-open, e wide-medium, i wide-narrow, o round, u small round, closed a
    line; ``opening`` float [T] in [0, 1] scales the cavity height (0: lips together, a dark line). ``shape_of``
    int [T]: if given, it sets the shapes instead of ``visemes`` (``visemes`` is then only checked for its
    length), while ``opening`` still sets the height (lip-sync fakes). Per clip (from ``rng``): a skin tone
    with a lighting gradient, a slowly wobbling head position/scale (about 3% of the side / 4%), and per-pixel
    noise (sigma 2 grey levels) on every frame. ``blur`` > 0: Gaussian blur of that sigma (pixels) over the
    mouth region, after the noise, as the blending of a lip-sync generator would leave.
    """
    visemes = np.asarray(visemes)
    opening = np.asarray(opening, dtype=np.float64)
    if visemes.ndim != 1 or opening.shape != visemes.shape:
        raise ValueError(f"visemes and opening must be 1-D of the same length, got {visemes.shape} and "
                         f"{opening.shape}")
    shapes = visemes if shape_of is None else np.asarray(shape_of)
    if shapes.shape != visemes.shape:
        raise ValueError(f"shape_of must have the shape of visemes {visemes.shape}, got {shapes.shape}")
    if len(shapes) and (shapes.min() < 0 or shapes.max() >= len(VISEMES)):
        raise ValueError(f"viseme indices must be in 0..{len(VISEMES) - 1}, got {shapes.min()}..{shapes.max()}")
    if not np.all(np.isfinite(opening)) or (len(opening) and (opening.min() < 0 or opening.max() > 1)):
        raise ValueError("opening must be finite and in [0, 1]")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    if blur < 0:
        raise ValueError(f"blur must be >= 0, got {blur}")
    n = len(visemes)
    s = float(size)
    skin = rng.uniform(140, 195)
    lip = skin - rng.uniform(35, 55)
    cavity = rng.uniform(20, 45)
    teeth = min(255.0, skin + rng.uniform(20, 45))
    yy, xx = np.mgrid[0:size, 0:size] / s
    rows = np.arange(size, dtype=np.float64)[:, None]  # pixel row r covers y in [r, r + 1)
    gx, gy = rng.uniform(-25, 25, 2)
    background = skin + gx * (xx - 0.5) + gy * (yy - 0.5) - 18 * np.exp(-((yy - 0.98) / 0.12) ** 2)
    t = np.arange(n, dtype=np.float64)
    cx = s * (0.5 + _smooth_jitter(rng, t, 0.03))
    cy = s * (0.55 + _smooth_jitter(rng, t, 0.03))
    scale = 1.0 + _smooth_jitter(rng, t, 0.04)
    noise = rng.normal(0.0, 2.0, (n, size, size))
    out = np.empty((n, size, size), np.uint8)
    for i in range(n):
        width, height, lip_t, has_teeth = _SHAPE_TABLE[int(shapes[i])]
        hw = 0.5 * width * s * scale[i]
        hh = 0.5 * height * s * scale[i] * opening[i]
        lt = lip_t * s * scale[i]
        frame = background.copy()
        centre = (int(round(cx[i] * _SUB)), int(round(cy[i] * _SUB)))
        mask = np.zeros((size, size), np.uint8)
        _paint(frame, _ellipse(mask, centre, hw + lt, hh + lt * 1.1), lip)
        mask[:] = 0  # the seam between the lips: a dark line, under the cavity
        p0 = (int(round((cx[i] - hw) * _SUB)), centre[1])
        p1 = (int(round((cx[i] + hw) * _SUB)), centre[1])
        cv2.line(mask, p0, p1, 255, max(1, int(round(s / 32))), cv2.LINE_AA, 4)
        _paint(frame, mask, 0.5 * (lip + cavity))
        if hh > 0.0:  # the cavity, fading in over its first pixel of height so that darkness grows smoothly
            inside: np.ndarray | float = cavity
            if has_teeth:  # upper teeth: a light band over the top fifth of the cavity, fading in with it
                cover = np.clip(cy[i] - 0.6 * hh - rows, 0.0, 1.0) * min(1.0, hh / 2.0)
                inside = cavity + cover * (teeth - cavity)
            _paint(frame, _ellipse(mask, centre, hw, max(hh, 0.5)), inside, alpha=min(1.0, hh))
        frame += noise[i]
        if blur > 0:
            r = int(np.ceil(hw + lt + 3 * blur + 2))
            x0, x1 = max(int(cx[i]) - r, 0), min(int(cx[i]) + r + 1, size)
            y0, y1 = max(int(cy[i]) - r, 0), min(int(cy[i]) + r + 1, size)
            frame[y0:y1, x0:x1] = cv2.GaussianBlur(np.ascontiguousarray(frame[y0:y1, x0:x1]), (0, 0), blur)
        out[i] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return out


# --- the data set ------------------------------------------------------------------------------------------


def _smooth(x: np.ndarray, kernel: Sequence[float]) -> np.ndarray:
    """Centred FIR smoothing with edge padding: float32 of ``x``'s length."""
    k = np.asarray(kernel, np.float64)
    k = k / k.sum()
    pad = len(k) // 2
    xp = np.pad(np.asarray(x, np.float64), (pad, len(k) - 1 - pad), mode="edge")
    return np.convolve(xp, k[::-1], mode="valid").astype(np.float32)


def speech_opening(openness: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """The mouth opening of a speaking mouth, float32 [T] in [0, 1]: the articulatory target (``Clip.openness``)
    times ``0.4 + 0.6 * energy``, smoothed with the centred kernel (1/4, 1/2, 1/4) (about 2 frames, no lag)."""
    target = np.asarray(openness, np.float32) * (0.4 + 0.6 * np.asarray(energy, np.float32))
    return np.clip(_smooth(target, (0.25, 0.5, 0.25)), 0.0, 1.0)


def energy_opening(energy: np.ndarray) -> np.ndarray:
    """The opening of an audio-driven generic talking head, float32 [T] in [0, 1]: the energy smoothed over 5
    frames (centred box) and delayed by one frame."""
    smooth = _smooth(np.asarray(energy, np.float32), np.ones(5))
    return np.clip(np.concatenate([smooth[:1], smooth[:-1]]), 0.0, 1.0).astype(np.float32)


def _fill_vowels(visemes: np.ndarray) -> np.ndarray:
    """Each closed frame takes the last vowel viseme before it (the first one for a closed start)."""
    idx = np.flatnonzero(visemes > 0)
    if len(idx) == 0:
        return np.full_like(visemes, VISEMES.index("a"))
    last = np.maximum.accumulate(np.where(visemes > 0, np.arange(len(visemes)), -1))
    return np.where(last >= 0, visemes[np.maximum(last, 0)], visemes[idx[0]])


@dataclass
class TalkingSet(torch.utils.data.Dataset):
    """N audio-visual clips of T frames, real and fake, as numpy arrays (also a torch ``Dataset``).

    ``video`` uint8 [N, T, S, S] grey mouths; ``audio`` float32 [N, T * 640] at 16 kHz; ``visemes_audio`` int64
    [N, T]: what the audio says per frame (``VISEMES`` indices); ``visemes_video`` int64 [N, T]: what mouth shape
    the video shows (0: closed or a closed shape); ``label`` int64 [N] (1 = fake); ``kind`` str [N] (one of
    ``FAKE_KINDS``); ``offset`` int64 [N]: the audio delay in frames of ``shift`` fakes (positive = audio late:
    ``visemes_audio[:, t] == visemes_video[:, t - offset]``), else 0; ``voice`` str [N]: the voice of the audio;
    ``voice_video`` str [N]: the voice of the utterance the video was made from (differs from ``voice`` only for
    ``swap``); ``opening`` float32 [N, T]: the mouth opening in [0, 1] that drove each video frame.
    """

    video: np.ndarray
    audio: np.ndarray
    visemes_audio: np.ndarray
    visemes_video: np.ndarray
    label: np.ndarray
    kind: np.ndarray
    offset: np.ndarray
    voice: np.ndarray
    voice_video: np.ndarray
    opening: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        """Row ``i`` as tensors: ``video`` float32 [T, S, S] in [0, 1], ``audio`` float32 [T * 640], ``label``,
        ``offset`` int64 scalars, ``visemes_audio``/``visemes_video`` int64 [T]; plus ``kind`` and ``voice`` str."""
        return {"video": torch.from_numpy(self.video[i].astype(np.float32) / 255.0),
                "audio": torch.from_numpy(self.audio[i].copy()),
                "label": torch.tensor(int(self.label[i]), dtype=torch.int64),
                "visemes_audio": torch.from_numpy(self.visemes_audio[i].copy()),
                "visemes_video": torch.from_numpy(self.visemes_video[i].copy()),
                "offset": torch.tensor(int(self.offset[i]), dtype=torch.int64),
                "kind": str(self.kind[i]), "voice": str(self.voice[i])}

    @property
    def n_frames(self) -> int:
        """T, frames per clip."""
        return int(self.video.shape[1])

    def subset(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> TalkingSet:
        """The rows picked by a boolean mask [N] or by integer indices (in that order), as a new set (copies)."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype == bool:
            if sel.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape ({len(self)},), got {sel.shape}")
            sel = np.flatnonzero(sel)
        elif sel.size == 0:
            sel = sel.astype(np.int64)
        elif not np.issubdtype(sel.dtype, np.integer) or sel.ndim != 1:
            raise ValueError(f"subset takes a boolean mask or 1-D integer indices, got dtype {sel.dtype} and shape "
                             f"{sel.shape}")
        if sel.size and (sel.min() < -len(self) or sel.max() >= len(self)):
            raise ValueError(f"indices out of range for a set of {len(self)} clips")
        return TalkingSet(**{name: getattr(self, name)[sel] for name in self.__dataclass_fields__})


def _row(kind: str, bank: dict[BankKey, Syllable], rng: np.random.Generator, n_frames: int, size: int,
         lipsync_blur: float) -> dict:
    """One row of ``make_talking`` (see there) as a dict of per-clip arrays/values."""
    offset = 0
    if kind == "real":
        audio_clip = make_clip(bank, rng, n_frames)
        shapes = seen = audio_clip.visemes
        opening, voice_video = speech_opening(audio_clip.openness, audio_clip.energy), audio_clip.voice
    elif kind == "swap":
        voices = _bank_voices(bank)
        if len(voices) < 2:
            raise ValueError("swap fakes need a syllable bank with at least two voices")
        face = make_clip(bank, rng, n_frames)
        others = [v for v in voices if v != face.voice]
        audio_clip = make_clip(bank, rng, n_frames, voice=others[int(rng.integers(len(others)))])
        shapes, opening, voice_video = face.visemes, speech_opening(face.openness, face.energy), face.voice
        seen = face.visemes
    elif kind == "shift":
        offset = int(rng.choice([-1, 1]) * rng.integers(SHIFT_RANGE[0], SHIFT_RANGE[1] + 1))
        audio_clip, face = _shifted_pair(bank, rng, n_frames, offset)
        shapes, opening, voice_video = face.visemes, speech_opening(face.openness, face.energy), face.voice
        seen = face.visemes
    elif kind == "lipsync":
        audio_clip = make_clip(bank, rng, n_frames)
        other = make_clip(bank, rng, n_frames)
        opening = speech_opening(audio_clip.openness, audio_clip.energy)
        shapes = np.where(audio_clip.openness > 0, _fill_vowels(other.visemes), 0)
        voice_video, seen = audio_clip.voice, shapes
    elif kind == "talking_head":
        audio_clip = make_clip(bank, rng, n_frames)
        opening = energy_opening(audio_clip.energy)
        shapes = np.full(n_frames, TALKING_HEAD_SHAPE, np.int64)
        seen = np.where(opening >= OPEN_THRESHOLD, TALKING_HEAD_SHAPE, 0)
        voice_video = audio_clip.voice
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {FAKE_KINDS}")
    blur = lipsync_blur if kind == "lipsync" else 0.0
    video = render_mouth(shapes, opening, rng, size=size, blur=blur)
    return {"video": video, "audio": audio_clip.audio, "visemes_audio": audio_clip.visemes,
            "visemes_video": np.asarray(seen, np.int64), "label": int(kind != "real"), "kind": kind,
            "offset": offset, "voice": audio_clip.voice, "voice_video": voice_video,
            "opening": np.asarray(opening, np.float32)}


def make_talking(n: int, seed: int = 0, kinds: tuple[str, ...] = ("real", "swap", "shift"),
                 fake_fraction: float = 0.5, n_frames: int = 50, size: int = 32, lipsync_blur: float = 0.0,
                 bank: dict[BankKey, Syllable] | None = None) -> TalkingSet:
    """``n`` clips of ``n_frames`` frames (``size`` x ``size`` px mouths), ``round(n * fake_fraction)`` of them
    fakes, dealt round-robin over the fake kinds in ``kinds`` and shuffled; deterministic for a ``seed``.

    Every audio track is a ``make_clip`` utterance (same leading/trailing silence law for every kind). Per kind
    (``voice`` is the audio's voice, drawn uniformly):

    * real: the mouth shows the clip's visemes with ``speech_opening(openness, energy)``;
    * swap: the mouth of utterance A (as in real), the audio of a fresh utterance B by another voice;
    * shift: one utterance, its audio window ``offset`` = k frames (|k| in 4..10, random sign) late against its
      video window, both cut from one longer utterance (no edge artefacts); the audio window is a plain clip
      and the video window reaches ``|k|`` frames past it into more speech of the same voice;
    * lipsync: the mouth opens and closes with the audio's own timing and energy (``speech_opening``), but
      every open frame shows the vowel shape of a third utterance (its visemes, closed frames taking the last
      vowel), with the mouth region blurred by ``lipsync_blur`` (sigma, pixels);
    * talking_head: the fixed mid-open shape ``TALKING_HEAD_SHAPE`` ("e") all along, its opening the audio
      energy smoothed over 5 frames and one frame late (``energy_opening``); ``visemes_video`` is that shape
      where the opening is at least ``OPEN_THRESHOLD`` and 0 elsewhere.

    ``bank``: a ``syllable_bank()`` (default: the cached one). Raises ValueError for an unknown or repeated
    kind, for ``kinds`` without "real" while ``fake_fraction < 1`` or without a fake kind while
    ``fake_fraction > 0``, for ``fake_fraction`` outside [0, 1], ``n < 1``, ``n_frames < 20``, ``size < 16``,
    ``lipsync_blur < 0``.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in FAKE_KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {unknown}; expected some of {FAKE_KINDS}")
    if len(set(kinds)) != len(kinds) or not kinds:
        raise ValueError(f"kinds must be a non-empty tuple without repeats, got {kinds}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    _check_frames(n_frames, least=20)
    if not 0.0 <= fake_fraction <= 1.0:
        raise ValueError(f"fake_fraction must be in [0, 1], got {fake_fraction}")
    fakes = [k for k in kinds if k != "real"]
    n_fake = int(round(n * fake_fraction))
    if n_fake < n and "real" not in kinds:
        raise ValueError(f"kinds {kinds} has no 'real' but fake_fraction={fake_fraction} < 1 asks for real clips")
    if n_fake > 0 and not fakes:
        raise ValueError(f"kinds {kinds} has no fake kind but fake_fraction={fake_fraction} asks for fakes")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    if lipsync_blur < 0:
        raise ValueError(f"lipsync_blur must be >= 0, got {lipsync_blur}")
    bank = syllable_bank() if bank is None else bank
    seeds = np.random.SeedSequence(seed)
    top = np.random.default_rng(seeds.spawn(1)[0])
    assigned = np.array(["real"] * (n - n_fake) + [fakes[j % len(fakes)] for j in range(n_fake)])
    assigned = assigned[top.permutation(n)]
    rows = [_row(str(kind), bank, np.random.default_rng(s), n_frames, size, lipsync_blur)
            for kind, s in zip(assigned, seeds.spawn(n))]
    cols = {name: [r[name] for r in rows] for name in rows[0]}
    return TalkingSet(
        video=np.stack(cols["video"]), audio=np.stack(cols["audio"]).astype(np.float32),
        visemes_audio=np.stack(cols["visemes_audio"]).astype(np.int64),
        visemes_video=np.stack(cols["visemes_video"]).astype(np.int64),
        label=np.array(cols["label"], np.int64), kind=np.array(cols["kind"], dtype=str),
        offset=np.array(cols["offset"], np.int64), voice=np.array(cols["voice"], dtype=str),
        voice_video=np.array(cols["voice_video"], dtype=str), opening=np.stack(cols["opening"]))
