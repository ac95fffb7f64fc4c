"""The facesem real-data path on FFSC's published layout (written by kit.data.ffsc.export_ffsc from procedural faces):
the protocols' lists, training from disk with workers' seeded augmentation, epochs and the step decay, evaluation per
method and per video, saved detectors, and the cross-dataset frame folders."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from kit.data.ffsc import PROTOCOL1_METHODS, TRAIN_METHODS, FFSCList, VideoFrames, export_ffsc
from kit.facesem import experiment as ex
from kit.facesem.assets import detector_config, load_detector, save_detector, saved_modes
from kit.facesem.explore import gradcam, lower_upper
from kit.facesem.models import build_detector

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ffsc(tmp_path_factory):
    return export_ffsc(tmp_path_factory.mktemp("ffsc"), n_train=160, n_val=48, n_test=96, size=32)


def cfg_(root, **kw):
    base = dict(data_dir=str(root), backbone="small", pretrained=False, size=32, batch_size=16, epochs=1,
                num_workers=0, device="cpu")
    return ex.preset("full", **{**base, **kw})


def test_presets_follow_the_authors_commands_and_need_data(ffsc):
    with pytest.raises(ValueError, match="data_dir"):
        ex.preset("full")
    full = ex.preset("full", data_dir=str(ffsc))
    assert (full.backbone, full.size, full.lr, full.lambda_lr, full.batch_size) == ("xception", 299, 1e-4, 1e-3, 32)
    assert (full.epochs, full.lr_decay_epochs, full.augment, full.select) == (36, 5, 0.3, "val_acc")
    vit = ex.preset("full_vit", data_dir=str(ffsc))
    assert (vit.backbone, vit.size, vit.lr, vit.lambda_lr) == ("clip_vit_b32", 224, 1e-6, 1e-4)
    with pytest.raises(ValueError, match="'expression'"):
        ex.preset("tiny", held_out="expression")  # FFSC's attribute; procedural faces split it in two
    assert ex.preset("tiny", data_dir=str(ffsc), held_out="expression").held_out == "expression"


def test_protocol_lists_hold_out_what_they_say(ffsc):
    ind = ex.make_data(cfg_(ffsc))
    assert (len(ind["train"]), len(ind["val"])) == (160, 48) and ind["test"] is ind["val"]
    assert set(ind["train"].methods[ind["train"].is_fake == 1]) <= set(TRAIN_METHODS)
    p1 = ex.make_data(cfg_(ffsc, protocol="protocol1"))["test"]
    assert set(p1.methods[p1.is_fake == 1]) <= set(PROTOCOL1_METHODS) and (p1.is_fake == 0).any()
    assert len(set(p1.paths)) == len(p1)  # the reals every Protocol-1 list repeats are read once
    p2 = ex.make_data(cfg_(ffsc, protocol="protocol2", held_out="smile"))  # smile -> FFSC's "expression" folder
    assert "expression" not in set(p2["train"].attributes) and "expression" not in set(p2["val"].attributes)
    assert set(p2["test"].attributes) == {"real", "expression"}
    one = ex.make_data(cfg_(ffsc, protocol="protocol1", test_lists=("test_age.txt",)))["test"]
    assert set(one.attributes) == {"real", "age"}


def test_missing_data_and_lists_are_named(ffsc, tmp_path):
    with pytest.raises(FileNotFoundError, match="FFSC root"):
        ex.make_data(cfg_(tmp_path / "nowhere"))
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match="train_SLH_v2_update.txt"):
        ex.make_data(cfg_(tmp_path / "bare"))
    lonely = tmp_path / "lonely"
    export_ffsc(lonely, n_train=20, n_val=8, n_test=8, size=16)
    for f in lonely.glob("test_*.txt"):
        f.unlink()
    with pytest.raises(FileNotFoundError, match="test_lists"):
        ex.make_data(cfg_(lonely, protocol="protocol1"))
    with pytest.warns(UserWarning, match="no protocol1 test set"):
        sets = ex.test_sets(cfg_(lonely))
    assert set(sets) == {"in_distribution", "protocol2"}


def test_disk_items_augment_by_seed_epoch_and_index(ffsc):
    faces = ex.make_data(cfg_(ffsc))["train"]
    a, b = ex._Items(faces, augment=1.0, seed=3), ex._Items(faces, augment=1.0, seed=3)
    torch.testing.assert_close(a[5][0], b[5][0])  # what a worker process reads is what one process reads
    plain = ex._Items(faces)[5][0]
    assert not torch.equal(a[5][0], plain)
    b.set_epoch(1)
    assert not torch.equal(a[5][0], b[5][0])
    x, y, c = ex._Items(faces)[5]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 and y.shape == (12,) and c.ndim == 0
    draws = ex._Draws(ex._Items(faces), 8, seed=1)
    first = draws(0)
    assert first[0].shape == (8, 3, 32, 32)
    assert not torch.equal(first[0], draws(1)[0])


@pytest.mark.parametrize("mode", ["so", "multiclass"])
def test_trains_from_disk_and_evaluates_per_method_and_video(ffsc, mode):
    cfg = cfg_(ffsc, mode=mode, protocol="protocol1", epochs=2, lr_decay_epochs=1, lr=1e-3)
    data = ex.make_data(cfg)
    res = ex.train(cfg, data, progress=False)
    steps = 2 * int(np.ceil(160 / 16))
    train_rows = [h for h in res.history if h["kind"] == "train"]
    assert train_rows[-1]["step"] <= steps and {h["step"] for h in res.history if h["kind"] == "eval"} >= {10, 20}
    lr = {h["step"]: h["lr"] for h in train_rows}
    assert (lr[5], lr[15]) == pytest.approx((1e-3, 5e-4))  # StepLR(1 epoch of 10 steps, 0.5)
    assert res.methods == list(TRAIN_METHODS) and res.model.head.out_features == 12  # 12 nodes / real + 11 methods
    if mode == "so":
        assert len(res.lambdas) == steps
    ev = ex.evaluate(res.model, mode, data["test"])
    fakes = set(data["test"].methods[data["test"].is_fake == 1])
    assert set(ev["per_method"]) == fakes and all(0 <= v <= 1 for v in ev["per_method"].values())
    assert ev["n_videos"] == len(set(data["test"].videos)) < ev["n"] and 0 <= ev["video_auc"] <= 1


def test_multiclass_refuses_fakes_of_unknown_methods(tmp_path):
    root = export_ffsc(tmp_path / "f", n_train=24, n_val=8, n_test=8, size=16)
    lines = (root / "train_SLH_v2_update.txt").read_text().splitlines()
    fake = next(line for line in lines if line.split()[1][0] == "1")
    rel = fake.split()[0]
    odd = root / "Train" / "MysteryGAN" / "v0000" / "0000.png"
    odd.parent.mkdir(parents=True)
    odd.write_bytes((root / rel).read_bytes())
    (root / "train_SLH_v2_update.txt").write_text("\n".join(lines + [f"Train/MysteryGAN/v0000/0000.png {fake.split()[1]}"]))
    with pytest.raises(ValueError, match="MysteryGAN"):
        ex.train(cfg_(root, mode="multiclass", size=16), progress=False)


def test_saved_detectors_round_trip(ffsc, tmp_path):
    cfg = cfg_(ffsc)
    torch.manual_seed(0)
    model = build_detector("so", "small").eval()
    save_detector(model, "so", cfg, list(TRAIN_METHODS), tmp_path / "d")
    save_detector(build_detector("binary", "small"), "binary", cfg, list(TRAIN_METHODS), tmp_path / "d")
    assert saved_modes(tmp_path / "d") == ["so", "binary"]
    assert detector_config(tmp_path / "d") == {"backbone": "small", "size": 32, "methods": list(TRAIN_METHODS)}
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_detector("so", tmp_path / "d")(x), model(x), atol=2e-2, rtol=2e-2)
    with pytest.raises(ValueError, match="another folder"):
        save_detector(model, "sigmoid", cfg_(ffsc, backbone="xception"), list(TRAIN_METHODS), tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="01_train"):
        load_detector("multiclass", tmp_path / "d")


def test_video_frames_sample_uniformly_and_score_per_video(tmp_path):
    for kind, video, n in (("real", "a", 40), ("real", "b", 5), ("fake", "c", 12)):
        d = tmp_path / kind / video
        d.mkdir(parents=True)
        for k in range(n):
            Image.fromarray(np.full((20, 20, 3), k, np.uint8)).save(d / f"{k:03d}.png")
    vf = VideoFrames(tmp_path, n_frames=8, size=16)
    a = [p.name for p, v in zip(vf.paths, vf.videos) if v == "real/a"]
    assert a == [f"{k:03d}.png" for k in np.linspace(0, 39, 8).astype(int)]
    assert (vf.videos == "real/b").sum() == 5 and (vf.videos == "fake/c").sum() == 8
    assert (vf.labels[:, 1:] == 2).all() and vf.is_fake.sum() == 8 and vf.image(0).shape == (16, 16, 3)
    ev = ex.evaluate(build_detector("binary", "small").eval(), "binary", vf)
    assert ev["n_videos"] == 3 and ev["video_auc"] in (0.0, 0.5, 1.0) and ev["per_method"].keys() == {"fake"}
    with pytest.raises(FileNotFoundError, match="real/ and fake/"):
        VideoFrames(tmp_path / "real")
    with pytest.raises(ValueError, match="n_frames"):
        VideoFrames(tmp_path, n_frames=0)


def test_gradcam_on_xception_and_the_lower_upper_ratio():
    cam = gradcam(build_detector("so", "xception").eval(), "so", np.zeros((64, 64, 3), np.uint8) + 90)
    assert cam.shape == (64, 64) and np.isfinite(cam).all()
    m = np.zeros((48, 48))
    m[28:] = 2.0
    m[:24] = 1.0
    assert lower_upper(m) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="2-D"):
        lower_upper(np.ones(5))


def test_export_writes_the_published_layout(ffsc):
    lists = sorted(p.relative_to(ffsc).as_posix() for p in ffsc.rglob("*.txt"))
    assert "train_SLH_v2_update.txt" in lists and "age/train_SLH_v2_update.txt" in lists
    assert {p.name for p in (ffsc / "Test" / "Protocol-1").iterdir()} <= set(PROTOCOL1_METHODS)
    first = (ffsc / "train_SLH_v2_update.txt").read_text().split("\n", 1)[0].split()
    assert first[0].startswith("Train/") and len(first[1]) == 12
    ds = FFSCList(ffsc, ["test_age.txt", "test_pose.txt"])
    assert set(ds.attributes) == {"real", "age", "pose"}
    json.dumps(ds.methods.tolist())  # plain strings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[0]
