"""Cost of correlation distillation (kit.cmdfd): one student training step with the CD and JC terms (the teachers'
posteriors precomputed, as the offline pipeline does once per clip) against the plain CE step, on the same student
and batch; a step that also runs the frozen teachers on the batch (what the real-data path does); and inference in
clips per second.

Rows: milliseconds per step and the ratio to the CE step; clips/s of the student alone (teachers are used only in
training). Variants run round-robin; the median over rounds is reported.

    python benchmarks/cmdfd.py                 # tiny student, batch 16 clips of 50 frames, 5 rounds, 2 threads
    python benchmarks/cmdfd.py --arch full     # TalkNet at 112 px (slow on a CPU: use a GPU)
    python benchmarks/cmdfd.py --quick         # batch 4 clips of 20 frames, 1 round, no warm-up
"""

from __future__ import annotations

import argparse
import statistics

from timing import round_robin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="tiny", choices=("tiny", "full"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="batch 4 clips of 20 frames, 1 round, no warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.frames, args.rounds, args.warmup = 4, 20, 1, 0

    import torch

    from kit.cmdfd.losses import total_loss
    from kit.cmdfd.models import TalkNetStudent
    from kit.cmdfd.teachers import VisemeTeacher
    from kit.core import set_threads

    set_threads(args.threads)
    torch.manual_seed(0)
    n_feat, size = (13, 112) if args.arch == "full" else (32, 32)
    b, t = args.batch, args.frames
    feats, video = torch.randn(b, 4 * t, n_feat), torch.rand(b, t, size, size)
    y = torch.randint(0, 2, (b,))
    p_, q_ = torch.softmax(torch.randn(b, t, 6), -1), torch.softmax(torch.randn(b, t, 6), -1)
    teach_a, teach_v = VisemeTeacher("audio", n_features=n_feat).eval(), VisemeTeacher("video").eval()

    def step_fn(w_cd: float, w_jc: float, run_teachers: bool = False):
        model = TalkNetStudent(args.arch)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step():
            p, q = p_, q_
            if run_teachers:
                with torch.no_grad():
                    p, q = teach_a(feats), teach_v(video)
            out = model(feats, video)
            loss = total_loss(out.logits, out.a, out.v, y, p, q, w_cd=w_cd, w_jc=w_jc)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    student = TalkNetStudent(args.arch).eval()

    def infer():
        with torch.no_grad():
            student(feats, video).logits.mean(1)

    fns = {"CE step": step_fn(0, 0), "CE + CD step": step_fn(1, 0), "CE + CD + JC step": step_fn(1, 1),
           "CE + CD + JC, teachers in the step": step_fn(1, 1, True), "inference (batch)": infer}
    times = round_robin(fns, args.rounds, args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.threads} threads, {args.arch} student, batch {b} clips of {t} frames, {args.rounds} rounds (median)")
    print(f"{'variant':<36}{'ms':>10}{'x CE step':>11}")
    for k, s in med.items():
        if k != "inference (batch)":
            print(f"{k:<36}{1000 * s:>10.2f}{s / med['CE step']:>11.2f}")
    print(f"inference: {b / med['inference (batch)']:.0f} clips/s ({1000 * med['inference (batch)'] / b:.2f} ms per clip)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
