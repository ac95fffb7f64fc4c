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


# ---------------------------------------------------------------------------------------------- reading the DOM

# Widget views and plotly plots below a root node. A widget view is an output area child holding a rendered
# ipywidgets view; a failed one shows "Error displaying widget..." or an error widget instead. `expectViews`: the
# widget-view outputs the kernel sent (from the notebook model; null in Voila, which has no model to read), so a
# view that never rendered at all is caught too.
READ_VIEWS_JS = """
([root, expectViews]) => {
  const res = {views: 0, broken_views: [], plots: 0, empty_plots: 0, declared_views: expectViews};
  const outputs = [...root.querySelectorAll('.jp-OutputArea-output')];
  const isView = (n) => n.querySelector(':scope > .jupyter-widgets') !== null ||
                        n.classList.contains('jupyter-widgets') ||
                        n.textContent.trim().startsWith('Error displaying widget');
  for (const node of outputs.filter(isView)) {
    const text = node.textContent.trim();
    const failed = text.startsWith('Error displaying widget') ||
                   node.querySelector('.jupyter-widgets-error-widget') !== null || node.offsetHeight === 0;
    if (failed) res.broken_views.push(text.slice(0, 300) || '(nothing rendered)'); else res.views += 1;
  }
  if (expectViews !== null && expectViews > res.views + res.broken_views.length) {
    for (let i = res.views + res.broken_views.length; i < expectViews; i++) {
      res.broken_views.push('(a widget-view output that rendered nothing)');
    }
  }
  const hasData = (t) => ['x', 'y', 'z', 'values', 'source', 'lat', 'r']
      .some((k) => t[k] !== undefined && t[k] !== null && (t[k].length === undefined || t[k].length > 0));
  for (const gd of root.querySelectorAll('.js-plotly-plot')) {
    const drawn = gd._fullLayout !== undefined && gd.querySelector('.main-svg') !== null;
    if (drawn && Array.isArray(gd.data) && gd.data.some(hasData)) res.plots += 1; else res.empty_plots += 1;
  }
  return res;
}
"""

# the widget-view outputs of the current notebook, counted in its model
MODEL_VIEWS_JS = """
() => {
  let n = 0;
  for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
    if (cell.model.type !== 'code') continue;
    for (const o of cell.model.outputs.toJSON()) {
      if (o.data && o.data['application/vnd.jupyter.widget-view+json']) n += 1;
    }
  }
  return n;
}
"""

NOTEBOOK_STATE_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = [];
  panel.content.widgets.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    const c = {index: i, count: cell.model.executionCount, errors: [], stderr: []};
    for (const o of cell.model.outputs.toJSON()) {
      const text = (t) => Array.isArray(t) ? t.join('') : (t || '');
      if (o.output_type === 'error') c.errors.push(`${o.ename}: ${o.evalue}`);
      if (o.output_type === 'stream' && o.name === 'stderr') c.stderr.push(text(o.text));
    }
    cells.push(c);
  });
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {cells, kernel: kernel ? kernel.status : 'none', done: window.__kitRunDone === true,
          ok: window.__kitRunOk};
}
"""

# the handle of a slider / a dropdown whose description is `label`, the nth such control on the page
CONTROL_JS = """
([kind, label, nth]) => {
  const cls = kind === 'slider' ? '.widget-slider' : kind === 'dropdown' ? '.widget-dropdown'
            : kind === 'toggle' ? '.widget-toggle-buttons' : '.widget-inline-hbox';
  const found = [...document.querySelectorAll(cls)].filter((w) => {
    const l = w.querySelector('.widget-label');
    return l && l.textContent.trim() === label;
  });
  const w = found[nth];
  if (!w) return null;
  w.setAttribute('data-kit-control', `${kind}:${label}:${nth}`);
  const out = w.closest('.jp-OutputArea-output') || document.body;
  out.setAttribute('data-kit-output', `${kind}:${label}:${nth}`);
  return `${kind}:${label}:${nth}`;
}
"""

# a fingerprint of every plotly plot's data in an output: changes when any trace's numbers or text change
PLOTS_SIGNATURE_JS = """
(root) => [...root.querySelectorAll('.js-plotly-plot')].map((gd) => {
  const conv = (v) => (v && v.buffer && v.length !== undefined && !Array.isArray(v)) ? Array.from(v) : v;
  const data = (gd.data || []).map((t) => {
    const o = {};
    for (const k of ['x', 'y', 'z', 'text', 'customdata', 'source', 'opacity', 'visible']) o[k] = conv(t[k]);
    return o;
  });
  let s = JSON.stringify([data, gd.layout && gd.layout.title, gd.layout && gd.layout.annotations]);
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return `${s.length}:${h}`;
})
"""


@dataclass
class LabRun:
    """What one notebook did in JupyterLab."""

    label: str
    seconds: float
    peak_mb: float
    cells: list[dict]
    views: dict
    kernel: str
    screenshot: Path | None = None


class Lab:
    """Drive one JupyterLab page: open a notebook, run all cells, read the outputs and views."""

    def __init__(self, server: Server, page, root: Path):
        self.server, self.page, self.root = server, page, root

    def open(self, rel: str) -> None:
        self.page.goto(f"{self.server.url}/lab/tree/{rel}?token={self.server.token}&reset")
        self.page.wait_for_function(
            """() => { const a = window.jupyterapp; const w = a && a.shell && a.shell.currentWidget;
                       return !!(w && w.content && w.context && w.context.isReady && w.sessionContext &&
                                 w.sessionContext.session && w.sessionContext.session.kernel &&
                                 w.sessionContext.session.kernel.status === 'idle'); }""",
            timeout=120_000, polling=250)
        self.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

    def run_all(self, timeout_s: float) -> dict:
        """Run every cell (stopping at an error, as JupyterLab does), wait for the kernel to go idle."""
        self.page.evaluate("""() => { window.__kitRunDone = false;
            window.jupyterapp.commands.execute('notebook:run-all-cells')
              .then((ok) => { window.__kitRunOk = ok; window.__kitRunDone = true; })
              .catch((e) => { window.__kitRunOk = String(e); window.__kitRunDone = true; }); }""")
        self.page.wait_for_function(
            """() => window.__kitRunDone === true &&
                     window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'""",
            timeout=timeout_s * 1000, polling=500)
        return self.state()

    def state(self) -> dict:
        return self.page.evaluate(NOTEBOOK_STATE_JS)

    def settled_state(self, timeout_s: float = 60.0) -> dict:
        """The notebook's state once its kernel has been idle for a second (widget messages make it busy)."""
        self.page.wait_for_function(
            """() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                       const now = Date.now();
                       if (k.status !== 'idle') { window.__kitIdleSince = null; return false; }
                       window.__kitIdleSince = window.__kitIdleSince || now;
                       return now - window.__kitIdleSince > 1000; }""", timeout=timeout_s * 1000, polling=200)
        return self.state()

    def views(self) -> dict:
        declared = self.page.evaluate(MODEL_VIEWS_JS)
        return self.page.evaluate(f"(n) => ({READ_VIEWS_JS})([window.jupyterapp.shell.currentWidget.node, n])",
                                  declared)

    def wait_views(self, expected: dict, timeout_s: float = 120.0) -> dict:
        """Return the view counts once they reach ``expected`` (or whatever they are after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.views()
            reached = got["views"] >= expected["views"] and got["plots"] >= expected["plots"]
            if (reached and not got["broken_views"]) or time.monotonic() > deadline:
                return got
            self.page.wait_for_timeout(500)

    def screenshot(self, name: str) -> Path:
        """A screenshot of the whole notebook (the viewport stretched to its height) under runs/browser/."""
        height = self.page.evaluate("""() => { const n = window.jupyterapp.shell.currentWidget.content.node;
            return Math.max(n.scrollHeight, ...[...n.querySelectorAll('.jp-WindowedPanel-inner')]
                                                      .map((e) => e.scrollHeight)); }""")
        return full_screenshot(self.page, name, height + 150, """() => {
            const n = window.jupyterapp.shell.currentWidget.content.node;
            for (const e of [n, ...n.querySelectorAll('.jp-WindowedPanel-outer')]) e.scrollTop = 0; }""")

    def save(self) -> Path:
        """Save the notebook (the copy under the servers' root) with its outputs; return its path."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                                    timeout=60_000)
        rel = self.page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
        return self.root / rel

    def interact(self, action: dict) -> tuple[list, list]:
        return interact(self.page, action)


def full_screenshot(page, name: str, height: int, to_top: str = "() => window.scrollTo(0, 0)") -> Path:
    """Screenshot the page with the viewport stretched to ``height`` px (at most 16000) into runs/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": int(min(max(height, 1000), 16000))})
    page.evaluate(to_top)
    page.wait_for_timeout(800)  # plotly relayouts to the new size
    path = ARTIFACTS / f"{name.replace('/', '__')}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    return path


def interact(page, action: dict) -> tuple[list, list]:
    """Do what a learner does to one control and return the plots' signatures (before, after) in its output.

    action: {kind: "slider" | "dropdown", label: the control's description, nth: which such control (0),
    keys: keys pressed on a slider's handle (["ArrowRight"]), option: the dropdown value to pick (default: the
    next one), wait_s: how long to wait for the figure to change (60)}.
    """
    kind, label, nth = action["kind"], action["label"], action.get("nth", 0)
    marker = page.evaluate(CONTROL_JS, [kind, label, nth])
    assert marker, f"no {kind} labelled {label!r} (#{nth}) on the page"
    control = page.locator(f'[data-kit-control="{marker}"]')
    output = page.locator(f'[data-kit-output="{marker}"]')
    control.scroll_into_view_if_needed()
    before = output.evaluate(PLOTS_SIGNATURE_JS)
    assert before, f"the output holding the {kind} {label!r} has no plotly plot"
    if kind == "slider":
        handle = control.locator(".noUi-handle").first
        handle.focus()
        for key in action.get("keys", ["ArrowRight"]):
            handle.press(key)
    elif kind == "dropdown":
        select = control.locator("select")
        values = select.evaluate("(s) => [...s.options].map((o) => o.value)")
        current = select.input_value()
        pick = action.get("option") or values[(values.index(current) + 1) % len(values)]
        select.select_option(value=pick)
    else:
        raise ValueError(f"unknown control kind {kind!r}")
    deadline = time.monotonic() + action.get("wait_s", 60)
    after = before
    while time.monotonic() < deadline:
        page.wait_for_timeout(400)
        after = output.evaluate(PLOTS_SIGNATURE_JS)
        if after != before:
            break
    return before, after


def problems(label: str, state: dict, views: dict, expected: dict) -> list[str]:
    """Return every way the run differs from the table: errors, undeclared stderr, unrun cells, view counts."""
    out = []
    allowed = [re.compile(p) for p in expected.get("stderr", [])]
    for c in state["cells"]:
        where = f"cell {c['index']}"
        out += [f"{where}: error output {e}" for e in c["errors"]]
        for text in c["stderr"]:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            bad = [ln for ln in lines if not any(p.search(ln) for p in allowed)]
            if bad:
                out.append(f"{where}: stderr output not declared in notebooks.toml: {' | '.join(bad)[:600]}")
        if c["count"] is None:
            out.append(f"{where}: never ran")
    if state["kernel"] != "idle":
        out.append(f"kernel is {state['kernel']}, not idle")
    out += [f"a widget view failed to render: {b}" for b in views["broken_views"]]
    if views["empty_plots"]:
        out.append(f"{views['empty_plots']} plotly plot(s) drew no data")
    for key in ("views", "plots"):
        if views[key] != expected[key]:
            out.append(f"{views[key]} {key} rendered, notebooks.toml declares {expected[key]}")
    return [f"{label}: {p}" for p in out]


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


VOILA_OUTPUTS_JS = """
() => ({
  stderr: [...document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')].map((n) => n.textContent),
  code_cells: document.querySelectorAll('.jp-CodeCell .jp-InputArea, .jp-CodeCell .cm-editor').length,
  text: document.body.innerText.slice(0, 400),
})
"""


def voila_state(page, expected: dict, timeout_s: float) -> tuple[dict, dict]:
    """Wait until the Voila page shows the views and plots ``expected`` declares (or an error, or the timeout),
    then return (outputs: stderr texts, code cells shown; views: as READ_VIEWS_JS counts them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        views = page.evaluate(f"() => ({READ_VIEWS_JS})([document.body, null])")
        outputs = page.evaluate(VOILA_OUTPUTS_JS)
        done = views["views"] >= expected["views"] and views["plots"] >= expected["plots"]
        if done or outputs["stderr"] or time.monotonic() > deadline:
            break
        page.wait_for_timeout(1000)
    page.wait_for_timeout(1500)  # let the last figures draw
    return page.evaluate(VOILA_OUTPUTS_JS), page.evaluate(f"() => ({READ_VIEWS_JS})([document.body, null])")


@pytest.fixture(scope="session")
def harness():
    """The helpers above, for the test modules (conftest is not importable under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(ROOT=ROOT, ARTIFACTS=ARTIFACTS, NOTEBOOK_TABLE=NOTEBOOK_TABLE, Lab=Lab, LabRun=LabRun,
                           problems=problems, start_voila=start_voila, record_summary=record_summary,
                           summary_path=summary_path, READ_VIEWS_JS=READ_VIEWS_JS, CONTROL_JS=CONTROL_JS,
                           PLOTS_SIGNATURE_JS=PLOTS_SIGNATURE_JS, prepare_notebook=prepare_notebook,
                           interact=interact, full_screenshot=full_screenshot,
                           shutdown_kernels=shutdown_kernels, voila_state=voila_state)
