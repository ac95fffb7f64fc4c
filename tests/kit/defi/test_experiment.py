"""DeFI-Net's entry points: presets, prediction, training with resume, evaluation, real-data folders, the assets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kit.core import RunDir
from kit.defi import (
    DeFINet,
    evaluate,
    load_data,
    load_pretrained,
    predict,
    predict_maps,
    preset,
    table_rows,
    train,
)
from kit.defi.assets import ASSET_DIR, save_model


def _small(**kw):
    base = dict(device="cpu", steps=3, batch_size=4, n_train=12, n_val=4, n_test=2, n_authentic=2, size=32,
                eval_size=32, train_fills=("telea",), test_fills=("telea", "biharmonic"), eval_every=3)
    base.update(kw)
    return preset("tiny", **base)


def test_presets_and_validation():
    assert preset("lite").steps == 800 and preset("lite").input_filter == "srm"
    full = preset("full", data_dir="/data/iid")
    assert (full.model, full.size, full.lr, full.batch_size, full.schedule) == ("full", 352, 2e-4, 16, "plateau")
    assert full.pretrained_backbone and full.input_filter == "none"
    assert not preset("full", data="generated").pretrained_backbone
    assert preset("tiny").unseen_fills == ("biharmonic",)
    with pytest.raises(ValueError, match="data_dir"):
        preset("full")
    with pytest.raises(ValueError, match="unknown DeFIConfig fields"):
        preset("tiny", lr_max=1)
    with pytest.raises(ValueError, match="train_fills"):
        preset("tiny", train_fills=("deepfill",))
    with pytest.raises(ValueError, match="pretrained_backbone"):
        preset("tiny", pretrained_backbone=True)
    with pytest.raises(ValueError, match="area"):
        preset("tiny", area=(0.3, 0.1))


def test_predict_any_size_and_bad_images():
    model = DeFINet("lite").eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    p = predict(model, image)
    assert p.shape == (45, 61) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    resized = predict(model, image, size=32)  # the authors' protocol: run at a fixed size, upsample the logits
    assert resized.shape == (45, 61)
    maps = predict_maps(model, [image, image[:20, :30], image])
    np.testing.assert_allclose(maps[0], maps[2], atol=1e-6)
    assert maps[1].shape == (20, 30)
    crops = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(7)]
    for a, b in zip(predict_maps(model, crops), predict_maps(model, crops, batch_size=16)):  # batching changes nothing
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="RGB"):
        predict(model, image[..., 0])
    with pytest.raises(ValueError, match="uint8"):
        predict(model, image.astype(np.float32) / 255)


def test_train_is_seeded_resumes_and_evaluates(tmp_path):
    cfg = _small()
    data = load_data(cfg)
    a = train(cfg, data=data, progress=False)
    b = train(cfg, data=data, progress=False)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        torch.testing.assert_close(x, y)
    run = RunDir(tmp_path / "run")
    first = train(cfg, run=run, data=data, progress=False)
    assert run.latest_checkpoint() is not None and first.steps == 3
    again = train(cfg, run=run, data=data, progress=False)  # a finished run returns without training again
    assert again.steps == 3 and again.best_step == first.best_step
    ev = evaluate(cfg, a.model, data, run=run)
    assert set(ev["standard"]) == {"defi", "laplacian", "noise"}
    assert set(ev["standard"]["defi"]) == {"telea", "biharmonic", "all"}
    assert ev["unseen_fills"] == ["biharmonic"] and ev["n_per_fill"] == {"telea": 2, "biharmonic": 2}
    assert set(ev["authentic_fpr"]) == {"defi", "laplacian", "noise"}
    rows = table_rows(ev)
    assert len(rows) == 9 and any(r["fill"] == "biharmonic (unseen)" for r in rows)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "standard/defi/auc" in metrics and "standard/defi/biharmonic/auc" in metrics


def _write_manidataset(root, n=6, size=40):
    rng = np.random.default_rng(0)
    (root / "Tp").mkdir(parents=True)
    (root / "Gt").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(root / "Tp" / f"{i:03d}.png")
        m = np.zeros((size, size + 8), np.uint8)
        m[5:20, 10 + i:30] = 255
        Image.fromarray(m).save(root / "Gt" / f"{i:03d}.png")


def test_real_data_path_trains_and_evaluates_on_an_imdlbenco_folder(tmp_path):
    _write_manidataset(tmp_path / "mani")
    cfg = _small(data="manidataset", data_dir=str(tmp_path / "mani"), val_frac=0.34, n_test=2)
    data = load_data(cfg)
    assert len(data.train) == 4 and len(data.val) == 2
    assert data.train[0]["image"].shape == (3, 32, 32) and data.train[0]["mask"].shape == (1, 32, 32)
    assert data.test_images[0].shape == (40, 48, 3)
    result = train(cfg, data=data, progress=False)
    ev = evaluate(cfg, result.model, data)
    assert "manidataset (held-out split)" in ev["standard"]["defi"]
    with pytest.raises(FileNotFoundError, match="Tp"):
        load_data(_small(data="manidataset", data_dir=str(tmp_path / "missing")))


def test_assets_round_trip_and_missing_files(tmp_path):
    torch.manual_seed(0)
    model = DeFINet("lite", input_filter="srm").eval()
    save_model(model, {"model": "lite", "input_filter": "srm", "channels": None, "lite_widths": [16, 32, 64, 96]},
               tmp_path)
    loaded = load_pretrained("lite", folder=tmp_path)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[1], model(x)[1], atol=5e-2, rtol=5e-2)  # float16 weights
    assert not loaded.training
    with pytest.raises(FileNotFoundError, match="python -m kit.defi.assets"):
        load_pretrained("lite", folder=tmp_path / "nothing")
    with pytest.raises(ValueError, match="lite"):
        load_pretrained("full")


def test_committed_model_is_small_and_loads():
    total = sum(p.stat().st_size for p in ASSET_DIR.iterdir())
    assert total < 3e6  # the budget for the self-made checkpoint
    model = load_pretrained()
    assert model.input_filter == "srm" and model.preset == "lite"


def test_full_preset_runs_end_to_end_on_generated_data():
    # the paper's network and recipe (plateau schedule, clip by value, RGB input) at a smoke size, no download
    cfg = preset("full", data="generated", device="cpu", size=32, eval_size=32, steps=2, batch_size=2, n_train=4,
                 n_val=2, n_test=1, n_authentic=0, eval_every=1, num_workers=0, train_fills=("ns",),
                 test_fills=("ns", "telea"))
    assert cfg.model == "full" and cfg.schedule == "plateau" and not cfg.pretrained_backbone
    data = load_data(cfg)
    result = train(cfg, data=data, progress=False)
    assert result.steps == 2 and result.model.preset == "full"
    ev = evaluate(cfg, result.model, data)
    assert ev["unseen_fills"] == ["telea"] and 0.0 <= ev["standard"]["defi"]["all"]["auc"] <= 1.0
