"""fit: exact resume after an interruption, accumulation, callbacks, evaluation and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from kit.core import RunDir, fit
from kit.core.train import GlobalBatchSampler


def _data(n: int = 96) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    y = torch.sin(x @ torch.randn(5, 1, generator=g))
    return TensorDataset(x, y)


def _model() -> torch.nn.Module:
    torch.manual_seed(123)
    return torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def _loss(model, batch):
    x, y = batch
    # noise from the global RNG: resume is exact only if the RNG state travels with the checkpoint
    return torch.nn.functional.mse_loss(model(x + 0.1 * torch.randn_like(x)), y)


def _train(run, max_steps, callbacks=(), **kw):
    model = _model()
    return fit(model, _loss, _data(), max_steps=max_steps, batch_size=16, run=run, checkpoint_every=5,
               optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
               scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
               grad_accum_steps=2, max_grad_norm=1.0, log_every=1, callbacks=callbacks, seed=3,
               progress=False, **kw)


class _Interrupt:
    def __init__(self, at: int):
        self.at = at

    def __call__(self, event):
        if event["kind"] == "train" and event["step"] == self.at:
            raise KeyboardInterrupt


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path):
    full = _train(RunDir(tmp_path / "full"), 23)
    run = RunDir(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        _train(run, 23, callbacks=[_Interrupt(13)])  # 13: mid-epoch (6 micro-batches per epoch) and off the 5-grid
    assert run.latest_checkpoint().name == "step_00000013.safetensors"
    resumed = _train(run, 23)
    assert resumed.resumed_from == 13 and resumed.step == 23
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # the history of the resumed run continues the interrupted one: every step logged exactly once
    steps = [e["step"] for e in resumed.history if e["kind"] == "train"]
    assert steps == list(range(1, 24))
    assert [e["loss"] for e in full.history] == pytest.approx([e["loss"] for e in resumed.history], abs=1e-6)


def test_resume_without_checkpoint_differs_from_fresh_seed(tmp_path):
    # guards the test above: a different seed must give different weights, so equality there means something
    a = _train(RunDir(tmp_path / "a"), 6)
    model = _model()
    b = fit(model, _loss, _data(), max_steps=6, batch_size=16, seed=4, grad_accum_steps=2, progress=False,
            optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), log_every=0)
    diff = max((x - y).abs().max().item() for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert diff > 1e-4


def test_finished_run_is_not_trained_again(tmp_path):
    run = RunDir(tmp_path)
    first = _train(run, 5)
    again = _train(run, 5)
    assert again.resumed_from == 5 and again.step == 5
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)


def test_fit_learns_and_reports_eval_and_callbacks(tmp_path):
    data = _data(256)
    x, y = data.tensors
    events = []

    def eval_fn(model):
        return {"mse": torch.nn.functional.mse_loss(model(x), y).item()}

    model = _model()
    before = eval_fn(model)["mse"]
    res = fit(model, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), data, max_steps=120,
              batch_size=32, lr=1e-2, eval_fn=eval_fn, eval_every=40, log_every=20, callbacks=[events.append],
              progress=False)
    assert res.metrics["mse"] < 0.5 * before
    assert [e["step"] for e in events if e["kind"] == "eval"] == [40, 80, 120]
    assert [e["step"] for e in events if e["kind"] == "train"] == [20, 40, 60, 80, 100, 120]
    assert all(e["lr"] == pytest.approx(1e-2) for e in events if e["kind"] == "train")


def test_callable_data_and_dict_loss(tmp_path):
    def data(step):
        return torch.randn(8, 5)

    def loss(model, batch):
        out = model(batch).pow(2).mean()
        return {"loss": out, "mean_out": model(batch).mean()}

    res = fit(_model(), loss, data, max_steps=4, log_every=2, progress=False)
    assert "mean_out" in res.history[0]


def test_bad_input_is_reported_clearly(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every needs a run"):
        fit(_model(), _loss, _data(), max_steps=2, checkpoint_every=1)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        fit(_model(), _loss, _data(), max_steps=2, grad_accum_steps=0)
    with pytest.raises(ValueError, match="mixed_precision"):
        fit(_model(), _loss, _data(), max_steps=2, mixed_precision="fp8")
    with pytest.raises(ValueError, match="'loss' entry"):
        fit(_model(), lambda m, b: {"l": m(b[0]).sum()}, _data(), max_steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="loss is nan"):
        fit(_model(), lambda m, b: m(b[0]).sum() * float("nan"), _data(), max_steps=1, progress=False)


def test_step_aware_loss_receives_the_optimizer_step():
    seen = []

    def loss(model, batch, step):
        seen.append(step)
        return model(batch[0]).pow(2).mean()

    fit(_model(), loss, _data(32), max_steps=3, batch_size=8, grad_accum_steps=2, progress=False, log_every=0)
    assert seen == [0, 0, 1, 1, 2, 2]


def test_bad_selection_and_batch_arguments_are_reported():
    with pytest.raises(ValueError, match="needs an eval_fn"):
        fit(_model(), _loss, _data(), max_steps=2, select="mse")
    with pytest.raises(ValueError, match="select_mode"):
        fit(_model(), _loss, _data(), max_steps=2, eval_fn=lambda m: {"mse": 0.0}, select="mse", select_mode="up")
    with pytest.raises(ValueError, match="not among eval_fn's metrics"):
        fit(_model(), _loss, _data(), max_steps=2, eval_fn=lambda m: {"mse": 0.0}, select="acc", progress=False)
    with pytest.raises(ValueError, match="global batch and must be divisible"):
        GlobalBatchSampler(10, batch_size=5, seed=0, num_replicas=2)


@pytest.mark.parametrize("n,batch,world", [(96, 16, 1), (96, 16, 2), (61, 8, 2), (50, 12, 4), (7, 4, 4)])
def test_global_batch_sampler_shards_each_global_batch(n, batch, world):
    one = GlobalBatchSampler(n, batch, seed=5)
    shards = [GlobalBatchSampler(n, batch, seed=5, rank=r, num_replicas=world) for r in range(world)]
    for s in (one, *shards):
        s.set_epoch(3)
    order = one.order()
    assert sorted(order) == list(range(n))
    per_rank = [list(s) for s in shards]
    assert len(one) == math.ceil(n / batch) and all(len(s) == len(one) == len(b) for s, b in zip(shards, per_rank))
    for k, whole in enumerate(one):
        parts = [b[k] for b in per_rank]
        assert len({len(p) for p in parts}) == 1, "every process gets the same number of samples"
        merged = [i for group in zip(*parts) for i in group]  # undo the interleaving batch[rank::world]
        pad = -len(whole) % world
        assert merged == whole + (order * world)[:pad]
    # a new epoch is a new permutation, the same on every process
    one.set_epoch(4)
    assert one.order() != order


def _val_loss_eval(model, x, y):
    return {"val_mse": torch.nn.functional.mse_loss(model(x), y).item()}


def _train_selecting(run, max_steps, callbacks=()):
    """A run whose validation loss gets worse late (lr too high after step 12): the best step is not the last."""
    data = _data(96)
    g = torch.Generator().manual_seed(9)
    xv = torch.randn(64, 5, generator=g)
    yv = torch.sin(xv @ torch.randn(5, 1, generator=g))
    return fit(_model(), _loss, data, max_steps=max_steps, batch_size=16, run=run, checkpoint_every=6,
               optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
               scheduler=lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0 if s < 12 else 30.0),
               eval_fn=lambda m, step: {**_val_loss_eval(m, xv, yv), "epoch": step // 6}, eval_every=3,
               select="val_mse", select_mode="min", log_every=1, callbacks=callbacks, seed=1, progress=False)


def test_best_evaluation_is_selected_kept_and_resumed(tmp_path):
    full = _train_selecting(RunDir(tmp_path / "full"), 24)
    evals = [e for e in full.history if e["kind"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert [e["epoch"] for e in evals] == [0, 1, 1, 2, 2, 3, 3, 4]  # eval_fn(model, step) got the step
    best = min(evals, key=lambda e: e["val_mse"])
    assert full.best_step == best["step"] < 24 and full.best_metrics["val_mse"] == best["val_mse"]
    # the kept state is the model at that step: a run stopped there ends with exactly those weights
    short = _train_selecting(RunDir(tmp_path / "short"), full.best_step)
    for k, v in short.model.state_dict().items():
        torch.testing.assert_close(full.best_state[k], v, rtol=0, atol=1e-6)
    assert any((full.best_state[k] - v).abs().max() > 1e-3 for k, v in full.model.state_dict().items())

    # interrupted after the best step, resumed from the checkpoint: same best step, metrics and weights
    run = RunDir(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        _train_selecting(run, 24, callbacks=[_Interrupt(20)])
    resumed = _train_selecting(run, 24)
    assert resumed.resumed_from == 20
    assert (resumed.best_step, resumed.best_metrics) == (full.best_step, pytest.approx(full.best_metrics))
    for k, v in full.best_state.items():
        torch.testing.assert_close(resumed.best_state[k], v, rtol=0, atol=1e-6)

    # a finished run started again returns the same result and evaluates nothing
    again = _train_selecting(run, 24)
    assert again.resumed_from == 24 and again.history == resumed.history
    assert again.metrics == pytest.approx(resumed.metrics) and again.best_step == full.best_step
    for k, v in full.best_state.items():
        torch.testing.assert_close(again.best_state[k], v, rtol=0, atol=1e-6)


def test_samples_seen_and_lr_per_step_are_logged(tmp_path):
    events = []
    res = fit(_model(), _loss, _data(96), max_steps=10, batch_size=16, grad_accum_steps=2, log_every=1,
              optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
              scheduler=lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 7], gamma=0.1),
              callbacks=[events.append], progress=False)
    assert res.samples_seen == 10 * 2 * 16
    assert [e["samples"] for e in events] == [32 * (k + 1) for k in range(10)]
    # the lr logged after optimizer step k is the one the schedule gives for step k (stepped once per step)
    assert [e["lr"] for e in events] == pytest.approx([0.1] * 2 + [0.01] * 4 + [0.001] * 4)


def test_max_grad_value_clips_every_element_before_the_step():
    model = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    x = torch.tensor([[100.0, -100.0, 0.01]])
    data = TensorDataset(x, torch.zeros(1, 1))

    def loss(m, batch):  # d loss / d w = -x: two elements far beyond the clip, one inside it
        return -(m(batch[0])).sum()

    out = fit(model, loss, data, max_steps=1, batch_size=1, optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
              max_grad_value=0.5, progress=False, device="cpu")
    torch.testing.assert_close(out.model.weight.detach(), torch.tensor([[0.5, -0.5, 0.01]]))
    with pytest.raises(ValueError, match="max_grad_value"):
        fit(model, loss, data, max_steps=1, batch_size=1, max_grad_value=0.0, progress=False, device="cpu")


def test_early_stopping_waits_patience_evaluations_without_a_min_delta_gain(tmp_path):
    # a scripted validation curve: best at the 3rd evaluation; later gains of at most min_delta do not count
    curve = [0.50, 0.60, 0.70, 0.705, 0.69, 0.709, 0.95]

    def eval_fn(model, step):
        return {"f1": curve[step // 2 - 1] if step // 2 - 1 < len(curve) else 0.0}

    def run_fit(run, **kw):
        return fit(_model(), _loss, _data(), max_steps=40, batch_size=16, eval_fn=eval_fn, eval_every=2,
                   select="f1", progress=False, run=run, checkpoint_every=2, **kw)

    res = run_fit(RunDir(tmp_path / "a"), patience=3, min_delta=0.01)
    evals = [e["step"] for e in res.history if e["kind"] == "eval"]
    # evaluations at 2..12: the 4th-6th (0.705, 0.69, 0.709) are within min_delta of 0.70 -> stop after step 12
    assert res.stopped_early and res.step == 12 and evals == [2, 4, 6, 8, 10, 12]
    assert res.best_step == 12 and res.best_metrics["f1"] == pytest.approx(0.709)  # selection ignores min_delta
    # a stopped run started again does not train on
    again = run_fit(RunDir(tmp_path / "a"), patience=3, min_delta=0.01)
    assert again.step == 12 and again.stopped_early and again.history == res.history
    # without min_delta the small gains reset the count, and the late jump is reached
    res = run_fit(RunDir(tmp_path / "b"), patience=3)
    assert res.best_metrics["f1"] == pytest.approx(0.95) and res.best_step == 14
    with pytest.raises(ValueError, match="select"):
        fit(_model(), _loss, _data(), max_steps=2, patience=2, progress=False)
    with pytest.raises(ValueError, match="patience"):
        fit(_model(), _loss, _data(), max_steps=2, patience=-1, eval_fn=eval_fn, select="f1", progress=False)
