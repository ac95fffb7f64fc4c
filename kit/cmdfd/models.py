"""The CMDFD student (arXiv:2404.19171): TalkNet's audio and visual encoders, cross-attention both ways, one
self-attention layer and a per-frame real / fake head.

``TalkNetStudent("full")`` follows the authors' TalkNet as their code builds it:

- visual: grey face crops, normalised (x - 0.4161) / 0.1688, each frame through Conv3d(1, 64, (5, 7, 7), stride
  (1, 2, 2)) + BN + ReLU + MaxPool(1, 3, 3) and an 18-layer lip-reading ResNet (two residual units per stage, BN-ReLU
  after each sum) to 512-d; then the V-TCN (5 residual depthwise-separable Conv1d blocks: ReLU, BN, depthwise k3,
  PReLU, global layer norm, pointwise) and Conv1d 512 -> 256 (k5) + BN + ReLU -> 128 (k1);
- audio: 13 MFCCs at 100 Hz as a [1, 13, 4T] image through a squeeze-excitation ResNet (blocks [3, 4, 6, 3],
  widths [16, 32, 64, 128], a 7 x 7 stem of stride (2, 1), stages of stride 1, 2, 2, 1), averaged over frequency:
  128-d at 25 Hz;
- fusion: audio attends to video and video to audio (d 128, 8 heads; the query comes from the other stream, the
  residual and FFN x4 + LayerNorm stay on the stream's own), concatenated (256), one self-attention layer (8 heads),
  Linear(256, 2) per frame.

``TalkNetStudent("tiny")`` keeps that shape at CPU size [PROPOSED]: a Conv1d audio encoder on 32 log-mel bands
(4 frames pooled to 1), a per-frame 4-layer CNN on 32 x 32 mouths and a k3 temporal conv, d = 64, 4 heads.
``forward`` returns the per-frame logits and the *post-cross-attention* audio and visual embeddings a_t, v_t that
the correlation distillation compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["ARCHS", "StudentOutput", "TalkNetStudent", "CrossAttention", "GlobalLayerNorm"]

ARCHS = ("tiny", "full")
_LIP_MEAN, _LIP_STD = 0.4161, 0.1688


@dataclass
class StudentOutput:
    logits: torch.Tensor  # [B, T, 2]
    a: torch.Tensor  # [B, T, d] audio after cross-attention
    v: torch.Tensor  # [B, T, d] video after cross-attention


class CrossAttention(nn.Module):
    """``forward(src, tar)``: src + attention(query = tar, key = value = src), LayerNorm, then src + FFN(x4), LayerNorm
    (the TalkNet attention layer; ``src is tar`` makes it self-attention). Shapes [B, T, d]."""

    def __init__(self, d: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
        x = self.norm1(src + self.drop1(self.attn(tar, src, src, need_weights=False)[0]))
        return self.norm2(x + self.drop2(self.ffn(x)))


class GlobalLayerNorm(nn.Module):
    """Normalise [B, C, T] over channels and time together, then a per-channel scale and shift."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        mean = y.mean(dim=(1, 2), keepdim=True)
        var = ((y - mean) ** 2).mean(dim=(1, 2), keepdim=True)
        return self.gamma * (y - mean) / torch.sqrt(var + 1e-8) + self.beta


# ---- full: visual ----
class _LipStage(nn.Module):
    """Two residual units: (conv-BN-ReLU-conv) + skip, then BN-ReLU; the first may stride and widen."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()

        def bn(c):
            return nn.BatchNorm2d(c, momentum=0.01, eps=1e-3)

        self.a = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout), nn.ReLU(),
                               nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
        self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else nn.Identity()
        self.out_a = nn.Sequential(bn(cout), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout), nn.ReLU(),
                               nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
        self.out_b = nn.Sequential(bn(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.out_a(self.a(x) + self.skip(x))
        return self.out_b(self.b(x) + x)


class _VisualFull(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, 64, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
                                  nn.BatchNorm3d(64, momentum=0.01, eps=1e-3), nn.ReLU(),
                                  nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.resnet = nn.Sequential(_LipStage(64, 64, 1), _LipStage(64, 128, 2), _LipStage(128, 256, 2),
                                    _LipStage(256, 512, 2), nn.AdaptiveAvgPool2d(1))
        self.tcn = nn.ModuleList([self._ds() for _ in range(5)])
        self.proj = nn.Sequential(nn.Conv1d(512, 256, 5, padding=2), nn.BatchNorm1d(256), nn.ReLU(),
                                  nn.Conv1d(256, 128, 1))

    @staticmethod
    def _ds() -> nn.Sequential:
        return nn.Sequential(nn.ReLU(), nn.BatchNorm1d(512), nn.Conv1d(512, 512, 3, padding=1, groups=512, bias=False),
                             nn.PReLU(), GlobalLayerNorm(512), nn.Conv1d(512, 512, 1, bias=False))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t, h, w = video.shape
        x = ((video - _LIP_MEAN) / _LIP_STD).reshape(b * t, 1, 1, h, w)  # each frame on its own, as TalkNet
        x = self.stem(x).squeeze(2)
        x = self.resnet(x).reshape(b, t, 512).transpose(1, 2)
        for block in self.tcn:
            x = x + block(x)
        return self.proj(x).transpose(1, 2)


# ---- full: audio ----
class _SEBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride=1, reduction: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = nn.Sequential(nn.Linear(cout, cout // reduction), nn.ReLU(), nn.Linear(cout // reduction, cout),
                                nn.Sigmoid())
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if (stride != 1 or cin != cout) else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(torch.relu(self.conv1(x)))  # ReLU before BN, as the TalkNet audio encoder has it
        out = self.bn2(self.conv2(out))
        out = out * self.se(out.mean(dim=(2, 3)))[:, :, None, None]
        return torch.relu(out + self.down(x))


class _AudioFull(nn.Module):
    def __init__(self, layers=(3, 4, 6, 3), widths=(16, 32, 64, 128)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 7, (2, 1), 3, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        blocks, cin = [], widths[0]
        for n, cout, stride in zip(layers, widths, (1, (2, 2), (2, 2), 1)):
            for k in range(n):
                blocks.append(_SEBlock(cin, cout, stride if k == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, 4T, F] -> [B, T, 128]
        x = self.blocks(self.stem(feats.transpose(1, 2).unsqueeze(1)))
        return x.mean(dim=2).transpose(1, 2)


# ---- tiny ----
class _VisualTiny(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU())

        self.cnn = nn.Sequential(block(1, 16), block(16, 32), block(32, 48), block(48, d), nn.AdaptiveAvgPool2d(1))
        self.temporal = nn.Sequential(nn.Conv1d(d, d, 3, padding=1), nn.BatchNorm1d(d), nn.ReLU(), nn.Conv1d(d, d, 1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t, h, w = video.shape
        x = self.cnn(((video - 0.5) / 0.25).reshape(b * t, 1, h, w)).reshape(b, t, -1).transpose(1, 2)
        return self.temporal(x).transpose(1, 2)


class _AudioTiny(nn.Module):
    def __init__(self, n_features: int, d: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_features)
        self.net = nn.Sequential(nn.Conv1d(n_features, d, 5, padding=2), nn.BatchNorm1d(d), nn.ReLU(),
                                 nn.Conv1d(d, d, 4, stride=4), nn.BatchNorm1d(d), nn.ReLU(),
                                 nn.Conv1d(d, d, 3, padding=1), nn.BatchNorm1d(d), nn.ReLU(), nn.Conv1d(d, d, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, 4T, F] -> [B, T, d]
        return self.net(self.norm(feats.transpose(1, 2))).transpose(1, 2)


class TalkNetStudent(nn.Module):
    """``forward(feats [B, 4T, F], video [B, T, S, S] in [0, 1]) -> StudentOutput``; ``arch`` "full" (F = 13 MFCCs,
    S = 112) or "tiny" (F = ``n_features`` log-mel bands, any S); see the module docstring."""

    def __init__(self, arch: str = "tiny", n_features: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.arch = arch
        if arch == "full":
            d, heads = 128, 8
            self.audio, self.visual = _AudioFull(), _VisualFull()
            self.n_features = 13 if n_features is None else n_features
        else:
            d, heads = 64, 4
            self.n_features = 32 if n_features is None else n_features
            self.audio, self.visual = _AudioTiny(self.n_features, d), _VisualTiny(d)
        self.d = d
        self.cross_a2v = CrossAttention(d, heads, dropout)  # audio stream, queried by video
        self.cross_v2a = CrossAttention(d, heads, dropout)  # video stream, queried by audio
        self.self_av = CrossAttention(2 * d, heads, dropout)
        self.head = nn.Linear(2 * d, 2)

    def encode(self, feats: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, v) [B, T, d] before cross-attention."""
        if feats.ndim != 3 or feats.shape[-1] != self.n_features:
            raise ValueError(f"audio features must be [B, 4T, {self.n_features}], got {tuple(feats.shape)}")
        if video.ndim != 4:
            raise ValueError(f"video must be [B, T, S, S] grey frames, got {tuple(video.shape)}")
        if feats.shape[0] != video.shape[0] or feats.shape[1] != 4 * video.shape[1]:
            raise ValueError(f"audio features {tuple(feats.shape)} must have 4 frames per video frame of "
                             f"{tuple(video.shape)}")
        return self.audio(feats), self.visual(video)

    def forward(self, feats: torch.Tensor, video: torch.Tensor) -> StudentOutput:
        a, v = self.encode(feats, video)
        a_c, v_c = self.cross_a2v(a, v), self.cross_v2a(v, a)
        x = torch.cat([a_c, v_c], dim=-1)
        return StudentOutput(self.head(self.self_av(x, x)), a_c, v_c)
