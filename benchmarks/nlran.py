"""Cost of NL-RAN (kit.nlran): the tiny network vs MONAI's 3D ResNet-18, and the fused vs explicit non-local block.

Table 1: one forward + backward pass (cross-entropy on random labels, no optimiser step) of NL-RAN "tiny"
(``kit.nlran.models.nlran3d("tiny")``) and of MONAI's 3D ResNet-18 at its real widths 64..512
(``kit.nlran.baselines.resnet18_3d()``), on random volumes [B, 1, S, S, S] (default 32^3, batch 4), in train mode.

Table 2: the embedded-Gaussian non-local block alone (``NonLocalBlock3d(64)``) at 16^3 (N = 4096 positions),
forward + backward of sum(z): the ``scaled_dot_product_attention`` path that ``forward`` uses vs
``nonlocal_attention_reference`` (explicit softmax(theta phi^T) g, which materialises the N x N matrix), with and
without the 2x max-pooling of phi and g. The norm weight is set to 1 so the block is not the identity.

Table 3: rendering one lung phantom (``kit.nlran.phantom.render``) at S^3 and at (2S)^3, against the per-volume
cost of NL-RAN tiny's training pass of Table 1: the offline generator must not be the bottleneck of training.

Variants are timed round-robin (one call of each per round) so load from other processes spreads evenly; the
median over rounds is reported with the ratio.

    python benchmarks/nlran.py                # batch 4 at 32^3, non-local at 16^3 (batch 2), 5 rounds, 2 threads
    python benchmarks/nlran.py --quick        # batch 2 at 16^3, non-local at 8^3, 1 round, no warm-up
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from timing import round_robin

MODELS = ("nlran-tiny", "resnet18-monai")
NONLOCAL = ("sdpa", "explicit", "sdpa-subsample", "explicit-subsample")




def time_models(args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Return ({"nlran-tiny": [s, ...], "resnet18-monai": [s, ...]}, {model: trainable parameters}): forward +
    backward seconds per round."""
    import torch
    import torch.nn.functional as F

    from kit.nlran.baselines import resnet18_3d
    from kit.nlran.models import count_parameters, nlran3d

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    models = {"nlran-tiny": nlran3d("tiny"), "resnet18-monai": resnet18_3d()}
    x = torch.rand(args.batch, 1, args.size, args.size, args.size, generator=gen).to(device)
    y = torch.randint(0, 3, (args.batch,), generator=gen).to(device)

    def step(model) -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    fns = {}
    for name, model in models.items():
        model.to(device).train()
        fns[name] = lambda m=model: step(m)
    params = {name: count_parameters(model) for name, model in models.items()}
    return round_robin(fns, args.rounds, args.warmup, sync), params


def time_nonlocal(args: argparse.Namespace) -> tuple[dict[str, list[float]], float]:
    """Return ({variant: [s, ...]}, max |z_sdpa - z_explicit|) for the non-local block's forward + backward."""
    import torch

    from kit.nlran.blocks import NonLocalBlock3d, nonlocal_attention_reference

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    s = args.nl_size
    x = torch.randn(args.nl_batch, args.nl_channels, s, s, s, generator=gen).to(device)
    fns, diff = {}, 0.0
    for sub in (False, True):
        block = NonLocalBlock3d(args.nl_channels, sub_sample=sub).to(device).train()
        with torch.no_grad():
            block.norm.weight.fill_(1.0)
            diff = max(diff, float((block(x) - nonlocal_attention_reference(x, block)).abs().max()))

        def fused(b=block) -> None:
            b.zero_grad(set_to_none=True)
            b(x).sum().backward()

        def explicit(b=block) -> None:
            b.zero_grad(set_to_none=True)
            nonlocal_attention_reference(x, b).sum().backward()

        suffix = "-subsample" if sub else ""
        fns["sdpa" + suffix], fns["explicit" + suffix] = fused, explicit
    return round_robin(fns, args.rounds, args.warmup, sync), diff


def time_render(args: argparse.Namespace) -> dict[str, list[float]]:
    import numpy as np

    from kit.nlran.phantom import render, sample_spec

    specs = {f"{n}^3": sample_spec(0, np.random.default_rng(args.seed), n) for n in (args.size, 2 * args.size)}
    fns = {k: (lambda s=spec: render(s)) for k, spec in specs.items()}
    return round_robin(fns, args.rounds, args.warmup, lambda: None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="volumes per pass for the two networks")
    p.add_argument("--size", type=int, default=32, help="network input edge S (volumes S^3)")
    p.add_argument("--nl-size", type=int, default=16, help="non-local block grid edge (N = size^3 positions)")
    p.add_argument("--nl-channels", type=int, default=64)
    p.add_argument("--nl-batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (one call of each variant per round)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--quick", action="store_true", help="batch 2 at 16^3, non-local at 8^3, 1 round, no warm-up")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print the raw times as one JSON line")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.nl_size, args.rounds, args.warmup = 2, 16, 8, 1, 0
    for name in ("threads", "batch", "rounds", "nl_channels", "nl_batch"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.size < 16:
        raise ValueError(f"--size must be >= 16 (NL-RAN tiny's attention modules need it), got {args.size}")
    if args.nl_size < 2:
        raise ValueError(f"--nl-size must be >= 2, got {args.nl_size}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")

    import torch

    torch.set_num_threads(args.threads)
    model_times, params = time_models(args)
    nl_times, diff = time_nonlocal(args)

    med = {k: statistics.median(v) for k, v in model_times.items()}
    print(f"Forward + backward, input [{args.batch}, 1, {args.size}, {args.size}, {args.size}], {args.device}, "
          f"threads {args.threads}, median of {args.rounds} rounds")
    print(f"{'model':<16} {'params':>11} {'ms / pass':>10} {'min ms':>8} {'x resnet18':>11}")
    for k in MODELS:
        print(f"{k:<16} {params[k]:>11,} {1e3 * med[k]:>10.1f} {1e3 * min(model_times[k]):>8.1f} "
              f"{med[k] / med['resnet18-monai']:>11.3f}")
    print(f"NL-RAN tiny / ResNet-18 time ratio: {med['nlran-tiny'] / med['resnet18-monai']:.3f}")

    nmed = {k: statistics.median(v) for k, v in nl_times.items()}
    n = args.nl_size ** 3
    print(f"\nNon-local block forward + backward, C = {args.nl_channels}, grid {args.nl_size}^3 (N = {n}), "
          f"batch {args.nl_batch}, median of {args.rounds} rounds")
    print(f"{'variant':<20} {'N_kv':>6} {'ms / pass':>10} {'min ms':>8} {'x explicit':>11}")
    for k in NONLOCAL:
        ref = nmed["explicit-subsample" if k.endswith("subsample") else "explicit"]
        n_kv = n // 8 if k.endswith("subsample") else n
        print(f"{k:<20} {n_kv:>6} {1e3 * nmed[k]:>10.1f} {1e3 * min(nl_times[k]):>8.1f} {nmed[k] / ref:>11.3f}")
    print(f"SDPA / explicit time ratio: {nmed['sdpa'] / nmed['explicit']:.3f} (full), "
          f"{nmed['sdpa-subsample'] / nmed['explicit-subsample']:.3f} (sub-sampled); "
          f"max |z_sdpa - z_explicit|: {diff:.2e}")
    render_times = time_render(args)
    rmed = {k: statistics.median(v) for k, v in render_times.items()}
    per_volume = med["nlran-tiny"] / args.batch
    print(f"\nPhantom rendering (one volume), median of {args.rounds} rounds")
    print(f"{'edge':<8} {'ms / phantom':>13} {'x tiny pass / volume':>21}")
    for k, v in rmed.items():
        print(f"{k:<8} {1e3 * v:>13.1f} {v / per_volume:>21.3f}")
    if args.json:
        print(json.dumps({"args": vars(args), "params": params, "models": model_times, "nonlocal": nl_times,
                          "max_abs_diff": diff, "render": render_times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
