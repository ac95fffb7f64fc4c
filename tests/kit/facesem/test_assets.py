"""The facesem build on a tiny preset: committed detectors load and score as in the build, the cache resumes."""

from __future__ import annotations

import json

import pytest
import torch

from kit.facesem import assets
from kit.facesem.experiment import evaluate, make_data, preset

torch.set_num_threads(1)


def test_build_writes_loadable_detectors_and_resumes(tmp_path):
    kw = dict(seeds=(0,), protocols=("in_distribution",), modes=("so", "multiclass"), work=tmp_path / "w",
              out=tmp_path / "o", preset_name="tiny", steps=3)
    rep = assets.build(**kw)
    assert [(r["mode"], r["protocol"]) for r in rep["rows"]] == [("so", "in_distribution"),
                                                                 ("multiclass", "in_distribution")]
    so = rep["rows"][0]
    assert so["lambdas"] is not None and any("lambda1" in h for h in so["history"])
    again = assets.build(**kw)
    assert json.loads(json.dumps(again["rows"])) == json.loads(json.dumps(rep["rows"]))
    m = assets.load_detector("multiclass", tmp_path / "o")
    data = make_data(preset("tiny", steps=3, device="cpu"))
    assert evaluate(m, "multiclass", data["test"])["auc"] == pytest.approx(rep["rows"][1]["auc"])
    with pytest.raises(FileNotFoundError, match="python -m kit.facesem.assets"):
        assets.load_detector("binary", tmp_path / "o")
    with pytest.raises(ValueError, match="mode must be"):
        assets.load_detector("ternary", tmp_path / "o")
