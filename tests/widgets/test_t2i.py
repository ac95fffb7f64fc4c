"""PromptExplorer: image + per-word cross-attention maps, step slider, unknown words reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.t2i.config import preset
from kit.t2i.experiment import build_components, make_pipeline


@pytest.fixture(scope="module")
def pipe():
    cfg = preset("tiny")
    torch.manual_seed(0)
    return make_pipeline(build_components(cfg), cfg)


def test_prompt_explorer_draws_every_word_and_follows_the_step_slider(pipe):
    from widgets.t2i import PromptExplorer

    ex = PromptExplorer(pipe, prompt="a big red circle", steps=3)
    r = ex.result
    assert [w for _, w in r.words] == ["a", "big", "red", "circle"]
    assert len(ex.figure.data) == 1 + 4
    np.testing.assert_allclose(np.asarray(ex.figure.data[3].z), r.word_map(3), rtol=1e-6)  # "red" at token 3
    ex.step.value = 1
    np.testing.assert_allclose(np.asarray(ex.figure.data[3].z), r.word_map(3, step=1), rtol=1e-6)
    assert not np.allclose(r.word_map(3, step=0), r.word_map(3, step=2))


def test_unknown_words_are_reported_and_the_last_image_kept(pipe):
    from widgets.t2i import PromptExplorer

    ex = PromptExplorer(pipe, prompt="a small blue square", steps=2)
    before = ex.result
    ex.prompt.value = "a small blue hexagon"
    ex.generate()
    assert "hexagon" in ex.status.value and ex.result is before
    ex.prompt.value = "a big white cross"
    ex.button.click()
    assert ex.result is not before and [w for _, w in ex.result.words][-1] == "cross"
