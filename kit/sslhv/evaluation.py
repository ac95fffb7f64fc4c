"""Downstream use of a self-supervised encoder (arXiv:2405.18320): the pair head on frozen embeddings, the
fine-tuned mode, and embedding quality (intra- vs inter-writer cosine, 2-D maps).

The pair head is the authors': Linear(D, 64) per image, the element-wise distance |e1 - e2| (their code: e1 - e2),
ReLU, Linear(64, 32), ReLU, Linear(32, 2), cross-entropy on raw logits (their code applies a softmax first), class 1
= same writer. On frozen embeddings every image is embedded once and the head trains on the cached rows; fine-tuning
also updates the encoder, at a lower learning rate and with its batch-norm statistics frozen: the collapse guard
[PROPOSED] that an unfrozen encoder needed in a CPU prototype (its accuracy fell to chance).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PairHead(nn.Module):
    """Same-writer logits [B, 2] of embedding pairs e1, e2 [B, D] (class 1 = same writer).

    ``shift`` / ``scale`` (buffers, 0 / 1 until set) standardise the embeddings first: :func:`train_pair_head`
    sets them to the training rows' mean and std, as a linear probe's parameter-free batch norm does
    (arXiv:2111.06377) [PROPOSED: the authors feed raw embeddings, whose scale differs by method by orders of
    magnitude].
    """

    def __init__(self, in_dim: int, embed_dim: int = 64, hidden: int = 32, signed_difference: bool = False) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        self.signed_difference = bool(signed_difference)
        self.register_buffer("shift", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.project = nn.Linear(in_dim, embed_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        if e1.shape != e2.shape or e1.ndim != 2:
            raise ValueError(f"e1 and e2 must both be [B, D], got {tuple(e1.shape)} and {tuple(e2.shape)}")
        d = self.project((e1 - self.shift) / self.scale) - self.project((e2 - self.shift) / self.scale)
        return self.head(d if self.signed_difference else d.abs())


@torch.no_grad()
def embed_all(embed: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 256
              ) -> torch.Tensor:
    """Embeddings [N, D] of inputs ``x`` [N, 1, H, W] under ``embed`` (a module is put in eval mode and restored)."""
    module = embed if isinstance(embed, nn.Module) else getattr(embed, "__self__", None)
    was = module.training if isinstance(module, nn.Module) else None
    if isinstance(module, nn.Module):
        module.eval()
    out = torch.cat([embed(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else None
    if isinstance(module, nn.Module):
        module.train(was)
    if out is None:
        raise ValueError("x holds no images")
    return out


def intra_inter_cosine(embeddings: np.ndarray | torch.Tensor, writer_of: np.ndarray) -> dict[str, float]:
    """{intra, inter, gap, n_intra, n_inter}: the mean cosine similarity of same-writer pairs (each writer's own
    rows, diagonal excluded) and of different-writer pairs, over every pair of rows of ``embeddings`` [N, D].

    The authors' utility reads fixed top-left blocks of the similarity matrix instead of each writer's own rows;
    this is the measure it meant."""
    e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
    w = np.asarray(writer_of)
    if e.ndim != 2 or len(e) != len(w):
        raise ValueError(f"embeddings must be [N, D] with N = len(writer_of) = {len(w)}, got {tuple(e.shape)}")
    s = (F.normalize(e, dim=1) @ F.normalize(e, dim=1).T).numpy()
    same = w[:, None] == w[None, :]
    off = ~np.eye(len(w), dtype=bool)
    intra, inter = same & off, ~same
    if not intra.any() or not inter.any():
        raise ValueError("need at least 2 writers and one writer with 2 or more rows")
    a, b = float(s[intra].mean()), float(s[inter].mean())
    return {"intra": a, "inter": b, "gap": a - b, "n_intra": int(intra.sum() // 2), "n_inter": int(inter.sum() // 2)}


def embedding_map(embeddings: np.ndarray | torch.Tensor, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates [N, 2] of ``embeddings`` [N, D]: "pca" or "tsne" (perplexity min(30, (N - 1) / 3), PCA
    initialisation, as the authors' validation maps)."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or len(e) < 3:
        raise ValueError(f"embeddings must be [N >= 3, D], got shape {e.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(e)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, perplexity=min(30.0, (len(e) - 1) / 3), init="pca", learning_rate=200.0,
                    random_state=seed).fit_transform(e)
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")


def _pair_batches(pairs: np.ndarray, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(len(pairs))
    for k in range(0, len(order), batch_size):
        yield pairs[order[k:k + batch_size]]


@torch.no_grad()
def pair_probabilities(head: PairHead, embeddings: torch.Tensor, pairs: np.ndarray) -> np.ndarray:
    """P(same writer) [P] of index pairs ``pairs`` [P, >=2] into cached ``embeddings`` [N, D]."""
    was = head.training
    head.eval()
    p = torch.as_tensor(np.asarray(pairs)[:, :2], dtype=torch.long)
    out = torch.softmax(head(embeddings[p[:, 0]], embeddings[p[:, 1]]), 1)[:, 1].numpy()
    head.train(was)
    return out


def train_pair_head(embeddings: torch.Tensor, train_pairs: np.ndarray, val_pairs: np.ndarray, *,
                    epochs: int = 30, batch_size: int = 256, lr: float = 1e-3, patience: int = 10,
                    min_delta: float = 0.001, seed: int = 0, standardize: bool = True
                    ) -> tuple[PairHead, list[dict]]:
    """The pair head trained on frozen ``embeddings`` [N, D] (Adam, cross-entropy, the best validation F1 kept,
    early stopping after ``patience`` epochs without a ``min_delta`` gain, as the authors stop on F1) and the
    per-epoch history [{"epoch", "loss", "val_accuracy", "val_f1"}]. ``standardize`` sets the head's shift / scale
    from the embeddings of the images in ``train_pairs``."""
    from sklearn.metrics import accuracy_score, f1_score

    train_pairs, val_pairs = np.asarray(train_pairs), np.asarray(val_pairs)
    for name, p in (("train_pairs", train_pairs), ("val_pairs", val_pairs)):
        if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
            raise ValueError(f"{name} must be a non-empty [P, 3] array (i, j, label), got shape {p.shape}")
    torch.manual_seed(seed)
    head = PairHead(embeddings.shape[1])
    if standardize:
        rows = embeddings[torch.as_tensor(np.unique(train_pairs[:, :2]))]
        head.shift.copy_(rows.mean(0))
        head.scale.copy_(rows.std(0).clamp_min(1e-6) if len(rows) > 1 else torch.ones_like(head.scale))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    best, best_state, stall, history = None, None, 0, []
    for epoch in range(int(epochs)):
        head.train()
        losses = []
        for b in _pair_batches(train_pairs, batch_size, rng):
            t = torch.as_tensor(b, dtype=torch.long)
            loss = F.cross_entropy(head(embeddings[t[:, 0]], embeddings[t[:, 1]]), t[:, 2])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        pred = (pair_probabilities(head, embeddings, val_pairs) >= 0.5).astype(int)
        f1 = float(f1_score(val_pairs[:, 2], pred, zero_division=0))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "val_accuracy": float(accuracy_score(val_pairs[:, 2], pred)), "val_f1": f1})
        if best is None or f1 > best + min_delta:
            best, stall = f1, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            stall += 1
            if patience and stall >= patience:
                break
    head.load_state_dict(best_state)
    return head.eval(), history
