"""``fit``: the one training loop every series uses, on Hugging Face Accelerate.

The same call runs on one CPU, one GPU, or under ``accelerate launch --num_processes N`` (DDP over gloo or NCCL):
``batch_size`` is the global batch, split across the processes, so a step, an epoch and the learning-rate schedule
mean the same at any N; only the main process writes checkpoints and metrics. Data order is a pure function of ``(seed, epoch)``, RNG
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
    """What :func:`fit` returns: the trained (unwrapped) model, the logged history and the last evaluation.

    With ``select=`` the best evaluation is kept too: ``best_step``, ``best_metrics`` and ``best_state`` (the model's
    state dict at that evaluation, on the CPU); they survive checkpoints, so a resumed run returns the same ones.
    ``samples_seen`` counts the training samples consumed over all processes and all steps (resumed ones too).
    """

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    resumed_from: int | None = None
    seconds: float = 0.0
    samples_seen: int = 0
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early: bool = False


class GlobalBatchSampler(Sampler[list[int]]):
    """This process's share of each global batch of one epoch (a batch sampler for ``DataLoader``).

    The epoch's order is a permutation that depends only on ``(seed, epoch)``; it is cut into global batches of
    ``batch_size`` (the last one may be shorter), and process ``rank`` of ``num_replicas`` takes every
    ``num_replicas``-th sample of each, ``batch[rank::num_replicas]``. So N processes together see, step by step,
    exactly the samples one process sees, and the step count per epoch is ``ceil(n / batch_size)`` at any N.
    A global batch whose size is not a multiple of N (only the last one of an epoch can be) is padded with samples
    from the start of the epoch's order, so every process gets the same count and gradient averaging over the
    processes stays the mean over the global batch (at most N - 1 repeated samples per epoch).
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, rank: int = 0,
                 num_replicas: int = 1):
        if n < 1:
            raise ValueError("the training dataset is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size % num_replicas:
            raise ValueError(f"batch_size={batch_size} is the global batch and must be divisible by the number "
                             f"of processes ({num_replicas})")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, int(seed), shuffle
        self.rank, self.num_replicas = rank, num_replicas
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> list[int]:
        """Return the epoch's order of all ``n`` indices (the same on every process)."""
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        order, world = self.order(), self.num_replicas
        for start in range(0, self.n, self.batch_size):
            batch = order[start:start + self.batch_size]
            short = -len(batch) % world
            batch = batch + (order * world)[:short]
            yield batch[self.rank::world]

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


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


def _takes_step(fn: Callable, n: int = 3) -> bool:
    """True when ``fn`` accepts an ``n``-th positional argument (the optimizer step index)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= n or any(p.kind == p.VAR_POSITIONAL for p in params)


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, dict):
        if "loss" not in out:
            raise ValueError(f"loss_fn returned a dict without a 'loss' entry (keys: {sorted(out)})")
        extras = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items() if k != "loss"}
        return out["loss"], extras
    if not torch.is_tensor(out) or out.ndim != 0:
        raise ValueError("loss_fn must return a scalar tensor or a dict with a scalar 'loss'")
    return out, {}


def _batch_len(batch: Batch) -> int:
    """Return the number of samples in ``batch`` (the first dimension of its first tensor), or 1 if it has none."""
    if torch.is_tensor(batch):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            if torch.is_tensor(item) or isinstance(item, (list, tuple, dict)):
                return _batch_len(item)
        return len(batch)
    return 1


def _better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


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
    max_grad_value: float | None = None,
    eval_fn: Callable[..., dict[str, float]] | None = None,
    eval_every: int = 0,
    select: str | None = None,
    select_mode: str = "max",
    patience: int = 0,
    min_delta: float = 0.0,
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
    resume; a dataset with ``set_epoch(e)`` is told each epoch before it is read, resumed runs included), a ``DataLoader`` (used as given, one process only; resume is exact only at epoch boundaries), or a
    callable ``data(step) -> batch`` for generators that draw fresh samples (use the global torch RNG inside: its
    state is checkpointed). ``loss_fn(model, batch)`` returns a scalar tensor or a dict with ``"loss"`` and extra
    scalars to log; a ``loss_fn(model, batch, step)`` also receives the 0-based optimizer step (for warm-ups).
    ``max_grad_norm`` clips the global gradient norm, ``max_grad_value`` each gradient element to [-v, v] (both may
    be given: norm first).

    ``batch_size`` is the *global* batch: under ``accelerate launch --num_processes N`` each process takes
    ``batch_size / N`` samples of every batch (:class:`GlobalBatchSampler`), so the optimizer steps, the learning
    rate schedule (stepped once per optimizer step, whatever N), epochs and samples seen are those of one process;
    more processes only make each step faster. (A callable ``data`` draws its batch in each process, so its global
    batch is N times what it returns.)

    Every ``log_every`` steps each callback receives ``{"step", "kind": "train", "loss", "lr", "samples", ...}``;
    every ``eval_every`` steps (and at the end) ``eval_fn(model)`` (or ``eval_fn(model, step)``) runs and callbacks
    receive ``{"step", "kind": "eval", **metrics}``. With ``select="metric"`` the weights of the evaluation with the
    highest (``select_mode="max"``) or lowest (``"min"``) value are kept in the result and in every checkpoint.
    ``patience=k`` (with ``select``) stops early once k evaluations in a row have not beaten the best one by more
    than ``min_delta`` (``stopped_early`` in the result; a resumed stopped run does not train again).
    With a ``run``, a checkpoint (model, optimizer, scheduler, RNG, step, history, best weights) is written every
    ``checkpoint_every`` steps, at the end, and on Ctrl-C; with ``resume=True`` training continues from the run's
    latest checkpoint, and a finished run returns what it returned the first time without training again.
    """
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
    if checkpoint_every and run is None:
        raise ValueError("checkpoint_every needs a run=RunDir(...) to write checkpoints into")
    if select is not None and eval_fn is None:
        raise ValueError(f"select={select!r} needs an eval_fn that returns it")
    if max_grad_value is not None and max_grad_value <= 0:
        raise ValueError(f"max_grad_value must be > 0, got {max_grad_value}")
    if select_mode not in ("max", "min"):
        raise ValueError(f"select_mode must be 'max' or 'min', got {select_mode!r}")
    if patience < 0 or min_delta < 0:
        raise ValueError(f"patience and min_delta must be >= 0, got {patience} and {min_delta}")
    if patience and select is None:
        raise ValueError("patience= (early stopping) needs select= naming the metric to watch")
    accelerator = _make_accelerator(device, mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    seed_everything(seed + rank)

    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer(model.parameters())
    if scheduler is not None and callable(scheduler) and not hasattr(scheduler, "state_dict"):
        scheduler = scheduler(optimizer)

    start_step, history, resumed_from, samples = 0, [], None, 0
    best: dict[str, Any] = {"step": None, "metrics": {}, "state": None}
    stall: dict[str, Any] = {"ref": None, "count": 0, "stopped": False}  # early stopping
    latest = run.latest_checkpoint() if (run is not None and resume) else None
    if latest is not None:
        state = load_training_state(latest, model=model, optimizer=optimizer, scheduler=scheduler)
        start_step = resumed_from = state["step"]
        history = list(state["extra"].get("history", []))
        samples = int(state["extra"].get("samples", 0))
        stall.update(state["extra"].get("stall", {}))
        if "best" in state["extra"]:
            best.update(step=state["extra"]["best"]["step"], metrics=state["extra"]["best"]["metrics"])
            best["state"] = {k[len("best."):]: v for k, v in state["extra_tensors"].items()
                             if k.startswith("best.")} or None
        if rank:  # RNG states in the checkpoint are rank 0's; offset the others again
            seed_everything(seed + rank + 7919 * start_step)

    sampler = None
    if isinstance(data, Dataset):
        sampler = GlobalBatchSampler(len(data), batch_size, seed, shuffle, rank, world)
        # a generator of its own: otherwise every new epoch's iterator draws its base seed from the global RNG
        loader: Any = DataLoader(data, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                                 generator=torch.Generator().manual_seed(seed),
                                 # workers hold a copy of the dataset: one with set_epoch needs fresh ones
                                 persistent_workers=num_workers > 0 and not hasattr(data, "set_epoch"),
                                 pin_memory=accelerator.device.type == "cuda")
    elif isinstance(data, DataLoader):
        if world > 1:
            raise ValueError("a DataLoader is used as given, so with several processes each would read all of "
                             "it; pass its Dataset so fit can shard every global batch across the processes")
        loader = data
    elif callable(data):
        loader = None
    else:
        raise ValueError("data must be a Dataset, a DataLoader or a callable step -> batch")
    if loader is not None and len(loader) == 0:
        raise ValueError("the training data yields no batches (dataset smaller than one batch?)")

    # The scheduler is NOT handed to accelerate: its wrapper steps a scheduler once per process per optimizer
    # step (it assumes the schedule was written for one process's batch), and our steps are global ones.
    model_p, optimizer_p = accelerator.prepare(model, optimizer)
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
                if hasattr(data, "set_epoch"):  # e.g. per-epoch augmentation draws of a real-data set
                    data.set_epoch(epoch)
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
        extra: dict[str, Any] = {"history": history, "samples": samples, "stall": dict(stall)}
        tensors = None
        if best["step"] is not None:
            extra["best"] = {"step": best["step"], "metrics": best["metrics"]}
            tensors = {f"best.{k}": v for k, v in (best["state"] or {}).items()}
        path = save_training_state(run.checkpoint_path(step), model=raw_model, step=step, optimizer=optimizer,
                                   scheduler=scheduler, extra=extra, extra_tensors=tensors)
        prune_checkpoints(run.checkpoints_dir, keep_checkpoints)
        return path

    def emit(event: dict) -> None:
        history.append(event)
        for cb in callbacks:
            cb(event)

    eval_takes_step = eval_fn is not None and _takes_step(eval_fn, 2)

    def evaluate(step: int) -> dict[str, float]:
        model_p.eval()
        with torch.no_grad():
            out = eval_fn(raw_model, step) if eval_takes_step else eval_fn(raw_model)
            metrics = {k: float(v) for k, v in out.items()}
        model_p.train()
        if select is not None:
            if select not in metrics:
                raise ValueError(f"select={select!r} is not among eval_fn's metrics {sorted(metrics)}")
            if _better(metrics[select], best["metrics"].get(select), select_mode):
                best.update(step=step, metrics=dict(metrics),
                            state={k: v.detach().to("cpu", copy=True) for k, v in raw_model.state_dict().items()})
            if patience:
                value, ref = metrics[select], stall["ref"]
                gain = None if ref is None else (value - ref if select_mode == "max" else ref - value)
                if gain is None or gain > min_delta:
                    stall.update(ref=value, count=0)
                else:
                    stall["count"] += 1
                    stall["stopped"] = stall["count"] >= patience
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
        while step < max_steps and not stall["stopped"]:
            total, taken = 0.0, 0
            for micro in range(grad_accum_steps):
                batch = send_to_device(next(it), accelerator.device)
                taken += _batch_len(batch) * world  # every process takes an equal share of the global batch
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
            if max_grad_value is not None:
                accelerator.clip_grad_value_(model_p.parameters(), max_grad_value)
            optimizer_p.step()
            if scheduler is not None and not accelerator.optimizer_step_was_skipped:  # fp16 overflow: no step
                scheduler.step()
            optimizer_p.zero_grad(set_to_none=True)
            step, samples = step + 1, samples + taken
            running.append(total)
            bar.update(1)
            if log_every and (step % log_every == 0 or step == max_steps):
                loss_mean = float(accelerator.reduce(torch.tensor(sum(running) / len(running),
                                                                  device=accelerator.device), "mean"))
                event = {"step": step, "kind": "train", "loss": loss_mean,
                         "lr": float(optimizer_p.param_groups[0]["lr"]), "samples": samples}
                event.update({k: sum(v) / len(v) for k, v in extras_acc.items()})
                running, extras_acc = [], {}
                bar.set_postfix(loss=f"{loss_mean:.4g}")
                emit(event)
            if eval_fn is not None and eval_every and step % eval_every == 0 and step < max_steps:
                metrics = evaluate(step)
                if stall["stopped"]:
                    break
            if checkpoint_every and step % checkpoint_every == 0 and step < max_steps:
                ckpt = save(step)
    except KeyboardInterrupt:
        if run is not None:
            ckpt = save(step)
            print(f"\ninterrupted at step {step}; resumable checkpoint: {ckpt}")
        raise
    finally:
        bar.close()
    if eval_fn is not None and step == start_step and not metrics:
        # a finished run started again: its last evaluation is in the history; do not evaluate (or select) twice
        last = next((e for e in reversed(history) if e["kind"] == "eval" and e["step"] == step), None)
        if last is not None:
            metrics = {k: v for k, v in last.items() if k not in ("step", "kind")}
    if eval_fn is not None and (step > start_step or not metrics) and not (stall["stopped"] and metrics):
        metrics = evaluate(step)
    if run is not None and step > start_step:
        ckpt = save(step)
    elif run is not None:
        ckpt = latest
    accelerator.wait_for_everyone()
    return FitResult(model=raw_model, history=history, step=step, metrics=metrics, checkpoint=ckpt,
                     resumed_from=resumed_from, seconds=time.perf_counter() - t0, samples_seen=samples,
                     best_step=best["step"], best_metrics=dict(best["metrics"]), best_state=best["state"],
                     stopped_early=bool(stall["stopped"]))
