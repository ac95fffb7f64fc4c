"""Aspect grouping on hand-made token maps: the overlap coefficient against a numpy count, rigid / non-rigid /
global kinds, greedy groups, branch order, deletions and unlocated words."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.multiedits import branch_prompts
from kit.multiedits.editor import prepare_aspects
from kit.multiedits.grouping import group_aspects, locate, overlap, target_positions

R = 32


def _box(y0, y1, x0, x1, value=200.0, floor=0.0):
    m = torch.full((R, R), floor)
    m[y0:y1, x0:x1] = value
    return m


def _numpy_overlap(a, b, tau=100, band=10):
    a, b = np.asarray(a), np.asarray(b)
    out = []
    for t in range(tau - band, tau + band):
        x, y = a > t, b > t
        d = min(x.sum(), y.sum())
        out.append(0.0 if d == 0 else np.logical_and(x, y).sum() / d)
    return float(np.mean(out))


def test_overlap_is_the_overlap_coefficient_averaged_over_thresholds():
    big, inner = _box(0, 16, 0, 16), _box(4, 8, 4, 8)
    assert overlap(big, inner) == 1.0  # contained: overlap coefficient 1 (its IoU would be 1/16)
    assert overlap(big, _box(16, 32, 16, 32)) == 0.0
    assert overlap(big, torch.zeros(R, R)) == 0.0  # an empty map overlaps nothing (the code's 0/0 is NaN)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        a, b = torch.rand(R, R, generator=g) * 255, torch.rand(R, R, generator=g) * 255
        assert overlap(a, b) == pytest.approx(_numpy_overlap(a, b))
    ramp = torch.linspace(0, 255, R * R).reshape(R, R)  # thresholds matter: only 90..109 are averaged
    half = _box(0, R, 0, R, value=105.0)
    assert overlap(ramp, half) == pytest.approx(_numpy_overlap(ramp, half))
    with pytest.raises(ValueError, match="one shape"):
        overlap(big, big[:4])


def test_locate_takes_the_occurrence_nearest_the_edit():
    words = "a red circle left of a red square".split()
    assert locate(words, ["red"], 6) == [6] and locate(words, ["red"], 1) == [1]
    assert locate(words, ["red", "square"], 0) == [6, 7]
    assert locate(words, ["blue"], 0) is None and locate(words, [], 0) is None


def test_target_positions_shift_by_earlier_length_changes():
    items = prepare_aspects("a red circle left of a blue square", "a big green circle left of a square")
    # "red" -> "big green" at 1 (+1 word), "blue" deleted at 6: the deletion's phrase starts at 7 in the target
    assert [a.action.phrase for a in items] == ["big green", "blue"]
    assert target_positions([a.action for a in items]) == [1, 7]


def _maps(words, regions, floor=0.0):
    """Token maps [W, R, R]: words named in ``regions`` light their box, the others are flat at ``floor``."""
    return torch.stack([_box(*regions[w], floor=floor) if w in regions else torch.full((R, R), floor)
                        for w in words])


LEFT, RIGHT, RIGHT_LOW = (8, 20, 2, 14), (8, 20, 18, 30), (22, 32, 18, 30)


def test_rigid_non_rigid_and_global_kinds_and_the_branch_order():
    src = "a red circle left of a blue square"
    tgt = "a green circle left of a blue triangle"
    items = prepare_aspects(src, tgt)
    assert [a.action.kind for a in items] == ["swap", "swap"]
    s_words, t_words = src.split(), tgt.split()
    s_maps = _maps(s_words, {"red": LEFT, "circle": LEFT, "blue": RIGHT, "square": RIGHT})
    # the circle stays (rigid colour swap); the triangle is drawn lower than the square was (non-rigid)
    t_maps = _maps(t_words, {"green": LEFT, "circle": LEFT, "blue": RIGHT_LOW, "triangle": RIGHT_LOW})
    g = group_aspects(items, s_words, t_words, s_maps, t_maps)
    assert g.kinds == ["rigid", "non-rigid"]
    assert g.rigidity[0] == 1.0 and g.rigidity[1] == 0.0
    assert g.groups == [[0], [1]] and g.group_kinds == ["rigid", "non-rigid"]
    assert branch_prompts(src, g.group_actions(), tgt) == [src, "a green circle left of a blue square", tgt]
    assert g.blend_words() == [["circle"], ["triangle"]]
    # a map above tau over >= 80 % of the image makes the aspect global, whatever its kind
    t_maps_wide = t_maps.clone()
    t_maps_wide[t_words.index("circle")] = 150.0
    g = group_aspects(items, s_words, t_words, s_maps, t_maps_wide)
    assert g.kinds == ["global", "non-rigid"] and g.coverage[0] == 1.0
    assert g.groups == [[1], [0]] and g.group_kinds == ["non-rigid", "global"] and g.blend_words()[1] == []
    # [PROPOSED] blend_global="objects": the coverage-global aspect is blended by its object; other groups unchanged
    assert g.blend_words("objects") == [["triangle"], ["circle"]]
    with pytest.raises(ValueError, match="blend_global must be one of"):
        g.blend_words("all")


def test_an_annotated_global_aspect_stays_unblended_with_blend_global_objects():
    src, tgt = "a red circle left of a blue square", "a green circle left of a blue square"
    items = prepare_aspects(src, tgt, aspect_mapping={})  # no object named: global by annotation
    s_words, t_words = src.split(), tgt.split()
    maps = _maps(s_words, {"red": LEFT, "circle": LEFT})
    g = group_aspects(items, s_words, t_words, maps, _maps(t_words, {"green": LEFT, "circle": LEFT}))
    assert g.kinds == ["global"] and g.blend_words("objects") == [[]] and g.blend_words() == [[]]


def test_overlapping_aspects_share_a_group_and_min_overlap_is_the_absorption_bar():
    src = "a small red circle left of a blue square"
    tgt = "a big green circle left of a yellow square"
    items = prepare_aspects(src, tgt)
    s_words, t_words = src.split(), tgt.split()
    regions = {"small": LEFT, "red": LEFT, "circle": LEFT, "blue": RIGHT, "square": RIGHT}
    s_maps = _maps(s_words, regions)
    t_maps = _maps(t_words, {"big": LEFT, "green": LEFT, "circle": LEFT, "yellow": RIGHT, "square": RIGHT})
    g = group_aspects(items, s_words, t_words, s_maps, t_maps)
    # "small red" -> "big green" is one action (adjacent words); the square's colour is another, elsewhere
    assert len(items) == 2 and g.kinds == ["rigid", "rigid"] and g.groups == [[0], [1]]
    assert g.overlaps[0, 1] == 0.0 and g.overlaps[0, 0] == 1.0
    # the same two aspects on touching objects: a small shared patch (ov 1/12 at every threshold)
    near = (8, 20, 13, 25)
    s_near = _maps(s_words, {**regions, "blue": near, "square": near})
    touching = _maps(t_words, {"big": LEFT, "green": LEFT, "circle": LEFT, "yellow": near, "square": near})
    g_code = group_aspects(items, s_words, t_words, s_near, touching, min_overlap=0.0)
    g_prop = group_aspects(items, s_words, t_words, s_near, touching)
    assert g_code.kinds == g_prop.kinds == ["rigid", "rigid"]
    assert 0 < float(g_code.overlaps[0, 1]) < 0.1
    assert g_code.groups == [[0, 1]] and g_prop.groups == [[0], [1]]


def test_deletions_are_located_in_the_source_and_unlocated_aspects_warn_into_the_global_group():
    src = "a red circle left of a blue square"
    tgt = "a red circle"
    items = prepare_aspects(src, tgt)  # "left of a blue square" deleted
    s_words, t_words = src.split(), tgt.split()
    s_maps = _maps(s_words, {"red": LEFT, "circle": LEFT, "blue": RIGHT, "square": RIGHT})
    t_maps = _maps(t_words, {"red": LEFT, "circle": LEFT})
    g = group_aspects(items, s_words, t_words, s_maps, t_maps)
    assert g.kinds == ["non-rigid"] and torch.equal(g.target_maps[0], s_maps[s_words.index("square")])
    # an annotation naming an object ("moon") that neither prompt contains
    items = prepare_aspects(src, "a red circle left of a blue star", aspect_mapping={"moon": ["star"]})
    with pytest.warns(UserWarning, match="in neither prompt"):
        g = group_aspects(items, s_words, "a red circle left of a blue star".split(), s_maps,
                          _maps("a red circle left of a blue star".split(), {}))
    assert g.unlocated == [0] and g.kinds == ["global"] and g.group_kinds == ["global"]


def test_bad_inputs_are_named():
    src, tgt = "a red circle", "a blue circle"
    items = prepare_aspects(src, tgt)
    with pytest.raises(ValueError, match="no aspect to group"):
        group_aspects([], src.split(), tgt.split(), _maps(src.split(), {}), _maps(tgt.split(), {}))
    with pytest.raises(ValueError, match="one map per word"):
        group_aspects(items, src.split(), tgt.split(), _maps(src.split(), {})[:2], _maps(tgt.split(), {}))
    with pytest.raises(ValueError, match="target_prompt must be a non-empty string"):
        prepare_aspects(src, "  ")
    with pytest.raises(ValueError, match="not the target prompt"):
        prepare_aspects(src, tgt, edit_action={"green": {"position": 1, "edit_type": 5, "action": "red"}})
