"""Pre-training throughput of the sslhv methods (kit.sslhv) against the supervised Siamese step they replace.

One optimiser step of each self-supervised method on a batch of unlabelled 64-px handwriting images (views made
inside the step, as in training: two per image for the joint-embedding methods, none for the VAE; momentum targets
updated; MoCo's queue filled) against one step of the supervised Siamese model (the same encoder and the pair head)
on pairs of labelled images. Rows: images per second of the step and the ratio to the supervised step's images per
second (each pair is two images), for the CPU encoder ("small", 61k parameters) and, with ``--resnet``, the
paper's ResNet-18 with a 3x3 stride-1 stem at a given width.

Variants run round-robin (one step of each per round) so load from other processes spreads evenly; the median over
rounds is reported.

    python benchmarks/sslhv.py             # batch 256, 5 rounds, 2 threads, small encoder
    python benchmarks/sslhv.py --resnet 16 # also the ResNet-18 at width 16 (slow on a CPU)
    python benchmarks/sslhv.py --quick     # batch 32, 1 round, no warm-up
"""

from __future__ import annotations

import argparse
import statistics

from timing import round_robin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256, help="unlabelled images per SSL step; the supervised step takes "
                   "batch / 2 pairs (as many images)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resnet", type=int, default=0, help="also time the ResNet-18 encoder at this width (0: skip)")
    p.add_argument("--quick", action="store_true", help="batch 32, 1 round, no warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.warmup = 32, 1, 0

    import torch
    import torch.nn.functional as F

    from kit.core import set_threads
    from kit.sslhv.encoders import build_encoder
    from kit.sslhv.evaluation import PairHead
    from kit.sslhv.experiment import PairModel
    from kit.sslhv.methods import METHODS, SSLMethod

    set_threads(args.threads)
    torch.manual_seed(0)
    x = (torch.rand(args.batch, 1, 64, 64) > 0.9).float()  # sparse "ink"; content does not change the cost
    h = args.batch // 2  # pairs per supervised step
    y = torch.randint(0, 2, (h,))
    a, b = x[:h], x[h:2 * h]
    encoders = [("small", {})] + ([("resnet18", {"width": args.resnet})] if args.resnet else [])
    print(f"{args.threads} threads, batch {args.batch} images, {args.rounds} rounds (median)")
    for enc, kw in encoders:
        def step_fn(model, loss_of):
            opt = torch.optim.Adam(model.parameters(), 1e-4)

            def step():
                loss = loss_of(model)
                opt.zero_grad()
                loss.backward()
                opt.step()
            return step

        fns = {}
        for name in METHODS:
            m = SSLMethod(name, enc, kw.get("width", 64), proj_scale=0.25 if enc == "small" else 1.0,
                          latent_dim=32 if enc == "small" else 256).train()
            fns[name] = step_fn(m, lambda mm: mm.training_loss(x, 0, 10)["loss"])
        e = build_encoder(enc, **kw)
        sup = PairModel(e, PairHead(e.out_features)).train()
        fns["supervised"] = step_fn(sup, lambda mm: F.cross_entropy(mm(a, b), y))
        times = round_robin(fns, args.rounds, args.warmup)
        med = {k: statistics.median(v) for k, v in times.items()}
        sup_rate = 2 * h / med["supervised"]
        print(f"\nencoder {enc} {kw or ''}")
        print(f"{'step':<14}{'s / step':>10}{'images/s':>10}{'x supervised':>14}")
        for k, t in med.items():
            rate = (2 * h if k == "supervised" else args.batch) / t
            print(f"{k:<14}{t:>10.3f}{rate:>10.0f}{rate / sup_rate:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
