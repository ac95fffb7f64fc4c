"""Empirical-denoiser throughput: the chunked streaming log-sum-exp vs a naive ``torch.cdist`` + softmax.

Each variant runs in a fresh subprocess so that its peak memory is measured on its own: the process resets
its peak-RSS counter (``/proc/self/clear_refs``) after building the data, makes one (cold) call and reports
``VmHWM - VmRSS`` (extra resident memory at the peak); the timed calls follow (the cold call is their
warm-up). Where the reset is not allowed it
falls back to ``ru_maxrss`` minus the RSS before the timed calls and says so. On CUDA it reports
``torch.cuda.max_memory_allocated`` above the allocation before the calls.

    python benchmarks/trajectory.py              # N = 10,000, d = 3,072, B = 64, 2 threads
    python benchmarks/trajectory.py --quick      # N = 2,000 smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = ("chunked", "naive")


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _problem(args: argparse.Namespace):
    """Return seeded float32 data [N, d] (image-like values in [-1, 1]) and queries x [B, d] at sigma."""
    import torch

    gen = torch.Generator().manual_seed(0)
    data = torch.rand(args.n, args.d, generator=gen) * 2 - 1
    x = data[: args.batch] + args.sigma * torch.randn(args.batch, args.d, generator=gen)
    return data, x


def run_worker(args: argparse.Namespace) -> None:
    """Time one variant and print a JSON line with times (s) and peak extra memory (MiB)."""
    import torch

    from kit.diffusion.denoisers import EmpiricalDenoiser

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data, x = _problem(args)
    data, x = data.to(device), x.to(device)
    sigma = args.sigma

    if args.worker == "chunked":
        den = EmpiricalDenoiser(data, chunk_size=args.chunk_size)

        def call():
            return den(x, sigma)
    else:

        def call():
            d2 = torch.cdist(x, data).pow(2)  # [B, N]
            return torch.softmax(-d2 / (2 * sigma**2), dim=1) @ data

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # Peak memory of the first (cold) call: after a warm-up, freed blocks stay in the allocator's arenas
    # and a second call would reuse them without raising the resident peak.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        how = "cuda max_memory_allocated"
    else:
        reset = _reset_peak_rss()
        base = _rss_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        how = "VmHWM after reset" if reset else "ru_maxrss (fallback: includes setup peak)"
    out = call()
    sync()
    if device.type == "cuda":
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    elif how.startswith("VmHWM"):
        peak_mib = (_rss_kb("VmHWM") - base) / 1024
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    del out
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = call()
        sync()
        times.append(time.perf_counter() - t0)
    torch.save(out.cpu(), args.out)
    print(json.dumps({"variant": args.worker, "times": times, "peak_mib": peak_mib, "how": how}))


def _estimate_mib(variant: str, n: int, d: int, b: int, chunk: int) -> float:
    """Extra float32 memory from tensor sizes: the big temporaries each variant allocates."""
    f32 = 4 / 2**20
    if variant == "chunked":  # logits, exp weights, their product temp [B, chunk]; run_sum, w @ y [B, d]
        return (3 * b * min(chunk, n) + 3 * b * d) * f32
    # cdist's matmul path copies Y with two extra columns [N, d + 2]; d2, softmax, temp [B, N]; out [B, d]
    return (n * (d + 2) + 3 * b * n + b * d) * f32


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="N = 2,000 smoke test")
    p.add_argument("--n", type=int, default=None, help="training points (default 10,000; 2,000 with --quick)")
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--sigma", type=float, default=20.0, help="noise level of the queries (20: weights spread)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.n is None:
        args.n = 2000 if args.quick else 10000
    if args.quick:
        args.repeats = min(args.repeats, 3)
    for name in ("threads", "n", "d", "batch", "chunk_size", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.worker:
        run_worker(args)
        return

    import torch

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    results, outs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            outs[variant] = os.path.join(tmp, f"{variant}.pt")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--out", outs[variant]]
            for name in ("threads", "n", "d", "batch", "chunk_size", "sigma", "repeats", "device"):
                cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"worker {variant} failed:\n{proc.stderr}")
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        got = {v: torch.load(outs[v]).double() for v in VARIANTS}
    # float64 reference from the expanded squared distance, to say which float32 variant is more accurate
    data, x = (t.double() for t in _problem(args))
    d2 = (x**2).sum(1, keepdim=True) - 2 * x @ data.T + (data**2).sum(1)
    w = torch.softmax(-d2 / (2 * args.sigma**2), dim=1)
    ref = w @ data
    err = {v: (got[v] - ref).abs().max().item() for v in VARIANTS}

    print(f"Empirical denoiser, N = {args.n}, d = {args.d}, B = {args.batch}, sigma = {args.sigma}, float32, "
          f"{args.device}, threads = {args.threads}, chunk = {args.chunk_size}, median of {args.repeats}")
    print(f"{'variant':<9} {'ms/call (median)':>16} {'min':>7} {'peak extra MiB':>15} {'estimate MiB':>13}")
    med = {}
    for variant in VARIANTS:
        r = results[variant]
        med[variant] = statistics.median(r["times"])
        est = _estimate_mib(variant, args.n, args.d, args.batch, args.chunk_size)
        best = 1e3 * min(r["times"])
        print(f"{variant:<9} {1e3 * med[variant]:>16.1f} {best:>7.1f} {r['peak_mib']:>15.1f} {est:>13.1f}")
    print(f"time ratio naive/chunked: {med['naive'] / med['chunked']:.2f}")
    print(f"max |D - D_float64|: chunked {err['chunked']:.2e}, naive {err['naive']:.2e} "
          f"(largest softmax weight: median {w.max(1).values.median().item():.3f})")
    print(f"memory measured with: {results['chunked']['how']}; estimate = sizes of the big temporaries")


if __name__ == "__main__":
    main()
