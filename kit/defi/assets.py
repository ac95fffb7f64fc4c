"""Build the committed DeFI-lite model: ``python -m kit.defi.assets`` (measured: 1528 s of training on a shared
2-core machine).

Trains DeFI-lite with the "lite" preset (SRM residual inputs, 2400 generated 64-px inpaintings of the training
photos filled by Telea, Navier-Stokes and the patch fill, 800 Adam steps of batch 16, the best validation AUC kept),
evaluates it on the held-out test photos (biharmonic fills unseen), and writes ``kit/assets/defi_lite/``:
``model.safetensors`` (float16), ``config.json`` (the architecture) and ``results.json`` (the evaluation, the training
curve and the time it took). The notebooks load this model by default, so evaluation and exploration take seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from kit.core import build_parser, load_weights, parse_build_args, read_json, save_model
from kit.defi.model import DeFINet

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "defi_lite"
ARCH_KEYS = ("model", "input_filter", "channels", "lite_widths")
REBUILD = "python -m kit.defi.assets"


def load_pretrained(preset: str = "lite", folder: str | Path | None = None) -> DeFINet:
    """Return the committed DeFI-Net ``preset`` ("lite") in eval mode, float32 on the CPU.

    Raises FileNotFoundError naming the file and the command that rebuilds it when it is missing.
    """
    if preset != "lite":
        raise ValueError(f"only the 'lite' model is committed, got preset={preset!r}; the full model is trained "
                         "with notebooks/defi/01_train.ipynb -p preset full")
    folder = Path(folder or ASSET_DIR)
    arch = read_json(folder / "config.json", REBUILD)
    model = DeFINet(arch["model"], input_filter=arch["input_filter"], channels=arch["channels"],
                    lite_widths=tuple(arch["lite_widths"]))
    return load_weights(model, folder / "model.safetensors", REBUILD)


def committed_results(folder: str | Path | None = None) -> dict:
    """Return ``results.json`` of the committed model (what :func:`main` measured when it built it)."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", REBUILD)


def main(argv: list[str] | None = None) -> int:
    from kit.defi.config import preset
    from kit.defi.experiment import evaluate, load_data, table_rows, train

    parser = build_parser(__doc__, ASSET_DIR, work=False, steps=True)
    parser.add_argument("--input-filter", default=None, help="override the preset's forensic input (an ablation)")
    args = parse_build_args(parser, argv)
    cfg = preset("lite", steps=args.steps, input_filter=args.input_filter, device="cpu")
    t0 = time.perf_counter()
    data = load_data(cfg)
    data_seconds = time.perf_counter() - t0
    cpu0 = time.process_time()
    result = train(cfg, data=data)
    cpu = time.process_time() - cpu0
    out = args.out
    save_model(result.model, {k: getattr(cfg, k) for k in ARCH_KEYS}, out)
    ev = evaluate(cfg, result.model, data)
    report = {"config": asdict(cfg), "threads": args.threads, "data_seconds": data_seconds,
              "train_seconds": result.seconds, "train_cpu_seconds": cpu, "best_step": result.best_step,
              "steps": result.steps, "val": result.metrics, "history": result.history, "evaluation": ev}
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    for row in table_rows(ev):
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
