"""sslhv entry points on tiny synthetic writers: presets, data, pre-training, the frozen head, fine-tuning with its
collapse guard, and the supervised baseline at equal architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.sslhv import experiment as ex
from kit.sslhv.config import RECIPES, SSLConfig, preset
from kit.verification.metrics import pair_metrics

torch.set_num_threads(1)


def cfg_(**kw) -> SSLConfig:
    base = dict(n_writers=24, samples_per_writer=4, split=(0.5, 0.2, 0.3), steps=6, batch_size=16, eval_every=3,
                label_fraction=0.5, head_epochs=4, finetune_steps=4, supervised_steps=6, pair_batch=8, device="cpu")
    return preset("tiny", **{**base, **kw})


@pytest.fixture(scope="module")
def data():
    return ex.load_data(cfg_(), progress=False)


def test_presets_and_recipes():
    assert preset("lite").encoder == "small" and preset("lite").steps == 300
    full = preset("full", method="simclr", data_dir="/x")
    assert (full.encoder, full.optimizer, full.lr, full.momentum) == ("resnet18", "sgd", 0.06, 0.9)
    assert preset("full", method="vae", data_dir="/x").lr == RECIPES["vae"]["lr"] == 1e-4
    assert preset("full", method="vicreg", data_dir="/x", lr=0.5).lr == 0.5  # an override beats the recipe
    for bad, match in [({"method": "dino"}, "method must"), ({"optimizer": "lars"}, "optimizer must"),
                       ({"label_fraction": 0}, "label_fraction"), ({"pretrain_writers": "test"}, "pretrain_writers"),
                       ({"data": "cedar"}, "data_dir"), ({"head_lr": 0}, "head_lr")]:
        with pytest.raises(ValueError, match=match):
            preset("tiny", **bad)


def test_pretraining_reads_training_writers_only_by_default(data):
    idx = ex.pretrain_indices(cfg_(), data)
    assert set(data.writer_of[idx]) == set(data.writers["train_all"])
    assert len(ex.pretrain_indices(cfg_(pretrain_writers="all"), data)) == len(data.writer_of)


def test_labelled_pairs_at_other_fractions_keep_two_writers(data):
    w, p = ex.labelled_pairs(cfg_(), data)
    assert np.array_equal(w, data.writers["train"]) and p is data.pairs["train"]
    w2, p2 = ex.labelled_pairs(cfg_(), data, 0.01)
    assert len(w2) == 2 and set(data.writer_of[p2[:, :2].ravel()]) == set(w2)


def test_pretrain_logs_the_terms_is_seeded_and_evaluates_the_embedding(data):
    runs = [ex.pretrain(cfg_(), data=data, progress=False) for _ in range(2)]
    for a, b in zip(runs[0].method.parameters(), runs[1].method.parameters()):
        torch.testing.assert_close(a, b)
    train = [h for h in runs[0].history if h["kind"] == "train"]
    assert {"invariance", "variance", "covariance"} <= set(train[-1])
    ev = [h for h in runs[0].history if h["kind"] == "eval"]
    assert ev and {"val_gap", "val_effective_rank", "val_std_min"} <= set(ev[-1])
    vae = ex.pretrain(cfg_(method="vae", latent_dim=4), data=data, progress=False)
    assert {"kl", "recon"} <= set([h for h in vae.history if h["kind"] == "train"][-1])


def test_frozen_head_scores_are_the_heads_own(data):
    method = ex.pretrain(cfg_(), data=data, progress=False).method
    emb = ex.frozen_embeddings(method, data)
    assert emb.shape == (len(data.writer_of), method.embed_dim)
    head, out = ex.frozen_head(cfg_(), emb, data)
    from kit.sslhv.evaluation import pair_probabilities

    test = data.pairs["test"]
    expect = pair_metrics(pair_probabilities(head, emb, test), test[:, 2])
    assert out["test"]["accuracy"] == pytest.approx(expect["accuracy"]) and out["test"]["n_pairs"] == len(test)


def test_finetune_freezes_batch_norm_and_the_guard_keeps_the_frozen_model(data):
    method = ex.pretrain(cfg_(), data=data, progress=False).method
    emb = ex.frozen_embeddings(method, data)
    head, out = ex.frozen_head(cfg_(), emb, data)
    bn = [m for m in method.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    model, ft = ex.finetune(cfg_(), method, head, 2.0, data, progress=False)  # F1 can never beat 2: guard fires
    assert ft["kept_frozen"] and ft["val_f1"] == 2.0
    torch.testing.assert_close(bn.running_mean, before)  # the method's own encoder is untouched
    pm = ex.PairModel(method.encoder, head, freeze_bn=True).train()
    assert not [m for m in pm.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)][0].training
    model, ft = ex.finetune(cfg_(), method, head, -1.0, data, progress=False)
    assert not ft["kept_frozen"] and 0 <= ft["test"]["accuracy"] <= 1


def test_supervised_baseline_has_the_same_encoder_and_head(data):
    model, out = ex.supervised(cfg_(), data, progress=False)
    assert type(model.encoder).__name__ == "SmallCNN" and model.head.project.in_features == 64
    assert {"test", "val_f1", "seconds"} <= set(out) and out["test"]["n_pairs"] == len(data.pairs["test"])
