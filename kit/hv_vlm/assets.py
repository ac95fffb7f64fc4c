"""Build the committed Siamese verifier: ``python -m kit.hv_vlm.assets`` (see ``results.json`` for the time it took).

Trains the quarter-width Siamese ResNet-18 with the "lite" preset (synthetic writers at noise 1.8, fresh pairs
every step, the best validation F1 kept), evaluates it with the handcrafted baselines and the offline examiner on
its held-out test writers, and writes ``kit/assets/hv_siamese/``: ``model.safetensors`` (float16), ``config.json``
(the architecture) and ``results.json`` (the evaluation, the training curve, the training writers and the time it
took). The notebooks load this model by default.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from kit.core import RunDir, load_weights, read_json, save_model, set_threads
from kit.hv_vlm.model import SiameseVerifier

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "hv_siamese"
ARCH_KEYS = ("width", "signed_difference", "size")
REBUILD = "python -m kit.hv_vlm.assets"



def load_pretrained(folder: str | Path | None = None) -> SiameseVerifier:
    """Return the committed Siamese verifier in eval mode, float32 on the CPU.

    Raises FileNotFoundError naming the file and the command that rebuilds it when it is missing.
    """
    folder = Path(folder or ASSET_DIR)
    arch = read_json(folder / "config.json", REBUILD)
    model = SiameseVerifier(arch["width"], signed_difference=arch["signed_difference"])
    return load_weights(model, folder / "model.safetensors", REBUILD)


def committed_results(folder: str | Path | None = None) -> dict:
    """Return ``results.json`` of the committed model (what :func:`main` measured when it built it)."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", REBUILD)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not isinstance(v, np.ndarray) or v.size <= 4096}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def main(argv: list[str] | None = None) -> int:
    from kit.hv_vlm.config import preset
    from kit.hv_vlm.experiment import evaluate, load_data, train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ASSET_DIR))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--run-dir", default=str(Path(tempfile.gettempdir()) / "kit_hv_siamese_run"),
                        help="checkpoints of the training run: an interrupted build resumes from there")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    cfg = preset("lite", steps=args.steps, device="cpu")
    t0 = time.perf_counter()
    data = load_data(cfg)
    data_seconds = time.perf_counter() - t0
    cpu0 = time.process_time()
    result = train(cfg, run=RunDir(args.run_dir), data=data)
    cpu = time.process_time() - cpu0
    out = Path(args.out)
    save_model(result.model, {k: getattr(cfg, k) for k in ARCH_KEYS}, out)
    model = load_pretrained(out)  # evaluate what is committed: the float16 weights
    ev = evaluate(cfg, model, data)
    ev.pop("scores", None)
    ev.pop("faithfulness_rows", None)
    ev["verdicts"] = [{"pair": p.tolist(), "decision": v.decision, "explanation": v.explanation, "raw": v.raw}
                      for p, v in zip(ev["examiner_pairs"][:10], ev["verdicts"][:10])]  # a few, to read
    report = {"config": asdict(cfg), "threads": args.threads, "data_seconds": data_seconds,
              "train_seconds": result.seconds, "train_cpu_seconds": cpu, "best_step": result.best_step,
              "steps": result.steps, "val": result.metrics, "history": result.history, "evaluation": ev,
              "train_writers": data.writers["train"].tolist()}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(_jsonable(report), indent=1, default=float))
    tmp.replace(out / "results.json")
    for row in ev["rows"]:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
