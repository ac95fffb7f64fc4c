"""Compile kit.kernels' Triton kernels for NVIDIA GPUs on a machine without one, and check their shared memory.

Triton's interpreter (what the CPU tests run) executes the kernels' arithmetic but never compiles them; this
compiles each kernel ahead of time for the given compute capabilities (``triton.compile`` with a ``GPUTarget``, the
ptxas bundled with Triton: no GPU or driver needed), in every dtype and launch configuration the launchers use,
and compares the shared memory each needs with what the card offers (per block, opt-in: 163 KiB on sm_80,
227 KiB on sm_90).

    python -m kit.kernels.compile_check                 # sm_80 and sm_90, all configurations
    python -m kit.kernels.compile_check --arch 90 --quick

Must run without ``TRITON_INTERPRET`` (the module refuses otherwise: interpreted kernels cannot be compiled).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# per-block shared memory a kernel may use (opt-in maximum), bytes
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}

_EMPIRICAL_SIGNATURE = {
    "x_ptr": "*fp32", "y_ptr": "*fp32", "hsq_ptr": "*fp32", "inv_s2_ptr": "*fp32", "acc_ptr": "*fp32", "m_ptr": "*fp32",
    "l_ptr": "*fp32", "B": "i32", "N": "i32", "D": "i32", "n_splits": "i32", "stride_x": "i32", "stride_y": "i32",
    "BLOCK_B": "constexpr", "BLOCK_N": "constexpr", "BLOCK_K": "constexpr", "BLOCK_D": "constexpr",
    "PRECISION": "constexpr"}
_CAPTURE_SIGNATURE = {
    "q_ptr": "*fp16", "k_ptr": "*fp16", "v_ptr": "*fp16", "o_ptr": "*fp16", "tok_ptr": "*i32", "acc_ptr": "*fp32",
    **{n: "i32" for n in ("H", "Q", "K", "DH", "T", "row_offset", "n_rows")}, "scale": "fp32", "inv_h": "fp32",
    **{n: "i32" for n in ("sq_b", "sq_h", "sq_q", "sk_b", "sk_h", "sk_k", "sv_b", "sv_h", "sv_k", "so_b", "so_h",
                          "so_q")},
    "BLOCK_Q": "constexpr", "BLOCK_K": "constexpr", "BLOCK_DH": "constexpr", "BLOCK_T": "constexpr",
    "CAPTURE": "constexpr", "PRECISION": "constexpr"}
_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _compile(fn, signature: dict, constants: dict, arch: int, options: dict) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    t0 = time.perf_counter()
    try:
        kernel = triton.compile(ASTSource(fn, signature, constants), target=GPUTarget("cuda", arch, 32),
                                options=options)
    except Exception as err:  # a compile error is the finding: report it
        return {"ok": False, "error": f"{type(err).__name__}: {str(err)[:300]}"}
    shared = int(kernel.metadata.shared)
    return {"ok": True, "shared": shared, "fits": shared <= SHARED_LIMIT.get(arch, 101376),
            "seconds": round(time.perf_counter() - t0, 2)}


def check(archs: list[int], quick: bool = False) -> list[dict]:
    """Return one record per (kernel, arch, dtype, configuration) compiled."""
    import torch

    from kit.kernels import _triton as K

    if K.INTERPRETED:
        raise ValueError("kit.kernels._triton was imported with TRITON_INTERPRET=1: its kernels are interpreted and "
                         "cannot be compiled; run the compile check in a process without TRITON_INTERPRET")
    rows = []
    configs = K._EMPIRICAL_CONFIGS[1:2] if quick else K._EMPIRICAL_CONFIGS
    for arch in archs:
        for short, name in _DTYPES.items():
            dtype = getattr(torch, name)
            sig = dict(_EMPIRICAL_SIGNATURE, x_ptr="*" + short, y_ptr="*" + short)
            for bb, bn, bk, bd, warps, stages in configs:
                const = dict(BLOCK_B=bb, BLOCK_N=bn, BLOCK_K=bk, BLOCK_D=bd, PRECISION=K._precision(dtype))
                res = _compile(K._empirical_kernel, sig, const, arch, {"num_warps": warps, "num_stages": stages})
                rows.append({"kernel": "empirical", "arch": arch, "dtype": short,
                             "config": [bb, bn, bk, bd, warps, stages], **res})
            if quick and short == "fp32":
                continue  # float32 capture runs only when forced; its tf32x3 compile takes about a minute
            sig = dict(_CAPTURE_SIGNATURE, **{p: "*" + short for p in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")})
            for head_dim in ((160,) if quick else (40, 64, 80, 128, 160, 256)):  # SD 1.5: 40 / 80 / 160
                meta = K.capture_meta(dtype, head_dim, 77, 4)
                options = {"num_warps": meta.pop("num_warps"), "num_stages": meta.pop("num_stages")}
                res = _compile(K._capture_kernel, sig, dict(meta, CAPTURE=True), arch, options)
                rows.append({"kernel": "capture", "arch": arch, "dtype": short, "head_dim": head_dim, **res})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="compute capabilities, e.g. 80 90")
    p.add_argument("--quick", action="store_true", help="one tile shape of the denoiser; the capture at head size 160 "
                   "(SD's largest) in half precision")
    p.add_argument("--json", help="write the records to this file")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("unset TRITON_INTERPRET to compile the kernels", file=sys.stderr)
        return 2
    rows = check(args.arch, args.quick)
    for r in rows:
        what = r.get("config", r.get("head_dim"))
        status = (f"shared {r['shared'] / 1024:.0f} KiB{'' if r['fits'] else ' (over the limit)'}" if r["ok"]
                  else f"FAILED {r['error']}")
        print(f"sm_{r['arch']} {r['kernel']:<9} {r['dtype']} {what}: {status}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    # every capture configuration must fit (the launcher has no other); the denoiser needs one fitting tile shape
    # per dtype and arch (the autotuner skips the others)
    bad = [r for r in rows if not r["ok"] or (r["kernel"] == "capture" and not r["fits"])]
    for arch in args.arch:
        for short in _DTYPES:
            if not any(r["fits"] for r in rows if r["ok"] and r["kernel"] == "empirical" and r["arch"] == arch
                       and r["dtype"] == short):
                bad.append({"kernel": "empirical", "arch": arch, "dtype": short})
    print("all compiled and fit" if not bad else f"{len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
