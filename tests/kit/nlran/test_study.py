"""The layout study of NL-RAN: the "arrangement" phantoms (same blobs, different arrangement), the parameter-matched
ResNet, the per-channel readings of the attention masks, where the non-local block looks (same lung vs other lung),
and the study's summary tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from kit.nlran import phantom as ph
from kit.nlran.data import PhantomDataset
from kit.nlran.explain import reduce_channels, upsample_to
from kit.nlran.scores import best_mask_channels

torch.set_num_threads(1)


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _halves(mask: np.ndarray) -> tuple[bool, bool]:
    w = mask.shape[2] // 2
    return bool(mask[:, :, :w].any()), bool(mask[:, :, w:].any())


# ---------------------------------------------------------------------------------------------------------------
# the arrangement layout


def test_arrangement_layout_gives_both_pneumonias_the_same_blobs_only_arranged_differently():
    for i in range(12):
        ncp = ph.sample_spec("NCP", rng(1, i), 32, layout="arrangement")
        cp = ph.sample_spec("CP", rng(2, i), 32, layout="arrangement")
        assert {les.kind for les in ncp.lesions} == {les.kind for les in cp.lesions} == {"ggo"}
        for les in (*ncp.lesions, *cp.lesions):  # same local appearance: GGO HU and radius ranges
            assert ph.GGO_HU[0] <= les.hu <= ph.GGO_HU[1]
            assert 2.0 <= les.radius <= 4.0
        assert {les.side for les in ncp.lesions} == {"left", "right"}  # NCP bilateral
        assert len({les.side for les in cp.lesions}) == 1  # CP unilateral
        assert 4 <= len(cp.lesions) <= 8 + 8  # n_blobs plus the binomial extra
        cp_r = render(cp)
        assert sum(_halves(cp_r.lesion_mask)) == 1  # every CP lesion voxel in one half of the image
    # clustered: CP blob centres lie closer together than NCP's
    spread = {lab: np.mean([np.std([les.centre for les in ph.sample_spec(lab, rng(3, i), 32,
                                                                          layout="arrangement").lesions], 0).sum()
                            for i in range(30)]) for lab in ("NCP", "CP")}
    assert spread["CP"] < 0.7 * spread["NCP"]  # measured: 0.48 vs 0.78


def render(spec):
    return ph.render(spec)


def test_arrangement_layout_matches_lesion_volume_and_keeps_texture_unchanged():
    ds = PhantomDataset(120, seed=7, size=32, layout="arrangement")
    vol = {c: np.mean([ds.phantom(i).lesion_mask.mean() for i in range(120) if ds.labels[i] == c]) for c in (0, 1)}
    assert abs(vol[0] - vol[1]) / vol[0] < 0.15  # CP's extra blobs offset their overlap (measured: 0.0166 vs 0.0158)
    # the default layout is unchanged: CP is one consolidation
    assert ph.KNOB_DEFAULTS["layout"] == "texture"
    cp = ph.sample_spec("CP", rng(4), 32)
    assert [les.kind for les in cp.lesions] == ["consolidation"]
    # a normal phantom draws the same stream under both layouts (anatomy identical)
    a, b = ph.sample_spec("Normal", rng(5), 32), ph.sample_spec("Normal", rng(5), 32, layout="arrangement")
    assert a == b


def test_layout_knob_validation_and_config():
    from kit.nlran.config import preset

    with pytest.raises(ValueError, match="layout"):
        ph.sample_spec("CP", rng(0), 32, layout="lobar")
    with pytest.raises(ValueError, match="phantom_layout"):
        preset("tiny", phantom_layout="lobar")
    with pytest.raises(ValueError, match="patience"):
        preset("tiny", patience=-1)
    from kit.nlran.experiment import load_data

    data = load_data(preset("tiny", phantom_layout="arrangement", n_train=3, n_val=3, n_test=3))
    assert "arrangement" in data.source and data.train.knobs["layout"] == "arrangement"


def test_resnet18_small_has_nlran_tiny_parameter_budget():
    from kit.nlran.baselines import MODEL_NAMES, build_model
    from kit.nlran.config import MODELS
    from kit.nlran.models import count_parameters

    assert MODEL_NAMES is MODELS and "resnet18_small" in MODELS
    small, nl = count_parameters(build_model("resnet18_small")), count_parameters(build_model("nlran"))
    assert small == 131_535 and abs(small - nl) / nl < 0.02
    out = build_model("resnet18_small")(torch.zeros(2, 1, 32, 32, 32))
    assert out.shape == (2, 3)


# ---------------------------------------------------------------------------------------------------------------
# reading the masks per channel


def test_reduce_channels_by_name_and_index():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(2, 3, 4, 4, 4, generator=g)
    m[0, 1] *= 5  # volume 0: channel 1 varies most
    m[1, 2] *= 5  # volume 1: channel 2
    torch.testing.assert_close(reduce_channels(m, "mean"), m.mean(1))
    torch.testing.assert_close(reduce_channels(m, "max"), m.amax(1))
    torch.testing.assert_close(reduce_channels(m, "strongest"), torch.stack([m[0, 1], m[1, 2]]))
    torch.testing.assert_close(reduce_channels(m, 2), m[:, 2])
    torch.testing.assert_close(upsample_to(m, (4, 4, 4), reduce=0), upsample_to(m[:, 0], (4, 4, 4)))
    for bad, match in ((3, "channel 3"), ("sum", "reduce must be")):
        with pytest.raises(ValueError, match=match):
            reduce_channels(m, bad)


class _Masked(torch.nn.Module):
    """A stand-in with forward_maps whose module masks are fixed: channel 1 of each module is the lesion itself."""

    def __init__(self, lesion: torch.Tensor):
        super().__init__()
        self.lesion = lesion
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward_maps(self, x):
        noise = torch.rand(1, 1, *x.shape[2:], generator=torch.Generator().manual_seed(0))
        masks = [torch.cat([noise, self.lesion[None, None] * 0.8 + 0.1 * noise, 1 - noise], 1) for _ in range(3)]
        return {"masks": masks, "features": x, "logits": torch.zeros(x.shape[0], 3)}


def test_best_mask_channels_picks_the_channel_that_finds_lesions_inside_the_lungs():
    lesion = torch.zeros(16, 16, 16)
    lesion[4:8, 4:8, 4:8] = 1
    lung = np.zeros((16, 16, 16), bool)
    lung[2:14, 2:14, 2:14] = True
    model = _Masked(lesion)
    x = torch.zeros(1, 1, 16, 16, 16)
    assert best_mask_channels(model, [(x, lesion.numpy() > 0, lung)]) == (1, 1, 1)
    # the AUROC it maximises is the plain voxel AUROC inside the lungs
    c1 = model.forward_maps(x)["masks"][0][0, 1].numpy()
    assert roc_auc_score(lesion.numpy()[lung] > 0, c1[lung]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one"):
        best_mask_channels(model, [])
    with pytest.raises(ValueError, match="needs a lesion"):
        best_mask_channels(model, [(x, np.zeros((16, 16, 16), bool), lung)])
    with pytest.raises(ValueError, match="forward_maps"):
        best_mask_channels(torch.nn.Linear(1, 1), [(x, lesion.numpy() > 0, lung)])


def test_attention_heatmaps_takes_one_reading_per_module():
    from kit.nlran.explain import attention_heatmaps

    lesion = torch.zeros(16, 16, 16)
    lesion[4:8, 4:8, 4:8] = 1
    model = _Masked(lesion)
    x = torch.zeros(1, 1, 16, 16, 16)
    maps = attention_heatmaps(model, x, reduce=(1, "mean", 0))
    masks = model.forward_maps(x)["masks"]
    torch.testing.assert_close(maps["AM1"], upsample_to(masks[0][:, 1], (16, 16, 16)))
    torch.testing.assert_close(maps["AM2"], upsample_to(masks[1], (16, 16, 16)))
    with pytest.raises(ValueError, match="one reduction per attention module"):
        attention_heatmaps(model, x, reduce=(1, 2))


# ---------------------------------------------------------------------------------------------------------------
# where the non-local block looks


def test_lesion_links_split_the_lesion_attention_by_image_half(explicit_nonlocal_attention):
    from kit.nlran.attention import lesion_links
    from kit.nlran.models import nlran3d

    torch.manual_seed(0)
    model = nlran3d("tiny").eval()
    with torch.no_grad():
        model.nonlocal_block.theta.weight.mul_(25)
    x = torch.rand(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    mask = np.zeros((32, 32, 32), bool)
    mask[4:12, 8:16, 4:12] = True  # left half: cells (1-2, 2-3, 1-2) of the 8^3 grid
    mask[4:8, 8:12, 24:28] = True  # right half: cell (1, 2, 6)
    out = lesion_links(model, x, mask, threshold=0.5)
    attn = explicit_nonlocal_attention(model, x)
    cells = np.zeros((8, 8, 8), bool)
    cells[1:3, 2:4, 1:3] = True
    right = np.zeros((8, 8, 8), bool)
    right[1, 2, 6] = True
    left_rows, right_rows = attn[cells.ravel()], attn[right.ravel()]
    # same half: left queries on left keys (8 of 512 cells), right queries on the one right key
    same = np.concatenate([left_rows[:, cells.ravel()].sum(1) / (8 / 512), right_rows[:, right.ravel()].sum(1) * 512])
    other = np.concatenate([left_rows[:, right.ravel()].sum(1) * 512, right_rows[:, cells.ravel()].sum(1) / (8 / 512)])
    assert out["query_cells"] == 9
    assert out["same_ratio"] == pytest.approx(float(same.mean()), rel=1e-4)
    assert out["other_ratio"] == pytest.approx(float(other.mean()), rel=1e-4)
    one_side = lesion_links(model, x, np.where(np.arange(32) < 16, mask, False), threshold=0.5)
    assert np.isnan(one_side["other_ratio"]) and np.isfinite(one_side["same_ratio"])
    with pytest.raises(ValueError, match="mostly lesion"):
        lesion_links(model, x, np.zeros((32, 32, 32), bool))


# ---------------------------------------------------------------------------------------------------------------
# the study's tables


def test_pair_auc_scores_ncp_against_cp_only():
    from kit.nlran.study import pair_auc

    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.1, 0.7], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.9, 0.0, 0.1], [0, 1, 0]])
    # p0 / (p0 + p1): NCP 0.667, 0.667; CP 0.333, 0.333 -> perfect, whatever the normals say
    assert pair_auc(y, p) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        pair_auc(np.array([0, 2]), p[:2])


def _record(layout, model, seed, auc, ncp_cp, am=0.5, cam=0.6, links=None):
    maps = {"CAM": {"pointing": cam, "top10": cam, "auroc": cam}, "Grad-CAM": {"pointing": 0, "top10": 0, "auroc": 0}}
    if model != "resnet18_small":
        maps |= {f"AM{i}": {"pointing": am, "top10": am, "auroc": am} for i in (1, 2, 3)}
        maps |= {"AM1 strongest": {"pointing": am + 0.2, "top10": am, "auroc": am}}
    rec = {"layout": layout, "model": model, "seed": seed, "auc_macro": auc, "accuracy": auc, "ncp_cp_auc": ncp_cp,
           "best_epoch": 10, "epochs_run": 20, "train_seconds": 100.0,
           "heatmaps": {"volume": maps, "lung": maps}}
    if links is not None:
        rec["links"] = links
    return rec


def test_summarize_builds_the_tables_and_the_verdicts():
    from kit.nlran.study import summarize

    links = {"NCP": {"same_ratio": 2.0, "other_ratio": 1.5}, "CP": {"same_ratio": 3.0, "other_ratio": float("nan")}}
    recs = []
    for s, (a, b) in enumerate(((0.95, 0.90), (0.93, 0.94), (0.97, 0.91))):
        recs += [_record("arrangement", "nlran", s, a, a, links=links), _record("arrangement", "nlran_no_nl", s, b, b),
                 _record("arrangement", "resnet18_small", s, 0.99, 0.99)]
        recs += [_record("texture", "nlran", s, 0.9, 0.9, links=links), _record("texture", "nlran_no_nl", s, 0.95, 0.95)]
    out = summarize(recs)
    cls = out["classification"]["arrangement"]
    assert cls["nlran"]["auc_macro"]["mean"] == pytest.approx(0.95)
    assert cls["nlran"]["auc_macro"]["std"] == pytest.approx(np.std([0.95, 0.93, 0.97]))
    d = out["nl_minus_ablation"]["arrangement"]
    assert d["auc_macro"]["per_seed"] == pytest.approx([0.05, -0.01, 0.06]) and d["auc_macro"]["positive"] == 2
    assert d["auc_macro"]["stderr"] == pytest.approx(np.std([0.05, -0.01, 0.06], ddof=1) / np.sqrt(3))
    assert d["verdict"] == "helps"  # mean 0.033 > its standard error 0.022 on both metrics
    assert out["nl_minus_ablation"]["texture"]["verdict"] == "hurts"  # -0.05 on every seed
    heat = out["heatmaps"]["arrangement"]["lung"]
    assert set(heat) == {"nlran CAM", "nlran_no_nl CAM", "resnet18_small CAM", "nlran AM1 mean", "nlran AM2 mean",
                         "nlran AM3 mean", "nlran AM1 strongest"}
    assert out["am_vs_cam"]["arrangement"]["lung"]["pointing"] == pytest.approx(0.7 - 0.6)
    assert out["links"]["arrangement"]["NCP"]["other_ratio"]["mean"] == 1.5
    assert out["links"]["arrangement"]["CP"]["other_ratio"]["n"] == 0


def test_load_units_names_the_rebuild_command(tmp_path):
    from kit.nlran.study import load_units

    with pytest.raises(FileNotFoundError, match="kit.nlran.study"):
        load_units(tmp_path)


def test_run_unit_rejects_unknown_layout_and_model():
    from kit.nlran.study import run_unit

    with pytest.raises(ValueError, match="layout"):
        run_unit("lobar", "nlran", 0)
    with pytest.raises(ValueError, match="model"):
        run_unit("texture", "resnet18", 0)


def test_public_api_resolves_every_name_lazily():
    import kit.nlran as nlran

    for name in nlran.__all__:
        assert getattr(nlran, name) is not None
    from kit.nlran.models import NLRAN3d

    assert nlran.NLRAN3d is NLRAN3d and "Painter" in dir(nlran)
    with pytest.raises(AttributeError, match="no attribute"):
        nlran.not_a_name  # noqa: B018


def test_study_markdown_and_findings_state_the_numbers():
    from kit.nlran.report import study_findings, study_markdown
    from kit.nlran.study import summarize

    links = {"NCP": {"same_ratio": 2.0, "other_ratio": 0.5}, "CP": {"same_ratio": 3.0, "other_ratio": float("nan")}}
    recs = []
    for s, (a, b) in enumerate(((0.95, 0.90), (0.96, 0.94), (0.97, 0.91))):
        recs += [_record("arrangement", "nlran", s, a, a, links=links), _record("arrangement", "nlran_no_nl", s, b, b),
                 _record("arrangement", "resnet18_small", s, 0.99, 0.99)]
    summary = summarize(recs)
    md = study_markdown(summary)
    assert "| arrangement | NL-RAN tiny | 0.960 ± 0.008 |" in md
    assert "+0.050, +0.020, +0.060 (mean +0.043 ± 0.012)" in md and "| helps |" in md
    assert "| arrangement | NCP | 2.00 ± 0.00 | 0.50 ± 0.00 |" in md and "| arrangement | CP | 3.00 ± 0.00 | – |" in md
    text = " ".join(study_findings(summary))
    assert "the non-local block helps (NL-RAN minus ablation, macro-AUC +0.043, better on 3 of 3 seeds" in text
    flat = summarize([{**r, "auc_macro": 0.9 + 0.01 * (r["seed"] % 2), "ncp_cp_auc": 0.9} for r in recs])
    assert flat["nl_minus_ablation"]["arrangement"]["verdict"] == "no clear difference"
    assert "same-budget ResNet-18 reaches macro-AUC 0.990, above NL-RAN's 0.960" in text
    assert "masks beats NL-RAN's CAM" not in text and "does not beat NL-RAN's CAM" in text  # top-10 % share ties
    assert "do not favour the other lung's lesions (0.50x uniform" in text


def test_build_runs_each_missing_unit_once_and_keeps_the_chosen_model(tmp_path, monkeypatch):
    from kit.nlran import study
    from kit.nlran.models import nlran3d
    from kit.nlran.weights import load_committed

    calls = []

    def fake_unit(layout, model, seed, epochs, patience):
        calls.append((layout, model, seed))
        return _record(layout, model, seed, 0.9, 0.9), nlran3d("tiny").eval()

    monkeypatch.setattr(study, "run_unit", fake_unit)
    args = dict(layouts=("arrangement",), models=("nlran", "nlran_no_nl"), seeds=(0, 1), weights_dir=tmp_path)
    recs = study.build(tmp_path / "units", **args)
    assert calls == [("arrangement", "nlran", 0), ("arrangement", "nlran_no_nl", 0), ("arrangement", "nlran", 1),
                     ("arrangement", "nlran_no_nl", 1)]
    assert [r["seed"] for r in recs] == [0, 0, 1, 1] and all(r["seconds"] >= 0 for r in recs)
    assert sorted(p.name for p in (tmp_path / "units").iterdir())[0] == "arrangement-nlran-0.json"
    assert load_committed("nlran", folder=tmp_path, layout="arrangement") is not None  # seed 0's NL-RAN kept
    assert study.build(tmp_path / "units", **args) == recs and len(calls) == 4  # resumed: nothing runs again
    assert study.summarize(study.load_units(tmp_path / "units"))["classification"]["arrangement"]["nlran"][
        "auc_macro"]["n"] == 2
