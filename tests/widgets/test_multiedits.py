"""MultiEdits views on a real (few-step) edit of the committed ShapesWorld model: every control changes the figure
it drives, in place; the editor view reports bad captions instead of raising."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from kit.data.shapes import Scene, ShapeObject, render  # noqa: E402

torch.set_num_threads(1)
FAST = {"num_inference_steps": 4, "group_steps": 2, "switch_step": 2, "map_resolution": 32,
        "map_normalization": "minmax", "keep_heads": True}
SOURCE = "a big red circle left of a small blue square"
TARGET = "a big green circle left of a small yellow square"


@pytest.fixture(scope="module")
def setup():
    from kit.diffusion.t2i import load_shapes_pipeline
    from kit.multiedits import edit

    pipe = load_shapes_pipeline(solver=None)
    scene = Scene((ShapeObject("circle", "red", "big", 0.3, 0.5), ShapeObject("square", "blue", "small", 0.75, 0.5)))
    image = render(scene, 32)[0]
    return pipe, image, edit(pipe, image, SOURCE, TARGET, **FAST)


def test_token_maps_view_follows_branch_role_word_step_and_head(setup):
    from kit.multiedits.explore import branch_views, word_map
    from widgets.multiedits import TokenMapsView

    pipe, image, result = setup
    view = TokenMapsView(pipe, image, result)
    fig = view.figure
    first = np.asarray(fig.data[2].z).copy()
    v0 = branch_views(result)[0]
    np.testing.assert_allclose(first, word_map(result, pipe.tokenizer, v0, "t", len(v0.words("t")) - 1, size=32),
                               rtol=1e-5)
    changes = []
    for control, value in ((view.word, 1), (view.step, 1), (view.head, 0), (view.role, "m"),
                           (view.resolution, view.resolution.options[-1][1])):
        before = np.asarray(fig.data[2].z).copy()
        control.value = value
        assert view.figure is fig  # updated in place
        changes.append(not np.allclose(before, np.asarray(fig.data[2].z)))
    assert all(changes), changes
    view.alpha.value = 0.2
    assert fig.data[1].opacity == 0.2


def test_grouping_blend_and_grid_views(setup):
    from widgets.multiedits import BlendMasksView, EditGrid, GroupingView

    pipe, image, result = setup
    g = GroupingView(result)
    assert "green" in g.table.value and len(g.figure.data) == 1 + len(result.grouping.aspects)
    np.testing.assert_allclose(np.asarray(g.figure.data[0].z), result.grouping.overlaps.numpy())
    if any(m is not None for m in result.masks):
        b = BlendMasksView(result)
        b.theta.value = 0.1
        low = np.asarray(b.figure.data[2].z).sum()
        b.theta.value = 0.9
        assert np.asarray(b.figure.data[2].z).sum() <= low  # monotone in theta
    grid = EditGrid(pipe, image, result)
    fig = grid.figure
    last = np.asarray(fig.data[1].z).copy()
    grid.step.value = 0
    assert grid.figure is fig and not np.array_equal(last, np.asarray(fig.data[1].z))
    assert len(fig.data) == 1 + len(result.groups)


def test_editor_view_edits_on_click_and_reports_bad_captions(setup):
    from kit.multiedits import edit, sequential_edit
    from widgets.multiedits import EditorView

    pipe, image, _ = setup
    ev = EditorView(pipe, image, SOURCE, TARGET, edit, sequential_edit, **FAST)
    fig = ev.grid.figure
    assert len(fig.data) == 1 + len(ev.result.groups) + 1  # source, branches, sequential
    before = ev.result
    ev.target.value = "a big red circle left of a small purple square"
    ev.button.click()
    assert ev.result is not before and ev.result.branch_prompts[-1].endswith("purple square")
    assert ev.grid.figure is fig
    kept = ev.result
    ev.target.value = ""
    ev.run()
    assert "non-empty" in ev.status.value and ev.result is kept
