"""Build the committed NL-RAN tiny models: ``python -m kit.nlran.assets`` (about 20 minutes on 2 CPU cores).

Trains NL-RAN tiny and the three baselines (NL-RAN without the non-local block, MONAI's 3D ResNet-18 and a 3D
ResNet-18 with CBAM, at the tiny widths) on the same 32^3 phantoms with the "tiny" preset (240 training volumes,
15 epochs, Adam lr 1e-3, best validation macro-AUC kept, BatchNorm statistics re-estimated), then writes
``kit/assets/nlran_tiny/``: one float16 safetensors file per model and ``results.json`` with the test-set report of
each, its training time (wall and CPU seconds) and the heat-map scores of NL-RAN's attention masks, CAM and Grad-CAM
against the lesion masks. The notebooks load these models by default (``load_committed``), so the evaluation and
exploration run in seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kit.core import save_weights, set_threads
from kit.nlran.weights import ASSET_DIR


def main(argv: list[str] | None = None) -> int:
    from kit.nlran.config import preset
    from kit.nlran.experiment import compare, comparison_rows, load_data
    from kit.nlran.scores import heatmap_comparison

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ASSET_DIR))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    cfg = preset("tiny", epochs=args.epochs, device="cpu")
    data = load_data(cfg)
    results = compare(cfg, data)
    out = Path(args.out)
    for name, r in results.items():
        save_weights(r["trained"].model, out / f"{name}.safetensors")
    heat = heatmap_comparison({n: r["trained"].model for n, r in results.items()}, data.test, cfg.n_explain)
    report = {"config": {k: getattr(cfg, k) for k in ("seed", "size", "n_train", "n_val", "n_test", "epochs",
                                                        "batch_size", "lr", "weight_decay", "norm", "recalibrate_bn")},
              "threads": args.threads, "rows": comparison_rows(results),
              "test_reports": {n: r["test"] for n, r in results.items()},
              "val_curves": {n: r["trained"].history for n, r in results.items()},
              "heatmap_scores": heat}
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    for row in report["rows"]:
        print(row)
    print(heat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
