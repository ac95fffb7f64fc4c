"""FFSC (arXiv:2405.08487) as the authors publish it: image folders under ``Train/``, ``Val/``, ``Test/`` and list
files with one line per image, ``<path> <12-character label>``.

Labels are strings over the 12 graph nodes (fake, age, expression, gender, identity, pose | eye, eyebrow, lip,
mouth, nose, skin) of 0, 1 and 2 (unknown); at test time only the first character is read. Paths in a list file are
relative to the data root (absolute paths are used as they are). The real sources are ``Real/CDF-youtube`` and
``Real/AVSpeech``; the training methods and the Protocol-1 test methods are named in ``TRAIN_METHODS`` /
``PROTOCOL1_METHODS``. A frame's video is the folder it sits in (video-level AUC averages a video's frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["FFSCList", "TRAIN_METHODS", "PROTOCOL1_METHODS", "METHOD_ATTRIBUTE", "parse_label"]

# training methods per attribute (the authors' README) and Protocol-1's unseen test methods
TRAIN_METHODS = ("diffae-age", "StyleRes-age", "diffae-gender", "StyleGAN2_dis-gender", "simswap", "fsgan",
                 "BlendFace", "StyleRes-expr", "fomm-expr", "TPS-pose", "fomm-pose")
PROTOCOL1_METHODS = ("FNeVR", "HFGI-age", "HFGI-smile", "InfoSwap", "StyleCLIP-gender")
METHOD_ATTRIBUTE = {"diffae-age": "age", "StyleRes-age": "age", "HFGI-age": "age", "diffae-gender": "gender",
                    "StyleGAN2_dis-gender": "gender", "StyleCLIP-gender": "gender", "simswap": "identity",
                    "fsgan": "identity", "BlendFace": "identity", "InfoSwap": "identity",
                    "StyleRes-expr": "expression", "fomm-expr": "expression", "HFGI-smile": "expression",
                    "TPS-pose": "pose", "fomm-pose": "pose", "FNeVR": "pose"}
LAYOUT = ("a data root holding Train/, Val/ and Test/ image folders and list files with one line per image: "
          "'<path relative to the root> <12 characters of 0/1/2>'")


def parse_label(text: str) -> np.ndarray:
    """int64 [12] of a 12-character label string of 0 / 1 / 2."""
    if len(text) != 12 or set(text) - set("012"):
        raise ValueError(f"an FFSC label is 12 characters of 0, 1 or 2, got {text!r}")
    return np.array([int(c) for c in text], dtype=np.int64)


class FFSCList(torch.utils.data.Dataset):
    """The images of one FFSC list file: ``item = {"image": uint8 [H, W, 3] RGB, "label": int64 [12], "path",
    "method", "video"}``; ``labels`` [N, 12], ``methods`` and ``videos`` per image. ``size`` resizes on read."""

    def __init__(self, root: str | Path, list_file: str | Path, size: int | None = None) -> None:
        self.root = Path(root)
        lf = Path(list_file)
        lf = lf if lf.is_absolute() or lf.is_file() else self.root / lf
        if not self.root.is_dir():
            raise FileNotFoundError(f"FFSC root {self.root} does not exist; expected {LAYOUT}")
        if not lf.is_file():
            raise FileNotFoundError(f"FFSC list file {lf} does not exist; expected {LAYOUT}")
        paths, labels = [], []
        for n, line in enumerate(lf.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f"{lf}:{n}: expected '<path> <label>', got {line!r}")
            try:
                labels.append(parse_label(parts[1]))
            except ValueError as e:
                raise ValueError(f"{lf}:{n}: {e}") from None
            p = Path(parts[0])
            paths.append(p if p.is_absolute() else self.root / p)
        if not paths:
            raise ValueError(f"{lf} lists no images")
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
        return p.parent.name

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            if self.size:
                im = im.resize((self.size, self.size), Image.BILINEAR)
            image = np.asarray(im)
        return {"image": image, "label": self.labels[i], "path": str(self.paths[i]), "method": self.methods[i],
                "video": self.videos[i]}
