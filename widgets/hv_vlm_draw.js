// DrawCanvas's front end (widgets/hv_vlm.py): a plain <canvas> to write "and" on with a mouse, a pen or a finger.
// Pointer events cover all three; each finished stroke is appended to the synced `strokes` trait as a list of
// [x, y] canvas pixels. "Undo" drops the last stroke, "Clear" all of them; Python may set `strokes` too.

function render({ model, el }) {
  const root = document.createElement("div");
  root.style.display = "inline-flex";
  root.style.flexDirection = "column";
  root.style.gap = "4px";

  const canvas = document.createElement("canvas");
  canvas.style.border = "1px solid #999";
  canvas.style.borderRadius = "4px";
  canvas.style.background = "#fff";
  canvas.style.cursor = "crosshair";
  canvas.style.touchAction = "none"; // a finger draws instead of scrolling the page
  const ctx = canvas.getContext("2d");

  const bar = document.createElement("div");
  bar.style.display = "flex";
  bar.style.gap = "6px";
  bar.style.alignItems = "center";
  const button = (label) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.className = "jupyter-button";
    bar.appendChild(b);
    return b;
  };
  const undo = button("Undo");
  const clear = button("Clear");
  const hint = document.createElement("span");
  hint.style.color = "#666";
  hint.style.fontSize = "12px";
  bar.appendChild(hint);

  let current = null; // the stroke being drawn: [[x, y], ...]

  function size() {
    canvas.width = model.get("canvas_width");
    canvas.height = model.get("canvas_height");
  }

  function guides() {
    // light guide lines: the baseline and the x-height, as on ruled paper
    const h = canvas.height;
    ctx.save();
    ctx.strokeStyle = "#dde6f0";
    ctx.lineWidth = 1;
    ctx.setLineDash([6, 4]);
    for (const y of [0.7 * h, 0.45 * h]) {
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(canvas.width, y);
      ctx.stroke();
    }
    ctx.restore();
  }

  function path(points) {
    if (!points.length) return;
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    if (points.length === 1) {
      ctx.arc(points[0][0], points[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }

  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    guides();
    ctx.strokeStyle = "#111";
    ctx.fillStyle = "#111";
    ctx.lineWidth = model.get("line_width");
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    const strokes = model.get("strokes") || [];
    for (const s of strokes) path(s);
    if (current) path(current);
    hint.textContent = strokes.length
      ? `${strokes.length} stroke${strokes.length === 1 ? "" : "s"}`
      : 'write "and" here';
  }

  function point(event) {
    const r = canvas.getBoundingClientRect();
    const x = ((event.clientX - r.left) * canvas.width) / r.width;
    const y = ((event.clientY - r.top) * canvas.height) / r.height;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = [point(event)];
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    event.preventDefault();
    const p = point(event);
    const last = current[current.length - 1];
    if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 1) {
      current.push(p);
      redraw();
    }
  });
  const finish = (event) => {
    if (!current) return;
    event.preventDefault();
    const stroke = current;
    current = null;
    model.set("strokes", [...(model.get("strokes") || []), stroke]);
    model.save_changes();
    redraw();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  undo.addEventListener("click", () => {
    model.set("strokes", (model.get("strokes") || []).slice(0, -1));
    model.save_changes();
  });
  clear.addEventListener("click", () => {
    model.set("strokes", []);
    model.save_changes();
  });

  model.on("change:strokes", redraw);
  model.on("change:line_width", redraw);
  const resize = () => {
    size();
    redraw();
  };
  model.on("change:canvas_width", resize);
  model.on("change:canvas_height", resize);

  size();
  redraw();
  root.appendChild(canvas);
  root.appendChild(bar);
  el.appendChild(root);
  return () => {
    model.off("change:strokes", redraw);
    model.off("change:line_width", redraw);
    model.off("change:canvas_width", resize);
    model.off("change:canvas_height", resize);
  };
}

export default { render };
