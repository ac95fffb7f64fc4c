"""The full preset's real-data path on a fixture in the authors' CSV schema with real wav / mp4 / npy files the test
writes: TalkNet trained with deep_avsr-shaped teachers (small dims), evaluated per CSV; batching and bad inputs."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from kit.cmdfd import real
from kit.cmdfd.config import preset
from kit.cmdfd.teachers import AudioNet, VideoNet
from kit.data.avclips import CSV_COLUMNS

torch.set_num_threads(1)
DIMS = {"d": 16, "heads": 2, "layers": 1, "ff": 32}


def _clip(root, name, label, frames, lip=True, seed=0):
    rng = np.random.default_rng(seed)
    wav, mp4 = root / f"{name}.wav", root / f"{name}.mp4"
    wavfile.write(wav, 16000, (rng.normal(0, 3000, frames * 640)).astype(np.int16))
    w = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 25, (48, 48))
    for k in range(frames):
        w.write(np.full((48, 48, 3), 40 + 10 * k + 60 * label, np.uint8))
    w.release()
    if lip:
        np.save(root / f"{name}.npy", rng.normal(size=(frames, DIMS["d"])).astype(np.float32))
    return {"ID_Name": name, "Audio_Path": wav.name, "Video_Path": mp4.name, "ENtire_Label": label,
            "Audio_Label": 0, "Video_Label": label, "Identi_Label": 0, "Sync_Label": 0, "Frame_Len": frames,
            "Audio_Len": frames * 640, "FPS": 25, "AudioSamRate": 16000}


def _csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fav")
    rows = [_clip(root, f"id{k:03d}+{'ARVR' if k % 2 == 0 else 'AFVF'}", k % 2, 6 + k % 3, seed=k) for k in range(6)]
    _csv(root / "FAV_train.csv", rows[:4])
    _csv(root / "FAV_test.csv", rows[4:] + rows[:2])
    _csv(root / "W2L.csv", rows[1:5])
    teachers = tmp_path_factory.mktemp("teachers")
    torch.manual_seed(0)
    torch.save(AudioNet(**DIMS).state_dict(), teachers / "audio-only.pt")
    torch.save(VideoNet(**DIMS).state_dict(), teachers / "video-only.pt")
    (teachers / "teachers.json").write_text(json.dumps(DIMS))
    return root, teachers


def test_full_preset_needs_data_and_follows_train_py(data):
    root, _ = data
    with pytest.raises(ValueError, match="data_dir"):
        preset("full")
    cfg = preset("full", data_dir=str(root))
    assert (cfg.arch, cfg.size, cfg.lr, cfg.lr_decay, cfg.seed, cfg.features) == ("full", 112, 1e-5, 0.95, 898, "mfcc")


def test_trains_talknet_with_teachers_and_scores_each_csv(data):
    root, teachers = data
    cfg = preset("full", data_dir=str(root), teacher_dir=str(teachers), epochs=2, batch_size=2, num_workers=0,
                 device="cpu", lr=1e-4, test_csvs=("FAV_test.csv", "W2L.csv", "MakeItTalk.csv"))
    res = real.train_real(cfg, progress=False)
    steps = [h for h in res.history if h["kind"] == "train"]
    assert steps and all(np.isfinite(h["loss"]) and h["cd"] > 0 and h["jc"] > 0 for h in steps)
    assert {h["step"] for h in res.history if h["kind"] == "eval"} == {2, 4}
    with pytest.warns(UserWarning, match="MakeItTalk.csv"):
        ev = real.evaluate_real(res.model, cfg)
    assert set(ev) == {"FAV_test", "W2L"} and ev["W2L"]["n"] == 4 and 0 <= ev["FAV_test"]["auc"] <= 1


def test_items_batches_and_augmentation(data):
    root, _ = data
    cfg = preset("full", data_dir=str(root), size=32)
    ds = real.RealClips(real.open_csv(cfg, "FAV_train.csv"), augment=True, seed=1)
    feats, video, y, stft, lip = ds[1]
    t = video.shape[0]
    assert feats.shape == (4 * t, 13) and stft.shape == (4 * t, 321) and lip.shape == (t, DIMS["d"])
    assert video.shape == (t, 32, 32) and 0 <= video.min() and video.max() <= 1 and y.item() == 1
    torch.testing.assert_close(ds[1][1], video)  # seeded by (seed, epoch, index)
    batch = real.crop_collate([ds[0], ds[1], ds[2]])
    tmin = min(len(ds[i][1]) for i in range(3))
    assert batch[1].shape == (3, tmin, 32, 32) and batch[0].shape == (3, 4 * tmin, 13)
    b = real.length_batches(np.array([9, 3, 7, 3, 8]), 2, seed=0)
    assert sorted(i for x in b for i in x) == [0, 1, 2, 3, 4] and {1, 3} in [set(x) for x in b]


def test_bad_inputs_name_the_clip(data, tmp_path):
    root, teachers = data
    row = _clip(tmp_path, "nolip+ARVR", 0, 6, lip=False)
    _csv(tmp_path / "FAV_train.csv", [row])
    cfg = preset("full", data_dir=str(tmp_path), size=32)
    with pytest.raises(FileNotFoundError, match="nolip"):
        real.RealClips(real.open_csv(cfg, "FAV_train.csv"))[0]
    with pytest.raises(FileNotFoundError, match="FAV_test.csv"):
        real.open_csv(cfg, "FAV_test.csv")
    with pytest.raises(FileNotFoundError, match="data_dir"):
        real.open_csv(preset("full", data_dir=str(tmp_path / "none")), "FAV_train.csv")
    with pytest.raises(ValueError, match="teacher_dir"):
        real.train_real(preset("full", data_dir=str(root), epochs=1))
    with pytest.raises(FileNotFoundError, match="audio-only.pt"):
        real.load_teachers(tmp_path)
