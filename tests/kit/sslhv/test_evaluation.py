"""Downstream evaluation of SSL encoders (arXiv:2405.18320): intra / inter-writer cosine on each writer's own rows,
2-D maps, and the pair head on frozen embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.handwriting import verification_pairs
from kit.sslhv.evaluation import (
    PairHead,
    embed_all,
    embedding_map,
    intra_inter_cosine,
    pair_probabilities,
    train_pair_head,
)


def test_intra_inter_cosine_against_explicit_loops():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(7, 3))
    w = np.array([0, 0, 1, 1, 1, 2, 0])
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    intra = [cos(e[i], e[j]) for i in range(7) for j in range(i + 1, 7) if w[i] == w[j]]
    inter = [cos(e[i], e[j]) for i in range(7) for j in range(i + 1, 7) if w[i] != w[j]]
    r = intra_inter_cosine(e, w)
    assert r["intra"] == pytest.approx(np.mean(intra)) and r["inter"] == pytest.approx(np.mean(inter))
    assert (r["n_intra"], r["n_inter"]) == (len(intra), len(inter))
    # rows are each writer's own, wherever they sit: shuffling rows and labels together changes nothing
    perm = rng.permutation(7)
    assert intra_inter_cosine(e[perm], w[perm])["gap"] == pytest.approx(r["gap"])
    with pytest.raises(ValueError, match="2 writers"):
        intra_inter_cosine(e[:2], np.array([0, 1]))


def test_embedding_map_shapes_and_errors():
    e = np.random.default_rng(1).normal(size=(12, 5))
    assert embedding_map(e, "pca").shape == (12, 2)
    assert embedding_map(e, "tsne").shape == (12, 2)
    with pytest.raises(ValueError, match="pca"):
        embedding_map(e, "umap")


def test_pair_head_learns_separable_writers_and_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 8)) * 3
    writer_of = np.repeat(np.arange(20), 4)
    emb = torch.tensor(centres[writer_of] + rng.normal(size=(80, 8)) * 0.5, dtype=torch.float32)
    tr = verification_pairs(writer_of[:48], seed=0)
    val_idx = np.arange(48, 80)
    va = verification_pairs(writer_of[val_idx], seed=1)
    va = np.column_stack([val_idx[va[:, 0]], val_idx[va[:, 1]], va[:, 2]])
    head, hist = train_pair_head(emb, tr, va, epochs=40, batch_size=32, lr=3e-3, seed=0)
    p = pair_probabilities(head, emb, va)
    assert ((p >= 0.5) == va[:, 2]).mean() > 0.9
    assert max(h["val_f1"] for h in hist) >= hist[-1]["val_f1"] - 1e-9
    assert not head.training
    with pytest.raises(ValueError, match="train_pairs"):
        train_pair_head(emb, tr[:, :2], va)


def test_pair_head_is_symmetric_and_embed_all_restores_mode():
    h = PairHead(6).eval()
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    torch.testing.assert_close(h(a, b), h(b, a))
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3), torch.nn.BatchNorm1d(3)).train()
    out = embed_all(enc, torch.rand(10, 1, 4, 4), batch_size=3)
    assert out.shape == (10, 3) and enc.training
    with pytest.raises(ValueError, match="no images"):
        embed_all(enc, torch.zeros(0, 1, 4, 4))
