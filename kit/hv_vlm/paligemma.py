"""PaliGemma as a handwriting examiner: the side-by-side canvas uint8 [S, S, 3], a ChatBackend, LoRA fine-tuning.

arXiv:2407.21788 compares GPT-4o with PaliGemma fine-tuned by LoRA on a small set of "and" pairs. PaliGemma is
trained on one image and one text prefix per prompt, so the known and questioned samples are pasted side by side
on one canvas (known left, questioned right), the prefix is a short task string ("answer en same writer? yes or
no") and the target ("yes" / "no") is the suffix the processor turns into labels. LoRA adapts the attention (and
optionally the MLP) of the Gemma decoder; the SigLIP vision tower and the projector stay frozen.

All entry points take model / processor objects (tests build tiny ones in code); ``load_paligemma`` is the one
place that reads hub weights, and only when called.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kit.hv_vlm.examiner import ChatBackend, _check_messages, check_image

__all__ = ["EXPLAIN_PREFIX", "DECIDE_PREFIX", "side_by_side", "PaliGemmaBackend", "paligemma_examples",
           "suffix_loss", "lora_finetune", "save_adapter", "load_adapter", "load_paligemma"]

EXPLAIN_PREFIX = "answer en describe the differences in handwriting"
DECIDE_PREFIX = "answer en same writer? yes or no"
LORA_RECIPE = """PaliGemma LoRA recipe [PROPOSED: the paper's fine-tuning code is not released]
  input   known | questioned side by side on one canvas (side_by_side), the processor's size (224 px)
  prefix  "answer en same writer? yes or no"    suffix  "yes" (same writer) or "no"
  LoRA    r = 8, alpha = 16 on q/k/v/o projections of the Gemma decoder (train_mlp=True adds its MLP);
          the SigLIP vision tower and everything else frozen
  train   AdamW lr 1e-4, 1-3 epochs, batch 4, bf16 autocast on CUDA; labels mask all but the suffix
  decide  greedy generation, parsed like any examiner's answer (parse_decision)"""
_MLP = ("gate_proj", "up_proj", "down_proj")


def side_by_side(known: np.ndarray, questioned: np.ndarray, size: int = 224) -> np.ndarray:
    """Canvas uint8 [size, size, 3]: ``known`` on the left, ``questioned`` on the right, a grey line between.

    Each image (uint8 [H, W] or [H, W, 3]) is scaled to fit its half with its aspect ratio kept and centred on
    white paper (letterboxed), so that PaliGemma, a one-image model, sees both samples of a pair at once.
    """
    from PIL import Image

    check_image(known, "known")
    check_image(questioned, "questioned")
    if int(size) < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    size = int(size)
    sep = max(1, size // 112)
    left_w = (size - sep) // 2
    canvas = np.full((size, size, 3), 255, np.uint8)
    for img, x0, w in ((known, 0, left_w), (questioned, left_w + sep, size - sep - left_w)):
        rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
        h0, w0 = rgb.shape[:2]
        scale = min(w / w0, size / h0)
        nw, nh = min(w, max(1, round(w0 * scale))), min(size, max(1, round(h0 * scale)))
        pil = Image.fromarray(np.ascontiguousarray(rgb)).resize((nw, nh), Image.Resampling.LANCZOS)
        y, x = (size - nh) // 2, x0 + (w - nw) // 2
        canvas[y:y + nh, x:x + nw] = np.asarray(pil)
    canvas[:, left_w:left_w + sep] = 128
    return canvas


def _canvas_size(processor) -> int:
    size = getattr(processor.image_processor, "size", None)
    for key in ("height", "shortest_edge"):
        side = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if side:
            return int(side)
    return 224


def _device_dtype(model) -> tuple[torch.device, torch.dtype]:
    weight = model.get_input_embeddings().weight
    return weight.device, weight.dtype


def _inputs(processor, canvases: list[np.ndarray], prefixes: list[str], model, suffixes: list[str] | None = None):
    text = [processor.image_token + p for p in prefixes]  # the processor adds <bos> after the image tokens
    kw = {} if suffixes is None else {"suffix": suffixes}
    batch = processor(text=text, images=canvases, return_tensors="pt", padding="longest", **kw)
    device, dtype = _device_dtype(model)
    return {k: (v.to(device, dtype) if k == "pixel_values" else v.to(device)) for k, v in batch.items()}


class PaliGemmaBackend(ChatBackend):
    """PaliGemma (``PaliGemmaForConditionalGeneration`` + ``PaliGemmaProcessor``, optionally LoRA-wrapped) as
    a ChatBackend: ``chat(...) -> str``, greedy, so deterministic.

    PaliGemma answers one prompt about one image, so ``chat`` pastes the two images side by side
    (``side_by_side`` at the processor's image size) and replaces the conversation by a short prefix: the
    first turn (no assistant answer yet) gets ``explain_prefix``, a later turn ``decide_prefix``. The
    temperature is ignored (greedy decoding); ``max_tokens`` (else ``max_new_tokens``) caps the answer.
    """

    name = "paligemma"

    def __init__(self, model, processor, *, explain_prefix: str = EXPLAIN_PREFIX,
                 decide_prefix: str = DECIDE_PREFIX, max_new_tokens: int = 64, canvas_size: int | None = None):
        if not hasattr(processor, "image_processor") or not hasattr(processor, "image_token"):
            raise TypeError(f"processor must be a PaliGemmaProcessor, got {type(processor).__name__}")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model, self.processor = model, processor
        self.explain_prefix, self.decide_prefix = explain_prefix, decide_prefix
        self.max_new_tokens = int(max_new_tokens)
        self.canvas_size = _canvas_size(processor) if canvas_size is None else int(canvas_size)
        self.last_meta = {}

    def __repr__(self) -> str:
        return f"PaliGemmaBackend({self.describe()['model']!r}, canvas {self.canvas_size})"

    def describe(self) -> dict:
        """``{"backend": "paligemma", "model": its name or class, "lora": bool, "canvas_size"}``."""
        base = getattr(self.model, "config", None)
        name = getattr(base, "_name_or_path", "") or type(self.model).__name__
        return {"backend": self.name, "model": name, "lora": hasattr(self.model, "peft_config"),
                "canvas_size": self.canvas_size}

    def prefix_for(self, messages: list[dict]) -> str:
        """The prefix for a conversation: ``decide_prefix`` once an assistant turn exists, else the explain one."""
        last_user = max(k for k, m in enumerate(messages) if m["role"] == "user")
        answered = any(m["role"] == "assistant" for m in messages[:last_user])
        return self.decide_prefix if answered else self.explain_prefix

    @torch.no_grad()
    def chat(self, messages: list[dict], images: list[np.ndarray], *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """The greedy answer to the prefix for ``messages`` about the canvas of ``images`` (known, questioned)."""
        _check_messages(messages)
        if len(images) != 2:
            raise ValueError(f"PaliGemmaBackend needs the two images (known, questioned), got {len(images)}")
        t0 = time.perf_counter()
        prefix = self.prefix_for(messages)
        canvas = side_by_side(images[0], images[1], self.canvas_size)
        batch = _inputs(self.processor, [canvas], [prefix], self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(**batch, max_new_tokens=int(max_tokens or self.max_new_tokens),
                                      do_sample=False)
        finally:
            self.model.train(was_training)
        answer = self.processor.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        self.last_meta = {"cached": False, "prefix": prefix, "seconds": time.perf_counter() - t0,
                          "greedy": True}
        return answer.strip()


def paligemma_examples(knowns: Sequence[np.ndarray], questioneds: Sequence[np.ndarray], labels: Sequence[int], *,
                       size: int = 224, prefix: str = DECIDE_PREFIX) -> list[dict]:
    """Fine-tuning examples [P] ``{"image": canvas uint8 [size, size, 3], "prefix": str, "suffix": "yes"|"no"}``
    of the pairs ``(knowns[p], questioneds[p])``, label 1 (same writer) -> "yes"."""
    if not (len(knowns) == len(questioneds) == len(labels)):
        raise ValueError(f"knowns, questioneds and labels differ in length: "
                         f"{len(knowns)}, {len(questioneds)}, {len(labels)}")
    out = []
    for p, (k, q, y) in enumerate(zip(knowns, questioneds, labels)):
        if int(y) not in (0, 1):
            raise ValueError(f"labels[{p}] must be 0 (different writer) or 1 (same writer), got {y}")
        out.append({"image": side_by_side(k, q, size), "prefix": prefix, "suffix": "yes" if int(y) else "no"})
    return out


def _check_examples(examples: Sequence[dict]) -> None:
    if not examples:
        raise ValueError("examples must be a non-empty list (see paligemma_examples)")
    for k, ex in enumerate(examples):
        if not isinstance(ex, dict) or not {"image", "prefix", "suffix"} <= set(ex):
            raise ValueError(f"examples[{k}] must be a dict with 'image', 'prefix' and 'suffix'")


def _loss(model, processor, examples: Sequence[dict]) -> torch.Tensor:
    batch = _inputs(processor, [e["image"] for e in examples], [e["prefix"] for e in examples], model,
                    [e["suffix"] for e in examples])
    device = batch["input_ids"].device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = model(**batch).loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the suffix loss is not finite ({loss.item()}); lower lr")
    return loss


@torch.no_grad()
def suffix_loss(model, processor, examples: Sequence[dict], batch_size: int = 4) -> float:
    """Mean cross-entropy (per batch, averaged) of the ``examples``' suffix tokens ("yes" / "no" + <eos>)."""
    _check_examples(examples)
    was_training = model.training
    model.eval()
    try:
        losses = [_loss(model, processor, examples[i:i + batch_size]).item()
                  for i in range(0, len(examples), batch_size)]
    finally:
        model.train(was_training)
    return float(np.mean(losses))


def _lora_targets(model, names: tuple[str, ...]) -> list[str]:
    return sorted(n for n, m in model.named_modules()
                  if ".language_model." in f".{n}." and n.rsplit(".", 1)[-1] in names
                  and isinstance(m, torch.nn.Linear))


def lora_finetune(model, processor, examples: Sequence[dict], *, r: int = 8, alpha: int = 16, lr: float = 1e-4,
                  epochs: int = 1, batch_size: int = 4,
                  target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"), train_mlp: bool = False,
                  dropout: float = 0.0, seed: int = 0, progress: bool = True, history: list | None = None):
    """The peft-wrapped ``model`` after LoRA fine-tuning on ``examples`` (from ``paligemma_examples``).

    LoRA of rank ``r`` (scale ``alpha / r``) on ``target_modules`` of the Gemma decoder only (plus its MLP,
    gate / up / down, with ``train_mlp``); every other weight, the SigLIP vision tower and the projector
    included, stays frozen, as in the PaliGemma fine-tune of arXiv:2407.21788. Labels are the suffix tokens
    (the processor masks image and prefix). AdamW at ``lr``, shuffled by ``seed``; bf16 autocast on CUDA
    only. A model that is already a peft model trains its existing adapter. ``history``: a list that receives
    each step's loss. Save with ``save_adapter``.
    """
    from peft import LoraConfig, PeftModel, get_peft_model
    from tqdm.auto import tqdm

    _check_examples(examples)
    if int(epochs) < 1 or int(batch_size) < 1 or lr <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    if not isinstance(model, PeftModel):
        names = tuple(target_modules) + (_MLP if train_mlp else ())
        targets = _lora_targets(model, names)
        if not targets:
            raise ValueError(f"no Linear layer named {names} in the model's language_model; check target_modules")
        config = LoraConfig(r=int(r), lora_alpha=alpha, lora_dropout=float(dropout), target_modules=targets,
                            bias="none")
        model = get_peft_model(model, config)
    params = []
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
        if p.requires_grad:
            params.append(p)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(int(seed))
    n_steps = int(epochs) * math.ceil(len(examples) / int(batch_size))
    bar = tqdm(total=n_steps, disable=not progress, desc="LoRA fine-tune")
    model.train()
    try:
        for _ in range(int(epochs)):
            order = torch.randperm(len(examples), generator=gen).tolist()
            for i in range(0, len(order), int(batch_size)):
                loss = _loss(model, processor, [examples[j] for j in order[i:i + int(batch_size)]])
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if history is not None:
                    history.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    finally:
        bar.close()
        model.eval()
    return model


def save_adapter(model, path: str | Path) -> Path:
    """The folder ``path`` after writing the LoRA adapter of peft ``model`` there (adapter weights + config)."""
    if not hasattr(model, "peft_config"):
        raise TypeError(f"save_adapter needs a peft model (from lora_finetune), got {type(model).__name__}")
    path = Path(path)
    model.save_pretrained(str(path))
    return path


def load_adapter(model, path: str | Path, *, is_trainable: bool = False):
    """The peft model: base ``model`` (a fresh PaliGemma) with the LoRA adapter saved at ``path``."""
    from peft import PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(f"no LoRA adapter at {path} (adapter_config.json missing); see save_adapter")
    return PeftModel.from_pretrained(model, str(path), is_trainable=is_trainable).eval()


def load_paligemma(model_id: str = "google/paligemma-3b-pt-224", adapter: str | Path | None = None,
                   device: str = "auto"):
    """``(model, processor)``: PaliGemma ``model_id`` from the Hugging Face Hub (bf16 on CUDA, float32 on CPU),
    with the LoRA ``adapter`` folder applied if given. Downloads only when called (the weights are gated:
    accept Google's licence on the Hub and log in first)."""
    from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    try:
        processor = PaliGemmaProcessor.from_pretrained(model_id)
        model = PaliGemmaForConditionalGeneration.from_pretrained(model_id, dtype=dtype)
    except OSError as exc:
        raise RuntimeError(
            f"could not load PaliGemma {model_id!r}: {exc}. The weights are gated on the Hugging Face Hub: accept "
            "the licence there, log in (`hf auth login`), and run once online (HF_HUB_OFFLINE unset) so that "
            "they are cached; offline they must already be in the cache."
        ) from exc
    model = model.to(device).eval()
    if adapter is not None:
        model = load_adapter(model, adapter)
    return model, processor
