"""sslhv views on small real inputs (12 synthetic writers x 3 samples, untrained VICReg and VAE on the small
encoder, PCA maps): every control changes what it drives, in place, and the numbers shown are kit.sslhv's."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from PIL import Image

from kit.sslhv import explore as ex
from kit.sslhv.losses import collapse_report
from kit.sslhv.methods import SSLMethod
from kit.verification.pairs import load_pair_data

torch.set_num_threads(1)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def data():
    return load_pair_data(n_writers=12, samples_per_writer=3, split=(0.5, 0.17, 0.33), progress=False, noise=1.8)


@pytest.fixture(scope="module")
def vicreg():
    torch.manual_seed(0)
    return SSLMethod("vicreg", "small", proj_scale=0.05).eval()


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return SSLMethod("vae", "small", latent_dim=8).eval()


@pytest.fixture(scope="module")
def index(data):
    return ex.writer_subset(data, "test", 4)


@pytest.fixture(scope="module")
def views(data, vicreg, vae, index):
    return ex.embedding_views({"raw": "raw", "hog": "hog", "vicreg": vicreg, "vae": vae}, data, index, method="pca")


# --------------------------------------------------------------------------------------------------- loss terms
def test_loss_terms_live_and_replayed():
    from widgets.sslhv import LossTerms

    history = [{"step": 5, "kind": "train", "loss": 30.0, "invariance": 1.0, "variance": 0.9, "covariance": 0.2,
                "lr": 1e-3, "samples": 40},
               {"step": 10, "kind": "train", "loss": 25.0, "invariance": 0.8, "variance": 0.7, "covariance": 0.3,
                "lr": 1e-3, "samples": 80},
               {"step": 10, "kind": "eval", "val_intra": 0.6, "val_inter": 0.5, "val_gap": 0.1, "val_std_min": 0.01,
                "val_effective_rank": 7.5},
               {"step": 20, "kind": "eval", "val_gap": 0.15, "val_effective_rank": 9.0}]
    curves = LossTerms("vicreg", title="vicreg run")
    assert curves.figure.layout.title.text == "vicreg run" and "waiting" in curves.readout.value
    for event in history[:2]:
        curves(event)
    curves.flush()
    fig = curves.figure
    assert [t.name for t in fig.data] == ["invariance", "variance", "covariance"]  # the terms, not the total
    assert list(fig.data[0].y) == [1.0, 0.8] and list(fig.data[2].x) == [5, 10]
    assert {t.yaxis for t in fig.data} == {"y"}
    curves(history[2])
    curves.flush()
    assert curves.figure is fig and [t.name for t in fig.data][3:] == ["eval/val_gap", "eval/val_effective_rank"]
    assert fig.data[3].yaxis == "y2" and fig.data[4].yaxis == "y3" and list(fig.data[4].y) == [7.5]
    assert fig.layout.yaxis3.overlaying == "y2" and fig.layout.yaxis2.overlaying is None
    assert "step 10" in curves.readout.value and "gap <b>0.1</b>" in curves.readout.value
    assert "effective rank <b>7.5</b>" in curves.readout.value

    replayed = LossTerms.from_history("vicreg", history)
    assert [t.name for t in replayed.figure.data] == [t.name for t in fig.data]
    assert list(replayed.figure.data[3].y) == [0.1, 0.15] and replayed.last_eval == {"val_gap": 0.15,
                                                                                    "val_effective_rank": 9.0}
    vae = LossTerms.from_history("vae", [{"step": 1, "kind": "train", "loss": 3.0, "kl": 1.0, "recon": -2.0}])
    assert [t.name for t in vae.figure.data] == ["kl", "recon"]
    simclr = LossTerms.from_history("simclr", [{"step": 1, "kind": "train", "loss": 3.0, "lr": 0.1}])
    assert [t.name for t in simclr.figure.data] == ["loss"]
    assert [t.name for t in LossTerms("barlow_twins").figure.data] == []
    assert LossTerms("barlow_twins").terms == ("on_diag", "off_diag")
    with pytest.raises(ValueError, match="method must be one of"):
        LossTerms("dino")
    with pytest.raises(ValueError, match="list of event dicts"):
        LossTerms.from_history("vae", {"step": 1})


# --------------------------------------------------------------------------------------------------- embedding map
def test_embedding_map_method_readout_and_hover(views, data):
    from plotly.callbacks import Points

    from widgets.sslhv import EmbeddingMap

    emap = EmbeddingMap(views, data.images, method="hog")
    fig, v = emap.figure, views["hog"]
    writers = list(dict.fromkeys(v.writer.tolist()))
    assert [t.name for t in fig.data[:-1]] == [f"writer {w}" for w in writers] and len(writers) == 4
    first = np.flatnonzero(v.writer == writers[0])
    np.testing.assert_allclose(fig.data[0].x, v.coords[first, 0])
    np.testing.assert_allclose(fig.data[0].y, v.coords[first, 1])
    nd = f"N-d intra {v.nd['intra']:.3f}, inter {v.nd['inter']:.3f}, gap <b>{v.nd['gap']:.3f}</b>"
    assert nd in emap.readout.value
    assert f"2-D map intra {v.map2d['intra']:.3f}" in emap.readout.value
    np.testing.assert_array_equal(_png(emap.thumbnail.value), data.images[v.index[0]])  # row 0 at the start
    emap.select("vicreg")
    w = views["vicreg"]
    assert emap.figure is fig and emap.dropdown.value == "vicreg"
    np.testing.assert_allclose(fig.data[0].x, w.coords[first, 0])
    assert f"gap <b>{w.nd['gap']:.3f}</b>" in emap.readout.value and "vicreg" in fig.layout.title.text
    emap.dropdown.value = "raw"  # the dropdown itself drives the map
    np.testing.assert_allclose(fig.data[1].y, views["raw"].coords[np.flatnonzero(v.writer == writers[1]), 1])
    emap.show_point(5)
    np.testing.assert_array_equal(_png(emap.thumbnail.value), data.images[v.index[5]])
    assert emap.caption.value == f"writer {v.writer[5]}, image {v.index[5]}"
    assert list(fig.data[-1].x) == [views["raw"].coords[5, 0]]
    # a hover message from the front end: trace 1, its point 2 -> that writer's third row of the view
    row = int(np.flatnonzero(v.writer == writers[1])[2])
    fig._handler_js2py_pointsCallback({"new": {"event_type": "plotly_hover", "points": {
        "trace_indexes": [1], "point_indexes": [2], "xs": [0.0], "ys": [0.0]}}})
    assert emap.point == row
    np.testing.assert_array_equal(_png(emap.thumbnail.value), data.images[v.index[row]])
    fig.data[0]._dispatch_on_hover(Points(point_inds=[], xs=[], ys=[]), None)  # no points: nothing changes
    assert emap.point == row
    with pytest.raises(ValueError, match="method 'dino' is not one of the views"):
        EmbeddingMap(views, data.images, method="dino")
    with pytest.raises(ValueError, match="not one of the views"):
        emap.select("simclr")
    with pytest.raises(ValueError, match="0 <= k < 12"):
        emap.show_point(12)
    with pytest.raises(ValueError, match="uint8"):
        EmbeddingMap(views, data.x)


# --------------------------------------------------------------------------------------------------- VAE
def test_vae_explorer_traversal_and_correlation(vae, vicreg, data, index):
    from widgets.sslhv import VAEExplorer

    corr = ex.latent_style_correlation(vae, data, index)
    view = VAEExplorer(vae, data, index, correlation=corr, n_show=4)
    fig = view.figure
    shown = index[:4]
    np.testing.assert_array_equal(np.asarray(fig.data[1].z), data.images[shown[1]])
    np.testing.assert_array_equal(np.asarray(fig.data[5].z), ex.reconstructions(vae, data.x[shown])[1])
    steps = fig.data[8:]
    assert len(steps) == 7 and view.dim.max == 7 and view.sample.max == 3
    np.testing.assert_allclose(view.values, np.linspace(-3, 3, 7))
    expected = ex.traverse(vae, data.x[shown[0]][None], 0, np.linspace(-3, 3, 7))
    for trace, img in zip(steps, expected):
        np.testing.assert_array_equal(np.asarray(trace.z), img)
    assert fig.layout.annotations[2 * 7].text == "z0 = -3"
    view.dim.value = 5
    np.testing.assert_array_equal(np.asarray(steps[0].z), ex.traverse(vae, data.x[shown[0]][None], 5, [-3.0])[0])
    assert view.figure is fig and fig.layout.annotations[2 * 7 + 6].text == "z5 = +3"
    view.range.value = 1.5
    np.testing.assert_array_equal(np.asarray(steps[6].z), ex.traverse(vae, data.x[shown[0]][None], 5, [1.5])[0])
    view.sample.value = 2
    np.testing.assert_array_equal(np.asarray(steps[1].z), ex.traverse(vae, data.x[shown[2]][None], 5, [-1.0])[0])
    assert f"sample 2 (image {shown[2]}" in view.readout.value
    # the correlation heat map and "which dimension is ...?"
    np.testing.assert_allclose(np.asarray(view.correlation_figure.data[0].z), np.abs(corr["corr"]))
    assert list(view.correlation_figure.data[0].x) == list(corr["fields"])
    k = list(corr["fields"]).index("pen_width")
    best = int(corr["best_dim"][k])
    view.dim.value = (best + 1) % 8
    view.field.value = "pen_width"
    assert view.dim.value == best and f"latent <b>{best}</b> (r = {corr['corr'][best, k]:+.2f})" in view.answer.value
    np.testing.assert_array_equal(np.asarray(steps[0].z), ex.traverse(vae, data.x[shown[2]][None], best, [-1.5])[0])
    assert list(view.correlation_figure.data[1].y) == [f"z{best}"]
    view.dim.value = (best + 1) % 8
    assert view.which("pen_width") == best and view.dim.value == best  # picking the same field again moves it back
    with pytest.raises(ValueError, match="field must be one of"):
        view.which("colour")
    bare = VAEExplorer(vae, data, index, n_show=2)
    assert bare.correlation_figure is None and len(bare.figure.data) == 2 + 2 + 7
    with pytest.raises(ValueError, match="no correlation"):
        bare.which("slant")
    with pytest.raises(ValueError, match="VAE"):
        VAEExplorer(vicreg, data, index)
    with pytest.raises(ValueError, match="missing"):
        VAEExplorer(vae, data, index, correlation={"corr": corr["corr"]})


# --------------------------------------------------------------------------------------------------- collapse
def test_collapse_view_alarm(vicreg, data):
    from widgets.sslhv import CollapseView

    x = data.x[data.indices("test")]
    collapsed = copy.deepcopy(vicreg)
    last = collapsed.projector[-1]
    with torch.no_grad():  # every projection the same vector: complete collapse
        last.weight.zero_()
        last.bias.fill_(0.7)
    stats = {"vicreg": ex.collapse_stats(vicreg, x), "collapsed": ex.collapse_stats(collapsed, x)}
    view = CollapseView(stats)
    fig, s = view.figure, stats["vicreg"]
    np.testing.assert_allclose(fig.data[0].x, s["std"])
    d = vicreg.projector[-1].out_features  # VICReg's 2048 at proj_scale 0.05: over 64
    assert s["dim"] == d > 64 and np.asarray(fig.data[1].z).shape == (64, 64)
    np.testing.assert_allclose(np.asarray(fig.data[1].z), s["cov"][:64, :64])
    m = np.abs(s["cov"][:64, :64]).max()
    assert fig.data[1].zmin == pytest.approx(-m) and fig.data[1].zmax == pytest.approx(m)
    line = fig.layout.shapes[0]
    assert (line.x0, line.x1, line.line.dash) == (1, 1, "dash")
    rep = s["report"]
    assert view.collapsed is rep["collapsed"]
    assert f"effective rank {rep['effective_rank']:.2f}" in view.readout.value
    assert f"{rep['frac_collapsed']:.0%} of {d} dimensions collapsed" in view.readout.value
    assert f"first 64 of {d} dims" in fig.layout.annotations[1].text
    view.dropdown.value = "collapsed"
    assert view.figure is fig and view.collapsed and "<b style='color:#d62728'>collapsed</b>" in view.readout.value
    assert f"100% of {d} dimensions collapsed" in view.readout.value and "effective rank 0.00" in view.readout.value
    np.testing.assert_allclose(fig.data[0].x, 0.0, atol=1e-6)
    assert list(fig.layout.xaxis.range) == [0, 1.1]
    # a constant embedding made by hand with collapse_report: the same alarm
    report = collapse_report(torch.full((10, 16), 3.0))
    by_hand = {"std": report["std_per_dim"].numpy(), "cov": np.zeros((16, 16)), "report": report, "dim": 16}
    const = CollapseView({"constant": by_hand})
    assert const.collapsed and "collapsed</b>" in const.readout.value and const.figure.layout.annotations[1].text == \
        "covariance"
    with pytest.raises(ValueError, match="missing"):
        CollapseView({"bad": {"std": [1.0]}})
    with pytest.raises(ValueError, match="not one of"):
        view.select("simclr")


# --------------------------------------------------------------------------------------------------- augmentations
def test_augmentation_viewer_knobs_redraw(data):
    from widgets.sslhv import AugmentationViewer

    x = data.x[:5]
    view = AugmentationViewer(x, n=3, seed=4)
    fig = view.figure
    assert len(fig.data) == 4 and [a.text for a in fig.layout.annotations] == ["original", "view 1", "view 2",
                                                                                "view 3"]
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), data.images[0])  # the input, dark ink on white
    knobs = dict(min_scale=0.5, max_rotation_deg=8.0, max_shear=0.2, elastic_alpha=0.03, stroke_jitter=1)
    assert view.params == knobs

    def views(k: int, seed: int, **kw) -> np.ndarray:
        return ex.augmented_views(x[k:k + 1], 3, seed, **{**knobs, **kw})

    np.testing.assert_array_equal(np.asarray(fig.data[2].z), views(0, 4)[1])
    for name, value in (("max_rotation_deg", 25.0), ("min_scale", 0.9), ("max_shear", 0.0), ("elastic_alpha", 0.1),
                        ("stroke_jitter", 2)):
        before = np.asarray(fig.data[1].z).copy()
        view.knobs[name].value = value
        knobs[name] = value
        np.testing.assert_array_equal(np.asarray(fig.data[1].z), views(0, 4)[0])
        assert not np.array_equal(before, np.asarray(fig.data[1].z)), name
    view.sample.value = 3
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), data.images[3])
    np.testing.assert_array_equal(np.asarray(fig.data[3].z), views(3, 4)[2])
    view.button.click()
    assert view.seed == 5 and "seed 5" in view.readout.value and view.figure is fig
    np.testing.assert_array_equal(np.asarray(fig.data[1].z), views(3, 5)[0])
    with pytest.raises(ValueError, match=r"\[N, 1, S, S\]"):
        AugmentationViewer(data.images)
    with pytest.raises(ValueError, match="n must be"):
        AugmentationViewer(x, n=0)


# --------------------------------------------------------------------------------------------------- label efficiency
def test_label_efficiency_curves_and_paper_points():
    from widgets.sslhv import PAPER_POINTS, LabelEfficiency

    curves = {"frozen VICReg": {"0.1": 0.61, "0.01": 0.55, "1": 0.66}, "supervised": {"0.1": 0.58, "1": 0.7}}
    plot = LabelEfficiency(curves, PAPER_POINTS)
    fig = plot.figure
    assert fig.layout.xaxis.type == "log"
    assert [t.name for t in fig.data[:3]] == ["frozen VICReg", "supervised", "chance"]
    assert list(fig.data[0].x) == [1.0, 10.0, 100.0] and list(fig.data[0].y) == [0.55, 0.61, 0.66]  # sorted by x
    assert fig.data[0].mode == "lines+markers" and fig.data[2].line.dash == "dash" and list(fig.data[2].y) == [0.5] * 2
    paper = fig.data[3:]
    assert [t.name for t in paper] == [f"paper: {n} (CEDAR AND)" for n in PAPER_POINTS]
    assert all(t.mode == "markers" for t in paper)
    assert list(paper[0].x) == [10.0, 100.0] and list(paper[0].y) == [0.72, 0.84] and list(paper[1].y) == [0.78]
    plot.show_paper.value = False
    assert all(t.visible is False for t in paper) and fig.data[0].visible is not False
    plot.show_paper.value = True
    assert all(t.visible for t in paper)
    alone = LabelEfficiency(curves)
    assert len(alone.figure.data) == 3 and alone.show_paper.disabled
    with pytest.raises(ValueError, match="fractions of labelled writers must be numbers"):
        LabelEfficiency({"x": {"ten percent": 0.6}})
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        LabelEfficiency({"x": {"10": 0.6}})
    with pytest.raises(ValueError, match="at least one curve"):
        LabelEfficiency({})
