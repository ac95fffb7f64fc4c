"""Audio-visual deepfake detection by cross-modal correlation distillation views (arXiv:2404.19171): one clip played
with its waveform and viseme timeline (:class:`ClipPlayer`), the student's and the teachers' correlation maps of a
clip under an audio offset (:class:`CorrelationExplorer`), a SyncNet-style offset sweep (:class:`OffsetSweepPlot`),
the loss ablation across seeds (:class:`AblationChart`) and ROC curves with a threshold read-out (:class:`ROCPanel`).
Figures are FigureWidgets updated in place; every number comes from :mod:`kit.cmdfd.explore`. The training loop's
loss terms ("loss", "ce", "cd", "jc", "val_auc") are drawn by :class:`widgets.common.LiveCurve`."""

from __future__ import annotations

import html
import io
import wave
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.cmdfd import explore
from kit.cmdfd.explore import ClipView
from kit.data.talking import FAKE_KINDS, SR, VISEMES
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()

__all__ = ["AblationChart", "ClipPlayer", "CorrelationExplorer", "OffsetSweepPlot", "ROCPanel", "LOSSES",
           "VISEME_COLOURS", "wav_bytes"]

# one colour per viseme name (the viseme timeline's bands)
VISEME_COLOURS = {"closed": "#7f7f7f", "a": "#d62728", "e": "#ff7f0e", "i": "#2ca02c", "o": "#1f77b4",
                  "u": "#9467bd"}
# the loss ablation's settings, in the order the bars are drawn
LOSSES = ("ce", "ce_cd", "ce_cd_jc")
_LOSS_COLOURS = {"ce": "#1f77b4", "ce_cd": "#ff7f0e", "ce_cd_jc": "#2ca02c"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")
_BAD = "#d62728"
_GOOD = "#2ca02c"
_MARGIN = dict(l=50, r=20, t=50, b=40)


# --------------------------------------------------------------------------------------------------- helpers
def wav_bytes(audio: np.ndarray, sr: int = SR) -> bytes:
    """A mono WAV file (16-bit PCM at ``sr`` Hz) of a float waveform in [-1, 1] (clipped there), as bytes."""
    a = np.asarray(audio, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError("audio contains NaN or inf")
    pcm = np.round(np.clip(a, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _envelope(audio: np.ndarray, max_points: int = 2000) -> np.ndarray:
    """Indices of at most ``max_points`` samples that keep the waveform's shape: the smallest and the largest
    sample of each of ``max_points // 2`` equal blocks, in time order (all indices when the clip is shorter)."""
    n = len(audio)
    if n <= max_points:
        return np.arange(n)
    blocks = max_points // 2
    size = -(-n // blocks)
    padded = np.concatenate([audio, np.full(blocks * size - n, audio[-1], audio.dtype)]).reshape(blocks, size)
    start = np.arange(blocks)[:, None] * size
    pair = np.sort(np.stack([padded.argmin(1), padded.argmax(1)], 1), axis=1) + start
    return np.unique(np.minimum(pair.ravel(), n - 1))


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(value, first, end) of every run of equal values in ``labels``."""
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(labels)]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def _check_clip(video: Any, audio: Any, fps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(video uint8 [T, S, S], audio float32 [T * samples per frame], samples per frame) or a ValueError."""
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1 or SR % int(fps):
        raise ValueError(f"fps must be a positive int dividing {SR}, got {fps!r}")
    per_frame = SR // int(fps)
    v = np.asarray(video)
    if v.ndim != 3 or v.shape[0] < 1 or v.shape[1] != v.shape[2]:
        raise ValueError(f"video must be grey square frames [T, S, S], got shape {v.shape}")
    if v.dtype != np.uint8:
        raise ValueError(f"video must be uint8, got dtype {v.dtype}")
    a = np.asarray(audio)
    if a.ndim != 1 or a.dtype.kind not in "fiu":
        raise ValueError(f"audio must be a 1-D numeric waveform, got shape {a.shape} and dtype {a.dtype}")
    t = len(v)
    if len(a) != t * per_frame:
        raise ValueError(f"audio must hold {t} x {per_frame} = {t * per_frame} samples for {t} frames at {fps} fps "
                         f"and {SR} Hz, got {len(a)}")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("audio contains NaN or inf")
    return v, a, per_frame


def _ridge_xy(k: int, t: int) -> tuple[list[int], list[int]]:
    """End points of the line audio frame = video frame + k inside a T x T map (x: video, y: audio)."""
    x0, x1 = max(0, -k), min(t - 1, t - 1 - k)
    return [x0, x1], [x0 + k, x1 + k]


# --------------------------------------------------------------------------------------------------- clip player
class ClipPlayer(Displayable):
    """One clip: the mouth frame (left) with a frame slider and a Play button, the waveform over time in seconds
    (right, at most 2000 points: each block's extremes) over the viseme timeline as coloured bands (one colour
    per viseme, legend) with a cursor at the current frame (its centre), and an ``ipywidgets.Audio`` element
    holding the clip as a 16-bit 16 kHz WAV (``autoplay=False``; it plays on its own, not in step with Play).

    ``video`` uint8 [T, S, S], ``audio`` [T * 640] float in [-1, 1] (16 kHz at 25 fps), ``visemes`` int [T]
    indices of ``kit.data.talking.VISEMES`` (None: no bands). ``show_frame(t)`` moves to frame t."""

    MAX_POINTS = 2000

    def __init__(self, video: Any, audio: Any, visemes: Any = None, title: str = "", fps: int = 25,
                 height: int = 340) -> None:
        self.video, self.audio, self.samples_per_frame = _check_clip(video, audio, fps)
        self.fps, self.title = int(fps), str(title)
        self.n_frames = len(self.video)
        self.visemes = None if visemes is None else self._check_visemes(visemes)
        self.amplitude = max(float(np.abs(self.audio).max(initial=0.0)) * 1.1, 1e-3)
        self.figure = self._figure(height)
        self.slider = ipw.IntSlider(value=0, min=0, max=self.n_frames - 1, description="frame",
                                    continuous_update=True)
        self.play = ipw.Play(value=0, min=0, max=self.n_frames - 1, interval=max(1, round(1000 / self.fps)),
                             description="play")
        self.link = ipw.jslink((self.play, "value"), (self.slider, "value"))
        self.wav = wav_bytes(self.audio, SR)
        self.audio_widget = ipw.Audio(value=self.wav, format="wav", autoplay=False, loop=False, controls=True)
        self.slider.observe(lambda change: self._draw(int(change["new"])), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.play, self.slider, self.audio_widget]), self.figure])
        self._draw(0)

    @classmethod
    def from_clips(cls, clips: Any, index: int, which: str = "audio", height: int = 340) -> ClipPlayer:
        """Clip ``index`` of a ``TalkingSet``, its bands the viseme timeline of the ``which`` modality ("audio":
        what is said, "video": what the mouth shows)."""
        if which not in ("audio", "video"):
            raise ValueError(f"which must be 'audio' or 'video', got {which!r}")
        if not 0 <= int(index) < len(clips):
            raise ValueError(f"index must be a clip, 0 <= index < {len(clips)}, got {index}")
        i = int(index)
        fake = "fake" if int(clips.label[i]) == 1 else "real"
        return cls(clips.video[i], clips.audio[i], getattr(clips, f"visemes_{which}")[i],
                   title=f"#{i} {clips.kind[i]} ({fake}), {which} visemes", height=height)

    def _check_visemes(self, visemes: Any) -> np.ndarray:
        v = np.asarray(visemes)
        if v.shape != (self.n_frames,) or v.dtype.kind not in "iu":
            raise ValueError(f"visemes must be int [{self.n_frames}] (one per frame), got shape {v.shape} and "
                             f"dtype {v.dtype}")
        if v.size and (v.min() < 0 or v.max() >= len(VISEMES)):
            raise ValueError(f"visemes must index {VISEMES}, got values in [{v.min()}, {v.max()}]")
        return v.astype(np.int64)

    def _figure(self, height: int) -> FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.28, 0.72], horizontal_spacing=0.08,
                            subplot_titles=("mouth", "waveform and visemes"))
        size = self.video.shape[1]
        fig.add_trace(image_trace(np.zeros((size, size), np.uint8)), row=1, col=1)
        amp, fps = self.amplitude, self.fps
        for i, name in enumerate(VISEMES):
            xs: list[float | None] = []
            ys: list[float | None] = []
            runs = [] if self.visemes is None else [r for r in _runs(self.visemes) if r[0] == i]
            for _, first, end in runs:
                xs += [first / fps, end / fps, end / fps, first / fps, first / fps, None]
                ys += [-amp, -amp, amp, amp, -amp, None]
            fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines", name=f"viseme {name}",
                                     fillcolor=VISEME_COLOURS[name], opacity=0.3, line=dict(width=0),
                                     hoverinfo="name", showlegend=bool(runs), legendgroup="visemes"), row=1, col=2)
        idx = _envelope(self.audio, self.MAX_POINTS)
        fig.add_trace(go.Scatter(x=idx / SR, y=self.audio[idx], mode="lines", name="waveform",
                                 line=dict(color="#222222", width=1)), row=1, col=2)
        fig.add_trace(go.Scatter(x=[0.0, 0.0], y=[-amp, amp], mode="lines", name="current frame",
                                 line=dict(color=_BAD, width=2)), row=1, col=2)
        figure = FigureWidget(fig)
        image_axes(figure, figure.data[0])
        figure.update_xaxes(title_text="time (s)", range=[0, self.n_frames / fps], row=1, col=2)
        figure.update_yaxes(title_text="amplitude", range=[-amp, amp], row=1, col=2)
        figure.update_layout(height=height, width=900, margin=_MARGIN, legend=dict(orientation="h", y=-0.2))
        return figure

    # state ----------------------------------------------------------------------------------------------------
    @property
    def frame(self) -> int:
        """The frame shown now."""
        return int(self.slider.value)

    @property
    def image(self) -> Any:
        """The mouth's image trace."""
        return self.figure.data[0]

    @property
    def cursor(self) -> Any:
        """The current-frame cursor's trace (a vertical line at the frame's centre, seconds)."""
        return self.figure.data[-1]

    @property
    def waveform(self) -> Any:
        """The waveform's trace (seconds, samples)."""
        return self.figure.data[-2]

    def show_frame(self, t: int) -> None:
        """Shows frame ``t`` (moves the slider, which redraws)."""
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < self.n_frames:
            raise ValueError(f"t must be a frame, 0 <= t < {self.n_frames}, got {t!r}")
        if int(t) == self.frame:
            self._draw(int(t))
        else:
            self.slider.value = int(t)

    # drawing --------------------------------------------------------------------------------------------------
    def _draw(self, t: int) -> None:
        centre = (t + 0.5) / self.fps
        said = f", viseme <b>{VISEMES[int(self.visemes[t])]}</b>" if self.visemes is not None else ""
        head = f"{html.escape(self.title)}: " if self.title else ""
        with self.figure.batch_update():
            self.image.z = self.video[t]
            self.cursor.x = [centre, centre]
            self.figure.layout.title.text = (f"{head}frame {t} / {self.n_frames - 1} "
                                             f"({t / self.fps:.2f} s){said}")


# --------------------------------------------------------------------------------------------------- correlations
class CorrelationExplorer(Displayable):
    """One clip of a ``TalkingSet`` through the student and the teachers (:func:`kit.cmdfd.explore.clip_view`):
    the student's T x T correlation map (left) and the teachers' (right; none without ``teachers``), both on the
    colour scale [0, 1] with the diagonal (solid) and the found ridge (dashed, :func:`explore.ridge_offset`); below,
    c_t, r_t and the audio energy (scaled to a peak of 1) against the video frame, with the per-frame fake logit on
    the right axis; a read-out of the clip's kind, the offset, the averaged fake score, P(fake) and both ridges.

    The dropdown picks a clip (the first of each kind present); the offset slider moves the audio by whole frames
    (positive: audio later) before the models see it. ``select(index_or_kind)``, ``set_offset(k)``; ``view`` is
    the current :class:`ClipView`."""

    def __init__(self, model: Any, clips: Any, teachers: Any = None, features: str = "log_mel", kind: str = "paper",
                 max_offset: int = 15, height: int = 720) -> None:
        for name in ("video", "audio", "kind", "label"):
            if not hasattr(clips, name):
                raise ValueError(f"clips must be a kit.data.talking TalkingSet (no {name!r})")
        if len(clips.label) == 0:
            raise ValueError("clips must hold at least one clip")
        t = int(np.asarray(clips.video).shape[1])
        if isinstance(max_offset, bool) or not isinstance(max_offset, (int, np.integer)) or not 0 <= max_offset < t:
            raise ValueError(f"max_offset must be an int in [0, {t - 1}] for {t}-frame clips, got {max_offset!r}")
        if features not in ("log_mel", "mfcc"):
            raise ValueError(f"features must be 'log_mel' or 'mfcc', got {features!r}")
        self.model, self.clips, self.teachers = model, clips, teachers
        self.features, self.kind, self.max_offset, self.n_frames = features, kind, int(max_offset), t
        self._views: dict[tuple[int, int], ClipView] = {}
        kinds = [str(k) for k in clips.kind]
        firsts = [kinds.index(k) for k in (*FAKE_KINDS, *sorted(set(kinds) - set(FAKE_KINDS))) if k in kinds]
        self._view_of(firsts[0], 0)  # a model that does not fit the clips fails here, before any widget
        self.dropdown = ipw.Dropdown(options=[(self._label(i), i) for i in firsts], value=firsts[0],
                                     description="clip")
        self.slider = ipw.IntSlider(value=0, min=-self.max_offset, max=self.max_offset, description="offset",
                                    continuous_update=False)
        self.readout = ipw.HTML()
        self.figure = self._figure(height)
        self._hold = False
        self.dropdown.observe(lambda _: self.redraw(), names="value")
        self.slider.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.dropdown, self.slider]), self.readout, self.figure])
        self.view: ClipView
        self.ridges: dict[str, int | None] = {}
        self.redraw()

    def _label(self, i: int) -> str:
        fake = "fake" if int(self.clips.label[i]) == 1 else "real"
        return f"{self.clips.kind[i]} ({fake}) #{i}"

    def _view_of(self, i: int, k: int) -> ClipView:
        if (i, k) not in self._views:
            self._views[(i, k)] = explore.clip_view(self.model, self.clips.video[i], self.clips.audio[i],
                                                    self.teachers, k, self.features, self.kind)
        return self._views[(i, k)]

    def _figure(self, height: int) -> FigureWidget:
        t = self.n_frames
        fig = make_subplots(rows=2, cols=2, row_heights=[0.6, 0.4], vertical_spacing=0.12, horizontal_spacing=0.1,
                            specs=[[{}, {}], [{"colspan": 2, "secondary_y": True}, None]],
                            subplot_titles=("student: (cos(a_i, v_j) + 1) / 2", "teachers: r(p_i, q_j)",
                                            "per frame"))
        empty = np.zeros((t, t))
        heat = dict(zmin=0.0, zmax=1.0, colorscale="Viridis",
                    hovertemplate="video %{x}, audio %{y}: %{z:.3f}<extra></extra>")
        fig.add_trace(go.Heatmap(z=empty, name="student map", colorbar=dict(thickness=12, len=0.55, y=0.8), **heat),
                      row=1, col=1)
        fig.add_trace(go.Heatmap(z=empty, name="teacher map", showscale=False, **heat), row=1, col=2)
        diag = dict(x=[0, t - 1], y=[0, t - 1], mode="lines", line=dict(color="white", width=1), hoverinfo="skip",
                    showlegend=False)
        ridge = dict(x=[], y=[], mode="lines", line=dict(color=_BAD, width=2, dash="dash"), showlegend=False)
        for col, who in ((1, "student"), (2, "teacher")):
            fig.add_trace(go.Scatter(name=f"{who} diagonal", **diag), row=1, col=col)
            fig.add_trace(go.Scatter(name=f"{who} ridge", **ridge), row=1, col=col)
        frames = np.arange(t)
        fig.add_trace(go.Bar(x=frames, y=np.zeros(t), name="audio energy (/ peak)", marker=dict(color="#c7c7c7"),
                             opacity=0.6), row=2, col=1)
        fig.add_trace(go.Scatter(x=frames, y=np.zeros(t), mode="lines+markers", name="c_t (student)",
                                 line=dict(color="#1f77b4")), row=2, col=1)
        fig.add_trace(go.Scatter(x=frames, y=[], mode="lines+markers", name="r_t (teachers)",
                                 line=dict(color="#2ca02c")), row=2, col=1)
        fig.add_trace(go.Scatter(x=frames, y=np.zeros(t), mode="lines", name="fake logit (right)",
                                 line=dict(color=_BAD, dash="dot")), row=2, col=1, secondary_y=True)
        figure = FigureWidget(fig)
        self._trace = {tr.name: i for i, tr in enumerate(figure.data)}
        for col in (1, 2):
            axis = dict(range=[-0.5, t - 0.5], constrain="domain", showgrid=False, zeroline=False)
            figure.update_xaxes(title_text="video frame", row=1, col=col, **axis)
            figure.update_yaxes(title_text="audio frame", row=1, col=col, scaleanchor="x" if col == 1 else "x2",
                                **axis)
        figure.update_xaxes(title_text="video frame", range=[-0.5, t - 0.5], row=2, col=1)
        figure.update_yaxes(title_text="correlation / energy", range=[0, 1.05], row=2, col=1, secondary_y=False)
        figure.update_yaxes(title_text="fake - real logit", row=2, col=1, secondary_y=True, showgrid=False)
        figure.update_layout(height=height, width=900, margin=_MARGIN, bargap=0.1,
                             legend=dict(orientation="h", y=-0.1))
        return figure

    def trace(self, name: str) -> Any:
        """The trace called ``name``: "student map", "teacher map", "student diagonal", "student ridge", "teacher
        diagonal", "teacher ridge", "audio energy (/ peak)", "c_t (student)", "r_t (teachers)", "fake logit (right)"."""
        return self.figure.data[self._trace[name]]

    # state ----------------------------------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """The clip shown now (its index in ``clips``)."""
        return int(self.dropdown.value)

    @property
    def offset(self) -> int:
        """The audio offset now, in frames (positive: audio later)."""
        return int(self.slider.value)

    def select(self, index_or_kind: int | str) -> None:
        """Shows the first clip of a kind ("real", "swap", ...) or clip ``index`` of ``clips`` (added to the
        dropdown when it is not there)."""
        if isinstance(index_or_kind, str):
            found = [v for _, v in self.dropdown.options if str(self.clips.kind[v]) == index_or_kind]
            if not found:
                kinds = sorted({str(self.clips.kind[v]) for _, v in self.dropdown.options})
                raise ValueError(f"no clip of kind {index_or_kind!r}; the clips hold {kinds}")
            i = found[0]
        elif isinstance(index_or_kind, (int, np.integer)) and not isinstance(index_or_kind, bool):
            i = int(index_or_kind)
            if not 0 <= i < len(self.clips.label):
                raise ValueError(f"index must be a clip, 0 <= index < {len(self.clips.label)}, got {i}")
        else:
            raise ValueError(f"select takes a clip index or a kind name, got {index_or_kind!r}")
        if i not in [v for _, v in self.dropdown.options]:
            self._hold = True
            try:
                self.dropdown.options = [*self.dropdown.options, (self._label(i), i)]
            finally:
                self._hold = False
        if i == self.index:
            self.redraw()
        else:
            self.dropdown.value = i

    def set_offset(self, k: int) -> None:
        """Moves the audio by ``k`` frames (-max_offset <= k <= max_offset) and redraws."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or abs(int(k)) > self.max_offset:
            raise ValueError(f"k must be an int in [-{self.max_offset}, {self.max_offset}], got {k!r}")
        if int(k) == self.offset:
            self.redraw()
        else:
            self.slider.value = int(k)

    # drawing --------------------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Recomputes the clip view (cached per clip and offset) and redraws every trace and the read-out."""
        if self._hold:
            return
        i, k, t = self.index, self.offset, self.n_frames
        v = self.view = self._view_of(i, k)
        s_ridge = explore.ridge_offset(v.student, self.max_offset)
        t_ridge = explore.ridge_offset(v.teacher, self.max_offset) if v.teacher is not None else None
        self.ridges = {"student": s_ridge, "teacher": t_ridge}
        peak = float(v.energy.max())
        with self.figure.batch_update():
            self.trace("student map").z = v.student
            self.trace("teacher map").z = v.teacher if v.teacher is not None else np.full((t, t), np.nan)
            for who, ridge in self.ridges.items():
                if ridge is None:
                    self.trace(f"{who} ridge").update(x=[], y=[])
                    continue
                xs, ys = _ridge_xy(ridge, t)
                self.trace(f"{who} ridge").update(x=xs, y=ys, hovertemplate=f"{who} ridge: audio frame = video "
                                                                            f"frame {ridge:+d}<extra></extra>")
            self.trace("audio energy (/ peak)").y = v.energy / peak if peak > 0 else v.energy
            self.trace("c_t (student)").y = v.c
            self.trace("r_t (teachers)").y = v.r if v.r is not None else []
            self.trace("fake logit (right)").y = v.frame_fake
            teacher_title = (f"teachers: r(p_i, q_j), ridge {t_ridge:+d}" if t_ridge is not None
                             else "teachers: none given")
            self.figure.layout.annotations[0].text = f"student: (cos(a_i, v_j) + 1) / 2, ridge {s_ridge:+d}"
            self.figure.layout.annotations[1].text = teacher_title
            self.figure.layout.title.text = f"{self._label(i)}, audio offset {k:+d} frames"
        self.readout.value = self._readout_html(i, k, v)

    def _readout_html(self, i: int, k: int, v: ClipView) -> str:
        clips = self.clips
        fake = int(clips.label[i]) == 1
        truth = f"<b style='color:{_BAD if fake else _GOOD}'>{'fake' if fake else 'real'}</b>"
        own = getattr(clips, "offset", None)
        own_text = ""
        if own is not None and int(own[i]) != 0:
            own_text = f" (its audio is already {int(own[i]):+d} frames late; offset {-int(own[i]):+d} re-syncs it)"
        said = "fake" if v.score > 0 else "real"
        teacher = f"<b>{self.ridges['teacher']:+d}</b>" if self.ridges["teacher"] is not None else "n/a (no teachers)"
        return (f"clip <b>#{i}</b>: kind <b>{html.escape(str(clips.kind[i]))}</b>, {truth}{own_text} &mdash; "
                f"audio offset <b>{k:+d}</b> frames<br>averaged fake score <b>{v.score:+.3f}</b> ({said} at 0), "
                f"P(fake) = <b>{v.p_fake:.3f}</b>; ridge offset: student <b>{self.ridges['student']:+d}</b>, "
                f"teachers {teacher}")


# --------------------------------------------------------------------------------------------------- offset sweep
class OffsetSweepPlot(Displayable):
    """An :func:`kit.cmdfd.explore.offset_sweep` result: the mean diagonal correlation of the student (c) and of
    the teachers (r) against the audio offset, P(fake) on the right axis, a dotted line at offset 0 and a dashed
    one at the offset where c peaks (``best_offset``). ``update(sweep)`` draws another sweep in place."""

    def __init__(self, sweep: Mapping[str, Any], title: str = "offset sweep", height: int = 360) -> None:
        self.title = str(title)
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="mean c (student)",
                                 line=dict(color="#1f77b4")), secondary_y=False)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="mean r (teachers)",
                                 line=dict(color="#2ca02c")), secondary_y=False)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="P(fake) (right)", line=dict(color=_BAD, dash="dot")),
                      secondary_y=True)
        fig.add_shape(type="line", x0=0, x1=0, y0=0, y1=1, xref="x", yref="paper",
                      line=dict(color="black", dash="dot", width=1))
        fig.add_shape(type="line", x0=0, x1=0, y0=0, y1=1, xref="x", yref="paper",
                      line=dict(color="#1f77b4", dash="dash", width=2))
        fig.add_annotation(x=0, y=1, xref="x", yref="paper", text="", showarrow=False, xanchor="left",
                           yanchor="bottom", font=dict(size=10))
        self.figure = FigureWidget(fig)
        self.figure.update_xaxes(title_text="audio offset (frames, + = audio later)")
        self.figure.update_yaxes(title_text="mean diagonal correlation", secondary_y=False)
        self.figure.update_yaxes(title_text="P(fake)", range=[0, 1], secondary_y=True, showgrid=False)
        self.figure.update_layout(height=height, width=760, margin=_MARGIN, legend=dict(orientation="h", y=-0.25))
        self.widget = ipw.VBox([self.figure])
        self.sweep: dict[str, np.ndarray | None] = {}
        self.best_offset = 0
        self.update(sweep)

    @staticmethod
    def _check(sweep: Mapping[str, Any]) -> dict[str, np.ndarray | None]:
        if not isinstance(sweep, Mapping) or not {"offsets", "c", "p_fake"} <= set(sweep):
            raise ValueError("sweep must be an offset_sweep dict with 'offsets', 'c', 'r' and 'p_fake'")
        out: dict[str, np.ndarray | None] = {}
        offsets = np.asarray(sweep["offsets"])
        if offsets.ndim != 1 or len(offsets) == 0 or offsets.dtype.kind not in "iu":
            raise ValueError(f"sweep['offsets'] must be a non-empty 1-D int array, got {offsets!r:.80}")
        out["offsets"] = offsets.astype(np.int64)
        for key in ("c", "r", "p_fake"):
            if sweep.get(key) is None:
                if key != "r":
                    raise ValueError(f"sweep[{key!r}] is missing")
                out[key] = None
                continue
            a = np.asarray(sweep[key], dtype=np.float64)
            if a.shape != offsets.shape or not np.all(np.isfinite(a)):
                raise ValueError(f"sweep[{key!r}] must hold one finite value per offset ({len(offsets)}), got "
                                 f"shape {a.shape}")
            out[key] = a
        return out

    def update(self, sweep: Mapping[str, Any]) -> None:
        """Draws ``sweep`` (an offset_sweep dict) in place."""
        s = self._check(sweep)
        self.sweep = s
        offsets, c, r = np.asarray(s["offsets"]), np.asarray(s["c"]), s["r"]
        self.best_offset = int(offsets[int(np.argmax(c))])
        with self.figure.batch_update():
            self.figure.data[0].update(x=offsets, y=c)
            self.figure.data[1].update(x=offsets if r is not None else [], y=r if r is not None else [],
                                       showlegend=r is not None)
            self.figure.data[2].update(x=offsets, y=s["p_fake"])
            self.figure.layout.shapes[1].update(x0=self.best_offset, x1=self.best_offset)
            self.figure.layout.annotations[0].update(x=self.best_offset, text=f"c peaks at {self.best_offset:+d}")
            self.figure.layout.title.text = self.title
            self.figure.layout.xaxis.range = [float(offsets.min()) - 0.5, float(offsets.max()) + 0.5]


# --------------------------------------------------------------------------------------------------- ablation
class AblationChart(Displayable):
    """The loss ablation over seeds from build rows ``{"config", "loss", "seed", "per_kind": {kind: auc}}``: per
    fake kind a group of bars, one per loss (:data:`LOSSES` first, others after), bar = mean AUC over seeds and
    error bar = their std (:func:`kit.cmdfd.explore.ablation_table`, population std), every seed a dot over its bar
    (seeds that collapsed to one value sit on one dot), and a dashed chance line at 0.5. A dropdown picks the
    training config when the rows hold more than one (``set_config(name)``); ``table`` holds the drawn rows."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], kinds: Sequence[str] | None = None,
                 height: int = 380) -> None:
        rows = self._check_rows(rows)
        self.rows = rows
        seen = [k for r in rows for k in r["per_kind"]]
        self.kinds = list(dict.fromkeys(seen)) if kinds is None else [str(k) for k in kinds]
        if not self.kinds:
            raise ValueError("no fake kinds to draw")
        missing = [(r["config"], r["loss"], r["seed"], k) for r in rows for k in self.kinds if k not in r["per_kind"]]
        if missing:
            raise ValueError(f"rows lack an AUC for (config, loss, seed, kind) {missing[:3]}")
        self.configs = list(dict.fromkeys(str(r["config"]) for r in rows))
        present = list(dict.fromkeys(str(r["loss"]) for r in rows))
        self.losses = [x for x in LOSSES if x in present] + [x for x in present if x not in LOSSES]
        self.dropdown = ipw.Dropdown(options=self.configs, value=self.configs[0], description="config")
        self.table: list[dict[str, Any]] = []
        self.figure = self._figure(height)
        self.dropdown.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.dropdown, self.figure] if len(self.configs) > 1 else [self.figure])
        self.redraw()

    @staticmethod
    def _check_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        rows = list(rows)
        if not rows:
            raise ValueError("rows must be a non-empty list of build rows")
        for r in rows:
            if not isinstance(r, Mapping) or not {"config", "loss", "seed", "per_kind"} <= set(r):
                raise ValueError(f"every row needs 'config', 'loss', 'seed' and 'per_kind', got {r!r:.120}")
            if not isinstance(r["per_kind"], Mapping):
                raise ValueError(f"'per_kind' must map a fake kind to an AUC, got {r['per_kind']!r:.80}")
            for k, auc in r["per_kind"].items():
                if isinstance(auc, bool) or not isinstance(auc, (int, float, np.number)) or not np.isfinite(auc):
                    raise ValueError(f"AUC of {k!r} must be a finite number, got {auc!r} (config {r['config']}, "
                                     f"loss {r['loss']}, seed {r['seed']})")
        return rows

    def _x(self, j: int) -> np.ndarray:
        """x of loss ``j``'s bars: kind i at i, the group's bars side by side."""
        n = len(self.losses)
        return np.arange(len(self.kinds)) + (j - (n - 1) / 2) * self.width

    @property
    def width(self) -> float:
        """The width of one bar (x units; a kind's group spans 0.8)."""
        return 0.8 / len(self.losses)

    def _figure(self, height: int) -> FigureWidget:
        fig = go.Figure()
        palette = iter(_PALETTE[3:])
        for j, loss in enumerate(self.losses):
            colour = _LOSS_COLOURS.get(loss) or next(palette, "#7f7f7f")
            fig.add_trace(go.Bar(x=self._x(j), y=np.zeros(len(self.kinds)), width=self.width, name=loss,
                                 legendgroup=loss, marker=dict(color=colour, opacity=0.75),
                                 error_y=dict(type="data", array=np.zeros(len(self.kinds)), visible=True),
                                 hovertemplate=f"{loss}: %{{y:.3f}}<extra></extra>"))
        for loss in self.losses:
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=f"{loss} seeds", legendgroup=loss,
                                     showlegend=False, marker=dict(color="black", size=7, symbol="circle-open"),
                                     hovertemplate=f"{loss}, seed %{{customdata}}: %{{y:.3f}}<extra></extra>"))
        fig.add_shape(type="line", x0=0, x1=1, xref="paper", y0=0.5, y1=0.5, yref="y",
                      line=dict(color="black", dash="dash", width=1))
        fig.add_annotation(x=1, xref="paper", y=0.5, yref="y", text="chance", showarrow=False, xanchor="right",
                           yanchor="bottom", font=dict(size=10))
        figure = FigureWidget(fig)
        figure.update_layout(height=height, width=760, margin=_MARGIN, barmode="overlay",
                             xaxis=dict(tickvals=list(range(len(self.kinds))), ticktext=self.kinds,
                                        range=[-0.5, len(self.kinds) - 0.5], title=dict(text="fake kind")),
                             yaxis=dict(range=[0, 1.02], title=dict(text="AUC (real vs kind)")),
                             legend=dict(title=dict(text="loss")))
        return figure

    @property
    def config(self) -> str:
        """The training config shown now."""
        return str(self.dropdown.value)

    def set_config(self, config: str) -> None:
        """Shows training config ``config``."""
        if config not in self.configs:
            raise ValueError(f"config must be one of {self.configs}, got {config!r}")
        self.dropdown.value = config

    def redraw(self) -> None:
        """Redraws bars, error bars and seed dots of the config the dropdown picks."""
        config = self.config
        rows = [r for r in self.rows if str(r["config"]) == config]
        self.table = explore.ablation_table(rows, self.kinds)
        with self.figure.batch_update():
            for j, loss in enumerate(self.losses):
                cells = {t["kind"]: t for t in self.table if t["loss"] == loss}
                mean = [cells[k]["mean"] if k in cells else None for k in self.kinds]
                std = [cells[k]["std"] if k in cells else 0.0 for k in self.kinds]
                self.figure.data[j].update(y=mean, error_y=dict(array=std))
                xs, ys, seeds = [], [], []
                loss_rows = sorted((r for r in rows if str(r["loss"]) == loss), key=lambda r: r["seed"])
                for x, k in zip(self._x(j), self.kinds):
                    for r in loss_rows:
                        xs.append(float(x))
                        ys.append(float(r["per_kind"][k]))
                        seeds.append(r["seed"])
                self.figure.data[len(self.losses) + j].update(x=xs, y=ys, customdata=seeds)
            n_seeds = len({r["seed"] for r in rows})
            self.figure.layout.title.text = (f"loss ablation, trained on {config}: mean AUC ± std over "
                                             f"{n_seeds} seed{'s' if n_seeds != 1 else ''} (dots: seeds)")


# --------------------------------------------------------------------------------------------------- ROC
class ROCPanel(Displayable):
    """ROC curves of clip scores: ``curves`` maps a name to (scores, labels) (label 1 = fake, a higher score more
    fake); one curve per name with its AUC in the legend and its EER point marked
    (:func:`kit.cmdfd.explore.roc_points`). A threshold slider over the pooled score range marks each curve's
    operating point (a clip is called fake when its score >= threshold) and a table lists FAR (real clips called
    fake), FRR (fakes called real) and HTER = (FAR + FRR) / 2 per curve. ``set_threshold(x)``; ``points`` holds the
    roc_points per name and ``rates`` the current {"far", "frr", "hter"} per name."""

    def __init__(self, curves: Mapping[str, tuple[Any, Any]], threshold: float | None = None,
                 height: int = 440) -> None:
        if not isinstance(curves, Mapping) or not curves:
            raise ValueError("curves must map at least one name to (scores, labels)")
        self.data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.points: dict[str, dict[str, Any]] = {}
        for name, pair in curves.items():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"curves[{name!r}] must be (scores, labels)")
            s = np.asarray(pair[0], dtype=np.float64).ravel()
            y = np.asarray(pair[1]).ravel()
            if s.shape != y.shape or len(s) == 0 or not np.all(np.isfinite(s)):
                raise ValueError(f"curves[{name!r}]: scores and labels must be finite, non-empty and of one length, "
                                 f"got {s.shape} and {y.shape}")
            if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
                raise ValueError(f"curves[{name!r}]: labels must be 0 (real) / 1 (fake), both present")
            self.data[str(name)] = (s, y.astype(np.int64))
            self.points[str(name)] = explore.roc_points(s, y.astype(np.int64))
        pooled = np.concatenate([s for s, _ in self.data.values()])
        lo, hi = float(pooled.min()), float(pooled.max())
        if threshold is None:
            threshold = 0.0 if lo <= 0.0 <= hi else float(np.median(pooled))
        if not lo <= float(threshold) <= hi:
            raise ValueError(f"threshold must lie in the pooled score range [{lo:g}, {hi:g}], got {threshold}")
        self.rates: dict[str, dict[str, float]] = {}
        self.slider = ipw.FloatSlider(value=float(threshold), min=lo, max=hi, step=(hi - lo) / 200 or 0.01,
                                      description="threshold", continuous_update=False, readout_format=".3f")
        self.table = ipw.HTML()
        self.figure = self._figure(height)
        self.slider.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.slider, ipw.HBox([self.figure, self.table])])
        self.redraw()

    def _figure(self, height: int) -> FigureWidget:
        data: list[Any] = [go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", hoverinfo="skip",
                                      line=dict(color="#b0b0b0", dash="dash", width=1))]
        for n, (name, p) in enumerate(self.points.items()):
            colour = _PALETTE[n % len(_PALETTE)]
            e = float(p["eer"])
            data.append(go.Scatter(x=p["fpr"], y=p["tpr"], mode="lines", name=f"{name} (AUC {p['auc']:.3f})",
                                   legendgroup=name, line=dict(color=colour, width=2),
                                   hovertemplate=f"{name}: FPR %{{x:.3f}}, TPR %{{y:.3f}}<extra></extra>"))
            data.append(go.Scatter(x=[e], y=[1 - e], mode="markers", name=f"{name} EER", legendgroup=name,
                                   showlegend=False, marker=dict(color=colour, size=10, symbol="x"),
                                   hovertemplate=f"{name}: EER {e:.3f}<extra></extra>"))
            data.append(go.Scatter(x=[], y=[], mode="markers", name=f"{name} at threshold", legendgroup=name,
                                   showlegend=False, marker=dict(color=colour, size=12, symbol="circle",
                                                                 line=dict(color="black", width=1.5)),
                                   hovertemplate=f"{name}: FAR %{{x:.3f}}, 1 - FRR %{{y:.3f}}<extra></extra>"))
        return FigureWidget(data=data, layout=dict(
            height=height, width=520, margin=_MARGIN, title=dict(text="ROC (x: EER point, o: threshold)"),
            xaxis=dict(title=dict(text="false positive rate (FAR)"), range=[-0.02, 1.02], constrain="domain"),
            yaxis=dict(title=dict(text="true positive rate (1 - FRR)"), range=[-0.02, 1.02], scaleanchor="x"),
            legend=dict(x=0.98, y=0.02, xanchor="right", yanchor="bottom")))

    def trace(self, name: str, what: str = "curve") -> Any:
        """The trace of curve ``name``: ``what`` "curve", "eer" or "threshold" (its operating point)."""
        parts = ("curve", "eer", "threshold")
        if what not in parts:
            raise ValueError(f"what must be one of {parts}, got {what!r}")
        if name not in self.points:
            raise ValueError(f"no curve {name!r}; curves: {list(self.points)}")
        return self.figure.data[1 + 3 * list(self.points).index(name) + parts.index(what)]

    @property
    def threshold(self) -> float:
        """The threshold now: a clip is called fake when its score >= threshold."""
        return float(self.slider.value)

    def set_threshold(self, x: float) -> None:
        """Moves the threshold to ``x`` (inside the pooled score range)."""
        if not self.slider.min <= float(x) <= self.slider.max:
            raise ValueError(f"threshold must lie in the pooled score range [{self.slider.min:g}, "
                             f"{self.slider.max:g}], got {x}")
        if float(x) == self.threshold:
            self.redraw()
        else:
            self.slider.value = float(x)

    @staticmethod
    def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
        """{"far", "frr", "hter"} of scores against labels when score >= threshold means fake."""
        fake = scores >= threshold
        far = float(fake[labels == 0].mean())
        frr = float((~fake[labels == 1]).mean())
        return {"far": far, "frr": frr, "hter": (far + frr) / 2}

    def redraw(self) -> None:
        """Marks every curve's operating point at the threshold and rewrites the table."""
        th = self.threshold
        self.rates = {name: self.rates_at(s, y, th) for name, (s, y) in self.data.items()}
        with self.figure.batch_update():
            for name, r in self.rates.items():
                self.trace(name, "threshold").update(x=[r["far"]], y=[1 - r["frr"]])
        cells = "".join(
            f"<tr><td style='text-align:left'>{html.escape(name)}</td><td>{self.points[name]['auc']:.3f}</td>"
            f"<td>{self.points[name]['eer']:.3f}</td><td>{r['far']:.3f}</td><td>{r['frr']:.3f}</td>"
            f"<td><b>{r['hter']:.3f}</b></td></tr>" for name, r in self.rates.items())
        self.table.value = (f"<b>threshold {th:.3f}</b> (score &ge; threshold: fake)<table class='kit-record'>"
                            "<thead><tr><th style='text-align:left'>curve</th><th>AUC</th><th>EER</th><th>FAR</th>"
                            f"<th>FRR</th><th>HTER</th></tr></thead><tbody>{cells}</tbody></table>")
