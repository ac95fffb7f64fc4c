"""Build the committed encoders and the README's table: ``python -m kit.sslhv.assets`` (``results.json`` records
the time it took).

For each seed (default 0, 1, 2) on the "lite" preset (800 synthetic writers at noise 1.8; the same test writers for
every seed, the labelled 10 % and the samples drawn per seed): the handcrafted baselines, the supervised Siamese
model (the same small encoder and pair head, trained from scratch) at 10 % and 100 % of the writers, every
self-supervised method pre-trained on the training writers without labels and then read by the pair head on frozen
embeddings at 10 %, and the best method fine-tuned at 10 %. Seed 0 adds the label-efficiency curves (frozen,
fine-tuned, supervised at 1 - 100 % of the writers). Each unit of work is cached as JSON under ``--work`` so an
interrupted build resumes. Writes ``kit/assets/sslhv/``: ``<method>.safetensors`` (seed 0, float16), the
supervised 100 % model ``supervised.safetensors``, ``config.json`` and ``results.json``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from kit.core import load_weights, read_json, save_weights, write_json
from kit.core.build import UnitCache, build_parser, default_work, parse_build_args, rounded_history
from kit.sslhv.config import SSLConfig, preset
from kit.sslhv.methods import METHODS, SSLMethod

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "sslhv"
REBUILD = "python -m kit.sslhv.assets"
ARCH_KEYS = ("encoder", "width", "proj_scale", "latent_dim", "vae_embedding", "size")
HEAD_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)  # frozen-embedding heads: cheap
TRAIN_FRACTIONS = (0.02, 0.1, 0.25, 1.0)  # supervised and fine-tuned: a training run each


def load_method(name: str, folder: str | Path | None = None) -> SSLMethod:
    """The committed pre-trained ``name`` (one of ``METHODS``), float32 on the CPU, in eval mode.

    Raises FileNotFoundError naming the file and the command that rebuilds it when it is missing."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {name!r}")
    folder = Path(folder or ASSET_DIR)
    arch = read_json(folder / "config.json", REBUILD)
    m = SSLMethod(name, arch["encoder"], arch["width"], arch["proj_scale"], arch["latent_dim"],
                  vae_embedding=arch["vae_embedding"], size=arch["size"])
    return load_weights(m, folder / f"{name}.safetensors", REBUILD)


def available_methods(folder: str | Path | None = None) -> list[str]:
    """The methods (in ``METHODS`` order) whose weights are in ``folder`` (default: the committed encoders)."""
    folder = Path(folder or ASSET_DIR)
    return [m for m in METHODS if (folder / f"{m}.safetensors").is_file()]


def load_supervised(folder: str | Path | None = None):
    """The committed supervised Siamese model (the small encoder and pair head trained on 100 % of the writers,
    seed 0): a :class:`kit.sslhv.experiment.PairModel`, float32 on the CPU, in eval mode."""
    from kit.sslhv.encoders import build_encoder
    from kit.sslhv.evaluation import PairHead
    from kit.sslhv.experiment import PairModel

    folder = Path(folder or ASSET_DIR)
    arch = read_json(folder / "config.json", REBUILD)
    enc = build_encoder(arch["encoder"], **({"width": arch["width"]} if arch["encoder"] == "resnet18" else {}))
    return load_weights(PairModel(enc, PairHead(enc.out_features)), folder / "supervised.safetensors", REBUILD)


def committed_results(folder: str | Path | None = None) -> dict:
    """``results.json`` of the committed build (what :func:`main` measured)."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", REBUILD)


def committed_config(folder: str | Path | None = None) -> SSLConfig:
    """The :class:`SSLConfig` the committed encoders were trained with (seed 0)."""
    cfg = committed_results(folder)["config"]
    cfg["split"] = tuple(cfg["split"])
    return SSLConfig(**cfg)


def _method_unit(cfg: SSLConfig, data, out_dir: Path | None, head_fractions: tuple[float, ...] = (),
                 finetune_fractions: tuple[float, ...] = ()) -> dict:
    """Pre-train ``cfg.method``, then: embedding quality on the test writers, the frozen pair head at the label
    fraction (and at ``head_fractions``), fine-tuning at ``finetune_fractions``."""
    from kit.sslhv.evaluation import embedding_map, intra_inter_cosine
    from kit.sslhv.experiment import finetune, frozen_embeddings, frozen_head, pretrain

    res = pretrain(cfg, data=data, progress=False)
    m = res.method
    if out_dir is not None:  # evaluate what is committed: the float16 weights
        save_weights(m, out_dir / f"{cfg.method}.safetensors")
        m = load_method(cfg.method, out_dir)
    emb = frozen_embeddings(m, data)
    test = data.indices("test")
    cos = intra_inter_cosine(emb[test], data.writer_of[test])
    few = test[np.isin(data.writer_of[test], data.writers["test"][:20])]
    cos2 = intra_inter_cosine(embedding_map(emb[few].numpy(), "tsne", seed=cfg.seed), data.writer_of[few])
    _, head = frozen_head(cfg, emb, data)
    out = {"test": head["test"], "val_f1": head["val_f1"], "intra": cos["intra"], "inter": cos["inter"],
           "intra_2d": cos2["intra"], "inter_2d": cos2["inter"], "pretrain_seconds": res.seconds,
           "history": rounded_history(res.history)}
    if head_fractions:
        out["label_efficiency"] = {f"{f:g}": frozen_head(cfg, emb, data, f)[1]["test"]["accuracy"]
                                   for f in head_fractions}
    out["finetuned"] = {}
    for frac in finetune_fractions:
        h, fr = frozen_head(cfg, emb, data, frac)
        _, o = finetune(cfg, m, h, fr["val_f1"], data, frac, progress=False)
        out["finetuned"][f"{frac:g}"] = {"test": o["test"], "val_f1": o["val_f1"], "kept_frozen": o["kept_frozen"],
                                         "frozen_test": fr["test"], "seconds": o["seconds"]}
    return out


def _supervised_unit(cfg: SSLConfig, data, fraction: float, out_dir: Path | None = None) -> dict:
    from kit.sslhv.experiment import supervised

    model, out = supervised(cfg, data, fraction, progress=False)
    if out_dir is not None:
        save_weights(model, out_dir / "supervised.safetensors")
    return {"test": out["test"], "val_f1": out["val_f1"], "train_seconds": out["seconds"]}


def _baseline_unit(cfg: SSLConfig, data) -> dict:
    from kit.sslhv.evaluation import intra_inter_cosine
    from kit.sslhv.experiment import labelled_pairs
    from kit.verification.baselines import fit_baseline, hog_features, raw_features
    from kit.verification.metrics import pair_metrics

    rows = {}
    feats = {"raw_cosine": raw_features(data.images), "hog": hog_features(data.images)}
    test = data.pairs["test"]
    ti = data.indices("test")
    for frac in (cfg.label_fraction, 1.0):
        _, pairs = labelled_pairs(cfg, data, frac)
        for name in ("raw_cosine", "hog_cosine", "hog_logreg"):
            if name != "hog_logreg" and frac == 1.0:
                continue
            f = feats["raw_cosine" if name == "raw_cosine" else "hog"]
            base = fit_baseline(name, data.images, pairs, f, seed=cfg.seed)
            s = base.scores(data.images, test, f)
            key = name if name != "hog_logreg" else f"hog_logreg_{frac:g}"
            rows[key] = {**pair_metrics(s, test[:, 2], threshold=base.threshold), "n_pairs": len(test)}
        for name, f in feats.items():
            cos = intra_inter_cosine(f[ti], data.writer_of[ti])
            rows.setdefault(name if name != "hog" else "hog_cosine", {}).update(intra=cos["intra"], inter=cos["inter"])
    return {"rows": rows}


def build(seeds=(0, 1, 2), methods=METHODS, work: Path | None = None, out: Path = ASSET_DIR, steps: int | None = None,
          finetune_method: str = "vicreg", preset_name: str = "lite", progress: bool = True) -> dict:
    """Run the build (see the module's docstring) and return the report written to ``out / "results.json"``."""
    from kit.sslhv.experiment import load_data

    out.mkdir(parents=True, exist_ok=True)
    base = preset(preset_name, steps=steps, device="cpu")
    write_json(out / "config.json", {k: getattr(base, k) for k in ARCH_KEYS})
    fractions = [TRAIN_FRACTIONS if seed == seeds[0] else (base.label_fraction, 1.0) for seed in seeds]
    units = UnitCache(work or default_work("sslhv"), sum(1 + len(f) + len(methods) for f in fractions),
                      "sslhv build", progress)

    def accuracy(u: dict) -> str:
        return f"{u.get('test', {}).get('accuracy', '')}"

    per_seed: dict[str, dict] = {}
    for seed, seed_fractions in zip(seeds, fractions):
        cfg = replace(base, seed=seed)
        data = load_data(cfg, progress=False)
        first = seed == seeds[0]
        units_of_seed: dict[str, Any] = {"baselines": units.run(f"s{seed}_baselines", _baseline_unit, cfg, data,
                                                                 describe=accuracy)}
        for frac in seed_fractions:
            units_of_seed[f"supervised_{frac:g}"] = units.run(f"s{seed}_supervised_{frac:g}", _supervised_unit, cfg,
                                                              data, frac, out if first and frac == 1.0 else None,
                                                              describe=accuracy)
        for name in methods:
            ft = (TRAIN_FRACTIONS if first else (cfg.label_fraction,)) if name == finetune_method else ()
            units_of_seed[name] = units.run(f"s{seed}_{name}", _method_unit, replace(cfg, method=name), data,
                                            out if first else None, HEAD_FRACTIONS if first else (), ft,
                                            describe=accuracy)
        per_seed[str(seed)] = units_of_seed
    return units.report(out / "results.json", {
        "config": asdict(base), "seeds": list(seeds), "methods": list(methods), "per_seed": per_seed,
        "finetune_method": finetune_method, "head_fractions": HEAD_FRACTIONS, "train_fractions": TRAIN_FRACTIONS})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__, ASSET_DIR, seeds=(0, 1, 2), steps=True)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parse_build_args(parser, argv)
    report = build(args.seeds, tuple(args.methods), args.work, args.out, args.steps)
    from kit.sslhv.report import summary_rows

    for row in summary_rows(report):
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
