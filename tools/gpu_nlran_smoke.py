"""GPU smoke check of the NL-RAN "full" preset (spec §2: 1 x 64 x 128 x 128 inputs), printed as JSON.

    python tools/gpu_nlran_smoke.py --out DIR            # on a GPU
    python tools/gpu_nlran_smoke.py --out DIR --small    # a CPU dry run at reduced sizes

Checks: the full network's forward/backward (bf16 autocast) with its parameter count, step time and peak memory;
forward_maps and every heat map at full size; MONAI's ResNet-18 on the same batch (time ratio); the non-local block
at the full stage-2 width, SDPA vs the explicit softmax(QK^T)V; and a few optimizer steps of the full preset on
64^3 phantoms through ``kit.nlran.experiment.train_model``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def timed(fn, sync, n=3):
    fn()
    sync()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--small", action="store_true")
    args = p.parse_args()
    from kit.nlran.baselines import resnet18_3d
    from kit.nlran.blocks import NonLocalBlock3d, nonlocal_attention_reference
    from kit.nlran.explain import heatmaps
    from kit.nlran.models import count_parameters, nlran3d

    dev = torch.device("cpu" if args.small or not torch.cuda.is_available() else "cuda")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    size = (16, 32, 32) if args.small else (64, 128, 128)
    batch = 2
    out: dict = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "input": [batch, 1, *size]}
    torch.manual_seed(0)
    model = nlran3d("full", **({"widths": (8, 16, 32, 64), "stem_channels": 4} if args.small else {})).to(dev)
    x = torch.rand(batch, 1, *size, device=dev)
    y = torch.tensor([0, 2], device=dev)
    out["params"] = count_parameters(model)

    def step(m):
        def f():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = torch.nn.functional.cross_entropy(m(x).float(), y)
            loss.backward()
            m.zero_grad(set_to_none=True)
        return f

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out["nlran_fwd_bwd_s"] = timed(step(model), sync)
    if dev.type == "cuda":
        out["nlran_peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    model.eval()
    with torch.no_grad():
        maps = model.forward_maps(x[:1])
    out["mask_shapes"] = [list(m.shape) for m in maps["masks"]]
    out["feature_shape"] = list(maps["features"].shape)
    heats = heatmaps(model, x[:1], class_idx=0)
    out["heatmaps"] = {k: [list(v.shape), float(v.min()), float(v.max())] for k, v in heats.items()}
    model.train()
    res = resnet18_3d(**({"widths": (8, 16, 32, 64)} if args.small else {})).to(dev)
    out["resnet18_params"] = count_parameters(res)
    out["resnet18_fwd_bwd_s"] = timed(step(res), sync)
    out["ratio_nlran_over_resnet18"] = out["nlran_fwd_bwd_s"] / out["resnet18_fwd_bwd_s"]
    del res
    c = 16 if args.small else 256
    g = 8 if args.small else 16
    for pooled in (False, True):
        blk = NonLocalBlock3d(c, sub_sample=pooled).to(dev)
        with torch.no_grad():
            blk.norm.weight.fill_(1.0)  # not the identity any more
        xx = torch.randn(2, c, g, g, g, device=dev, requires_grad=True)
        t_sdpa = timed(lambda b=blk, v=xx: b(v).sum().backward(), sync)
        t_ref = timed(lambda b=blk, v=xx: nonlocal_attention_reference(v, b).sum().backward(), sync)
        with torch.no_grad():
            err = float((blk(xx) - nonlocal_attention_reference(xx, blk)).abs().max())
        out[f"nonlocal_{'pooled' if pooled else 'full'}"] = {"sdpa_s": t_sdpa, "explicit_s": t_ref,
                                                            "ratio": t_sdpa / t_ref, "max_abs_diff": err}
    from kit.nlran.config import preset
    from kit.nlran.experiment import load_data, train_model

    cfg = preset("full", data="phantom", size=(32, 32, 32) if args.small else (64, 64, 64), n_train=16, n_val=6,
                 n_test=6, epochs=2, batch_size=4, num_workers=0, device=str(dev))
    t0 = time.perf_counter()
    tm = train_model(cfg, load_data(cfg), "nlran")
    out["full_preset_64cube_train"] = {"seconds": round(time.perf_counter() - t0, 1), "params": tm.params,
                                       "val_auc_per_epoch": [e["val_auc"] for e in tm.history]}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "nlran_full_smoke.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
