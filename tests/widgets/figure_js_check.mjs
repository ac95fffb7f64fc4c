// Drives widgets/figure.js in node with a fake widget model and a fake plotly front end that behaves as plotly's
// does where it matters: plotly's model keeps `_widget_data` up to date from the update messages, its views
// subscribe through that model and never unsubscribe, and a purged view throws on the next update. Prints one JSON
// line of observations; tests/widgets/test_figure_js.py asserts on them.
import { pathToFileURL } from "node:url";

const BUNDLE_ID = "bundle-1";
let releaseBundle;
globalThis.__kitPlotlyBundles = new Map([[BUNDLE_ID, new Promise((r) => (releaseBundle = r))]]);
globalThis.document = {
  createElement: () => {
    const node = { dataset: {}, removed: false, children: [] };
    node.remove = () => { node.removed = true; };
    node.appendChild = (c) => node.children.push(c);
    return node;
  },
};

class FakeModel {
  constructor(state) { this.state = { ...state }; this.handlers = new Map(); this.sent = []; }
  get(name) { return this.state[name]; }
  on(event, cb) { if (!this.handlers.has(event)) this.handlers.set(event, []); this.handlers.get(event).push(cb); }
  off(event, cb) { this.handlers.set(event, (this.handlers.get(event) || []).filter((h) => h !== cb)); }
  // Backbone: handlers run in order and the first one that throws stops the rest
  set(name, value) { this.state[name] = value; for (const cb of [...(this.handlers.get(`change:${name}`) || [])]) cb(); }
  emit(event, ...args) { for (const cb of [...(this.handlers.get(event) || [])]) cb(...args); }
  // the kernel (widgets.viz.FigureWidget) answers a resync request, unless told to stay silent
  send(msg) {
    this.sent.push(msg);
    if (msg.type === "kit:resync" && !this.silent) {
      setTimeout(() => this.emit("msg:custom", { type: "kit:resynced", traces: this.state._widget_data.length }), 0);
    }
  }
  count() { let n = 0; for (const hs of this.handlers.values()) n += hs.length; return n; }
}

const views = [];
const fakePlotly = () => {
  let figModel;
  return {
    initialize({ model }) {
      figModel = model;
      model.on("change:_py2js_addTraces", () => {
        const msg = model.get("_py2js_addTraces");
        if (msg) model.get("_widget_data").push(...msg.trace_data);
      });
    },
    render({ el }) {
      const view = { el, traces: [...figModel.get("_widget_data")], purged: false };
      views.push(view);
      figModel.on("change:_py2js_addTraces", () => {
        const msg = figModel.get("_py2js_addTraces");
        if (!msg) return;
        if (view.purged) throw new Error("gd.data must be an array");
        view.traces.push(...msg.trace_data);
      });
      return () => { view.purged = true; };
    },
  };
};

const tick = () => new Promise((r) => setTimeout(r, 0));
const { default: factory } = await import(pathToFileURL(process.argv[2]).href);
const model = new FakeModel({ _kit_bundle: `IPY_MODEL_${BUNDLE_ID}`, _widget_data: [], _py2js_addTraces: null });
model.widget_manager = {};
const widget = factory();
widget.initialize({ model });
const send = (name) => { model.set("_py2js_addTraces", { trace_data: [{ name }] }); model.set("_py2js_addTraces", null); };
const out = {};
send("early"); // arrives while the bundle loads
const el = globalThis.document.createElement("div");
const rendering = widget.render({ model, el });
releaseBundle(fakePlotly);
const teardown = await rendering;
out.resyncs = model.sent.filter((m) => m.type === "kit:resync").length;
out.first_view = views[0].traces.map((t) => t.name);
model.set("_widget_data", [{ name: "early" }, { name: "resynced" }]); // the kernel answers the resync
await tick(); await tick();
out.views = views.length;
out.host_removed = el.children[0].removed;
const errors = [];
const origError = console.error;
console.error = (...args) => errors.push(String(args[0]));
send("late"); // after the redraw: the purged first view must not stop the live one
console.error = origError;
out.live_view = views[views.length - 1].traces.map((t) => t.name);
out.model_data = model.get("_widget_data").map((t) => t.name);
out.errors = errors;
out.handlers_before_teardown = model.count();
out.stats = JSON.parse(el.dataset.kitStats);
teardown();
out.handlers_after_teardown = model.count();
// a kernel that never answers is asked again, with growing pauses (2 s, then 4 s, ...)
const quiet = new FakeModel({ _kit_bundle: `IPY_MODEL_${BUNDLE_ID}`, _widget_data: [], _py2js_addTraces: null });
quiet.silent = true;
const quietWidget = factory();
quietWidget.initialize({ model: quiet });
const quietTeardown = await quietWidget.render({ model: quiet, el: globalThis.document.createElement("div") });
await new Promise((r) => setTimeout(r, 2300));
out.unanswered_resyncs = quiet.sent.filter((m) => m.type === "kit:resync").length;
quietTeardown();
// anywidget gave up starting a model (its start-up promise rejected, as after 2 s on a loaded page): its override
// of the widget model's message handler then rejects every message, and the kernel's answers never arrive
class WidgetModelBase { // @jupyter-widgets/base: updates set the state, custom messages are triggered
  _handle_comm_msg(msg) {
    const data = msg.content.data;
    if (data.method === "update") for (const [k, v] of Object.entries(data.state)) this.fake.set(k, v);
    if (data.method === "custom") this.fake.emit("msg:custom", data.content);
    return Promise.resolve();
  }
}
class GaveUpAnyModel extends WidgetModelBase {
  _handle_comm_msg() { return Promise.reject(new Error("[anywidget] Failed to initialize model.")); }
}
const deaf = new FakeModel({ _kit_bundle: `IPY_MODEL_${BUNDLE_ID}`, _widget_data: [], _py2js_addTraces: null,
                             _kit_model_id: "fig-2" });
deaf.silent = true; // the kernel answers through the comm below
const widgetModel = new GaveUpAnyModel();
widgetModel.fake = deaf;
widgetModel.comm = { handler: (msg) => widgetModel._handle_comm_msg(msg), on_msg(cb) { this.handler = cb; } };
deaf.widget_manager = { get_model: async (id) => (id === "fig-2" ? widgetModel : undefined) };
const kernelSends = (data) => widgetModel.comm.handler({ content: { data } }).catch(() => {}); // JupyterLab swallows
const deafWidget = factory();
const viewsBefore = views.length;
deafWidget.initialize({ model: deaf });
const deafEl = globalThis.document.createElement("div");
const deafTeardown = await deafWidget.render({ model: deaf, el: deafEl });
for (let i = 0; i < 5; i++) await tick();
for (const msg of deaf.sent.filter((m) => m.type === "kit:resync")) { // the kernel answers every request
  kernelSends({ method: "update", state: { _widget_data: [{ name: "from kernel" }] } });
  kernelSends({ method: "custom", content: { type: "kit:resynced", traces: 1 } });
}
for (let i = 0; i < 5; i++) await tick();
const deafStats = JSON.parse(deafEl.dataset.kitStats);
out.deaf = { messages: deafStats.messages, answers: deafStats.answers, resyncs: deafStats.resyncs,
             live_view: views[views.length - 1].traces.map((t) => t.name), views: views.length - viewsBefore };
deafTeardown();
console.log(JSON.stringify(out));
process.exit(0); // the quiet model's retry timer would keep node waiting
