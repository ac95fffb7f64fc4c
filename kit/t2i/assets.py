"""Rebuild the committed ShapesWorld text-to-image model: ``python -m kit.t2i.assets`` (about 40 minutes on 2 CPU
cores; resumable: it trains into ``runs/t2i_shapes/`` and re-running continues from the last checkpoint), then
writes ``kit/assets/t2i_shapes/`` (float16 safetensors, configs, tokenizer)."""

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
    parser.add_argument("--init-from", default=None,
                        help="start from a saved model folder (e.g. kit/assets/t2i_shapes) to train it further")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    cfg = preset("shapes", max_steps=args.max_steps)
    result = train(cfg, RunDir(args.run_dir), init_from=args.init_from)
    folder = save_model(result.pipeline, args.out, cfg)
    print(f"saved the ShapesWorld model ({result.fit.step} steps) to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
