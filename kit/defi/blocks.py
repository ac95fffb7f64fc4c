"""The three heads of DeFI-Net (arXiv:2408.02191): DFPL, REAM and SAFF, and the forensic input filters.

- :class:`DFPL` (dense feature pyramid learning): every level trades features with its neighbours top-down, then
  bottom-up, then with the raw backbone feature again.
- :class:`REAM` (reverse edge attention): low-level features, steered away from what the mid level already sees,
  predict the boundary of the inpainted region.
- :class:`SAFF` (spatial adaptive feature fusion): a per-pixel learnt mix of the high-level map and the low/mid map.

Layer by layer as the authors' code builds them, with one change that does not alter the weights: resampling goes
to the neighbour's actual size instead of a fixed factor of 2, so odd-sized levels line up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def down(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` max-pooled by 2 (3x3, stride 2, padding 1) [B, C, ceil(H/2), ceil(W/2)]."""
    return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Return ``x`` bilinearly resized to the spatial size of ``ref`` [B, C, H_ref, W_ref]."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def cbs(channels: int) -> nn.Sequential:
    """Return conv3x3 + BatchNorm + Swish (SiLU) at ``channels``: the block after every DFPL mix."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.SiLU())


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


class DFPL(nn.Module):
    """Dense feature pyramid learning over four levels (scales 1, 1/2, 1/4, 1/8) -> four maps of ``channels``.

    With r_k the 1x1-reduced backbone features, the top-down pass mixes (down r_{k-1}, r_k, up r_{k+1}, up t_{k+1})
    where t_{k+1} is the level above's mix *before* its conv block; the bottom-up pass mixes
    (down b_{k-1}, down T_{k-1}, T_k, up T_{k+1}); finally F_k = cbs(conv1x1([x_k, B_k])) re-injects the raw feature.
    """

    def __init__(self, in_channels: tuple[int, int, int, int] | list[int], channels: int = 64):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"DFPL needs four input widths, got {in_channels}")
        c = channels
        self.reduce = nn.ModuleList(conv1x1(ci, c) for ci in in_channels)
        # top-down mixes, by level 1..4 (inputs: level 1 three, levels 2-3 four, level 4 two)
        self.td_mix = nn.ModuleList([conv1x1(3 * c, c), conv1x1(4 * c, c), conv1x1(4 * c, c), conv1x1(2 * c, c)])
        self.td_block = nn.ModuleList(cbs(c) for _ in range(4))
        # bottom-up mixes (level 1 two inputs, levels 2-3 four, level 4 three)
        self.bu_mix = nn.ModuleList([conv1x1(2 * c, c), conv1x1(4 * c, c), conv1x1(4 * c, c), conv1x1(3 * c, c)])
        self.bu_block = nn.ModuleList(cbs(c) for _ in range(4))
        self.out = nn.ModuleList(nn.Sequential(conv1x1(ci + c, c), cbs(c)) for ci in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x1, x2, x3, x4 = feats
        r1, r2, r3, r4 = (f(x) for f, x in zip(self.reduce, feats))
        # top-down, from the coarsest level
        t4 = self.td_mix[3](torch.cat([down(r3), r4], 1))
        t3 = self.td_mix[2](torch.cat([down(r2), r3, up_to(r4, r3), up_to(t4, r3)], 1))
        t2 = self.td_mix[1](torch.cat([down(r1), r2, up_to(r3, r2), up_to(t3, r2)], 1))
        t1 = self.td_mix[0](torch.cat([r1, up_to(r2, r1), up_to(t2, r1)], 1))
        T1, T2, T3, T4 = (blk(t) for blk, t in zip(self.td_block, (t1, t2, t3, t4)))
        # bottom-up, from the finest level
        b1 = self.bu_mix[0](torch.cat([T1, up_to(T2, T1)], 1))
        b2 = self.bu_mix[1](torch.cat([down(b1), down(T1), T2, up_to(T3, T2)], 1))
        b3 = self.bu_mix[2](torch.cat([down(b2), down(T2), T3, up_to(T4, T3)], 1))
        b4 = self.bu_mix[3](torch.cat([down(b3), down(T3), T4], 1))
        B = [blk(b) for blk, b in zip(self.bu_block, (b1, b2, b3, b4))]
        return [o(torch.cat([x, b], 1)) for o, x, b in zip(self.out, (x1, x2, x3, x4), B)]


def _conv_bn(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))


class REAM(nn.Module):
    """Reverse edge attention: returns (f, edge logits [B, 1, H1, W1], reverse map r [B, 1, H1, W1]).

    f = ReLU(up(BN conv3 f') + BN conv3 F1) with f' = ReLU(up(BN conv3 F3) + BN conv3 F2) fuses mid and low levels
    at full resolution. s = sigmoid(conv7x7([mean_c F3, max_c F3])) marks where the mid level fires; r = 1 - s
    steers the edge head to the rest. The edge head sees f * r; SAFF receives f itself (as in the authors' code).
    """

    def __init__(self, channels: int = 64):
        super().__init__()
        c = channels
        self.mid, self.low2, self.low1, self.fuse = _conv_bn(c), _conv_bn(c), _conv_bn(c), _conv_bn(c)
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.edge_head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 1, 1))

    def forward(self, low1: torch.Tensor, low2: torch.Tensor, mid: torch.Tensor):
        f = F.relu(up_to(self.mid(mid), low2) + self.low2(low2))
        f = F.relu(up_to(self.fuse(f), low1) + self.low1(low1))
        stats = torch.cat([mid.mean(1, keepdim=True), mid.amax(1, keepdim=True)], 1)
        reverse = up_to(1 - torch.sigmoid(self.spatial(stats)), low1)
        return f, self.edge_head(f * reverse), reverse


class SAFF(nn.Module):
    """Spatial adaptive feature fusion (K = 2 maps, L = 2 sources): returns (mask logits, weights w [B, 2, 2, H, W]).

    a = BN conv1x1(f -> 2) from the low/mid fusion, h = up8(BN conv1x1(F4 -> 2)) from the high level, and per-pixel
    weights w = LAL(up8(BN conv1x1(F4 -> 4))); g_k = w_k0 h_k + w_k1 a_k; logits = conv1x1(g -> 1). ``up8`` is the
    authors' transposed convolution (kernel 16, stride 8, padding 4): an exact x8 when H is a multiple of 8.
    """

    def __init__(self, channels: int = 64, n_maps: int = 2, n_sources: int = 2):
        super().__init__()
        k, kl = n_maps, n_maps * n_sources
        self.k = k
        self.low_mid = nn.Sequential(nn.Conv2d(channels, k, 1), nn.BatchNorm2d(k))
        self.high = nn.Sequential(nn.Conv2d(channels, k, 1), nn.BatchNorm2d(k),
                                  nn.ConvTranspose2d(k, k, 16, stride=8, padding=4, bias=False))
        self.high_prior = nn.Sequential(nn.Conv2d(channels, kl, 1), nn.BatchNorm2d(kl),
                                        nn.ConvTranspose2d(kl, kl, 16, stride=8, padding=4, bias=False))
        self.lal = nn.Sequential(nn.Conv2d(kl, kl, 1), nn.BatchNorm2d(kl), nn.ReLU(),
                                 nn.Conv2d(kl, kl, 1), nn.BatchNorm2d(kl), nn.ReLU(),
                                 nn.Conv2d(kl, kl, 1), nn.BatchNorm2d(kl))
        self.head = nn.Conv2d(k, 1, 1)

    def forward(self, low_mid: torch.Tensor, high: torch.Tensor):
        b = high.shape[0]
        a = self.low_mid(low_mid)
        h = up_to(self.high(high), a)
        w = up_to(self.lal(self.high_prior(high)), a)
        w = w.view(b, self.k, -1, *a.shape[-2:])
        pairs = torch.stack([h, a], 2)  # [B, K, 2 sources (high, low/mid), H, W]
        return self.head((w * pairs).sum(2)), w


# ---- forensic input filters: residual channels concatenated to the RGB input [C] ----

def _srm_kernels() -> torch.Tensor:
    """Return the three classic SRM residual kernels (Fridrich & Kodovsky 2012) as [3, 1, 5, 5] float32."""
    k1 = torch.tensor([[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],
                      dtype=torch.float32) / 4
    k2 = torch.tensor([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2],
                       [-1, 2, -2, 2, -1]], dtype=torch.float32) / 12
    k3 = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
                      dtype=torch.float32) / 2
    return torch.stack([k1, k2, k3])[:, None]


class FixedResidual(nn.Module):
    """A fixed high-pass filter bank on the luminance: returns [B, K, H, W] residuals (SRM or a 3x3 Laplacian)."""

    def __init__(self, kind: str = "srm", gain: float = 10.0):
        super().__init__()
        if kind == "srm":
            k = _srm_kernels()
        elif kind == "highpass":
            k = torch.zeros(1, 1, 5, 5)
            k[0, 0, 1:4, 1:4] = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])
        else:
            raise ValueError(f"kind must be 'srm' or 'highpass', got {kind!r}")
        self.register_buffer("kernels", k, persistent=False)
        self.gain = float(gain)  # residuals of [0, 1] images are tiny; scale them to unit-ish range

    @property
    def out_channels(self) -> int:
        return int(self.kernels.shape[0])

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        grey = (0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
        return self.gain * F.conv2d(F.pad(grey, (2, 2, 2, 2), mode="reflect"), self.kernels)


class BayarConv(nn.Module):
    """A constrained convolution (Bayar & Stamm 2018): each kernel's centre is -1 and its other taps sum to 1.

    The constraint is imposed in the forward pass (a reparameterisation), so any optimiser keeps it.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, kernel_size: int = 5):
        super().__init__()
        self.k = kernel_size
        self.weight = nn.Parameter(torch.rand(out_channels, in_channels, kernel_size * kernel_size) * 0.1)
        self.out_channels = out_channels

    def constrained_weight(self) -> torch.Tensor:
        """Return the constrained kernels [out, in, k, k] (centre -1, off-centre taps summing to 1 per kernel)."""
        centre = self.k * self.k // 2
        w = self.weight.clone()
        w[:, :, centre] = 0
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-8)
        w[:, :, centre] = -1
        return w.view(*w.shape[:2], self.k, self.k)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        p = self.k // 2
        return F.conv2d(F.pad(rgb, (p, p, p, p), mode="reflect"), self.constrained_weight())


INPUT_FILTERS = ("none", "srm", "highpass", "bayar")


class ForensicInput(nn.Module):
    """Returns the network input [B, 3 + K, H, W]: the normalised RGB image plus K residual channels.

    ``kind`` "none" passes RGB alone; "srm" adds three SRM residuals, "highpass" a Laplacian residual, "bayar" three
    learnt constrained-conv residuals. Residual inputs are a labelled deviation from arXiv:2408.02191 (common in
    inpainting forensics).
    """

    def __init__(self, kind: str = "none", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        if kind not in INPUT_FILTERS:
            raise ValueError(f"input_filter must be one of {INPUT_FILTERS}, got {kind!r}")
        self.kind = kind
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if kind in ("srm", "highpass"):
            self.residual = FixedResidual(kind)
        elif kind == "bayar":
            self.residual = BayarConv(3, 3, 5)
        else:
            self.residual = None

    @property
    def out_channels(self) -> int:
        return 3 + (self.residual.out_channels if self.residual is not None else 0)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = (rgb - self.mean) / self.std
        if self.residual is None:
            return x
        return torch.cat([x, self.residual(rgb)], 1)
