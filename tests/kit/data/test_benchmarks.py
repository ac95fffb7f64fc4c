"""RLE codecs, the PIE-Bench / PIE-Bench++ / TIIL loaders on hand-written fixtures, and exporter round trips."""

import json

import numpy as np
import pytest
from PIL import Image

from kit.data.benchmarks import (
    bracketed,
    coco_rle_decode,
    load_pie_bench,
    load_pie_bench_pp,
    load_tiil,
    rle_decode,
    rle_encode,
    rle_from_string,
    rle_to_string,
    strip_brackets,
)


# ------------------------------------------------------------------------ independent reference codecs
def naive_runs(mask):
    """Runs of ones by a plain loop over the row-major pixels."""
    runs, start = [], None
    flat = [bool(v) for v in np.asarray(mask).reshape(-1)]
    for i, v in enumerate(flat + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs += [start, i - start]
            start = None
    return runs


def naive_decode(rle, h, w):
    """PnPInversion-style decode: one pixel at a time, runs clipped at the end."""
    out = np.zeros(h * w, dtype=bool)
    for i in range(0, len(rle), 2):
        for j in range(min(rle[i + 1], h * w - rle[i])):
            out[rle[i] + j] = True
    return out.reshape(h, w)


def coco_string(counts):
    """COCO's compressed counts string, written from its published description (6-bit chunks, deltas)."""
    s = ""
    for i, x in enumerate(counts):
        x = x - counts[i - 2] if i > 2 else x
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if c & 0x10 else (x != 0)
            s += chr((c | 0x20 if more else c) + 48)
    return s


def coco_counts(mask):
    """COCO counts of a mask: alternating 0/1 run lengths over the column-major pixels, zeros first."""
    flat = mask.T.reshape(-1)
    counts, cur, n = [], False, 0
    for v in flat:
        if bool(v) != cur:
            counts.append(n)
            cur, n = bool(v), 0
        n += 1
    return counts + [n]


# ------------------------------------------------------------------------ RLE
@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, size=2)
    mask = rng.random((h, w)) < rng.uniform(0.05, 0.95)
    rle = rle_encode(mask)
    assert rle == naive_runs(mask)
    assert np.array_equal(rle_decode(rle, (h, w)), mask)
    assert np.array_equal(naive_decode(rle, h, w), mask)
    assert rle_from_string(rle_to_string(rle)) == rle


def test_rle_full_empty_and_border():
    full = np.ones((512, 512), dtype=bool)
    assert rle_to_string(rle_encode(full)) == "0 262144"
    assert rle_decode(rle_from_string("0 262144")).all()
    assert rle_encode(np.zeros((4, 5), dtype=bool)) == []
    assert rle_from_string("") == []
    m = rle_decode([12, 1], (5, 5), force_border=True)
    expect = np.zeros((5, 5), dtype=bool)
    expect[[0, -1], :] = expect[:, [0, -1]] = True
    expect[2, 2] = True
    assert np.array_equal(m, expect)
    assert not rle_decode([12, 1], (5, 5))[0].any()


def test_rle_decode_clips_and_rejects():
    assert np.array_equal(rle_decode([22, 10], (5, 5)), naive_decode([22, 10], 5, 5))
    assert rle_decode([22, 10], (5, 5)).sum() == 3
    with pytest.raises(ValueError, match="even-length"):
        rle_decode([1, 2, 3], (4, 4))
    with pytest.raises(ValueError, match="beyond"):
        rle_decode([100, 2], (4, 4))
    with pytest.raises(ValueError, match="non-negative"):
        rle_decode([-1, 2], (4, 4))
    with pytest.raises(ValueError, match="even number"):
        rle_from_string("3 x")
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros(5, dtype=bool))


@pytest.mark.parametrize("compressed", [False, True])
def test_coco_rle(compressed):
    rng = np.random.default_rng(3)
    mask = rng.random((9, 7)) < 0.4
    counts = coco_counts(mask)
    seg = {"size": [9, 7], "counts": coco_string(counts) if compressed else counts}
    assert np.array_equal(coco_rle_decode(seg), mask)
    with pytest.raises(ValueError, match="sum to"):
        coco_rle_decode({"size": [9, 8], "counts": counts})


def test_brackets():
    p = "a slanted [rusty] mountain bicycle and [two ducks]"
    assert strip_brackets(p) == "a slanted rusty mountain bicycle and two ducks"
    assert bracketed(p) == ["rusty", "two ducks"]


# ------------------------------------------------------------------------ PIE-Bench fixture
def _write_png(path, h=8, w=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)
    return img


def _pie_fixture(root):
    """A two-entry mapping_file.json in the published key layout and folder nesting."""
    _write_png(root / "annotation_images/0_random_140/000000000000.png")
    _write_png(root / "annotation_images/1_change_object_80/1_artificial/1_animal/111000000000.png")
    mapping = {
        "000000000000": {
            "image_path": "0_random_140/000000000000.png",
            "original_prompt": "a slanted mountain bicycle on the road",
            "editing_prompt": "a slanted [rusty] mountain bicycle on the road",
            "editing_instruction": "Make the frame of the bike rusty",
            "editing_type_id": "0", "blended_word": "bicycle bicycle", "mask": [9, 3, 60, 10],
        },
        "111000000000": {
            "image_path": "1_change_object_80/1_artificial/1_animal/111000000000.png",
            "original_prompt": "a [cat] sitting", "editing_prompt": "a [dog] sitting",
            "editing_instruction": "turn the cat into a dog",
            "editing_type_id": "1", "blended_word": "", "mask": [0, 64],
        },
    }
    (root / "mapping_file.json").write_text(json.dumps(mapping))
    return mapping


def test_load_pie_bench_fixture(tmp_path):
    mapping = _pie_fixture(tmp_path)
    ex = {e.id: e for e in load_pie_bench(tmp_path)}
    assert set(ex) == set(mapping)
    a = ex["000000000000"]
    assert a.editing_prompt == "a slanted [rusty] mountain bicycle on the road"
    assert strip_brackets(a.editing_prompt) == "a slanted rusty mountain bicycle on the road"
    assert a.blended_words == ["bicycle", "bicycle"] and ex["111000000000"].blended_words == []
    assert np.array_equal(a.mask, naive_decode([9, 3, 60, 10], 8, 8))
    assert ex["111000000000"].mask.all() and ex["111000000000"].editing_type_id == "1"
    assert a.image_path.is_file()
    assert load_pie_bench(tmp_path, mask_shape=(4, 16))[0].mask.shape == (4, 16)


def test_load_pie_bench_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mapping_file.json"):
        load_pie_bench(tmp_path)
    mapping = _pie_fixture(tmp_path)
    (tmp_path / "annotation_images/0_random_140/000000000000.png").unlink()
    with pytest.raises(FileNotFoundError, match="000000000000.png"):
        load_pie_bench(tmp_path)
    _write_png(tmp_path / "annotation_images/0_random_140/000000000000.png")
    for key, value, match in [("blended_word", None, "'111000000000'.*missing key 'blended_word'"),
                              ("editing_type_id", "12", "'111000000000'.*'editing_type_id'"),
                              ("mask", [0, 3, 5], "'111000000000'.*'mask'"),
                              ("mask", "0 64", "'111000000000'.*'mask'")]:
        bad = json.loads(json.dumps(mapping))
        if value is None:
            del bad["111000000000"][key]
        else:
            bad["111000000000"][key] = value
        (tmp_path / "mapping_file.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            load_pie_bench(tmp_path)
    (tmp_path / "mapping_file.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pie_bench(tmp_path)


# ------------------------------------------------------------------------ PIE-Bench++ fixture
DEMO_ACTION = {"man standing": {"position": 2, "edit_type": 5, "action": "man sitting"},
               "ducks on the water": {"position": 11, "edit_type": 2, "action": "+"}}


def _pp_fixture(root):
    cfg = root / "5_change_attribute_pose_40"
    _write_png(cfg / "images/500000000000.png")
    row = {"image": "images/500000000000.png", "id": "500000000000",
           "source_prompt": "a man sitting in a boat", "target_prompt": "a man standing in a boat and ducks",
           "edit_action": json.dumps(DEMO_ACTION), "aspect_mapping": json.dumps({"man": ["standing"], "ducks": []}),
           "blended_words": json.dumps(["man,man", "ducks,ducks"]), "mask": "3 5 60 4"}
    (cfg / "V1-00000-of-00001.jsonl").write_text(json.dumps(row) + "\n")
    return row


def test_load_pie_bench_pp_fixture(tmp_path):
    _pp_fixture(tmp_path)
    (r,) = load_pie_bench_pp(tmp_path)
    assert r.config == "5_change_attribute_pose_40" and r.id == "500000000000"
    assert r.edit_action == DEMO_ACTION and r.aspect_mapping == {"man": ["standing"], "ducks": []}
    assert r.blended_words == ["man,man", "ducks,ducks"]
    assert np.array_equal(r.mask, naive_decode([3, 5, 60, 4], 8, 8))
    assert r.load_image().shape == (8, 8, 3)
    (r2,) = load_pie_bench_pp(tmp_path / "5_change_attribute_pose_40/V1-00000-of-00001.jsonl")
    assert r2.edit_action == DEMO_ACTION


def test_load_pie_bench_pp_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PIE-Bench"):
        load_pie_bench_pp(tmp_path)
    row = _pp_fixture(tmp_path)
    f = tmp_path / "5_change_attribute_pose_40/V1-00000-of-00001.jsonl"
    for key, value, match in [("edit_action", "{oops", "'500000000000'.*'edit_action'.*JSON"),
                              ("edit_action", json.dumps({"x": {"position": 1}}), "'500000000000'.*'edit_action'"),
                              ("blended_words", json.dumps({"a": 1}), "'500000000000'.*'blended_words'.*list"),
                              ("mask", "1 2 3", "'500000000000'.*'mask'")]:
        f.write_text(json.dumps({**row, key: value}) + "\n")
        with pytest.raises(ValueError, match=match):
            load_pie_bench_pp(tmp_path)
    f.write_text(json.dumps({k: v for k, v in row.items() if k != "aspect_mapping"}) + "\n")
    with pytest.raises(ValueError, match="missing key 'aspect_mapping'"):
        load_pie_bench_pp(tmp_path)
    f.write_text(json.dumps({**row, "image": "images/nope.png"}) + "\n")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_pie_bench_pp(tmp_path)


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path):
    try:
        import pyarrow  # noqa: F401
        pytest.skip("pyarrow is installed")
    except ImportError:
        pass
    p = tmp_path / "6_change_attribute_color_40/V1-00000-of-00001.parquet"
    p.parent.mkdir()
    p.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="pyarrow"):
        load_pie_bench_pp(tmp_path)


# ------------------------------------------------------------------------ TIIL fixture
def _tiil_fixture(root):
    _write_png(root / "images/c1.png")
    _write_png(root / "images/i1.png")
    _write_png(root / "images/i2.png")
    _write_png(root / "images/i3.png")
    png_mask = np.zeros((8, 8), dtype=bool)
    png_mask[2:5, 1:4] = True
    Image.fromarray(png_mask.astype(np.uint8) * 255).save(root / "images/i3_mask.png")
    coco_mask = np.zeros((8, 8), dtype=bool)
    coco_mask[4:, 5:] = True
    consistent = {"images": [{"id": 1, "file_name": "images/c1.png"}],
                  "annotations": [{"image_id": 1, "caption": "a red circle"}]}
    inconsistent = {
        "images": [{"id": 1, "file_name": "images/i1.png", "height": 8, "width": 8},
                   {"id": 2, "file_name": "images/i2.png"}, {"id": 3, "file_name": "images/i3.png"}],
        "annotations": [
            {"image_id": 1, "caption": "a blue circle", "ori_word": "blue", "mask": [10, 4]},
            {"image_id": 2, "caption": "a red square", "ori_word": "square",
             "segmentation": {"size": [8, 8], "counts": coco_counts(coco_mask)}},
            {"image_id": 3, "caption": "a big cross", "ori_word": "big"},
        ]}
    (root / "consistent.json").write_text(json.dumps(consistent))
    (root / "inconsistent.json").write_text(json.dumps(inconsistent))
    return png_mask, coco_mask, inconsistent


def test_load_tiil_fixture(tmp_path):
    png_mask, coco_mask, _ = _tiil_fixture(tmp_path)
    ex = {e.id: e for e in load_tiil(tmp_path)}
    assert list(ex) == ["consistent/1", "inconsistent/1", "inconsistent/2", "inconsistent/3"]
    c = ex["consistent/1"]
    assert c.consistent and c.ori_word is None and c.mask is None and c.caption == "a red circle"
    assert np.array_equal(ex["inconsistent/1"].mask, naive_decode([10, 4], 8, 8))
    assert np.array_equal(ex["inconsistent/2"].mask, coco_mask)
    assert np.array_equal(ex["inconsistent/3"].mask, png_mask)
    assert [ex[f"inconsistent/{i}"].ori_word for i in (1, 2, 3)] == ["blue", "square", "big"]
    assert not any(e.consistent for k, e in ex.items() if k.startswith("in"))


def test_load_tiil_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="consistent.json"):
        load_tiil(tmp_path)
    _, _, inconsistent = _tiil_fixture(tmp_path)
    bad = json.loads(json.dumps(inconsistent))
    del bad["annotations"][1]["ori_word"]
    (tmp_path / "inconsistent.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="inconsistent/2.*'ori_word'"):
        load_tiil(tmp_path)
    bad = json.loads(json.dumps(inconsistent))
    bad["annotations"][0]["image_id"] = 9
    (tmp_path / "inconsistent.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="inconsistent/9.*'image_id'"):
        load_tiil(tmp_path)
    (tmp_path / "inconsistent.json").write_text(json.dumps(inconsistent))
    (tmp_path / "images/i2.png").unlink()
    with pytest.raises(FileNotFoundError, match="i2.png"):
        load_tiil(tmp_path)


# ------------------------------------------------------------------------ ShapesWorld exporters
from kit.data.shapes import Scene, ShapeObject, caption, edit_scene, render, sample_scene  # noqa: E402
from kit.data.shapes_export import (  # noqa: E402
    KIND_TO_PIE_TYPE,
    MultiEdit,
    caption_word_objects,
    compose_edits,
    export_pie_bench,
    export_pie_bench_pp,
    export_tiil,
    make_tiil_pairs,
    mark_changes,
    multi_edit_aspects,
)

A = ShapeObject("circle", "red", "big", 0.25, 0.5)
B = ShapeObject("square", "blue", "small", 0.75, 0.5)


def _read_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_caption_word_objects_and_mark_changes():
    rng = np.random.default_rng(0)
    for _ in range(10):
        scene = sample_scene(rng, (1, 4))
        words, owners = caption_word_objects(scene)
        assert " ".join(words) == caption(scene) and len(words) == len(owners)
    words, owners = caption_word_objects(Scene((A, B)))
    assert words == "a big red circle left of a small blue square".split()
    assert owners == [0, 0, 0, 0, None, None, 1, 1, 1, 1]
    src, tgt = mark_changes("a big red circle left of a small blue square", "a big green circle left of a small blue cross")
    assert src == "a big [red] circle left of a small blue [square]"
    assert tgt == "a big [green] circle left of a small blue [cross]"
    assert mark_changes("a red circle", "a red circle left of a blue cross") == (
        "a red circle", "a red circle [left of a blue cross]")


def _one_of_each_kind():
    rng = np.random.default_rng(1)
    two = Scene((A, B))
    return [edit_scene(two, "colour", 0, "green"), edit_scene(two, "shape", 1, "cross"),
            edit_scene(two, "size", 1), edit_scene(Scene((A,)), "add", 1, B), edit_scene(two, "remove", 0),
            edit_scene(two, "move", 1, (0.45, 0.16)), edit_scene(sample_scene(rng, 3), "colour", 2, rng=rng)]


def test_pie_bench_export_round_trip(tmp_path):
    edits = _one_of_each_kind()
    mapping = export_pie_bench(edits, tmp_path, resolution=32)
    loaded = load_pie_bench(tmp_path)
    assert [e.id for e in loaded] == list(mapping) and len(loaded) == len(edits)
    for ex, edit in zip(loaded, edits):
        assert ex.editing_type_id == KIND_TO_PIE_TYPE[edit.kind] and ex.id.startswith(ex.editing_type_id + "00")
        assert strip_brackets(ex.original_prompt) == edit.source_caption
        assert strip_brackets(ex.editing_prompt) == edit.target_caption
        assert bracketed(ex.editing_prompt) or bracketed(ex.original_prompt)
        assert ex.mask.shape == (32, 32) and np.array_equal(ex.mask, edit.mask(32))
        assert np.array_equal(_read_png(ex.image_path), render(edit.source, 32)[0])
        target = tmp_path / "target_images" / ex.image_path.relative_to(tmp_path / "annotation_images")
        assert np.array_equal(_read_png(target), render(edit.target, 32)[0])
    assert loaded[0].editing_prompt == "a big [green] circle left of a small blue square"
    assert loaded[0].blended_words == ["circle", "circle"] and loaded[1].blended_words == ["square", "cross"]
    assert loaded[3].blended_word == "square square" and loaded[3].editing_instruction == "add a small blue square"
    assert loaded[5].editing_prompt == "a big red circle [below] a small blue square"


def test_pie_bench_export_rejects(tmp_path):
    import dataclasses

    e = edit_scene(Scene((A, B)), "colour", 0, "green")
    with pytest.raises(ValueError, match=r"edits\[1\].*unchanged"):
        export_pie_bench([e, dataclasses.replace(e, target_caption=e.source_caption)], tmp_path)
    with pytest.raises(ValueError, match=r"edits\[0\] must be a SceneEdit"):
        export_pie_bench(["a red circle"], tmp_path)


def test_multi_edit_aspects_by_hand():
    s1 = edit_scene(Scene((A, B)), "colour", 0, "green")
    s2 = edit_scene(s1.target, "shape", 1, "cross")
    multi = MultiEdit(s1.source, s2.target, (s1, s2), (0, 1))
    action, mapping, blended = multi_edit_aspects(multi)
    assert action == {"big green circle": {"position": 2, "edit_type": 6, "action": "big red circle"},
                      "small blue cross": {"position": 9, "edit_type": 1, "action": "small blue square"}}
    assert mapping == {"circle": ["green"], "cross": []} and blended == ["circle,circle", "square,cross"]
    add = edit_scene(Scene((A,)), "add", 1, B)
    assert multi_edit_aspects(MultiEdit(add.source, add.target, (add,), (0, None))) == (
        {"small blue square": {"position": 4, "edit_type": 2, "action": "+"}}, {"square": ["small", "blue"]},
        ["square,square"])
    rem = edit_scene(Scene((A, B)), "remove", 0)
    assert multi_edit_aspects(MultiEdit(rem.source, rem.target, (rem,), (1,)))[0] == {
        "big red circle": {"position": 1, "edit_type": 3, "action": "-"}}
    a, b = ShapeObject("circle", "red", "small", 0.3, 0.6), ShapeObject("square", "blue", "small", 0.75, 0.6)
    mv = edit_scene(Scene((a, b)), "move", 1, (0.35, 0.2))
    assert multi_edit_aspects(MultiEdit(mv.source, mv.target, (mv,), (0, 1))) == (
        {"below": {"position": 4, "edit_type": 5, "action": "left of"}}, {}, [])


def test_compose_edits_chain_and_determinism():
    def run(seed):
        rng = np.random.default_rng(seed)
        return compose_edits(sample_scene(rng, 2), ["colour", "shape", "add"], rng)

    m = run(3)
    assert [s.kind for s in m.steps] == ["colour", "shape", "add"]
    assert m.steps[0].source == m.source and m.steps[-1].target == m.target
    assert all(a.target == b.source for a, b in zip(m.steps, m.steps[1:]))
    assert len(m.target.objects) == 3 and m.origin.count(None) == 1
    assert sorted(k for k in m.origin if k is not None) == [0, 1]
    m2 = run(3)
    assert (m2.source_caption, m2.target_caption) == (m.source_caption, m.target_caption)
    expect = m.steps[0].mask(16) | m.steps[1].mask(16) | m.steps[2].mask(16)
    assert np.array_equal(m.mask(16), expect)
    with pytest.raises(ValueError, match="'move' needs a 2-object scene"):
        compose_edits(Scene((A,)), ["move"], np.random.default_rng(0))


def test_pie_bench_pp_export_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    multis = [compose_edits(sample_scene(rng, n), kinds, rng) for n, kinds in
              [(1, ["colour", "add"]), (2, ["shape", "size"]), (3, ["remove", "colour"]), (2, ["move", "colour"])]]
    rows = export_pie_bench_pp(multis, tmp_path, resolution=32)
    loaded = {r.id: r for r in load_pie_bench_pp(tmp_path)}
    assert set(loaded) == {r["id"] for r in rows} and len(loaded) == len(multis)
    for row, multi in zip(rows, multis):
        ex = loaded[row["id"]]
        action, mapping, blended = multi_edit_aspects(multi)
        assert (ex.source_prompt, ex.target_prompt) == (multi.source_caption, multi.target_caption)
        assert ex.edit_action == action and ex.aspect_mapping == mapping and ex.blended_words == blended
        assert ex.config.startswith(str(next(iter(action.values()))["edit_type"]) + "_")
        assert np.array_equal(ex.mask, multi.mask(32))
        assert np.array_equal(ex.load_image(), render(multi.source, 32)[0])


def test_pie_bench_pp_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(6)
    multi = compose_edits(sample_scene(rng, 2), ["colour", "shape"], rng)
    export_pie_bench_pp([multi], tmp_path, resolution=16)
    (p,) = tmp_path.glob("*/V1-*.parquet")
    (ex,) = load_pie_bench_pp(p)
    assert ex.image_bytes is not None and np.array_equal(ex.load_image(), render(multi.source, 16)[0])
    assert np.array_equal(ex.mask, multi.mask(16))


def test_make_tiil_pairs_ground_truth():
    pairs = make_tiil_pairs(12, np.random.default_rng(7), resolution=32)
    assert [p.side for p in pairs[:4]] == [None, "text", None, "image"]
    assert sum(p.consistent for p in pairs) == 6
    for p in pairs:
        if p.consistent:
            assert p.mask is None and p.word is None
            continue
        e = p.edit
        src_img, src_masks = render(e.source, 32)
        tgt_img, tgt_masks = render(e.target, 32)
        words_src, words_tgt = e.source_caption.split(" "), e.target_caption.split(" ")
        changed = [(a, b) for a, b in zip(words_src, words_tgt) if a != b]
        assert len(changed) == 1 and changed[0] == (e.old_word, e.new_word)
        if p.side == "text":
            assert p.caption == e.target_caption and p.word == e.new_word
            assert np.array_equal(p.image, src_img) and np.array_equal(p.mask, src_masks[e.index])
        else:
            assert p.caption == e.source_caption and p.word == e.old_word
            assert np.array_equal(p.image, tgt_img)
            assert np.array_equal(p.mask, src_masks[e.index] | tgt_masks[e.index])
            assert p.mask[np.any(src_img != tgt_img, axis=-1)].mean() > 0.5
    again = make_tiil_pairs(12, np.random.default_rng(7), resolution=32)
    assert [p.caption for p in again] == [p.caption for p in pairs]


def test_tiil_export_round_trip(tmp_path):
    pairs = make_tiil_pairs(8, np.random.default_rng(8), resolution=32)
    export_tiil(pairs, tmp_path)
    loaded = load_tiil(tmp_path)
    assert len(loaded) == 8
    ordered = [p for p in pairs if p.consistent] + [p for p in pairs if not p.consistent]
    for ex, p in zip(loaded, ordered):
        assert ex.consistent == p.consistent and ex.caption == p.caption and ex.ori_word == p.word
        assert ex.side == p.side and np.array_equal(_read_png(ex.image_path), p.image)
        assert (ex.mask is None) if p.consistent else np.array_equal(ex.mask, p.mask)
    assert loaded[0].id == "consistent/1" and loaded[4].id == "inconsistent/1"
    with pytest.raises(ValueError, match=r"pairs\[0\] must be a TIILPair"):
        export_tiil([None], tmp_path)
