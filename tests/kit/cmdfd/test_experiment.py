"""The offline CMDFD pipeline on a few tiny clips: data per split, teachers, the student under each loss, video-level
evaluation per fake kind, saved students, and what the explore functions read off one clip."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from kit.cmdfd import experiment as ex
from kit.cmdfd import explore
from kit.cmdfd.assets import load_student, save_student, saved_losses
from kit.cmdfd.config import LOSSES, preset
from kit.cmdfd.losses import correlation_matrix

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    cfg = preset("tiny", n_train=48, n_val=16, n_test=40, n_teacher=24, n_frames=24, epochs=1, teacher_epochs=2,
                 batch_size=8, device="cpu")
    data = ex.make_data(cfg)
    teachers = ex.train_teachers(cfg, data, progress=False)
    return cfg, data, teachers


def test_splits_hold_the_configured_kinds(setup):
    cfg, data, _ = setup
    assert set(data["train"].kind) == {"real", "swap", "shift"} and set(data["teacher"].kind) == {"real"}
    assert set(data["test"].kind) == set(cfg.test_kinds)
    d = data["train"]
    assert d.feats.shape == (48, 96, 32) and d.video.shape == (48, 24, 32, 32) and d.video.dtype == torch.uint8
    assert d.p.shape == d.q.shape == (48, 24, 6)
    torch.testing.assert_close(d.p.sum(-1), torch.ones(48, 24))


def test_config_validation():
    with pytest.raises(ValueError, match="loss"):
        preset("tiny", loss="cd")
    with pytest.raises(ValueError, match="train_kinds"):
        preset("tiny", train_kinds=("swap", "shift"))
    with pytest.raises(ValueError, match="train_kinds"):
        preset("tiny", train_kinds=("real", "deepfake"))
    with pytest.raises(ValueError, match="n_frames"):
        preset("tiny", n_frames=10)
    assert preset("tiny", loss="ce").weights == (1.0, 0.0, 0.0) and preset("tiny").weights == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("loss", LOSSES)
def test_student_trains_under_each_loss(setup, loss):
    cfg, data, _ = setup
    res = ex.train(replace(cfg, loss=loss), data, progress=False)
    rows = [h for h in res.history if h["kind"] == "train"]
    assert rows and all(np.isfinite(h["loss"]) for h in rows)
    assert all((h["cd"] > 0) == ("cd" in loss) and (h["jc"] > 0) == ("jc" in loss) for h in rows)
    ev = ex.evaluate(res.model, data["test"])
    assert set(ev["per_kind"]) == set(cfg.test_kinds) - {"real"} == set(ev["per_kind_c"])
    assert all(0 <= v <= 1 for v in ev["per_kind"].values()) and ev["overall"]["n"] == 40


def test_training_is_seeded(setup):
    cfg, data, _ = setup
    a = ex.clip_scores(ex.train(cfg, data, progress=False).model, data["test"])["score"]
    b = ex.clip_scores(ex.train(cfg, data, progress=False).model, data["test"])["score"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_distillation_needs_teachers(setup):
    cfg, data, _ = setup
    bare = {k: replace(v, p=None, q=None) for k, v in data.items()}
    with pytest.raises(ValueError, match="train_teachers"):
        ex.train(cfg, bare, progress=False)
    ex.train(replace(cfg, loss="ce"), bare, progress=False)  # CE alone needs none


def test_scores_are_the_averaged_fake_logit(setup):
    cfg, data, _ = setup
    torch.manual_seed(0)
    model = ex.build_student(cfg).eval()
    s = ex.clip_scores(model, data["test"])
    with torch.no_grad():
        out = model(data["test"].feats[:3], data["test"].video[:3].float() / 255)
    np.testing.assert_allclose(s["score"][:3], out.logits.mean(1)[:, 1].numpy(), rtol=1e-5, atol=1e-6)
    assert (s["pred"][:3] == out.logits.mean(1).argmax(1).numpy()).all()


def test_saved_students_round_trip(setup, tmp_path):
    cfg, data, _ = setup
    model = ex.build_student(cfg).eval()
    save_student(model, "ce", tmp_path, cfg.arch, 32)
    assert saved_losses(tmp_path) == ["ce"]
    x = (data["test"].feats[:2], data["test"].video[:2].float() / 255)
    with torch.no_grad():
        torch.testing.assert_close(load_student("ce", tmp_path)(*x).logits, model(*x).logits, atol=2e-2, rtol=2e-2)
    with pytest.raises(ValueError, match="elsewhere"):
        save_student(model, "ce_cd", tmp_path, "full", 13)
    with pytest.raises(FileNotFoundError, match="kit.cmdfd.assets"):
        load_student("ce_cd", tmp_path)


def test_an_audio_shift_moves_the_teachers_ridge_by_exactly_k(setup):
    from kit.cmdfd.assets import load_teachers
    from kit.data.talking import make_talking

    cfg, data, _ = setup
    teachers = load_teachers()  # the committed viseme teachers: a clear ridge on real speech
    model = ex.build_student(cfg).eval()
    src = make_talking(4, seed=11, kinds=("real",), fake_fraction=0.0)
    for i in range(4):
        base = explore.clip_view(model, src.video[i], src.audio[i], teachers)
        assert explore.ridge_offset(base.teacher) == 0
        t = len(base.c)
        for k in (-6, -3, 2, 5):
            view = explore.clip_view(model, src.video[i], src.audio[i], teachers, offset=k)
            # audio frame a + k of the shifted clip is audio frame a of the original: the map moves by k rows (away
            # from the clip's ends and the silence the shift lets in, which the teachers' receptive field reaches)
            a = np.arange(3, t - abs(k) - 3) + max(-k, 0)
            np.testing.assert_allclose(view.teacher[a + k], base.teacher[a], atol=1e-4)
            assert explore.ridge_offset(view.teacher) == k
    p = teachers.audio(torch.from_numpy(ex.features_of(src.audio[0], src.video.shape[1]))[None])[0]
    q = teachers.video(torch.from_numpy(src.video[0])[None] / 255.0)[0]
    base = explore.clip_view(model, src.video[0], src.audio[0], teachers)
    torch.testing.assert_close(torch.from_numpy(base.teacher), correlation_matrix(p, q))


def test_shift_audio_and_sweep(setup):
    cfg, data, teachers = setup
    a = np.arange(640 * 4, dtype=np.float32)
    np.testing.assert_array_equal(explore.shift_audio(a, 1)[640:], a[:-640])
    assert (explore.shift_audio(a, 1)[:640] == 0).all()
    np.testing.assert_array_equal(explore.shift_audio(a, -2)[:1280], a[1280:])
    with pytest.raises(ValueError, match="leaves nothing"):
        explore.shift_audio(a, 4)
    src = data["test"].source
    sw = explore.offset_sweep(ex.build_student(cfg).eval(), src.video[0], src.audio[0], teachers, offsets=[-2, 0, 2])
    assert list(sw["offsets"]) == [-2, 0, 2] and sw["c"].shape == sw["r"].shape == (3,)
    with pytest.raises(ValueError, match="640"):
        explore.clip_view(ex.build_student(cfg), src.video[0], src.audio[0][:-10])


def test_ablation_table_orders_seeds():
    rows = [{"config": "c", "loss": "ce", "seed": s, "per_kind": {"lipsync": v}} for s, v in ((2, .9), (0, .5), (1, .7))]
    t = explore.ablation_table(rows)
    assert t[0]["seeds"] == [0, 1, 2] and t[0]["per_seed"] == [.5, .7, .9] and t[0]["mean"] == pytest.approx(.7)


def _build_rows():
    rows = []
    for seed, (ce, jc) in enumerate(((0.50, 0.80), (0.60, 0.90))):
        for loss, auc in (("ce", ce), ("ce_cd_jc", jc)):
            rows.append({"config": "swap_shift", "loss": loss, "seed": seed,
                         "per_kind": {"lipsync": auc, "talking_head": auc + 0.05},
                         "per_kind_c": {"lipsync": auc - 0.1, "swap": 0.7}})
    return rows


def test_unseen_gain_and_correlation_readout():
    rows = _build_rows()
    gain = explore.unseen_gain(explore.ablation_table(rows))
    assert list(gain) == ["swap_shift/lipsync", "swap_shift/talking_head"]
    assert gain["swap_shift/lipsync"] == pytest.approx({"ce": 0.55, "ce_cd_jc": 0.85, "gain": 0.3})
    read = explore.correlation_readout(rows)
    assert read[0] == {"training fakes": "swap_shift", "loss": "ce", "fake kind": "lipsync",
                       "AUC of 1 - mean c": pytest.approx(0.45)}
    assert {(r["loss"], r["fake kind"]) for r in read} == {(loss, k) for loss in ("ce", "ce_cd_jc")
                                                            for k in ("lipsync", "swap")}


def test_remeasure_scores_each_student_with_its_roc_input(setup):
    cfg, data, _ = setup
    test = data["test"]
    torch.manual_seed(0)
    students = {"ce": ex.build_student(cfg).eval(), "ce_cd_jc": ex.build_student(cfg).eval()}
    here = explore.remeasure(students, test)
    assert list(here.measured) == ["ce", "ce_cd_jc"] and list(here.curves) == ["ce · lip-sync", "ce_cd_jc · lip-sync"]
    sel = (test.kind == "real") | (test.kind == "lipsync")
    for loss, model in students.items():
        ev = ex.evaluate(model, test)
        assert here.measured[loss] == {"per_kind": ev["per_kind"], "overall": ev["overall"]}
        scores, labels = here.curves[f"{loss} · lip-sync"]
        np.testing.assert_array_equal(scores, ex.clip_scores(model, test)["score"][sel])
        np.testing.assert_array_equal(labels, test.label.numpy()[sel])
        assert explore.roc_points(scores, labels)["auc"] == pytest.approx(ev["per_kind"]["lipsync"])
    row = here.rows[1]
    assert row["loss"] == "ce_cd_jc" and set(row) == {"loss", "EER", "HTER", *cfg.test_kinds} - {"real"}
    assert list(explore.remeasure(students, test, "talking_head").curves)[0] == "ce · talking head"
