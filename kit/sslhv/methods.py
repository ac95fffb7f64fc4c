"""The self-supervised methods of arXiv:2405.18320 as modules: an encoder, its heads and its loss on two views.

Each :class:`SSLMethod` has ``training_loss(x, step=0, total=1, generator=None) -> dict`` (``"loss"`` plus its terms,
unweighted, for the live curves: VICReg's invariance / variance / covariance, Barlow Twins' on- and off-diagonal
parts, the VAE's KL and reconstruction log-likelihood) on a batch of model inputs [B, 1, H, W] (ink = 1), and
``embed(x) -> [B, D]``, the frozen features a pair head reads (the encoder's pooled output; the VAE's mean ``mu`` or
its encoder output, ``vae_embedding``). The joint-embedding methods see two :class:`HandwritingViews` of each image;
the VAE sees the image itself.

Momentum targets (BYOL, MoCo) are updated at the start of each ``training_loss`` call from the online weights of the
step before, which is the update "after each optimiser step" of arXiv:2006.07733 and arXiv:1911.05722.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from kit.sslhv.encoders import (
    PREDICTOR_DIMS,
    PROJECTOR_DIMS,
    ConvVAE,
    ResNetVAE,
    build_encoder,
    predictor,
    projector,
)
from kit.sslhv.losses import (
    MemoryQueue,
    barlow_twins_loss,
    byol_loss,
    cosine_momentum,
    moco_loss,
    momentum_update,
    nt_xent_loss,
    simsiam_loss,
    vae_loss,
    vicreg_loss,
)
from kit.sslhv.views import HandwritingViews, two_views

METHODS = ("vae", "vicreg", "barlow_twins", "simclr", "byol", "simsiam", "moco")


class SSLMethod(nn.Module):
    """One self-supervised method ``name`` (one of ``METHODS``) on an encoder ("resnet18" or "small").

    ``proj_scale`` shrinks the recipes' projector / predictor widths (1.0: the authors' sizes, e.g. VICReg's
    2048-2048) for CPU runs [PROPOSED]; ``latent_dim`` is the VAE's; ``moco_queue`` and ``moco_momentum`` MoCo's;
    ``byol_base_momentum`` BYOL's starting EMA rate.
    """

    def __init__(self, name: str, encoder: str = "small", width: int = 64, proj_scale: float = 1.0,
                 latent_dim: int = 256, views: HandwritingViews | None = None, temperature: float = 0.5,
                 moco_queue: int = 4096, moco_momentum: float = 0.99, moco_temperature: float = 0.07,
                 byol_base_momentum: float = 0.996, vae_embedding: str = "mu", size: int = 64) -> None:
        super().__init__()
        if name not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {name!r}")
        if not 0 < proj_scale <= 1:
            raise ValueError(f"proj_scale must be in (0, 1], got {proj_scale}")
        if vae_embedding not in ("mu", "encoder"):
            raise ValueError(f"vae_embedding must be 'mu' or 'encoder', got {vae_embedding!r}")
        self.name, self.temperature, self.vae_embedding = name, float(temperature), vae_embedding
        self.views = views or HandwritingViews(size=size)
        scale = lambda dims: tuple(max(8, int(round(d * proj_scale))) for d in dims)  # noqa: E731
        if encoder not in ("resnet18", "small"):
            raise ValueError(f"encoder must be 'resnet18' or 'small', got {encoder!r}")
        if name == "vae":  # the ResNet-VAE of arXiv:2405.18320, or its CPU-sized ConvVAE
            self.vae = ResNetVAE(latent_dim, width, 1, size) if encoder == "resnet18" else ConvVAE(latent_dim, size=size)
            self.encoder = self.vae.encoder
            return
        kw = {"width": width} if encoder == "resnet18" else {}
        self.encoder = build_encoder(encoder, **kw)
        feat = self.encoder.out_features
        self.projector = projector(feat, scale(PROJECTOR_DIMS[name]))
        out = scale(PROJECTOR_DIMS[name])[-1]
        if name in PREDICTOR_DIMS:
            hidden, p_out = scale(PREDICTOR_DIMS[name])
            self.predictor = predictor(out, hidden, p_out)
        if name in ("byol", "moco"):
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
            self.base_momentum = float(byol_base_momentum if name == "byol" else moco_momentum)
        if name == "moco":
            self.queue = MemoryQueue(out, moco_queue, torch.Generator().manual_seed(0))
            self.moco_temperature = float(moco_temperature)

    @property
    def embed_dim(self) -> int:
        """D of ``embed``."""
        if self.name == "vae" and self.vae_embedding == "mu":
            return self.vae.latent_dim
        return self.encoder.out_features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen-evaluation features [B, D] of images [B, 1, H, W] (ink = 1)."""
        if self.name == "vae" and self.vae_embedding == "mu":
            return self.vae.encode(x)[0]
        return self.encoder(x)

    def _targets(self, v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target_projector(self.target_encoder(v))

    def training_loss(self, x: torch.Tensor, step: int = 0, total: int = 1,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """{"loss": scalar, ...terms} of this method on a batch [B, 1, H, W] at ``step`` of ``total``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[0] < 2:
            raise ValueError(f"x must be a batch [B >= 2, 1, H, W], got shape {tuple(x.shape)}")
        if self.name == "vae":
            out = self.vae(x, generator)
            return vae_loss(x, out["x_hat"], out["mu"], out["log_var"], out["z"], self.vae.log_scale)
        v1, v2 = two_views(x, self.views, generator)
        if self.name in ("byol", "moco") and self.training:
            m = cosine_momentum(step, total, self.base_momentum) if self.name == "byol" else self.base_momentum
            momentum_update(self.encoder, self.target_encoder, m)
            momentum_update(self.projector, self.target_projector, m)
        if self.name == "moco":
            q, k = self.projector(self.encoder(v1)), self._targets(v2)
            loss = moco_loss(q, k, self.queue(), self.moco_temperature)
            if self.training:
                self.queue.enqueue(k)
            return {"loss": loss}
        z1, z2 = self.projector(self.encoder(v1)), self.projector(self.encoder(v2))
        if self.name == "vicreg":
            return vicreg_loss(z1, z2)
        if self.name == "barlow_twins":
            return barlow_twins_loss(z1, z2)
        if self.name == "simclr":
            return {"loss": nt_xent_loss(z1, z2, self.temperature)}
        p1, p2 = self.predictor(z1), self.predictor(z2)
        if self.name == "simsiam":
            return {"loss": simsiam_loss(p1, p2, z1, z2)}
        return {"loss": byol_loss(p1, p2, self._targets(v1), self._targets(v2))}  # byol
