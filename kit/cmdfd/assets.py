"""Build the committed CMDFD models and the README's ablation: ``python -m kit.cmdfd.assets`` (``results.json``
records the time it took).

For each seed (default 0-3) the "lite" preset generates its clips (500 training clips, 100 validation, 500 test
clips of every kind: real, swap, shift, lip-sync, talking head; a separate 300 real clips for the teachers), trains
the two viseme teachers once, and then, for each training configuration (``swap_shift``: swap + shift fakes;
``shift_only``: spec section 5's configuration A) and each loss (CE; CE + CD; CE + CD + JC), a student, scored per
fake kind on the same test clips. Each unit is cached as JSON under ``--work`` so an interrupted build resumes.
Writes ``kit/assets/cmdfd/``: the seed-0 teachers (``teacher_audio`` / ``teacher_video``) and seed-0 ``swap_shift``
students (``student_<loss>``) as float16 safetensors, ``config.json`` and ``results.json`` (every row; the seed-0
training histories).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from kit.cmdfd.config import LOSSES, TRAIN_CONFIGS, preset
from kit.cmdfd.experiment import Teachers, attach_teachers, evaluate, make_data, train, train_teachers
from kit.cmdfd.models import TalkNetStudent
from kit.cmdfd.teachers import VisemeTeacher
from kit.core import load_weights, read_json, save_weights, set_threads, write_json

__all__ = ["ASSET_DIR", "REBUILD", "build", "load_student", "save_student", "load_teachers", "committed_results",
           "saved_losses"]

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "cmdfd"
REBUILD = "python -m kit.cmdfd.assets"


def _rebuild(folder) -> str:
    return REBUILD if folder is None else f"{REBUILD} --out {folder}"


def load_student(loss: str = "ce_cd_jc", folder: str | Path | None = None) -> TalkNetStudent:
    """The committed seed-0 student trained with ``loss`` on swap + shift fakes (float32, CPU, eval mode);
    FileNotFoundError names the rebuild command when it is missing."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    arch = read_json(Path(folder or ASSET_DIR) / "config.json", _rebuild(folder))
    model = TalkNetStudent(arch["arch"], arch["n_features"])
    return load_weights(model, Path(folder or ASSET_DIR) / f"student_{loss}.safetensors", _rebuild(folder))


def save_student(model: TalkNetStudent, loss: str, folder: str | Path, cfg_arch: str, n_features: int) -> Path:
    """Write ``model`` as ``folder/student_<loss>.safetensors`` (float16) with the ``config.json`` that
    :func:`load_student` reads (a folder of students of one architecture: another one is a ValueError)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arch = {"arch": cfg_arch, "n_features": int(n_features)}
    if (folder / "config.json").is_file():
        old = read_json(folder / "config.json")
        if (old.get("arch"), old.get("n_features")) != (arch["arch"], arch["n_features"]):
            raise ValueError(f"{folder} holds {old.get('arch')!r} students; save this {cfg_arch!r} one elsewhere")
        arch = {**old, **arch}
    write_json(folder / "config.json", arch)
    return save_weights(model, folder / f"student_{loss}.safetensors")


def saved_losses(folder: str | Path | None = None) -> list[str]:
    """The losses (in ``LOSSES`` order) whose students a folder holds (default: the committed one)."""
    return [k for k in LOSSES if (Path(folder or ASSET_DIR) / f"student_{k}.safetensors").is_file()]


def load_teachers(folder: str | Path | None = None) -> Teachers:
    """The committed seed-0 viseme teachers, frozen (float32, CPU, eval mode)."""
    arch = read_json(Path(folder or ASSET_DIR) / "config.json", _rebuild(folder))
    out = {}
    for modality in ("audio", "video"):
        m = VisemeTeacher(modality, arch["n_visemes"], n_features=arch["n_features"])
        out[modality] = load_weights(m, Path(folder or ASSET_DIR) / f"teacher_{modality}.safetensors", _rebuild(folder))
        for p in out[modality].parameters():
            p.requires_grad_(False)
    return Teachers(out["audio"], out["video"], dict(arch.get("teacher_accuracy", {})))


def committed_results(folder: str | Path | None = None) -> dict:
    """``results.json`` of the committed build."""
    return read_json(Path(folder or ASSET_DIR) / "results.json", _rebuild(folder))


def _short(history: list[dict]) -> list[dict]:
    return [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()} for h in history]


def build(seeds=(0, 1, 2, 3), configs=tuple(TRAIN_CONFIGS), losses=LOSSES, work: Path | None = None,
          out: Path = ASSET_DIR, preset_name: str = "lite", **overrides) -> dict:
    """Run the build (module docstring) and return the report written to ``out / "results.json"``."""
    from kit.data.talking import VISEMES

    work = Path(work or Path(tempfile.gettempdir()) / "kit_cmdfd_build")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    base = preset(preset_name, device="cpu", **overrides)
    t0 = time.perf_counter()
    rows = []
    for seed in seeds:
        teachers = None
        for config in configs:
            cfg = replace(base, seed=seed, train_kinds=TRAIN_CONFIGS[config])
            data = None
            for loss in losses:
                path = work / f"s{seed}_{config}_{loss}.json"
                if path.is_file():
                    rows.append(json.loads(path.read_text()))
                    continue
                if data is None:
                    data = make_data(cfg)
                    if teachers is None:
                        teachers = train_teachers(cfg, data, progress=False)
                        if seed == seeds[0]:
                            for modality in ("audio", "video"):
                                save_weights(getattr(teachers, modality), out / f"teacher_{modality}.safetensors")
                            write_json(out / "config.json", {"arch": cfg.arch, "n_features": int(data["train"].feats.shape[-1]),
                                                             "n_visemes": len(VISEMES), "features": cfg.features,
                                                             "size": cfg.size, "n_frames": cfg.n_frames,
                                                             "teacher_accuracy": teachers.accuracy})
                    else:
                        attach_teachers(data, teachers)
                t = time.perf_counter()
                res = train(replace(cfg, loss=loss), data, progress=False)
                keep = seed == seeds[0] and config == "swap_shift"
                if keep:
                    save_weights(res.model, out / f"student_{loss}.safetensors")
                    res.model = load_student(loss, out)  # score what is committed: the float16 weights
                ev = evaluate(res.model, data["test"])
                row = {"seed": seed, "config": config, "loss": loss, "per_kind": ev["per_kind"],
                       "per_kind_c": ev["per_kind_c"],
                       "overall": ev["overall"], "per_kind_metrics": ev["per_kind_metrics"],
                       "teacher_accuracy": teachers.accuracy, "train_seconds": res.seconds, "val": res.best_metrics,
                       "history": _short(res.history) if keep else None, "seconds": time.perf_counter() - t}
                write_json(path, row)
                rows.append(row)
                print(f"seed {seed} {config} {loss}: " + " ".join(f"{k} {v:.3f}" for k, v in ev["per_kind"].items())
                      + f" ({row['seconds']:.0f} s)", flush=True)
    report = {"config": asdict(base), "seeds": list(seeds), "configs": list(configs), "losses": list(losses),
              "rows": rows, "build_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}
    write_json(out / "results.json", report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ASSET_DIR))
    parser.add_argument("--work", default=None, help="cache of finished units: an interrupted build resumes there")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args(argv)
    set_threads(args.threads)
    report = build(tuple(args.seeds), work=args.work and Path(args.work), out=Path(args.out))
    from kit.cmdfd.explore import ablation_table

    for r in ablation_table(report["rows"]):
        print(f"{r['config']:10s} {r['loss']:9s} {r['kind']:13s} {r['mean']:.3f} ± {r['std']:.3f} {r['per_seed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
