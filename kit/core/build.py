"""Resumable builds of a series' committed assets (``python -m kit.<series>.assets``).

Such a build trains a seeded set of *units* (one per method x seed, say), each a function returning a JSON-able
dict, then writes a report. :class:`UnitCache` keeps each finished unit as ``<work>/<key>.json`` (written to a temp
file and renamed, so a crash leaves no partial result) and skips a unit whose file exists, so an interrupted build
resumes where it stopped; it shows a progress bar over the units and writes the report with the build's time.
:func:`build_parser` / :func:`parse_build_args` give the builds one command line (``--out``, ``--work``,
``--threads``, ``--seeds``, ``--steps``)::

    units = UnitCache(work or default_work("cmdfd"), total=len(seeds) * len(losses), desc="cmdfd build")
    rows = [units.run(f"s{seed}_{loss}", train_unit, seed, loss) for seed in seeds for loss in losses]
    report = units.report(out / "results.json", {"seeds": list(seeds), "rows": rows})
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from kit.core.checkpoint import write_json
from kit.core.device import set_threads

__all__ = ["UnitCache", "build_parser", "default_work", "parse_build_args", "rounded_history"]


def default_work(name: str) -> Path:
    """The default unit cache of build ``name``: ``<tempdir>/kit_<name>_build``."""
    return Path(tempfile.gettempdir()) / f"kit_{name}_build"


class UnitCache:
    """Finished units of a build under ``work`` (created), one ``<key>.json`` each; a bar over ``total`` units.

    ``run(key, fn, *args)`` returns the cached result of ``key`` or runs ``fn(*args)``, adds its wall time as
    ``"seconds"``, writes it atomically and prints a line (``describe(result)`` adds a summary). A unit's result is
    always returned as read back from its JSON, so a fresh build and a resumed one return the same values.
    ``report(path, report)`` writes the report with ``build_seconds`` (since the cache was made) and ``threads``.
    """

    def __init__(self, work: str | Path, total: int | None = None, desc: str = "build", progress: bool = True):
        from tqdm.auto import tqdm

        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="unit", **({} if progress else {"disable": True}))  # TQDM_DISABLE

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"a unit key is a plain file stem, got {key!r}")
        return self.work / f"{key}.json"

    def done(self, key: str) -> bool:
        """Whether ``key``'s result is cached (its unit will not run again)."""
        return self.path(key).is_file()

    def run(self, key: str, fn: Callable[..., dict], *args: Any, describe: Callable[[dict], str] | None = None,
            **kwargs: Any) -> dict:
        """``key``'s cached result, or ``fn(*args, **kwargs)`` (a dict) with its ``"seconds"``, then cached."""
        path = self.path(key)
        if not path.is_file():
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            if not isinstance(result, dict):
                raise TypeError(f"unit {key!r} must return a dict, got {type(result).__name__}")
            result["seconds"] = time.perf_counter() - t0
            write_json(path, result)
            summary = f"{describe(result)} " if describe is not None else ""
            self.bar.write(f"{key}: {summary}({result['seconds']:.0f} s)")
        self.bar.update(1)
        return json.loads(path.read_text())

    def report(self, path: str | Path, report: dict) -> dict:
        """``report`` with ``build_seconds`` and ``threads`` added, written to ``path``; closes the bar."""
        report = {**report, "build_seconds": time.perf_counter() - self.t0, "threads": torch.get_num_threads()}
        write_json(path, report)
        self.bar.close()
        return report


def rounded_history(history: Sequence[dict], digits: int = 5) -> list[dict]:
    """A training history (:func:`kit.core.fit`'s events) with its floats rounded to ``digits``: what a build keeps."""
    return [{k: (round(v, digits) if isinstance(v, float) else v) for k, v in h.items()} for h in history]


def build_parser(description: str | None, out: str | Path, seeds: Sequence[int] | None = None, work: bool = True,
                 steps: bool = False, threads: int = 2) -> argparse.ArgumentParser:
    """An argument parser with a build's common flags: ``--out`` (default ``out``), ``--work`` (the unit cache),
    ``--threads``, and, when asked, ``--seeds`` (default ``seeds``) and ``--steps`` (default None: the preset's)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=str(out))
    if work:
        parser.add_argument("--work", default=None, help="cache of finished units: an interrupted build resumes there")
    parser.add_argument("--threads", type=int, default=threads)
    if seeds is not None:
        parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    if steps:
        parser.add_argument("--steps", type=int, default=None)
    return parser


def parse_build_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser``'s arguments with torch set to ``--threads``; ``out`` and ``work`` as Paths (``work`` None when
    not given), ``seeds`` a tuple."""
    args = parser.parse_args(argv)
    set_threads(args.threads)
    args.out = Path(args.out)
    if hasattr(args, "work"):
        args.work = Path(args.work) if args.work else None
    if hasattr(args, "seeds"):
        args.seeds = tuple(args.seeds)
    return args
