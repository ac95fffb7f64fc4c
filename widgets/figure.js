// The front end of widgets.viz.FigureWidget: plotly's own FigureWidget code, loaded once per page.
//
// plotly's FigureWidget ships its whole front end (plotly.js and its widget code, ~5 MB) as every figure's `_esm`,
// so a page with five figures receives and compiles 25 MB of JavaScript, and anywidget gives each model 2 s to
// initialize: on a loaded machine or a small Binder the later figures fail ("[anywidget] Failed to initialize
// model"). Here every figure's `_esm` is this small module. The plotly bundle travels once per kernel in a shared
// widget model (`_kit_bundle` refers to it); the first figure on the page compiles it and the others reuse it.
//
// `initialize` returns at once (anywidget's 2 s deadline then only has to cover loading this small module, and
// when even that is missed, `mendMessages` below restores the figure's messages); the figure's update messages that
// arrive while the bundle loads are kept and replayed into plotly's model in order, and `render` waits for it.
// Once plotly's model is ready, and again once a view has drawn, the figure asks the kernel for its current data and
// layout ("kit:resync"; anywidget applies updates that arrive before this module's `initialize` runs with no one
// listening, so plotly's incremental messages can be missed), so an
// update that reached the page before this module started cannot be missed for good: the answer (sent when the
// kernel is next free) replaces `_widget_data` / `_widget_layout`, and the figure's views redraw from it.

const UPDATE_TRAITS = [
  "_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle", "_py2js_relayout",
  "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps", "_py2js_removeTraceProps",
];

const PAGE_CACHE = (globalThis.__kitPlotlyBundles ??= new Map()); // bundle model id -> Promise<plotly widget def factory>

// anywidget (0.11) holds every message of a model until that model's widget code has started, and gives up after
// 2 s: its start-up promise is then rejected for good, and every message the kernel sends to the model afterwards
// is dropped without a word (JupyterLab swallows the rejection). The widget code still starts a moment later and its
// views draw, so on a loaded machine a figure could send to the kernel, draw, and never hear back: no data, no
// updates, no answer to a resync. Once this module runs, that hold has done its job, so when anywidget's promise has
// failed, the model's comm is handed to the widget model's own message handler (the one anywidget's override wraps).
// Returns "ok" (nothing to mend), "mended", or why it could not look.
async function mendMessages(model) {
  const id = model.get("_kit_model_id");
  const manager = model.widget_manager;
  if (!id || typeof manager?.get_model !== "function") return "no model id";
  const widgetModel = await manager.get_model(id);
  const gated = widgetModel?._handle_comm_msg;
  if (typeof gated !== "function") return "no message handler";
  try {
    // an empty message goes through anywidget's hold and is then ignored by the widget model
    await gated.call(widgetModel, { content: { data: { method: "kit:probe" } }, buffers: [] });
    return "ok";
  } catch (err) {
    let proto = Object.getPrototypeOf(widgetModel);
    while (proto && proto._handle_comm_msg === gated) proto = Object.getPrototypeOf(proto);
    const own = proto?._handle_comm_msg;
    if (typeof own !== "function" || typeof widgetModel.comm?.on_msg !== "function") {
      console.error("kit FigureWidget: anywidget dropped this figure's messages and they cannot be mended", err);
      return "unmendable";
    }
    widgetModel.comm.on_msg((msg) => own.call(widgetModel, msg));
    console.warn(`kit FigureWidget ${id}: anywidget gave up on starting this figure (${err?.message ?? err}); ` +
                 "its messages now go to the widget model directly");
    return "mended";
  }
}

function loadBundle(model) {
  const ref = model.get("_kit_bundle") || "";
  const id = ref.startsWith("IPY_MODEL_") ? ref.slice("IPY_MODEL_".length) : ref;
  if (!id) return Promise.reject(new Error("kit FigureWidget: no plotly bundle model (_kit_bundle is empty)"));
  if (!PAGE_CACHE.has(id)) {
    PAGE_CACHE.set(id, (async () => {
      const holder = await model.widget_manager.get_model(id);
      const url = URL.createObjectURL(new Blob([holder.get("source")], { type: "text/javascript" }));
      try {
        const mod = await import(/* webpackIgnore: true */ url);
        return mod.default;
      } finally {
        URL.revokeObjectURL(url);
      }
    })());
  }
  return PAGE_CACHE.get(id);
}

export default () => {
  let ready = null; // Promise of plotly's widget definition, initialized
  // plotly's views subscribe to the model's update messages through plotly's model wrapper, which never
  // unsubscribes them. A view replaced by a redraw is purged, and plotly then throws on the next update
  // ("gd.data must be an array"); Backbone stops at the first throwing handler, so every later subscriber (the
  // live view among them) would miss that update and a figure could stay without data. So the subscriptions a
  // drawing makes are recorded and removed with it, and each handler runs on its own (an error is logged).
  let owner = null; // the drawing whose subscriptions are being recorded (set while plotly's render runs)
  const owned = new Map(); // drawing -> [[event, handler]]
  let model0 = null;
  // counts a browser test reports when a figure shows no data (on each view's element as data-kit-stats)
  const stats = { queued: 0, replayed: 0, resyncs: 0, answers: 0, answer_traces: null, data_changes: 0,
                  messages: "pending" };
  const statEls = new Set(); // the views' elements, where the counts are written
  const showStats = () => {
    for (const node of statEls) node.dataset.kitStats = JSON.stringify(stats);
  };
  // ask the kernel for the figure's current state; until it answers ("kit:resynced"), ask again after 2, 4, 8, 16
  // and 32 s (a request can reach a kernel that never answers it: one busy with other work drops nothing, but the
  // page has been seen to wait on a request for good)
  let awaiting = false;
  let retry = null;
  const resync = (attempt = 0) => {
    awaiting = true;
    model0.send({ type: "kit:resync" });
    stats.resyncs += 1;
    showStats();
    clearTimeout(retry);
    if (attempt < 5) retry = setTimeout(() => awaiting && resync(attempt + 1), 2000 * 2 ** attempt);
  };
  const release = (drawing) => {
    for (const [event, cb] of owned.get(drawing) || []) model0.off(event, cb);
    owned.delete(drawing);
  };
  return {
    initialize({ model }) {
      model0 = model;
      model.on("msg:custom", (msg) => {
        if (!msg || msg.type !== "kit:resynced") return;
        awaiting = false;
        clearTimeout(retry);
        stats.answers += 1;
        stats.answer_traces = msg.traces;
        showStats();
      });
      // plotly's model code reads each update trait's value when its change event fires; until that code is
      // loaded, keep the values (Python sets each message and then null) to hand over on replay
      const queue = [];
      let live = false;
      const early = UPDATE_TRAITS.map((name) => {
        const cb = () => {
          const value = model.get(name);
          if (!live && value !== null && value !== undefined) {
            queue.push([name, value]);
            stats.queued += 1;
          }
        };
        model.on(`change:${name}`, cb);
        return [name, cb];
      });
      let replaying = null; // {name, value} while a kept message is handed over
      const handlers = new Map(); // plotly's model-level subscriptions, for the replay
      const proxy = {
        ...model,
        get: (name) => (replaying && replaying.name === name ? replaying.value : model.get(name)),
        on: (event, cb) => {
          const isolated = (...args) => {
            try {
              cb(...args);
            } catch (err) {
              console.error(`kit FigureWidget: a plotly handler for ${event} failed`, err);
            }
          };
          if (owner) {
            owned.get(owner).push([event, isolated]);
          } else {
            if (!handlers.has(event)) handlers.set(event, []);
            handlers.get(event).push(isolated);
          }
          model.on(event, isolated);
        },
      };
      mendMessages(model).catch((err) => `not checked: ${err?.message ?? err}`).then((how) => {
        stats.messages = how;
        showStats();
        // what the kernel sent before the mend is lost: ask for the current state (once plotly's model is ready)
        if (how === "mended") ready.then(() => resync(), () => {});
      });
      ready = loadBundle(model).then((factory) => {
        const def = typeof factory === "function" ? factory() : factory;
        def.initialize?.({ model: proxy });
        live = true;
        for (const [name, cb] of early) model.off(`change:${name}`, cb);
        for (const [name, value] of queue) {
          stats.replayed += 1;
          replaying = { name, value };
          try {
            for (const cb of handlers.get(`change:${name}`) || []) cb();
          } finally {
            replaying = null;
          }
        }
        resync();
        return def;
      });
      ready.catch((err) => console.error(err));
      model.on("change:_widget_data", () => {
        stats.data_changes += 1;
        showStats();
      });
    },
    async render({ model, el, experimental }) {
      const def = await ready;
      let cleanup = null;
      let host = null;
      let current = null; // this view's drawing (owner of the subscriptions plotly's view made)
      let draws = 0;
      let drawing = Promise.resolve();
      const undraw = () => {
        if (current) release(current);
        current = null;
        if (typeof cleanup === "function") cleanup();
        cleanup = null;
        host?.remove();
      };
      // each drawing gets its own element: plotly's view draws into the element it is given and may still be
      // settling when a redraw comes, so an old view must never share (and purge) the new one's element
      const draw = () => (drawing = drawing.catch((err) => console.error(err)).then(async () => {
        undraw();
        host = document.createElement("div");
        host.dataset.kitDraw = String(++draws); // read by the browser tests when a figure shows no data
        host.dataset.kitTraces = String((model.get("_widget_data") || []).length);
        statEls.add(el);
        showStats();
        el.appendChild(host);
        current = {};
        owned.set(current, []);
        owner = current;
        let result;
        try {
          result = def.render({ model, el: host, experimental }); // plotly subscribes synchronously in here
        } finally {
          owner = null;
        }
        cleanup = await result;
      }));
      // the kernel sends the whole `_widget_data` only when a view may be stale (display, resync): draw afresh
      model.on("change:_widget_data", draw);
      await draw();
      // and once more now that this view is drawn: whatever reached the page before (or instead of) the first
      // answer, the kernel's current state follows; an answer equal to what the page holds changes nothing
      resync();
      return () => {
        model.off("change:_widget_data", draw);
        statEls.delete(el);
        undraw();
      };
    },
  };
};
