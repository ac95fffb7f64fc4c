"""The CMDFD build on tiny clips: the saved students and teachers load and score as in the build, the unit cache
resumes without generating data again, and the committed build loads."""

from __future__ import annotations

import json

import pytest
import torch

from kit.cmdfd import assets
from kit.cmdfd import experiment as ex
from kit.cmdfd.config import LOSSES, TRAIN_CONFIGS, preset

torch.set_num_threads(1)

TINY = dict(n_train=48, n_val=16, n_test=40, n_teacher=24, n_frames=24, epochs=1, teacher_epochs=2, batch_size=8)


def test_build_writes_loadable_students_and_resumes(tmp_path, monkeypatch):
    kw = dict(seeds=(0,), configs=("swap_shift",), losses=("ce", "ce_cd_jc"), work=tmp_path / "w",
              out=tmp_path / "o", preset_name="tiny", progress=False, **TINY)
    rep = assets.build(**kw)
    assert [(r["seed"], r["config"], r["loss"]) for r in rep["rows"]] == [(0, "swap_shift", "ce"),
                                                                          (0, "swap_shift", "ce_cd_jc")]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["s0_swap_shift_ce.json",
                                                                 "s0_swap_shift_ce_cd_jc.json"]
    assert all(r["history"] and r["seconds"] > 0 for r in rep["rows"]) and rep["threads"] == 1
    assert assets.saved_losses(tmp_path / "o") == ["ce", "ce_cd_jc"]

    def no_data(cfg):
        raise AssertionError("a resumed build generated data for a cached unit")

    monkeypatch.setattr(assets, "make_data", no_data)
    again = assets.build(**kw)
    assert again["rows"] == rep["rows"] and json.loads((tmp_path / "o" / "results.json").read_text()) == json.loads(json.dumps(again))
    monkeypatch.undo()

    cfg = preset("tiny", device="cpu", train_kinds=TRAIN_CONFIGS["swap_shift"], **TINY)
    data = ex.make_data(cfg)
    ex.attach_teachers(data, assets.load_teachers(tmp_path / "o"))
    ev = ex.evaluate(assets.load_student("ce_cd_jc", tmp_path / "o"), data["test"])
    assert ev["per_kind"] == pytest.approx(rep["rows"][1]["per_kind"])  # the build scored the float16 weights


def test_committed_build_loads():
    info = assets.committed_results()
    assert info["seeds"] == [0, 1, 2, 3] and len(info["rows"]) == 4 * len(TRAIN_CONFIGS) * len(LOSSES)
    assert assets.saved_losses() == list(LOSSES)
    teachers = assets.load_teachers()
    assert set(teachers.accuracy) == {"audio", "video"} and not teachers.audio.training
