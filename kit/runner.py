"""Run notebooks through papermill with checked parameters, and build the demo's HTML index."""

from __future__ import annotations

import ast
import datetime as _dt
import html
import json
import os
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.catalog import SERIES, notebooks_dir, repo_root, series_notebooks


def parse_value(text: str) -> Any:
    """Return the Python literal ``text`` denotes (int, float, bool, None, list, ...) or the string itself."""
    lowered = text.strip()
    if lowered in ("true", "false", "none", "null"):
        return {"true": True, "false": False, "none": None, "null": None}[lowered]
    try:
        return ast.literal_eval(lowered)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: str | os.PathLike) -> dict[str, dict]:
    """Return the notebook's ``parameters`` cell entries: name -> {default, inferred_type_name, help}."""
    import papermill

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    return dict(papermill.inspect_notebook(str(path)))


def check_parameters(path: str | os.PathLike, params: dict[str, Any]) -> None:
    """Raise ``ValueError`` if ``params`` names a parameter the notebook's ``parameters`` cell does not define."""
    known = notebook_parameters(path)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for {Path(path).name}; valid parameters: {sorted(known)}")


def resolve_notebook(series: str, notebook: str) -> Path:
    """Return the notebook path for ``series`` and a name like "01_train", "01", "train" or "01_train.ipynb"."""
    if series in ("start", "00", "00_start_here"):
        return notebooks_dir() / "00_start_here.ipynb"
    found = series_notebooks(series)
    if not found:
        raise ValueError(f"series {series!r} has no notebooks yet")
    name = notebook.removesuffix(".ipynb")
    for p in found:
        if name in (p.stem, p.stem.split("_", 1)[0], p.stem.split("_", 1)[-1]):
            return p
    raise ValueError(f"no notebook {notebook!r} in series {series!r}; available: {[p.stem for p in found]}")


def default_runs_root() -> Path:
    """Return ``runs/<today>`` under the repository root."""
    return repo_root() / "runs" / _dt.date.today().isoformat()


@contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(
    path: str | os.PathLike,
    params: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    timeout: int | None = 1800,
    progress: bool = False,
    kernel_name: str = "python3",
) -> Path:
    """Return the executed copy of the notebook at ``path``, run by papermill with checked ``params``.

    The executed notebook and everything the notebook writes (``output_dir`` is injected as a parameter) land
    in ``output_dir``. Unknown parameter names raise ``ValueError`` before anything runs. tqdm bars are turned off
    inside the kernel so executed notebooks stay small.
    """
    import papermill

    path = Path(path).resolve()
    params = dict(params or {})
    known = notebook_parameters(path)
    check_parameters(path, params)
    if output_dir is None:
        output_dir = default_runs_root() / path.parent.name / path.stem
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    if "output_dir" in known:
        params.setdefault("output_dir", str(output_dir))
    out_nb = output_dir / path.name
    with _env(TQDM_DISABLE="1", MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1"):
        papermill.execute_notebook(
            str(path), str(out_nb), parameters=params, kernel_name=kernel_name, cwd=str(path.parent),
            progress_bar=progress, execution_timeout=timeout, log_output=False)
    return out_nb


def notebook_to_html(executed: Path) -> Path:
    """Return the path of an HTML rendering of the executed notebook (written beside it)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


@dataclass
class DemoEntry:
    """One notebook of the demo: where it ran, how long, whether it failed, what it recorded."""

    name: str
    notebook: Path
    output_dir: Path
    seconds: float = 0.0
    error: str | None = None
    html: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def demo_notebooks() -> list[tuple[str, Path]]:
    """Return (label, path) for 00_start_here and every series notebook that exists, in catalogue order."""
    out = [("00_start_here", notebooks_dir() / "00_start_here.ipynb")]
    for s in SERIES:
        out += [(f"{s.key}/{p.stem}", p) for p in series_notebooks(s.key)]
    return out


def run_demo(root: str | os.PathLike | None = None, only: list[str] | None = None) -> tuple[Path, list[DemoEntry]]:
    """Return (index.html path, entries) after running every notebook with its defaults into ``root``.

    A failing notebook is recorded with its error and the others still run.
    """
    root = Path(root) if root else default_runs_root()
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for label, nb in demo_notebooks():
        if only and not any(label.startswith(o) for o in only):
            continue
        entry = DemoEntry(label, nb, root / label)
        print(f"[kit demo] running {label} ...", flush=True)
        t0 = time.perf_counter()
        executed = entry.output_dir / nb.name
        try:
            executed = run_notebook(nb, {}, entry.output_dir)
        except Exception as e:  # recorded in index.html and in the exit status, never hidden
            entry.error = f"{type(e).__name__}: {e}"
            if not str(e):
                entry.error += "\n" + traceback.format_exc(limit=3)
        entry.seconds = time.perf_counter() - t0
        if executed.is_file():
            try:
                entry.html = notebook_to_html(executed)
            except Exception as e:
                entry.error = (entry.error or "") + f"\nHTML rendering failed: {e}"
        metrics_file = entry.output_dir / "metrics.json"
        if metrics_file.is_file():
            entry.metrics = json.loads(metrics_file.read_text())
        status = "FAILED" if entry.error else "ok"
        print(f"[kit demo] {label}: {status} in {entry.seconds:.1f} s", flush=True)
        entries.append(entry)
    index = write_index(root, entries)
    return index, entries


def _scalars(metrics: dict[str, Any], limit: int = 12) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, v: Any) -> None:
        if len(out) >= limit:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (int, float)) or (isinstance(v, str) and len(v) < 40):
            out.append((prefix, round(v, 4) if isinstance(v, float) else v))

    walk("", {k: v for k, v in metrics.items() if k != "config"})  # results first; the config is in the notebook
    return out


def write_index(root: Path, entries: list[DemoEntry]) -> Path:
    """Return the path of ``index.html`` linking each executed notebook with a table of its metrics."""
    rows = []
    for e in entries:
        link = html.escape(e.name)
        if e.html is not None:
            link = f'<a href="{html.escape(str(e.html.relative_to(root)))}">{link}</a>'
        status = (f'<span class="bad">failed</span><pre>{html.escape(e.error)}</pre>' if e.error
                  else '<span class="ok">ok</span>')
        metrics = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                          for k, v in _scalars(e.metrics))
        metrics = f"<table class='m'>{metrics}</table>" if metrics else "&mdash;"
        rows.append(f"<tr><td>{link}</td><td>{status}</td><td>{e.seconds:.1f} s</td><td>{metrics}</td></tr>")
    failed = sum(e.error is not None for e in entries)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>kit demo {root.name}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}table.m td{{border:none;padding:0 6px}}
.ok{{color:#070}}.bad{{color:#b00;font-weight:bold}}pre{{max-width:60em;white-space:pre-wrap}}</style></head><body>
<h1>kit demo run {html.escape(root.name)}</h1>
<p>{len(entries)} notebooks, {failed} failed. Each link opens the executed notebook rendered as HTML.</p>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>metrics.json</th></tr>
{''.join(rows)}
</table></body></html>"""
    index = root / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
