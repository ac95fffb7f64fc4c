"""Checkpoints: atomic writes survive a kill mid-write, corrupt and unsafe files give clear errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from kit.core import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_training_state,
    save_training_state,
)
from kit.core.checkpoint import flatten_state, save_checkpoint, unflatten_state


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def test_training_state_round_trip(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(3):
        model(torch.randn(5, 3)).sum().backward()
        opt.step()
        sched.step()
    path = save_training_state(tmp_path / "step_00000003.safetensors", model=model, optimizer=opt,
                               scheduler=sched, step=3, extra={"note": "x"},
                               extra_tensors={"best.w": torch.arange(4.0)})
    expected_next = torch.rand(4)
    torch.manual_seed(999)  # scramble the RNG: loading must restore the saved state
    model2 = _model()
    with torch.no_grad():
        for p in model2.parameters():
            p.add_(1.0)
    opt2 = torch.optim.Adam(model2.parameters(), lr=1.0)
    sched2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    meta = load_training_state(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert meta["step"] == 3 and meta["extra"] == {"note": "x"}
    assert list(meta["extra_tensors"]) == ["best.w"] and torch.equal(meta["extra_tensors"]["best.w"], torch.arange(4.0))
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95) or list(opt2.param_groups[0]["betas"]) == [0.8, 0.95]
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    assert sched2.state_dict()["last_epoch"] == 3
    for k, v in opt.state_dict()["state"].items():
        for name, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(opt2.state_dict()["state"][k][name]))
    # the RNG state was saved before `expected_next` was drawn
    assert torch.equal(torch.rand(4), expected_next)


def test_flatten_state_keeps_int_keys_and_tuples():
    state = {"state": {0: {"m": torch.ones(2), "step": 3}}, "groups": [{"betas": (0.9, 0.99), "params": [0]}]}
    tensors, skeleton = flatten_state(state, "opt")
    assert set(tensors) == {"opt.state.0.m"}
    back = unflatten_state(tensors, skeleton)
    assert back["groups"][0]["betas"] == (0.9, 0.99) and 0 in back["state"] and back["state"][0]["step"] == 3


def test_kill_during_write_leaves_previous_checkpoint_loadable(tmp_path):
    # A real process is killed (SIGKILL) half-way through writing its second checkpoint.
    script = textwrap.dedent(f"""
        import os, signal, torch
        import safetensors.torch as st
        import kit.core.checkpoint as ck
        ck.save_checkpoint({str(tmp_path / 'step_00000001.safetensors')!r}, {{"w": torch.ones(1000)}}, {{"step": 1}})
        def dying_save(tensors, filename, metadata=None):
            with open(filename, "wb") as f:
                f.write(b"\\x00" * 4096)   # half a file ...
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)   # ... and the process dies
        ck.save_file = dying_save
        ck.save_checkpoint({str(tmp_path / 'step_00000002.safetensors')!r}, {{"w": torch.zeros(1000)}}, {{"step": 2}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert any(name.endswith(".tmp") for name in leftovers)  # the half-written temporary file is there
    assert "step_00000002.safetensors" not in leftovers
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "step_00000001.safetensors"
    assert torch.equal(load_checkpoint(latest).tensors["w"], torch.ones(1000))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_gives_clear_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.randn(64, 64)}, {"step": 1})
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"c\.safetensors.*corrupt"):
        load_checkpoint(path)


def test_missing_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "w.pkl").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_checkpoint(tmp_path / "w.pkl")


class Evil:  # an arbitrary object: loading it would need pickle's code execution
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_that_needs_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_weights_only_torch_file_loads(tmp_path):
    # the CRD/mdistiller release layout: {"model": state_dict, ...}
    sd = _model().state_dict()
    torch.save({"model": sd, "epoch": 240}, tmp_path / "ckpt.pth")
    ck = load_checkpoint(tmp_path / "ckpt.pth")
    assert ck.tensors["epoch"] == 240 and torch.equal(ck.tensors["model"]["0.weight"], sd["0.weight"])


def test_mismatched_model_is_reported(tmp_path):
    path = save_training_state(tmp_path / "s.safetensors", model=_model(), step=1)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_training_state(path, model=torch.nn.Linear(3, 2))


def test_save_and_load_weights_in_float16(tmp_path):
    from kit.core import load_weights, read_json, save_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model[1].num_batches_tracked += 5
    path = save_weights(model, tmp_path / "w.safetensors")
    from safetensors.torch import load_file

    stored = load_file(str(path))
    assert stored["0.weight"].dtype == torch.float16 and stored["1.num_batches_tracked"].dtype == torch.int64
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).train()
    out = load_weights(fresh, path)
    assert out is fresh and not fresh.training and fresh[0].weight.dtype == torch.float32
    torch.testing.assert_close(fresh[0].weight, model[0].weight, atol=1e-3, rtol=1e-3)
    assert int(fresh[1].num_batches_tracked) == 5
    with pytest.raises(FileNotFoundError, match="rebuild them with `make weights`"):
        load_weights(fresh, tmp_path / "none.safetensors", rebuild="make weights")
    (tmp_path / "r.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "r.json") == {"a": 1}
    with pytest.raises(FileNotFoundError, match="no .*x.json; rebuild it with `cmd`"):
        read_json(tmp_path / "x.json", rebuild="cmd")
