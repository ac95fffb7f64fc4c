"""The "full" path of the t2i notebooks: Stable Diffusion 1.x through from_pretrained (a tiny random SD folder saved by
the test), its clear errors, what 02 / 03 compute on it, and the GITS recipe for text-to-image models."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kit.t2i.config import preset
from kit.t2i.experiment import describe_pipeline, is_shapes_world, load_pipeline, loss_title

_spec = importlib.util.spec_from_file_location("t2i_tiny_sd", Path(__file__).with_name("tiny_sd.py"))
tiny_sd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_sd)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return tiny_sd.save_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="module")
def sd_pipe(sd_folder):
    return load_pipeline(preset("tiny", pretrained=str(sd_folder), device="cpu"))


def test_pretrained_loads_stable_diffusion_through_from_pretrained(sd_folder, sd_pipe):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    cfg = preset("tiny", pretrained=str(sd_folder), device="cpu")
    assert not is_shapes_world(cfg) and is_shapes_world(preset("tiny"))
    assert isinstance(sd_pipe.unet, UNet2DConditionModel) and isinstance(sd_pipe.vae, AutoencoderKL)
    assert sd_pipe.solver == cfg.solver and type(sd_pipe.scheduler).__name__ == "DDIMScheduler"
    # the weights are the folder's, not a fresh model's
    saved = UNet2DConditionModel.from_pretrained(sd_folder / "unet")
    for (name, a), b in zip(sd_pipe.unet.state_dict().items(), saved.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert sd_pipe.latent_shape(2) == (2, 4, 8, 8)
    img = sd_pipe(["a red car"], num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                  output_type="np").images
    assert img.shape == (1, 16, 16, 3) and np.isfinite(img).all()
    assert describe_pipeline(sd_pipe).startswith("Stable Diffusion") and "16x16 images" in describe_pipeline(sd_pipe)


def test_the_full_preset_names_stable_diffusion_and_fails_clearly_offline(monkeypatch, tmp_path):
    cfg = preset("full")
    assert cfg.pretrained == "stable-diffusion-v1-5/stable-diffusion-v1-5" and cfg.guidance_scale == 7.5
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # nothing cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"stable-diffusion-v1-5/stable-diffusion-v1-5.*neither a folder here "
                                                r"nor in the Hugging Face cache.*huggingface-cli download"):
        load_pipeline(preset("full", device="cpu"))


def test_missing_or_incomplete_folders_say_what_is_missing(sd_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no-such-sd.*does not exist.*huggingface-cli download"):
        load_pipeline(preset("tiny", pretrained=str(tmp_path / "no-such-sd")))
    partial = tmp_path / "partial"
    shutil.copytree(sd_folder, partial, ignore=shutil.ignore_patterns("vae*"))
    with pytest.raises(FileNotFoundError, match=r"lacks the subfolders \['vae'\]"):
        load_pipeline(preset("tiny", pretrained=str(partial)))
    with pytest.raises(ValueError, match="not both"):
        load_pipeline(preset("tiny", pretrained=str(sd_folder)), model_dir="kit/assets/t2i_shapes")


def test_loss_title_follows_the_prediction_type():
    assert loss_title(preset("tiny")) == "v-prediction loss (MSE)"
    assert loss_title(preset("tiny", prediction_type="epsilon")) == "epsilon loss (MSE)"


def test_word_maps_and_sample_timing_on_stable_diffusion(sd_pipe):
    from kit.t2i.evaluation import most_focused_word, sample_timing, word_attention, word_attention_record
    from kit.t2i.explore import token_maps, word_swap_record, word_swap_study

    tm = token_maps(sd_pipe, "a red car parked next to a blue bicycle", steps=2)
    assert [w for _, w in tm.words] == "a red car parked next to a blue bicycle".split()  # CLIP's </w> removed
    att = word_attention(sd_pipe, "a red car", steps=2)
    assert [w["word"] for w in att["words"]] == ["a", "red", "car"]
    assert all(0.1 - 1e-9 <= w["top_share"] <= 1.0 and w["map"].shape == (16, 16) for w in att["words"])
    assert most_focused_word(att) in att["words"] and "map" not in word_attention_record(att)["words"][0]
    timing = sample_timing(sd_pipe, ["a red car", "a cat"], steps=2)
    assert timing["images"].shape == (2, 16, 16, 3) and timing["seconds_per_image"] > 0
    study = word_swap_study(sd_pipe, n=2, steps=2, shapes_world=False)
    assert study["n"] == 2 and study["iou_plain"] is None and study["pairs"][0].iou_swapped is None
    assert word_swap_record(study)["pairs"][0][:2] == ["a red car parked on a street", "a blue car parked on a street"]


def test_discrete_timestep_grid_is_uniform_in_t_over_the_model_range():
    from diffusers import DDPMScheduler

    from kit.diffusion.hf import discrete_timestep_sigmas, scheduler_sigmas, sigma_to_timestep

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    grid = discrete_timestep_sigmas(sched, 61)
    table = scheduler_sigmas(sched)
    assert grid.shape == (61,) and float(grid[0]) == pytest.approx(table[-1]) and float(grid[-1]) == pytest.approx(
        table[0])
    torch.testing.assert_close(sigma_to_timestep(grid, sched), torch.linspace(999, 0, 61, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_points"):
        discrete_timestep_sigmas(sched, 1)


def test_gits_warmup_prompts_are_disjoint_from_the_evaluation_prompts():
    from kit.data.shapes import parse_caption
    from kit.t2i.schedules import SD_PROMPTS, SD_WARMUP_PROMPTS, SHAPES_PROMPTS, warmup_prompts

    shapes = warmup_prompts(40, exclude=SHAPES_PROMPTS, seed=0)
    assert len(set(shapes)) == 40 and not set(shapes) & set(SHAPES_PROMPTS)
    assert all(1 <= len(parse_caption(p).objects) <= 2 for p in shapes)  # the training distribution's captions
    # excluding a prompt the generator would draw removes it (here: every caption it drew before)
    again = warmup_prompts(10, exclude=shapes[:5], seed=0)
    assert not set(again) & set(shapes[:5]) and again[:5] == shapes[5:10]
    sd = warmup_prompts(8, exclude=SD_PROMPTS, shapes_world=False)
    assert len(sd) == 8 and not set(sd) & set(SD_PROMPTS) and not set(SD_WARMUP_PROMPTS) & set(SD_PROMPTS)
    assert warmup_prompts(2, exclude=SD_WARMUP_PROMPTS[:1], shapes_world=False) == list(SD_WARMUP_PROMPTS[1:3])


def test_schedule_study_follows_the_gits_recipe_for_text_to_image(sd_pipe):
    from kit.diffusion.hf import discrete_timestep_sigmas
    from kit.t2i.schedules import GITS_T2I_RECIPE, SD_PROMPTS, schedule_study, warmup_prompts

    assert GITS_T2I_RECIPE == {"teacher_solver": "dpmpp2m", "solver": "dpmpp2m", "grid_points": 61,
                               "metric": "dev", "coeff": 1.20}
    prompts = list(SD_PROMPTS[:2])
    warmup = warmup_prompts(3, exclude=prompts, shapes_world=False)
    study = schedule_study(sd_pipe, prompts, warmup, nfe=4, guidance_scale=3.0, low_steps=2, other_coeffs=(1.0,))
    search = study.search
    assert search.teacher_solver == "dpmpp2m" and search.metric == "dev" and study.coeff == 1.20
    torch.testing.assert_close(search.grid, discrete_timestep_sigmas(sd_pipe.scheduler, 61))
    gits = study.sigmas["GITS 4"]
    assert len(gits) == 5 and set(gits) <= {float(s) for s in search.grid}  # on the discrete grid, 4 steps
    assert gits == search.schedule(4, solver="dpmpp2m", coeff=1.20).tolist()
    assert search.teacher_evaluations == 60 * len(warmup)  # one teacher trajectory per warm-up prompt
    assert set(study.rmse) == {"2 steps", "4 steps", "time-uniform 4", "GITS 4", "GITS 4, coeff 1"}
    assert study.sigmas["GITS 4, coeff 1"] == search.schedule(4, solver="dpmpp2m", coeff=1.0).tolist()
    assert list(study.images)[-1] == "teacher (60 steps)" and study.sigmas["teacher (60 steps)"] == search.grid.tolist()
    assert all(np.isfinite(v) and v >= 0 for v in study.rmse.values())
    rec = study.record()
    assert rec["warmup_prompts"] == warmup and not set(rec["warmup_prompts"]) & set(rec["prompts"])
    images, titles = study.grid()
    assert images.shape == (6 * 2, 16, 16, 3) and titles[0].startswith("2 steps: ")
    with pytest.raises(ValueError, match="disjoint"):
        schedule_study(sd_pipe, prompts, [prompts[0]], nfe=4)
