"""Data of the RLD series: scikit-learn's digits with two teacher-quality knobs offline; CIFAR-100 and ImageNet
in their published layouts for the paper's setting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from kit.data.cifar import CIFAR100_MEAN, CIFAR100_STD, load_cifar_arrays

# Pair-flip partners for label noise on digits: shapes people (and small MLPs) confuse. [our choice]
DIGIT_PAIRS = ((3, 8), (1, 7), (4, 9), (5, 6), (0, 2))


@dataclass
class DigitsSplit:
    """Digits as ``x [N, 64]`` float32 in [0, 1] and ``y [N]``: the student's training set, a test set, and a pool
    that teachers may train on (disjoint from both)."""

    student: TensorDataset
    test: TensorDataset
    pool: TensorDataset


def digits_split(seed: int = 0, n_test: int = 597, n_student: int = 300) -> DigitsSplit:
    """Return a seeded split of scikit-learn's 1,797 digits into student-train / test / teacher pool."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    if n_test + n_student >= len(y):
        raise ValueError(f"n_test + n_student must leave a teacher pool; got {n_test} + {n_student} of {len(y)}")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    te, st, po = perm[:n_test], perm[n_test:n_test + n_student], perm[n_test + n_student:]
    return DigitsSplit(TensorDataset(x[st], y[st]), TensorDataset(x[te], y[te]), TensorDataset(x[po], y[po]))


def pair_flip_labels(labels: torch.Tensor, rate: float, seed: int = 0,
                     pairs: tuple[tuple[int, int], ...] = DIGIT_PAIRS) -> torch.Tensor:
    """Return a copy of ``labels [N]`` where each label is replaced by its pair partner with probability ``rate``."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    partner = torch.arange(int(labels.max()) + 1 if labels.numel() else 1)
    for a, b in pairs:
        if max(a, b) < len(partner):
            partner[a], partner[b] = b, a
    flip = torch.rand(labels.shape, generator=torch.Generator().manual_seed(seed)) < rate
    out = labels.clone()
    out[flip] = partner[labels[flip]]
    return out


def teacher_training_set(split: DigitsSplit, teacher_data: str, teacher_n: int, label_noise: float,
                         seed: int = 0) -> TensorDataset:
    """Return what a digits teacher trains on: ``teacher_n`` pool images ("pool"), or the student's own images
    with pair-flip label noise ("noisy"); the student itself always sees clean labels."""
    if teacher_data == "pool":
        x, y = split.pool.tensors
        if not 1 <= teacher_n <= len(y):
            raise ValueError(f"teacher_n must be in [1, {len(y)}] (the pool size), got {teacher_n}")
        return TensorDataset(x[:teacher_n], y[:teacher_n])
    if teacher_data == "noisy":
        x, y = split.student.tensors
        return TensorDataset(x, pair_flip_labels(y, label_noise, seed=seed + 17))
    raise ValueError(f"teacher_data must be 'pool' or 'noisy', got {teacher_data!r}")


class CifarDataset(Dataset):
    """CIFAR images ``uint8 [N, 32, 32, 3]`` as normalised tensors ``[3, 32, 32]`` with the standard augmentation
    (random crop 32 with 4-pixel padding, horizontal flip) when ``train``; items are ``(image, label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool,
                 mean: tuple[float, ...] = CIFAR100_MEAN, std: tuple[float, ...] = CIFAR100_STD):
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
            raise ValueError(f"images must be [N, 32, 32, 3] with N labels, got {images.shape} and {len(labels)}")
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, 32, 32]
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.train = train
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i].float() / 255.0
        if self.train:
            padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
            dy, dx = torch.randint(0, 9, (2,)).tolist()
            img = padded[:, dy:dy + 32, dx:dx + 32]
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
        return (img - self.mean) / self.std, self.labels[i]


def cifar100_datasets(data_dir: str | os.PathLike | None, download: bool = False) -> tuple[CifarDataset, CifarDataset]:
    """Return (train with augmentation, test) CIFAR-100 datasets from ``data_dir/cifar-100-python``."""
    tr = load_cifar_arrays("cifar100", data_dir, "train", download=download)
    te = load_cifar_arrays("cifar100", data_dir, "test")
    return CifarDataset(*tr, train=True), CifarDataset(*te, train=False)


def imagenet_datasets(data_dir: str | os.PathLike | None):
    """Return (train, val) ``ImageFolder`` datasets of ImageNet in ``data_dir/{train,val}/<wnid>/*.JPEG`` with the
    standard transforms (RandomResizedCrop 224 + flip; Resize 256 + CenterCrop 224)."""
    from torchvision import datasets, transforms

    if data_dir is None:
        raise FileNotFoundError("data_dir is None: ImageNet needs a folder with train/ and val/ class folders")
    root = Path(data_dir).expanduser()
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"ImageNet folders {missing} not found in {root}; expected train/<wnid>/*.JPEG and "
                                "val/<wnid>/*.JPEG (the ImageFolder layout)")
    norm = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), norm])
    return datasets.ImageFolder(str(root / "train"), train_tf), datasets.ImageFolder(str(root / "val"), val_tf)
