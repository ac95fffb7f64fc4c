"""Configuration and presets of the CMDFD series (arXiv:2404.19171).

Loss ablation (``loss``): ``"ce"`` (the detector alone), ``"ce_cd"`` (+ correlation distillation), ``"ce_cd_jc"``
(+ the joint-modal contrastive term: the paper's full objective, all weights 1 as in the authors' code).
Training fakes (``train_kinds``): ``("real", "swap", "shift")`` (sync-breaking fakes; the issue's default) or
``("real", "shift")`` (spec section 5's configuration A: a pure sync cue). Lip-sync and talking-head fakes are
never in training: they are the unseen "CMDFD-like" types of the test set.

Presets: ``"tiny"`` (CI: 300 training clips, 4 epochs), ``"lite"`` (the committed ablation: 500 clips, 6 epochs,
spec section 5's prototype), ``"full"`` (TalkNet and the deep_avsr teachers on FakeAVCeleb / CMDFD under
``data_dir``: Adam 1e-5, StepLR 0.95 per epoch, as the authors' train.py; a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.core.presets import preset as _preset

__all__ = ["CMDFDConfig", "LOSSES", "TRAIN_CONFIGS", "PRESETS", "preset", "PAPER_SEED"]

LOSSES = ("ce", "ce_cd", "ce_cd_jc")
TRAIN_CONFIGS = {"swap_shift": ("real", "swap", "shift"), "shift_only": ("real", "shift")}
PAPER_SEED = 898  # the authors' train.py
_ALL_KINDS = ("real", "swap", "shift", "lipsync", "talking_head")


@dataclass(frozen=True)
class CMDFDConfig:
    """Everything a CMDFD run depends on; build it with :func:`preset`."""

    seed: int = 0
    device: str = "auto"
    arch: str = "tiny"  # the student: "tiny" (CPU) | "full" (TalkNet)
    loss: str = "ce_cd_jc"
    kind: str = "paper"  # the correlation target: "paper" (the code's averaged symmetric KL) | "js" [PROPOSED]
    margin: float = 1.0  # JC's margin (the code's 1.0)
    train_kinds: tuple[str, ...] = ("real", "swap", "shift")
    test_kinds: tuple[str, ...] = _ALL_KINDS
    n_train: int = 500
    n_val: int = 100
    n_test: int = 500
    n_teacher: int = 300  # real clips the offline teachers learn visemes from (not the student's)
    n_frames: int = 50  # 2 s at 25 fps
    size: int = 32
    lipsync_blur: float = 0.0  # Gaussian blur of the lip-sync fakes' mouths (spec section 5's teaching knob)
    epochs: int = 6
    batch_size: int = 16
    lr: float = 1e-3
    lr_decay: float = 1.0  # StepLR gamma per epoch (the authors: 0.95)
    teacher_epochs: int = 8
    teacher_lr: float = 3e-3
    # real data (the "full" preset): the authors' CSVs under data_dir, deep_avsr's checkpoints under teacher_dir
    data_dir: str | None = None
    train_csv: str = "FAV_train.csv"
    val_csv: str = "FAV_test.csv"
    test_csvs: tuple[str, ...] = ("FAV_test.csv", "W2L.csv", "MakeItTalk.csv", "Audio2Head.csv", "VideoReTalk.csv")
    teacher_dir: str | None = None
    max_frames: int = 1000  # the authors cap clips at 1000 frames
    num_workers: int = 0

    def __post_init__(self) -> None:
        from kit.cmdfd.losses import KINDS
        from kit.cmdfd.models import ARCHS

        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("train_kinds", "test_kinds", "test_csvs"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
        for name in ("train_kinds", "test_kinds"):
            bad = set(getattr(self, name)) - set(_ALL_KINDS)
            if bad or "real" not in getattr(self, name) or len(getattr(self, name)) < 2:
                raise ValueError(f"{name} must hold 'real' and fake kinds of {_ALL_KINDS[1:]}, got "
                                 f"{getattr(self, name)}")
        for name in ("n_train", "n_val", "n_test", "n_teacher", "batch_size", "epochs", "teacher_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_frames < 20:
            raise ValueError(f"n_frames must be >= 20 (clips of 0.8 s or more), got {self.n_frames}")
        if self.margin <= 0 or self.lr <= 0 or self.teacher_lr <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError("margin and learning rates must be > 0 and lr_decay in (0, 1]")

    @property
    def weights(self) -> tuple[float, float, float]:
        """(w_ce, w_cd, w_jc) of ``loss``."""
        return 1.0, float("cd" in self.loss), float("jc" in self.loss)

    @property
    def features(self) -> str:
        """The student's audio features: "mfcc" (TalkNet) or "log_mel" (tiny)."""
        return "mfcc" if self.arch == "full" else "log_mel"


PRESETS = {
    "tiny": {"n_train": 300, "n_val": 60, "n_test": 200, "n_teacher": 150, "epochs": 4, "teacher_epochs": 6},
    "lite": {},
    "full": {"arch": "full", "size": 112, "lr": 1e-5, "lr_decay": 0.95, "epochs": 100, "batch_size": 4,
             "num_workers": 8, "seed": PAPER_SEED},
}


def preset(name: str = "tiny", **overrides) -> CMDFDConfig:
    """The :class:`CMDFDConfig` of preset ``name`` with ``overrides``; "full" needs ``data_dir=`` (FakeAVCeleb and
    CMDFD CSVs)."""
    if name == "full" and not overrides.get("data_dir"):
        raise ValueError("preset 'full' trains on FakeAVCeleb: pass data_dir= (the folder of the authors' CSVs)")
    return _preset(CMDFDConfig, PRESETS, name, **overrides)
