"""The Siamese ResNet-18 verifier of arXiv:2407.21788 (its supervised baseline) and its pair scoring.

Two handwriting images go through one shared ResNet-18 trunk (the classifier removed: a pooled embedding), a
linear projection to 64 numbers each, then the element-wise distance ``|e1 - e2|`` (the authors' code takes the
signed difference ``e1 - e2``; the absolute value makes the score symmetric in the two images [PROPOSED]) through
ReLU -> Linear(64, 32) -> ReLU -> Linear(32, 2): raw logits for cross-entropy, class 1 = same writer. Inputs are one
channel, inverted so that ink = 1 and paper = 0, at 64 x 64.

``width`` is the trunk's first stage (64 in ResNet-18; stages are width, 2 width, 4 width, 8 width). The committed
CPU model uses a narrower ResNet-18 [PROPOSED for a 2-core CPU], the same layers and blocks at a quarter of the
channels; ``width=64`` is torchvision's ResNet-18 exactly (module names included), so ImageNet weights load into
it (``load_imagenet_trunk``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kit.nn.resnet import ResNet18Features
from kit.verification.pairs import to_input


class ResNet18Trunk(ResNet18Features):
    """Pooled features [B, 8 * width] of a ResNet-18 with torchvision's stem (7x7/2 + max-pool), 4 stages of 2 basic
    blocks; ``width=64`` with 3 channels is torchvision's ``resnet18`` without its classifier."""

    def __init__(self, width: int = 64, in_channels: int = 1) -> None:
        if width < 4:
            raise ValueError(f"width must be >= 4, got {width}")
        super().__init__(width, in_channels, stem="imagenet")


class SiameseVerifier(nn.Module):
    """Same-writer logits [B, 2] of two image batches [B, 1, H, W] (ink = 1): the ResNet-18 Siamese baseline."""

    def __init__(self, width: int = 64, embed_dim: int = 64, hidden: int = 32, signed_difference: bool = False
                 ) -> None:
        super().__init__()
        self.width, self.signed_difference = int(width), bool(signed_difference)
        self.trunk = ResNet18Trunk(width)
        self.project = nn.Linear(self.trunk.out_features, embed_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, embed_dim] of images [B, 1, H, W]."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"images must be [B, 1, H, W] (one channel, ink = 1), got {tuple(x.shape)}")
        return self.project(self.trunk(x))

    def compare(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Logits [B, 2] of embedding pairs [B, D]; class 1 = same writer."""
        d = e1 - e2 if self.signed_difference else (e1 - e2).abs()
        return self.head(d)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"the two image batches must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        e = self.embed(torch.cat([a, b]))  # one pass: batch-norm statistics see both sides alike
        return self.compare(*e.chunk(2))


def load_imagenet_trunk(model: SiameseVerifier) -> SiameseVerifier:
    """Return ``model`` with torchvision's ImageNet ResNet-18 weights in its trunk (a download; ``width=64`` only).

    The first convolution's RGB filters are summed into one grey channel and negated (our inputs are inverted).
    """
    if model.width != 64:
        raise ValueError(f"ImageNet weights need width=64 (torchvision's ResNet-18), got width={model.width}")
    from torchvision.models import ResNet18_Weights, resnet18

    state = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    state["conv1.weight"] = -state["conv1.weight"].sum(1, keepdim=True)
    model.trunk.load_state_dict(state)
    return model


@torch.no_grad()
def pair_logits(model: SiameseVerifier, images: torch.Tensor, pairs: np.ndarray, batch_size: int = 512
                ) -> torch.Tensor:
    """Logits [P, 2] of index pairs ``pairs`` [P, >=2] into ``images`` [N, 1, H, W]: each image embedded once."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    emb = torch.cat([model.embed(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)])
    p = torch.as_tensor(np.asarray(pairs)[:, :2], device=device, dtype=torch.long)
    logits = torch.cat([model.compare(emb[p[k:k + 4096, 0]], emb[p[k:k + 4096, 1]])
                        for k in range(0, len(p), 4096)]) if len(p) else torch.zeros(0, 2, device=device)
    model.train(was_training)
    return logits.cpu()


@torch.no_grad()
def same_writer_probability(model: SiameseVerifier, a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """P(same writer) of two uint8 images (any size; or two batches [N, H, W]: an array [N] then)."""
    single = np.ndim(a) == 2 or (np.ndim(a) == 3 and np.shape(a)[-1] in (3, 4))
    xa, xb = to_input(a), to_input(b)
    if len(xa) != len(xb):
        raise ValueError(f"a and b must hold as many images, got {len(xa)} and {len(xb)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    p = torch.softmax(model(xa.to(device), xb.to(device)), 1)[:, 1].cpu().numpy()
    model.train(was_training)
    return float(p[0]) if single else p
