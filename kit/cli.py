"""Command line: ``python -m kit list | run | train | demo``.

- ``python -m kit list``: the series, their status and notebooks.
- ``python -m kit run SERIES NOTEBOOK -p name value ...``: one notebook through papermill into ``runs/``.
- ``python -m kit train SERIES -p preset full -p data_dir /data ...``: the series' ``experiment.train`` without
  a notebook; this is what ``accelerate launch -m kit train ...`` runs on several GPUs.
- ``python -m kit demo``: every notebook with its defaults, and ``runs/<date>/index.html``.
- ``python -m kit voila [SERIES]``: the series' explore notebook (or, with no series, every explore notebook)
  served by Voila as an app: outputs and widgets, no code cells.
- ``python -m kit binder-url``: the Binder link of this clone's GitHub remote (``--readme`` writes the badge).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

from kit.binder import binder_url, update_readme
from kit.catalog import SERIES, get_series, notebooks_dir, series_notebooks, series_table
from kit.demo import run_demo
from kit.runner import default_runs_root, parse_value, resolve_notebook, run_notebook


def _params(pairs: list[list[str]] | None) -> dict:
    return {name: parse_value(value) for name, value in (pairs or [])}


def cmd_list(_: argparse.Namespace) -> int:
    rows = series_table()
    width = max(len(r["series"]) for r in rows)
    for r in rows:
        print(f"{r['series']:<{width}}  {r['status']:<11}  {r['paper']}")
        if r["notebooks"]:
            print(f"{'':<{width}}  {'':<11}  notebooks: {r['notebooks']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    nb = resolve_notebook(args.series, args.notebook)
    out = Path(args.output_dir) if args.output_dir else default_runs_root() / nb.parent.name / nb.stem
    from papermill.exceptions import PapermillExecutionError

    try:
        executed = run_notebook(nb, _params(args.p), out, timeout=args.timeout)
    except PapermillExecutionError as e:
        print(f"error: {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
        print(f"the executed notebook with the traceback is in {out / nb.name}", file=sys.stderr)
        return 1
    print(f"executed notebook: {executed}")
    print(f"outputs:           {executed.parent}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kit.core import RunDir

    get_series(args.series)
    try:
        config = importlib.import_module(f"kit.{args.series}.config")
        experiment = importlib.import_module(f"kit.{args.series}.experiment")
    except ModuleNotFoundError as e:
        raise ValueError(f"series {args.series!r} has no config/experiment module yet ({e})") from e
    params = _params(args.p)
    name = params.pop("preset", "tiny")
    cfg = config.preset(name, **params)
    out = Path(args.output_dir) if args.output_dir else default_runs_root() / args.series / f"train_{name}"
    run = RunDir(out)
    experiment.train(cfg, run)
    print(f"trained {args.series} ({name}) into {run.path}; recorded: {', '.join(run.metrics)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    index, entries = run_demo(args.output_dir, only=args.only)
    failed = [e for e in entries if e.error]
    print(f"\n{len(entries)} notebooks run, {len(failed)} failed. Index: {index}")
    for e in failed:
        print(f"  FAILED {e.name}: {e.error.splitlines()[0] if e.error else ''}")
    return 1 if failed else 0


def voila_command(series: str | None, port: int | None = None, open_browser: bool = False) -> list[str]:
    """Return the ``voila`` command line that serves the series' explore notebook (all of them: None) as an app."""
    if series:
        target = resolve_notebook(series, "03_explore")
    else:
        if not any(p.stem == "03_explore" for s in SERIES for p in series_notebooks(s.key)):
            raise ValueError("no series has a 03_explore notebook yet")
        target = notebooks_dir()
    cmd = [sys.executable, "-m", "voila", str(target), "--Voila.ip=127.0.0.1", "--strip_sources=True",
           "--show_tracebacks=True"]
    if port is not None:
        cmd += [f"--port={port}", "--Voila.port_retries=0"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd


def cmd_voila(args: argparse.Namespace) -> int:
    cmd = voila_command(args.series, args.port, args.open)
    print("serving " + (f"{args.series}/03_explore" if args.series else "the explore notebooks") +
          " with Voila (Ctrl-C stops it): " + " ".join(cmd[2:]), flush=True)
    sys.stdout.flush()
    if os.name == "posix":  # become the server: a signal to this process id stops Voila and its kernels
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def cmd_binder_url(args: argparse.Namespace) -> int:
    if args.readme:
        path, url = update_readme()
        print(f"{path}: Binder badge -> {url}" if url else f"{path}: no GitHub remote, so no badge; "
              "the README says how to get the link")
        return 0
    print(binder_url(ref=args.ref, voila=args.voila))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list series, status and notebooks").set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run one notebook through papermill")
    p.add_argument("series", help=f"one of {[s.key for s in SERIES]} or 'start'")
    p.add_argument("notebook", nargs="?", default="00_start_here", help="e.g. 01_train, 02, explore")
    p.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), help="notebook parameter")
    p.add_argument("--output-dir", default=None)
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("train", help="train a series without a notebook (works under accelerate launch)")
    p.add_argument("series")
    p.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), help="config field")
    p.add_argument("--output-dir", default=None)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("demo", help="run every notebook with defaults and write runs/<date>/index.html")
    p.add_argument("--output-dir", default=None)
    p.add_argument("--only", nargs="*", default=None, help="labels to run, e.g. 00_start_here trajectory")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("voila", help="serve an explore notebook (default: all of them) as a Voila app")
    p.add_argument("series", nargs="?", default=None, help=f"one of {[s.key for s in SERIES]}")
    p.add_argument("--port", type=int, default=None, help="default: Voila's 8866 (or the next free one)")
    p.add_argument("--open", action="store_true", help="open a browser tab")
    p.set_defaults(func=cmd_voila)
    p = sub.add_parser("binder-url", help="print the Binder link of this clone's GitHub remote")
    p.add_argument("--ref", default=None, help="branch, tag or commit (default: the remote's HEAD branch, main)")
    p.add_argument("--voila", default=None, metavar="SERIES", help="link the series' explore notebook in Voila")
    p.add_argument("--readme", action="store_true", help="write the badge (or how to get it) into README.md")
    p.set_defaults(func=cmd_binder_url)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
