"""Training-step cost of the facesem detectors (kit.facesem): the semantics-oriented step (HEX marginals over the
1,544 legal label sets, plus Auto-lambda's virtual step, second batch and finite-difference hypergradient) against a
plain binary step, on the same backbone and batch.

Rows: seconds per step, and the ratio to the binary step; plus the HEX marginals alone (a [B, 12] @ [12, 1544]
softmax and its product back) against a sigmoid on the same scores. The authors report an SO step at about 3-4 plain
steps. Variants run round-robin; the median over rounds is reported.

    python benchmarks/facesem.py            # batch 64 at 48 px, 5 rounds, 2 threads
    python benchmarks/facesem.py --quick    # batch 16, 1 round, no warm-up
"""

from __future__ import annotations

import argparse
import statistics

from timing import round_robin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="batch 16, 1 round, no warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.warmup = 16, 1, 0

    import torch
    import torch.nn.functional as F

    from kit.core import set_threads
    from kit.facesem.autolambda import AutoLambda
    from kit.facesem.graph import graph_loss, hex_marginals
    from kit.facesem.models import build_detector

    set_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size)
    x2 = torch.rand(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 3, (args.batch, 12))
    y[:, 0] = torch.randint(0, 2, (args.batch,))

    def plain(mode):
        m = build_detector(mode)
        opt = torch.optim.Adam(m.parameters(), 1e-3)

        def step():
            f = m(x)
            if mode == "binary":
                loss = F.binary_cross_entropy_with_logits(f[:, 0], y[:, 0].float())
            else:
                out = graph_loss(hex_marginals(f) if mode == "so" else torch.sigmoid(f), y)
                loss = out["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    so = build_detector("so")
    opt = torch.optim.Adam(so.parameters(), 1e-3)
    auto = AutoLambda(so, 3)

    def levels(m, batch):
        out = graph_loss(hex_marginals(m(batch[0])), batch[1])
        return torch.stack([out["L1"], out["L2"], out["L3"]])

    def so_step():
        auto.step(levels, (x, y), (x2, y), alpha=1e-3)
        loss = (auto.lambdas.detach() * levels(so, (x, y))).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    f = torch.randn(args.batch, 12)
    fns = {"binary step": plain("binary"), "sigmoid-nodes step": plain("sigmoid"), "HEX step (no Auto-λ)": plain("so"),
           "SO step (HEX + Auto-λ)": so_step, "HEX marginals alone": lambda: hex_marginals(f),
           "sigmoid alone": lambda: torch.sigmoid(f)}
    times = round_robin(fns, args.rounds, args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.threads} threads, batch {args.batch} at {args.size} px, {args.rounds} rounds (median)")
    print(f"{'variant':<26}{'ms':>10}{'x binary step':>15}")
    for k, t in med.items():
        print(f"{k:<26}{1000 * t:>10.2f}{t / med['binary step']:>15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
