"""Entry points of the DeFI-Net series (arXiv:2408.02191): data, training, prediction and the evaluation tables.

``train(cfg, run)`` fits DeFI-Net on generated inpaintings (offline) or a real data set on :func:`kit.core.fit`;
``evaluate(cfg, model)`` scores it beside the training-free floors per fill method under both protocols (the
authors' and the standard forensic one), with the untouched crops' false-positive area and the protocol-inflation
numbers. ``predict(model, image)`` is the public one-image call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from kit.core import RunDir, fit, pick_device, seed_everything
from kit.data.inpainting import InpaintingSet, photo_split
from kit.defi.baselines import FLOORS
from kit.defi.config import DeFIConfig
from kit.defi.losses import defi_loss
from kit.defi.metrics import per_method, protocol_inflation, standard_scores
from kit.defi.model import DeFINet, load_hrnet_imagenet

Callback = Callable[[dict], None]
DETECTOR = "defi"


def build_model(cfg: DeFIConfig) -> DeFINet:
    """Return an untrained DeFI-Net of ``cfg.model`` (ImageNet HRNet weights when ``cfg.pretrained_backbone``)."""
    model = DeFINet(cfg.model, input_filter=cfg.input_filter, channels=cfg.channels, lite_widths=cfg.lite_widths)
    if cfg.pretrained_backbone:
        load_hrnet_imagenet(model)
    return model


# ---- data ----

class ResizedPairs(Dataset):
    """A real data set resized to ``size`` x ``size`` for training: dict(image [3, S, S] in [0, 1], mask [1, S, S]).

    As the authors do, every image is resized to a square (bilinear; masks nearest); ``augment`` adds horizontal
    flips.
    """

    def __init__(self, folder, indices: Sequence[int], size: int, augment: bool = False):
        self.folder, self.indices, self.size, self.augment = folder, list(indices), int(size), augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        import cv2

        item = self.folder[self.indices[i]]
        s = self.size
        image = cv2.resize(item["image"], (s, s), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(item["mask"].astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST)
        x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        m = torch.from_numpy(mask.astype(np.float32))[None]
        if self.augment and bool(torch.rand(()) < 0.5):
            x, m = x.flip(-1), m.flip(-1)
        return {"image": x, "mask": m}


def open_folder(kind: str, root: str):
    """Return the real-data loader of ``kind`` ("iid", "defacto", "manidataset", "json") over ``root``."""
    from kit.data import inpainting_folders as f

    loaders = {"iid": f.IIDFolder, "defacto": f.DefactoInpainting, "manidataset": f.ManiDataset,
               "json": f.JsonDataset}
    if kind not in loaders:
        raise ValueError(f"unknown real data set {kind!r}; valid: {sorted(loaders)}")
    return loaders[kind](root)


@dataclass
class DeFIData:
    """Training and validation sets (tensors) and the test items (uint8 images, bool masks, fill names)."""

    train: Dataset
    val: Dataset
    test_images: list[np.ndarray]
    test_masks: list[np.ndarray]
    test_fills: list[str]
    authentic_images: list[np.ndarray] = field(default_factory=list)


def _items(ds: InpaintingSet) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    samples = [ds.sample(i) for i in range(len(ds.build()))]
    return [s.image for s in samples], [s.mask for s in samples], [s.fill for s in samples]


def load_data(cfg: DeFIConfig, train: bool = True) -> DeFIData:
    """Return the run's data: generated from the photo split (offline), or a real data set under ``cfg.data_dir``.

    Generated: training crops of the "train" photos filled by ``cfg.train_fills``, validation on the "val" photos,
    the test on the "test" photos with ``cfg.n_test`` crops per fill of ``cfg.test_fills`` at ``cfg.eval_size``
    (other seeds, so other masks; the same crops and masks for every fill, so fills compare on equal terms) plus ``cfg.n_authentic`` untouched crops. ``train=False`` skips building the
    training set.
    """
    if cfg.data == "generated":
        split = photo_split()
        kw = {"area": cfg.area, "cache_dir": cfg.cache_dir}
        tr = InpaintingSet(split["train"], cfg.train_fills, cfg.size, cfg.n_train if train else 1, cfg.seed,
                           augment=cfg.augment, **kw)
        if train:
            tr.build()
        val = InpaintingSet(split["val"], cfg.train_fills, cfg.size, cfg.n_val, cfg.seed + 1000, **kw).build(False)
        images, masks, fills = [], [], []
        for fill in cfg.test_fills:  # one seed for all fills: the same crops and masks, filled each way
            items = _items(InpaintingSet(split["test"], (fill,), cfg.eval_size, cfg.n_test, cfg.seed + 2000, **kw))
            images, masks, fills = images + items[0], masks + items[1], fills + items[2]
        authentic = []
        if cfg.n_authentic:
            auth = InpaintingSet(split["test"], cfg.test_fills[:1], cfg.eval_size, cfg.n_authentic, cfg.seed + 3000,
                                 authentic_frac=1.0, **kw)
            authentic = _items(auth)[0]
        return DeFIData(tr, val, images, masks, fills, authentic)
    folder = open_folder(cfg.data, cfg.data_dir)
    order = np.random.default_rng(cfg.seed).permutation(len(folder))
    n_val = max(1, int(round(cfg.val_frac * len(folder))))
    val_idx, train_idx = order[:n_val], order[n_val:]
    tr = ResizedPairs(folder, train_idx, cfg.size, cfg.augment)
    val = ResizedPairs(folder, val_idx[: cfg.n_val], cfg.size)
    test = open_folder(cfg.data, cfg.test_dir) if cfg.test_dir else folder
    test_idx = range(min(len(test), cfg.n_test)) if cfg.test_dir else val_idx[: cfg.n_test]
    items = [test[int(i)] for i in test_idx]
    name = cfg.data if cfg.test_dir else f"{cfg.data} (held-out split)"
    return DeFIData(tr, val, [it["image"] for it in items], [it["mask"] for it in items], [name] * len(items))


# ---- prediction ----

def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 numpy array [H, W, 3] (RGB), got "
                         f"{getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape} (a grey image? stack it to 3 "
                         "channels)")


@torch.no_grad()
def predict_maps(model: DeFINet, images: Sequence[np.ndarray], size: int | None = None,
                 batch_size: int = 4) -> list[np.ndarray]:
    """Return the inpainting probability map [H, W] in [0, 1] of each uint8 RGB image [H, W, 3].

    ``size`` resizes each input to ``size`` x ``size`` and the logits back to the image's size (bilinear), as the
    authors evaluate at 352; ``None`` runs the network at the image's own size. Same-sized images are batched,
    ``batch_size`` at a time: the full-resolution levels make activations large (16 crops of 96 px held about
    300 MB on a CPU, 4 about 100 MB), and scoring is no faster in larger batches there.
    """
    model.eval()
    device = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        _check_image(image)
        groups.setdefault(image.shape[:2], []).append(i)
    for (h, w), idx in groups.items():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            x = torch.from_numpy(np.stack([images[i] for i in chunk])).permute(0, 3, 1, 2).float().div_(255.0)
            x = x.to(device)
            if size is not None:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            logits = model(x)[1].float()
            if size is not None:
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            probs = torch.sigmoid(logits)[:, 0].cpu().numpy()
            for j, i in enumerate(chunk):
                out[i] = probs[j]
    return out  # type: ignore[return-value]


def predict(model: DeFINet, image: np.ndarray, size: int | None = None) -> np.ndarray:
    """Return DeFI-Net's inpainting probability map [H, W] in [0, 1] for one uint8 RGB image [H, W, 3]."""
    return predict_maps(model, [image], size)[0]


# ---- training ----

def _loss_fn(cfg: DeFIConfig):
    def loss(model, batch):
        edge, mask = model(batch["image"])
        return defi_loss(edge, mask, batch["mask"], cfg.seg_weight, cfg.edge_weight, cfg.faithful_quirks)
    return loss


def _val_fn(val: Dataset, size: int | None):
    images = [(val[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for i in range(len(val))]
    masks = [val[i]["mask"][0].numpy() > 0.5 for i in range(len(val))]

    def evaluate_val(model) -> dict[str, float]:
        was = model.training
        probs = predict_maps(model, images, size)
        model.train(was)
        s = standard_scores(probs, masks)
        return {"val_auc": float(s["auc"]), "val_f1": float(s["f1"])}
    return evaluate_val


@dataclass
class TrainResult:
    """A trained model (the best validation AUC's weights), its history and timings."""

    model: DeFINet
    history: list[dict]
    metrics: dict[str, float]
    best_step: int | None
    seconds: float
    steps: int


def train(cfg: DeFIConfig, run: RunDir | None = None, data: DeFIData | None = None, callbacks: Sequence[Callback] = (),
          progress: bool = True) -> TrainResult:
    """Return DeFI-Net trained by ``cfg`` (Adam, 5 x structure + 1 x edge loss, gradients clipped by value).

    The weights of the best validation pixel AUC are kept (the authors keep the best validation AUC). With a
    ``run``, checkpoints go there and an interrupted run resumes.
    """
    data = data or load_data(cfg)
    seed_everything(cfg.seed)  # the initial weights too
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler, cbs = None, list(callbacks)
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1), eta_min=cfg.lr * 0.05)
    elif cfg.schedule == "plateau":  # stepped on each evaluation, as the authors step it each epoch
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=5, factor=0.5)
        cbs.append(lambda e: plateau.step(e["val_auc"]) if e.get("kind") == "eval" else None)
    val_size = cfg.size if cfg.data != "generated" else None
    t0 = time.perf_counter()
    res = fit(model, _loss_fn(cfg), data.train, max_steps=cfg.steps, batch_size=cfg.batch_size, optimizer=opt,
              scheduler=scheduler, max_grad_value=cfg.clip_value, eval_fn=_val_fn(data.val, val_size),
              eval_every=cfg.eval_every, select="val_auc", run=run,
              checkpoint_every=cfg.eval_every if run is not None else 0, callbacks=cbs, seed=cfg.seed,
              collate_fn=_collate, num_workers=cfg.num_workers, device=cfg.device,
              mixed_precision=cfg.mixed_precision, progress=progress, desc="DeFI-Net", log_every=10)
    model = res.model
    if res.best_state is not None:
        model.load_state_dict(res.best_state)
    out = TrainResult(model.eval(), res.history, dict(res.best_metrics or res.metrics), res.best_step,
                      time.perf_counter() - t0, res.step)
    if run is not None:
        run.record("train", {"steps": out.steps, "seconds": out.seconds, "best_step": out.best_step, **out.metrics})
    return out


def _collate(items: list[dict]) -> dict:
    return {"image": torch.stack([it["image"] for it in items]), "mask": torch.stack([it["mask"] for it in items])}


# ---- evaluation ----

def detector_maps(model: DeFINet | None, images: Sequence[np.ndarray], size: int | None = None,
                  floors: Sequence[str] = tuple(FLOORS)) -> dict[str, list[np.ndarray]]:
    """Return {detector: maps} for DeFI-Net (when given) and each training-free floor."""
    maps = {name: [FLOORS[name](im) for im in images] for name in floors}
    if model is not None:
        maps = {DETECTOR: predict_maps(model, images, size), **maps}
    return maps


def evaluate(cfg: DeFIConfig, model: DeFINet | None = None, data: DeFIData | None = None,
             run: RunDir | None = None) -> dict[str, Any]:
    """Return the evaluation: per detector and fill, the standard and the official protocol's scores.

    Keys: "standard" / "official" -> {detector: {fill: scores, "all": scores}}, "authentic_fpr" -> {detector: the
    mean flagged area (p > 0.5) on untouched crops}, "inflation" -> {detector: the four F1 conventions},
    "unseen_fills", "n_per_fill", "seconds". ``model=None`` loads the committed lite model. With a ``run`` the
    headline numbers go to its metrics.json.
    """
    from kit.defi.assets import load_pretrained

    data = data or load_data(cfg, train=False)
    if model is None:
        model = load_pretrained("lite")
    device = pick_device(cfg.device)
    model = model.to(device)
    size = cfg.size if cfg.data != "generated" else None
    t0 = time.perf_counter()
    maps = detector_maps(model, data.test_images, size)
    seconds = time.perf_counter() - t0
    masks, fills = data.test_masks, data.test_fills
    result: dict[str, Any] = {"standard": {}, "official": {}, "inflation": {}, "authentic_fpr": {},
                              "unseen_fills": [f for f in cfg.unseen_fills if f in set(fills)],
                              "n_per_fill": {f: fills.count(f) for f in dict.fromkeys(fills)},
                              "seconds": seconds}
    auth = detector_maps(model, data.authentic_images, size) if data.authentic_images else {}
    for det, probs in maps.items():
        result["standard"][det] = per_method(probs, masks, fills, protocol="standard")
        result["official"][det] = per_method(probs, masks, fills, protocol="official")
        result["inflation"][det] = protocol_inflation(probs, masks)
        if det in auth:
            result["authentic_fpr"][det] = float(np.mean([(p > 0.5).mean() for p in auth[det]]))
    if run is not None:
        for det in maps:
            for proto in ("standard", "official"):
                for k in ("auc", "f1", "iou"):
                    run.record(f"{proto}/{det}/{k}", float(result[proto][det]["all"][k]))
        for f in result["unseen_fills"]:
            run.record(f"standard/{DETECTOR}/{f}/auc", float(result["standard"][DETECTOR][f]["auc"]))
    return result


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one flat row per (detector, fill) of :func:`evaluate`'s result, for printing and plotting."""
    rows = []
    unseen = set(result["unseen_fills"])
    for det, by_fill in result["standard"].items():
        for fill, s in by_fill.items():
            o = result["official"][det][fill]
            rows.append({"detector": det, "fill": fill + (" (unseen)" if fill in unseen else ""),
                         "AUC": s["auc"], "F1": s["f1"], "IoU": s["iou"], "oracle F1": s["oracle_f1"],
                         "official AUC": o["auc"], "official F1 (macro, min-max)": o["f1"],
                         "official IoU": o["iou"]})
    return rows
