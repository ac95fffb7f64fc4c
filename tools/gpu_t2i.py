"""Train the ShapesWorld text-to-image model further on a GPU under a step or wall-clock cap, then export it.

    python tools/gpu_t2i.py --init-from runs/t2i_stage1 --out runs/t2i_stage2 --max-steps 7000 --stop-step 3070

This is stage 2 of the committed model (notebooks/t2i/README.md): the "shapes" preset as it is now (pooled-text
path, logit-normal timesteps) at batch 128, bf16, 8 data workers, starting from ``--init-from`` (default: the
committed weights). The run that built the committed model had ``--seconds 330`` and the cap stopped it at step
3,070 on an H200; ``--stop-step`` repeats that stop without depending on the card's speed. A cap interrupts
``kit.core.fit`` (which checkpoints, as on Ctrl-C); the model is then read back from that checkpoint.
Writes ``OUT/export`` (the layout of kit/assets/t2i_shapes) with ``gpu_train.json`` (steps, time, loss log).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--run-dir", default="/tmp/kit_t2i_gpu_run", help="training checkpoints (resumable)")
    p.add_argument("--init-from", default=None, help="a saved model folder (default: kit/assets/t2i_shapes)")
    p.add_argument("--max-steps", type=int, default=7000, help="length of the learning-rate schedule")
    p.add_argument("--stop-step", type=int, default=0, help="stop after this step (0: at --max-steps)")
    p.add_argument("--seconds", type=float, default=float("inf"), help="stop after this much wall time")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--mixed-precision", default="bf16")
    args = p.parse_args()

    from kit.core import RunDir
    from kit.t2i.assets import ASSET_DIR
    from kit.t2i.config import preset
    from kit.t2i.experiment import pipeline_from_checkpoint, save_model, train

    cfg = preset("shapes", max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, device=args.device,
                 mixed_precision=args.mixed_precision, num_workers=args.workers, checkpoint_every=0)
    run = RunDir(args.run_dir)
    t0, log = time.time(), []

    def callback(event: dict) -> None:
        if event.get("kind") != "train":
            return
        step = event["step"]
        log.append({"step": step, "loss": round(float(event["loss"]), 5), "t": round(time.time() - t0, 1)})
        if step % 200 == 0:
            print(f"step {step} loss {event['loss']:.5f} t {time.time() - t0:.0f}s", flush=True)
        if time.time() - t0 > args.seconds or (args.stop_step and step >= args.stop_step):
            raise KeyboardInterrupt  # fit writes a checkpoint of this step, then re-raises

    try:
        result = train(cfg, run, callbacks=[callback], init_from=args.init_from or ASSET_DIR)
        pipe, step = result.pipeline, result.fit.step
    except KeyboardInterrupt:
        pipe, step = pipeline_from_checkpoint(cfg, run.latest_checkpoint())
        print(f"stopped at step {step}", flush=True)
    folder = save_model(pipe, Path(args.out) / "export", cfg)
    (folder / "gpu_train.json").write_text(json.dumps(
        {"steps": step, "batch_size": cfg.batch_size, "seconds": round(time.time() - t0, 1), "lr": cfg.lr,
         "mixed_precision": cfg.mixed_precision, "device": torch.cuda.get_device_name(0)
         if torch.cuda.is_available() else "cpu", "log": log[-50:]}, indent=1))
    print(f"exported step {step} to {folder} after {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
