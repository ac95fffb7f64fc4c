"""The trajectory series' entry points: config, data loaders, training, evaluation and reports."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from kit.core import RunDir
from kit.diffusion.schedules import edm_sigmas
from kit.diffusion.solvers import sample
from kit.trajectory import config
from kit.trajectory.data import load_cifar10, ring2d
from kit.trajectory.evaluation import EVAL_SEED_OFFSET, evaluate, summarize
from kit.trajectory.experiment import load_pretrained, load_trained, train
from kit.trajectory.model import denoiser_gap, make_denoiser
from kit.trajectory.report import error_table_markdown, paper_table_markdown, verdict_markdown


def test_presets_and_bad_config():
    assert config.preset("tiny").max_steps == 600
    full = config.preset("full")
    assert full.n_warmup == 256 and full.grid_steps == 60 and full.coeff == 1.15 and "pretrained" in full.denoisers
    with pytest.raises(ValueError, match="unknown TrajectoryConfig fields"):
        config.preset("tiny", n_warmups=3)
    with pytest.raises(ValueError, match="unknown denoisers"):
        config.preset("tiny", denoisers=("kde", "magic"))
    with pytest.raises(ValueError, match="dataset must be one of"):
        config.preset("tiny", dataset="mnist")


def _write_cifar(root, n=3, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batches[name] = data
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(range(n)), b"batch_label": name.encode()}, f)
    return batches


def test_cifar10_loader_reads_the_published_layout(tmp_path):
    batches = _write_cifar(tmp_path)
    x = load_cifar10(tmp_path)
    assert x.shape == (15, 3, 32, 32) and x.dtype == torch.float32
    first = batches["data_batch_1"][0]
    # channel-major rows: the first 1024 bytes are the red plane, row by row
    assert x[0, 0, 0, 1].item() == pytest.approx(first[1] / 127.5 - 1.0, abs=1e-6)
    assert x[0, 1, 0, 0].item() == pytest.approx(first[1024] / 127.5 - 1.0, abs=1e-6)
    assert x[0, 2, 31, 31].item() == pytest.approx(first[3071] / 127.5 - 1.0, abs=1e-6)
    assert load_cifar10(tmp_path / "cifar-10-batches-py", split="test").shape == (3, 3, 32, 32)
    assert load_cifar10(tmp_path, limit=4).shape[0] == 4


def test_cifar10_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*not found"):
        load_cifar10(tmp_path)
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_cifar10(tmp_path)


def test_denoiser_gap_against_direct_computation():
    gmm = ring2d()
    data = gmm.sample(50, torch.Generator().manual_seed(0))
    gap = denoiser_gap(gmm, gmm, data, [0.1, 1.0], n=20, seed=1)
    assert gap["gap"] == pytest.approx([0.0, 0.0], abs=1e-6)  # the learned model gets float32 inputs
    shrink = lambda x, s: 0.5 * x  # noqa: E731
    gap = denoiser_gap(shrink, gmm, data, [0.5], n=20, seed=1)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 50, (20,), generator=g)
    y = data[idx]
    x = y + 0.5 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    expected = (0.5 * x - gmm(x, 0.5)).pow(2).mean(1).sqrt().mean().item()
    assert gap["gap"][0] == pytest.approx(expected, rel=1e-5)
    assert gap["optimal"][0] == pytest.approx((gmm(x, 0.5) - y).pow(2).mean(1).sqrt().mean().item(), rel=1e-6)


def test_train_learns_resumes_and_reloads(tmp_path):
    cfg = config.preset("tiny", max_steps=150, batch_size=64, hidden=64, depth=2, checkpoint_every=50)
    run = RunDir(tmp_path / "ring")
    result = train(cfg, run, dataset="ring2d")
    untrained = make_denoiser(2, hidden=64, depth=2)
    data = ring2d().sample(200, torch.Generator().manual_seed(3))
    before = denoiser_gap(untrained, ring2d(), data, [0.3, 1.0], n=64)["gap"]
    after = denoiser_gap(result.model, ring2d(), data, [0.3, 1.0], n=64)["gap"]
    assert after[0] < 0.7 * before[0] and after[1] < 0.7 * before[1]
    assert run.metrics["dataset"] == "ring2d" and len(run.metrics["gap_to_optimal"]["sigma"]) == 15
    again = train(cfg, run, dataset="ring2d")
    assert again.fit.resumed_from == 150
    loaded = load_trained(cfg, run, dataset="ring2d")
    x = torch.randn(5, 2)
    torch.testing.assert_close(loaded(x, 0.7), result.model(x, 0.7))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_trained(cfg, RunDir(tmp_path / "empty"))
    with pytest.raises(ValueError, match="trained on"):
        train(cfg, RunDir(tmp_path / "c"), dataset="cifar10")


def test_summarize_counts_wins():
    def row(nfe, schedule, error, metric=None, coeff=None, variant=None, solver="euler"):
        return {"denoiser": "d", "solver": solver, "nfe": nfe, "schedule": schedule, "metric": metric,
                "coeff": coeff, "variant": variant, "error": error}

    rows = [
        row(4, "edm", 2.0), row(4, "logsnr", 1.0),
        row(4, "gits", 1.5, "dev", 1.15, "paper"), row(4, "gits", 0.5, "l2", 1.0, "sweep"),
        row(6, "edm", 1.0), row(6, "gits", 0.9, "dev", 1.15, "paper"),
        row(5, None, None, solver="heun"),
    ]
    s = summarize(rows)["d"]
    assert (s["cells_total"], s["wins"], s["wins_vs_recommended"], s["wins_best_variant"]) == (2, 1, 2, 2)
    assert s["cells"][0]["best_fixed"] == "logsnr" and s["cells"][0]["best_variant"] == "l2@1.0"
    text = verdict_markdown(summarize(rows), 1.15)
    assert "2 of 2 cells" in text and "1 of 2" in text
    table = error_table_markdown(rows, "d", 1.15)
    assert "| euler | logsnr | **1** | n/a | n/a |" in table
    assert "| euler | GITS (paper: coeff 1.15) | 1.5 | n/a | **0.9** |" in table
    assert "| euler | GITS best of sweep | 0.5 | n/a | 0.9 |" in table


def test_evaluate_small_grid(tmp_path):
    cfg = config.preset("tiny", denoisers=("gmm2d", "kde"), solvers=("euler", "heun"), nfes=(4, 5, 8),
                        n_eval=12, n_warmup=12, ref_steps=120, grid_steps=30, coeff_sweep=(1.0,))
    run = RunDir(tmp_path)
    res = evaluate(cfg, run)
    per_cell = len(cfg.schedules) + 2 * 2  # fixed schedules + GITS at coeff 1.0 and 1.15 for dev and l2
    assert len([r for r in res.rows if r["error"] is not None]) == 2 * (3 + 2) * per_cell
    assert [r for r in res.rows if r["solver"] == "heun" and r["nfe"] == 5][0]["error"] is None
    # one cell recomputed independently: Euler on EDM rho=7 with 4 steps vs a Heun reference
    gmm = ring2d()
    x0 = 80.0 * torch.randn((12, 2), generator=torch.Generator().manual_seed(cfg.seed + EVAL_SEED_OFFSET),
                            dtype=torch.float64)
    ref = sample(gmm, x0, edm_sigmas(120), "heun")
    direct = (sample(gmm, x0, edm_sigmas(4), "euler") - ref).norm(dim=1).mean().item()
    row = [r for r in res.rows if (r["denoiser"], r["solver"], r["schedule"], r["nfe"]) == ("gmm2d", "euler", "edm", 4)]
    assert row[0]["error"] == pytest.approx(direct, rel=1e-9)
    euler_edm = {r["nfe"]: r["error"] for r in res.rows
                 if (r["denoiser"], r["solver"], r["schedule"]) == ("kde", "euler", "edm")}
    assert euler_edm[8] < euler_edm[4]
    assert res.references["kde"]["error_vs_half_steps"] < 0.05 * euler_edm[8]
    m = run.metrics
    assert m["gits_search"]["kde"]["network_evaluations"] == 30 * 12  # one teacher run serves both metrics
    paper = [r for r in res.rows if r["schedule"] == "gits" and r["variant"] == "paper"]
    assert {(r["denoiser"], r["metric"], r["coeff"]) for r in paper} == {("gmm2d", "l2", 1.15), ("kde", "dev", 1.15)}
    assert set(m["gits_wins"]) == {"gmm2d", "kde"}


def _tiny_unet_dir(tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       layers_per_block=1, norm_num_groups=4)
    path = tmp_path / "tiny-ddpm"
    unet.save_pretrained(path / "unet")
    DDPMScheduler(num_train_timesteps=100).save_pretrained(path / "scheduler")
    return path


def test_pretrained_path_runs_offline_with_a_saved_model(tmp_path):
    path = _tiny_unet_dir(tmp_path)
    den = load_pretrained(str(path))
    assert den.sigma_min > 0.002  # a DDPM's smallest sigma is sqrt(beta_1 / (1 - beta_1))
    cfg = config.preset("tiny", pretrained=str(path), denoisers=("pretrained",), solvers=("euler",), nfes=(4,),
                        n_eval=2, n_warmup=2, ref_steps=8, grid_steps=8, coeff_sweep=())
    res = evaluate(cfg, RunDir(tmp_path / "run"))
    case = res.cases[0]
    assert case.shape == (1, 8, 8) and case.sigma_min == pytest.approx(den.sigma_min)
    assert all(np.isfinite(r["error"]) for r in res.rows)
    with pytest.raises(FileNotFoundError, match="could not load the diffusers model"):
        load_pretrained(str(tmp_path / "nowhere"))


def test_paper_table_is_labelled():
    text = paper_table_markdown("CIFAR-10")
    assert text.startswith("**Reported by the paper**") and "| iPNDM + GITS | 8.38 | 4.88 | 3.24 | 2.49 |" in text
    with pytest.raises(ValueError, match="dataset must be one of"):
        paper_table_markdown("MNIST")
