"""The frozen content teachers of correlation distillation (arXiv:2404.19171): per 25 Hz frame, a posterior over what
is being said, from the audio (ASR) and from the mouth (VSR).

- Full preset: deep_avsr's audio-only and video-only transformers (40-way character softmax over A-Z, 0-9, apostrophe,
  space, blank, end-of-sequence). ``AudioNet``: the 321-bin |STFT| at 100 Hz, Conv1d(321, 512, k 4, s 4) to 25 Hz,
  sinusoidal positions, 6 + 6 transformer encoder layers (d 512, 8 heads, FF 2048, dropout 0.1), Conv1d(512, 40, 1),
  softmax. ``VideoNet``: the same stack on 512-d lip features per frame. Module names follow deep_avsr's checkpoints
  (``audio-only.pt``, ``video-only.pt``), which :func:`load_deep_avsr` reads (weights only).
- Offline default: ``VisemeTeacher``, small classifiers of the 6 visemes of kit.data.talking (closed, a, e, i, o, u)
  trained on real clips with the known timeline, from 32 log-mel bands (audio) or the 32 x 32 mouth (video)
  [stand-ins for ASR / VSR trained with transcripts; spec section 5].

Every teacher maps its input to posteriors [B, T, C] (rows sum to 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AudioNet", "VideoNet", "VisemeTeacher", "load_deep_avsr", "N_CHARS"]

N_CHARS = 40


class _Positions(nn.Module):
    def __init__(self, d: int, max_len: int = 2500) -> None:
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, d]
        if x.shape[0] > self.pe.shape[0]:
            raise ValueError(f"clips of at most {self.pe.shape[0]} frames, got {x.shape[0]}")
        return x + self.pe[: x.shape[0]]


class _AVSRStack(nn.Module):
    def __init__(self, prefix: str, d: int, heads: int, layers: int, ff: int, dropout: float, n_classes: int) -> None:
        super().__init__()
        self.positionalEncoding = _Positions(d)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=heads, dim_feedforward=ff, dropout=dropout)
        setattr(self, f"{prefix}Encoder", nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False))
        setattr(self, f"{prefix}Decoder", nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False))
        self.outputConv = nn.Conv1d(d, n_classes, 1)
        self._prefix = prefix

    def _stack(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> posteriors [B, T, C]
        x = self.positionalEncoding(x.transpose(0, 1))
        x = getattr(self, f"{self._prefix}Decoder")(getattr(self, f"{self._prefix}Encoder")(x))
        return F.softmax(self.outputConv(x.permute(1, 2, 0)).transpose(1, 2), dim=-1)


class AudioNet(_AVSRStack):
    """deep_avsr's audio-only model: ``forward(stft [B, 4T, 321]) -> posteriors [B, T, 40]``."""

    def __init__(self, d: int = 512, heads: int = 8, layers: int = 6, ff: int = 2048, dropout: float = 0.1,
                 in_size: int = 321, n_classes: int = N_CHARS) -> None:
        super().__init__("audio", d, heads, layers, ff, dropout, n_classes)
        self.audioConv = nn.Conv1d(in_size, d, kernel_size=4, stride=4)

    def forward(self, stft: torch.Tensor) -> torch.Tensor:
        if stft.ndim != 3 or stft.shape[-1] != self.audioConv.in_channels or stft.shape[1] % 4:
            raise ValueError(f"AudioNet reads |STFT| [B, 4T, {self.audioConv.in_channels}], got {tuple(stft.shape)}")
        return self._stack(self.audioConv(stft.transpose(1, 2)).transpose(1, 2))


class VideoNet(_AVSRStack):
    """deep_avsr's video-only model: ``forward(lip_features [B, T, 512]) -> posteriors [B, T, 40]``."""

    def __init__(self, d: int = 512, heads: int = 8, layers: int = 6, ff: int = 2048, dropout: float = 0.1,
                 n_classes: int = N_CHARS) -> None:
        super().__init__("video", d, heads, layers, ff, dropout, n_classes)

    def forward(self, lip: torch.Tensor) -> torch.Tensor:
        if lip.ndim != 3 or lip.shape[-1] != self.outputConv.in_channels:
            raise ValueError(f"VideoNet reads lip features [B, T, {self.outputConv.in_channels}], got "
                             f"{tuple(lip.shape)}")
        return self._stack(lip)


def load_deep_avsr(model: AudioNet | VideoNet, path: str | Path) -> AudioNet | VideoNet:
    """``model`` with deep_avsr's checkpoint ``path`` loaded (``torch.load(weights_only=True)``; a missing key other
    than the positional table is an error), frozen, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no teacher checkpoint at {path}: the full preset needs deep_avsr's audio-only.pt and "
                                "video-only.pt (teacher_dir=)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("positionalEncoding.pe")]
    if missing:
        raise ValueError(f"{path} does not fit {type(model).__name__}: missing {missing[:5]}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


class VisemeTeacher(nn.Module):
    """A CPU-sized content teacher: ``forward(x) -> posteriors [B, T, n_classes]``; ``modality`` "audio" reads
    log-mel features [B, 4T, n_features], "video" mouths [B, T, S, S] in [0, 1]."""

    def __init__(self, modality: str, n_classes: int = 6, n_features: int = 32, width: int = 48) -> None:
        super().__init__()
        if modality not in ("audio", "video"):
            raise ValueError(f"modality must be 'audio' or 'video', got {modality!r}")
        self.modality, self.n_classes = modality, n_classes
        if modality == "audio":
            self.net = nn.Sequential(nn.BatchNorm1d(n_features), nn.Conv1d(n_features, width, 5, padding=2),
                                     nn.ReLU(), nn.Conv1d(width, width, 4, stride=4), nn.ReLU(),
                                     nn.Conv1d(width, width, 3, padding=1), nn.ReLU(), nn.Conv1d(width, n_classes, 1))
        else:
            def block(cin, cout):
                return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU())

            self.net = nn.Sequential(block(1, 16), block(16, 32), block(32, width), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(width, n_classes))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.modality == "audio":
            if x.ndim != 3 or x.shape[1] % 4:
                raise ValueError(f"the audio teacher reads features [B, 4T, F], got {tuple(x.shape)}")
            return self.net(x.transpose(1, 2)).transpose(1, 2)
        if x.ndim != 4:
            raise ValueError(f"the video teacher reads mouths [B, T, S, S], got {tuple(x.shape)}")
        b, t, h, w = x.shape
        return self.net(((x - 0.5) / 0.25).reshape(b * t, 1, h, w)).reshape(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.logits(x), dim=-1)
