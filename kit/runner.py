"""Run notebooks through papermill with checked parameters, measuring time and the kernel's peak memory."""

from __future__ import annotations

import ast
import datetime as _dt
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.catalog import notebooks_dir, repo_root, series_notebooks


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


class KernelMemory:
    """Peak resident memory of the Jupyter kernels started below a process while it is watched.

    A thread polls the process' descendants every ``interval`` seconds; for each kernel (a process whose
    command line runs ``ipykernel``) started after watching began it keeps the largest of its resident set
    size and, on Linux, the kernel's own high-water mark ``VmHWM`` (exact even between polls).
    Use as a context manager; ``peak_mb`` is the largest kernel's peak in MiB (0.0 if no kernel was seen).
    """

    def __init__(self, root_pid: int | None = None, interval: float = 0.2):
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self.interval = interval
        self.peaks: dict[int, int] = {}  # kernel pid -> peak bytes
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def peak_mb(self) -> float:
        return max(self.peaks.values(), default=0) / 2**20

    def _is_new_kernel(self, proc: Any) -> bool:
        try:
            return proc.create_time() >= self._started - 1.0 and any("ipykernel" in a for a in proc.cmdline())
        except Exception:  # the process ended between listing and reading it
            return False

    @staticmethod
    def _peak_bytes(proc: Any) -> int:
        try:
            with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return int(proc.memory_info().rss)
        except Exception:
            return 0

    def poll(self) -> None:
        """Read the current peak of every kernel below the root process once."""
        import psutil

        try:
            children = psutil.Process(self.root_pid).children(recursive=True)
        except psutil.Error:
            return
        for proc in children:
            if proc.pid in self.peaks or self._is_new_kernel(proc):
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), self._peak_bytes(proc))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> KernelMemory:
        self._started = time.time()
        self._thread = threading.Thread(target=self._loop, name="kit-kernel-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class NotebookRun:
    """One executed notebook: the executed copy, wall-clock seconds and the kernel's peak resident memory."""

    path: Path
    seconds: float
    peak_mb: float


def execute_notebook(
    path: str | os.PathLike,
    params: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    timeout: int | None = 1800,
    progress: bool = False,
    kernel_name: str = "python3",
) -> NotebookRun:
    """Return the :class:`NotebookRun` of the notebook at ``path``, run by papermill with checked ``params``.

    The executed notebook and everything the notebook writes (``output_dir`` is injected as a parameter) land
    in ``output_dir``. Unknown parameter names raise ``ValueError`` before anything runs. tqdm bars are turned off
    inside the kernel so executed notebooks stay small. The kernel's peak memory is measured while it runs.
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
    t0 = time.perf_counter()
    with _env(TQDM_DISABLE="1", MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1"), KernelMemory() as mem:
        papermill.execute_notebook(
            str(path), str(out_nb), parameters=params, kernel_name=kernel_name, cwd=str(path.parent),
            progress_bar=progress, execution_timeout=timeout, log_output=False)
    return NotebookRun(out_nb, time.perf_counter() - t0, mem.peak_mb)


def run_notebook(
    path: str | os.PathLike,
    params: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    timeout: int | None = 1800,
    progress: bool = False,
    kernel_name: str = "python3",
) -> Path:
    """Return the executed copy of the notebook at ``path`` (see :func:`execute_notebook`)."""
    return execute_notebook(path, params, output_dir, timeout=timeout, progress=progress,
                            kernel_name=kernel_name).path


def notebook_to_html(executed: Path) -> Path:
    """Return the path of an HTML rendering of the executed notebook (written beside it)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out
