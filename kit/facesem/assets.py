"""Build the committed facesem detectors and the README's protocol table: ``python -m kit.facesem.assets``
(``results.json`` records the time it took).

For each seed (default 0, 1, 2), protocol (in-distribution, Protocol-1: unseen generator, Protocol-2: unseen
attribute "smile") and mode (SO: graph + Auto-lambda; independent sigmoids; binary; multi-class), the "lite" preset
trains a detector on procedural faces and evaluates it on unseen people: AUC, ACC and, for the 12-node modes, the
impossible-label-set rate. Each unit is cached as JSON under ``--work`` so an interrupted build resumes. Writes
``kit/assets/facesem/``: the seed-0 in-distribution detectors ``<mode>.safetensors`` (float16), ``config.json`` and
``results.json`` (every row, the seed-0 training histories with Auto-lambda's trace).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from kit.core import load_weights, read_json, save_weights, set_threads, write_json
from kit.facesem.experiment import PROTOCOLS, FaceConfig, evaluate, make_data, method_classes, preset, train
from kit.facesem.models import MODES, FaceDetector, build_detector

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "facesem"
REBUILD = "python -m kit.facesem.assets"


def load_detector(mode: str, folder: str | Path | None = None) -> FaceDetector:
    """The committed in-distribution detector of ``mode`` (float32, CPU, eval mode); FileNotFoundError names the
    rebuild command when it is missing."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    folder = Path(folder or ASSET_DIR)
    arch = read_json(folder / "config.json", REBUILD)
    model = build_detector(mode, arch["backbone"], len(arch["methods"]))
    return load_weights(model, folder / f"{mode}.safetensors", REBUILD)


def committed_results(folder: str | Path | None = None) -> dict:
    """``results.json`` of the committed build."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", REBUILD)


def _unit(cfg: FaceConfig, data, out_dir: Path | None) -> dict:
    res = train(cfg, data, progress=False)
    if out_dir is not None:
        save_weights(res.model, out_dir / f"{cfg.mode}.safetensors")
        res.model = load_detector(cfg.mode, out_dir)  # evaluate what is committed: the float16 weights
    ev = evaluate(res.model, cfg.mode, data["test"])
    hist = [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()} for h in res.history]
    return {"seed": cfg.seed, "protocol": cfg.protocol, "mode": cfg.mode, **ev, "train_seconds": res.seconds,
            "val": res.best_metrics, "lambdas": res.lambdas[-1] if res.lambdas else None,
            "history": hist if out_dir is not None else None}


def build(seeds=(0, 1, 2), protocols=PROTOCOLS, modes=MODES, work: Path | None = None, out: Path = ASSET_DIR,
          preset_name: str = "lite", steps: int | None = None) -> dict:
    """Run the build (module docstring) and return the report written to ``out / "results.json"``."""
    work = Path(work or Path(tempfile.gettempdir()) / "kit_facesem_build")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    base = preset(preset_name, steps=steps, device="cpu")
    t0 = time.perf_counter()
    rows = []
    for seed in seeds:
        for protocol in protocols:
            cfg = replace(base, seed=seed, protocol=protocol)
            data = None
            for mode in modes:
                path = work / f"s{seed}_{protocol}_{mode}.json"
                if path.is_file():
                    rows.append(json.loads(path.read_text()))
                    continue
                if data is None:
                    data = make_data(cfg)
                    if seed == seeds[0] and protocol == "in_distribution":
                        write_json(out / "config.json", {"backbone": cfg.backbone, "size": cfg.size,
                                                         "methods": method_classes(data["train"])[1]})
                keep = out if seed == seeds[0] and protocol == "in_distribution" else None
                t = time.perf_counter()
                row = _unit(replace(cfg, mode=mode), data, keep)
                row["seconds"] = time.perf_counter() - t
                write_json(path, row)
                rows.append(row)
                print(f"seed {seed} {protocol} {mode}: AUC {row['auc']:.3f} ({row['seconds']:.0f} s)", flush=True)
    report = {"config": asdict(base), "seeds": list(seeds), "protocols": list(protocols), "modes": list(modes),
              "rows": rows, "build_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}
    write_json(out / "results.json", report)
    return report



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ASSET_DIR))
    parser.add_argument("--work", default=None, help="cache of finished units: an interrupted build resumes there")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    report = build(tuple(args.seeds), work=args.work and Path(args.work), out=Path(args.out), steps=args.steps)
    from kit.facesem.explore import protocol_matrix

    pm = protocol_matrix(report["rows"])
    for i, m in enumerate(pm["modes"]):
        print(m, {p: f"{pm['values'][i, j]:.3f} ± {pm['std'][i, j]:.3f}" for j, p in enumerate(pm["protocols"])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
