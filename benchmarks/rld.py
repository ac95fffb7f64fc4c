"""Cost of one distillation training step: CE only vs KD, DKD and RLD (resnet32x4 teacher -> resnet8x4 student).

A step is: student forward, teacher forward under ``no_grad`` (not for CE only, which has no teacher), the
objective of ``kit.rld.losses.distillation_objective`` (after warm-up), backward and an SGD step (lr 0.05,
momentum 0.9, wd 5e-4) on CIFAR-100-sized random inputs [B, 3, 32, 32]. The methods are timed round-robin
(one step of each per round) so that load from other processes spreads evenly; the median over rounds is
reported with the ratio to CE. A second table times the objective alone (forward + backward on fixed
logits [B, 100]), which isolates what the loss itself costs. The check: RLD step <= 1.10 x KD step.

    python benchmarks/rld.py                 # batch 64, 10 timed rounds, 2 threads
    python benchmarks/rld.py --quick         # batch 16, 3 timed rounds
    python benchmarks/rld.py --check         # exit 1 if RLD > 1.10 x KD
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

METHODS = ("ce", "kd", "dkd", "rld")
TOLERANCE = 1.10


def _timed(fn, sync) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict:
    """Return {"step": {method: [s, ...]}, "loss": {method: [s, ...]}} of the timed rounds."""
    import torch

    from kit.rld.losses import distillation_objective
    from kit.rld.models import resnet8x4, resnet32x4

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    teacher = resnet32x4(num_classes=100).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    students = {m: resnet8x4(num_classes=100).to(device).train() for m in METHODS}
    for m in METHODS[1:]:
        students[m].load_state_dict(students["ce"].state_dict())
    optims = {
        m: torch.optim.SGD(students[m].parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        for m in METHODS
    }
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (args.batch,), device=device)
    epoch = 30  # past the 20-epoch warm-up: full distillation weight

    def step(method: str) -> None:
        student, opt = students[method], optims[method]
        opt.zero_grad(set_to_none=True)
        logits_s = student(x)
        logits_t = None
        if method != "ce":
            with torch.no_grad():
                logits_t = teacher(x)
        out = distillation_objective(method, logits_s, logits_t, y, epoch)
        out["loss"].backward()
        opt.step()

    with torch.no_grad():
        fixed_t = teacher(x)
    fixed_s = torch.randn(args.batch, 100, device=device)

    def loss_only(method: str) -> None:
        s = fixed_s.clone().requires_grad_(True)
        out = distillation_objective(method, s, None if method == "ce" else fixed_t, y, epoch)
        out["loss"].backward()

    for _ in range(args.warmup):
        for m in METHODS:
            step(m)
            loss_only(m)
    sync()
    times = {"step": {m: [] for m in METHODS}, "loss": {m: [] for m in METHODS}}
    for _ in range(args.steps):
        for m in METHODS:
            times["step"][m].append(_timed(lambda m=m: step(m), sync))
        for m in METHODS:  # the objective alone is ~1000x cheaper: repeat it to get above timer noise
            times["loss"][m].append(_timed(lambda m=m: [loss_only(m) for _ in range(20)], sync) / 20)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed rounds (one step of each method per round)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--quick", action="store_true", help="batch 16, 3 timed rounds, 1 warm-up round")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help=f"exit 1 if the RLD step > {TOLERANCE} x the KD step")
    p.add_argument("--json", action="store_true", help="also print the raw times as one JSON line")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.warmup = 16, 3, 1
    for name in ("threads", "batch", "steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")

    times = run(args)
    med = {kind: {m: statistics.median(v) for m, v in d.items()} for kind, d in times.items()}
    print(
        f"One training step, resnet32x4 -> resnet8x4, CIFAR-100 shapes, batch {args.batch}, {args.device}, "
        f"threads {args.threads}, median of {args.steps} rounds"
    )
    print(f"{'method':<7} {'step ms':>9} {'x CE':>6} {'min ms':>8} {'loss fwd+bwd ms':>16} {'x CE':>6}")
    for m in METHODS:
        st, ls = med["step"][m], med["loss"][m]
        print(
            f"{m:<7} {1e3 * st:>9.1f} {st / med['step']['ce']:>6.2f} {1e3 * min(times['step'][m]):>8.1f} "
            f"{1e3 * ls:>16.3f} {ls / med['loss']['ce']:>6.2f}"
        )
    ratio = med["step"]["rld"] / med["step"]["kd"]
    ok = ratio <= TOLERANCE
    print(
        f"RLD / KD step: {ratio:.3f} (<= {TOLERANCE}: {'PASS' if ok else 'FAIL'}); "
        f"RLD / DKD step: {med['step']['rld'] / med['step']['dkd']:.3f}; "
        f"loss alone RLD / KD: {med['loss']['rld'] / med['loss']['kd']:.2f}"
    )
    if args.json:
        print(json.dumps({"args": vars(args), "times": times}))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
