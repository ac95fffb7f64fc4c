"""Resumable asset builds (kit.core.build): cached units are skipped, a crashed unit leaves nothing behind, results
and reports are the same fresh or resumed, and the common command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kit.core import UnitCache, build_parser, default_work, parse_build_args, rounded_history


def _seeded_unit(seed: int, calls: list) -> dict:
    calls.append(seed)
    rng = np.random.default_rng(seed)
    return {"seed": seed, "score": rng.random(), "curve": rng.random(3), "n": np.int64(3), "pair": (1, 2)}


def test_cached_unit_is_skipped_and_resumed_build_returns_the_same(tmp_path):
    calls: list[int] = []
    units = UnitCache(tmp_path / "w", total=2, progress=False)
    first = [units.run(f"s{s}", _seeded_unit, s, calls) for s in (0, 1)]
    assert calls == [0, 1] and sorted(p.name for p in (tmp_path / "w").iterdir()) == ["s0.json", "s1.json"]
    assert units.done("s0") and not units.done("s2")
    assert first[0]["seconds"] >= 0 and isinstance(first[0]["curve"], list) and first[0]["pair"] == [1, 2]
    again = UnitCache(tmp_path / "w", progress=False)
    second = [again.run(f"s{s}", _seeded_unit, s, calls) for s in (0, 1)]
    assert calls == [0, 1]  # nothing ran again
    assert second == first  # fresh results are returned as read back, so a resumed build reports the same values


def test_results_are_deterministic_across_fresh_builds(tmp_path):
    a = UnitCache(tmp_path / "a", progress=False).run("s3", _seeded_unit, 3, [])
    b = UnitCache(tmp_path / "b", progress=False).run("s3", _seeded_unit, 3, [])
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_crashed_unit_leaves_no_file_and_runs_again(tmp_path):
    units = UnitCache(tmp_path, progress=False)

    def crash() -> dict:
        raise RuntimeError("killed mid-unit")

    with pytest.raises(RuntimeError, match="killed"):
        units.run("s0", crash)
    with pytest.raises(TypeError):  # a result JSON cannot hold fails before anything is written
        units.run("s1", lambda: {"model": torch.nn.Linear(1, 1)})
    with pytest.raises(TypeError, match="must return a dict"):
        units.run("s2", lambda: [1, 2])
    assert list(tmp_path.iterdir()) == [] and not units.done("s0")
    assert units.run("s0", lambda: {"ok": 1})["ok"] == 1 and units.done("s0")


def test_unit_keys_are_plain_file_stems(tmp_path):
    units = UnitCache(tmp_path, progress=False)
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="plain file stem"):
            units.run(bad, dict)


def test_report_adds_time_and_threads_and_prints_each_unit(tmp_path, capsys):
    units = UnitCache(tmp_path / "w", total=1, progress=False)
    row = units.run("s0", lambda: {"auc": 0.9}, describe=lambda r: f"AUC {r['auc']:.2f}")
    assert "s0: AUC 0.90 (0 s)" in capsys.readouterr().out
    rep = units.report(tmp_path / "out" / "results.json", {"rows": [row]})
    assert list(rep) == ["rows", "build_seconds", "threads"] and rep["threads"] == torch.get_num_threads()
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == rep


def test_rounded_history():
    assert rounded_history([{"step": 1, "loss": 0.1234567, "kind": "train"}]) == [
        {"step": 1, "loss": 0.12346, "kind": "train"}]


def test_build_command_line():
    threads = torch.get_num_threads()
    try:
        parser = build_parser("doc", "/x", seeds=(0, 1), steps=True)
        args = parse_build_args(parser, ["--threads", "1"])
        assert (args.out, args.work, args.seeds, args.steps, args.threads) == (Path("/x"), None, (0, 1), None, 1)
        assert torch.get_num_threads() == 1
        args = parse_build_args(parser, ["--out", "o", "--work", "w", "--seeds", "3", "--steps", "5", "--threads",
                                         "1"])
        assert (args.out, args.work, args.seeds, args.steps) == (Path("o"), Path("w"), (3,), 5)
        plain = parse_build_args(build_parser(None, "/x", work=False), ["--threads", "1"])
        assert not hasattr(plain, "work") and not hasattr(plain, "seeds") and not hasattr(plain, "steps")
    finally:
        torch.set_num_threads(threads)
    assert default_work("cmdfd").name == "kit_cmdfd_build"
