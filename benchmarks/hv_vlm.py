"""Pair-scoring throughput of the hv_vlm verifiers (kit.hv_vlm): the Siamese ResNet-18 against the HOG-cosine
baseline and the offline examiner, on the paper's pairing.

Verification scores many pairs over few images: with the paper's pairing, N images of W writers give about
N * (N / W - 1) pairs. ``pair_logits`` embeds every image once and scores pairs from the cached embeddings; the
obvious alternative runs the Siamese forward on each pair's two images. Rows (pairs per second, CPU):

- ``siamese, embed once``: ``kit.hv_vlm.model.pair_logits`` (the committed width 16, and ResNet-18's full width 64);
- ``siamese, per pair``: ``model(a, b)`` on batches of pairs (each image embedded once per pair it is in);
- ``hog cosine``: ``skimage.feature.hog`` per image, then cosine per pair (the handcrafted baseline);
- ``offline examiner``: the two-turn ``verify`` of the OfflineExaminer (features measured once per image, cached).

Each is timed from uint8 images to scores. Variants run round-robin (one call of each per round) so load from
other processes spreads evenly; the median over rounds is reported, with the ratio to HOG cosine.

    python benchmarks/hv_vlm.py             # 48 writers x 8 samples, 3 rounds, 2 threads
    python benchmarks/hv_vlm.py --quick     # 16 writers x 4 samples, 1 round, no warm-up
"""

from __future__ import annotations

import argparse
import statistics

from timing import round_robin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--writers", type=int, default=48)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--examiner-pairs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="16 writers x 4 samples, 1 round, no warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.writers, args.samples, args.rounds, args.warmup, args.examiner_pairs = 16, 4, 1, 0, 40

    import numpy as np
    import torch

    from kit.data.handwriting import Writers, verification_pairs
    from kit.hv_vlm.examiner import verify
    from kit.hv_vlm.model import SiameseVerifier, pair_logits, to_input
    from kit.hv_vlm.offline_examiner import OfflineExaminer
    from kit.verification.baselines import cosine_scores, hog_features

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pop = Writers(args.writers, seed=11, noise=1.8)
    images = np.concatenate([pop.sample(w, args.samples, np.random.default_rng(w)) for w in range(args.writers)])
    writer_of = np.repeat(np.arange(args.writers), args.samples)
    pairs = verification_pairs(writer_of, seed=0)
    n_pairs = len(pairs)
    models = {w: SiameseVerifier(width=w).eval() for w in (16, 64)}

    def embed_once(m):
        return lambda: pair_logits(m, to_input(images), pairs)

    def per_pair(m, batch=256):
        def run():
            x = to_input(images)
            with torch.no_grad():
                for k in range(0, n_pairs, batch):
                    b = pairs[k:k + batch]
                    m(x[b[:, 0]], x[b[:, 1]])
        return run

    fns = {"siamese w16, embed once": embed_once(models[16]), "siamese w16, per pair": per_pair(models[16]),
           "siamese w64, embed once": embed_once(models[64]), "siamese w64, per pair": per_pair(models[64]),
           "hog cosine": lambda: cosine_scores(hog_features(images), pairs)}
    times = round_robin(fns, args.rounds, args.warmup)
    rate = {k: n_pairs / statistics.median(v) for k, v in times.items()}

    fit = pairs[: min(len(pairs), 400)]
    examiner = OfflineExaminer().fit(images[fit[:, 0]], images[fit[:, 1]], fit[:, 2])
    sub = pairs[:args.examiner_pairs]

    def examine():
        examiner._cache.clear()  # measure every image again: the honest cost of a fresh batch
        for i, j, _ in sub:
            verify(examiner, images[i], images[j])

    t_ex = round_robin({"offline examiner": examine}, args.rounds, 0)
    rate["offline examiner"] = len(sub) / statistics.median(t_ex["offline examiner"])

    print(f"{args.writers} writers x {args.samples} samples = {len(images)} images, {n_pairs} pairs (the paper's "
          f"pairing), CPU, {args.threads} threads, median of {args.rounds}")
    print(f"{'scorer':<26} {'pairs / s':>11} {'x HOG cosine':>13}")
    for k, v in rate.items():
        print(f"{k:<26} {v:>11.0f} {v / rate['hog cosine']:>13.2f}")
    for w in (16, 64):
        r = rate[f"siamese w{w}, embed once"] / rate[f"siamese w{w}, per pair"]
        print(f"width {w}: embedding each image once is {r:.1f}x faster than a forward per pair")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
