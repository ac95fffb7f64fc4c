"""Seconds per pair of D-TIIL's localiser, split by stage (align, diff, inpaint, words), against the same call with
one noise seed (n = 1) in the difference maps, on the committed ShapesWorld model (pixel space, 32 x 32).

The hot path is the alignment (2 x K1 backward passes per pair) and the difference maps (2 maps x n seeds x 5 guided
steps x 2 embeddings); n = 1 shows what the seeds cost. Both calls use the same pair, options (the "shapes" preset)
and seed, run round-robin so load from other processes spreads evenly; medians over rounds are reported.

    python benchmarks/dtiil.py            # 3 rounds, 2 threads
    python benchmarks/dtiil.py --quick    # 1 round, the "tiny" preset
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace


def main(argv: list[str] | None = None) -> dict:
    import torch

    from kit.dtiil import config
    from kit.dtiil.experiment import shapes_pairs
    from kit.dtiil.localize import localize
    from kit.dtiil.scorer import load_shapes_scorer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    cfg = config.preset("tiny" if args.quick else "shapes")
    opts = config.localize_options(cfg)
    pipe = config.load_pipeline(cfg, device="cpu")
    scorer = load_shapes_scorer()
    pair = next(p for p in shapes_pairs(4, seed=1) if p.subset == "text")
    calls = {f"n={opts.n_noise}": opts, "n=1": replace(opts, n_noise=1)}
    localize(pipe, pair.image, pair.caption, word_scorer=scorer, options=opts)   # warm-up
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, o in calls.items():
            res = localize(pipe, pair.image, pair.caption, word_scorer=scorer, options=o)
            times[name].append({"total": res.seconds, **res.stage_seconds})
    med = {name: {k: statistics.median(t[k] for t in v) for k in v[0]} for name, v in times.items()}
    full, one = med[f"n={opts.n_noise}"], med["n=1"]
    out = {"threads": args.threads, "rounds": rounds, "preset": "tiny" if args.quick else "shapes",
           "pair": [pair.caption, pair.subset], "seconds": med, "ratio_total": full["total"] / one["total"],
           "ratio_diff": full["diff"] / one["diff"]}
    for name, m in med.items():
        print(f"{name:6s} " + ", ".join(f"{k} {v:.2f} s" for k, v in m.items()))
    print(f"total with n={opts.n_noise} / with n=1: {out['ratio_total']:.2f}; diff stage: {out['ratio_diff']:.2f}")
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
