"""Heat maps for a 3D chest-CT classifier, and scores that say how well a heat map finds the lesions.

The NL-RAN paper (arXiv:2408.04300) uses the soft mask of its first attention module as a heat map and compares it
with CAM [P]. This module builds every map the spec (§5) asks for, all on the input grid and scaled to [0, 1]:

- ``AM1``, ``AM2``, ``AM3``: the soft masks ``M`` of the three attention modules (one weight per voxel and channel,
  in (0, 1)), reduced over channels (mean or max), resized trilinearly to the input grid, min-max scaled.
- ``CAM`` (Zhou et al., arXiv:1512.04150) [R]: the network ends in global average pooling and one linear layer, so
  the logit of class k is ``mean_over_voxels(sum_c w[k, c] f_c(v)) + b_k``. The map ``sum_c w[k, c] f_c(v)`` shows
  how much each voxel ``v`` of the last feature map adds to that logit. ReLU, then resize and scale.
- ``Grad-CAM`` (Selvaraju et al., arXiv:1610.02391) [R]: channel weights ``a_c`` = the spatial mean of the gradient
  of the class logit with respect to a chosen layer's output; map = ReLU(sum_c a_c f_c). It needs no particular
  network ending, so it works on any layer (see :func:`candidate_layers`).
- occlusion sensitivity (:mod:`kit.nlran.occlusion`): how much the class logit drops when a cube of the input is
  blanked out; one forward pass per cube, so it is done on a coarse grid (spec §7) and is not part of :func:`heatmaps`.

Why not call ``monai.visualize`` directly (it is the reference the tests compare against):
``monai.visualize.ModelWithHooks`` registers hooks that are never removed (every call adds more), switches
``inplace`` off on the hooked module, and with ``class_idx=None`` and a batch whose volumes predict different
classes it back-propagates the sum of all those classes for every volume. Its default post-processing maps the
maximum to 0 and the minimum to 1 (a flipped map). The functions here remove their hooks, pick one class per volume
and scale so that 1 is the hottest voxel; the tests check that the un-scaled maps equal MONAI's.

How well each map finds the lesions is scored in :mod:`kit.nlran.scores`; occlusion sensitivity is in
:mod:`kit.nlran.occlusion`.

All maps are computed with the model in eval mode (its previous mode is restored afterwards) [C] our choice, so a
volume's map does not depend on the rest of its batch.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kit.core import eval_mode

ArrayLike = Any  # numpy array or torch tensor

# Module types that are never useful as a Grad-CAM target: containers that are not called themselves, and layers
# whose output has no spatial dimensions.
_NOT_TARGETS = (nn.ModuleList, nn.ModuleDict, nn.Linear, nn.Flatten, nn.Dropout, nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool3d)


# ----------------------------------------------------------------------------------------------------------------
# Resizing and scaling


def as_tensor(a: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def _size3(size: Sequence[int], name: str = "size") -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in size)
    except TypeError:
        raise ValueError(f"{name} must be three ints (D, H, W), got {size!r}") from None
    if len(out) != 3 or any(s < 1 for s in out):
        raise ValueError(f"{name} must be three positive ints (D, H, W), got {size!r}")
    return out  # type: ignore[return-value]


def minmax_scale(maps: torch.Tensor) -> torch.Tensor:
    """Scale each volume of ``maps`` [B, ...] to [0, 1] independently (min -> 0, max -> 1).

    A constant volume has no hottest voxel; it becomes all zeros (never NaN).
    """
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    scaled = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                         torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


REDUCTIONS = ("mean", "max", "strongest")
"""Channel reductions of a mask [B, C, d, h, w] by name (an int picks one channel)."""


def reduce_channels(maps: torch.Tensor, reduce: str | int = "mean") -> torch.Tensor:
    """Reduce per-channel maps [B, C, d, h, w] to one map per volume [B, d, h, w]: "mean" or "max" over channels,
    "strongest" (per volume, the channel with the largest spatial standard deviation) or an int channel index."""
    if isinstance(reduce, (int, np.integer)) and not isinstance(reduce, bool):
        if not 0 <= int(reduce) < maps.shape[1]:
            raise ValueError(f"reduce: channel {reduce} does not exist; the maps have {maps.shape[1]} channels")
        return maps[:, int(reduce)]
    if reduce == "mean":
        return maps.mean(dim=1)
    if reduce == "max":
        return maps.amax(dim=1)
    if reduce == "strongest":
        k = maps.flatten(2).std(dim=2).argmax(dim=1)  # [B]
        return maps[torch.arange(maps.shape[0], device=maps.device), k]
    raise ValueError(f"reduce must be one of {REDUCTIONS} or a channel index, got {reduce!r}")


def upsample_to(maps: ArrayLike, size: Sequence[int], reduce: str | int = "mean") -> torch.Tensor:
    """Turn feature-resolution maps into heat maps on the input grid.

    Args:
        maps: [B, C, d, h, w] (per-channel maps, e.g. an attention mask) or [B, d, h, w] (one map per volume);
            a torch tensor or numpy array.
        size: the input grid (D, H, W) in voxels.
        reduce: how 5D maps are reduced over channels: "mean", "max", "strongest" (per volume the channel whose map
            varies most over space, its standard deviation the largest: the most contrasted single mask) or an int
            (that channel).

    Returns:
        float32 tensor [B, D, H, W] on the device of ``maps``: channel-reduced, resized with trilinear interpolation
        (``align_corners=False``, as MONAI's default upsampler), then min-max scaled to [0, 1] per volume; a
        constant volume becomes zeros.
    """
    t = as_tensor(maps, "maps").float()
    size3 = _size3(size)
    if t.ndim == 5:
        t = reduce_channels(t, reduce)
    elif t.ndim != 4:
        raise ValueError(f"maps must be [B, C, d, h, w] or [B, d, h, w], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t[0].numel() == 0:
        raise ValueError(f"maps is empty (shape {tuple(t.shape)})")
    if not torch.isfinite(t).all():
        raise ValueError("maps contains NaN or infinite values")
    if tuple(t.shape[1:]) != size3:
        t = F.interpolate(t[:, None], size=size3, mode="trilinear", align_corners=False)[:, 0]
    return minmax_scale(t)


# ----------------------------------------------------------------------------------------------------------------
# Models: layers, class indices, eval mode


def check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor [B, C, D, H, W], got {type(x).__name__}")
    if x.ndim != 5:
        raise ValueError(f"x must be [B, C, D, H, W], got shape {tuple(x.shape)}")


def candidate_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[str]:
    """List the module names of ``model`` that can serve as the target layer of Grad-CAM (or CAM's feature layer).

    Without ``x``: every named submodule except containers that are never called (ModuleList / ModuleDict) and
    layers without spatial output (Linear, Flatten, Dropout, adaptive pooling); a superset, since it cannot see
    modules the network runs through another method than ``module(x)`` (NLRAN3d calls its attention modules'
    ``forward_with_mask``, which forward hooks do not see). With ``x`` [B, C, D, H, W]: run one forward pass (eval
    mode, no gradients) and keep only the modules called as ``module(x)`` whose output is a 5D tensor
    [B, C, d, h, w], i.e. exactly the valid targets. The model's ``cam_layer`` (when it has one) is among them.
    Order: as in ``model.named_modules()`` (input to output for sequential models).
    This answers MONAI#3035 (a cryptic error for a wrong layer name).
    """
    names = [n for n, m in model.named_modules() if n and not isinstance(m, _NOT_TARGETS)]
    if x is None:
        return names
    check_input(x)
    seen: dict[str, bool] = {}
    handles = []
    modules = dict(model.named_modules())

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen[name] = isinstance(output, torch.Tensor) and output.ndim == 5

        return hook

    try:
        for n in names:
            handles.append(modules[n].register_forward_hook(make_hook(n)))
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return [n for n in names if seen.get(n, False)]


def _get_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or layer not in modules or layer == "":
        cands = candidate_layers(model)
        close = difflib.get_close_matches(str(layer), cands, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"layer {layer!r} is not a module of {type(model).__name__}.{hint} "
                         f"Candidate layers ({len(cands)}): {', '.join(cands)}")
    return modules[layer]


def _default_layer(model: nn.Module, layer: str | None) -> str:
    if layer is not None:
        return layer
    name = getattr(model, "cam_layer", None)
    if not isinstance(name, str):
        raise ValueError(f"{type(model).__name__} has no `cam_layer` attribute; pass layer= (one of "
                         f"candidate_layers(model))")
    return name


def class_indices(class_idx: int | Sequence[int] | torch.Tensor | np.ndarray | None,
                   logits: torch.Tensor) -> torch.Tensor:
    """Return the class explained for each volume, int64 [B]: argmax of ``logits`` [B, K] for None, one int for the
    whole batch, or one index per volume."""
    b, k = logits.shape
    if class_idx is None:
        return logits.detach().argmax(dim=1)
    if isinstance(class_idx, (int, np.integer)):
        idx = torch.full((b,), int(class_idx), dtype=torch.long)
    else:
        idx = torch.as_tensor(np.asarray(class_idx.cpu() if isinstance(class_idx, torch.Tensor) else class_idx),
                              dtype=torch.long).reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(b).clone()
        if idx.numel() != b:
            raise ValueError(f"class_idx has {idx.numel()} entries but the batch has {b} volumes")
    if (idx < 0).any() or (idx >= k).any():
        raise ValueError(f"class_idx must be in [0, {k - 1}] (the model has {k} classes), got {idx.tolist()}")
    return idx.to(logits.device)


class _Capture:
    """Forward hook that keeps the output of one module (the last call's) while the context is open."""

    def __init__(self, model: nn.Module, layer: str):
        self.layer = layer
        self.module = _get_layer(model, layer)
        self.output: torch.Tensor | None = None
        self._handle: Any = None

    def __enter__(self) -> _Capture:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.output = output

        self._handle = self.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def features(self) -> torch.Tensor:
        out = self.output
        if out is None:
            raise ValueError(f"layer {self.layer!r} was not called as module(x) during the forward pass (forward hooks "
                             f"only see such calls); pick one of candidate_layers(model, x)")
        if not isinstance(out, torch.Tensor) or out.ndim != 5:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"layer {self.layer!r} must output a feature map [B, C, d, h, w], got {shape}; "
                             f"see candidate_layers(model, x)")
        return out


def _classifier_weight(model: nn.Module, channels: int) -> torch.Tensor:
    fc = getattr(model, "classifier", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"CAM needs `model.classifier` to be the nn.Linear after global average pooling; "
                         f"{type(model).__name__} has {type(fc).__name__}")
    if fc.in_features != channels:
        raise ValueError(f"classifier expects {fc.in_features} features but the CAM layer has {channels} channels")
    return fc.weight


# ----------------------------------------------------------------------------------------------------------------
# Heat maps


def attention_heatmaps(model: nn.Module, x: torch.Tensor, reduce: Any = "mean") -> dict[str, torch.Tensor]:
    """Return the soft masks of the attention modules as heat maps {"AM1": ..., "AM2": ..., "AM3": ...}.

    Args:
        model: a network with ``forward_maps(x) -> {"masks": [M1, M2, M3], ...}`` (NLRAN3d); each M_i is
            [B, C_i, d_i, h_i, w_i] with values in (0, 1).
        x: input [B, 1, D, H, W] (windowed CT in [0, 1]).
        reduce: channel reduction, "mean" (spec §2), "max", "strongest" or a channel index (see
            :func:`reduce_channels`); or a sequence of three, one per module (e.g. the channels chosen by
            :func:`kit.nlran.scores.best_mask_channels`).

    Returns:
        {"AM<i>": float32 CPU tensor [B, D, H, W] in [0, 1]}, one per module (see :func:`upsample_to`).
    """
    check_input(x)
    if not callable(getattr(model, "forward_maps", None)):
        raise ValueError(f"{type(model).__name__} has no forward_maps(x); attention maps need an NL-RAN model")
    with eval_mode(model), torch.no_grad():
        masks = model.forward_maps(x)["masks"]
    size = tuple(x.shape[2:])
    per = list(reduce) if isinstance(reduce, (list, tuple)) else [reduce] * len(masks)
    if len(per) != len(masks):
        raise ValueError(f"reduce: expected one reduction per attention module ({len(masks)}), got {len(per)}")
    return {f"AM{i + 1}": upsample_to(m, size, reduce=r).cpu() for i, (m, r) in enumerate(zip(masks, per))}


def _cam_from(model: nn.Module, features: torch.Tensor, logits: torch.Tensor,
              class_idx: Any) -> tuple[torch.Tensor, torch.Tensor]:
    idx = class_indices(class_idx, logits)
    w = _classifier_weight(model, features.shape[1])[idx]  # [B, C]
    raw = torch.einsum("bc,bcdhw->bdhw", w.to(features.dtype), features)
    return raw, idx


def cam(model: nn.Module, x: torch.Tensor, class_idx: Any = None, raw: bool = False) -> torch.Tensor:
    """Class activation map (CAM) [R] of the class ``class_idx`` for every volume of ``x``.

    ``CAM_k(v) = sum_c w[k, c] * f_c(v)``: ``w`` = ``model.classifier.weight`` [K, C], ``f`` = the last feature map
    [B, C, d, h, w] (``forward_maps(x)["features"]`` when the model has ``forward_maps``, else the output of the
    module named ``model.cam_layer``, captured with a forward hook). The classifier bias is left out (it is one
    constant per class): the spatial mean of the raw map plus ``b_k`` equals the logit.

    Args:
        model: a network ending in global average pooling + ``classifier`` (nn.Linear); with ``cam_layer``.
        x: input [B, 1, D, H, W].
        class_idx: None (the predicted class of each volume), one int, or one int per volume.
        raw: True returns the map before ReLU, resizing and scaling: [B, d, h, w] at feature resolution (in logit
            units).

    Returns:
        float32 CPU tensor [B, D, H, W] in [0, 1] (ReLU, trilinear resize to the input grid, min-max per volume),
        or the raw map when ``raw``.
    """
    check_input(x)
    with eval_mode(model), torch.no_grad():
        if callable(getattr(model, "forward_maps", None)):
            out = model.forward_maps(x)
            features, logits = out["features"], out["logits"]
        else:
            with _Capture(model, _default_layer(model, None)) as cap:
                logits = model(x)
            features = cap.features()
        m, _ = _cam_from(model, features, logits, class_idx)
    if raw:
        return m.float().cpu()
    return upsample_to(F.relu(m), tuple(x.shape[2:])).cpu()


def grad_cam(model: nn.Module, x: torch.Tensor, class_idx: Any = None, layer: str | None = None,
             raw: bool = False) -> torch.Tensor:
    """Grad-CAM [R] of the class ``class_idx`` at layer ``layer`` (default ``model.cam_layer``).

    With ``f`` = the layer's output [B, C, d, h, w] and ``y_k`` = the logit of the explained class of each volume:
    ``a_c = mean_v d y_k / d f_c(v)`` and ``map = ReLU(sum_c a_c f_c)`` (as MONAI's ``GradCAM.compute_map``).
    Each volume gets the gradient of its own class only. Gradients are taken with ``torch.autograd.grad``, so the
    parameters' ``.grad`` is left untouched.

    Args:
        model: any classifier ``model(x) -> logits [B, K]``.
        x: input [B, 1, D, H, W].
        class_idx: None (predicted class), one int, or one int per volume.
        layer: a module name (see :func:`candidate_layers`); a wrong name raises ValueError listing candidates.
        raw: True returns ``sum_c a_c f_c`` before ReLU, resizing and scaling ([B, d, h, w]).

    Returns:
        float32 CPU tensor [B, D, H, W] in [0, 1], or the raw map when ``raw``.
    """
    check_input(x)
    name = _default_layer(model, layer)
    with eval_mode(model), torch.enable_grad(), _Capture(model, name) as cap:
        xg = x.detach().clone().requires_grad_(True)  # a graph exists even if the parameters are frozen
        logits = model(xg)
        features = cap.features()
        idx = class_indices(class_idx, logits)
        score = logits.gather(1, idx[:, None]).sum()
        (grads,) = torch.autograd.grad(score, features)
    weights = grads.mean(dim=(2, 3, 4))  # [B, C]
    m = torch.einsum("bc,bcdhw->bdhw", weights, features.detach())
    if raw:
        return m.float().cpu()
    return upsample_to(F.relu(m), tuple(x.shape[2:])).cpu()


def heatmaps(model: nn.Module, x: torch.Tensor, class_idx: Any = None,
             reduce: str = "mean") -> dict[str, torch.Tensor]:
    """All heat maps of the spec (§5) for ``x`` [B, 1, D, H, W]: {"AM1", "AM2", "AM3", "CAM", "Grad-CAM"}, each a
    float32 CPU tensor [B, D, H, W] in [0, 1].

    The attention maps need ``model.forward_maps``; for a model without it (the baselines) the dict holds only
    "CAM" and "Grad-CAM". ``class_idx`` (None = predicted class) is the class CAM and Grad-CAM explain; the
    attention masks do not depend on a class. ``reduce`` is the channel reduction of the masks.
    """
    check_input(x)
    out: dict[str, torch.Tensor] = {}
    if callable(getattr(model, "forward_maps", None)):
        with eval_mode(model), torch.no_grad():
            maps = model.forward_maps(x)
        size = tuple(x.shape[2:])
        for i, m in enumerate(maps["masks"]):
            out[f"AM{i + 1}"] = upsample_to(m, size, reduce=reduce).cpu()
        m, idx = _cam_from(model, maps["features"], maps["logits"], class_idx)
        out["CAM"] = upsample_to(F.relu(m), size).cpu()
        class_idx = idx  # Grad-CAM explains the same classes
    else:
        out["CAM"] = cam(model, x, class_idx)
    out["Grad-CAM"] = grad_cam(model, x, class_idx)
    return out
