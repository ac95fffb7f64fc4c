"""CIFAR-10 and CIFAR-100 from their published python layout, read without running arbitrary pickled code.

``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` and ``<data_dir>/cifar-100-python/{train, test,
meta}`` (https://www.cs.toronto.edu/~kriz/cifar.html) are pickles of dicts of numpy arrays; the unpickler here
admits only the numpy types those files contain. ``download=True`` fetches the archive with torchvision's
downloader, and only then.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
_FILES = {
    ("cifar10", "train"): tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("cifar10", "test"): ("test_batch",),
    ("cifar100", "train"): ("train",),
    ("cifar100", "test"): ("test",),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def read_pickle_dict(path: str | os.PathLike) -> dict:
    """Return the dict stored in a CIFAR python pickle (keys as bytes), refusing anything but numpy types."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a CIFAR python batch file: {e}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _folder(data_dir: str | os.PathLike | None, name: str) -> Path:
    if data_dir is None:
        raise FileNotFoundError(f"data_dir is None: CIFAR needs a folder holding {name}/")
    root = Path(data_dir).expanduser()
    return root / name if (root / name).is_dir() else root


def download_cifar(kind: str, data_dir: str | os.PathLike) -> None:
    """Download and extract CIFAR-10 or CIFAR-100 into ``data_dir`` with torchvision (network needed)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[kind]
    cls(root=str(data_dir), train=True, download=True)


def load_cifar_arrays(kind: str, data_dir: str | os.PathLike | None, split: str = "train",
                      download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N, 32, 32, 3], labels int64 [N]) of CIFAR-10 (``kind="cifar10"``) or CIFAR-100.

    CIFAR-100 labels are the 100 fine classes. Missing files raise ``FileNotFoundError`` naming them; with
    ``download=True`` the archive is fetched first (the only network access in this module).
    """
    if (kind, split) not in _FILES:
        raise ValueError(f"kind must be 'cifar10' or 'cifar100' and split 'train' or 'test', got {kind!r}, {split!r}")
    name = CIFAR10_FOLDER if kind == "cifar10" else CIFAR100_FOLDER
    if download and data_dir is not None and not (_folder(data_dir, name) / _FILES[(kind, split)][0]).is_file():
        download_cifar(kind, data_dir)
    folder = _folder(data_dir, name)
    missing = [f for f in _FILES[(kind, split)] if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{kind} {split} files {missing} not found in {folder}; expected the python version's layout "
            f"{name}/{'data_batch_1..5, test_batch' if kind == 'cifar10' else 'train, test, meta'} "
            "(pass download=True to fetch it)")
    label_key = b"labels" if kind == "cifar10" else b"fine_labels"
    images, labels = [], []
    for f in _FILES[(kind, split)]:
        d = read_pickle_dict(folder / f)
        if b"data" not in d or label_key not in d:
            raise ValueError(f"{folder / f} lacks b'data' or {label_key!r}")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        lab = np.asarray(d[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or len(lab) != len(data):
            raise ValueError(f"{folder / f}: expected data [N, 3072] and N labels, got {data.shape}, {len(lab)}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def cifar100_class_names(data_dir: str | os.PathLike) -> list[str]:
    """Return the 100 fine class names from ``cifar-100-python/meta``."""
    meta = read_pickle_dict(_folder(data_dir, CIFAR100_FOLDER) / "meta")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"fine_label_names"]]
