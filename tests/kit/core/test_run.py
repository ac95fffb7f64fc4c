"""RunDir, presets, device and seeding."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import kit.core.run as runmod
from kit.core import RunDir, pick_device, preset, seed_everything


def test_record_appends_and_survives_reopen(tmp_path):
    run = RunDir(tmp_path / "r")
    run.record("acc", np.float32(0.5))
    run.record("table", {"a": torch.tensor([1.0, 2.0]), "b": (1, 2)})
    run.record("bad", float("nan"))
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data == {"acc": 0.5, "table": {"a": [1.0, 2.0], "b": [1, 2]}, "bad": "nan"}
    again = RunDir(tmp_path / "r")
    again.record("more", 1)
    assert set(json.loads((tmp_path / "r" / "metrics.json").read_text())) == {"acc", "table", "bad", "more"}
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_record_rejects_unserialisable_and_bad_metrics_file(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ValueError, match="cannot record"):
        run.record("x", object())
    (tmp_path / "metrics.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        RunDir(tmp_path)


def test_display_hook_is_called(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runmod, "_display_hook", None)
    runmod.set_display_hook(lambda name, value, all_m: seen.append((name, value, dict(all_m))))
    try:
        RunDir(tmp_path).record("loss", 0.25)
    finally:
        runmod.set_display_hook(None)
    assert seen == [("loss", 0.25, {"loss": 0.25})]


def test_non_main_rank_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    run = RunDir(tmp_path / "rank1")
    run.record("x", 1)
    assert run.metrics == {"x": 1}
    assert not (tmp_path / "rank1").exists()


def test_save_figure_plotly_and_matplotlib(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    run = RunDir(tmp_path)
    p1 = run.save_figure("curve", go.Figure(go.Scatter(y=[1, 3, 2])))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    p2 = run.save_figure("line", fig)
    assert p1.suffix == ".html" and "plotly" in p1.read_text()
    assert p2.suffix == ".png" and p2.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="plotly, matplotlib or PIL"):
        run.save_figure("x", [1, 2])
    with pytest.raises(ValueError, match="without slashes"):
        run.save_figure("a/b", fig)


@dataclasses.dataclass(frozen=True)
class Cfg:
    steps: int = 10
    lr: float = 1e-3
    data_dir: str | None = None


def test_preset_builds_and_rejects_unknowns():
    table = {"tiny": {"steps": 5}, "full": {"steps": 1000, "lr": 0.1}}
    assert preset(Cfg, table, "tiny") == Cfg(steps=5)
    assert preset(Cfg, table, "full", lr=None, data_dir="/d") == Cfg(steps=1000, lr=0.1, data_dir="/d")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset(Cfg, table, "huge")
    with pytest.raises(ValueError, match=r"unknown Cfg fields \['stpes'\]"):
        preset(Cfg, table, "tiny", stpes=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset(Cfg, table).steps = 3


def test_pick_device(monkeypatch):
    monkeypatch.setenv("KIT_DEVICE", "cpu")
    assert pick_device("auto").type == "cpu"
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_seed_everything_is_deterministic():
    g = seed_everything(7)
    a = (torch.rand(3), np.random.rand(2), torch.rand(2, generator=g))
    g = seed_everything(7)
    b = (torch.rand(3), np.random.rand(2), torch.rand(2, generator=g))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
    assert not math.isnan(float(a[0][0]))
