"""cmdfd views on small real inputs (10 talking-mouth clips of 30 frames, every fake kind, an untrained tiny
student and untrained viseme teachers): every control changes what it drives, in place, and the numbers shown are
kit.cmdfd.explore's (or computed here by hand)."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from kit.cmdfd import explore as ex
from kit.cmdfd.experiment import Teachers
from kit.cmdfd.metrics import eer
from kit.cmdfd.models import TalkNetStudent
from kit.cmdfd.teachers import VisemeTeacher
from kit.data.talking import FAKE_KINDS, SR, VISEMES, make_talking

torch.set_num_threads(1)
MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def clips():
    return make_talking(10, seed=0, kinds=FAKE_KINDS, fake_fraction=0.8, n_frames=30)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TalkNetStudent("tiny").eval()


@pytest.fixture(scope="module")
def teachers():
    torch.manual_seed(1)
    return Teachers(audio=VisemeTeacher("audio").eval(), video=VisemeTeacher("video").eval())


def _first(clips, kind: str) -> int:
    return int(np.flatnonzero(np.asarray(clips.kind) == kind)[0])


# --------------------------------------------------------------------------------------------------- clip player
def test_clip_player_frame_cursor_waveform_and_bands(clips):
    from widgets.cmdfd import VISEME_COLOURS, ClipPlayer

    i = _first(clips, "real")
    video, audio, vis = clips.video[i], clips.audio[i], clips.visemes_audio[i]
    cp = ClipPlayer(video, audio, vis, title="a real clip")
    fig = cp.figure
    assert MIME in cp._repr_mimebundle_() and cp.widget.children[1] is fig
    np.testing.assert_array_equal(np.asarray(cp.image.z), video[0])
    assert list(cp.cursor.x) == [0.5 / 25] * 2 and "frame 0 / 29" in fig.layout.title.text

    cp.slider.value = 7  # the slider drives the image, the cursor and the title
    assert cp.figure is fig and cp.frame == 7
    np.testing.assert_array_equal(np.asarray(cp.image.z), video[7])
    assert list(cp.cursor.x) == pytest.approx([7.5 / 25] * 2)
    assert f"frame 7 / 29 (0.28 s), viseme <b>{VISEMES[vis[7]]}</b>" in fig.layout.title.text
    cp.show_frame(12)
    assert cp.slider.value == 12 and list(cp.cursor.x) == pytest.approx([12.5 / 25] * 2)
    np.testing.assert_array_equal(np.asarray(cp.image.z), video[12])
    assert cp.play.max == 29 and cp.play.interval == 40

    # the waveform: at most 2000 of the clip's own samples, in time order, its extremes kept
    x, y = np.asarray(cp.waveform.x), np.asarray(cp.waveform.y)
    idx = np.round(x * SR).astype(int)
    assert 1000 <= len(x) <= 2000 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(y, audio[idx])
    assert y.max() == audio.max() and y.min() == audio.min()

    # the bands: one trace per viseme; the frames each covers, counted from its rectangles, are the timeline's
    bands = fig.data[1:1 + len(VISEMES)]
    for v, (name, band) in enumerate(zip(VISEMES, bands)):
        bx = np.asarray([np.nan if b is None else b for b in band.x], float).reshape(-1, 6)
        covered = np.zeros(30, bool)
        for rect in bx:
            covered[int(round(rect[0] * 25)):int(round(rect[1] * 25))] = True
        np.testing.assert_array_equal(covered, vis == v)
        assert band.name == f"viseme {name}" and band.fillcolor == VISEME_COLOURS[name]
        assert band.showlegend == bool((vis == v).any())


def test_clip_player_wav_decodes_to_the_clip(clips):
    from widgets.cmdfd import ClipPlayer

    i = _first(clips, "swap")
    cp = ClipPlayer.from_clips(clips, i, which="video")
    assert cp.audio_widget.autoplay is False and cp.audio_widget.format == "wav"
    assert cp.audio_widget.value == cp.wav and "swap (fake), video visemes" in cp.figure.layout.title.text
    with wave.open(io.BytesIO(cp.audio_widget.value), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() == 30 * 640
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    np.testing.assert_allclose(pcm / 32767.0, clips.audio[i], rtol=0, atol=0.5 / 32767 + 1e-7)
    assert np.abs(pcm).max() > 1000  # not silence: the clip's level is kept, not renormalised
    # the bands follow the mouth's timeline here
    shown = [b.showlegend for b in cp.figure.data[1:7]]
    assert shown == [bool((clips.visemes_video[i] == v).any()) for v in range(6)]


def test_clip_player_rejects_bad_inputs(clips):
    from widgets.cmdfd import ClipPlayer

    video, audio, vis = clips.video[0], clips.audio[0], clips.visemes_audio[0]
    with pytest.raises(ValueError, match="uint8"):
        ClipPlayer(video.astype(np.float32) / 255, audio)
    with pytest.raises(ValueError, match=r"\[T, S, S\]"):
        ClipPlayer(video[..., None], audio)
    with pytest.raises(ValueError, match=r"\[T, S, S\]"):
        ClipPlayer(video[:, :, :20], audio)
    with pytest.raises(ValueError, match="30 x 640 = 19200 samples"):
        ClipPlayer(video, audio[:-1])
    with pytest.raises(ValueError, match="1-D"):
        ClipPlayer(video, audio.reshape(30, 640))
    bad = audio.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ClipPlayer(video, bad)
    with pytest.raises(ValueError, match="one per frame"):
        ClipPlayer(video, audio, vis[:-1])
    with pytest.raises(ValueError, match="must index"):
        ClipPlayer(video, audio, np.full(30, 6))
    with pytest.raises(ValueError, match="fps"):
        ClipPlayer(video, audio, fps=7)
    cp = ClipPlayer(video, audio)
    assert not any(b.showlegend for b in cp.figure.data[1:7])  # no visemes: no bands
    with pytest.raises(ValueError, match="0 <= t < 30"):
        cp.show_frame(30)


# --------------------------------------------------------------------------------------------------- explorer
def test_correlation_explorer_clips_offsets_and_ridges(model, teachers, clips):
    from widgets.cmdfd import CorrelationExplorer

    ce = CorrelationExplorer(model, clips, teachers)
    fig = ce.figure
    assert MIME in ce._repr_mimebundle_()
    kinds = np.asarray(clips.kind)
    firsts = [_first(clips, k) for k in FAKE_KINDS]
    assert [v for _, v in ce.dropdown.options] == firsts
    assert [lab for lab, _ in ce.dropdown.options] == [
        f"{k} ({'real' if k == 'real' else 'fake'}) #{i}" for k, i in zip(FAKE_KINDS, firsts)]
    i = firsts[0]
    v0 = ex.clip_view(model, clips.video[i], clips.audio[i], teachers)
    np.testing.assert_allclose(np.asarray(ce.trace("student map").z), v0.student, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ce.trace("teacher map").z), v0.teacher, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ce.trace("c_t (student)").y, v0.c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ce.trace("r_t (teachers)").y, v0.r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ce.trace("fake logit (right)").y, v0.frame_fake, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ce.trace("audio energy (/ peak)").y, v0.energy / v0.energy.max(), rtol=1e-5)
    assert "kind <b>real</b>" in ce.readout.value and "audio offset <b>+0</b>" in ce.readout.value
    assert f"P(fake) = <b>{v0.p_fake:.3f}</b>" in ce.readout.value and f"<b>{v0.score:+.3f}</b>" in ce.readout.value
    for who in ("student", "teacher"):  # the diagonal and the ridge found by ridge_offset
        d = ce.trace(f"{who} diagonal")
        assert list(d.x) == [0, 29] and list(d.y) == [0, 29]
        k = ex.ridge_offset(getattr(v0, who), 15)
        ridge = ce.trace(f"{who} ridge")
        assert ridge.line.dash == "dash" and ce.ridges[who] == k
        assert np.all(np.asarray(ridge.y) - np.asarray(ridge.x) == k) and min(ridge.x) == max(0, -k)
        assert max(ridge.y) == min(29, 29 + k)
        assert f"{'student' if who == 'student' else 'teachers'} <b>{k:+d}</b>" in ce.readout.value
    zmin = {ce.trace(n).zmin for n in ("student map", "teacher map")}
    zmax = {ce.trace(n).zmax for n in ("student map", "teacher map")}
    assert zmin == {0.0} and zmax == {1.0}
    assert fig.layout.xaxis.title.text == "video frame" and fig.layout.yaxis.title.text == "audio frame"

    ce.dropdown.value = firsts[3]  # the dropdown drives the clip: the read-out's kind and the maps change
    assert ce.figure is fig and ce.index == firsts[3]
    assert "kind <b>lipsync</b>" in ce.readout.value and "kind <b>real</b>" not in ce.readout.value
    v3 = ex.clip_view(model, clips.video[firsts[3]], clips.audio[firsts[3]], teachers)
    np.testing.assert_allclose(np.asarray(ce.trace("student map").z), v3.student, rtol=1e-5, atol=1e-6)
    assert ce.view.score == pytest.approx(v3.score, rel=1e-5, abs=1e-6)

    k = 4
    ce.slider.value = k  # the slider moves the audio: the teacher map is that of the shifted clip
    vk = ex.clip_view(model, clips.video[firsts[3]], clips.audio[firsts[3]], teachers, offset=k)
    np.testing.assert_allclose(np.asarray(ce.trace("teacher map").z), vk.teacher, rtol=1e-5, atol=1e-6)
    assert not np.allclose(vk.teacher, v3.teacher, atol=1e-3)  # the comparison above can fail
    assert f"audio offset <b>{k:+d}</b>" in ce.readout.value and ce.offset == k
    tk = ex.ridge_offset(vk.teacher, 15)
    assert np.all(np.asarray(ce.trace("teacher ridge").y) - np.asarray(ce.trace("teacher ridge").x) == tk)
    assert f"{k:+d} frames" in fig.layout.title.text

    ce.select("shift")  # a kind: its first clip
    s = firsts[2]
    assert ce.index == s and "kind <b>shift</b>" in ce.readout.value
    assert f"already {int(clips.offset[s]):+d} frames late" in ce.readout.value
    ce.set_offset(-int(clips.offset[s]))
    assert ce.slider.value == -int(clips.offset[s])
    other = next(j for j in range(len(kinds)) if j not in firsts)  # not in the dropdown yet: added
    ce.select(other)
    assert ce.index == other and ce.dropdown.label == f"{kinds[other]} ({'fake' if clips.label[other] else 'real'}) " \
                                                      f"#{other}"
    assert len(ce.dropdown.options) == 6
    with pytest.raises(ValueError, match="no clip of kind"):
        ce.select("deepfake")
    with pytest.raises(ValueError, match="0 <= index < 10"):
        ce.select(10)
    with pytest.raises(ValueError, match=r"\[-15, 15\]"):
        ce.set_offset(16)
    with pytest.raises(ValueError, match="max_offset"):
        CorrelationExplorer(model, clips, teachers, max_offset=30)
    with pytest.raises(ValueError, match="features"):
        CorrelationExplorer(model, clips, teachers, features="stft")


def test_correlation_explorer_without_teachers(model, clips):
    from widgets.cmdfd import CorrelationExplorer

    ce = CorrelationExplorer(model, clips, max_offset=5)
    assert ce.view.teacher is None and np.isnan(np.asarray(ce.trace("teacher map").z, float)).all()
    assert len(ce.trace("r_t (teachers)").y) == 0 and len(ce.trace("teacher ridge").x) == 0
    assert "n/a (no teachers)" in ce.readout.value and ce.slider.min == -5 and ce.slider.max == 5
    assert ce.figure.layout.annotations[1].text == "teachers: none given"


# --------------------------------------------------------------------------------------------------- sweep
def test_offset_sweep_plot_traces_are_the_sweep(model, teachers, clips):
    from widgets.cmdfd import OffsetSweepPlot

    i = _first(clips, "shift")
    sweep = ex.offset_sweep(model, clips.video[i], clips.audio[i], teachers, range(-6, 7))
    op = OffsetSweepPlot(sweep)
    fig = op.figure
    assert MIME in op._repr_mimebundle_()
    np.testing.assert_array_equal(fig.data[0].x, np.arange(-6, 7))
    np.testing.assert_allclose(fig.data[0].y, sweep["c"])
    np.testing.assert_allclose(fig.data[1].y, sweep["r"])
    np.testing.assert_allclose(fig.data[2].y, sweep["p_fake"])
    assert fig.data[2].yaxis == "y2" and fig.data[0].yaxis == "y"
    best = int(np.arange(-6, 7)[np.argmax(sweep["c"])])
    zero, peak = fig.layout.shapes
    assert (zero.x0, zero.x1) == (0, 0) and (peak.x0, peak.x1) == (best, best) and op.best_offset == best
    assert fig.layout.annotations[0].text == f"c peaks at {best:+d}"

    bare = ex.offset_sweep(model, clips.video[i], clips.audio[i], None, [-2, 0, 3])  # no teachers: no r
    op.update(bare)
    assert op.figure is fig and list(fig.data[0].x) == [-2, 0, 3] and len(fig.data[1].y) == 0
    np.testing.assert_allclose(fig.data[2].y, bare["p_fake"])
    assert fig.layout.shapes[1].x0 == [-2, 0, 3][int(np.argmax(bare["c"]))]
    with pytest.raises(ValueError, match="offset_sweep dict"):
        OffsetSweepPlot({"c": [1.0]})
    with pytest.raises(ValueError, match="one finite value per offset"):
        OffsetSweepPlot({**sweep, "p_fake": sweep["p_fake"][:-1]})


# --------------------------------------------------------------------------------------------------- ablation
def _rows() -> list[dict]:
    """Build rows, seeds out of order; ce's swap AUCs all collapse to 0.5 under shift_only."""
    rng = np.random.default_rng(0)
    rows = []
    for config in ("swap_shift", "shift_only"):
        for loss in ("ce_cd_jc", "ce", "ce_cd"):
            for seed in (2, 0, 1):
                per_kind = {k: float(rng.uniform(0.4, 1.0)) for k in ("swap", "shift", "lipsync", "talking_head")}
                if config == "shift_only" and loss == "ce":
                    per_kind["swap"] = 0.5
                rows.append({"config": config, "loss": loss, "seed": seed, "per_kind": per_kind})
    return rows


def test_ablation_chart_bars_dots_and_config(clips):
    from widgets.cmdfd import AblationChart

    rows = _rows()
    ac = AblationChart(rows)
    fig = ac.figure
    kinds = ["swap", "shift", "lipsync", "talking_head"]
    assert MIME in ac._repr_mimebundle_() and ac.dropdown in ac.widget.children
    assert ac.losses == ["ce", "ce_cd", "ce_cd_jc"] and ac.kinds == kinds
    assert list(fig.layout.xaxis.ticktext) == kinds
    chance = fig.layout.shapes[0]
    assert (chance.y0, chance.y1, chance.line.dash) == (0.5, 0.5, "dash")

    def check(config: str) -> None:
        for j, loss in enumerate(ac.losses):
            mine = sorted((r for r in rows if r["config"] == config and r["loss"] == loss), key=lambda r: r["seed"])
            by_kind = [[r["per_kind"][k] for r in mine] for k in kinds]
            bar, dots = fig.data[j], fig.data[3 + j]
            assert bar.name == loss and dots.name == f"{loss} seeds"
            np.testing.assert_allclose(bar.y, [sum(v) / 3 for v in by_kind], rtol=1e-12)
            np.testing.assert_allclose(bar.error_y.array,
                                       [np.sqrt(sum((x - sum(v) / 3) ** 2 for x in v) / 3) for v in by_kind],
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(dots.y, [x for v in by_kind for x in v], rtol=1e-12)
            assert list(dots.customdata) == [0, 1, 2] * 4
            np.testing.assert_allclose(dots.x, np.repeat(bar.x, 3))  # every dot over its own bar
        assert config in fig.layout.title.text and "3 seeds" in fig.layout.title.text

    check("swap_shift")
    ac.dropdown.value = "shift_only"  # the dropdown switches bars and dots
    assert ac.figure is fig and ac.config == "shift_only"
    check("shift_only")
    assert fig.data[0].y[0] == 0.5 and fig.data[0].error_y.array[0] == 0.0 and list(fig.data[3].y[:3]) == [0.5] * 3
    ac.set_config("swap_shift")
    check("swap_shift")
    assert len(np.unique(np.round(np.asarray(fig.data[0].x), 6))) == 4  # bars of one loss: one per kind
    assert np.all(np.diff([fig.data[j].x[0] for j in range(3)]) > 0)  # side by side within a group

    one = AblationChart([r for r in rows if r["config"] == "shift_only"], kinds=["lipsync", "swap"])
    assert one.dropdown not in one.widget.children and one.kinds == ["lipsync", "swap"]
    assert len(one.figure.data[0].y) == 2
    with pytest.raises(ValueError, match="config must be one of"):
        one.set_config("swap_shift")
    with pytest.raises(ValueError, match="lack an AUC"):
        AblationChart(rows, kinds=["swap", "dubbing"])
    with pytest.raises(ValueError, match="finite number"):
        AblationChart([{"config": "a", "loss": "ce", "seed": 0, "per_kind": {"swap": None}}])
    with pytest.raises(ValueError, match="non-empty"):
        AblationChart([])


# --------------------------------------------------------------------------------------------------- ROC
def _curves() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    y1 = np.r_[np.zeros(30), np.ones(40)].astype(int)
    y2 = np.r_[np.zeros(25), np.ones(25)].astype(int)
    return {"ce": (rng.normal(size=70) + 0.8 * y1, y1), "ce_cd_jc": (rng.normal(size=50) + 2.0 * y2, y2)}


def _by_hand(scores: np.ndarray, labels: np.ndarray, th: float) -> tuple[float, float, float]:
    real = [s for s, y in zip(scores, labels) if y == 0]
    fake = [s for s, y in zip(scores, labels) if y == 1]
    far = sum(1 for s in real if s >= th) / len(real)
    frr = sum(1 for s in fake if s < th) / len(fake)
    return far, frr, (far + frr) / 2


def test_roc_panel_auc_eer_and_threshold():
    from widgets.cmdfd import ROCPanel

    curves = _curves()
    rp = ROCPanel(curves)
    fig = rp.figure
    assert MIME in rp._repr_mimebundle_()
    pooled = np.concatenate([s for s, _ in curves.values()])
    assert rp.slider.min == pooled.min() and rp.slider.max == pooled.max() and rp.threshold == 0.0
    for name, (s, y) in curves.items():
        auc = roc_auc_score(y, s)
        assert rp.points[name]["auc"] == pytest.approx(auc, abs=1e-12)
        assert rp.trace(name).name == f"{name} (AUC {auc:.3f})"
        e = eer(s, y)
        assert list(rp.trace(name, "eer").x) == pytest.approx([e]) and list(rp.trace(name, "eer").y) == \
            pytest.approx([1 - e])
    assert len({rp.trace(n).line.color for n in curves}) == 2

    for th in (0.0, 0.7, float(np.sort(pooled)[10])):
        rp.slider.value = th  # the slider moves every operating point and the table
        assert rp.figure is fig
        for name, (s, y) in curves.items():
            far, frr, hter = _by_hand(s, y, th)
            assert rp.rates[name] == pytest.approx({"far": far, "frr": frr, "hter": hter})
            assert list(rp.trace(name, "threshold").x) == pytest.approx([far])
            assert list(rp.trace(name, "threshold").y) == pytest.approx([1 - frr])
            assert (f"<td>{far:.3f}</td><td>{frr:.3f}</td><td><b>{hter:.3f}</b></td>" in rp.table.value)
        assert f"threshold {th:.3f}" in rp.table.value
    far, frr, _ = _by_hand(*curves["ce"], 0.7)
    assert far != _by_hand(*curves["ce"], 0.0)[0]  # the threshold matters for these scores
    rp.set_threshold(1.25)
    assert rp.threshold == 1.25 and rp.rates["ce"]["hter"] == pytest.approx(_by_hand(*curves["ce"], 1.25)[2])

    with pytest.raises(ValueError, match="pooled score range"):
        rp.set_threshold(float(pooled.max()) + 1)
    with pytest.raises(ValueError, match="both present"):
        ROCPanel({"one class": (np.arange(4.0), np.zeros(4))})
    with pytest.raises(ValueError, match="of one length"):
        ROCPanel({"x": (np.arange(4.0), np.array([0, 1, 0]))})
    with pytest.raises(ValueError, match="at least one"):
        ROCPanel({})
