"""Encoders and heads for self-supervised handwriting features (arXiv:2405.18320).

``SSLResNet18`` is the ResNet-18 the paper's ResNet-VAE uses for 64 x 64 inputs: a 3x3 stride-1 stem and no
max-pool (so the last stage sees 8 x 8), four stages of two basic blocks, global average pooling -> 8 * width
numbers; module names follow torchvision (conv1, bn1, layer1..layer4). ``SmallCNN`` is a ~61k-parameter
conv-BN-ReLU encoder for a 2-core CPU. ``projector`` / ``predictor`` build the MLP heads of VICReg
(arXiv:2105.04906), Barlow Twins (arXiv:2103.03230), SimCLR (arXiv:2002.05709), MoCo (arXiv:1911.05722),
BYOL (arXiv:2006.07733) and SimSiam (arXiv:2011.10566), with the sizes of arXiv:2405.18320's runs in
``PROJECTOR_DIMS`` / ``PREDICTOR_DIMS``. ``ResNetVAE`` is the generative model (encoder above, fc_mu / fc_var,
an upsampling residual decoder, one learnable global log-scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kit.nn.resnet import ResNet18Features

__all__ = ["SSLResNet18", "SmallCNN", "build_encoder", "projector", "predictor", "PROJECTOR_DIMS",
           "PREDICTOR_DIMS", "ResNetVAE", "ConvVAE"]

# hidden..., output sizes of the heads in arXiv:2405.18320's runs (input = the encoder's out_features)
PROJECTOR_DIMS = {"vicreg": (2048, 2048), "barlow_twins": (2048, 2048), "simclr": (512, 128),
                  "moco": (512, 128), "byol": (1024, 256), "simsiam": (512, 128)}
PREDICTOR_DIMS = {"byol": (1024, 256), "simsiam": (64, 128)}


def _check_images(x: torch.Tensor, in_channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"images must be [B, {in_channels}, H, W], got shape {tuple(x.shape)}")


class SSLResNet18(ResNet18Features):
    """Pooled features [B, 8 * width] of a ResNet-18 with a 3x3 stride-1 stem and no max-pool (for 64 px)."""

    def __init__(self, width: int = 64, in_channels: int = 1) -> None:
        super().__init__(width, in_channels, stem="small")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels)
        return super().forward(x)


class SmallCNN(nn.Module):
    """Pooled features [B, widths[-1]] of conv3x3(stride 2)-BN-ReLU blocks and global average pooling.

    The default (16, 32, 64, 64) has ~61k parameters and takes 64 px down to 4 px: a CPU-sized encoder
    [PROPOSED for a 2-core CPU, not in arXiv:2405.18320].
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 64), in_channels: int = 1) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}")
        self.in_channels = int(in_channels)
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.out_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels)
        return self.features(x).mean(dim=(2, 3))


def build_encoder(name: str, **kw) -> nn.Module:
    """An encoder module with ``.out_features``: ``"resnet18"`` (SSLResNet18) or ``"small"`` (SmallCNN)."""
    encoders = {"resnet18": SSLResNet18, "small": SmallCNN}
    if name not in encoders:
        raise ValueError(f"unknown encoder name {name!r}; expected one of {sorted(encoders)}")
    return encoders[name](**kw)


def projector(in_dim: int, dims: Sequence[int]) -> nn.Sequential:
    """MLP [B, in_dim] -> [B, dims[-1]]: (Linear-BN-ReLU) for each hidden size in dims[:-1], then Linear.

    ``projector(512, PROJECTOR_DIMS["vicreg"])`` is VICReg's Linear(512, 2048)-BN-ReLU-Linear(2048, 2048).
    """
    dims = tuple(int(d) for d in dims)
    if in_dim < 1 or not dims or min(dims) < 1:
        raise ValueError(f"in_dim and dims must be positive, got in_dim={in_dim}, dims={dims}")
    layers: list[nn.Module] = []
    prev = in_dim
    for d in dims[:-1]:
        layers += [nn.Linear(prev, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
        prev = d
    layers.append(nn.Linear(prev, dims[-1]))
    return nn.Sequential(*layers)


def predictor(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """BYOL / SimSiam prediction MLP [B, in_dim] -> [B, out_dim]: Linear-BN-ReLU-Linear."""
    return projector(in_dim, (hidden, out_dim))


class _UpBlock(nn.Module):
    """Feature map [B, out, 2H, 2W]: nearest x2 upsampling, then conv-BN-ReLU-conv-BN + 1x1 skip."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + self.skip(x))


class ResNetVAE(nn.Module):
    """The ResNet-VAE of arXiv:2405.18320: ``forward(x [B, C, size, size]) -> {x_hat, mu, log_var, z}``.

    Encoder ``SSLResNet18(width)`` -> ``fc_mu``, ``fc_var`` [B, latent_dim]; ``z = mu + exp(0.5 log_var)
    eps``; decoder: Linear to (8 width, 4, 4), then log2(size / 4) upsampling residual blocks (channels halve
    down to ``width``), a 3x3 conv to ``in_channels`` and a sigmoid: ``x_hat`` is the Gaussian mean in [0, 1],
    matching the inputs (ink = 1, paper = 0) [PROPOSED: the authors' decoder output is unbounded].
    ``log_scale`` is the likelihood's one global log standard deviation (init 0), a parameter trained with the
    rest.
    """

    def __init__(self, latent_dim: int = 256, width: int = 64, in_channels: int = 1, size: int = 64) -> None:
        super().__init__()
        n_up = math.log2(size / 4) if size >= 8 else 0.0
        if n_up < 1 or n_up != int(n_up):
            raise ValueError(f"size must be 4 * 2^k with k >= 1 (e.g. 32, 64), got {size}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim, self.size, self.in_channels = int(latent_dim), int(size), int(in_channels)
        self.encoder = SSLResNet18(width, in_channels)
        feat = self.encoder.out_features
        self.fc_mu = nn.Linear(feat, latent_dim)
        self.fc_var = nn.Linear(feat, latent_dim)
        self._c0 = 8 * width
        self.fc_dec = nn.Linear(latent_dim, self._c0 * 16)
        blocks, c = [], self._c0
        for _ in range(int(n_up)):
            blocks.append(_UpBlock(c, max(c // 2, width)))
            c = max(c // 2, width)
        self.decoder = nn.Sequential(*blocks)
        self.to_pixels = nn.Conv2d(c, in_channels, 3, 1, 1)
        self.log_scale = nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log_var), each [B, latent_dim], of images [B, C, size, size]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, self.size, self.size):
            raise ValueError(f"images must be [B, {self.in_channels}, {self.size}, {self.size}], "
                             f"got shape {tuple(x.shape)}")
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_var(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood means x_hat [B, C, size, size] in [0, 1] of latents z [B, latent_dim]."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [B, {self.latent_dim}], got shape {tuple(z.shape)}")
        h = self.fc_dec(z).view(z.shape[0], self._c0, 4, 4)
        return torch.sigmoid(self.to_pixels(self.decoder(h)))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mu, log_var = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * log_var) * eps
        return {"x_hat": self.decode(z), "mu": mu, "log_var": log_var, "z": z}


class ConvVAE(ResNetVAE):
    """The ResNet-VAE's model at CPU size [PROPOSED for a 2-core CPU, not in arXiv:2405.18320]: the same Gaussian
    likelihood, global log-scale, fc_mu / fc_var and ``forward`` contract, with the :class:`SmallCNN` encoder and a
    mirrored decoder (Linear to (widths[-1], 4, 4), then x2 upsampling conv-BN-ReLU stages back through the widths,
    a 3x3 conv to ``in_channels`` and a sigmoid)."""

    def __init__(self, latent_dim: int = 32, widths: Sequence[int] = (16, 32, 64, 64), in_channels: int = 1,
                 size: int = 64) -> None:
        nn.Module.__init__(self)
        widths = tuple(int(w) for w in widths)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if size != 4 * 2 ** len(widths):
            raise ValueError(f"size must be 4 * 2^len(widths) = {4 * 2 ** len(widths)} for widths {widths}, "
                             f"got {size}")
        self.latent_dim, self.size, self.in_channels = int(latent_dim), int(size), int(in_channels)
        self.encoder = SmallCNN(widths, in_channels)
        self.fc_mu = nn.Linear(widths[-1], latent_dim)
        self.fc_var = nn.Linear(widths[-1], latent_dim)
        self._c0 = widths[-1]
        self.fc_dec = nn.Linear(latent_dim, self._c0 * 16)
        layers: list[nn.Module] = []
        c = widths[-1]
        for w in reversed(widths):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, w, 3, 1, 1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.decoder = nn.Sequential(*layers)
        self.to_pixels = nn.Conv2d(c, in_channels, 3, 1, 1)
        self.log_scale = nn.Parameter(torch.zeros(()))
