"""Seconds per edit: ParallelEdits (all aspects in one multi-branch pass) vs sequential editing (one full edit per
aspect) vs a single branch, on the committed ShapesWorld model (pixel space, 32 x 32), at 2 and 3 aspects.

Like for like: the same edits (ShapesWorld colour edits on 2-object scenes), the same sampler (inversion-free DDCM),
step counts (15, grouping pass 5), guidance and seed. Every editor runs its own grouping pass (the sequential one
once per aspect). Editors are timed round-robin (one edit of each per round) so load from other processes spreads
evenly; the median over rounds is reported, with the ratio parallel / sequential.

    python benchmarks/multiedits.py            # 3 rounds, 2 threads
    python benchmarks/multiedits.py --quick    # 1 round, 6 steps (grouping pass 2)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> dict:
    import torch

    from kit.diffusion.t2i import load_shapes_pipeline
    from kit.multiedits import EditOptions, edit, sequential_edit, single_branch_edit
    from kit.multiedits.experiment import shapes_cases

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    opts = EditOptions(num_inference_steps=6 if args.quick else 15, group_steps=2 if args.quick else 5,
                       switch_step=3 if args.quick else 7, map_resolution=64, map_normalization="minmax")
    pipe = load_shapes_pipeline(solver=None)
    editors = {"parallel": edit, "sequential": sequential_edit, "single": single_branch_edit}
    out = {"threads": args.threads, "rounds": rounds, "steps": opts.num_inference_steps, "aspects": {}}
    for n in (2, 3):
        case = shapes_cases(1, n, seed=n)[0]
        times = {name: [] for name in editors}
        for fn in editors.values():  # warm-up
            fn(pipe, case.image, case.source, case.target, options=opts)
        for _ in range(rounds):
            for name, fn in editors.items():
                t0 = time.perf_counter()
                fn(pipe, case.image, case.source, case.target, options=opts)
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(v) for name, v in times.items()}
        out["aspects"][n] = {"seconds": med, "parallel_over_sequential": med["parallel"] / med["sequential"],
                             "edit": [case.source, case.target]}
        print(f"{n} aspects: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items())
              + f"; parallel / sequential = {med['parallel'] / med['sequential']:.2f}")
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
