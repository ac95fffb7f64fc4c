"""Reading and driving a page of JupyterLab or Voila: the scripts that count rendered widget views and plotly plots,
read a notebook's outputs, find a control by its description and fingerprint the figures beside it; the ``Lab``
driver; what counts as a problem. Loaded by conftest.py (test modules get it through the ``harness`` fixture).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "runs" / "browser"


# Widget views and plotly plots below a root node. A widget view is an output area child holding a rendered
# ipywidgets view; a failed one shows "Error displaying widget..." or an error widget instead. `expectViews`: the
# widget-view outputs the kernel sent (from the notebook model; null in Voila, which has no model to read), so a
# view that never rendered at all is caught too.
READ_VIEWS_JS = """
([root, expectViews]) => {
  const res = {views: 0, broken_views: [], plots: 0, empty_plots: 0, empty_details: [], declared_views: expectViews};
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
    if (drawn && Array.isArray(gd.data) && gd.data.some(hasData)) { res.plots += 1; continue; }
    res.empty_plots += 1;
    // what the figure's front end knew when it last drew (widgets/figure.js marks its hosts), for the report
    const host = gd.closest('[data-kit-draw]');
    res.empty_details.push({drawn, traces: Array.isArray(gd.data) ? gd.data.length : null,
                            model_traces: host ? host.dataset.kitTraces : null,
                            draw: host ? host.dataset.kitDraw : null,
                            stats: host && host.parentElement ? host.parentElement.dataset.kitStats || null : null,
                            title: String((gd.layout && gd.layout.title && gd.layout.title.text) || '').slice(0, 80)});
  }
  // widgets/figure.js's counts per figure view (resync requests, answers, ...), kept in runs/browser/summary.json
  res.figure_stats = [...root.querySelectorAll('[data-kit-stats]')].map((n) => JSON.parse(n.dataset.kitStats));
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


class Lab:
    """Drive one JupyterLab page: open a notebook, run all cells, read the outputs and views."""

    def __init__(self, server, page, root: Path):  # server: conftest.Server
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
        out.append(f"{views['empty_plots']} plotly plot(s) drew no data: {views.get('empty_details')}")
    for key in ("views", "plots"):
        if views[key] != expected[key]:
            out.append(f"{views[key]} {key} rendered, notebooks.toml declares {expected[key]}")
    return [f"{label}: {p}" for p in out]


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
