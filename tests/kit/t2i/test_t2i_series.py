"""The text-to-image core's training entry point, model saving/loading and adherence evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.core import RunDir
from kit.diffusion.t2i import load_shapes_pipeline
from kit.t2i.config import preset
from kit.t2i.experiment import save_model, train


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    cfg = preset("tiny", max_steps=12, checkpoint_every=6)
    run = RunDir(tmp_path_factory.mktemp("t2i"))
    return cfg, run, train(cfg, run)


def test_tiny_training_runs_resumes_and_records(tiny_trained):
    cfg, run, result = tiny_trained
    assert result.fit.step == 12 and run.metrics["train"]["steps"] == 12
    losses = [e["loss"] for e in result.fit.history if e["kind"] == "train"]
    assert all(np.isfinite(losses))
    again = train(cfg, run)
    assert again.fit.resumed_from == 12


def test_pipeline_is_deterministic_and_caption_dropout_trains_the_unconditional_branch(tiny_trained):
    cfg, _, result = tiny_trained
    pipe = result.pipeline
    a = pipe("a big red circle", num_inference_steps=3, guidance_scale=3.0, generator=torch.Generator().manual_seed(1),
             output_type="np").images
    b = pipe("a big red circle", num_inference_steps=3, guidance_scale=3.0, generator=torch.Generator().manual_seed(1),
             output_type="np").images
    assert np.array_equal(a, b) and a.shape == (1, cfg.resolution, cfg.resolution, 3)


def test_save_and_load_round_trip(tiny_trained, tmp_path):
    cfg, _, result = tiny_trained
    folder = save_model(result.pipeline, tmp_path / "model", cfg, dtype=torch.float32)
    loaded = load_shapes_pipeline(folder, solver=result.pipeline.solver)
    kw = dict(num_inference_steps=3, guidance_scale=2.0, output_type="np")
    a = result.pipeline("a small blue square", generator=torch.Generator().manual_seed(0), **kw).images
    b = loaded("a small blue square", generator=torch.Generator().manual_seed(0), **kw).images
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="python -m kit.t2i.assets"):
        load_shapes_pipeline(tmp_path / "missing")


def test_config_errors():
    with pytest.raises(ValueError, match="n_objects"):
        preset("shapes", n_objects=(0, 2))
    with pytest.raises(ValueError, match="unknown T2IConfig fields"):
        preset("shapes", steps=3)


def test_prompt_sets():
    from kit.data.shapes import parse_caption
    from kit.t2i.evaluation import scene_prompts, single_object_prompts

    singles = single_object_prompts()
    assert len(singles) == 60 and len(set(singles)) == 60
    assert all(len(parse_caption(p).objects) == 1 for p in singles)
    two = scene_prompts(2, 5, seed=3)
    assert two == scene_prompts(2, 5, seed=3) and all(len(parse_caption(p).objects) == 2 for p in two)


def test_evaluation_runs_on_the_tiny_model(tiny_trained):
    from kit.t2i.evaluation import adherence_by_count, attention_localisation

    _, _, result = tiny_trained
    table = adherence_by_count(result.pipeline, counts=(1, 2), n_multi=2, n_single=3, steps=2)
    assert table["1"]["n_prompts"] == 3 and table["1"]["images"].shape == (3, 16, 16, 3)
    acc = table["2"]["accuracy"]
    assert all(0.0 <= acc[k] <= 1.0 for k in ("colour", "shape", "size", "count", "all")) and acc["n"] == 2
    loc = attention_localisation(result.pipeline, ["a big red circle", "a small blue cross"], steps=2)
    assert loc["n_prompts"] == 2 and loc["maps"][0]["colour"].shape == (16, 16)
    assert 0.0 <= loc["colour_word_in_object"] <= 1.0
    with pytest.raises(ValueError, match="single-object prompts"):
        attention_localisation(result.pipeline, ["a big red circle left of a small blue cross"], steps=1)


def test_lr_factor_warms_up_holds_then_decays():
    from kit.t2i.experiment import lr_factor

    assert lr_factor(0, 1000) == pytest.approx(1 / 200) and lr_factor(199, 1000) == 1.0
    assert lr_factor(500, 1000) == 1.0 and lr_factor(999, 1000) == pytest.approx(0.1, abs=1e-3)
    assert lr_factor(750, 1000) == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-9)


def test_init_from_a_saved_model_starts_from_its_weights(tiny_trained, tmp_path):
    cfg, _, result = tiny_trained
    folder = save_model(result.pipeline, tmp_path / "model", cfg, dtype=torch.float32)
    cont = train(preset("tiny", max_steps=1, checkpoint_every=1, lr=1e-9), RunDir(tmp_path / "cont"), init_from=folder)
    for a, b in zip(result.pipeline.unet.state_dict().values(), cont.pipeline.unet.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_init_from_a_model_without_the_pooled_text_path_adds_it_silently(tmp_path):
    """A cross-attention-only model grows the pooled-text path (stage 2 of the committed model): at step 0 the new
    UNet computes exactly what the saved one does."""
    old_cfg = preset("tiny", max_steps=2, pooled_text_heads=0)
    old = train(old_cfg, RunDir(tmp_path / "old"))
    assert old.pipeline.unet.config.addition_embed_type is None
    folder = save_model(old.pipeline, tmp_path / "model", old_cfg, dtype=torch.float32)
    new = train(preset("tiny", max_steps=1, lr=1e-9, pooled_text_heads=4), RunDir(tmp_path / "new"), init_from=folder)
    unet = new.pipeline.unet
    assert unet.config.addition_embed_type == "text"
    x, t = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([10, 700])
    h = torch.randn(2, 16, old_cfg.text_hidden, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, encoder_hidden_states=h).sample,
                                   old.pipeline.unet(x, t, encoder_hidden_states=h).sample, atol=1e-5, rtol=0)
        unet.add_embedding.norm2.weight.fill_(1.0)  # once the path speaks, the prompt summary changes the output
        assert not torch.allclose(unet(x, t, encoder_hidden_states=h).sample,
                                  old.pipeline.unet(x, t, encoder_hidden_states=h).sample, atol=1e-4)


def test_logit_normal_timesteps_favour_the_middle_of_the_schedule():
    from kit.t2i.experiment import sample_timesteps

    torch.manual_seed(0)
    u = sample_timesteps(20000, 1000, "uniform")
    ln = sample_timesteps(20000, 1000, "logit_normal")
    assert int(u.min()) >= 0 and int(u.max()) <= 999 and int(ln.min()) >= 0 and int(ln.max()) <= 999
    middle = lambda t: float(((t >= 250) & (t < 750)).float().mean())  # noqa: E731
    # P(|N(0,1)| < logit(0.75) = 1.0986) = 0.7275 for logit-normal, 0.5 for uniform
    assert middle(u) == pytest.approx(0.5, abs=0.015) and middle(ln) == pytest.approx(0.7275, abs=0.015)
    with pytest.raises(ValueError, match="timestep sampling"):
        sample_timesteps(4, 1000, "cosine")
    with pytest.raises(ValueError, match="timestep_sampling"):
        preset("tiny", timestep_sampling="cosine")


def test_committed_model_has_the_pooled_text_path_and_its_provenance():
    import json

    from kit.diffusion.t2i import shapes_model_dir

    pipe = load_shapes_pipeline()
    assert pipe.unet.config.addition_embed_type == "text"
    log = json.loads((shapes_model_dir() / "gpu_train.json").read_text())
    assert log["steps"] == 3070 and log["batch_size"] == 128


def test_pipeline_from_checkpoint_is_the_trained_model(tiny_trained):
    from kit.t2i.experiment import pipeline_from_checkpoint

    cfg, run, result = tiny_trained
    pipe, step = pipeline_from_checkpoint(cfg, run.latest_checkpoint())
    assert step == 12
    for name in ("unet", "text_encoder"):
        trained, loaded = getattr(result.pipeline, name).state_dict(), getattr(pipe, name).state_dict()
        assert trained.keys() == loaded.keys()
        for k in trained:
            torch.testing.assert_close(loaded[k], trained[k], atol=0, rtol=0)
