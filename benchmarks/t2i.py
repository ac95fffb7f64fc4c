"""Images per second: kit's TextToImagePipeline vs diffusers' own StableDiffusionPipeline on the same components.

Like for like: both pipelines get the same UNet2DConditionModel (the ShapesWorld size: channels (64, 128, 128),
3 x 32 x 32, cross-attention at 16x16 and 8x8), the same tiny CLIP text encoder and word-level tokenizer, a
DDIMScheduler with the same config, the same prompts, step count and guidance scale (3.0, so both batch
[uncond, cond] into one UNet call per step), and ``output_type="latent"`` (no decoding: diffusers' pipeline needs
a VAE object, given here as a one-level AutoencoderKL whose scale factor is 1, but never runs it). This compares
what the pipelines add around identical UNet calls: prompt encoding, CFG batching, scheduler steps. diffusers'
unconditional ``DDIMPipeline`` would need a different network (UNet2DModel) and no text, so it would not measure
the same work. Extra rows: the kit ODE solver path (dpmpp2m, same number of UNet calls) and kit + DDIM with an
AttentionStore recording cross-attention (the cost of the explicit-softmax processors), and with a token-capture
store (``AttentionStore(tokens=[3, 4])``: two words' maps summed over steps through ``kit.kernels``).

Variants are timed round-robin (one call of each per round) so load from other processes spreads evenly; the
median over rounds is reported.

    python benchmarks/t2i.py                # batch 4, 20 steps, 5 timed rounds, 2 threads
    python benchmarks/t2i.py --quick        # batch 2, 5 steps, 2 timed rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

VARIANTS = ("diffusers-sd-ddim", "kit-ddim", "kit-dpmpp2m", "kit-ddim+store", "kit-ddim+capture")
WORDS = ["a", "big", "small", "red", "green", "blue", "circle", "square", "triangle", "left", "of", "right"]
PROMPTS = ["a big red circle", "a small blue square left of a green triangle", "a green circle",
           "a red square right of a blue circle"]


def build(args: argparse.Namespace) -> dict:
    """Return {variant: callable() -> latents} over one shared set of seeded random components."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline

    from kit.diffusion.attention import AttentionStore, register_attention_store
    from kit.diffusion.t2i import TextToImagePipeline, build_unet
    from kit.diffusion.text import build_text_encoder, build_tokenizer, tiny_text_config

    torch.manual_seed(args.seed)
    tok = build_tokenizer(WORDS, max_length=16)
    enc = build_text_encoder(tiny_text_config(len(tok))).eval().to(args.device)
    unet = build_unet().eval().to(args.device)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=3, block_out_channels=(8,),
                        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                        norm_num_groups=4, sample_size=32).eval().to(args.device)
    sched_cfg = DDIMScheduler(beta_schedule="linear", clip_sample=False, steps_offset=1).config
    sd = StableDiffusionPipeline(vae=vae, text_encoder=enc, tokenizer=tok, unet=unet,
                                 scheduler=DDIMScheduler.from_config(sched_cfg), safety_checker=None,
                                 feature_extractor=None, requires_safety_checker=False)
    sd.set_progress_bar_config(disable=True)
    kit_ddim = TextToImagePipeline(unet, enc, tok, scheduler=DDIMScheduler.from_config(sched_cfg), vae=vae)
    kit_solver = TextToImagePipeline(unet, enc, tok, scheduler=DDIMScheduler.from_config(sched_cfg), vae=vae,
                                     solver="dpmpp2m")
    prompts = (PROMPTS * args.batch)[: args.batch]
    common = dict(num_inference_steps=args.steps, guidance_scale=3.0, output_type="latent")

    def gen():
        return torch.Generator().manual_seed(args.seed)

    def with_store(tokens=None):
        store = AttentionStore(tokens=tokens)
        restore = register_attention_store(unet, store)
        try:
            return kit_ddim(prompts, generator=gen(), **common).images
        finally:
            restore()

    return {
        "diffusers-sd-ddim": lambda: sd(prompts, generator=gen(), height=32, width=32, **common).images,
        "kit-ddim": lambda: kit_ddim(prompts, generator=gen(), **common).images,
        "kit-dpmpp2m": lambda: kit_solver(prompts, generator=gen(), **common).images,
        "kit-ddim+store": with_store,
        "kit-ddim+capture": lambda: with_store(tokens=[3, 4]),  # two words' step-summed maps (kit.kernels)
    }


def run(args: argparse.Namespace) -> tuple[dict[str, list[float]], float]:
    """Return ({variant: [seconds per call]}, max |kit-ddim - diffusers| over the latents)."""
    import torch

    torch.set_num_threads(args.threads)
    fns = build(args)
    with torch.no_grad():
        ref, ours = fns["diffusers-sd-ddim"](), fns["kit-ddim"]()
        diff = float((torch.as_tensor(ref).float() - torch.as_tensor(ours).float()).abs().max())
        for _ in range(args.warmup):
            for fn in fns.values():
                fn()
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for v in VARIANTS:
                t0 = time.perf_counter()
                fns[v]()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[v].append(time.perf_counter() - t0)
    return times, diff


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="prompts per call")
    p.add_argument("--steps", type=int, default=20, help="denoising steps (UNet calls) per image")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (one call of each variant per round)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--quick", action="store_true", help="batch 2, 5 steps, 2 timed rounds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print the raw times as one JSON line")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.rounds = 2, 5, 2
    for name in ("threads", "batch", "steps", "rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")

    times, diff = run(args)
    med = {v: statistics.median(t) for v, t in times.items()}
    base = med["diffusers-sd-ddim"]
    print(f"Text-to-image sampling, UNet (64, 128, 128) at 32x32, batch {args.batch}, {args.steps} steps, CFG 3.0, "
          f"{args.device}, threads {args.threads}, median of {args.rounds} rounds")
    print(f"{'variant':<20} {'s / call':>9} {'images / s':>11} {'x diffusers':>12}")
    for v in VARIANTS:
        print(f"{v:<20} {med[v]:>9.3f} {args.batch / med[v]:>11.2f} {med[v] / base:>12.3f}")
    print(f"kit-ddim / diffusers time ratio: {med['kit-ddim'] / base:.3f}; "
          f"max |latents difference| kit-ddim vs diffusers: {diff:.2e}")
    if args.json:
        print(json.dumps({"args": vars(args), "times": times, "max_abs_diff": diff}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
