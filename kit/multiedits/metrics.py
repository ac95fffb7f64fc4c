"""Real-image editing metrics: PIE-Bench's (PnPInversion ``evaluation/``) and the ParallelEdits paper's CLIP metrics.

PIE-Bench (Ju et al., PnPInversion) scores an edit ``edited`` of a ``source`` image with

* :func:`unedited_region_scores`: PSNR, SSIM, MSE and (with an LPIPS model) LPIPS on the *unedited* part, both
  images multiplied by ``1 - mask`` (``mask`` = the annotated edited region, decoded with
  ``kit.data.benchmarks.rle_decode(rle, shape, force_border=True)``); NaN when the mask covers the whole image;
* :func:`structure_distance`: the MSE between the DINO ViT-B/8 self-similarities of the last block's keys;
* :func:`clip_score`: CLIP (ViT-L/14) score of the edit against the target prompt, whole or edited part (×mask).

ParallelEdits (arXiv:2406.00985, Table 1) adds D-CLIP, AspAcc-CLIP and AspAcc-LLaVA; their exact formulas (and the
LLaVA version and prompt) are not published with the captions we have, so :func:`directional_clip`,
:func:`aspect_accuracy_clip` and :func:`aspect_accuracy_vlm` (a yes/no question per aspect to any image-text-to-text
model of transformers, LLaVA 1.5 by default: :func:`build_vlm_judge`) are ``[PROPOSED]``.

Conventions (PnPInversion's, unless said): pixels are scaled to [0, 1] (``data_range=1``); PSNR, SSIM and MSE are
torchmetrics' defaults computed over the *whole* masked image (the zeroed edited region counts as agreeing pixels,
exactly as PnPInversion does, so they are not "mean over unedited pixels"); SSIM is torchmetrics' (Gaussian window
11, sigma 1.5, K1 0.01, K2 0.03, reflect padding, the SSIM map averaged over every pixel and channel: this differs
from skimage's ``structural_similarity``, which averages only the interior 5 px away from the border); LPIPS is squeeze-net LPIPS on inputs
in [-1, 1]; the CLIP score is ``100 * max(cos, 0)`` as torchmetrics' ``CLIPScore`` (what PnPInversion calls).
Models are built only when asked (``build_lpips``, ``build_dino``, ``build_clip``, ``build_vlm_judge``); nothing is
downloaded otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ClipBundle",
    "VLMJudge",
    "aspect_accuracy_clip",
    "aspect_accuracy_vlm",
    "aspect_questions",
    "build_clip",
    "build_dino",
    "build_lpips",
    "build_vlm_judge",
    "clip_image_embeds",
    "clip_score",
    "clip_text_embeds",
    "dino_key_self_similarity",
    "directional_clip",
    "nanmean",
    "nanmean_rows",
    "structure_distance",
    "to_rgb_array",
    "unedited_region_scores",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASPECT_KINDS = ("swap", "add", "delete")


# ----------------------------------------------------------------------------------------------- inputs and checks
def to_rgb_array(image: Any, name: str = "image") -> np.ndarray:
    """Return ``image`` (a PIL image or a uint8 array [H, W, 3]) as a uint8 array [H, W, 3]; PIL images are
    converted to RGB. Raises ValueError naming ``name`` for anything else."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a PIL image or a uint8 array [H, W, 3], got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must have shape [H, W, 3], got {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got dtype {image.dtype}")
    return image


def _pair(edited: Any, source: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_rgb_array(edited, "edited"), to_rgb_array(source, "source")
    if a.shape != b.shape:
        raise ValueError(f"edited and source images differ in size: {a.shape[:2]} vs {b.shape[:2]} (H, W)")
    return a, b


def _check_mask(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a bool [H, W] array; it must be bool or hold only 0 and 1, and match ``shape``."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] in (1, 3) and m.dtype != object:
        if m.shape[2] == 3 and not np.array_equal(m, np.repeat(m[..., :1], 3, axis=2)):
            raise ValueError(f"{name} has 3 channels that differ; give one [H, W] mask")
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"{name} must be an [H, W] array, got shape {tuple(m.shape)}")
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{name} shape {tuple(m.shape)} does not match the image size {tuple(shape)} (H, W)")
    if m.dtype == bool:
        return m
    if not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"{name} must be bool or numeric 0/1, got dtype {m.dtype}")
    if not np.all((m == 0) | (m == 1)):
        bad = np.unique(m[(m != 0) & (m != 1)])[:5].tolist()
        raise ValueError(f"{name} must hold only 0 and 1 (the edited region), found values {bad}")
    return m.astype(bool)


def _to_unit_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()


# -------------------------------------------------------------------------------------------------- aggregation
def nanmean(values: Iterable[Any]) -> float:
    """Return the mean of ``values`` ignoring NaN (PIE-Bench's aggregation of the per-image metrics); NaN when
    there is no finite value. Values may be floats, numpy or 0-d torch scalars; None counts as NaN."""
    arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    keep = ~np.isnan(arr)
    return float(arr[keep].mean()) if keep.any() else float("nan")


def nanmean_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Return {key: nanmean over rows} for the numeric keys of a list of per-image metric dicts (a key missing
    from a row counts as NaN for that row)."""
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
                keys.setdefault(k, None)
    return {k: nanmean(r.get(k) for r in rows) for k in keys}


# -------------------------------------------------------------------------------------------------- pixel metrics
def build_lpips(net: str = "squeeze", pretrained: bool = True) -> torch.nn.Module:
    """Return an LPIPS model (torchmetrics' implementation, the one PnPInversion calls) with the ``net`` backbone
    ("squeeze" as PnPInversion; "alex", "vgg"). ``pretrained=True``: the LPIPS linear heads shipped inside
    torchmetrics and the torchvision ImageNet backbone (torchvision downloads it on first use unless cached);
    ``pretrained=False``: random heads and a random backbone, nothing downloaded (tests only, scores meaningless).
    Call it as ``model(x, y)`` on float tensors [N, 3, H, W] in [-1, 1]."""
    if net not in ("squeeze", "alex", "vgg"):
        raise ValueError(f"net must be 'squeeze', 'alex' or 'vgg', got {net!r}")
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    return _NoTrainLpips(net=net, pretrained=bool(pretrained), pnet_rand=not pretrained)


def unedited_region_scores(edited: Any, source: Any, mask: Any, lpips_model: Any = None) -> dict[str, float]:
    """Return {"psnr", "ssim", "mse"} (+ "lpips" when ``lpips_model`` is given) between ``edited`` and ``source``
    on the unedited part: both images (scaled to [0, 1]) are multiplied by ``1 - mask`` and compared whole, as
    PnPInversion's ``*_unedit_part`` metrics do. ``mask`` is the edited region (bool or 0/1 [H, W]). All values are
    NaN when the mask covers the whole image. PSNR = 10 log10(1 / MSE) (inf for identical images); SSIM is
    torchmetrics' default (Gaussian 11 / 1.5, data_range 1); LPIPS gets inputs ``2 x - 1`` in [-1, 1]."""
    a, b = _pair(edited, source)
    keep = ~_check_mask(mask, a.shape[:2])
    keys = ["psnr", "ssim", "mse"] + (["lpips"] if lpips_model is not None else [])
    if not keep.any():
        return {k: float("nan") for k in keys}
    from torchmetrics.functional.image import structural_similarity_index_measure

    w = torch.from_numpy(keep.astype(np.float32))[None, None]
    x, y = _to_unit_tensor(a) * w, _to_unit_tensor(b) * w
    mse = float(torch.mean((x.double() - y.double()) ** 2))
    out = {
        "psnr": float("inf") if mse == 0 else float(10.0 * math.log10(1.0 / mse)),
        "ssim": float(structural_similarity_index_measure(x, y, data_range=1.0)),
        "mse": mse,
    }
    if lpips_model is not None:
        with torch.no_grad():
            out["lpips"] = float(torch.as_tensor(lpips_model(x * 2 - 1, y * 2 - 1)).reshape(-1).mean())
    return out


# --------------------------------------------------------------------------------------------- structure distance
def build_dino(name: Any = "facebook/dino-vitb8", pretrained: bool = True) -> torch.nn.Module:
    """Return a ``transformers.ViTModel`` in eval mode: ``name`` a hub id or folder (DINO ViT-B/8 by default, the
    backbone of PnPInversion's structure distance; loaded, possibly downloaded, only here) or a ``ViTConfig``
    (random weights, nothing loaded). ``pretrained=False`` with a name builds random weights from its config."""
    from transformers import ViTConfig, ViTModel

    if isinstance(name, ViTConfig):
        model = ViTModel(name, add_pooling_layer=False)
    elif pretrained:
        model = ViTModel.from_pretrained(name, add_pooling_layer=False)
    else:
        model = ViTModel(ViTConfig.from_pretrained(name), add_pooling_layer=False)
    return model.eval()


def _vit_layers(model: torch.nn.Module) -> Sequence[torch.nn.Module]:
    """The encoder layers of a transformers ViTModel (``layers`` in transformers 5, ``encoder.layer`` in 4.x)."""
    layers = getattr(model, "layers", None)
    if layers is None:
        layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"model must be a transformers ViTModel (with encoder layers), got {type(model).__name__}")
    return layers


def _last_key_projection(model: torch.nn.Module) -> torch.nn.Module:
    """The key ``nn.Linear`` of the last encoder layer of a transformers ViT (``k_proj`` in transformers 5,
    ``attention.attention.key`` in 4.x). Its output [B, T, D] is all heads' keys side by side, i.e. DINO's
    ``qkv`` key slice that PnPInversion reshapes to heads and concatenates back per token."""
    layer = _vit_layers(model)[-1]
    found = [m for n, m in layer.named_modules() if n.rsplit(".", 1)[-1] in ("k_proj", "key")
             and isinstance(m, torch.nn.Linear)]
    if len(found) != 1:
        raise ValueError(f"could not find one key projection in the last ViT layer ({type(layer).__name__})")
    return found[0]


def _dino_input(img: np.ndarray, size: int, pixel_range: float) -> torch.Tensor:
    from torchvision.transforms.functional import resize

    x = torch.from_numpy(img.astype(np.float32) * (pixel_range / 255.0)).permute(2, 0, 1).unsqueeze(0)
    x = resize(x, [size], antialias=True, max_size=max(480, size + 1))  # shorter side -> size, as Resize(224)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def dino_key_self_similarity(image: Any, model: torch.nn.Module, size: int = 224,
                             pixel_range: float = 255.0) -> torch.Tensor:
    """Return the [T, T] cosine self-similarity of the last ViT block's keys (all heads concatenated per token,
    CLS included; T = 1 + patches) of ``image``, resized (shorter side) to ``size`` and ImageNet-normalised.

    ``pixel_range``: the pixel scale fed to the normalisation. PnPInversion feeds raw 0..255 values (it never
    divides by 255 before ``Normalize``), so the default 255 reproduces its numbers; 1.0 is the usual [0, 1]."""
    if int(size) <= 0:
        raise ValueError(f"size must be a positive int, got {size}")
    img = to_rgb_array(image)
    proj = _last_key_projection(model)
    x = _dino_input(img, int(size), float(pixel_range))
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    grabbed: list[torch.Tensor] = []
    handle = proj.register_forward_hook(lambda _m, _i, out: grabbed.append(out.detach()))
    try:
        with torch.no_grad():
            cfg_size = getattr(model.config, "image_size", None)
            model(pixel_values=x, interpolate_pos_encoding=tuple(x.shape[-2:]) != (cfg_size, cfg_size))
    finally:
        handle.remove()
    if len(grabbed) != 1:
        raise RuntimeError(f"the key hook fired {len(grabbed)} times, expected once")
    keys = grabbed[0][0].float()  # [T, D]
    norms = keys.norm(dim=-1, keepdim=True)
    return (keys @ keys.T) / torch.clamp(norms @ norms.T, min=1e-8)


def structure_distance(edited: Any, source: Any, model: torch.nn.Module, size: int = 224,
                       pixel_range: float = 255.0) -> float:
    """Return PIE-Bench's structure distance: the MSE between the DINO key self-similarities
    (:func:`dino_key_self_similarity`) of ``edited`` and ``source`` (whole images, as PnPInversion's default
    ``structure_distance``). PIE-Bench tables print it ×10³."""
    a, b = _pair(edited, source)
    sa = dino_key_self_similarity(a, model, size=size, pixel_range=pixel_range)
    sb = dino_key_self_similarity(b, model, size=size, pixel_range=pixel_range)
    return float(F.mse_loss(sa, sb))


# ---------------------------------------------------------------------------------------------------------- CLIP
@dataclass
class ClipBundle:
    """A CLIP model (``get_image_features`` / ``get_text_features``), its tokenizer and image processor."""

    model: Any
    tokenizer: Any
    image_processor: Any

    @property
    def max_length(self) -> int:
        cfg = getattr(getattr(self.model, "config", None), "text_config", None)
        return int(getattr(cfg, "max_position_embeddings", 77))


def build_clip(name: str = "openai/clip-vit-large-patch14") -> ClipBundle:
    """Return a :class:`ClipBundle` for the hub id or folder ``name`` (CLIP ViT-L/14 by default, as PIE-Bench and
    torchmetrics' CLIPScore); loaded, possibly downloaded, only when called. The scores are computed here rather
    than through torchmetrics' ``CLIPScore`` (same formula) because torchmetrics 1.9 expects ``get_image_features``
    to return a tensor, which transformers 5 no longer does."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    return ClipBundle(CLIPModel.from_pretrained(name).eval(), AutoTokenizer.from_pretrained(name),
                      CLIPImageProcessor.from_pretrained(name))


def _features(out: Any) -> torch.Tensor:
    """transformers 4.x returns a tensor from get_*_features, 5.x may return an output with ``pooler_output``."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _device(clip: ClipBundle) -> torch.device:
    p = next(clip.model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def clip_image_embeds(images: Sequence[Any], clip: ClipBundle) -> torch.Tensor:
    """Return the (unnormalised) CLIP image embeddings [N, D] of ``images`` (PIL or uint8 [H, W, 3])."""
    arrays = [to_rgb_array(im, f"images[{i}]") for i, im in enumerate(images)]
    pix = clip.image_processor(images=arrays, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return _features(clip.model.get_image_features(pixel_values=pix.to(_device(clip)))).float().cpu()


def clip_text_embeds(texts: Sequence[str], clip: ClipBundle) -> torch.Tensor:
    """Return the (unnormalised) CLIP text embeddings [N, D] of ``texts``, truncated to the model's length."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a sequence of strings")
    tok = clip.tokenizer(list(texts), padding=True, truncation=True, max_length=clip.max_length, return_tensors="pt")
    dev = _device(clip)
    with torch.no_grad():
        out = clip.model.get_text_features(input_ids=tok["input_ids"].to(dev),
                                           attention_mask=tok["attention_mask"].to(dev))
    return _features(out).float().cpu()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def clip_score(image: Any, text: str, clip: ClipBundle, mask: Any = None) -> float:
    """Return the CLIP score ``100 * max(cos(E_I, E_T), 0)`` (torchmetrics' ``CLIPScore``, PnPInversion's metric)
    of ``image`` and ``text``. With ``mask`` (the edited region) the image is ``uint8(image * mask)`` first,
    PIE-Bench's "edited part" variant; NaN when the mask is empty."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    img = to_rgb_array(image)
    if mask is not None:
        m = _check_mask(mask, img.shape[:2])
        if not m.any():
            return float("nan")
        img = (img * m[..., None]).astype(np.uint8)
    e_i, e_t = clip_image_embeds([img], clip), clip_text_embeds([text], clip)
    cos = float((_unit(e_i) * _unit(e_t)).sum())
    return 100.0 * max(cos, 0.0)


def directional_clip(edited: Any, source: Any, target_prompt: str, source_prompt: str, clip: ClipBundle) -> float:
    """[PROPOSED] D-CLIP = cos(CLIP_I(edit) - CLIP_I(src), CLIP_T(P_t) - CLIP_T(P_s)), each embedding
    unit-normalised before the differences (as StyleGAN-NADA's / InstructPix2Pix's directional similarity).
    Returns a cosine in [-1, 1] (not ×100); NaN when either difference is zero (identical images or prompts)."""
    a, b = _pair(edited, source)
    for nm, t in (("target_prompt", target_prompt), ("source_prompt", source_prompt)):
        if not isinstance(t, str):
            raise ValueError(f"{nm} must be a string, got {type(t).__name__}")
    e_img = _unit(clip_image_embeds([a, b], clip))
    e_txt = _unit(clip_text_embeds([target_prompt, source_prompt], clip))
    d_i, d_t = (e_img[0] - e_img[1]).double(), (e_txt[0] - e_txt[1]).double()
    n_i, n_t = float(d_i.norm()), float(d_t.norm())
    if n_i < 1e-12 or n_t < 1e-12:
        return float("nan")
    return float((d_i @ d_t) / (n_i * n_t))


def _aspect_triple(aspect: Any, i: int) -> tuple[str, str, str]:
    """(kind, source_text, target_text) of a tuple, an ``aspects.EditAction`` or an ``aspects.Aspect``."""
    act = aspect if hasattr(aspect, "source_words") else getattr(aspect, "action", aspect)
    if hasattr(act, "kind") and hasattr(act, "source_words"):
        kind, src, tgt = act.kind, " ".join(act.source_words), " ".join(act.target_words)
    elif isinstance(aspect, (tuple, list)) and len(aspect) == 3:
        kind, src, tgt = aspect
    else:
        raise ValueError(f"aspects[{i}] must be (kind, source_text, target_text) or an EditAction, got {aspect!r}")
    if kind not in ASPECT_KINDS:
        raise ValueError(f"aspects[{i}] kind must be one of {ASPECT_KINDS}, got {kind!r}")
    need = {"swap": (src, tgt), "add": (tgt,), "delete": (src,)}[kind]
    if not all(isinstance(t, str) and t.strip() for t in need):
        raise ValueError(f"aspects[{i}] ({kind}) needs non-empty text: source {src!r}, target {tgt!r}")
    return kind, src or "", tgt or ""


def aspect_accuracy_clip(edited: Any, source: Any, aspects: Sequence[Any], clip: ClipBundle) -> dict[str, Any]:
    """[PROPOSED] AspAcc-CLIP: for each aspect (kind, source_text, target_text), with sim = cosine of CLIP
    image and text embeddings:

    * swap ok if sim(edit, tgt) > sim(edit, src);
    * add ok if sim(edit, tgt) > sim(source image, tgt);
    * delete ok if sim(edit, src) < sim(source image, src).

    ``aspects`` may also hold ``kit.multiedits.aspects.EditAction`` / ``Aspect`` objects (their source / target
    words). Returns {"ok": [bool per aspect], "accuracy": fraction ok, "sims": [(lhs, rhs) compared per aspect]}."""
    a, b = _pair(edited, source)
    if isinstance(aspects, (str, bytes)) or len(aspects) == 0:
        raise ValueError("aspects must be a non-empty sequence of (kind, source_text, target_text)")
    triples = [_aspect_triple(asp, i) for i, asp in enumerate(aspects)]
    texts = list(dict.fromkeys(t for _, s, g in triples for t in (s, g) if t))
    e_img = _unit(clip_image_embeds([a, b], clip)).double()
    e_txt = _unit(clip_text_embeds(texts, clip)).double()
    sim = {t: (float(e_img[0] @ e_txt[j]), float(e_img[1] @ e_txt[j])) for j, t in enumerate(texts)}
    ok, pairs = [], []
    for kind, src, tgt in triples:
        if kind == "swap":
            lhs, rhs = sim[tgt][0], sim[src][0]
            good = lhs > rhs
        elif kind == "add":
            lhs, rhs = sim[tgt][0], sim[tgt][1]
            good = lhs > rhs
        else:
            lhs, rhs = sim[src][0], sim[src][1]
            good = lhs < rhs
        ok.append(bool(good))
        pairs.append((lhs, rhs))
    return {"ok": ok, "accuracy": sum(ok) / len(ok), "sims": pairs}


# ------------------------------------------------------------------------------------- AspAcc with a VLM judge

VLM_QUESTION = "Does this image show {phrase}? Answer yes or no."


def aspect_questions(aspects: Sequence[Any], template: str = VLM_QUESTION) -> list[list[tuple[str, bool]]]:
    """[PROPOSED] The yes/no questions that decide each aspect, with the answer that means "edited": a swap is done
    when the edit shows the target phrase (yes) and no longer the source phrase (no), an addition when it shows the
    added phrase (yes), a deletion when it no longer shows the deleted phrase (no). ``aspects`` as for
    :func:`aspect_accuracy_clip`; ``template`` holds ``{phrase}``."""
    if "{phrase}" not in template:
        raise ValueError(f"the question template must contain {{phrase}}, got {template!r}")
    if isinstance(aspects, (str, bytes)) or len(aspects) == 0:
        raise ValueError("aspects must be a non-empty sequence of (kind, source_text, target_text)")
    out = []
    for i, asp in enumerate(aspects):
        kind, src, tgt = _aspect_triple(asp, i)
        ask = lambda phrase: template.format(phrase=phrase.strip())  # noqa: E731
        out.append({"swap": [(ask(tgt), True), (ask(src), False)], "add": [(ask(tgt), True)],
                    "delete": [(ask(src), False)]}[kind])
    return out


def aspect_accuracy_vlm(edited: Any, aspects: Sequence[Any], judge: Any, threshold: float = 0.5,
                        template: str = VLM_QUESTION) -> dict[str, Any]:
    """[PROPOSED] AspAcc-VLM (the paper's AspAcc-LLaVA with a pluggable judge): each aspect is right when every one of
    its :func:`aspect_questions` gets the answer meaning "edited"; ``judge(image, question)`` returns the probability
    of "yes" (a :class:`VLMJudge`, or any callable), read as yes above ``threshold``. Returns {"ok": [bool per
    aspect], "accuracy": fraction ok, "answers": [[(question, p_yes), ...] per aspect]}."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    image = to_rgb_array(edited, "edited")
    ok, answers = [], []
    for questions in aspect_questions(aspects, template):
        got = [(q, float(judge(image, q))) for q, _ in questions]
        for q, p in got:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"the judge must return a probability of yes, got {p!r} for {q!r}")
        ok.append(all((p > threshold) == want for (_, p), (_, want) in zip(got, questions)))
        answers.append(got)
    return {"ok": ok, "accuracy": sum(ok) / len(ok), "answers": answers}


def _first_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """The first token of each word as the model would write it after the prompt (with and without a leading space)."""
    ids = []
    for w in words:
        for text in (w, " " + w):
            enc = tokenizer.encode(text, add_special_tokens=False)
            if enc and enc[0] != getattr(tokenizer, "unk_token_id", None):
                ids.append(int(enc[0]))
    return sorted(set(ids))


class VLMJudge:
    """p(yes) of an image-text-to-text model of transformers (LLaVA 1.5 as in the paper's AspAcc-LLaVA, or any model
    whose processor has a chat template) for a yes/no question about an image: the question goes through the
    processor's chat template with the image, and p(yes) is the softmax over the next-token logits summed over the
    first tokens of "Yes"/"yes" against those of "No"/"no" (no sampling, so it is deterministic)."""

    YES = ("Yes", "yes")
    NO = ("No", "no")

    def __init__(self, model: torch.nn.Module, processor: Any) -> None:
        self.model, self.processor = model.eval(), processor
        tok = processor.tokenizer
        self.yes_ids, self.no_ids = _first_token_ids(tok, self.YES), _first_token_ids(tok, self.NO)
        if not self.yes_ids or not self.no_ids or set(self.yes_ids) & set(self.no_ids):
            raise ValueError(f"the tokenizer must give distinct first tokens for yes and no, got {self.yes_ids} and "
                             f"{self.no_ids}")
        if getattr(processor, "chat_template", None) is None:
            raise ValueError("the processor has no chat template: pass a processor of an instruction-tuned model")

    def prompt(self, question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    @torch.no_grad()
    def __call__(self, image: Any, question: str) -> float:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        inputs = self.processor(images=to_rgb_array(image), text=self.prompt(question), return_tensors="pt")
        param = next(self.model.parameters())
        inputs = {k: (v.to(param.device, param.dtype) if torch.is_floating_point(v) else v.to(param.device))
                  for k, v in inputs.items()}
        logits = self.model(**inputs).logits[0, -1].float()
        yes = torch.logsumexp(logits[self.yes_ids], dim=0)
        no = torch.logsumexp(logits[self.no_ids], dim=0)
        return float(torch.sigmoid(yes - no))


def build_vlm_judge(name: str = "llava-hf/llava-1.5-7b-hf", device: str | None = None,
                    dtype: torch.dtype | None = None) -> VLMJudge:
    """Return a :class:`VLMJudge` for the hub id or folder ``name`` (``[PROPOSED]`` LLaVA 1.5 7B, the paper's
    AspAcc-LLaVA judge family; its version is ``TODO(paper)``); loaded, possibly downloaded, only when called.
    ``dtype`` defaults to float16 on CUDA, float32 elsewhere."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype).to(device)
    return VLMJudge(model, AutoProcessor.from_pretrained(name))
