"""Building blocks of NL-RAN (arXiv:2408.04300): 3D residual unit, soft-mask attention module, non-local block.

The paper's abstract names three ingredients [P]: a 3D residual backbone, stacked 3D attention modules whose
bottom-up / top-down soft mask mixes spatial and channel attention, and a non-local (self-attention) block that
links distant voxels (e.g. lesions in both lungs). Their exact shapes are not readable, so each block here follows
the paper it comes from [R]:

- :class:`PreActBottleneck3d`: the pre-activation bottleneck residual unit (He et al., "Identity Mappings in Deep
  Residual Networks", arXiv:1603.05027) used throughout the Residual Attention Network (arXiv:1704.06904).
- :class:`AttentionModule3d`: a Residual Attention Network module. A trunk branch T(x) and a soft-mask branch
  M(x) in (0, 1) with T's shape (one weight per voxel and channel, "mixed attention"); output (1 + M) * T
  ("attention residual learning"), so a mask near 0 cannot erase the trunk's features.
- :class:`NonLocalBlock3d`: the embedded-Gaussian non-local block (Wang et al., arXiv:1711.07971),
  z_i = x_i + W_z sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j), whose output norm starts at zero so the
  block is the identity at initialisation.

All tensors are volumes laid out [B, C, D, H, W] (batch, channels, slices, rows, columns).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group", "instance")


def _check_volume(x: torch.Tensor, channels: int, who: str) -> None:
    """Raise ValueError unless ``x`` is a [B, channels, D, H, W] tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{who}: expected a torch.Tensor [B, C, D, H, W], got {type(x).__name__}")
    if x.dim() != 5:
        raise ValueError(f"{who}: expected a 5-D input [B, C, D, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{who}: expected {channels} input channels (dim 1 of [B, C, D, H, W]), "
                         f"got shape {tuple(x.shape)}")


def group_count(channels: int, max_groups: int = 8) -> int:
    """Return the largest number of groups <= min(max_groups, channels) that divides ``channels``."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return a 3D normalisation layer over ``channels`` channels of a [B, C, D, H, W] tensor.

    ``kind``: "batch" (``nn.BatchNorm3d``), "group" (``nn.GroupNorm`` with the largest group count <= min(8, C)
    that divides C) or "instance" (``nn.InstanceNorm3d`` with learnable affine weight and bias). The choice of 8
    groups is [C] our choice. Unknown ``kind`` -> ValueError.
    """
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"make_norm: channels must be a positive int, got {channels!r}")
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"make_norm: unknown norm kind {kind!r}; expected one of {NORMS}")


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class PreActBottleneck3d(nn.Module):
    """3D pre-activation bottleneck residual unit (RU) [R: arXiv:1603.05027, as used in arXiv:1704.06904].

    Residual branch: norm-ReLU-1^3 conv (C/4) -> norm-ReLU-3^3 conv (C/4, stride) -> norm-ReLU-1^3 conv (C), with
    C = ``out_channels``. Shortcut: identity when the shape is kept, otherwise a 1^3 conv with the same stride
    applied to the pre-activated input (norm-ReLU of x), as in the pre-activation ResNet [R].

    Input [B, in_channels, D, H, W] -> output [B, out_channels, ceil(D / stride), ceil(H / stride),
    ceil(W / stride)].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, norm: str = "batch") -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"PreActBottleneck3d: channels must be >= 1, got in={in_channels}, out={out_channels}")
        if stride not in (1, 2):
            raise ValueError(f"PreActBottleneck3d: stride must be 1 or 2, got {stride}")
        mid = max(1, out_channels // 4)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.norm1 = make_norm(norm, in_channels)
        self.conv1 = _conv(in_channels, mid, 1)
        self.norm2 = make_norm(norm, mid)
        self.conv2 = _conv(mid, mid, 3, stride)
        self.norm3 = make_norm(norm, mid)
        self.conv3 = _conv(mid, out_channels, 1)
        self.shortcut = (
            _conv(in_channels, out_channels, 1, stride) if (stride != 1 or in_channels != out_channels) else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, D, H, W] -> [B, C_out, D', H', W']."""
        pre = F.relu(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        h = self.conv1(pre)
        h = self.conv2(F.relu(self.norm2(h)))
        h = self.conv3(F.relu(self.norm3(h)))
        return h + skip


def _units(channels: int, n: int, norm: str) -> nn.Sequential:
    """``n`` shape-keeping residual units (an empty Sequential, i.e. the identity, for n = 0)."""
    return nn.Sequential(*[PreActBottleneck3d(channels, channels, 1, norm) for _ in range(n)])


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool3d(x, kernel_size=3, stride=2, padding=1)


class AttentionModule3d(nn.Module):
    """3D Residual Attention Network module [R: arXiv:1704.06904] with hyper-parameters p, t, r.

    - ``p`` RUs on the input; trunk T = ``t`` RUs.
    - Soft-mask branch M: ``mask_depth`` times {max-pool (3, stride 2, pad 1), then ``r`` RUs} (bottom-up); then
      back up (top-down): at each coarser scale that has a bottom-up feature f_s, trilinear upsampling to f_s's
      size plus a skip RU of f_s, followed by ``r`` RUs; a last trilinear upsampling to the input size; then
      norm-ReLU-1^3 conv, norm-ReLU-1^3 conv, sigmoid. The skip RUs at every matching scale and the r RUs after
      each merge follow the paper's description [R]; nothing is added at full resolution (the original code's
      trunk addition there is not described in the paper) [C] our choice.
    - out = ``p`` RUs of (1 + M) * T.

    The channel count is kept: input [B, C, D, H, W] -> output [B, C, D, H, W]; M has the trunk's shape
    [B, C, D, H, W] with values in (0, 1). Each spatial size must be >= 2 ** mask_depth (checked at forward), so
    the coarsest mask level still has >= 1 voxel per pooled step rather than collapsing.
    The last mask is kept in ``self.last_mask`` (not detached; None before the first forward).
    """

    def __init__(self, channels: int, mask_depth: int, p: int = 1, t: int = 2, r: int = 1, norm: str = "batch"
                 ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"AttentionModule3d: channels must be >= 1, got {channels}")
        if not isinstance(mask_depth, int) or mask_depth < 1:
            raise ValueError(f"AttentionModule3d: mask_depth must be an int >= 1, got {mask_depth!r}")
        if p < 0 or t < 1 or r < 1:
            raise ValueError(f"AttentionModule3d: need p >= 0, t >= 1, r >= 1, got p={p}, t={t}, r={r}")
        make_norm(norm, channels)  # validates ``norm`` with a clear message before building anything
        self.channels, self.mask_depth = channels, mask_depth
        self.pre = _units(channels, p, norm)
        self.trunk = _units(channels, t, norm)
        self.down = nn.ModuleList([_units(channels, r, norm) for _ in range(mask_depth)])
        # skip[s] and up[s] act at the scale of the s-th bottom-up feature (s = 0 is the finest pooled scale)
        self.skips = nn.ModuleList([PreActBottleneck3d(channels, channels, 1, norm) for _ in range(mask_depth - 1)])
        self.up = nn.ModuleList([_units(channels, r, norm) for _ in range(mask_depth - 1)])
        self.mask_head = nn.Sequential(
            make_norm(norm, channels), nn.ReLU(), nn.Conv3d(channels, channels, 1, bias=False),
            make_norm(norm, channels), nn.ReLU(), nn.Conv3d(channels, channels, 1),
        )
        self.post = _units(channels, p, norm)
        self.last_mask: torch.Tensor | None = None

    def _soft_mask(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        h = x
        for level in self.down:
            h = level(_pool(h))
            feats.append(h)
        for s in range(self.mask_depth - 2, -1, -1):  # coarse -> fine, merging with the bottom-up features
            h = F.interpolate(h, size=feats[s].shape[2:], mode="trilinear", align_corners=False)
            h = self.up[s](h + self.skips[s](feats[s]))
        h = F.interpolate(h, size=x.shape[2:], mode="trilinear", align_corners=False)
        return torch.sigmoid(self.mask_head(h))

    def forward_with_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, D, H, W] -> (out [B, C, D, H, W], M [B, C, D, H, W] in (0, 1))."""
        _check_volume(x, self.channels, "AttentionModule3d")
        need = 2 ** self.mask_depth
        if min(x.shape[2:]) < need:
            raise ValueError(
                f"AttentionModule3d: mask_depth={self.mask_depth} needs every spatial size >= {need} "
                f"(2 ** mask_depth), got [D, H, W] = {list(x.shape[2:])}; use a larger input or a smaller mask_depth"
            )
        x = self.pre(x)
        trunk = self.trunk(x)
        mask = self._soft_mask(x)
        self.last_mask = mask
        return self.post((1 + mask) * trunk), mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, D, H, W] -> out [B, C, D, H, W] (the mask is kept in ``self.last_mask``)."""
        return self.forward_with_mask(x)[0]


class NonLocalBlock3d(nn.Module):
    """Embedded-Gaussian non-local block [R: arXiv:1711.07971] for [B, C, D, H, W] volumes.

    theta, phi, g: 1^3 convs C -> C_i (default C_i = C // 2; phi without bias, since theta_i . b is the same for
    every j and cancels in the softmax). With N = D*H*W query positions and N_kv key
    positions (N_kv = N, or the positions after a 2x max-pool of phi and g when ``sub_sample``),
    A = softmax_j(theta_i . phi_j) [B, N, N_kv] with NO 1/sqrt(C_i) scaling (f = exp(theta^T phi) [R]),
    y = A g [B, N, C_i], z = x + norm(W_z y) where W_z is a 1^3 conv C_i -> C and the norm's weight and bias start
    at zero, so the block is exactly the identity at initialisation [R].

    The attention runs through ``torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)`` (fused,
    no N x N matrix kept where the backend allows); ``forward(x, return_attention=True)`` computes A explicitly
    and returns it too, for visualisation.
    """

    def __init__(self, channels: int, inter_channels: int | None = None, sub_sample: bool = False,
                 norm: str = "batch") -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"NonLocalBlock3d: channels must be >= 1, got {channels}")
        inter = max(1, channels // 2) if inter_channels is None else inter_channels
        if inter < 1:
            raise ValueError(f"NonLocalBlock3d: inter_channels must be >= 1, got {inter_channels}")
        self.channels, self.inter_channels, self.sub_sample = channels, inter, bool(sub_sample)
        self.theta = nn.Conv3d(channels, inter, 1)
        self.phi = nn.Conv3d(channels, inter, 1, bias=False)  # a bias in phi cancels in the softmax over j
        self.g = nn.Conv3d(channels, inter, 1)
        self.w_z = nn.Conv3d(inter, channels, 1)
        self.norm = make_norm(norm, channels)
        nn.init.zeros_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, C, D, H, W] -> (q [B, N, C_i], k [B, N_kv, C_i], v [B, N_kv, C_i]), positions in (D, H, W) order."""
        _check_volume(x, self.channels, "NonLocalBlock3d")
        if self.sub_sample and min(x.shape[2:]) < 2:
            raise ValueError(f"NonLocalBlock3d: sub_sample=True needs every spatial size >= 2, "
                             f"got [D, H, W] = {list(x.shape[2:])}")
        q = self.theta(x).flatten(2).transpose(1, 2)
        k, v = self.phi(x), self.g(x)
        if self.sub_sample:
            k, v = F.max_pool3d(k, 2), F.max_pool3d(v, 2)
        return q, k.flatten(2).transpose(1, 2), v.flatten(2).transpose(1, 2)

    def _output(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y [B, N, C_i] -> z = x + norm(W_z y) [B, C, D, H, W]."""
        y = y.transpose(1, 2).reshape(x.shape[0], self.inter_channels, *x.shape[2:])
        return x + self.norm(self.w_z(y))

    def forward(self, x: torch.Tensor, return_attention: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, D, H, W] -> z [B, C, D, H, W]; with ``return_attention`` (z, A [B, N, N_kv], rows sum to 1)."""
        q, k, v = self.embed(x)
        if return_attention:
            attn = torch.softmax(q @ k.transpose(1, 2), dim=-1)
            return self._output(x, attn @ v), attn
        y = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=1.0).squeeze(1)
        return self._output(x, y)


def nonlocal_attention_reference(x: torch.Tensor, block: NonLocalBlock3d) -> torch.Tensor:
    """Explicit embedded-Gaussian non-local output of ``block`` on x [B, C, D, H, W] -> z [B, C, D, H, W].

    Written independently of the fused path with einsum: A[b, i, j] = softmax_j(sum_c theta[b, c, i] phi[b, c, j]),
    y[b, c, i] = sum_j A[b, i, j] g[b, c, j], z = x + norm(W_z y). Materialises the N x N_kv matrix; used by the
    tests and ``benchmarks/nlran.py`` as the reference for the ``scaled_dot_product_attention`` path.
    """
    _check_volume(x, block.channels, "nonlocal_attention_reference")
    b, _, d, h, w = x.shape
    theta = block.theta(x).reshape(b, block.inter_channels, -1)
    phi, g = block.phi(x), block.g(x)
    if block.sub_sample:
        phi, g = F.max_pool3d(phi, kernel_size=2, stride=2), F.max_pool3d(g, kernel_size=2, stride=2)
    phi = phi.reshape(b, block.inter_channels, -1)
    g = g.reshape(b, block.inter_channels, -1)
    logits = torch.einsum("bci,bcj->bij", theta, phi)
    attn = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
    attn = attn / attn.sum(dim=-1, keepdim=True)
    y = torch.einsum("bij,bcj->bci", attn, g).reshape(b, block.inter_channels, d, h, w)
    return x + block.norm(block.w_z(y))
