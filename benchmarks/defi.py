"""Cost of DeFI-Net (kit.defi): the paper's network at 352 px against a plain U-Net of the same parameter count, the
lite model's throughput, and the offline generator's cost per sample.

Table 1: inference (eval mode, no grad) of DeFI-Net "full" (HRNet-W18-small-v2 with a stride-1 stem + DFPL + REAM +
SAFF, 2.82 M parameters) and of a plain 4-level U-Net (double 3x3 conv blocks, bilinear up-sampling, skip
concatenation) whose base width is chosen so its parameter count is the closest to DeFI-Net's, on random
[B, 3, S, S] images (default S = 352, the paper's input, B = 1). DeFI-Net keeps all four HRNet branches alive at
full, 1/2, 1/4 and 1/8 resolution through every stage, so it costs far more per parameter than a U-Net, which
spends its parameters at low resolution.

Table 2: the committed-size "lite" model (SRM inputs): images per second for inference at 64, 128 and 256 px
(batch 16) and for training (forward + backward + Adam step, batch 16 at 64 px).

Table 3: the generator (``kit.data.inpainting.make_sample``) per 64-px sample for each fill, against the lite
model's training cost per sample: the data must not be the bottleneck of training.

Variants are timed round-robin (one call of each per round) so load from other processes spreads evenly; the
median over rounds is reported with the ratio.

    python benchmarks/defi.py             # 352 px, 3 rounds, 2 threads
    python benchmarks/defi.py --quick     # 96 px, 1 round, no warm-up
"""

from __future__ import annotations

import argparse
import json
import statistics

from timing import round_robin, timed


def plain_unet(base: int):
    """Return a 4-level U-Net [B, 3, H, W] -> [B, 1, H, W] with widths base x (1, 2, 4, 8) and a 16 x base bottom."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            w = [base, 2 * base, 4 * base, 8 * base]
            self.down = nn.ModuleList([block(3, w[0]), block(w[0], w[1]), block(w[1], w[2]), block(w[2], w[3])])
            self.bottom = block(w[3], 2 * w[3])
            self.up = nn.ModuleList([block(2 * w[3] + w[3], w[3]), block(w[3] + w[2], w[2]),
                                     block(w[2] + w[1], w[1]), block(w[1] + w[0], w[0])])
            self.head = nn.Conv2d(w[0], 1, 1)

        def forward(self, x):
            skips = []
            for d in self.down:
                x = d(x)
                skips.append(x)
                x = F.max_pool2d(x, 2)
            x = self.bottom(x)
            for u, s in zip(self.up, reversed(skips)):
                x = u(torch.cat([F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
            return self.head(x)

    return UNet()


def matched_unet(target: int):
    """Return (the plain U-Net whose parameter count is closest to ``target``, its base width)."""
    from kit.defi.model import count_parameters

    best = min(range(4, 65), key=lambda b: abs(count_parameters(plain_unet(b)) - target))
    return plain_unet(best), best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="96 px, 1 round, no warm-up")
    p.add_argument("--json", action="store_true", help="also print the raw times as one JSON line")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.rounds, args.warmup = 96, 1, 0

    import torch

    from kit.data.inpainting import FILLS, make_sample
    from kit.defi.losses import defi_loss
    from kit.defi.model import DeFINet, count_parameters

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    full = DeFINet("full").eval()
    unet, base = matched_unet(count_parameters(full))
    unet.eval()
    x = torch.rand(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        t1 = round_robin({"defi-full": lambda: full(x), "unet": lambda: unet(x)}, args.rounds, args.warmup)
    med1 = {k: statistics.median(v) for k, v in t1.items()}
    print(f"Inference, input [{args.batch}, 3, {args.size}, {args.size}], CPU, {args.threads} threads, "
          f"median of {args.rounds}")
    print(f"{'model':<12} {'params':>11} {'s / batch':>10} {'x U-Net':>8}")
    for k, m in (("defi-full", full), ("unet", unet)):
        print(f"{k:<12} {count_parameters(m):>11,} {med1[k]:>10.3f} {med1[k] / med1['unet']:>8.2f}")
    print(f"(U-Net base width {base}) DeFI-Net / U-Net time ratio: {med1['defi-full'] / med1['unet']:.2f}")

    lite = DeFINet("lite", input_filter="srm")
    opt = torch.optim.Adam(lite.parameters(), 1e-3)
    xb, mb = torch.rand(16, 3, 64, 64), (torch.rand(16, 1, 64, 64) > 0.8).float()

    def train_step():
        loss = defi_loss(*lite(xb), mb)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    lite.eval()
    sizes = (64, 128) if args.quick else (64, 128, 256)
    fns = {f"infer-{s}": (lambda s=s: lite(torch.rand(16, 3, s, s))) for s in sizes}
    with torch.no_grad():
        t2 = round_robin(fns, args.rounds, args.warmup)
    lite.train()
    t2.update(round_robin({"train-64": train_step}, args.rounds, args.warmup))
    print(f"\nDeFI-lite ({count_parameters(lite):,} parameters, SRM inputs), batch 16")
    print(f"{'pass':<12} {'images / s':>11}")
    for k, v in t2.items():
        print(f"{k:<12} {16 / statistics.median(v):>11.1f}")

    t3 = {f: [] for f in FILLS}
    for f in FILLS:  # the photo's first load and OpenCV's first call are not the fill's cost
        make_sample("coffee", f, 64, seed=-1 % 2**31)
    for r in range(args.rounds):
        for f in FILLS:
            t3[f].append(timed(lambda f=f, r=r: make_sample("coffee", f, 64, seed=r)))
    per_train = statistics.median(t2["train-64"]) / 16
    print("\nGenerator, one 64-px sample (crop + mask + fill), against a lite training step per sample "
          f"({1e3 * per_train:.1f} ms)")
    print(f"{'fill':<12} {'ms / sample':>12} {'x train':>8}")
    for f, v in t3.items():
        med = statistics.median(v)
        print(f"{f:<12} {1e3 * med:>12.1f} {med / per_train:>8.2f}")
    if args.json:
        print(json.dumps({"args": vars(args), "inference": t1, "lite": t2, "generator": t3,
                          "unet_base": base, "params": {"defi-full": count_parameters(full),
                                                        "unet": count_parameters(unet)}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
