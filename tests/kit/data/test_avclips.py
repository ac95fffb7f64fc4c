"""AVClipList and the CSV reader on a fixture in the authors' schema: real wavs, mp4s and a CSV the test writes."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.io import wavfile

from kit.data.avclips import (
    CMDFD_SUBSETS,
    CSV_COLUMNS,
    FAV_CATEGORIES,
    SAMPLES_PER_FRAME,
    AVClipList,
    cmdfd_csv,
    fav_category,
    read_clip_csv,
    read_video,
    read_wav,
)


def _rgb(k: int) -> tuple[int, int, int]:
    """The uniform colour (R, G, B) of frame k."""
    return 40 + 15 * k, 60 + 10 * k, 100


def _grey(k: int) -> float:
    r, g, b = _rgb(k)
    return 0.299 * r + 0.587 * g + 0.114 * b


def _write_mp4(path: Path, n_frames: int) -> None:
    """48 x 48 colour mp4 (mp4v, 25 fps); frame k is the uniform colour ``_rgb(k)``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (48, 48))
    assert writer.isOpened()
    for k in range(n_frames):
        r, g, b = _rgb(k)
        writer.write(np.full((48, 48, 3), (b, g, r), np.uint8))
    writer.release()


def _write_wav(path: Path, n_samples: int, rate: int = 16000) -> np.ndarray:
    """int16 mono ramp-like noise; returns the written int16 samples."""
    samples = (np.random.default_rng(n_samples).uniform(-0.5, 0.5, n_samples) * 32767).astype(np.int16)
    wavfile.write(path, rate, samples)
    return samples


def _write_csv(path: Path, rows: list[dict[str, object]], columns: tuple[str, ...] = CSV_COLUMNS) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            w.writerow([row[c] for c in columns])
    return path


def _row(name: str, stem: str, frames: int, samples: int, labels: tuple[int, ...]) -> dict[str, object]:
    return dict(zip(CSV_COLUMNS, [name, f"clips/{stem}.wav", f"clips/{stem}.mp4", *labels, f"{frames}.0", samples,
                                  "25.0", 16000]))


# (ID_Name, stem, frames, audio samples, ENtire/Audio/Video/Identi/Sync labels)
CLIPS = [
    ("id00001+00001+ARVR", "real", 10, 10 * 640 + 300, (0, 0, 0, 1, 1)),
    ("id00002+00002_id00009_wavtolip+AFVF", "fake", 12, 12 * 640 - 200, (1, 1, 1, 0, 1)),
    ("wav2lip+id00004-id00005", "w2l", 11, 11 * 640, (1, 0, 1, 0, 1)),
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "clips").mkdir()
    rows = []
    for name, stem, frames, samples, labels in CLIPS:
        _write_mp4(tmp_path / "clips" / f"{stem}.mp4", frames)
        _write_wav(tmp_path / "clips" / f"{stem}.wav", samples)
        rows.append(_row(name, stem, frames, samples, labels))
    np.save(tmp_path / "clips" / "w2l.npy", np.arange(11 * 8, dtype=np.float64).reshape(11, 8))
    _write_csv(tmp_path / "FAV_test.csv", rows)
    return tmp_path


def test_reads_rows_with_labels_paths_and_categories(root):
    rows = read_clip_csv(root / "FAV_test.csv")
    assert [r.id_name for r in rows] == [c[0] for c in CLIPS]
    assert rows[0].audio_path == (root / "clips" / "real.wav").resolve() and rows[0].video_path.is_absolute()
    assert [r.entire_label for r in rows] == [0, 1, 1] and rows[1].label_vector.tolist() == [1, 1, 1, 0, 1]
    assert rows[1].frame_len == 12 and rows[1].fps == 25 and rows[1].audio_sample_rate == 16000
    assert [r.category for r in rows] == ["ARVR", "AFVF", None]
    assert rows[0].source_csv == root / "FAV_test.csv" and rows[2].line == 4


def test_items_shapes_dtypes_grey_and_lengths(root):
    ds = AVClipList(root / "FAV_test.csv", size=48)
    assert len(ds) == 3 and ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 1]
    assert ds.names == [c[0] for c in CLIPS]
    for i, (name, _, frames, _samples, labels) in enumerate(CLIPS):
        item = ds[i]
        assert item["name"] == name and item["label"] == labels[0]
        assert item["video"].shape == (frames, 48, 48) and item["video"].dtype == np.uint8
        assert item["audio"].shape == (frames * SAMPLES_PER_FRAME,) and item["audio"].dtype == np.float32
        means = item["video"].reshape(frames, -1).mean(axis=1)
        np.testing.assert_allclose(means, [_grey(k) for k in range(frames)], atol=4)
    # the real clip's audio is cut to the frames, the fake's zero-padded
    written = wavfile.read(root / "clips" / "real.wav")[1]
    np.testing.assert_allclose(ds[0]["audio"], written[: 10 * 640] / 32768.0, atol=1e-6)
    assert np.all(ds[1]["audio"][12 * 640 - 200:] == 0) and np.any(ds[1]["audio"][12 * 640 - 201] != 0)


def test_resize_rgb_and_max_frames(root):
    ds = AVClipList(root / "FAV_test.csv", size=24, max_frames=5)
    item = ds[2]
    assert item["video"].shape == (5, 24, 24) and item["audio"].shape == (5 * 640,)
    assert item["lip_features"].shape == (5, 8)
    rgb = read_video(root / "clips" / "fake.mp4", grey=False)
    assert rgb.shape == (12, 48, 48, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb[7].reshape(-1, 3).mean(axis=0), _rgb(7), atol=6)
    assert read_video(root / "clips" / "fake.mp4", size=16, max_frames=3).shape == (3, 16, 16)


def test_lip_features_loaded_or_none(root):
    ds = AVClipList(root / "FAV_test.csv", size=32)
    lip = ds[2]["lip_features"]
    assert lip.dtype == np.float32 and lip.shape == (11, 8)
    np.testing.assert_array_equal(lip, np.arange(88, dtype=np.float32).reshape(11, 8))
    assert ds[0]["lip_features"] is None
    np.save(root / "clips" / "real.npy", np.zeros((4, 8)))  # fewer rows than frames
    with pytest.raises(ValueError, match=r"id00001\+00001\+ARVR.*4 rows for 10"):
        ds[0]


def test_categories_and_subsets(root):
    assert fav_category("id07200+00045+ARVR") == "ARVR"
    assert fav_category("id03716+00040_fake+AFVR") == "AFVR"
    assert fav_category("id06467+00010_id03534_2bV6pIDYmrQ+ARVF") == "ARVF"
    assert fav_category("FAKE/AFVF/clip_3") == "AFVF"
    assert fav_category("wav2lip+id07434-id07445") is None and fav_category("xARVRx") is None
    assert set(FAV_CATEGORIES) == {"ARVR", "AFVR", "ARVF", "AFVF"}
    subsets = AVClipList(root / "FAV_test.csv").subsets()
    assert list(subsets) == ["ARVR", "AFVF"]
    assert subsets["ARVR"].tolist() == [0] and subsets["AFVF"].tolist() == [1]
    assert subsets["AFVF"].dtype == np.int64


def test_read_wav_formats(tmp_path):
    wavfile.write(tmp_path / "s.wav", 16000, np.array([[32767, -32768], [0, 0]], np.int16))
    x, sr = read_wav(tmp_path / "s.wav")
    assert sr == 16000 and x.dtype == np.float32 and x.shape == (2,)
    np.testing.assert_allclose(x, [-0.5 / 32768, 0], atol=1e-6)
    wavfile.write(tmp_path / "u.wav", 8000, np.array([0, 128, 255], np.uint8))
    np.testing.assert_allclose(read_wav(tmp_path / "u.wav")[0], [-1, 0, 127 / 128], atol=1e-6)
    wavfile.write(tmp_path / "f.wav", 16000, np.array([0.25, -2.0], np.float32))
    np.testing.assert_allclose(read_wav(tmp_path / "f.wav")[0], [0.25, -1.0])
    wavfile.write(tmp_path / "i.wav", 16000, np.array([2**30], np.int32))
    np.testing.assert_allclose(read_wav(tmp_path / "i.wav")[0], [0.5])


def test_csv_errors(root):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_clip_csv(root / "nope.csv")
    rows = [_row(*c[:2], c[2], c[3], c[4]) for c in CLIPS]
    cols = tuple(c for c in CSV_COLUMNS if c not in ("Sync_Label", "FPS"))
    bad = _write_csv(root / "cols.csv", rows, cols)
    with pytest.raises(ValueError, match=r"cols\.csv lacks column\(s\) Sync_Label, FPS"):
        read_clip_csv(bad)
    (root / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        read_clip_csv(root / "empty.csv")
    _write_csv(root / "header_only.csv", [])
    with pytest.raises(ValueError, match="no clips"):
        read_clip_csv(root / "header_only.csv")
    rows[1]["Video_Label"] = "fake"
    _write_csv(root / "label.csv", rows)
    with pytest.raises(ValueError, match=r"label\.csv line 3 \(clip id00002\+00002_id00009_wavtolip\+AFVF\).*Video_Label"):
        read_clip_csv(root / "label.csv")
    rows[1]["Video_Label"] = 2
    _write_csv(root / "label2.csv", rows)
    with pytest.raises(ValueError, match="labels are 0 or 1"):
        read_clip_csv(root / "label2.csv")
    rows[1]["Video_Label"] = 1
    rows[1]["Frame_Len"] = "12.5"
    _write_csv(root / "frames.csv", rows)
    with pytest.raises(ValueError, match=r"line 3 .*Frame_Len is '12\.5'"):
        read_clip_csv(root / "frames.csv")


def test_missing_files(root):
    (root / "clips" / "fake.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"clip id00002\+00002_id00009_wavtolip\+AFVF .*fake\.wav not found"):
        AVClipList(root / "FAV_test.csv")
    rows = read_clip_csv(root / "FAV_test.csv", check_files=False)
    assert len(rows) == 3
    (root / "clips" / "w2l.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=r"w2l\.mp4"):
        read_video(rows[2].video_path)


def test_root_and_path_map(root, tmp_path_factory):
    rows = [_row(*c[:2], c[2], c[3], c[4]) for c in CLIPS]
    for r in rows:  # absolute paths from the authors' machine, as in their CSVs
        r["Audio_Path"] = "/data2/caiyu/data/My_Test/" + str(r["Audio_Path"])
        r["Video_Path"] = "/data2/caiyu/data/My_Test/" + str(r["Video_Path"])
    elsewhere = tmp_path_factory.mktemp("lists")
    _write_csv(elsewhere / "W2L.csv", rows)
    with pytest.raises(FileNotFoundError, match="path_map"):
        read_clip_csv(elsewhere / "W2L.csv")
    ds = AVClipList(elsewhere / "W2L.csv", path_map={"/data2/caiyu/data/My_Test": str(root)})
    assert ds.rows[0].audio_path == (root / "clips" / "real.wav").resolve()
    rel = [_row(*c[:2], c[2], c[3], c[4]) for c in CLIPS]
    _write_csv(elsewhere / "rel.csv", rel)
    assert len(read_clip_csv(elsewhere / "rel.csv", root=root)) == 3


def test_item_errors_name_the_clip(root):
    wavfile.write(root / "clips" / "real.wav", 22050, np.zeros(10 * 640, np.int16))
    ds = AVClipList(root / "FAV_test.csv")
    with pytest.raises(ValueError, match=r"id00001\+00001\+ARVR: .*real\.wav is 22050 Hz; the series reads 16 kHz"):
        ds[0]
    _write_wav(root / "clips" / "fake.wav", 9 * 640)  # 3 frames short of the 12-frame video
    with pytest.raises(ValueError, match=r"id00002\+00002_id00009_wavtolip\+AFVF: audio has 5760 samples.*12 frames"
                                          r" \(7680 samples"):
        ds[1]
    loose = AVClipList(root / "FAV_test.csv", av_tolerance_frames=None)
    assert loose[1]["audio"].shape == (12 * 640,) and np.all(loose[1]["audio"][9 * 640:] == 0)
    _write_wav(root / "clips" / "w2l.wav", 11 * 640 + 3 * 640)  # 3 frames long: fine once max_frames cuts
    with pytest.raises(ValueError, match="disagree by more than 1 frame"):
        ds[2]
    assert AVClipList(root / "FAV_test.csv", max_frames=8)[2]["audio"].shape == (8 * 640,)
    (root / "clips" / "w2l.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"wav2lip\+id00004-id00005"):
        ds[2]


def test_cmdfd_csv(tmp_path):
    assert set(CMDFD_SUBSETS) == {"W2L", "MIT", "A2H", "VRT", "W2L_Self", "MIT_Self", "A2H_Self", "VRT_Self"}
    (tmp_path / "MakeItTalk_Self.csv").write_text(",".join(CSV_COLUMNS) + "\n")
    assert cmdfd_csv(tmp_path, "MIT_Self") == tmp_path / "MakeItTalk_Self.csv"
    with pytest.raises(ValueError, match="W2L, MIT, A2H, VRT, W2L_Self"):
        cmdfd_csv(tmp_path, "wav2lip")
    with pytest.raises(FileNotFoundError, match="Audio2Head.csv"):
        cmdfd_csv(tmp_path, "A2H")
