"""Data of the trajectory series: scikit-learn's digits and a 2-D ring of Gaussians offline, CIFAR-10 for real.

CIFAR-10 is read from its published python layout, ``<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}``,
with an unpickler that only admits the numpy types those files contain (no arbitrary code runs).
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from kit.diffusion.denoisers import GaussianMixtureDenoiser

CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def load_digits_data() -> torch.Tensor:
    """Return scikit-learn's 1,797 handwritten 8x8 digits as ``[1797, 64]`` float64 in [-1, 1]."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float64)
    return x / 8.0 - 1.0


def ring2d(n_modes: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixtureDenoiser:
    """Return the exact denoiser of a 2-D mixture of ``n_modes`` equal Gaussians on a circle (``.sample`` draws)."""
    if n_modes < 1 or radius < 0 or std <= 0:
        raise ValueError(f"need n_modes >= 1, radius >= 0, std > 0; got {n_modes}, {radius}, {std}")
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(n_modes, 2, 2).clone()
    weights = torch.full((n_modes,), 1.0 / n_modes, dtype=torch.float64)
    return GaussianMixtureDenoiser(weights, means, covs)


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


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a CIFAR-10 batch file (python pickle with b'data' and b'labels'): {e}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got {data.shape} and {len(labels)}")
    return data, labels


def load_cifar10(data_dir: str | os.PathLike, split: str = "train", limit: int | None = None) -> torch.Tensor:
    """Return CIFAR-10 images ``[N, 3, 32, 32]`` float32 in [-1, 1] from ``data_dir/cifar-10-batches-py``.

    ``split`` is "train" (the 50,000 images of data_batch_1..5) or "test". ``limit`` keeps the first N images.
    Missing folders or files raise ``FileNotFoundError`` naming what is missing; nothing is downloaded.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data_dir is None:
        raise FileNotFoundError("data_dir is None: CIFAR-10 needs a folder holding cifar-10-batches-py/")
    root = Path(data_dir).expanduser()
    folder = root / CIFAR_FOLDER if (root / CIFAR_FOLDER).is_dir() else root
    names = _CIFAR_TRAIN if split == "train" else ("test_batch",)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 {split} files {missing} not found in {folder}; expected the python version's layout "
            f"{CIFAR_FOLDER}/data_batch_1..5 and test_batch (https://www.cs.toronto.edu/~kriz/cifar.html)")
    parts = []
    for n in names:
        data, _ = _read_cifar_batch(folder / n)
        parts.append(data)
        if limit is not None and sum(len(p) for p in parts) >= limit:
            break
    data = np.concatenate(parts)[:limit]
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32).float()
    return x / 127.5 - 1.0
