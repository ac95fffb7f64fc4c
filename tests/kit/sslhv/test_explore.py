"""The numbers behind the sslhv views, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.handwriting import WriterStyle
from kit.sslhv import explore as xp
from kit.sslhv.evaluation import intra_inter_cosine
from kit.sslhv.methods import SSLMethod
from kit.verification.pairs import load_pair_data

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return load_pair_data(n_writers=12, samples_per_writer=3, split=(0.5, 0.17, 0.33), progress=False)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return SSLMethod("vae", "small", latent_dim=6).eval()


def test_embedding_views_map_each_encoder(data):
    torch.manual_seed(0)
    vic = SSLMethod("vicreg", "small", proj_scale=0.05).eval()
    idx = xp.writer_subset(data, "test", 3)
    views = xp.embedding_views({"raw": "raw", "vicreg": vic}, data, idx, method="pca")
    v = views["vicreg"]
    assert v.coords.shape == (len(idx), 2) and np.array_equal(v.writer, data.writer_of[idx])
    with torch.no_grad():
        e = vic.embed(data.x[idx]).numpy()
    assert v.nd["gap"] == pytest.approx(intra_inter_cosine(e, data.writer_of[idx])["gap"])
    with pytest.raises(ValueError, match="n_writers"):
        xp.writer_subset(data, "test", 1)


def test_latent_style_correlation_is_pearson(data, vae):
    out = xp.latent_style_correlation(vae, data)
    idx = data.indices("test")
    with torch.no_grad():
        mu = vae.vae.encode(data.x[idx])[0].numpy()
    slant = np.array([data.population.style(int(w)).slant for w in data.writer_of[idx]])
    k = list(out["fields"]).index("slant")
    for d in range(6):
        assert out["corr"][d, k] == pytest.approx(np.corrcoef(mu[:, d], slant)[0, 1], abs=1e-5)
    assert out["best_dim"][k] == np.abs(out["corr"][:, k]).argmax()
    assert set(out["fields"]) <= set(WriterStyle.FIELDS)


def test_traverse_changes_only_the_chosen_latent(data, vae):
    imgs = xp.traverse(vae, data.x[:1], 2, [-3.0, 0.0, 3.0])
    assert imgs.shape == (3, 64, 64) and imgs.dtype == np.uint8
    with torch.no_grad():
        mu = vae.vae.encode(data.x[:1])[0]
        mu[0, 2] = 3.0
        ref = vae.vae.decode(mu)[0, 0].numpy()
    np.testing.assert_allclose(imgs[2], np.rint(255 * (1 - ref)), atol=1)
    assert xp.reconstructions(vae, data.x[:2]).shape == (2, 64, 64)
    with pytest.raises(ValueError, match="dim must be"):
        xp.traverse(vae, data.x[:1], 6, [0.0])
    with pytest.raises(ValueError, match="VAE"):
        xp.reconstructions(SSLMethod("simclr", "small", proj_scale=0.05), data.x[:2])


def test_collapse_stats_fire_on_a_constant_encoder(data):
    torch.manual_seed(0)
    m = SSLMethod("vicreg", "small", proj_scale=0.05).eval()
    s = xp.collapse_stats(m, data.x[:30])
    with torch.no_grad():
        z = m.projector(m.encoder(data.x[:30]))
    np.testing.assert_allclose(s["std"], z.std(0).numpy(), rtol=1e-4)
    np.testing.assert_allclose(s["cov"], np.cov(z.numpy().T), rtol=1e-3, atol=1e-6)
    const = xp.collapse_stats(m, torch.zeros(30, 1, 64, 64), space="embedding")
    assert const["report"]["collapsed"] and const["dim"] == m.embed_dim


def test_augmented_views_are_seeded(data):
    a = xp.augmented_views(data.x[:1], 3, seed=4)
    assert np.array_equal(a, xp.augmented_views(data.x[:1], 3, seed=4))
    assert not np.array_equal(a, xp.augmented_views(data.x[:1], 3, seed=5))
    same = xp.augmented_views(data.x[:1], 2, seed=0, min_scale=1.0, max_aspect=1.0, max_rotation_deg=0,
                              max_shear=0, elastic_alpha=0, stroke_jitter=0)
    np.testing.assert_allclose(same[0].astype(int), data.images[0].astype(int), atol=2)
