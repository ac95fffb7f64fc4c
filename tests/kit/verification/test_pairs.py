"""The shared pair data of the handwriting series: which writers' images are made, the pairing, model inputs."""

from __future__ import annotations

import numpy as np
import pytest

from kit.data.handwriting import verification_pairs
from kit.verification.pairs import load_pair_data, pairs_among, to_input

KW = dict(n_writers=20, samples_per_writer=3, split=(0.5, 0.2, 0.3), noise=1.0, progress=False)


def test_unlabelled_adds_every_training_writer_and_pairs_stay_within_their_split():
    d = load_pair_data(label_fraction=0.2, unlabelled=True, **KW)
    assert set(np.unique(d.writer_of)) == set(range(20))
    assert len(d.writers["train"]) == 2 and set(d.writers["train"]) <= set(d.writers["train_all"])
    for split in ("train", "val", "test"):
        p = d.pairs[split]
        assert set(d.writer_of[p[:, :2].ravel()]) <= set(d.writers[split])
        assert p[:, 2].mean() == 0.5
    without = load_pair_data(label_fraction=0.2, **KW)
    assert set(np.unique(without.writer_of)) == set(d.writers["train"]) | set(d.writers["val"]) | set(d.writers["test"])
    # the same writer's samples do not depend on which other writers were made
    w = int(d.writers["test"][0])
    np.testing.assert_array_equal(d.images[d.writer_of == w], without.images[without.writer_of == w])


def test_split_seed_fixes_the_test_writers_across_seeds_and_skip_val():
    a = load_pair_data(seed=0, split_seed=5, **KW)
    b = load_pair_data(seed=1, split_seed=5, skip_val=True, max_train_writers=3, **KW)
    np.testing.assert_array_equal(a.writers["test"], b.writers["test"])
    assert "val" not in b.pairs and len(b.writers["train"]) == 3
    assert not np.array_equal(a.images[a.indices("test")], b.images[b.indices("test")])  # fresh samples per seed


def test_pairs_among_is_the_papers_pairing_on_a_subset():
    writer_of = np.array([3, 3, 5, 5, 5, 7, 7])
    p = pairs_among(writer_of, [3, 5], seed=2)
    local = verification_pairs(writer_of[:5], seed=2)
    np.testing.assert_array_equal(p, local)
    with pytest.raises(ValueError, match="none of the given writers"):
        pairs_among(writer_of, [9])


def test_bad_source_and_missing_data_dir():
    with pytest.raises(ValueError, match="source must be"):
        load_pair_data(source="iam")
    with pytest.raises(ValueError, match="data_dir"):
        load_pair_data(source="cedar")
    with pytest.raises(ValueError, match="uint8"):
        to_input(np.zeros((2, 8, 8), np.float32))
