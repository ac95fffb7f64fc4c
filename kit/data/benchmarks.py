"""Loaders for the PIE-Bench, PIE-Bench++ and TIIL layouts, and the run-length mask codecs they use.

One loader per published layout, so that real benchmark folders and the synthetic sets written by
``kit.data.shapes_export`` are read by the same code.

**PIE-Bench** (Direct Inversion / PnP Inversion, arXiv:2310.01506; repo cure-lab/PnPInversion).
Verified in the repo's README, ``evaluation/evaluate.py`` and ``run_editing_*.py``:
``<root>/mapping_file.json`` = ``{id: {image_path, original_prompt, editing_prompt, editing_instruction,
editing_type_id, blended_word, mask}}``; ``image_path`` is relative to ``<root>/annotation_images`` (e.g.
``0_random_140/000000000000.jpg``; types 1-9 nest further, ``1_change_object_80/1_artificial/1_animal/...``);
``editing_type_id`` is a string "0"-"9"; ``[ ]`` in either prompt mark the words that differ; ``blended_word``
is "source_word target_word" or "" (split on one space); ``mask`` is a flat list ``[start, length, ...]`` of
runs of ones over the row-major flattened 512x512 image with **0-based** starts, runs clipped at the image
end, and the evaluator then forces the 1-pixel border to 1 ("to avoid annotation errors in boundary").
Our guess: every image is 512x512 (the evaluator multiplies 512x512 masks with unresized source images), so
the mask shape defaults to the image's own size, which also serves the synthetic sets.

**PIE-Bench++** (MultiEdits / ParallelEdits, arXiv:2406.00985; HF dataset UB-CVML-Group/PIE_Bench_pp).
Verified on the dataset card: one parquet config per PIE-Bench folder name, split ``V1``, columns image
(HF image feature), id, source_prompt, target_prompt, edit_action, aspect_mapping, blended_words, mask, all
strings but image. Seen in the ParallelEdits demo notebook (keys named "editing" and "obj-adj-pair" there):
edit_action = {target phrase: {position, edit_type (PIE id, int), action (source phrase | "+" | "-")}} and
aspect_mapping = {object: [attribute words]}; all three demo positions equal the 0-based index, in the source
prompt's space-split words, where the change starts. Guesses: the three columns hold JSON text,
blended_words is a JSON list of "a,b" strings, mask is PIE-Bench runs written "start len start len ..."
(0-based: the full-image mask reads "0 262144"), target prompts may carry ``[ ]`` (the demo strips them).

**TIIL** (D-TIIL, arXiv:2404.18033). Verified in a third-party loader of the released files: ``consistent.json``
and ``inconsistent.json`` are COCO-like ``{"images": [{"id", "file_name"}], "annotations": [{"image_id",
"caption", "ori_word" (inconsistent only)}]}``, ids 1-based within each file, ``file_name`` relative to the
root. NOT verified: how masks are stored (``load_tiil`` documents the order it searches), whether
``ori_word`` is the caption's inconsistent word or the word it replaced, and the splits.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PIE_EDITING_TYPES = {
    "0": "random", "1": "change object", "2": "add object", "3": "delete object",
    "4": "change attribute content", "5": "change attribute pose", "6": "change attribute color",
    "7": "change attribute material", "8": "change background", "9": "change style",
}
PIE_TYPE_FOLDERS = {
    "0": "0_random_140", "1": "1_change_object_80", "2": "2_add_object_80", "3": "3_delete_object_80",
    "4": "4_change_attribute_content_40", "5": "5_change_attribute_pose_40",
    "6": "6_change_attribute_color_40", "7": "7_change_attribute_material_40",
    "8": "8_change_background_80", "9": "9_change_style_80",
}
PIE_KEYS = ("image_path", "original_prompt", "editing_prompt", "editing_instruction", "editing_type_id",
            "blended_word", "mask")
PIE_PP_COLUMNS = ("image", "id", "source_prompt", "target_prompt", "edit_action", "aspect_mapping",
                  "blended_words", "mask")
Path_ = str | os.PathLike


# ----------------------------------------------------------------------------------------- RLE codecs
def rle_encode(mask: np.ndarray) -> list[int]:
    """Return the runs of ones of ``mask [H, W]`` as ``[start, length, ...]`` (0-based, row-major)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    flat = np.concatenate([[False], mask.reshape(-1).astype(bool), [False]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])          # rises at even, falls at odd positions
    starts, ends = edges[0::2], edges[1::2]
    return np.stack([starts, ends - starts], axis=1).reshape(-1).astype(int).tolist()


def rle_decode(rle, shape: tuple[int, int] = (512, 512), *, force_border: bool = False) -> np.ndarray:
    """Return the bool mask [H, W] of PIE-Bench runs ``[start, length, ...]`` (0-based starts, row-major).

    Runs reaching past the last pixel are clipped, as PnPInversion's ``mask_decode`` does. ``force_border``
    sets the 1-pixel frame to True, as that evaluator does before computing its metrics (off by default).
    """
    h, w = (int(s) for s in shape)
    if h <= 0 or w <= 0:
        raise ValueError(f"shape must be two positive ints, got {shape}")
    runs = np.asarray(list(rle), dtype=np.float64).reshape(-1)
    if runs.size % 2 or np.any(runs != np.round(runs)) or np.any(runs < 0):
        raise ValueError(f"rle must be an even-length list of non-negative ints [start, length, ...], got "
                         f"{len(runs)} values starting {runs[:6].tolist()}")
    n = h * w
    out = np.zeros(n, dtype=bool)
    for start, length in runs.astype(np.int64).reshape(-1, 2):
        if start >= n and length > 0:
            raise ValueError(f"rle run starts at {start}, beyond the {h}x{w}={n} pixels of shape {shape}")
        out[start:start + length] = True
    out = out.reshape(h, w)
    if force_border:
        out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = True
    return out


def rle_to_string(rle) -> str:
    """Return PIE-Bench++'s mask string "start len start len ..." for runs ``[start, length, ...]``."""
    return " ".join(str(int(v)) for v in rle)


def rle_from_string(text: str) -> list[int]:
    """Return the runs ``[start, length, ...]`` of a PIE-Bench++ mask string ("" -> [])."""
    if not isinstance(text, str):
        raise ValueError(f"mask must be a string of ints 'start len ...', got {type(text).__name__}")
    parts = text.split()
    if len(parts) % 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"mask string must hold an even number of non-negative ints, got {text[:60]!r}")
    return [int(p) for p in parts]


def coco_rle_decode(segmentation: dict) -> np.ndarray:
    """Return the bool mask [H, W] of a COCO RLE ``{"size": [H, W], "counts": list | str}`` (column-major)."""
    try:
        h, w = (int(v) for v in segmentation["size"])
        counts = segmentation["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"COCO RLE needs 'size' [H, W] and 'counts', got {segmentation!r:.80}") from e
    if isinstance(counts, str):                       # compressed: 6-bit chunks, deltas from counts[m-2]
        values, p = [], 0
        while p < len(counts):
            x, k, more = 0, 0, True
            while more:
                c = ord(counts[p]) - 48
                x |= (c & 0x1F) << (5 * k)
                more = bool(c & 0x20)
                p, k = p + 1, k + 1
                if not more and c & 0x10:
                    x |= -1 << (5 * k)
            values.append(x + values[-2] if len(values) > 2 else x)
        counts = values
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, np.asarray(counts, dtype=np.int64))
    if flat.size != h * w:
        raise ValueError(f"COCO RLE counts sum to {flat.size}, expected {h}x{w}={h * w}")
    return flat.reshape(w, h).T


def strip_brackets(prompt: str) -> str:
    """Return a PIE-Bench prompt without its ``[ ]`` change markers."""
    return prompt.replace("[", "").replace("]", "")


def bracketed(prompt: str) -> list[str]:
    """Return the phrases a PIE-Bench prompt marks with ``[ ]``, in order."""
    out, depth_start = [], None
    for i, ch in enumerate(prompt):
        if ch == "[":
            depth_start = i + 1
        elif ch == "]" and depth_start is not None:
            out.append(prompt[depth_start:i])
            depth_start = None
    return out


def _image_hw(source) -> tuple[int, int]:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        return im.height, im.width


def _missing(paths: list[Path], what: str) -> None:
    if paths:
        shown = ", ".join(str(p) for p in paths[:5])
        raise FileNotFoundError(f"{len(paths)} {what} missing: {shown}{' ...' if len(paths) > 5 else ''}")


# ----------------------------------------------------------------------------------------- PIE-Bench
@dataclass(frozen=True)
class PIEExample:
    """One PIE-Bench entry; ``mask [H, W]`` bool without the evaluator's forced border."""

    id: str
    image_path: Path
    original_prompt: str
    editing_prompt: str
    editing_instruction: str
    editing_type_id: str
    blended_word: str
    mask: np.ndarray = field(repr=False)

    @property
    def blended_words(self) -> list[str]:
        """Return ``blended_word`` split as PnPInversion does ([] when empty)."""
        return self.blended_word.split(" ") if self.blended_word != "" else []


def load_pie_bench(root: Path_, mapping_file: str = "mapping_file.json",
                   mask_shape: tuple[int, int] | None = None) -> list[PIEExample]:
    """Return the PIE-Bench entries under ``root`` (``mapping_file.json`` + ``annotation_images/``).

    ``mask_shape=None`` decodes each mask at its image's size (512x512 for the real benchmark).
    """
    root = Path(root).expanduser()
    mapping_path = root / mapping_file
    if not mapping_path.is_file():
        raise FileNotFoundError(f"PIE-Bench mapping file not found: {mapping_path}")
    with open(mapping_path) as f:
        try:
            mapping = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{mapping_path} is not valid JSON: {e}") from e
    if not isinstance(mapping, dict):
        raise ValueError(f"{mapping_path} must hold a dict {{id: entry}}, got {type(mapping).__name__}")
    entries, missing = [], []
    for key, item in mapping.items():
        if not isinstance(item, dict):
            raise ValueError(f"PIE-Bench entry {key!r}: expected a dict, got {type(item).__name__}")
        for k in PIE_KEYS:
            if k not in item:
                raise ValueError(f"PIE-Bench entry {key!r}: missing key {k!r}")
        for k in PIE_KEYS[:-1]:
            if not isinstance(item[k], str):
                raise ValueError(f"PIE-Bench entry {key!r}: key {k!r} must be a string, got {item[k]!r:.40}")
        if item["editing_type_id"] not in PIE_EDITING_TYPES:
            raise ValueError(f"PIE-Bench entry {key!r}: key 'editing_type_id' must be '0'-'9', "
                             f"got {item['editing_type_id']!r}")
        if not isinstance(item["mask"], list):
            raise ValueError(f"PIE-Bench entry {key!r}: key 'mask' must be a list [start, length, ...]")
        path = root / "annotation_images" / item["image_path"]
        if not path.is_file():
            missing.append(path)
        entries.append((str(key), path, item))
    _missing(missing, "PIE-Bench images")
    out = []
    for key, path, item in entries:
        try:
            mask = rle_decode(item["mask"], mask_shape or _image_hw(path))
        except ValueError as e:
            raise ValueError(f"PIE-Bench entry {key!r}: key 'mask': {e}") from e
        out.append(PIEExample(key, path, item["original_prompt"], item["editing_prompt"],
                              item["editing_instruction"], item["editing_type_id"], item["blended_word"], mask))
    return out


# ----------------------------------------------------------------------------------------- PIE-Bench++
@dataclass(frozen=True)
class PIEPPExample:
    """One PIE-Bench++ row; the image is a file (JSON-lines export) or encoded bytes (parquet)."""

    id: str
    config: str
    image_path: Path | None
    image_bytes: bytes | None = field(repr=False)
    source_prompt: str
    target_prompt: str
    edit_action: dict
    aspect_mapping: dict
    blended_words: list[str]
    mask: np.ndarray = field(repr=False)

    def load_image(self) -> np.ndarray:
        """Return the source image uint8 [H, W, 3]."""
        src = io.BytesIO(self.image_bytes) if self.image_bytes is not None else self.image_path
        with Image.open(src) as im:
            return np.asarray(im.convert("RGB"))


def _read_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(f"reading {path} needs pyarrow (pip install pyarrow); without it, use the "
                          "JSON-lines export with the same columns") from e
    return pq.read_table(path).to_pylist()


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {n} is not valid JSON: {e}") from e
    return rows


def _json_field(row_id: str, key: str, value, kind: type):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"PIE-Bench++ row {row_id!r}: key {key!r} is not valid JSON: {e}") from e
    if not isinstance(value, kind):
        raise ValueError(f"PIE-Bench++ row {row_id!r}: key {key!r} must decode to a {kind.__name__}, "
                         f"got {type(value).__name__}")
    return value


def _pp_row(row: dict, base: Path, config: str, mask_shape) -> PIEPPExample:
    row_id = str(row.get("id", "?"))
    for k in PIE_PP_COLUMNS:
        if k not in row:
            raise ValueError(f"PIE-Bench++ row {row_id!r} in {config}: missing key {k!r}")
    edit_action = _json_field(row_id, "edit_action", row["edit_action"], dict)
    for phrase, act in edit_action.items():
        if not isinstance(act, dict) or not {"position", "edit_type", "action"} <= set(act):
            raise ValueError(f"PIE-Bench++ row {row_id!r}: key 'edit_action' entry {phrase!r} needs "
                             f"position, edit_type and action, got {act!r:.80}")
    aspect_mapping = _json_field(row_id, "aspect_mapping", row["aspect_mapping"], dict)
    blended = _json_field(row_id, "blended_words", row["blended_words"], list)
    image, image_path, image_bytes = row["image"], None, None
    if isinstance(image, dict) and image.get("bytes") is not None:
        image_bytes = image["bytes"]
    elif isinstance(image, dict | str):
        rel = image.get("path") if isinstance(image, dict) else image
        image_path = base / str(rel)
        if not image_path.is_file():
            raise FileNotFoundError(f"PIE-Bench++ row {row_id!r}: image file not found: {image_path}")
    else:
        raise ValueError(f"PIE-Bench++ row {row_id!r}: key 'image' must be a path or {{bytes, path}}")
    try:
        shape = mask_shape or _image_hw(image_bytes if image_bytes is not None else image_path)
        mask = rle_decode(rle_from_string(row["mask"]), shape)
    except ValueError as e:
        raise ValueError(f"PIE-Bench++ row {row_id!r}: key 'mask': {e}") from e
    return PIEPPExample(row_id, config, image_path, image_bytes, row["source_prompt"], row["target_prompt"],
                        edit_action, aspect_mapping, [str(b) for b in blended], mask)


def load_pie_bench_pp(root_or_file: Path_, mask_shape: tuple[int, int] | None = None) -> list[PIEPPExample]:
    """Return the PIE-Bench++ rows of a folder, a ``.parquet`` file or a ``.jsonl`` file.

    A folder is searched for ``*/V1-*.parquet`` (the hub layout) and ``*/V1-*.jsonl`` (our export); the
    config name is the parent folder's. ``mask_shape=None`` decodes at each image's size (512x512 real).
    """
    root = Path(root_or_file).expanduser()
    if root.is_dir():
        files = sorted(root.glob("*/V1-*.jsonl")) + sorted(root.glob("*/V1-*.parquet"))
        if any(f.suffix == ".jsonl" for f in files):        # prefer our JSON-lines twin when both exist
            files = [f for f in files if f.suffix == ".jsonl"]
        if not files:
            raise FileNotFoundError(f"no PIE-Bench++ files (<config>/V1-*.parquet or .jsonl) under {root}")
    elif root.is_file():
        files = [root]
    else:
        raise FileNotFoundError(f"PIE-Bench++ path not found: {root}")
    out = []
    for f in files:
        if f.suffix not in (".parquet", ".jsonl"):
            raise ValueError(f"PIE-Bench++ file must end in .parquet or .jsonl, got {f}")
        rows = _read_parquet(f) if f.suffix == ".parquet" else _read_jsonl(f)
        out.extend(_pp_row(r, f.parent, f.parent.name, mask_shape) for r in rows)
    return out


# ----------------------------------------------------------------------------------------- TIIL
@dataclass(frozen=True)
class TIILExample:
    """One TIIL pair; ``ori_word``/``mask [H, W]`` are None where the files give none."""

    id: str
    image_path: Path
    caption: str
    consistent: bool
    ori_word: str | None
    mask: np.ndarray | None = field(repr=False)
    side: str | None = None          # "text" | "image" where the file says which side was edited


def _tiil_mask(ann: dict, image_path: Path, hw: tuple[int, int] | None) -> np.ndarray | None:
    for key in ("segmentation", "mask"):
        seg = ann.get(key)
        if seg is None:
            continue
        if isinstance(seg, dict):
            return coco_rle_decode(seg)
        hw = hw or _image_hw(image_path)
        if isinstance(seg, str):
            return rle_decode(rle_from_string(seg), hw)
        if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):   # COCO polygons
            canvas = Image.new("L", (hw[1], hw[0]), 0)
            for poly in seg:
                ImageDraw.Draw(canvas).polygon([float(v) for v in poly], fill=1)
            return np.asarray(canvas, dtype=bool)
        if isinstance(seg, list):
            return rle_decode(seg, hw)
        raise ValueError(f"unsupported mask type {type(seg).__name__} under key {key!r}")
    for png in (image_path.with_name(image_path.stem + "_mask.png"),
                image_path.parent.parent / "masks" / (image_path.stem + ".png")):
        if png.is_file():
            with Image.open(png) as im:
                return np.asarray(im.convert("L")) > 127
    return None


def load_tiil(root: Path_) -> list[TIILExample]:
    """Return the TIIL pairs of ``root/consistent.json`` then ``root/inconsistent.json``.

    Images and annotations are joined on ``image_id``; one example per annotation, id
    "<consistent|inconsistent>/<image id>" (then "#1", "#2" for further captions of one image). The mask is the first found of: annotation ``segmentation``,
    annotation ``mask`` (each a COCO RLE dict, COCO polygons, PIE-Bench runs ``[start, length, ...]`` or a
    "start len ..." string; runs are decoded at the image entry's height/width, else the image's size), then
    the PNG ``<image stem>_mask.png`` beside the image, then ``<image folder>/../masks/<image stem>.png``
    (any value > 127 is inside); else None.
    """
    root = Path(root).expanduser()
    out, missing = [], []
    for split in ("consistent", "inconsistent"):
        path = root / f"{split}.json"
        if not path.is_file():
            raise FileNotFoundError(f"TIIL file not found: {path}")
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
            raise ValueError(f"{path} must hold {{'images': [...], 'annotations': [...]}}")
        images = {}
        for img in data["images"]:
            if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
                raise ValueError(f"{path}: image entry {img!r:.60} needs keys 'id' and 'file_name'")
            images[img["id"]] = img
        seen: dict[str, int] = {}
        for ann in data["annotations"]:
            ex_id = f"{split}/{ann.get('image_id', '?')}"
            seen[ex_id] = seen.get(ex_id, 0) + 1
            ex_id += f"#{seen[ex_id] - 1}" if seen[ex_id] > 1 else ""
            for k in ("image_id", "caption") + (("ori_word",) if split == "inconsistent" else ()):
                if k not in ann:
                    raise ValueError(f"TIIL {ex_id}: missing key {k!r} in {path.name}")
            img = images.get(ann["image_id"])
            if img is None:
                raise ValueError(f"TIIL {ex_id}: key 'image_id' names no entry of 'images' in {path.name}")
            image_path = root / img["file_name"]
            if not image_path.is_file():
                missing.append(image_path)
                continue
            hw = (int(img["height"]), int(img["width"])) if {"height", "width"} <= set(img) else None
            try:
                mask = _tiil_mask(ann, image_path, hw)
            except ValueError as e:
                raise ValueError(f"TIIL {ex_id}: mask: {e}") from e
            out.append(TIILExample(ex_id, image_path, ann["caption"], split == "consistent",
                                   ann.get("ori_word"), mask, ann.get("edited_side")))
    _missing(missing, "TIIL images")
    return out
