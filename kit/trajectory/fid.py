"""FID (Fréchet Inception distance) for the full preset's image samples, through torchmetrics, never downloaded.

The paper ranks schedules by FID (arXiv:2405.11326, Tables 1-3). torchmetrics' ``FrechetInceptionDistance`` uses
torch-fidelity's Inception v3, whose weights torch-fidelity fetches with ``torch.hub.load_state_dict_from_url`` into
``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``. Here they are only *looked for*
(``KIT_FID_WEIGHTS`` names another file) and handed to torchmetrics as a local path: when they or torch-fidelity are
absent, :func:`inception_features` says why and the evaluation keeps the sliced Wasserstein distance instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

Tensor = torch.Tensor
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's file name (its v0.2.0 release)


def inception_weights_path() -> Path:
    """Return where the Inception weights are looked for: ``$KIT_FID_WEIGHTS``, else torch-fidelity's hub cache file."""
    env = os.environ.get("KIT_FID_WEIGHTS")
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def inception_features() -> tuple[torch.nn.Module | None, str | None]:
    """Return (torchmetrics' Inception v3 pool features [N, 2048] of uint8 images, None), or (None, the reason) when
    torch-fidelity or its weights are not on this machine (nothing is downloaded)."""
    try:
        import torch_fidelity  # noqa: F401  (torchmetrics' Inception comes from it)
    except ImportError:
        return None, "torch-fidelity is not installed (pip install -e '.[metrics]'), so torchmetrics has no Inception"
    path = inception_weights_path()
    if not path.is_file():
        return None, (f"the Inception weights are not at {path} (set KIT_FID_WEIGHTS to the file, or fetch them once "
                      "with torch-fidelity); nothing is downloaded")
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(path)), None


def to_uint8(images: Tensor) -> Tensor:
    """Return images [N, C, H, W] in [-1, 1] (clamped) as uint8 [0, 255], the input torchmetrics' Inception takes."""
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def fid_against(reference: Tensor, feature: torch.nn.Module, batch_size: int = 250,
                device: str | torch.device = "cpu") -> Callable[[Tensor], float]:
    """Return ``score(images) -> float``: torchmetrics' FID between ``images`` and ``reference`` [N, C, H, W] in [-1, 1].

    ``feature`` maps uint8 images [n, C, H, W] to features [n, d] (:func:`inception_features`, or a small network in
    tests). The reference features are extracted once and kept between scores (``reset_real_features=False``).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if reference.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 reference images, got {reference.shape[0]}")
    # built on the CPU (torchmetrics probes a feature network without `num_features` with a CPU image), then moved
    metric = FrechetInceptionDistance(feature=feature.cpu(), reset_real_features=False,
                                      input_img_size=tuple(reference.shape[1:])).to(device)

    @torch.no_grad()
    def update(images: Tensor, real: bool) -> None:
        for chunk in to_uint8(images).split(batch_size):
            metric.update(chunk.to(device), real=real)

    update(reference, True)

    def score(images: Tensor) -> float:
        if images.shape[1:] != reference.shape[1:] or images.shape[0] < 2:
            raise ValueError(f"images must be [n >= 2, {', '.join(map(str, reference.shape[1:]))}], got "
                             f"{tuple(images.shape)}")
        metric.reset()
        update(images, False)
        return float(metric.compute())

    return score
