"""``fit``: the one training loop every series uses, on Hugging Face Accelerate.

The same call runs on one CPU, one GPU, or under ``accelerate launch --num_processes N`` (DDP over gloo or NCCL);
only the main process writes checkpoints and metrics. Data order is a pure function of ``(seed, epoch)``, RNG
states travel with each checkpoint, so a run interrupted at step k and resumed reaches the same weights as an
uninterrupted one (single process; exact up to floating-point reduction order).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from kit.core.checkpoint import load_training_state, prune_checkpoints, save_training_state
from kit.core.device import pick_device
from kit.core.run import RunDir
from kit.core.seed import seed_everything

Batch = Any
LossFn = Callable[[torch.nn.Module, Batch], "torch.Tensor | dict[str, torch.Tensor]"]
Callback = Callable[[dict], None]


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained (unwrapped) model, the logged history and the last evaluation."""

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    resumed_from: int | None = None
    seconds: float = 0.0


class EpochShuffleSampler(Sampler[int]):
    """Indices of one epoch: a permutation that depends only on ``(seed, epoch)``, sharded by rank.

    Each of ``num_replicas`` processes takes every ``num_replicas``-th index, so the shards are disjoint and
    together cover the epoch (the tail is padded by wrapping so every rank gets the same count).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, num_replicas: int = 1):
        if n < 1:
            raise ValueError("the training dataset is empty")
        self.n, self.seed, self.shuffle = n, int(seed), shuffle
        self.rank, self.num_replicas = rank, num_replicas
        self.epoch = 0
        self.per_rank = math.ceil(n / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.num_replicas
        order = (order * math.ceil(total / self.n))[:total]
        return iter(order[self.rank : total : self.num_replicas])

    def __len__(self) -> int:
        return self.per_rank


def _make_accelerator(device: str, mixed_precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    dev = pick_device(device)
    if mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {mixed_precision!r}")
    if mixed_precision == "fp16" and dev.type != "cuda":
        raise ValueError("mixed_precision='fp16' needs a CUDA device; use 'bf16' or 'no' on CPU")
    # Notebooks call fit several times with different settings; the state singleton must follow the call.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision=mixed_precision)


def _takes_step(loss_fn: Callable) -> bool:
    """True when ``loss_fn`` accepts a third positional argument (the optimizer step index)."""
    try:
        params = list(inspect.signature(loss_fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, dict):
        if "loss" not in out:
            raise ValueError(f"loss_fn returned a dict without a 'loss' entry (keys: {sorted(out)})")
        extras = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items() if k != "loss"}
        return out["loss"], extras
    if not torch.is_tensor(out) or out.ndim != 0:
        raise ValueError("loss_fn must return a scalar tensor or a dict with a scalar 'loss'")
    return out, {}


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Dataset | DataLoader | Callable[[int], Batch],
    *,
    max_steps: int,
    batch_size: int = 64,
    optimizer: torch.optim.Optimizer | Callable[[Iterable], torch.optim.Optimizer] | None = None,
    lr: float = 1e-3,
    scheduler: Any | Callable[[torch.optim.Optimizer], Any] | None = None,
    mixed_precision: str = "no",
    grad_accum_steps: int = 1,
    max_grad_norm: float | None = None,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    log_every: int = 10,
    run: RunDir | None = None,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 2,
    resume: bool = True,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    shuffle: bool = True,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
    device: str = "auto",
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Return a :class:`FitResult` after ``max_steps`` optimizer steps of ``loss_fn(model, batch)``.

    ``data`` is a map-style ``Dataset`` (batched here, in an order fixed by ``seed`` and the epoch: exact
    resume), a ``DataLoader`` (used as given; resume is exact only at epoch boundaries), or a callable
    ``data(step) -> batch`` for generators that draw fresh samples (use the global torch RNG inside: its state is
    checkpointed). ``loss_fn(model, batch)`` returns a scalar tensor or a dict with ``"loss"`` and extra scalars to
    log; a ``loss_fn(model, batch, step)`` also receives the 0-based optimizer step (for epoch-based warm-ups).

    Every ``log_every`` steps each callback receives ``{"step", "kind": "train", "loss", "lr", ...}``; every
    ``eval_every`` steps (and at the end) ``eval_fn(model)`` runs and callbacks receive
    ``{"step", "kind": "eval", **metrics}``. With a ``run``, a checkpoint (model, optimizer, scheduler, RNG,
    step, history) is written every ``checkpoint_every`` steps, at the end, and on Ctrl-C; with
    ``resume=True`` training continues from the run's latest checkpoint.
    """
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
    if checkpoint_every and run is None:
        raise ValueError("checkpoint_every needs a run=RunDir(...) to write checkpoints into")
    accelerator = _make_accelerator(device, mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    seed_everything(seed + rank)

    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer(model.parameters())
    if scheduler is not None and callable(scheduler) and not hasattr(scheduler, "state_dict"):
        scheduler = scheduler(optimizer)

    start_step, history, resumed_from = 0, [], None
    latest = run.latest_checkpoint() if (run is not None and resume) else None
    if latest is not None:
        state = load_training_state(latest, model=model, optimizer=optimizer, scheduler=scheduler)
        start_step = resumed_from = state["step"]
        history = list(state["extra"].get("history", []))
        if rank:  # RNG states in the checkpoint are rank 0's; offset the others again
            seed_everything(seed + rank + 7919 * start_step)

    sampler = None
    if isinstance(data, Dataset):
        sampler = EpochShuffleSampler(len(data), seed, shuffle, rank, world)
        loader: Any = DataLoader(data, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
                                 drop_last=False, generator=torch.Generator().manual_seed(seed),
                                 num_workers=num_workers, persistent_workers=num_workers > 0,
                                 pin_memory=accelerator.device.type == "cuda")
    elif isinstance(data, DataLoader):
        loader = data
    elif callable(data):
        loader = None
    else:
        raise ValueError("data must be a Dataset, a DataLoader or a callable step -> batch")
    if loader is not None and len(loader) == 0:
        raise ValueError("the training data yields no batches (dataset smaller than one batch?)")

    prepared = accelerator.prepare(model, optimizer) if scheduler is None else accelerator.prepare(
        model, optimizer, scheduler)
    model_p, optimizer_p = prepared[0], prepared[1]
    scheduler_p = prepared[2] if scheduler is not None else None
    raw_model = accelerator.unwrap_model(model_p)

    def batches() -> Iterator[Batch]:
        micro = start_step * grad_accum_steps
        if loader is None:
            step = start_step
            while True:
                yield data(step)
                step += 1
        epoch, skip = divmod(micro, len(loader))
        while True:
            if sampler is not None:
                sampler.set_epoch(epoch)
            elif hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
            for i, b in enumerate(loader):
                if i >= skip:
                    yield b
            epoch, skip = epoch + 1, 0

    from accelerate.utils import send_to_device

    def save(step: int) -> Path | None:
        if run is None or not accelerator.is_main_process:
            return None
        path = save_training_state(run.checkpoint_path(step), model=raw_model, step=step, optimizer=optimizer_p,
                                   scheduler=scheduler_p, extra={"history": history})
        prune_checkpoints(run.checkpoints_dir, keep_checkpoints)
        return path

    def emit(event: dict) -> None:
        history.append(event)
        for cb in callbacks:
            cb(event)

    def evaluate(step: int) -> dict[str, float]:
        model_p.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in eval_fn(raw_model).items()}
        model_p.train()
        emit({"step": step, "kind": "eval", **metrics})
        return metrics

    step_aware = _takes_step(loss_fn)
    step, metrics, ckpt, t0 = start_step, {}, None, time.perf_counter()
    it = batches()
    bar_kw = {} if (progress and accelerator.is_main_process) else {"disable": True}  # TQDM_DISABLE still applies
    bar = tqdm(total=max_steps, initial=start_step, desc=desc, **bar_kw)
    running: list[float] = []
    extras_acc: dict[str, list[float]] = {}
    model_p.train()
    try:
        while step < max_steps:
            total = 0.0
            for micro in range(grad_accum_steps):
                batch = send_to_device(next(it), accelerator.device)
                sync = micro == grad_accum_steps - 1
                with (nullcontext() if sync or world == 1 else accelerator.no_sync(model_p)), accelerator.autocast():
                    out = loss_fn(model_p, batch, step) if step_aware else loss_fn(model_p, batch)
                    loss, extras = _split_loss(out)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower lr or check data")
                    accelerator.backward(loss / grad_accum_steps)
                total += float(loss.detach()) / grad_accum_steps
                for k, v in extras.items():
                    extras_acc.setdefault(k, []).append(v)
            if max_grad_norm is not None:
                accelerator.clip_grad_norm_(model_p.parameters(), max_grad_norm)
            optimizer_p.step()
            if scheduler_p is not None:
                scheduler_p.step()
            optimizer_p.zero_grad(set_to_none=True)
            step += 1
            running.append(total)
            bar.update(1)
            if log_every and (step % log_every == 0 or step == max_steps):
                loss_mean = float(accelerator.reduce(torch.tensor(sum(running) / len(running),
                                                                  device=accelerator.device), "mean"))
                event = {"step": step, "kind": "train", "loss": loss_mean,
                         "lr": float(optimizer_p.param_groups[0]["lr"])}
                event.update({k: sum(v) / len(v) for k, v in extras_acc.items()})
                running, extras_acc = [], {}
                bar.set_postfix(loss=f"{loss_mean:.4g}")
                emit(event)
            if eval_fn is not None and eval_every and step % eval_every == 0 and step < max_steps:
                metrics = evaluate(step)
            if checkpoint_every and step % checkpoint_every == 0 and step < max_steps:
                ckpt = save(step)
    except KeyboardInterrupt:
        if run is not None:
            ckpt = save(step)
            print(f"\ninterrupted at step {step}; resumable checkpoint: {ckpt}")
        raise
    finally:
        bar.close()
    if eval_fn is not None and (step > start_step or not metrics):
        metrics = evaluate(step)
    if run is not None and step > start_step:
        ckpt = save(step)
    elif run is not None:
        ckpt = latest
    accelerator.wait_for_everyone()
    return FitResult(model=raw_model, history=history, step=step, metrics=metrics, checkpoint=ckpt,
                     resumed_from=resumed_from, seconds=time.perf_counter() - t0)
