"""ShapesWorld edit pairs written in the PIE-Bench, PIE-Bench++ and TIIL layouts (read back by ``kit.data.benchmarks``).

PIE-Bench (arXiv:2310.01506), PIE-Bench++ (arXiv:2406.00985) and TIIL (arXiv:2404.18033) are real-image
benchmarks; these exporters make small synthetic twins from ``kit.data.shapes`` so that one loader and one
evaluator serve both. What each layout's files contain, and which parts are verified or guessed, is in the
docstring of ``kit.data.benchmarks``. Our own choices here:

- ids are 12 digits like the real ones: the PIE editing type, "00" (the real set's artificial/natural and
  category digits; 0 = synthetic) and a 9-digit running number; images are PNG (lossless, so masks stay exact).
- ShapesWorld edit kinds map to PIE editing types by ``KIND_TO_PIE_TYPE``: colour -> 6 change color, shape ->
  1 change object, add -> 2, remove -> 3, size -> 4 change content (an attribute other than colour / pose /
  material), move -> 5 change pose (same object, new layout).
- blended_word is "<source shape word> <target shape word>" (the edited object's noun, as in the real
  "bicycle bicycle"); an added or removed object repeats its own noun (a guess for types 2 and 3).
- PIE-Bench also gets ``target_images/<image_path>``, the rendered edit (not in the real benchmark).
- PIE-Bench++ blended_words are "<source noun>,<target noun>" per object aspect (a guess at the real "a,b").
- TIIL ``ori_word`` is the caption's inconsistent word (what word localisation must find); ``edited_side`` is
  our extension.
"""

from __future__ import annotations

import difflib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kit.data.benchmarks import PIE_TYPE_FOLDERS, Path_, rle_encode, rle_to_string
from kit.data.shapes import Scene, SceneEdit, caption, caption_words, edit_scene, render, sample_scene

KIND_TO_PIE_TYPE = {"colour": "6", "shape": "1", "size": "4", "add": "2", "remove": "3", "move": "5"}
TIIL_KINDS = ("colour", "shape", "size")


def _save_png(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def caption_word_objects(scene: Scene) -> tuple[list[str], list[int | None]]:
    """Return (words, owners): ``caption(scene).split(" ")`` and the object index each word names (or None)."""
    words, owners = [], []
    for w, k in caption_words(scene):
        if w == ",":
            words[-1] += ","
        else:
            words.append(w)
            owners.append(k)
    return words, owners


def mark_changes(source: str, target: str) -> tuple[str, str]:
    """Return (source, target) prompts with ``[ ]`` around the word runs that differ (PIE-Bench style)."""
    a, b = source.split(" "), target.split(" ")
    out_a, out_b = list(a), list(b)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        for words, lo, hi in ((out_a, i1, i2), (out_b, j1, j2)):
            if hi > lo:
                words[lo] = "[" + words[lo]
                words[hi - 1] = words[hi - 1] + "]"
    return " ".join(out_a), " ".join(out_b)


def _instruction(edit: SceneEdit) -> str:
    old, new = edit.old_object, edit.new_object
    if edit.kind == "colour":
        return f"make the {old.phrase} {new.colour}"
    if edit.kind == "shape":
        return f"turn the {old.phrase} into a {new.shape}"
    if edit.kind == "size":
        return f"make the {old.phrase} {new.size}"
    if edit.kind == "add":
        return f"add a {new.phrase}"
    if edit.kind == "remove":
        return f"remove the {old.phrase}"
    other = [o for k, o in enumerate(edit.source.objects) if k != edit.index]
    where = f" {edit.new_word} the {other[0].phrase}" if edit.new_word and len(other) == 1 else ""
    return f"move the {old.phrase}{where}"


def export_pie_bench(edits: list[SceneEdit], root: Path_, resolution: int = 64) -> dict:
    """Return the ``mapping_file.json`` dict written under ``root`` for ``edits`` (images in ``annotation_images/``).

    Each edit's source render goes to ``annotation_images/<type folder>/<id>.png`` and its target render to
    ``target_images/<type folder>/<id>.png``; the mask is ``edit.mask(resolution)`` as PIE-Bench runs.
    """
    root = Path(root)
    mapping = {}
    for i, edit in enumerate(edits):
        if not isinstance(edit, SceneEdit):
            raise ValueError(f"edits[{i}] must be a SceneEdit, got {type(edit).__name__}")
        if edit.source_caption == edit.target_caption:
            raise ValueError(f"edits[{i}] ({edit.kind}) leaves the caption unchanged: {edit.source_caption!r}")
        type_id = KIND_TO_PIE_TYPE[edit.kind]
        ex_id = f"{type_id}00{i:09d}"
        rel = f"{PIE_TYPE_FOLDERS[type_id]}/{ex_id}.png"
        _save_png(render(edit.source, resolution)[0], root / "annotation_images" / rel)
        _save_png(render(edit.target, resolution)[0], root / "target_images" / rel)
        src_noun = (edit.old_object or edit.new_object).shape
        tgt_noun = (edit.new_object or edit.old_object).shape
        original_prompt, editing_prompt = mark_changes(edit.source_caption, edit.target_caption)
        mapping[ex_id] = {
            "image_path": rel, "original_prompt": original_prompt, "editing_prompt": editing_prompt,
            "editing_instruction": _instruction(edit), "editing_type_id": type_id,
            "blended_word": f"{src_noun} {tgt_noun}", "mask": rle_encode(edit.mask(resolution)),
        }
    root.mkdir(parents=True, exist_ok=True)
    (root / "mapping_file.json").write_text(json.dumps(mapping))
    return mapping


# ----------------------------------------------------------------------------------------- PIE-Bench++
@dataclass(frozen=True)
class MultiEdit:
    """Several ``SceneEdit`` steps applied in turn; ``origin[t]`` = source index of target object t (None: added)."""

    source: Scene
    target: Scene
    steps: tuple
    origin: tuple

    @property
    def source_caption(self) -> str:
        """Return the source scene's caption."""
        return caption(self.source)

    @property
    def target_caption(self) -> str:
        """Return the target scene's caption."""
        return caption(self.target)

    def mask(self, resolution: int = 32) -> np.ndarray:
        """Return the union bool [H, W] of the steps' changed regions."""
        return np.logical_or.reduce([s.mask(resolution) for s in self.steps])


def compose_edits(scene: Scene, kinds: list[str], rng: np.random.Generator, max_tries: int = 20) -> MultiEdit:
    """Return the ``MultiEdit`` applying one ``edit_scene`` per kind, preferring objects not edited yet.

    New colours (colour edits, added objects) avoid those of the other source objects, so that no phrase of the
    target caption names a different source object.
    A step that cannot be drawn (no room to add or move, nothing left to remove) is redrawn up to ``max_tries``
    times before ValueError. "move" needs a 2-object scene at that step: only there does the caption show it.
    """
    n0 = len(scene.objects)
    ids, fresh, touched, steps, current = list(range(n0)), n0, set(), [], scene
    for kind in kinds:
        if kind == "move" and len(current.objects) != 2:
            raise ValueError(f"kinds {kinds}: 'move' needs a 2-object scene (its caption names a relation), "
                             f"got {len(current.objects)} objects")
        for _ in range(max_tries):
            n = len(current.objects)
            if kind == "add":
                index = int(rng.integers(n + 1))
            else:
                free = [k for k in range(n) if ids[k] not in touched] or list(range(n))
                index = int(free[rng.integers(len(free))])
            try:
                step = edit_scene(current, kind, index, rng=rng)
            except ValueError:
                continue
            own = fresh if kind == "add" else ids[index] if kind != "remove" else None
            reused = step.new_object is not None and step.new_object.colour in {
                o.colour for k, o in enumerate(scene.objects) if k != own}
            if step.source_caption != step.target_caption and not (reused and kind in ("add", "colour")):
                break
        else:
            raise ValueError(f"could not draw a caption-changing {kind!r} edit in {max_tries} tries "
                             f"for {caption(current)!r}")
        if kind == "add":
            ids.insert(index, fresh)
            fresh += 1
        elif kind == "remove":
            ids.pop(index)
        touched.add(ids[index] if kind != "remove" else None)
        steps.append(step)
        current = step.target
    origin = tuple(i if i < n0 else None for i in ids)
    return MultiEdit(scene, current, tuple(steps), origin)


def multi_edit_aspects(multi: MultiEdit) -> tuple[dict, dict, list[str]]:
    """Return (edit_action, aspect_mapping, blended_words) of a ``MultiEdit`` in the PIE-Bench++ form.

    One aspect per changed object: key = its target phrase, action = its source phrase ("+" added, "-" removed,
    key = the removed phrase), position = index in the source prompt's words where its change starts (for an
    added object, the article of the next kept object the target caption names, else the end), edit_type = PIE id (shape 1 > colour 6 > size 4; add 2,
    remove 3); a changed 2-object relation is one more aspect (type 5) not listed in aspect_mapping.
    """
    src, tgt = multi.source.objects, multi.target.objects
    sw, sown = caption_word_objects(multi.source)
    tw, town = caption_word_objects(multi.target)
    order = list(dict.fromkeys(k for k in town if k is not None))
    aspects = []                                                  # (position, key, action, type, noun, attrs, blend)
    for t, o in enumerate(multi.origin):
        new = tgt[t]
        if o is None:                  # goes before the next kept object the target caption names
            after = [multi.origin[k] for k in order[order.index(t) + 1:] if multi.origin[k] is not None]
            pos = sown.index(after[0]) if after else len(sw)
            aspects.append((pos, new.phrase, "+", 2, new.shape, [new.size, new.colour], f"{new.shape},{new.shape}"))
            continue
        old = src[o]
        diff = [d for d, (a, b) in enumerate(zip(old.phrase.split(), new.phrase.split())) if a != b]
        if diff:
            etype = 1 if old.shape != new.shape else 6 if old.colour != new.colour else 4
            changed = [w for d, w in enumerate(new.phrase.split()[:2]) if d in diff]
            aspects.append((sown.index(o) + 1 + diff[0], new.phrase, old.phrase, etype, new.shape, changed,
                            f"{old.shape},{new.shape}"))
    for o in sorted(set(range(len(src))) - set(k for k in multi.origin if k is not None)):
        old = src[o]
        aspects.append((sown.index(o) + 1, old.phrase, "-", 3, old.shape, [old.size, old.colour],
                        f"{old.shape},{old.shape}"))
    if len(src) == 2 and multi.origin == (0, 1):
        i, j = sown.index(None), town.index(None)
        old_rel, new_rel = " ".join(sw[i:sown.index(1)]), " ".join(tw[j:town.index(1)])
        if old_rel != new_rel:
            aspects.append((i, new_rel, old_rel, 5, None, None, None))
    edit_action, aspect_mapping, blended = {}, {}, []
    for pos, key, action, etype, noun, attrs, blend in sorted(aspects, key=lambda a: a[0]):
        if key in edit_action:
            raise ValueError(f"two aspects share the phrase {key!r} in {multi.source_caption!r} -> "
                             f"{multi.target_caption!r}")
        edit_action[key] = {"position": int(pos), "edit_type": etype, "action": action}
        if noun is not None:
            aspect_mapping[noun] = aspect_mapping.get(noun, []) + [a for a in attrs if a not in
                                                                    aspect_mapping.get(noun, [])]
            blended.append(blend)
    return edit_action, aspect_mapping, blended


def export_pie_bench_pp(multi_edits: list[MultiEdit], root: Path_, resolution: int = 64) -> list[dict]:
    """Return the PIE-Bench++ rows (input order) written to ``root/<config>/V1-00000-of-00001.jsonl`` (+ parquet).

    The config is the PIE folder of the row's first aspect (by position); images go to
    ``<config>/images/<id>.png`` and the JSON-lines ``image`` column holds that relative path. With pyarrow
    installed a parquet twin is written whose ``image`` is ``{"bytes", "path"}`` as on the hub.
    """
    root = Path(root)
    per_config: dict[str, list] = {}
    rows = []
    for i, multi in enumerate(multi_edits):
        if not isinstance(multi, MultiEdit):
            raise ValueError(f"multi_edits[{i}] must be a MultiEdit (see compose_edits), got {type(multi).__name__}")
        edit_action, aspect_mapping, blended = multi_edit_aspects(multi)
        if not edit_action:
            raise ValueError(f"multi_edits[{i}] leaves the caption unchanged: {multi.source_caption!r}")
        type_id = str(next(iter(edit_action.values()))["edit_type"])
        config, ex_id = PIE_TYPE_FOLDERS[type_id], f"{type_id}00{i:09d}"
        image = render(multi.source, resolution)[0]
        _save_png(image, root / config / "images" / f"{ex_id}.png")
        row = {"image": f"images/{ex_id}.png", "id": ex_id, "source_prompt": multi.source_caption,
               "target_prompt": multi.target_caption, "edit_action": json.dumps(edit_action),
               "aspect_mapping": json.dumps(aspect_mapping), "blended_words": json.dumps(blended),
               "mask": rle_to_string(rle_encode(multi.mask(resolution)))}
        per_config.setdefault(config, []).append((row, image))
        rows.append(row)
    for config, items in per_config.items():
        with open(root / config / "V1-00000-of-00001.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row, _ in items)
        _maybe_parquet(items, root / config / "V1-00000-of-00001.parquet")
    return rows


def _maybe_parquet(items: list, path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    records = []
    for row, image in items:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        records.append({**row, "image": {"bytes": buf.getvalue(), "path": row["image"]}})
    pq.write_table(pa.Table.from_pylist(records), path)


# ----------------------------------------------------------------------------------------- TIIL
@dataclass(frozen=True)
class TIILPair:
    """One ShapesWorld TIIL pair: ``image`` uint8 [H, W, 3], ``caption``, and for inconsistent pairs the edited
    ``side`` ("text" | "image"), the caption's inconsistent ``word`` and the region ``mask`` bool [H, W]."""

    image: np.ndarray
    caption: str
    consistent: bool
    side: str | None
    word: str | None
    mask: np.ndarray | None
    edit: SceneEdit | None


def tiil_pair(scene: Scene, side: str | None, rng: np.random.Generator, resolution: int = 32,
              max_tries: int = 20) -> TIILPair:
    """Return a consistent (``side=None``), text-side or image-side inconsistent pair built from ``scene``.

    Text side: the caption swaps one colour/shape/size word (GT word = the new word, GT mask = that object in the
    image). Image side: that object is re-rendered with the other attribute under the original caption (GT word =
    the caption's word, GT mask = union of the old and new object masks).
    """
    if side is None:
        image, _ = render(scene, resolution)
        return TIILPair(image, caption(scene), True, None, None, None, None)
    if side not in ("text", "image"):
        raise ValueError(f"side must be None, 'text' or 'image', got {side!r}")
    for _ in range(max_tries):
        kind = TIIL_KINDS[int(rng.integers(len(TIIL_KINDS)))]
        try:
            edit = edit_scene(scene, kind, int(rng.integers(len(scene.objects))), rng=rng)
            break
        except ValueError:                       # a size flip may not fit; draw again
            continue
    else:
        raise ValueError(f"no attribute edit of {caption(scene)!r} fits after {max_tries} tries")
    src_image, src_masks = render(edit.source, resolution)
    if side == "text":
        return TIILPair(src_image, edit.target_caption, False, "text", edit.new_word, src_masks[edit.index], edit)
    tgt_image, tgt_masks = render(edit.target, resolution)
    return TIILPair(tgt_image, edit.source_caption, False, "image", edit.old_word,
                    src_masks[edit.index] | tgt_masks[edit.index], edit)


def make_tiil_pairs(n: int, rng: np.random.Generator, resolution: int = 32,
                    n_objects: int | tuple[int, int] = (1, 3)) -> list[TIILPair]:
    """Return ``n`` pairs cycling consistent, text-side, consistent, image-side (half consistent)."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive int, got {n!r}")
    sides = (None, "text", None, "image")
    return [tiil_pair(sample_scene(rng, n_objects), sides[i % 4], rng, resolution) for i in range(n)]


def export_tiil(pairs: list[TIILPair], root: Path_) -> dict:
    """Return ``{"consistent": ..., "inconsistent": ...}``, the COCO-like JSONs written under ``root``.

    Images go to ``images/<split>_<id>.png``; inconsistent annotations carry ``ori_word`` (the caption's
    inconsistent word), ``mask`` as PIE-Bench runs and ``edited_side`` (our extension).
    """
    root = Path(root)
    out = {s: {"images": [], "annotations": []} for s in ("consistent", "inconsistent")}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, TIILPair):
            raise ValueError(f"pairs[{i}] must be a TIILPair, got {type(pair).__name__}")
        split = "consistent" if pair.consistent else "inconsistent"
        k = len(out[split]["images"]) + 1
        file_name = f"images/{split}_{k:06d}.png"
        _save_png(pair.image, root / file_name)
        h, w = pair.image.shape[:2]
        out[split]["images"].append({"id": k, "file_name": file_name, "height": h, "width": w})
        ann = {"id": k, "image_id": k, "caption": pair.caption}
        if not pair.consistent:
            ann.update(ori_word=pair.word, mask=rle_encode(pair.mask), edited_side=pair.side)
        out[split]["annotations"].append(ann)
    for split, data in out.items():
        (root / f"{split}.json").write_text(json.dumps(data))
    return out
