"""What the hv_vlm views show (arXiv:2407.21788), computed without drawing.

- one known / questioned pair opened up (:func:`compare_pair`): the examiner's verdict and explanation cut into
  its feature headings, the Siamese P(same), the offline examiner's measurements, which style attributes the text
  claims differ or agree, and, for synthetic writers, the true style gaps and the explanation's faithfulness;
- where on the word each named attribute lives (:func:`feature_marks`): the paper's figure marks the features
  an explanation talks about with red dots on the letters "a", "n" and "d";
- a deterministic pair of two writers' samples (:func:`writer_pair`) and a drawn "and" turned into a sample of
  the generator's look (:func:`drawn_to_image`, :func:`ink_letter_boxes`);
- accuracy against the writers' variability (:func:`noise_sweep`), a score's metrics against its threshold
  (:func:`threshold_curve`) and confusion matrices (:func:`confusion_matrix`, :func:`decision_confusion`,
  :func:`confusion_from_metrics`), from :mod:`kit.hv_vlm.sweeps`.

Nothing here draws: ``widgets/hv_vlm.py`` turns these into figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from kit.data.handwriting import WORD, Writers, WriterStyle, style_differences
from kit.hv_vlm.examiner import ChatBackend, Verdict, verify
from kit.hv_vlm.faithfulness import Claim, claimed_attributes, claims, faithfulness
from kit.hv_vlm.offline_examiner import Assessment, OfflineExaminer
from kit.hv_vlm.sweeps import (
    DECISION_COLUMNS,
    confusion_from_metrics,
    confusion_matrix,
    decision_confusion,
    first_below,
    noise_sweep,
    threshold_curve,
)

__all__ = ["Section", "PairView", "compare_pair", "explanation_sections", "MARK_ANCHORS", "feature_marks",
           "writer_pair", "drawn_to_image", "ink_letter_boxes", "noise_sweep", "first_below", "threshold_curve",
           "confusion_matrix", "DECISION_COLUMNS", "decision_confusion", "confusion_from_metrics"]

PEN_WIDTH = 1.7   # px at 64 x 64: the median pen width of kit.data.handwriting's writers
_FILL = 0.75      # the generator's typical word spans this fraction of the canvas width
_SS = 4           # supersampling of the drawn strokes, as the generator draws
_PAPER, _INK = 250.0, 20.0


# ------------------------------------------------------------------------------------------ one pair opened up
@dataclass(frozen=True)
class Section:
    """One paragraph of an explanation: its ``heading`` ("" when none), ``body``, the style ``attributes`` its claims
    name and their ``polarity``: "differ" when any claim says differ, "similar" when all say similar, else None."""

    heading: str
    body: str
    attributes: tuple[str, ...]
    polarity: str | None


_HEADING = re.compile(r"^\s*(?:#+\s*|\d+[.)]\s*|[-*]\s+)?\**([^:*\n]{1,60}?)\**\s*:\s*\**\s*(.*)$", re.DOTALL)


def explanation_sections(explanation: str) -> list[Section]:
    """The :class:`Section` list [n] of ``explanation``: one per paragraph (blank-line separated); a paragraph's heading
    is its first line when that line is short and ends with ":" (or is markdown-bold / "#"), or the text before a
    colon that opens it ("Slant: ..."), as examiners and VLMs write them."""
    if not isinstance(explanation, str):
        raise TypeError(f"explanation must be a str, got {type(explanation).__name__}")
    out = []
    for para in re.split(r"\n\s*\n", explanation.strip()):
        lines = para.strip().split("\n")
        first = lines[0].strip()
        heading, body = "", para.strip()
        if len(lines) > 1 and (first.startswith("#") or (first.startswith("**") and first.rstrip(":").endswith("**"))
                               or (first.endswith(":") and len(first.split()) <= 8)):
            heading, body = first.strip("#*: "), "\n".join(lines[1:]).strip()
        else:
            m = _HEADING.match(para.strip())
            if m and len(m.group(1).split()) <= 8:
                heading, body = m.group(1).strip(), m.group(2).strip()
        found = claims(para)
        attrs = tuple(dict.fromkeys(a for c in found for a in c.attributes))
        pols = {c.polarity for c in found}
        polarity = "differ" if "differ" in pols else ("similar" if pols else None)
        out.append(Section(heading, body, attrs, polarity))
    return out


@dataclass(frozen=True)
class PairView:
    """Everything shown about one known / questioned pair (see :func:`compare_pair`)."""

    known: np.ndarray                      # uint8 [H, W]
    questioned: np.ndarray                 # uint8 [H, W]
    known_boxes: np.ndarray | None         # [3, 4] letter boxes (x0, y0, x1, y1) of "a", "n", "d"
    questioned_boxes: np.ndarray | None
    verdict: Verdict
    p_same: float | None                   # the Siamese model's P(same writer)
    assessment: Assessment | None          # the offline examiner's measurements (OfflineExaminer only)
    claims: tuple[Claim, ...]
    claimed: dict[str, str]                # style attribute -> "differ" | "similar"
    sections: tuple[Section, ...]
    style_gaps: dict[str, float] | None    # true per-attribute gap (1 = a typical gap between two writers)
    faithfulness: dict | None
    same_writer: bool | None               # the truth, when known

    @property
    def decision(self) -> str:
        """The examiner's decision, one of ``DECISIONS``."""
        return self.verdict.decision

    @property
    def correct(self) -> bool | None:
        """Whether the examiner's decision matches the truth (None: truth unknown or no decision)."""
        if self.same_writer is None or self.decision not in ("same", "different"):
            return None
        return (self.decision == "same") == self.same_writer

    def marks(self, which: str = "known") -> list[tuple[float, float, str, str]]:
        """:func:`feature_marks` of the claimed attributes on the ``which`` ("known" | "questioned") image."""
        if which not in ("known", "questioned"):
            raise ValueError(f"which must be 'known' or 'questioned', got {which!r}")
        boxes = self.known_boxes if which == "known" else self.questioned_boxes
        return [] if boxes is None else feature_marks(self.claimed, boxes)


def compare_pair(model: Any, examiner: ChatBackend, known: np.ndarray, questioned: np.ndarray,
                 known_boxes: np.ndarray | None = None, questioned_boxes: np.ndarray | None = None,
                 style_a: WriterStyle | None = None, style_b: WriterStyle | None = None,
                 same_writer: bool | None = None) -> PairView:
    """The :class:`PairView` of one pair: ``verify(examiner, known, questioned)`` (the two turns of
    arXiv:2407.21788), the Siamese ``model``'s P(same) (None without a model), the examiner's ``assess`` when it is
    an :class:`OfflineExaminer`, the claims its explanation makes, and with both writers' styles their true style
    gaps and the explanation's faithfulness. ``same_writer`` None: ``style_a == style_b`` when both are given."""
    from kit.hv_vlm.model import same_writer_probability

    verdict = verify(examiner, known, questioned)
    p_same = None if model is None else float(same_writer_probability(model, known, questioned))
    assessment = examiner.assess(known, questioned) if isinstance(examiner, OfflineExaminer) else None
    gaps = faith = None
    if style_a is not None and style_b is not None:
        gaps = style_differences(style_a, style_b)
        faith = faithfulness(verdict.explanation, style_a, style_b)
        same_writer = bool(style_a == style_b) if same_writer is None else same_writer
    boxes = [None if b is None else _check_boxes(b, n) for b, n in ((known_boxes, "known_boxes"),
                                                                  (questioned_boxes, "questioned_boxes"))]
    return PairView(known, questioned, *boxes, verdict, p_same, assessment, tuple(claims(verdict.explanation)),
                    claimed_attributes(verdict.explanation), tuple(explanation_sections(verdict.explanation)),
                    gaps, faith, same_writer)


# ------------------------------------------------------------------------------------------ marks on the letters
# Where each style attribute lives on the word: (letter, fx, fy) fractions of that letter's box (x right, y down).
MARK_ANCHORS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "slant": (("d", 0.6, 0.2),),                                   # the ascender of "d" shows the slant best
    "size": (("a", 0.5, 0.08), ("n", 0.5, 0.08)),                  # the x-height
    "letter_shapes": tuple((ch, 0.5, 0.5) for ch in WORD),         # each letter's formation
    "baseline": tuple((ch, 0.5, 0.94) for ch in WORD),             # the bottom of each letter
    "pen_width": tuple((ch, 0.3, 0.68) for ch in WORD),            # on the strokes, around each letter's centre
    "pressure": tuple((ch, 0.7, 0.68) for ch in WORD),
    "tremor": tuple((ch, 0.5, 0.8) for ch in WORD),
}


def _check_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.shape != (3, 4) or not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise ValueError(f"{name} must be [3, 4] letter boxes (x0, y0, x1, y1) of 'a', 'n', 'd', got {b.tolist()}")
    return b


def feature_marks(claimed: Mapping[str, str] | Iterable[str], boxes: np.ndarray) -> list[tuple[float, float, str, str]]:
    """Marks [(x, y, attribute, letter)] in image pixels for each attribute in ``claimed`` (a dict attribute ->
    polarity or a list of attributes), on the letter ``boxes`` [3, 4] (x0, y0, x1, y1 of "a", "n", "d"):

    slant at the "d" ascender, size at the x-height of "a" and "n", letter shapes at each letter's centre, spacing
    between neighbouring letters (letter "a-n", "n-d"), baseline at each letter's bottom, pen width, pressure and
    tremor on each letter's strokes (``MARK_ANCHORS``). These are the red dots of arXiv:2407.21788's figure."""
    b = _check_boxes(boxes)
    out = []
    for attr in claimed:
        if attr == "spacing":
            for k in range(2):
                x = 0.5 * (b[k, 2] + b[k + 1, 0])
                y = 0.5 * (0.5 * (b[k, 1] + b[k, 3]) + 0.5 * (b[k + 1, 1] + b[k + 1, 3]))
                out.append((float(x), float(y), attr, f"{WORD[k]}-{WORD[k + 1]}"))
            continue
        if attr not in MARK_ANCHORS:
            raise ValueError(f"unknown attribute {attr!r}: expected one of {[*MARK_ANCHORS, 'spacing']}")
        for ch, fx, fy in MARK_ANCHORS[attr]:
            x0, y0, x1, y1 = b[WORD.index(ch)]
            out.append((float(x0 + fx * (x1 - x0)), float(y0 + fy * (y1 - y0)), attr, ch))
    return out


# ------------------------------------------------------------------------------------------ samples and drawings
def writer_pair(writers: Writers, wa: int, wb: int, ia: int = 0, ib: int = 1, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, tuple[WriterStyle, WriterStyle]]:
    """Images uint8 [2, H, W], letter boxes [2, 3, 4] and the styles of sample ``ia`` of writer ``wa`` (known) and
    sample ``ib`` of writer ``wb`` (questioned). Sample i of writer w is the i-th image drawn from
    ``default_rng([seed, w, 1])``, as :func:`kit.hv_vlm.experiment.load_data` draws them, so the same arguments
    always give the same pair; one writer (wa == wb) needs two different samples (ia != ib)."""
    if min(ia, ib) < 0:
        raise ValueError(f"sample indices must be >= 0, got ia={ia}, ib={ib}")
    if wa == wb and ia == ib:
        raise ValueError(f"a same-writer pair needs two different samples: ia and ib are both {ia}")
    images, boxes = [], []
    for w, i in ((wa, ia), (wb, ib)):
        im, bx = writers.sample_with_boxes(int(w), int(i) + 1, np.random.default_rng([seed, int(w), 1]))
        images.append(im[-1])
        boxes.append(bx[-1])
    return np.stack(images), np.stack(boxes), (writers.style(int(wa)), writers.style(int(wb)))


def _segments_of(drawing: Any) -> list[np.ndarray]:
    """Polylines [k, 2] (x, y) of strokes, or of the skeleton of a raster's ink (8-neighbour pixel pairs)."""
    if isinstance(drawing, np.ndarray) and (drawing.ndim == 3 or (drawing.ndim == 2 and drawing.shape[1] != 2)):
        from skimage.morphology import skeletonize

        a = drawing
        if a.dtype != np.uint8 or (a.ndim == 3 and a.shape[2] not in (3, 4)):
            raise ValueError(f"a drawn image must be uint8 [H, W], [H, W, 3] or [H, W, 4], got {a.dtype} {a.shape}")
        grey = a if a.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)
        cover = 1.0 - grey / 255.0
        if a.ndim == 3 and a.shape[2] == 4:
            cover = cover * (a[..., 3] / 255.0)    # transparent background: alpha is the ink
        skel = skeletonize(cover > 0.5)
        pad = np.pad(skel, 1)
        h, w = skel.shape
        segs, linked = [], np.zeros_like(skel)
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):       # each 8-neighbour pair once
            both = skel & pad[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
            linked |= both
            linked |= np.pad(both, 1)[1 - dr:1 - dr + h, 1 - dc:1 - dc + w]  # ... and its neighbour
            r, c = np.nonzero(both)
            segs += [np.array([[x + 0.5, y + 0.5], [x + dc + 0.5, y + dr + 0.5]]) for y, x in zip(r, c)]
        r, c = np.nonzero(skel & ~linked)                        # lone dots
        segs += [np.array([[x + 0.5, y + 0.5]]) for y, x in zip(r, c)]
        return segs
    if isinstance(drawing, np.ndarray):
        drawing = [drawing]
    if not isinstance(drawing, Sequence) or isinstance(drawing, str):
        raise ValueError(f"drawing must be a list of strokes (lists of (x, y)) or an image array, got "
                         f"{type(drawing).__name__}")
    segs = []
    for k, s in enumerate(drawing):
        p = np.asarray(s, dtype=np.float64)
        if p.size == 0:
            continue
        if p.ndim != 2 or p.shape[1] != 2 or not np.isfinite(p).all():
            raise ValueError(f"stroke {k} must be a list of (x, y) points, got shape {p.shape}")
        segs.append(p)
    return segs


def drawn_to_image(drawing: Any, size: int = 64, pen_width: float | None = None) -> np.ndarray:
    """A sample uint8 [size, size] (dark ink on light paper) of a drawn "and", in the generator's look.

    ``drawing``: strokes (a list of lists of (x, y) canvas pixels, as :class:`widgets.hv_vlm.DrawCanvas` records
    them) or an image (uint8 [H, W] dark ink, [H, W, 3], or [H, W, 4] whose alpha is the ink). The ink is cropped
    and scaled to fit as :mod:`kit.data.handwriting` fits its words (about 75 % of the width, a margin of half a pen
    plus 2 px), and redrawn anti-aliased at 4x with one pen of ``pen_width`` px (None: the generator's median,
    1.7 px at 64) on paper of the generator's grey, so that it can stand beside a writer's sample. An image's ink
    is thinned to its skeleton first, so any brush gives the same pen. ValueError when there is no ink."""
    if int(size) < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    size = int(size)
    pen = PEN_WIDTH * size / 64 if pen_width is None else float(pen_width)
    if not pen > 0:
        raise ValueError(f"pen_width must be > 0, got {pen_width}")
    segs = _segments_of(drawing)
    if not segs:
        raise ValueError("the drawing has no ink: draw the word 'and' first (no strokes or no dark pixels)")
    allp = np.concatenate(segs)
    lo, hi = allp.min(0), allp.max(0)
    margin = 0.5 * pen + 2.0
    ext = hi - lo
    limits = np.array([_FILL * size, size - 2 * margin])
    scale = float(np.min(np.where(ext > 1e-9, limits / np.maximum(ext, 1e-9), np.inf)))
    scale = 1.0 if not np.isfinite(scale) else scale
    canvas = np.zeros((size * _SS, size * _SS), np.uint8)
    thick = max(int(round(pen * _SS)), 1)
    for p in segs:
        q = np.round(((p - 0.5 * (lo + hi)) * scale + 0.5 * size) * _SS * 16).astype(np.int32)
        if len(q) == 1:
            cv2.circle(canvas, tuple(int(v) for v in q[0]), max(thick * 8, 8), 255, -1, cv2.LINE_AA, 4)
        else:
            cv2.polylines(canvas, [q], False, 255, thick, cv2.LINE_AA, 4)
    cover = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return np.clip(np.rint(_PAPER * (1.0 - cover) + _INK * cover), 0, 255).astype(np.uint8)


def ink_letter_boxes(image: np.ndarray) -> np.ndarray:
    """Letter boxes float32 [3, 4] (x0, y0, x1, y1) guessed for an "and" without known boxes (a drawing): the ink's
    extent cut into three equal column bands, "a", "n" and "d", each boxed around its own ink."""
    from kit.hv_vlm.features import ink_coverage

    ink = ink_coverage(image) > 0.5
    cols = np.flatnonzero(ink.any(0))
    if len(cols) == 0:
        raise ValueError("image has no ink to box")
    edges = np.linspace(cols[0], cols[-1] + 1, 4)
    boxes = np.zeros((3, 4), np.float32)
    for k in range(3):
        a, b = int(np.floor(edges[k])), max(int(np.ceil(edges[k + 1])), int(np.floor(edges[k])) + 1)
        band = ink[:, a:b]
        rows, cc = np.nonzero(band) if band.any() else (np.nonzero(ink.any(1))[0], np.array([0, b - a - 1]))
        boxes[k] = [a + cc.min(), rows.min(), a + cc.max() + 1, rows.max() + 1]
    return boxes
