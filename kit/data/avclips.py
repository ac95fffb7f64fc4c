"""Loaders for the clip lists of the audio-visual deepfake series: FakeAVCeleb and CMDFD.

Source: arXiv:2404.19171 and the authors' repo ljj898/CMDFD-Dataset-and-Deepfake-Detection (``csvfile/`` and
``dataLoader.py``). One CSV row per clip, header

    ID_Name, Audio_Path, Video_Path, ENtire_Label, Audio_Label, Video_Label, Identi_Label, Sync_Label,
    Frame_Len, Audio_Len, FPS, AudioSamRate

Verified in the authors' CSVs: the audio is a 16 kHz wav and the video a 25 fps mp4; the authors' lip
features sit beside the mp4 as a same-stem ``.npy`` ([T, 512] per their training script); labels are 0/1
(``ENtire_Label`` 1 = fake); ``Frame_Len`` and ``FPS`` are written as floats ("670.0", "25.0"); every path is
absolute on the authors' machines (``/data2/caiyu/...``, ``/projects/yucai2/...``), so ``path_map`` rewrites
prefixes before relative paths are joined to ``root``. FakeAVCeleb IDs end in the category tag
(``id07200+00045+ARVR``, ``id03716+00040_fake+AFVR``); CMDFD IDs are ``method+idA-idB`` for fakes (face of
idA driven by the audio of idB; ``wav2lip``, ``MakeItTalk``, ``Audio2Head``, ``VideoReTalk``, with a ``_Self``
suffix in the ``*_Self.csv`` lists, where idA == idB) and ``origin+<clip>`` for the 1000 real clips that every
CMDFD list repeats. ``FAV_train.csv`` is empty in the repo (the per-method ``FAV_train_*.csv`` are not).

Audio/video length: 640 samples (16000 / 25) per video frame. Per the CSVs' own ``Audio_Len`` and
``Frame_Len`` (assuming ``Audio_Len`` is the wav's sample count), audio routinely exceeds ``Frame_Len * 640``
by more than one frame: by 3-5 frames for every FakeAVCeleb Wav2Lip fake, by up to 3.4 frames for W2L, and by
far more for some MakeItTalk / VideoReTalk rows; the authors' loader never rejects a clip, it cuts or wraps
the audio features to the frame count. ``AVClipList`` rejects mismatches above ``av_tolerance_frames`` (one
frame by default; ``None`` turns the check off and always cuts / zero-pads).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy.io import wavfile

CSV_COLUMNS = ("ID_Name", "Audio_Path", "Video_Path", "ENtire_Label", "Audio_Label", "Video_Label",
               "Identi_Label", "Sync_Label", "Frame_Len", "Audio_Len", "FPS", "AudioSamRate")
LABEL_COLUMNS = ("ENtire_Label", "Audio_Label", "Video_Label", "Identi_Label", "Sync_Label")
FPS = 25
SR = 16000
SAMPLES_PER_FRAME = SR // FPS  # 640
CMDFD_SUBSETS = {
    "W2L": "W2L.csv", "MIT": "MakeItTalk.csv", "A2H": "Audio2Head.csv", "VRT": "VideoReTalk.csv",
    "W2L_Self": "W2L_Self.csv", "MIT_Self": "MakeItTalk_Self.csv", "A2H_Self": "Audio2Head_Self.csv",
    "VRT_Self": "VideoReTalk_Self.csv",
}
FAV_CATEGORIES = ("ARVR", "AFVR", "ARVF", "AFVF")
_FAV_TAG = re.compile(r"(?<![A-Za-z0-9])(ARVR|AFVR|ARVF|AFVF)(?![A-Za-z0-9])")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono samples in [-1, 1] and its sample rate (Hz).

    int16 / int32 (also scipy's 24-bit) / uint8 PCM are scaled by their full range, float wavs are clipped to
    [-1, 1], multi-channel wavs are averaged over channels. Returns ``(samples [N] float32, rate)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wav file {path} not found")
    try:
        rate, data = wavfile.read(path)
    except ValueError as err:
        raise ValueError(f"cannot read wav {path}: {err}") from err
    data = np.asarray(data)
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        x = data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    elif np.issubdtype(data.dtype, np.floating):
        x = np.clip(data.astype(np.float64), -1.0, 1.0)
    else:
        raise ValueError(f"wav {path} has unsupported sample type {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), int(rate)


def _read_frames(path: str | Path, size: int | None, grey: bool,
                 max_frames: int | None) -> tuple[np.ndarray, bool]:
    """Decode a video; return (frames uint8 [T, H, W] or [T, H, W, 3] RGB, whether max_frames cut it short)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} not found")
    if size is not None and size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if max_frames is not None and max_frames <= 0:
        raise ValueError(f"max_frames must be positive, got {max_frames}")
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    truncated = False
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path} (not a readable video file)")
        while max_frames is None or len(frames) < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 2:
                frame = frame if grey else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if grey else cv2.COLOR_BGR2RGB)
            if size is not None and frame.shape[:2] != (size, size):
                frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            frames.append(frame)
        if max_frames is not None and len(frames) == max_frames:
            truncated = bool(cap.grab())
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"video {path} has no decodable frames")
    return np.stack(frames).astype(np.uint8, copy=False), truncated


def read_video(path: str | Path, size: int | None = None, grey: bool = True,
               max_frames: int | None = None) -> np.ndarray:
    """Decode a video (mp4 via OpenCV) into uint8 frames.

    Returns [T, H, W] (grey) or [T, H, W, 3] (RGB), resized to ``size`` x ``size`` with ``cv2.INTER_AREA`` when
    ``size`` is given, at most ``max_frames`` frames. FileNotFoundError if the file is missing, ValueError if
    it cannot be opened or yields no frame.
    """
    return _read_frames(path, size, grey, max_frames)[0]


def fav_category(id_name: str) -> str | None:
    """The FakeAVCeleb category tag (ARVR, AFVR, ARVF, AFVF) in a clip ID, or None.

    The authors' IDs end in ``+<tag>``; that field wins, otherwise the last tag standing as a whole token.
    """
    last = id_name.rsplit("+", 1)[-1].strip()
    if last in FAV_CATEGORIES:
        return last
    hits = _FAV_TAG.findall(id_name)
    return hits[-1] if hits else None


@dataclass
class ClipRow:
    """One row of a clip list: paths resolved, labels 0/1, lengths in frames / samples, rates in Hz / fps."""

    id_name: str
    audio_path: Path
    video_path: Path
    entire_label: int
    audio_label: int
    video_label: int
    identi_label: int
    sync_label: int
    frame_len: int
    audio_len: int
    fps: int
    audio_sample_rate: int
    category: str | None
    source_csv: Path
    line: int = 0

    @property
    def lip_path(self) -> Path:
        """Where the authors' lip features sit: the mp4's path with ``.npy``."""
        return self.video_path.with_suffix(".npy")

    @property
    def label_vector(self) -> np.ndarray:
        """int64 [5]: ENtire, Audio, Video, Identi, Sync labels."""
        return np.array([self.entire_label, self.audio_label, self.video_label, self.identi_label,
                         self.sync_label], dtype=np.int64)


def _as_int(text: str, column: str, where: str, *, label: bool = False, minimum: int = 0) -> int:
    """Parse an integer cell that may be written as a float ("25.0"); ValueError naming ``where`` otherwise."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{where}: {column} is {text!r}, not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{where}: {column} is {text!r}, not a whole number")
    out = int(value)
    if label and out not in (0, 1):
        raise ValueError(f"{where}: {column} is {text!r}; labels are 0 or 1")
    if out < minimum:
        raise ValueError(f"{where}: {column} is {text!r}; expected at least {minimum}")
    return out


def _resolve(text: str, root: Path, path_map: Mapping[str, str] | None) -> Path:
    """Apply the first matching prefix of ``path_map`` (longest first), then join relative paths to ``root``."""
    text = text.strip()
    mapping = dict(path_map or {})
    for old in sorted(mapping, key=len, reverse=True):
        if text.startswith(old):
            text = mapping[old] + text[len(old):]
            break
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = root / p
    return p.resolve()


def read_clip_csv(csv_path: str | Path, root: str | Path | None = None, check_files: bool = True,
                  path_map: Mapping[str, str] | None = None) -> list[ClipRow]:
    """Read one of the authors' clip CSVs into ``ClipRow`` s, in file order.

    Paths are relative to ``root`` (default: the CSV's folder) unless absolute; ``path_map`` first replaces
    path prefixes (e.g. ``{"/data2/caiyu/data/My_Test": "/datasets/CMDFD"}``) so the authors' absolute paths
    can point at a local copy. With ``check_files`` every wav and mp4 must exist.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"clip list {csv_path} not found")
    base = Path(root).expanduser() if root is not None else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
        if header is None:
            raise ValueError(f"clip list {csv_path} is empty (expected a header with {', '.join(CSV_COLUMNS)})")
        header = [c.strip() for c in header]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"clip list {csv_path} lacks column(s) {', '.join(missing)} "
                             f"(found: {', '.join(header)})")
        col = {c: header.index(c) for c in CSV_COLUMNS}
        rows: list[ClipRow] = []
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            clip = cells[col["ID_Name"]].strip() if len(cells) > col["ID_Name"] else "?"
            where = f"{csv_path} line {line} (clip {clip})"
            if len(cells) < len(header):
                raise ValueError(f"{where}: {len(cells)} fields, the header has {len(header)}")
            for c in ("ID_Name", "Audio_Path", "Video_Path"):
                if not cells[col[c]].strip():
                    raise ValueError(f"{where}: {c} is empty")
            labels = [_as_int(cells[col[c]], c, where, label=True) for c in LABEL_COLUMNS]
            rows.append(ClipRow(
                clip,
                _resolve(cells[col["Audio_Path"]], base, path_map),
                _resolve(cells[col["Video_Path"]], base, path_map),
                *labels,
                frame_len=_as_int(cells[col["Frame_Len"]], "Frame_Len", where),
                audio_len=_as_int(cells[col["Audio_Len"]], "Audio_Len", where),
                fps=_as_int(cells[col["FPS"]], "FPS", where, minimum=1),
                audio_sample_rate=_as_int(cells[col["AudioSamRate"]], "AudioSamRate", where, minimum=1),
                category=fav_category(clip),
                source_csv=csv_path,
                line=line,
            ))
    if not rows:
        raise ValueError(f"clip list {csv_path} has a header but no clips")
    if check_files:
        gone = [(r, p) for r in rows for p in (r.audio_path, r.video_path) if not p.is_file()]
        if gone:
            r, p = gone[0]
            more = f"; {len(gone) - 1} more file(s) of this list are missing" if len(gone) > 1 else ""
            hint = ("; the authors' CSVs hold absolute paths from their machines, map them with path_map"
                    if p.is_absolute() and len(gone) > 1 else "")
            raise FileNotFoundError(f"clip {r.id_name} ({csv_path} line {r.line}): {p} not found{more}{hint}")
    return rows


class AVClipList(torch.utils.data.Dataset):
    """Clips of one authors' CSV: grey frames, 16 kHz audio cut to the frames, the whole-clip label.

    Item: ``video`` uint8 [T, S, S] (grey) or [T, S, S, 3] (RGB); ``audio`` float32 [T * 640] in [-1, 1];
    ``label`` int (ENtire_Label, 1 = fake); ``name`` the ID_Name; ``lip_features`` float32 [T, D] from the
    same-stem ``.npy`` beside the mp4, or None. T is the decoded frame count, at most ``max_frames`` (the
    authors cap clips at 1000). Audio and video must agree within ``av_tolerance_frames`` video frames
    (``None``: no check); the audio is then cut or zero-padded to T * 640 samples. When ``max_frames`` cuts
    the video short, only audio shorter than the kept frames counts as a mismatch.
    """

    def __init__(self, csv_path: str | Path, root: str | Path | None = None, size: int = 112,
                 max_frames: int | None = None, grey: bool = True, check: bool = True,
                 path_map: Mapping[str, str] | None = None, av_tolerance_frames: float | None = 1.0) -> None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if max_frames is not None and max_frames <= 0:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        if av_tolerance_frames is not None and av_tolerance_frames < 0:
            raise ValueError(f"av_tolerance_frames must be >= 0 or None, got {av_tolerance_frames}")
        self.csv_path = Path(csv_path)
        self.size = size
        self.max_frames = max_frames
        self.grey = grey
        self.av_tolerance_frames = av_tolerance_frames
        self.rows = read_clip_csv(csv_path, root=root, check_files=check, path_map=path_map)
        self.labels = np.array([r.entire_label for r in self.rows], dtype=np.int64)
        self.names = [r.id_name for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def subsets(self) -> dict[str, np.ndarray]:
        """Index arrays (int64) of the clips per FakeAVCeleb category, for the categories present."""
        cats = np.array([r.category or "" for r in self.rows])
        out = {c: np.flatnonzero(cats == c).astype(np.int64) for c in FAV_CATEGORIES}
        return {c: idx for c, idx in out.items() if idx.size}

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        name = row.id_name
        if row.fps != FPS:
            raise ValueError(f"clip {name}: the CSV gives {row.fps} fps; the series reads {FPS} fps video")
        audio, rate = read_wav(row.audio_path)
        if rate != SR:
            raise ValueError(f"clip {name}: {row.audio_path} is {rate} Hz; the series reads 16 kHz audio")
        try:
            video, truncated = _read_frames(row.video_path, self.size, self.grey, self.max_frames)
        except ValueError as err:
            raise ValueError(f"clip {name}: {err}") from err
        t = len(video)
        target = t * SAMPLES_PER_FRAME
        if self.av_tolerance_frames is not None:
            tol = self.av_tolerance_frames * SAMPLES_PER_FRAME
            diff = len(audio) - target
            if (diff < -tol) or (not truncated and diff > tol):
                raise ValueError(
                    f"clip {name}: audio has {len(audio)} samples ({len(audio) / SAMPLES_PER_FRAME:.2f} frames) "
                    f"but the video has {t} frames ({target} samples at {SAMPLES_PER_FRAME} per frame); they "
                    f"disagree by more than {self.av_tolerance_frames:g} frame(s)")
        if len(audio) >= target:
            audio = audio[:target]
        else:
            audio = np.concatenate([audio, np.zeros(target - len(audio), np.float32)])
        return dict(video=video, audio=np.ascontiguousarray(audio, dtype=np.float32), label=int(row.entire_label),
                    name=name, lip_features=self._lip_features(row, t))

    @staticmethod
    def _lip_features(row: ClipRow, t: int) -> np.ndarray | None:
        """float32 [t, D] from the same-stem .npy (trailing dims flattened), None when there is none."""
        path = row.lip_path
        if not path.is_file():
            return None
        try:
            lip = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ValueError(f"clip {row.id_name}: cannot read lip features {path}: {err}") from err
        if lip.ndim < 2:
            raise ValueError(f"clip {row.id_name}: lip features {path} have shape {lip.shape}; expected [T, D]")
        if len(lip) < t:
            raise ValueError(f"clip {row.id_name}: lip features {path} have {len(lip)} rows for {t} video frames")
        return np.ascontiguousarray(lip[:t].reshape(t, -1), dtype=np.float32)


def cmdfd_csv(data_dir: str | Path, subset: str) -> Path:
    """Path of the CSV of a CMDFD subset (a key of ``CMDFD_SUBSETS``, e.g. "W2L_Self") inside ``data_dir``."""
    if subset not in CMDFD_SUBSETS:
        raise ValueError(f"unknown CMDFD subset {subset!r}; valid: {', '.join(CMDFD_SUBSETS)}")
    path = Path(data_dir) / CMDFD_SUBSETS[subset]
    if not path.is_file():
        raise FileNotFoundError(f"CMDFD subset {subset}: {path} not found")
    return path
