"""FFSCList on a fixture in the published layout (image folders + a list file), written by the test."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kit.data.ffsc import FFSCList, parse_label


@pytest.fixture
def root(tmp_path):
    rows = []
    for rel, label in [("Test/Real/CDF-youtube/vid01/0001.png", "000000000000"),
                       ("Test/Real/CDF-youtube/vid01/0002.png", "000000000000"),
                       ("Test/HFGI-smile/clip7/0001.png", "101000001100"),
                       ("Test/InfoSwap/x_Male_-0.2/0003.png", "120010111111")]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 24, 3), len(rows) * 40, np.uint8)).save(p)
        rows.append(f"{rel} {label}")
    (tmp_path / "test_protocol1.txt").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_reads_images_labels_methods_and_videos(root):
    ds = FFSCList(root, "test_protocol1.txt", size=16)
    assert len(ds) == 4 and ds.labels.shape == (4, 12)
    item = ds[2]
    assert item["image"].shape == (16, 16, 3) and item["image"].dtype == np.uint8
    np.testing.assert_array_equal(item["label"], parse_label("101000001100"))
    assert list(ds.methods) == ["Real/CDF-youtube", "Real/CDF-youtube", "HFGI-smile", "InfoSwap"]
    assert ds.videos[0] == ds.videos[1] != ds.videos[2]
    assert ds.labels[3, 1] == 2  # unknown age for an identity swap


def test_clear_errors(root):
    with pytest.raises(FileNotFoundError, match="Train/, Val/ and Test/"):
        FFSCList(root / "nope", "x.txt")
    with pytest.raises(FileNotFoundError, match="list file"):
        FFSCList(root, "missing.txt")
    (root / "bad.txt").write_text("Test/Real/CDF-youtube/vid01/0001.png 0001\n")
    with pytest.raises(ValueError, match="bad.txt:1: an FFSC label is 12 characters"):
        FFSCList(root, "bad.txt")
    (root / "gone.txt").write_text("Test/none.png 000000000000\n")
    with pytest.raises(FileNotFoundError, match="missing"):
        FFSCList(root, "gone.txt")
