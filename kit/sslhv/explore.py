"""The numbers behind the sslhv views (no widgets here): embedding maps per method, the VAE's reconstructions,
latent traversals and which latent follows which style field, a method's per-dimension std and covariance (the
collapse alarm), and augmented views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from kit.sslhv.evaluation import embedding_map, intra_inter_cosine
from kit.sslhv.losses import collapse_report
from kit.sslhv.methods import SSLMethod
from kit.sslhv.views import HandwritingViews
from kit.verification.baselines import hog_features, raw_features
from kit.verification.pairs import PairData

__all__ = ["STYLE_FIELDS", "EmbeddingView", "augmented_views", "collapse_stats", "embedding_views",
           "latent_style_correlation", "reconstructions", "traverse", "writer_subset"]

# the writer-style fields the latent correlation reads (WriterStyle.FIELDS holds per-letter and warp fields too)
STYLE_FIELDS = ("slant", "scale_x", "scale_y", "spacing", "baseline_tilt", "pen_width", "pressure_trend", "tremor")


def writer_subset(data: PairData, split: str = "test", n_writers: int = 10) -> np.ndarray:
    """Image indices [n] of the first ``n_writers`` writers of ``split``."""
    if n_writers < 2:
        raise ValueError(f"n_writers must be >= 2, got {n_writers}")
    writers = np.asarray(data.writers[split])[:n_writers]
    return np.flatnonzero(np.isin(data.writer_of, writers))


@dataclass
class EmbeddingView:
    """One method's map of a writer subset: ``coords`` [n, 2], ``index`` [n] into the data's images, ``writer``
    [n], and the intra- / inter-writer cosine in the embedding space (``nd``) and on the map (``map2d``)."""

    name: str
    coords: np.ndarray
    index: np.ndarray
    writer: np.ndarray
    nd: dict[str, float]
    map2d: dict[str, float]


def _embed(fn: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    module = fn if isinstance(fn, torch.nn.Module) else None
    was = module.training if module is not None else None
    if module is not None:
        module.eval()
    with torch.no_grad():
        f = fn.embed if hasattr(fn, "embed") else fn
        out = torch.cat([f(x[i:i + 512]) for i in range(0, len(x), 512)]).numpy()
    if module is not None:
        module.train(was)
    return out


def embedding_views(encoders: Mapping[str, object], data: PairData, index: np.ndarray, method: str = "tsne",
                    seed: int = 0) -> dict[str, EmbeddingView]:
    """{name: EmbeddingView} of images ``index`` under each encoder: an :class:`SSLMethod` or module (its
    ``embed`` or ``forward`` on model inputs), or the strings "raw" / "hog" (pixels, HOG descriptors)."""
    index = np.asarray(index)
    if len(index) < 3:
        raise ValueError("an embedding map needs at least 3 images")
    out = {}
    writer = data.writer_of[index]
    for name, enc in encoders.items():
        if enc == "raw":
            e = raw_features(data.images[index])
        elif enc == "hog":
            e = hog_features(data.images[index])
        else:
            e = _embed(enc, data.x[index])
        coords = embedding_map(e, method, seed)
        out[name] = EmbeddingView(name, coords, index, writer, intra_inter_cosine(e, writer),
                                  intra_inter_cosine(coords, writer))
    return out


def _vae(method: SSLMethod) -> torch.nn.Module:
    if getattr(method, "name", None) != "vae":
        raise ValueError("this view needs the VAE method (SSLMethod('vae', ...))")
    return method.vae


@torch.no_grad()
def reconstructions(method: SSLMethod, x: torch.Tensor) -> np.ndarray:
    """The VAE's reconstructions (the decoded means of ``mu``) of inputs ``x`` [B, 1, S, S], as uint8 [B, S, S]
    (dark ink on white, like the data's images)."""
    vae = _vae(method).eval()
    mu, _ = vae.encode(x)
    return _to_uint8(vae.decode(mu))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return np.rint(255.0 * (1.0 - x[:, 0].clamp(0, 1).numpy())).astype(np.uint8)


@torch.no_grad()
def traverse(method: SSLMethod, x: torch.Tensor, dim: int, values: np.ndarray | list[float]) -> np.ndarray:
    """uint8 [len(values), S, S]: image ``x`` [1, 1, S, S] encoded to ``mu``, latent ``dim`` set to each of
    ``values`` (in units of that latent's prior std, 1), decoded."""
    vae = _vae(method).eval()
    if not 0 <= int(dim) < vae.latent_dim:
        raise ValueError(f"dim must be in [0, {vae.latent_dim}), got {dim}")
    mu, _ = vae.encode(x[:1])
    z = mu.repeat(len(values), 1)
    z[:, int(dim)] = torch.as_tensor(np.asarray(values, dtype=np.float32))
    return _to_uint8(vae.decode(z))


def latent_style_correlation(method: SSLMethod, data: PairData, index: np.ndarray | None = None,
                             fields: tuple[str, ...] = STYLE_FIELDS) -> dict[str, np.ndarray]:
    """Pearson correlation [latent_dim, len(fields)] of the VAE's ``mu`` with each image's writer's true style
    fields (synthetic writers only), over images ``index`` (default: the test writers'): "which dimension is
    slant?". Returns {"corr", "fields", "best_dim" [len(fields)] (the latent with the largest |r| per field)}."""
    if data.population is None:
        raise ValueError("the true styles are known for synthetic writers only (data.population is None)")
    from kit.data.handwriting import WriterStyle

    index = data.indices("test") if index is None else np.asarray(index)
    cols = [WriterStyle.FIELDS.index(f) for f in fields]
    styles = np.stack([data.population.style(int(w)).as_vector()[cols] for w in data.writer_of[index]])
    mu = _embed(lambda x: _vae(method).encode(x)[0], data.x[index])
    a = (mu - mu.mean(0)) / np.maximum(mu.std(0), 1e-12)
    b = (styles - styles.mean(0)) / np.maximum(styles.std(0), 1e-12)
    corr = a.T @ b / len(index)
    return {"corr": corr, "fields": np.array(fields), "best_dim": np.abs(corr).argmax(0)}


@torch.no_grad()
def collapse_stats(method: SSLMethod, x: torch.Tensor, space: str = "projection") -> dict[str, object]:
    """The collapse alarm of ``method`` on inputs ``x`` [N, 1, S, S] (no augmentation): per-dimension std,
    covariance matrix and :func:`kit.sslhv.losses.collapse_report` of its projector outputs ("projection", what
    VICReg's variance and covariance terms act on; the VAE's ``mu``) or of the embeddings ("embedding")."""
    if space not in ("projection", "embedding"):
        raise ValueError(f"space must be 'projection' or 'embedding', got {space!r}")
    method.eval()
    if space == "embedding" or method.name == "vae" or not hasattr(method, "projector"):
        z = torch.as_tensor(_embed(method, x))
    else:
        z = torch.cat([method.projector(method.encoder(x[i:i + 512])) for i in range(0, len(x), 512)])
    report = collapse_report(z)
    zc = (z - z.mean(0)).double()
    cov = (zc.T @ zc / max(len(z) - 1, 1)).float().numpy()
    return {"std": report["std_per_dim"].numpy(), "cov": cov, "report": report, "dim": int(z.shape[1])}


def augmented_views(x: torch.Tensor, n: int = 4, seed: int = 0, **view_kw) -> np.ndarray:
    """uint8 [n, S, S]: ``n`` random :class:`HandwritingViews` (``view_kw`` its knobs) of one input [1, 1, S, S]."""
    views = HandwritingViews(size=x.shape[-1], **view_kw)
    g = torch.Generator().manual_seed(int(seed))
    return _to_uint8(views(x[:1].repeat(int(n), 1, 1, 1), g))
