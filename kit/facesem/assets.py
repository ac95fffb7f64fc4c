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

from dataclasses import asdict, replace
from pathlib import Path

from kit.core import load_weights, read_json, save_weights, write_json
from kit.core.build import UnitCache, build_parser, default_work, parse_build_args, rounded_history
from kit.facesem.experiment import PROTOCOLS, FaceConfig, evaluate, make_data, preset, train
from kit.facesem.models import MODES, FaceDetector, build_detector

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "facesem"
REBUILD = "python -m kit.facesem.assets"


def load_detector(mode: str, folder: str | Path | None = None) -> FaceDetector:
    """The detector of ``mode`` saved in ``folder`` by :func:`save_detector` (default: the committed in-distribution
    detectors), float32, CPU, eval mode; FileNotFoundError names what is missing (and, for the committed ones, the
    rebuild command)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rebuild = REBUILD if folder is None else f"{REBUILD} --out <folder>` or `notebooks/facesem/01_train.ipynb" \
        " (it saves <output_dir>/detector)"
    folder = Path(folder or ASSET_DIR)
    arch = read_json(folder / "config.json", rebuild)
    model = build_detector(mode, arch["backbone"], len(arch["methods"]))
    return load_weights(model, folder / f"{mode}.safetensors", rebuild)


def detector_config(folder: str | Path | None = None) -> dict:
    """``config.json`` of a detector folder (default: the committed one): backbone, input size, methods."""
    return read_json(Path(folder or ASSET_DIR) / "config.json", REBUILD if folder is None else "")


def saved_modes(folder: str | Path | None = None) -> list[str]:
    """The modes (in ``MODES`` order) whose weights a detector folder holds (default: the committed one)."""
    folder = Path(folder or ASSET_DIR)
    return [m for m in MODES if (folder / f"{m}.safetensors").is_file()]


def save_detector(model: FaceDetector, mode: str, cfg: FaceConfig, methods: list[str], folder: str | Path) -> Path:
    """Write ``model`` as ``folder/<mode>.safetensors`` (float16) beside ``folder/config.json`` (backbone, input size,
    the multi-class methods): what :func:`load_detector` and the notebooks' ``checkpoint=`` read. Detectors of
    other modes may share the folder; one of another backbone may not (ValueError)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arch = {"backbone": cfg.backbone, "size": cfg.size, "methods": list(methods)}
    if (folder / "config.json").is_file():
        old = read_json(folder / "config.json")
        if (old.get("backbone"), old.get("methods")) != (arch["backbone"], arch["methods"]):
            raise ValueError(f"{folder} holds detectors of backbone {old.get('backbone')!r} and methods "
                             f"{old.get('methods')}; save this {cfg.backbone!r} one in another folder")
    write_json(folder / "config.json", arch)
    return save_weights(model, folder / f"{mode}.safetensors")


def committed_results(folder: str | Path | None = None) -> dict:
    """``results.json`` of the committed build."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", REBUILD)


def _unit(cfg: FaceConfig, data, out_dir: Path | None) -> dict:
    res = train(cfg, data, progress=False)
    if out_dir is not None:
        save_detector(res.model, cfg.mode, cfg, res.methods, out_dir)
        res.model = load_detector(cfg.mode, out_dir)  # evaluate what is committed: the float16 weights
    ev = evaluate(res.model, cfg.mode, data["test"])
    return {"seed": cfg.seed, "protocol": cfg.protocol, "mode": cfg.mode, **ev, "train_seconds": res.seconds,
            "val": res.best_metrics, "lambdas": res.lambdas[-1] if res.lambdas else None,
            "history": rounded_history(res.history) if out_dir is not None else None}


def build(seeds=(0, 1, 2), protocols=PROTOCOLS, modes=MODES, work: Path | None = None, out: Path = ASSET_DIR,
          preset_name: str = "lite", steps: int | None = None, progress: bool = True) -> dict:
    """Run the build (module docstring) and return the report written to ``out / "results.json"``."""
    out.mkdir(parents=True, exist_ok=True)
    base = preset(preset_name, steps=steps, device="cpu")
    units = UnitCache(work or default_work("facesem"), len(seeds) * len(protocols) * len(modes), "facesem build",
                      progress)
    rows = []
    for seed in seeds:
        for protocol in protocols:
            cfg = replace(base, seed=seed, protocol=protocol)
            data = None
            for mode in modes:
                key = f"s{seed}_{protocol}_{mode}"
                if data is None and not units.done(key):  # the data only for a unit still to run
                    data = make_data(cfg)
                keep = out if seed == seeds[0] and protocol == "in_distribution" else None
                rows.append(units.run(key, _unit, replace(cfg, mode=mode), data, keep,
                                      describe=lambda r: f"AUC {r['auc']:.3f}"))
    return units.report(out / "results.json", {"config": asdict(base), "seeds": list(seeds),
                                               "protocols": list(protocols), "modes": list(modes), "rows": rows})


def main(argv: list[str] | None = None) -> int:
    args = parse_build_args(build_parser(__doc__, ASSET_DIR, seeds=(0, 1, 2), steps=True), argv)
    report = build(args.seeds, work=args.work, out=args.out, steps=args.steps)
    from kit.facesem.explore import protocol_matrix

    pm = protocol_matrix(report["rows"])
    for i, m in enumerate(pm["modes"]):
        print(m, {p: f"{pm['values'][i, j]:.3f} ± {pm['std'][i, j]:.3f}" for j, p in enumerate(pm["protocols"])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
