"""kit.kernels: each kernel against the obvious alternatives, on the device at hand.

1. The empirical optimal denoiser D(x; sigma) over N data points of dimension d for B queries: the chunked torch
   reference (kit's CPU path), ``scaled_dot_product_attention`` with the bias folded into one extra feature, and the
   fused Triton kernel (CUDA only). Each variant runs in its own subprocess so that its peak memory is its own
   (CUDA: ``max_memory_allocated`` above the inputs; CPU: ``VmHWM`` after a reset, as benchmarks/trajectory.py).
   The issue's size, CIFAR-10's exact denoiser (N = 50,000, d = 3,072, B = 256), is the default on CUDA; on CPU the
   default is N = 10,000, B = 64 (``--n``/``--batch`` change it).
2. Word heat maps at Stable Diffusion 1.5's shapes: the 16 cross-attention layers of SD 1.5's UNet (diffusers
   ``Attention`` modules with SD's widths, heads and 77 x 768 text states, random weights) for a guided batch of
   one prompt, over ``--steps`` denoising steps, capturing 4 words. Memory: the bytes the recording store holds
   with per-head maps (every layer; what explicit recording keeps), with head-averaged maps, and with the token
   capture store (``AttentionStore(tokens=...)``). Time per step of the 16 layers: diffusers' default processor,
   kit's recording processor with the per-head store, and with the capture store.

Times are medians of round-robin rounds (benchmarks/timing.py). Without CUDA the Triton rows say "GPU only".
(The file is not called ``kernels.py``: run from this folder, that name would shadow Hugging Face's ``kernels``
package, which diffusers looks for, and break the other benchmarks' diffusers imports.)

    python benchmarks/kit_kernels.py            # both parts on the default device
    python benchmarks/kit_kernels.py --quick    # small sizes, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from timing import round_robin
from trajectory import _reset_peak_rss, _rss_kb

DENOISE_VARIANTS = ("torch", "sdpa", "triton")
# SD 1.5 cross-attention layers at 512 x 512 (64 x 64 latents): (query pixels, channels, count)
SD15_CROSS_LAYERS = ((64 * 64, 320, 5), (32 * 32, 640, 5), (16 * 16, 1280, 5), (8 * 8, 1280, 1))
SD15_HEADS, SD15_TEXT = 8, (77, 768)


def _problem(n: int, d: int, b: int, sigma: float, device):
    import torch

    g = torch.Generator().manual_seed(0)
    data = torch.rand(n, d, generator=g) * 2 - 1
    x = data[:b] + sigma * torch.randn(b, d, generator=g)
    return data.to(device), x.to(device)


def denoise_worker(args: argparse.Namespace) -> None:
    """Time one denoiser variant; print a JSON line (times in s, peak extra MiB)."""
    import torch

    from kit.kernels import data_statistics, empirical_denoise

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data, x = _problem(args.n, args.d, args.batch, args.sigma, device)
    mean, half_sq = data_statistics(data)

    def call():
        return empirical_denoise(x, data, args.sigma, data_mean=mean, half_sq_norms=half_sq, backend=args.worker)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        call()  # compile (Triton) and the first-use work outside the measurement
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = call()
        sync()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        how = "cuda max_memory_allocated"
    else:
        reset = _reset_peak_rss()
        base = _rss_kb("VmRSS")
        out = call()
        peak = (_rss_kb("VmHWM") - base) / 1024 if reset else float("nan")
        how = "VmHWM after reset" if reset else "not measured (no /proc/self/clear_refs)"
    del out
    times = [statistics.median(round_robin({"v": call}, rounds=1, warmup=0, sync=sync)["v"])
             for _ in range(args.repeats)]
    torch.save(call().cpu(), args.out)
    print(json.dumps({"times": times, "peak_mib": peak, "how": how}))


def run_denoise(args: argparse.Namespace) -> dict:
    import torch

    cuda = args.device.startswith("cuda")
    variants = [v for v in DENOISE_VARIANTS if v != "triton" or cuda]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    results, outs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants:
            outs[v] = os.path.join(tmp, f"{v}.pt")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", v, "--out", outs[v]]
            for name in ("threads", "n", "d", "batch", "sigma", "repeats", "device"):
                cmd += [f"--{name}", str(getattr(args, name))]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"denoiser worker {v} failed:\n{proc.stderr}")
            results[v] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[v]["out"] = torch.load(outs[v]).double()
    data, x = (t.double() for t in _problem(args.n, args.d, args.batch, args.sigma, "cpu"))
    d2 = (x**2).sum(1, keepdim=True) - 2 * x @ data.T + (data**2).sum(1)
    ref = torch.softmax(-d2 / (2 * args.sigma**2), dim=1) @ data

    print(f"\n1. Empirical denoiser: N = {args.n:,}, d = {args.d:,}, B = {args.batch}, sigma = {args.sigma}, float32, "
          f"{_device_name(args.device)}, threads = {args.threads}, median of {args.repeats}")
    print(f"{'variant':<8} {'ms/call':>9} {'vs torch':>9} {'peak extra MiB':>15} {'max |D - D_f64|':>16}")
    med = {v: statistics.median(r["times"]) for v, r in results.items()}
    report = {}
    for v in DENOISE_VARIANTS:
        if v not in results:
            print(f"{v:<8} {'GPU only: not run (no CUDA device)':>52}")
            continue
        err = (results[v]["out"] - ref).abs().max().item()
        ratio = med["torch"] / med[v]
        print(f"{v:<8} {1e3 * med[v]:>9.1f} {ratio:>8.2f}x {results[v]['peak_mib']:>15.1f} {err:>16.2e}")
        report[v] = {"ms": 1e3 * med[v], "speedup_vs_torch": ratio, "peak_mib": results[v]["peak_mib"],
                     "max_abs_err": err}
    print(f"(output [B, d] alone is {args.batch * args.d * 4 / 2**20:.1f} MiB; memory: {results['torch']['how']})")
    return report


def _sd15_layers(device, dtype):
    import torch
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    layers = []
    for q_pixels, channels, count in SD15_CROSS_LAYERS:
        for _ in range(count):
            attn = Attention(query_dim=channels, cross_attention_dim=SD15_TEXT[1], heads=SD15_HEADS,
                             dim_head=channels // SD15_HEADS).to(device=device, dtype=dtype).eval()
            layers.append((q_pixels, channels, attn))
    return layers


def run_capture(args: argparse.Namespace) -> dict:
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    from kit.diffusion.attention import AttentionStore, RecordingAttnProcessor

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.set_num_threads(args.threads)
    layers = _sd15_layers(device, dtype)
    g = torch.Generator().manual_seed(1)
    text = torch.randn(2, *SD15_TEXT, generator=g).to(device=device, dtype=dtype)  # [uncond, cond]
    hidden = {q: torch.randn(2, q, c, generator=g).to(device=device, dtype=dtype) for q, c, _ in layers}
    tokens = [2, 3, 5, 6]
    max_q = max(q for q, _, _ in layers)
    stores = {
        "per-head store": AttentionStore(max_query_pixels=max_q, average_heads=False),
        "head-mean store": AttentionStore(max_query_pixels=max_q),
        "capture store": AttentionStore(max_query_pixels=max_q, tokens=tokens),
    }
    procs = {name: [RecordingAttnProcessor(s, f"layer{i}") for i in range(len(layers))] for name, s in stores.items()}
    default = AttnProcessor2_0()

    def step(name):
        def run():
            store = stores.get(name)
            if store is not None:
                store.next_step()
            with torch.no_grad():
                for i, (q, _, attn) in enumerate(layers):
                    proc = default if store is None else procs[name][i]
                    proc(attn, hidden[q], encoder_hidden_states=text)
        return run

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for s in stores.values():
        s.begin(batch_size=1, guided=True)
    # memory: run every store through the full number of steps, one at a time, and read what it holds
    held, peaks = {}, {}
    for name, s in stores.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        run = step(name)
        for _ in range(args.steps):
            run()
        sync()
        held[name] = s.nbytes
        peaks[name] = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else None
        s.begin(batch_size=1, guided=True)  # free it before the next store runs
    variants = {"diffusers default": step(None), "recording, per-head": step("per-head store"),
                "capture (kit.kernels)": step("capture store")}
    times = round_robin(variants, rounds=args.repeats, warmup=1, sync=sync)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n2. Word heat maps at SD 1.5 shapes: 16 cross-attention layers (64x64 ... 8x8 queries, 8 heads, 77 "
          f"tokens), guided batch of 1 prompt, {args.steps} steps, {len(tokens)} words, {str(dtype)[6:]}, "
          f"{_device_name(args.device)}, threads = {args.threads}")
    print(f"{'store':<16} {'held after all steps':>21} {'vs capture':>11}" +
          (f" {'peak alloc MiB':>15}" if device.type == "cuda" else ""))
    for name in stores:
        line = f"{name:<16} {held[name] / 2**20:>17.2f} MiB {held[name] / held['capture store']:>10.0f}x"
        if peaks[name] is not None:
            line += f" {peaks[name]:>15.1f}"
        print(line)
    print(f"{'processor':<22} {'ms per step (16 layers)':>24} {'vs default':>11}")
    for name, t in med.items():
        print(f"{name:<22} {1e3 * t:>24.1f} {t / med['diffusers default']:>10.2f}x")
    which = "the Triton kernel" if device.type == "cuda" else \
        "the torch reference (explicit float32 attention for the captured rows, in query chunks)"
    print(f"(the capture store ran {which})")
    return {"held_mib": {k: v / 2**20 for k, v in held.items()}, "ms_per_step": {k: 1e3 * v for k, v in med.items()}}


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU"


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    p.add_argument("--n", type=int, default=None, help="data points (CUDA 50,000; CPU 10,000; quick 2,000)")
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--batch", type=int, default=None, help="queries (CUDA 256; CPU 64; quick 16)")
    p.add_argument("--sigma", type=float, default=20.0, help="query noise level (20: the weights spread)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps of part 2 (default 50; quick 5)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--part", choices=("all", "denoise", "capture"), default="all")
    p.add_argument("--json", help="also write the measured numbers to this file")
    p.add_argument("--worker", choices=DENOISE_VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    on_cuda = args.device.startswith("cuda")
    if args.n is None:
        args.n = 2000 if args.quick else (50000 if on_cuda else 10000)
    if args.batch is None:
        args.batch = 16 if args.quick else (256 if on_cuda else 64)
    if args.steps is None:
        args.steps = 5 if args.quick else 50
    if args.quick:
        args.repeats = min(args.repeats, 3)
    for name in ("threads", "n", "d", "batch", "steps", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.worker:
        denoise_worker(args)
        return
    t0 = time.perf_counter()
    report = {"device": _device_name(args.device)}
    if args.part in ("all", "denoise"):
        report["denoise"] = run_denoise(args)
    if args.part in ("all", "capture"):
        report["capture"] = run_capture(args)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
