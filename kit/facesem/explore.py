"""The numbers behind the facesem views (no widgets here): what the label graph makes of one face (graph marginals
against independent sigmoids of the same scores, the most probable legal label sets), P(fake) along an edit's
strength with the threshold tau, Auto-lambda's trace, and the protocol table as a heat map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kit.data.faces import TAU, FaceIdentity, render_face
from kit.facesem.graph import NODES, hex_marginals, is_legal, top_states
from kit.facesem.models import FaceDetector

__all__ = ["NodeView", "node_view", "strength_sweep", "lambda_trace", "protocol_matrix", "to_input", "violations",
           "gradcam", "lower_upper"]


def to_input(images: np.ndarray) -> torch.Tensor:
    """float32 [N, 3, S, S] in [0, 1] of uint8 RGB images [N, S, S, 3] (or one [S, S, 3])."""
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.shape[-1] != 3 or a.ndim not in (3, 4):
        raise ValueError(f"images must be uint8 RGB [N, S, S, 3] or [S, S, 3], got {a.dtype} {a.shape}")
    a = a[None] if a.ndim == 3 else a
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0


@dataclass
class NodeView:
    """One face through a 12-node detector: ``graph`` (HEX marginals [12]), ``sigmoid`` (independent sigmoids of
    the same scores [12]), whether each thresholded set is legal, and the ``top`` legal label sets."""

    scores: np.ndarray
    graph: np.ndarray
    sigmoid: np.ndarray
    graph_legal: bool
    sigmoid_legal: bool
    top: list[tuple[tuple[str, ...], float]]
    violations: list[str]


def violations(on: np.ndarray) -> list[str]:
    """The graph rules a 0/1 label set [12] breaks, in words (empty for a legal set)."""
    from kit.facesem.graph import CHILDREN, PARENTS

    names = {NODES[i] for i in np.flatnonzero(on)}
    out = [f"{a} without fake" for a in NODES[1:6] if a in names and "fake" not in names]
    out += [f"{a} with no region" for a in NODES[1:6] if a in names and not names.intersection(CHILDREN[a])]
    out += [f"{r} with no attribute" for r in NODES[6:] if r in names and not names.intersection(PARENTS[r])]
    return out


@torch.no_grad()
def node_view(model: FaceDetector, image: np.ndarray, threshold: float = 0.5, k: int = 5) -> NodeView:
    """What a 12-node detector says about one uint8 RGB face [S, S, 3]."""
    model.eval()
    f = model(to_input(image).to(next(model.parameters()).device)).cpu()
    if f.shape[1] != len(NODES):
        raise ValueError(f"node_view needs a 12-node detector (mode 'so' or 'sigmoid'), got {f.shape[1]} scores")
    g, s = hex_marginals(f)[0].numpy(), torch.sigmoid(f)[0].numpy()
    sig_on = (s >= threshold).astype(np.int64)
    return NodeView(f[0].numpy(), g, s, bool(is_legal((g >= threshold).astype(np.int64))[0]),
                    bool(is_legal(sig_on)[0]), top_states(f, k)[0], violations(sig_on))


@torch.no_grad()
def strength_sweep(model: FaceDetector, mode: str, identity: FaceIdentity, edit: str,
                   strengths: Sequence[float] = tuple(np.linspace(0, 1, 11)), other: FaceIdentity | None = None,
                   size: int = 48) -> dict[str, np.ndarray]:
    """{"strengths" [n], "images" uint8 [n, S, S, 3], "p_fake" [n], "tau"}: ``identity``'s face with ``edit`` at
    each strength (no generator trace, no JPEG: the semantic change alone) and the detector's P(fake)."""
    from kit.facesem.experiment import fake_scores

    model.eval()
    s = np.asarray(strengths, dtype=float)
    images = np.stack([render_face(identity, edit, float(v), size, other) for v in s])
    scores = model(to_input(images).to(next(model.parameters()).device)).cpu()
    return {"strengths": s, "images": images, "p_fake": fake_scores(scores, mode), "tau": TAU}


def lambda_trace(history: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """{"step" [n], "lambda1".."lambda3" [n], "L1".."L3" [n]} of a training history's train events."""
    rows = [h for h in history if h.get("kind", "train") == "train" and "lambda1" in h]
    if not rows:
        raise ValueError("the history holds no Auto-lambda values (train an 'so' model)")
    keys = ["lambda1", "lambda2", "lambda3", "L1", "L2", "L3"]
    return {"step": np.array([h["step"] for h in rows]), **{k: np.array([h.get(k, np.nan) for h in rows])
                                                            for k in keys}}


def protocol_matrix(rows: Sequence[Mapping[str, object]], value: str = "auc") -> dict[str, object]:
    """{"modes", "protocols", "values" [modes, protocols] (mean over seeds), "std"} of result rows with "mode",
    "protocol" and ``value``."""
    modes = list(dict.fromkeys(str(r["mode"]) for r in rows))
    protocols = list(dict.fromkeys(str(r["protocol"]) for r in rows))
    vals = np.full((len(modes), len(protocols)), np.nan)
    std = np.full_like(vals, np.nan)
    for i, m in enumerate(modes):
        for j, p in enumerate(protocols):
            xs = [float(r[value]) for r in rows if r["mode"] == m and r["protocol"] == p and r.get(value) is not None]
            if xs:
                vals[i, j] = np.mean(xs)
                std[i, j] = np.std(xs, ddof=1) if len(xs) > 1 else 0.0
    return {"modes": modes, "protocols": protocols, "values": vals, "std": std}


def gradcam(model: FaceDetector, mode: str, image: np.ndarray, node: int = 0,
            layer: torch.nn.Module | None = None) -> np.ndarray:
    """Grad-CAM (arXiv:1610.02391) float32 [S, S] in [0, 1] of one uint8 RGB face [S, S, 3]: the channel-weighted,
    rectified activations of ``layer`` (default: the backbone's ``cam_layer``: the small CNN's last block, Xception's
    last activation), weights = the spatial mean of the
    gradient of the target: node ``node``'s graph marginal ("so"), its logit ("sigmoid", "binary": node 0), or
    P(fake) = 1 - P(real) ("multiclass"); bilinearly up-sampled to the image, divided by its maximum."""
    import torch.nn.functional as F

    layer = layer if layer is not None else getattr(model.backbone, "cam_layer", None)
    if layer is None:
        raise ValueError("this backbone has no default layer for Grad-CAM: pass layer= (a module of the backbone)")
    if not 0 <= node < len(NODES):
        raise ValueError(f"node must be in [0, {len(NODES)}), got {node}")
    store = {}
    hook = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            f = model(to_input(image).to(next(model.parameters()).device))
            if mode == "so":
                target = hex_marginals(f)[0, node]
            elif mode in ("sigmoid", "binary"):
                target = f[0, node if mode == "sigmoid" else 0]
            elif mode == "multiclass":
                target = 1 - torch.softmax(f, 1)[0, 0]
            else:
                raise ValueError(f"unknown mode {mode!r}")
            a = store["a"]
            g = torch.autograd.grad(target, a)[0]
    finally:
        hook.remove()
        model.train(was)
    cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
    size = np.asarray(image).shape[:2]
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
    top = float(cam.max())
    return (cam / top if top > 0 else cam).astype(np.float32)


def lower_upper(cam: np.ndarray) -> float:
    """A Grad-CAM map's mean over the lower face (rows from 7/12 of the height: mouth and chin) over its mean over the
    upper half (brows, eyes, forehead): > 1 when the evidence sits low."""
    cam = np.asarray(cam, float)
    if cam.ndim != 2 or cam.shape[0] < 4:
        raise ValueError(f"cam must be a 2-D map of at least 4 rows, got shape {cam.shape}")
    h = cam.shape[0]
    return float(cam[round(h * 7 / 12):].mean() / max(cam[:h // 2].mean(), 1e-6))
