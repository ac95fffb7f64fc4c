"""fit: exact resume after an interruption, accumulation, callbacks, evaluation and bad input."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from kit.core import RunDir, fit


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
