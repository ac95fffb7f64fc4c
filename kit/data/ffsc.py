"""FFSC (arXiv:2405.08487) as the authors publish it: image folders under ``Train/``, ``Val/``, ``Test/`` and list
files with one line per image, ``<path> <12-character label>``; and the frame folders of the cross-dataset tests.

Labels are strings over the 12 graph nodes (fake, age, expression, gender, identity, pose | eye, eyebrow, lip,
mouth, nose, skin) of 0, 1 and 2 (unknown); at test time only the first character is read. Paths in a list file are
relative to the data root (absolute paths are used as they are). The real sources are ``Real/CDF-youtube`` and
``Real/AVSpeech``; the training methods and the Protocol-1 test methods are named in ``TRAIN_METHODS`` /
``PROTOCOL1_METHODS``. A frame's video is the folder it sits in (video-level AUC averages a video's frames).

The authors' training command names its lists ``train_SLH_v2_update.txt`` / ``val_SLH_v2_update.txt`` and, for
Protocol-2, ``<attribute>/train_SLH_v2_update.txt`` (``TRAIN_LIST``, ``VAL_LIST``, ``P2_ATTRIBUTES``); their test
lists are one file per attribute whose names are not published, so test lists are named by the caller or found as
``test*.txt`` [PROPOSED].
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import torch

__all__ = ["FFSCList", "VideoFrames", "TRAIN_METHODS", "PROTOCOL1_METHODS", "METHOD_ATTRIBUTE", "P2_ATTRIBUTES",
           "PROCEDURAL_METHODS", "TRAIN_LIST", "VAL_LIST", "parse_label", "find_lists", "export_ffsc"]

# training methods per attribute (the authors' README; also the order of their multi-class labels 1..11) and
# Protocol-1's unseen test methods
TRAIN_METHODS = ("diffae-age", "StyleRes-age", "diffae-gender", "StyleGAN2_dis-gender", "simswap", "fsgan",
                 "BlendFace", "StyleRes-expr", "fomm-expr", "TPS-pose", "fomm-pose")
PROTOCOL1_METHODS = ("FNeVR", "HFGI-age", "HFGI-smile", "InfoSwap", "StyleCLIP-gender")
METHOD_ATTRIBUTE = {"diffae-age": "age", "StyleRes-age": "age", "HFGI-age": "age", "diffae-gender": "gender",
                    "StyleGAN2_dis-gender": "gender", "StyleCLIP-gender": "gender", "simswap": "identity",
                    "fsgan": "identity", "BlendFace": "identity", "InfoSwap": "identity",
                    "StyleRes-expr": "expression", "fomm-expr": "expression", "HFGI-smile": "expression",
                    "TPS-pose": "pose", "fomm-pose": "pose", "FNeVR": "pose"}
P2_ATTRIBUTES = ("age", "expression", "gender", "identity", "pose")  # Protocol-2: one list folder per attribute
TRAIN_LIST, VAL_LIST = "train_SLH_v2_update.txt", "val_SLH_v2_update.txt"
LAYOUT = ("a data root holding Train/, Val/ and Test/ image folders and list files with one line per image: "
          "'<path relative to the root> <12 characters of 0/1/2>'")
FRAMES = "a root with real/ and fake/ folders holding one folder of face crops per video"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def parse_label(text: str) -> np.ndarray:
    """int64 [12] of a 12-character label string of 0 / 1 / 2."""
    if len(text) != 12 or set(text) - set("012"):
        raise ValueError(f"an FFSC label is 12 characters of 0, 1 or 2, got {text!r}")
    return np.array([int(c) for c in text], dtype=np.int64)


def find_lists(folder: str | Path, pattern: str = "test*.txt") -> list[Path]:
    """The list files in ``folder`` whose lower-cased name matches ``pattern``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and fnmatch(p.name.lower(), pattern.lower()))


class _Frames(torch.utils.data.Dataset):
    """Images on disk with 12-node labels: ``item = {"image": uint8 [H, W, 3] RGB, "label": int64 [12], "path",
    "method", "video"}``; ``labels`` [N, 12], ``methods``, ``videos`` and ``attributes`` per image, ``is_fake`` [N].
    ``size`` resizes on read (bilinear)."""

    paths: list[Path]
    labels: np.ndarray
    methods: np.ndarray
    videos: np.ndarray
    size: int | None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def is_fake(self) -> np.ndarray:
        return (self.labels[:, 0] == 1).astype(np.int64)

    @property
    def attributes(self) -> np.ndarray:
        """The edited attribute of each image ("real" for reals, "unknown" for a method not in METHOD_ATTRIBUTE)."""
        return np.array(["real" if not f else METHOD_ATTRIBUTE.get(m, "unknown")
                         for m, f in zip(self.methods, self.is_fake)])

    def image(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            if self.size:
                im = im.resize((self.size, self.size), Image.BILINEAR)
            return np.asarray(im)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.image(i), "label": self.labels[i], "path": str(self.paths[i]),
                "method": self.methods[i], "video": self.videos[i]}


class FFSCList(_Frames):
    """The images of one FFSC list file, or of several (``list_file`` a sequence; an image listed twice is read
    once): see :class:`_Frames` for the items."""

    def __init__(self, root: str | Path, list_file: str | Path | Sequence[str | Path], size: int | None = None
                 ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"FFSC root {self.root} does not exist; expected {LAYOUT}")
        files = [list_file] if isinstance(list_file, (str, Path)) else list(list_file)
        if not files:
            raise ValueError("name at least one FFSC list file")
        paths, labels, seen = [], [], set()
        for f in files:
            lf = Path(f)
            lf = lf if lf.is_absolute() or lf.is_file() else self.root / lf
            if not lf.is_file():
                raise FileNotFoundError(f"FFSC list file {lf} does not exist; expected {LAYOUT}")
            for n, line in enumerate(lf.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2:
                    raise ValueError(f"{lf}:{n}: expected '<path> <label>', got {line!r}")
                try:
                    label = parse_label(parts[1])
                except ValueError as e:
                    raise ValueError(f"{lf}:{n}: {e}") from None
                p = Path(parts[0])
                p = p if p.is_absolute() else self.root / p
                if p not in seen:
                    seen.add(p)
                    paths.append(p)
                    labels.append(label)
        if not paths:
            raise ValueError(f"{', '.join(map(str, files))} list no images")
        missing = [p for p in paths[:1000] if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} listed images are missing, e.g. {missing[0]}")
        self.paths, self.labels, self.size = paths, np.stack(labels), size
        self.methods = np.array([self._method(p) for p in paths])
        self.videos = np.array([str(p.parent.relative_to(self.root)) if p.is_relative_to(self.root) else str(p.parent)
                                for p in paths])

    def _method(self, p: Path) -> str:
        parts = p.parts
        if "Real" in parts:
            i = parts.index("Real")
            return f"Real/{parts[i + 1]}" if i + 1 < len(parts) - 1 else "Real"
        for name in parts:
            if name in METHOD_ATTRIBUTE:
                return name
        # another method: the folder under Train/, Val/ or Test/ (past a Protocol-* folder), as the layout nests it
        for split in ("Train", "Val", "Test"):
            if split in parts[:-1]:
                rest = [q for q in parts[parts.index(split) + 1:-1] if not q.startswith("Protocol-")]
                if rest:
                    return rest[0]
        return p.parent.name


class VideoFrames(_Frames):
    """The frames of a cross-dataset test (CDF-v2, DF-1.0, DFDC, FaceShifter after face cropping): ``root/real/<video>/``
    and ``root/fake/<video>/`` hold one video's face crops each [PROPOSED layout: the authors read each data set's own
    folders]. ``n_frames`` uniformly spaced frames per video (np.linspace over the sorted names, as the authors;
    they skip shorter videos, here all of a shorter video's frames are kept). Labels: node 0 known, the rest 2."""

    def __init__(self, root: str | Path, n_frames: int = 32, size: int | None = None) -> None:
        self.root = Path(root)
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        if not all((self.root / k).is_dir() for k in ("real", "fake")):
            raise FileNotFoundError(f"{self.root} is not a frame-folder test set; expected {FRAMES}")
        paths, fake, videos = [], [], []
        for k, label in (("real", 0), ("fake", 1)):
            for video in sorted(d for d in (self.root / k).iterdir() if d.is_dir()):
                frames = sorted(p for p in video.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
                if len(frames) > n_frames:
                    frames = [frames[i] for i in np.unique(np.linspace(0, len(frames) - 1, n_frames).astype(int))]
                paths += frames
                fake += [label] * len(frames)
                videos += [f"{k}/{video.name}"] * len(frames)
        if not paths or len(set(fake)) < 2:
            raise FileNotFoundError(f"{self.root} needs frames of real and of fake videos; expected {FRAMES}")
        self.paths, self.size = paths, size
        self.labels = np.full((len(paths), 12), 2, np.int64)
        self.labels[:, 0] = fake
        self.methods = np.array(["real" if f == 0 else "fake" for f in fake])
        self.videos = np.array(videos)


# the FFSC method that stands for each procedural (edit, generator): A and B are training methods, C the unseen
# Protocol-1 ones (export_ffsc)
PROCEDURAL_METHODS = {
    ("age", "A"): "diffae-age", ("age", "B"): "StyleRes-age", ("age", "C"): "HFGI-age",
    ("smile", "A"): "StyleRes-expr", ("smile", "B"): "fomm-expr", ("smile", "C"): "HFGI-smile",
    ("surprised", "A"): "StyleRes-expr", ("surprised", "B"): "fomm-expr", ("surprised", "C"): "HFGI-smile",
    ("gender", "A"): "diffae-gender", ("gender", "B"): "StyleGAN2_dis-gender", ("gender", "C"): "StyleCLIP-gender",
    ("identity", "A"): "simswap", ("identity", "B"): "fsgan", ("identity", "C"): "InfoSwap",
    ("pose", "A"): "TPS-pose", ("pose", "B"): "fomm-pose", ("pose", "C"): "FNeVR",
}


def export_ffsc(root: str | Path, n_train: int = 400, n_val: int = 100, n_test: int = 200, seed: int = 0,
                size: int = 48, frames_per_video: int = 4) -> Path:
    """Write procedural faces (kit.data.faces) in FFSC's published layout under ``root`` and return it: a way to run
    the real-data path (``data_dir=``) with no download, and the tests' fixture.

    ``Train/`` and ``Val/`` hold generators A and B as the training methods of ``PROCEDURAL_METHODS`` and reals under
    ``Real/AVSpeech``, each method's faces grouped ``frames_per_video`` to a folder (its "video": video-level scores
    average them);
    ``Test/Protocol-1/`` holds generator C's fakes as the unseen methods, ``Test/Protocol-2/`` fakes of generators
    A and B, ``Test/Real/CDF-youtube`` the test reals (people no training face shows). List files:
    ``train_SLH_v2_update.txt``, ``val_SLH_v2_update.txt``, ``test_<attribute>.txt`` (Protocol-1: one attribute's
    unseen method and the test reals), and per attribute of ``P2_ATTRIBUTES`` a folder with its own train / val
    lists (that attribute's fakes removed) and ``test_<attribute>.txt``."""
    from PIL import Image

    from kit.data.faces import make_faces

    root = Path(root)
    if frames_per_video < 1:
        raise ValueError(f"frames_per_video must be >= 1, got {frames_per_video}")

    def attribute(edit: str) -> str:
        return "expression" if edit in ("smile", "surprised") else edit

    def write(faces, split: str, real_source: str, tag: str = "") -> list[tuple[str, str, str]]:
        rows, counts = [], {}
        for i in range(len(faces)):
            fake = bool(faces.is_fake[i])
            method = PROCEDURAL_METHODS[(str(faces.edit[i]), str(faces.generator[i]))] if fake else None
            folder = f"{split}/{tag}{method}" if fake else f"{split}/Real/{real_source}"
            k = counts[folder] = counts.get(folder, -1) + 1
            rel = f"{folder}/v{k // frames_per_video:04d}/{k % frames_per_video:04d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(faces.images[i]).save(root / rel)
            rows.append((rel, "".join(map(str, faces.labels[i])), attribute(str(faces.edit[i])) if fake else "real"))
        return rows

    def listing(name: str, rows) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(f"{rel} {label}\n" for rel, label, _ in rows))

    kw = dict(size=size, n_identities=max(8, n_train // 10))
    train = write(make_faces(n_train, seed=seed, identity_seed=seed, **kw), "Train", "AVSpeech")
    val = write(make_faces(n_val, seed=seed + 500, identity_seed=seed, **kw), "Val", "AVSpeech")
    test_kw = dict(seed=seed + 1000, identity_seed=seed + 1000, **kw)
    p1 = write(make_faces(n_test, generators=("C",), **test_kw), "Test", "CDF-youtube", "Protocol-1/")
    p2 = write(make_faces(n_test, **{**test_kw, "seed": seed + 1500}), "Test", "CDF-youtube-p2", "Protocol-2/")
    listing(TRAIN_LIST, train)
    listing(VAL_LIST, val)
    for attr in P2_ATTRIBUTES:
        listing(f"test_{attr}.txt", [r for r in p1 if r[2] in ("real", attr)])
        listing(f"{attr}/{TRAIN_LIST}", [r for r in train if r[2] != attr])
        listing(f"{attr}/{VAL_LIST}", [r for r in val if r[2] != attr])
        listing(f"{attr}/test_{attr}.txt", [r for r in p2 if r[2] in ("real", attr)])
    return root
