"""The editor's entry points on the committed ShapesWorld model (few steps): identity, result fields, seeded
determinism, the two baselines, the reference wiring, the oracle scores and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from kit.data.shapes import Scene, ShapeObject, render  # noqa: E402
from kit.multiedits.editor import (  # noqa: E402
    EditOptions,
    _references,
    edit,
    sequential_edit,
    single_branch_edit,
)
from kit.multiedits.experiment import aspect_hits, shapes_cases, summary, unedited_scores  # noqa: E402

torch.set_num_threads(1)
FAST = {"num_inference_steps": 4, "group_steps": 2, "switch_step": 2, "map_resolution": 32,
        "map_normalization": "minmax"}
SOURCE = "a big red circle left of a small blue square"
TARGET = "a big green circle left of a small yellow square"


@pytest.fixture(scope="module")
def pipe():
    from kit.diffusion.t2i import load_shapes_pipeline

    return load_shapes_pipeline(solver=None)


@pytest.fixture(scope="module")
def image():
    scene = Scene((ShapeObject("circle", "red", "big", 0.3, 0.5), ShapeObject("square", "blue", "small", 0.75, 0.5)))
    return render(scene, 32)[0]


def _psnr(a, b):
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_identity_edit_returns_the_source(pipe, image):
    res = edit(pipe, image, SOURCE, SOURCE, **FAST)
    assert _psnr(res.image, image) >= 30.0
    assert res.group_kinds == ["identity"] and res.branch_prompts == [SOURCE, SOURCE]


def test_edit_returns_groups_prompts_masks_and_is_seeded(pipe, image):
    res = edit(pipe, image, SOURCE, TARGET, seed=3, **FAST)
    assert res.image.size == (32, 32) and res.image.mode == "RGB"
    assert res.branch_prompts[0] == SOURCE and res.branch_prompts[-1] == TARGET
    k = len(res.groups)
    assert len(res.branch_prompts) == k + 1 == len(res.masks) + 1 == len(res.group_kinds) + 1
    assert sorted(p for g in res.groups for p in g) == ["green", "yellow"]
    assert set(res.group_kinds) <= {"rigid", "non-rigid", "global"}
    for kind, mask in zip(res.group_kinds, res.masks):
        assert (mask is None) == (kind == "global")
        if mask is not None:
            assert mask.shape == (4, 32, 32) and mask.dtype == torch.bool and not mask[0].any()
    assert res.x0_steps.shape == (4, k, 3, 32, 32) and res.seconds > 0
    assert res.grouping.source_maps.shape == (2, 32, 32)
    again = edit(pipe, image, SOURCE, TARGET, seed=3, **FAST)
    assert np.array_equal(np.asarray(again.image), np.asarray(res.image))
    other = edit(pipe, image, SOURCE, TARGET, seed=4, **FAST)
    assert not np.array_equal(np.asarray(other.image), np.asarray(res.image))


def test_baselines_run_one_aspect_at_a_time_or_all_in_one_branch(pipe, image):
    seq = sequential_edit(pipe, image, SOURCE, TARGET, **FAST)
    assert seq.groups == [["green"], ["yellow"]]
    assert seq.branch_prompts == [SOURCE, "a big green circle left of a small blue square", TARGET]
    assert seq.x0_steps.shape == (4, 2, 3, 32, 32)
    one = single_branch_edit(pipe, image, SOURCE, TARGET, **FAST)
    assert one.groups == [["green", "yellow"]] and one.branch_prompts == [SOURCE, TARGET]
    # a PIE-Bench++ annotation gives the same edit as the caption difference
    ann = edit(pipe, image, SOURCE, TARGET, edit_action={"green": {"position": 2, "edit_type": 6, "action": "red"},
                                                         "yellow": {"position": 8, "edit_type": 6, "action": "blue"}},
               aspect_mapping={"circle": ["big", "red"], "square": ["small", "blue"]}, **FAST)
    assert sorted(p for g in ann.groups for p in g) == ["green", "yellow"]


def test_reference_wiring_of_target_and_mutual_rows():
    prev, code = _references(3, 2, "previous"), _references(3, 2, "code_order")
    assert prev(0) == code(1) == [-1] * 6
    assert prev(2) == [-1, -1, 0, 0, 2, 2]  # t_k and m_k build on t_{k-1}
    assert code(2) == [2, 3, 4, 5, -1, -1]  # the authors' concatenation: row k+1, the last on the source
    code_opts = EditOptions.code()
    assert (code_opts.reference, code_opts.reference_eps, code_opts.mutual_guidance, code_opts.min_overlap) == \
        ("code_order", "source", "source", 0.0)


def test_reference_source_scale_changes_only_the_branches_that_reference_a_branch(pipe, image):
    from kit.diffusion.editing import encode_image
    from kit.multiedits.editor import run_branches

    source = encode_image(pipe, image, resize=True)
    prompts = [SOURCE, "a big green circle left of a small blue square", TARGET]

    def run(ref_eps):
        o = EditOptions(**FAST, reference_eps=ref_eps)
        return run_branches(pipe, source, prompts, rigid=[True, True], num_inference_steps=4, options=o,
                            generator=torch.Generator().manual_seed(0)).edits

    plain, scaled = run("reference"), run("reference_source_scale")
    torch.testing.assert_close(scaled[0], plain[0])  # branch 0 references the source: unchanged
    assert float((scaled[1] - plain[1]).abs().max()) > 1e-3  # branch 1 references branch 0 after the switch


def test_oracle_scores_an_unchanged_image_and_the_true_target():
    case = shapes_cases(1, 2, seed=5)[0]
    target_img = render(case.multi.target, 32)[0]
    assert aspect_hits(target_img, case.multi) == [True, True]
    assert aspect_hits(case.image, case.multi) == [False, False]
    for mixed in shapes_cases(6, 2, seed=6, kinds="mixed"):  # shape, size, add and remove aspects too
        truth = render(mixed.multi.target, 32)[0]
        assert all(aspect_hits(truth, mixed.multi)), [s.kind for s in mixed.multi.steps]
        assert not any(aspect_hits(mixed.image, mixed.multi)), [s.kind for s in mixed.multi.steps]
    changed = case.multi.mask(32)
    assert unedited_scores(target_img, case.image, changed)["psnr"] == float("inf")
    noisy = np.clip(case.image.astype(int) + 10, 0, 255).astype(np.uint8)
    assert unedited_scores(noisy, case.image, changed)["psnr"] < 30
    rows = [{"method": "parallel", "n_aspects": 2, "aspacc": 1.0, "all": True, "psnr": 30.0, "seconds": 1.0},
            {"method": "parallel", "n_aspects": 2, "aspacc": 0.5, "all": False, "psnr": float("inf"), "seconds": 3.0}]
    assert summary(rows) == [{"method": "parallel", "n_aspects": 2, "n": 2, "aspacc": 0.75, "all": 0.5,
                              "psnr": 30.0, "seconds": 2.0}]


def test_bad_inputs_are_named(pipe, image):
    with pytest.raises(ValueError, match="image is required"):
        edit(pipe, None, SOURCE, TARGET, **FAST)
    with pytest.raises(ValueError, match="unknown edit options"):
        edit(pipe, image, SOURCE, TARGET, steps=3)
    with pytest.raises(ValueError, match="reference must be one of"):
        EditOptions(reference="next")
    with pytest.raises(ValueError, match="blend_global must be one of"):
        EditOptions(blend_global="everything")
    with pytest.raises(ValueError, match="target_prompt must be a non-empty string"):
        edit(pipe, image, SOURCE, "", **FAST)
    with pytest.raises(ValueError, match="uint8"):
        edit(pipe, image.astype(np.float32), SOURCE, TARGET, **FAST)
    with pytest.raises(ValueError, match="n_aspects"):
        shapes_cases(1, 4)
    big = np.asarray(render(Scene((ShapeObject("circle", "red", "big", 0.5, 0.5),)), 64)[0])
    res = edit(pipe, big, "a big red circle", "a big blue circle", **FAST)  # a 64 px image is resized to 32
    assert res.image.size == (32, 32)


def test_pie_bench_pp_rows_in_the_published_layout_are_edited_with_their_annotations(pipe, tmp_path):
    from kit.data.benchmarks import load_pie_bench_pp
    from kit.data.shapes_export import export_pie_bench_pp
    from kit.multiedits.experiment import evaluate_pie

    cases = shapes_cases(2, 2, seed=7)
    export_pie_bench_pp([c.multi for c in cases], tmp_path, resolution=32)
    examples = load_pie_bench_pp(tmp_path)
    assert {e.source_prompt for e in examples} == {c.source for c in cases}
    rows = evaluate_pie(pipe, examples, ("parallel",), progress=False,
                        scorers={"edited_pixels": lambda im, src, ex: float(np.asarray(ex.mask).mean())}, **FAST)
    assert len(rows) == 2 and all(r["n_aspects"] == 2 and r["method"] == "parallel" for r in rows)
    assert all(np.isfinite(r["psnr"]) and 0 < r["edited_pixels"] < 1 and np.isnan(r["aspacc"]) for r in rows)
    with pytest.raises(ValueError, match="unknown methods"):
        evaluate_pie(pipe, examples, ("fast",), progress=False)
    with pytest.raises(FileNotFoundError, match="PIE-Bench\\+\\+ path not found"):
        load_pie_bench_pp(tmp_path / "cases")


def test_pie_scorers_wire_each_metric_to_the_example(monkeypatch):
    from types import SimpleNamespace

    from kit.multiedits import metrics
    from kit.multiedits.experiment import pie_scorers

    seen = {}
    monkeypatch.setattr(metrics, "clip_score", lambda im, text, clip, mask=None: seen.setdefault(
        "clip_edited" if mask is not None else "clip_whole", (text, clip)) and 1.0)
    monkeypatch.setattr(metrics, "directional_clip", lambda im, src, t, s, clip: seen.setdefault("d", (t, s)) and 2.0)
    monkeypatch.setattr(metrics, "aspect_accuracy_clip",
                        lambda im, src, aspects, clip: {"accuracy": len(seen.setdefault("asp", aspects)) / 4})
    monkeypatch.setattr(metrics, "structure_distance", lambda im, src, dino: 0.5)
    ex = SimpleNamespace(source_prompt="a big white cross", target_prompt="a big green cross",
                         edit_action={"big green cross": {"position": 2, "edit_type": 6, "action": "big white cross"}},
                         mask=np.zeros((32, 32), bool))
    img = np.zeros((32, 32, 3), np.uint8)
    scores = {k: fn(img, img, ex) for k, fn in pie_scorers(clip="CLIP", dino="DINO").items()}
    assert scores == {"clip_whole": 1.0, "clip_edited": 1.0, "d_clip": 2.0, "aspacc": 0.25, "structure": 0.5,
                      "ssim": 1.0}
    assert seen["clip_whole"] == ("a big green cross", "CLIP") and seen["d"] == ("a big green cross", "a big white cross")
    assert seen["asp"][0].position == 1  # the annotation's inner position is resolved to the phrase's start
    assert set(pie_scorers()) == {"ssim"}
    # the VLM judge gets the edit and the resolved aspects: one swap, two questions
    asked = []
    judge = lambda im, q: asked.append(q) or (0.8 if "green" in q else 0.2)  # noqa: E731
    assert pie_scorers(vlm=judge)["aspacc_vlm"](img, img, ex) == 1.0
    assert asked == ["Does this image show big green cross? Answer yes or no.",
                     "Does this image show big white cross? Answer yes or no."]


def test_an_lcm_scheduler_gives_the_editor_its_own_timesteps(pipe, image):
    from diffusers import LCMScheduler

    from kit.diffusion.t2i import TextToImagePipeline
    from kit.multiedits.editor import edit_grid

    lcm = LCMScheduler.from_config(pipe.scheduler.config)
    lcm_pipe = TextToImagePipeline.from_components(pipe.components, scheduler=lcm, solver=None)
    grid = edit_grid(lcm_pipe, 4)
    ref = LCMScheduler.from_config(pipe.scheduler.config)
    ref.set_timesteps(4, original_inference_steps=50)
    assert grid.timesteps.tolist() == ref.timesteps.tolist()
    torch.testing.assert_close(grid.abar[:-1], ref.alphas_cumprod.double()[ref.timesteps])
    assert float(grid.abar[-1]) == float(ref.final_alpha_cumprod)
    ddim = edit_grid(pipe, 4)  # any other scheduler: the DDIM grid of the same noise schedule
    assert ddim.timesteps.tolist() != grid.timesteps.tolist()
    same = edit(lcm_pipe, image, SOURCE, SOURCE, **FAST)  # the invariant holds on LCM timesteps too
    assert _psnr(same.image, image) >= 30.0
