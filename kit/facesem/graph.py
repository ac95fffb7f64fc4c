"""The hierarchical label graph of semantic face forgery (arXiv:2405.08487, the authors' SO-DFD code) and its
probabilistic (HEX-graph) loss.

Twelve nodes in three levels: ``fake``; the global attributes ``age, expression, gender, identity, pose``; the local
regions ``eye, eyebrow, lip, mouth, nose, skin``. Edges: fake -> every attribute; each attribute -> the regions it
changes (``CHILDREN``). A label vector is *legal* when (a) an attribute is 1 only if fake is 1, (b) an attribute at
1 has at least one region child at 1, (c) a region at 1 has at least one attribute parent at 1: 1544 of the 4096
binary vectors (``legal_states``). The model scores f in R^12 define P(s | x) = softmax over legal states s of
s . f; a node's marginal is the probability mass of the legal states where it is 1 (``hex_marginals``), so the
predicted label set always obeys the graph. The loss is a per-node binary cross-entropy on those marginals, label 2
meaning unknown (masked: no gradient), grouped into the three level losses.

The authors' edge list repeats (pose, mouth) and leaves out (pose, lip); their legality check goes through the
parent / child dicts, in which pose is a parent of lip, so pose -> all six regions here, as their dicts have it.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from kit.data.faces import EDIT_LABELS  # the FFSC label string of each edit (2 = unknown)

__all__ = ["NODES", "LEVELS", "CHILDREN", "PARENTS", "EDIT_LABELS", "UNKNOWN", "legal_states", "is_legal",
           "hex_marginals", "graph_loss", "label_vector", "top_states", "map_states", "impossible_rate"]

NODES = ("fake", "age", "expression", "gender", "identity", "pose", "eye", "eyebrow", "lip", "mouth", "nose", "skin")
LEVELS = {1: (0,), 2: (1, 2, 3, 4, 5), 3: (6, 7, 8, 9, 10, 11)}
UNKNOWN = 2
_REGIONS = ("eye", "eyebrow", "lip", "mouth", "nose", "skin")
CHILDREN = {
    "fake": ("age", "expression", "gender", "identity", "pose"),
    "age": ("eye", "skin"),
    "expression": ("eye", "lip", "mouth", "nose", "skin"),
    "gender": ("eye", "eyebrow", "lip", "mouth", "skin"),
    "identity": _REGIONS,
    "pose": _REGIONS,
}
PARENTS = {n: tuple(p for p, cs in CHILDREN.items() if n in cs) for n in NODES}



def label_vector(edit: str) -> np.ndarray:
    """int64 [12]: the FFSC label of ``edit`` (one of ``EDIT_LABELS``), 2 where the node is unknown."""
    if edit not in EDIT_LABELS:
        raise ValueError(f"edit must be one of {sorted(EDIT_LABELS)}, got {edit!r}")
    return np.array([int(c) for c in EDIT_LABELS[edit]], dtype=np.int64)


def _legal(v: tuple[int, ...]) -> bool:
    on = {NODES[i] for i, b in enumerate(v) if b}
    for node in NODES[1:6]:
        if node in on and ("fake" not in on or not on.intersection(CHILDREN[node])):
            return False
    return all(on.intersection(PARENTS[r]) for r in _REGIONS if r in on)


@lru_cache(maxsize=1)
def _legal_array() -> np.ndarray:
    rows = [v for v in itertools.product((0, 1), repeat=len(NODES)) if _legal(v)]
    return np.array(rows, dtype=np.float32)


def legal_states() -> torch.Tensor:
    """float32 [1544, 12]: every legal label vector, one per row (the all-zero real state first)."""
    return torch.from_numpy(_legal_array().copy())


def is_legal(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """bool [N]: whether each 0/1 label vector of ``labels`` [N, 12] (or one [12]) obeys the graph."""
    a = np.atleast_2d(np.asarray(labels)).astype(np.int64)
    if a.shape[1] != len(NODES) or not np.isin(a, (0, 1)).all():
        raise ValueError(f"labels must be 0/1 vectors of {len(NODES)} nodes, got shape {a.shape}")
    legal = {tuple(r) for r in _legal_array().astype(np.int64)}
    return np.array([tuple(r) in legal for r in a])


def hex_marginals(scores: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
    """Marginals [B, 12] in [0, 1] of node scores [B, 12]: softmax over the legal ``states`` [m, 12] of
    ``scores @ states.T``, then ``@ states`` (every marginal vector is a mixture of legal states)."""
    if scores.ndim != 2 or scores.shape[1] != len(NODES):
        raise ValueError(f"scores must be [B, {len(NODES)}], got shape {tuple(scores.shape)}")
    s = legal_states().to(scores) if states is None else states.to(scores)
    return torch.softmax(scores @ s.T, dim=1) @ s


def top_states(scores: torch.Tensor, k: int = 5) -> list[list[tuple[tuple[str, ...], float]]]:
    """Per row of ``scores`` [B, 12]: the ``k`` most probable legal states as (nodes at 1, probability)."""
    s = legal_states().to(scores)
    p = torch.softmax(scores @ s.T, dim=1)
    top = p.topk(min(k, len(s)), dim=1)
    return [[(tuple(NODES[j] for j in np.flatnonzero(s[i].cpu().numpy())), float(v)) for v, i in zip(vals, idx)]
            for vals, idx in zip(top.values, top.indices)]


def graph_loss(marginals: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> dict[str, torch.Tensor]:
    """{"node" [12], "L1", "L2", "L3", "loss"} of marginals [B, 12] against labels [B, 12] in {0, 1, 2}.

    Node i's loss is the binary cross-entropy of P_i and y_i times the mask (y_i != 2), averaged over the whole
    batch (masked entries count as 0, as the authors average); L1 is node 0's, L2 the mean of nodes 1-5, L3 the mean
    of nodes 6-11; "loss" = L1 + L2 + L3 (the equal-weight sum; Auto-lambda weights the levels instead).
    """
    if marginals.shape != labels.shape or marginals.ndim != 2 or marginals.shape[1] != len(NODES):
        raise ValueError(f"marginals and labels must both be [B, {len(NODES)}], got {tuple(marginals.shape)} and "
                         f"{tuple(labels.shape)}")
    if not torch.isin(labels, torch.tensor([0, 1, UNKNOWN], device=labels.device)).all():
        raise ValueError("labels must hold 0, 1 or 2 (unknown)")
    mask = (labels != UNKNOWN).to(marginals.dtype)
    target = torch.where(labels == UNKNOWN, torch.zeros_like(labels), labels).to(marginals.dtype)
    p = marginals.clamp(eps, 1 - eps)
    bce = F.binary_cross_entropy(p, target, reduction="none") * mask
    node = bce.mean(0)
    out = {"node": node, "L1": node[list(LEVELS[1])].mean(), "L2": node[list(LEVELS[2])].mean(),
           "L3": node[list(LEVELS[3])].mean()}
    out["loss"] = out["L1"] + out["L2"] + out["L3"]
    return out


def map_states(scores: torch.Tensor) -> torch.Tensor:
    """float32 [B, 12]: the most probable legal state of each row of node scores [B, 12] (always legal; thresholded
    marginals need not be, when a region's mass is split over several parents)."""
    s = legal_states().to(scores)
    return s[(scores @ s.T).argmax(dim=1)]


def impossible_rate(probabilities: torch.Tensor | np.ndarray, threshold: float = 0.5) -> float:
    """The share of rows of per-node probabilities [N, 12] whose label set thresholded at ``threshold`` breaks the
    graph (independent sigmoids can predict a region with no attribute parent, or an attribute of a real face)."""
    a = np.asarray(probabilities.detach().cpu() if isinstance(probabilities, torch.Tensor) else probabilities)
    return float((~is_legal((a >= threshold).astype(np.int64))).mean())
