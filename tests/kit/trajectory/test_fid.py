"""FID for the full preset (kit.trajectory.fid): found locally or not at all, computed by torchmetrics, wired into the
evaluation. Offline: a tiny feature network stands in for Inception, and the FID is checked against the Fréchet
distance computed directly from the features."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import scipy.linalg
import torch

from kit.core import RunDir
from kit.diffusion.denoisers import EmpiricalDenoiser
from kit.trajectory import config
from kit.trajectory import evaluation as ev
from kit.trajectory import fid as kf
from kit.trajectory.experiment import DenoiserCase
from kit.trajectory.report import claims_markdown, fid_markdown

torch.set_num_threads(1)


class TinyFeatures(torch.nn.Module):
    """A fixed random projection of uint8 images [n, 3, 4, 4] to 5 features (a stand-in for Inception's 2048)."""

    num_features = 5

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.randn(48, 5, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8
        return (x.reshape(x.shape[0], -1).float() / 255.0) @ self.w


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)): the Fréchet distance of Gaussians fitted to a and b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def test_to_uint8_maps_minus_one_to_one_onto_0_255():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 5)
    assert kf.to_uint8(x).flatten().tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match="N, C, H, W"):
        kf.to_uint8(torch.zeros(3, 4))


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_fid_matches_the_frechet_distance_of_the_features(device):
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(60, 3, 4, 4, generator=g) * 2 - 1
    fake = (torch.rand(40, 3, 4, 4, generator=g) * 1.6 - 0.6)  # narrower and shifted
    feat = TinyFeatures()
    score = kf.fid_against(ref.to(device), feat, batch_size=16, device=device)
    feat = feat.cpu()
    direct = _frechet(feat(kf.to_uint8(fake)).double().numpy(), feat(kf.to_uint8(ref)).double().numpy())
    assert score(fake) == pytest.approx(direct, rel=1e-3)
    assert score(ref) == pytest.approx(0.0, abs=1e-4)  # the reference features are kept between scores
    assert score(fake) == pytest.approx(direct, rel=1e-3)
    with pytest.raises(ValueError, match="images must be"):
        score(fake[:, :2])
    with pytest.raises(ValueError, match="at least 2 reference"):
        kf.fid_against(ref[:1], feat)


def test_inception_is_only_looked_for(monkeypatch, tmp_path):
    monkeypatch.delenv("KIT_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert kf.inception_weights_path() == tmp_path / "hub" / "checkpoints" / kf.INCEPTION_WEIGHTS
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # not installed
    feature, reason = kf.inception_features()
    assert feature is None and "torch-fidelity is not installed" in reason
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))  # installed, no weights
    monkeypatch.setenv("KIT_FID_WEIGHTS", str(tmp_path / "missing.pth"))
    feature, reason = kf.inception_features()
    assert feature is None and str(tmp_path / "missing.pth") in reason and "nothing is downloaded" in reason


@pytest.mark.skipif(kf.inception_features()[0] is None, reason="torchmetrics' Inception weights are not local")
def test_real_inception_scores_identical_sets_near_zero():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=g) * 2 - 1
    score = kf.fid_against(x, kf.inception_features()[0])
    assert abs(score(x)) < 1e-2 and score(torch.flip(x, dims=[0]) * 0.2) > 1.0


def _image_case() -> DenoiserCase:
    data = torch.rand(30, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    return DenoiserCase("kde", EmpiricalDenoiser(data, bandwidth=0.3), (3, 4, 4), 0.002, 80.0, "dev")


def test_evaluate_case_scores_image_samples_by_fid():
    cfg = config.preset("tiny", solvers=("euler",), schedules=("edm", "logsnr"), nfes=(5, 6), n_eval=12,
                        n_warmup=4, ref_steps=30, grid_steps=12, coeff_sweep=(1.0,), fid=True)
    rows, _, _ = ev.evaluate_case(cfg, _image_case(), fid_feature=TinyFeatures())
    paper = ev.paper_setting_rows(rows)
    assert len(paper) == 2 * 3 and all(r["fid"] >= 0 for r in paper)  # edm, logsnr, GITS (paper) x NFE 5, 6
    assert all("fid" not in r for r in rows if r["variant"] == "sweep")
    worst = max(paper, key=lambda r: r["error"])
    assert worst["fid"] > min(r["fid"] for r in paper)
    c = ev.claims(ev.summarize(rows))["kde"]
    assert c["cells_fid"] == 2 and 0 <= c["wins_vs_recommended_fid"] <= 2
    assert "by FID" in claims_markdown({"kde": c})
    flat, _, _ = ev.evaluate_case(cfg, _image_case())  # no feature extractor: no FID, sliced Wasserstein only
    assert all("fid" not in r for r in flat) and "cells_fid" not in ev.claims(ev.summarize(flat))["kde"]


def test_fid_setup_records_null_with_the_reason(monkeypatch, tmp_path):
    assert ev.fid_setup(config.preset("tiny")) == (None, None)
    assert config.preset("full").fid and not config.preset("tiny").fid
    monkeypatch.setattr(ev, "inception_features", lambda: (None, "no Inception weights here"))
    cfg = config.preset("tiny", denoisers=("gmm2d",), solvers=("euler",), nfes=(4,), n_eval=4, n_warmup=4,
                        ref_steps=10, grid_steps=8, coeff_sweep=(), fid=True)
    run = RunDir(tmp_path)
    ev.evaluate(cfg, run)
    rec = run.metrics["fid"]
    assert rec["fid"] is None and rec["reason"] == "no Inception weights here"
    assert rec["distribution_metric"] == "sliced_wasserstein"
    assert "no Inception weights here" in fid_markdown(rec) and "sliced Wasserstein" in fid_markdown(None)
    monkeypatch.setattr(ev, "inception_features", lambda: (TinyFeatures(), None))
    feature, rec = ev.fid_setup(cfg)
    assert isinstance(feature, TinyFeatures) and rec["fid"] == "computed" and rec["distribution_metric"] == "fid"
