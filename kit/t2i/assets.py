"""Train the ShapesWorld text-to-image model (resumable: it trains into ``--run-dir`` and re-running continues from
the last checkpoint), then write it as ``kit/assets/t2i_shapes/`` is laid out (float16 safetensors, configs,
tokenizer).

The committed model was built in two stages (the exact commands are in notebooks/t2i/README.md):

1. on 2 CPU cores, about 40 minutes, cross-attention only and uniform timesteps::

       python -m kit.t2i.assets --pooled-text-heads 0 --timestep-sampling uniform --out runs/t2i_stage1

2. on one GPU, about 5.5 minutes on an H200: ``tools/gpu_t2i.py`` continues from stage 1 with the "shapes" preset as
   it is now (pooled text path, logit-normal timesteps), batch 128, bf16, 3,070 steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kit.core import RunDir, set_threads
from kit.t2i.config import preset
from kit.t2i.experiment import save_model, train

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "t2i_shapes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", default="runs/t2i_shapes")
    parser.add_argument("--out", default=str(ASSET_DIR))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pooled-text-heads", type=int, default=None)
    parser.add_argument("--timestep-sampling", default=None, choices=("uniform", "logit_normal"))
    parser.add_argument("--init-from", default=None,
                        help="start from a saved model folder (e.g. kit/assets/t2i_shapes) to train it further")
    parser.add_argument("--n-objects", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                        help="objects per training scene, an inclusive range (the preset's: 1 2)")
    parser.add_argument("--single-fraction", type=float, default=None,
                        help="share of one-object scenes when the range starts at 1 (the preset's: 0.7)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    cfg = preset("shapes", max_steps=args.max_steps, pooled_text_heads=args.pooled_text_heads,
                 timestep_sampling=args.timestep_sampling,
                 n_objects=tuple(args.n_objects) if args.n_objects else None,
                 single_fraction=args.single_fraction, lr=args.lr, batch_size=args.batch_size,
                 checkpoint_every=args.checkpoint_every)
    result = train(cfg, RunDir(args.run_dir), init_from=args.init_from)
    folder = save_model(result.pipeline, args.out, cfg)
    print(f"saved the ShapesWorld model ({result.fit.step} steps) to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
