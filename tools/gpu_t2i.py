"""Train the ShapesWorld text-to-image model further on a GPU under a wall-clock cap, exporting as it goes.

    python tools/gpu_t2i.py --init-from runs/t2i_stage1 --out runs/t2i_stage2 --max-steps 7000 --stop-step 3070

(stage 2 of the committed model: the run that built it had ``--seconds 330`` and the cap stopped it at step 3,070
on an H200; ``--stop-step`` repeats that stop without depending on the card's speed). Starts from ``--init-from``
(default: the committed weights), adds what the current config adds (the pooled-text path
starts silent), trains with the "shapes" preset at a larger batch, and writes DIR/export (the same layout as
kit/assets/t2i_shapes) every ``--export-every`` steps and at the end, so a run cut short still leaves a model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


class _TimeUp(Exception):
    pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--max-steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seconds", type=float, default=1e9)
    p.add_argument("--stop-step", type=int, default=0, help="stop after this step (0: at --max-steps)")
    p.add_argument("--init-from", default=None, help="a saved model folder (default: kit/assets/t2i_shapes)")
    p.add_argument("--export-every", type=int, default=1000)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--mixed-precision", default="bf16")
    args = p.parse_args()

    from kit.core import RunDir
    from kit.t2i import experiment as ex
    from kit.t2i.assets import ASSET_DIR
    from kit.t2i.config import preset

    out = Path(args.out)
    cfg = preset("shapes", max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, device=args.device,
                 checkpoint_every=0)
    t0 = time.time()
    state = {"last": 0, "log": []}
    holder: dict = {}

    orig_fit = ex.fit

    def fit_capturing(model, *a, **kw):  # keep a handle on the model trained in place, and the mixed precision
        holder["model"] = model
        kw["mixed_precision"] = args.mixed_precision
        kw["num_workers"] = args.workers
        kw["checkpoint_every"] = 0
        return orig_fit(model, *a, **kw)

    ex.fit = fit_capturing

    def export(step: int) -> None:
        m = holder["model"]
        comps = ex.build_components(cfg)
        comps["unet"], comps["text_encoder"] = m.unet, m.text_encoder
        pipe = ex.make_pipeline(comps, cfg)
        ex.save_model(pipe, out / "export", cfg)
        (out / "export" / "gpu_train.json").write_text(json.dumps(
            {"steps": step, "batch_size": cfg.batch_size, "seconds": round(time.time() - t0, 1),
             "lr": cfg.lr, "mixed_precision": args.mixed_precision, "device": torch.cuda.get_device_name(0)
             if torch.cuda.is_available() else "cpu", "log": state["log"][-50:]}, indent=1))
        m.train()

    def callback(event: dict) -> None:
        if event.get("kind") != "train":
            return
        step = event["step"]
        state["log"].append({"step": step, "loss": round(float(event["loss"]), 5), "t": round(time.time() - t0, 1)})
        if step % 200 == 0:
            print(f"step {step} loss {event['loss']:.5f} t {time.time() - t0:.0f}s", flush=True)
        if step - state["last"] >= args.export_every:
            state["last"] = step
            export(step)
        if time.time() - t0 > args.seconds or (args.stop_step and step >= args.stop_step):
            raise _TimeUp

    try:
        ex.train(cfg, RunDir("/tmp/kit_t2i_gpu_run"), callbacks=[callback], init_from=args.init_from or ASSET_DIR)
        final = cfg.max_steps
    except _TimeUp:
        final = state["log"][-1]["step"]
        print(f"time cap reached at step {final}", flush=True)
    export(final)
    print(f"exported step {final} to {out / 'export'} after {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
