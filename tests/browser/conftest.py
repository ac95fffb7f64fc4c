"""The browser suite's machinery: a JupyterLab server on a free loopback port, Debian's chromium driven by
Playwright, and the helpers that open a notebook, run all its cells and read what the front end rendered.

Switch: ``KIT_BROWSER_TESTS=1`` (what ``.ci/run`` sets) makes a missing chromium or Playwright an error;
``KIT_BROWSER_TESTS=0`` skips the suite; unset, the suite runs where both are installed and is skipped with a
message saying how to enable it elsewhere. The browser is never downloaded: Playwright drives
``/usr/bin/chromium`` (``KIT_CHROMIUM`` overrides the path).

Every test here is marked ``browser`` and put in the xdist group "browser", so under ``pytest -n 2 --dist
loadgroup`` one worker holds the one server and the one browser while the other runs everything else.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "runs" / "browser"
CHROMIUM = os.environ.get("KIT_CHROMIUM", "/usr/bin/chromium")
# this machine has no network: without these flags chromium floods refused connections (updates, sync, QUIC);
# the resolver rule makes every host but loopback unresolvable, so a page that reaches outside fails at once
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
NOTEBOOK_TABLE = tomllib.loads((HERE / "notebooks.toml").read_text())


def _load_dom():
    """tests/browser/dom.py, loaded by path (conftest and test modules are not importable under importlib mode)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kit_browser_dom", HERE / "dom.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dom = _load_dom()
Lab, problems, interact, full_screenshot, voila_state = (dom.Lab, dom.problems, dom.interact, dom.full_screenshot,
                                                         dom.voila_state)
HOW_TO_ENABLE = ("install Debian's chromium (apt-get install -y chromium) and Playwright for Python "
                 "(pip install -e '.[dev]'; never `playwright install`), then set KIT_BROWSER_TESTS=1 to make a "
                 "missing browser an error")


def browser_problem() -> str | None:
    """Return why the browser suite cannot run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    return None


# the order the browser tests run in (one worker runs them all): the harness check, every notebook in JupyterLab
# (in the catalogue's order), Voila, then the demo page built from their outputs
MODULE_ORDER = ("test_harness_fails.py", "test_lab.py", "test_voila.py", "test_demo_page.py")


def pytest_collection_modifyitems(config, items):
    ours = []
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))
            ours.append(item)
    rank = {name: i for i, name in enumerate(MODULE_ORDER)}
    ordered = sorted(ours, key=lambda it: rank.get(Path(str(it.fspath)).name, len(rank)))  # stable within a file
    slots = [i for i, it in enumerate(items) if it in ours]
    for i, item in zip(slots, ordered):
        items[i] = item


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Skip (or, with KIT_BROWSER_TESTS=1, fail) when chromium or Playwright is missing."""
    switch = os.environ.get("KIT_BROWSER_TESTS", "")
    if switch == "0":
        pytest.skip("browser suite turned off by KIT_BROWSER_TESTS=0")
    problem = browser_problem()
    if problem and switch == "1":
        pytest.fail(f"KIT_BROWSER_TESTS=1 but {problem}: {HOW_TO_ENABLE}", pytrace=False)
    if problem:
        pytest.skip(f"browser suite skipped: {problem}; to run it, {HOW_TO_ENABLE}")


# ---------------------------------------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """Return the HTTP status of GET 127.0.0.1:port/path, or None if nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@dataclass
class Server:
    """A server process the suite started: its own pid is what teardown stops."""

    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else ""

    def wait_ready(self, path: str, timeout: float = 120.0, ok: tuple[int, ...] = (200,)) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if http_status(self.port, path) in ok:
                return
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} did not answer {path} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's own pid (it shuts its kernels down), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path, port: int,
                 token: str = "") -> Server:
    f = open(log, "wb")  # noqa: SIM115 (closed by the process' end; the log is read back on failure)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Server(name, port, proc, log, token)


def kernel_env(root: Path) -> dict[str, str]:
    """The environment of a server and of the kernels it starts: offline, CPU, no tqdm widgets, own dirs."""
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(root / ".jupyter" / "config"),
               JUPYTER_RUNTIME_DIR=str(root / ".jupyter" / "runtime"),
               JUPYTER_PLATFORM_DIRS="1", TQDM_DISABLE="1", MPLBACKEND="Agg",
               PYDEVD_DISABLE_FILE_VALIDATION="1", KIT_ROOT=str(root))
    env.pop("JUPYTER_DATA_DIR", None)  # lab extensions come from the venv's share/jupyter
    return env


def copy_notebooks(root: Path) -> None:
    """Copy notebooks/ into ``root``, the servers' root: their outputs and autosaves never touch the checkout."""
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))


def cheap_enabled() -> bool:
    return os.environ.get("KIT_BROWSER_DEFAULTS") != "1"


def prepare_notebook(root: Path, label: str) -> dict[str, Any]:
    """Apply the table's ``cheap`` values to the copy's ``parameters`` cell, as a learner would set them; return
    what was set. KIT_BROWSER_DEFAULTS=1 keeps every default."""
    import nbformat

    spec = NOTEBOOK_TABLE.get(label, {})
    path = root / "notebooks" / f"{label}.ipynb"
    values = dict(spec.get("cheap", {})) if cheap_enabled() else {}
    if not values:
        return values
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    mark = "\n# tests/browser: cheaper values, the same cells and views\n"
    cell.source = cell.source.split(mark)[0] + mark + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    nbformat.write(nb, str(path))
    return values


LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


@pytest.fixture(scope="session")
def lab_root(browser_ready, tmp_path_factory) -> Path:
    """A folder holding a copy of notebooks/ (see :func:`copy_notebooks`) that the servers serve."""
    root = tmp_path_factory.mktemp("browser-root")
    copy_notebooks(root)
    return root


@pytest.fixture(scope="session")
def lab_server(lab_root) -> Server:
    """``jupyter lab`` from this venv on a free loopback port with a token and its own config, settings,
    workspace and runtime folders; every notebook renders all its cells (windowing off), autosave is off."""
    settings = lab_root / ".jupyter" / "lab-settings"
    for rel, value in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    (lab_root / ".jupyter" / "workspaces").mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={lab_root / '.jupyter' / 'workspaces'}", "--LabApp.news_url=",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly", "--allow-root"]
    server = start_server("jupyter lab", cmd, lab_root, kernel_env(lab_root), lab_root / "jupyter-lab.log", port,
                          token)
    try:
        server.wait_ready(f"/api/status?token={token}")
        yield server
    finally:
        server.stop()


def start_voila(root: Path, series: str) -> Server:
    """``python -m kit voila SERIES`` on a free loopback port, serving the copy under ``root``."""
    port = free_port()
    cmd = [sys.executable, "-m", "kit", "voila", series, "--port", str(port)]
    server = start_server(f"voila {series}", cmd, root, kernel_env(root), root / f"voila-{series}.log", port)
    try:
        server.wait_ready("/api/status", ok=(200, 302, 403))  # "/" would start running the notebook
    except Exception:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------------------------- browser

@pytest.fixture(scope="session")
def chromium(browser_ready):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageLog:
    """What the page said on its own: console errors, uncaught exceptions, requests off this machine."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)


@pytest.fixture
def page(chromium):
    """A fresh browser context and page (1400 x 1000) that records console errors and outside requests."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    pg = context.new_page()
    log = PageLog()
    pg.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: log.page_errors.append(str(e)))

    def on_request(req):
        host = re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", req.url)
        if req.url.startswith(("http", "ws")) and host not in ("127.0.0.1", "localhost"):
            log.outside_requests.append(req.url)

    pg.on("request", on_request)
    pg.kit_log = log
    try:
        yield pg
    finally:
        context.close()  # closing twice is harmless


def shutdown_kernels(server: Server) -> None:
    """Shut down every kernel of the server (REST), so one notebook's kernel never outlives its test."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", f"/api/kernels?token={server.token}")
        kernels = json.loads(conn.getresponse().read() or b"[]")
        for k in kernels:
            conn.request("DELETE", f"/api/kernels/{k['id']}?token={server.token}")
            conn.getresponse().read()
    finally:
        conn.close()


@pytest.fixture
def lab(lab_server, lab_root, page) -> Lab:
    try:
        yield Lab(lab_server, page, lab_root)
    finally:
        page.context.close()
        shutdown_kernels(lab_server)


def summary_path() -> Path:
    return ARTIFACTS / "summary.json"


def record_summary(label: str, entry: dict[str, Any]) -> None:
    """Merge one notebook's counts, seconds and peak memory into runs/browser/summary.json."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = summary_path()
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[label] = {**data.get(label, {}), **entry}
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


@pytest.fixture(scope="session")
def harness():
    """The helpers above, for the test modules (conftest is not importable under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(ROOT=ROOT, ARTIFACTS=ARTIFACTS, NOTEBOOK_TABLE=NOTEBOOK_TABLE, Lab=Lab,
                           problems=problems, start_voila=start_voila, record_summary=record_summary,
                           summary_path=summary_path, prepare_notebook=prepare_notebook,
                           interact=interact, full_screenshot=full_screenshot,
                           shutdown_kernels=shutdown_kernels, voila_state=voila_state)
