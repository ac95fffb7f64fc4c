"""Edit actions (PIE-Bench++ annotations or a caption difference), aspects and cumulative branch prompts."""

from __future__ import annotations

import json

import pytest

from kit.multiedits.aspects import (
    EditAction,
    apply_edits,
    aspects,
    branch_prompts,
    edit_actions_from_captions,
    parse_edit_action,
    shapes_aspect_mapping,
)

SOURCE = "a old man sitting on the bench by the calm lake"
TARGET = "a old man standing on the bench by the calm lake ducks on the water"
# the layout of PIE-Bench++'s demo annotation: the key is the target phrase, "action" the source phrase or +/-
EDIT_ACTION = json.dumps({"ducks on the water": {"position": 11, "edit_type": 2, "action": "+"},
                          "man standing": {"position": 2, "edit_type": 5, "action": "man sitting"}})
MAPPING = {"man": ["standing"], "ducks": []}


def test_parse_edit_action_reads_the_published_layout_in_source_order():
    acts = parse_edit_action(EDIT_ACTION)
    assert [a.phrase for a in acts] == ["man standing", "ducks on the water"]
    assert [(a.kind, a.position, a.edit_type) for a in acts] == [("swap", 2, 5), ("add", 11, 2)]
    assert acts[0].source_words == ["man", "sitting"] and acts[1].source_words == []
    with pytest.raises(ValueError, match="'position' and 'action'"):
        parse_edit_action({"cat": {"action": "+"}})
    with pytest.raises(ValueError, match="word index"):
        parse_edit_action({"cat": {"position": "two", "action": "+"}})
    with pytest.raises(ValueError, match="non-empty mapping"):
        parse_edit_action("{}")


def test_branch_prompts_are_cumulative_and_end_at_the_target():
    swap, add = parse_edit_action(EDIT_ACTION)
    prompts = branch_prompts(SOURCE, [[swap], [add]], target=TARGET)
    assert prompts == [SOURCE, "a old man standing on the bench by the calm lake", TARGET]
    assert branch_prompts(SOURCE, [[add], [swap]])[1] == "a old man sitting on the bench by the calm lake ducks on " \
                                                         "the water"
    assert branch_prompts(SOURCE, [[swap, add]]) == [SOURCE, TARGET]
    with pytest.raises(ValueError, match="not the target prompt"):
        branch_prompts(SOURCE, [[swap]], target=TARGET)


def test_apply_edits_insert_delete_replace_and_errors():
    src = "a big red circle left of a small blue square"
    assert apply_edits(src, [EditAction("yellow", 0, "+")]) == "yellow a big red circle left of a small blue square"
    assert apply_edits(src, [EditAction("left of a small blue square", 4, "-")]) == "a big red circle"
    both = [EditAction("green", 2, "red"), EditAction("big", 7, "small")]  # positions of the source, any order
    assert apply_edits(src, both[::-1]) == "a big green circle left of a big blue square"
    with pytest.raises(ValueError, match="has no 'blue' at word 2"):
        apply_edits(src, [EditAction("green", 2, "blue")])
    with pytest.raises(ValueError, match="overlap"):
        apply_edits(src, [EditAction("green", 2, "red"), EditAction("huge red circle", 1, "big red circle")])
    with pytest.raises(ValueError, match="outside the source prompt"):
        apply_edits(src, [EditAction("x", 12, "+")])
    with pytest.raises(ValueError, match="empty"):
        apply_edits("  ", [])


def test_aspects_pair_actions_with_the_words_that_locate_them():
    swap, add = parse_edit_action(EDIT_ACTION)
    style = EditAction("in watercolor", 11, "+")
    got = aspects([swap, add, style], MAPPING)
    assert got[0].words == ("man sitting", "man") and got[0].objects == ("man",) and not got[0].is_global
    assert got[1].words == ("ducks",) and got[1].objects == ("ducks",)
    assert got[2].is_global and got[2].objects == () and got[2].words == ("in watercolor",)
    assert aspects([swap], json.dumps(MAPPING))[0].objects == ("man",)


def test_shapesworld_captions_give_actions_mapping_and_aspects():
    src = "a big red circle left of a small blue square"
    tgt = "a big green circle left of a small blue diamond"
    acts = edit_actions_from_captions(src, tgt)
    assert [(a.phrase, a.position, a.action) for a in acts] == [("green", 2, "red"), ("diamond", 9, "square")]
    assert branch_prompts(src, [[a] for a in acts], target=tgt)[-1] == tgt
    mapping = shapes_aspect_mapping(src, tgt)
    assert mapping == {"circle": ["big", "red", "green"], "square": ["small", "blue"], "diamond": ["small", "blue"]}
    colour, shape = aspects(acts, mapping)
    assert colour.objects == ("circle",) and colour.words == ("red", "circle")
    assert shape.objects == ("diamond",) and shape.words == ("square", "diamond")  # the new object, as the code
    added = edit_actions_from_captions("a big red circle", "a big red circle above a small white cross")
    assert [(a.kind, a.position, a.phrase) for a in added] == [("add", 4, "above a small white cross")]
    with pytest.raises(ValueError, match="must not be empty"):
        edit_actions_from_captions("", "a big red circle")


def test_resolve_positions_moves_swaps_to_their_phrase_and_keeps_insertions():
    from kit.multiedits.aspects import resolve_positions

    src = "a big white cross above a small blue square"
    acts = parse_edit_action({"big green cross": {"position": 2, "edit_type": 6, "action": "big white cross"},
                              "red": {"position": 4, "edit_type": 2, "action": "+"}})
    fixed = resolve_positions(src, acts)
    assert [(a.phrase, a.position) for a in fixed] == [("big green cross", 1), ("red", 4)]
    assert apply_edits(src, fixed) == "a big green cross red above a small blue square"  # inserted before word 4
    with pytest.raises(ValueError, match="does not contain 'huge cross'"):
        resolve_positions(src, parse_edit_action({"x": {"position": 0, "action": "huge cross"}}))
