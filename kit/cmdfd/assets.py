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

from dataclasses import asdict, replace
from pathlib import Path

from kit.cmdfd.config import LOSSES, TRAIN_CONFIGS, CMDFDConfig, preset
from kit.cmdfd.experiment import Teachers, attach_teachers, evaluate, make_data, train, train_teachers
from kit.cmdfd.models import TalkNetStudent
from kit.cmdfd.teachers import VisemeTeacher
from kit.core import load_weights, read_json, save_weights, write_json
from kit.core.build import UnitCache, build_parser, default_work, parse_build_args, rounded_history

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


def _student_unit(cfg: CMDFDConfig, config: str, data: dict, teachers: Teachers, keep: Path | None) -> dict:
    """Train and score one student on training configuration ``config``; ``keep``: save it there (float16) and
    score what is saved."""
    res = train(cfg, data, progress=False)
    if keep is not None:
        save_weights(res.model, keep / f"student_{cfg.loss}.safetensors")
        res.model = load_student(cfg.loss, keep)  # score what is committed: the float16 weights
    ev = evaluate(res.model, data["test"])
    return {"seed": cfg.seed, "config": config, "loss": cfg.loss, "per_kind": ev["per_kind"],
            "per_kind_c": ev["per_kind_c"], "overall": ev["overall"], "per_kind_metrics": ev["per_kind_metrics"],
            "teacher_accuracy": teachers.accuracy, "train_seconds": res.seconds, "val": res.best_metrics,
            "history": rounded_history(res.history) if keep is not None else None}


def _save_teachers(teachers: Teachers, cfg: CMDFDConfig, data: dict, out: Path) -> None:
    from kit.data.talking import VISEMES

    for modality in ("audio", "video"):
        save_weights(getattr(teachers, modality), out / f"teacher_{modality}.safetensors")
    write_json(out / "config.json", {"arch": cfg.arch, "n_features": int(data["train"].feats.shape[-1]),
                                     "n_visemes": len(VISEMES), "features": cfg.features, "size": cfg.size,
                                     "n_frames": cfg.n_frames, "teacher_accuracy": teachers.accuracy})


def build(seeds=(0, 1, 2, 3), configs=tuple(TRAIN_CONFIGS), losses=LOSSES, work: Path | None = None,
          out: Path = ASSET_DIR, preset_name: str = "lite", progress: bool = True, **overrides) -> dict:
    """Run the build (module docstring) and return the report written to ``out / "results.json"``."""
    out.mkdir(parents=True, exist_ok=True)
    base = preset(preset_name, device="cpu", **overrides)
    units = UnitCache(work or default_work("cmdfd"), len(seeds) * len(configs) * len(losses), "cmdfd build",
                      progress)
    rows = []
    for seed in seeds:
        teachers = None
        for config in configs:
            cfg = replace(base, seed=seed, train_kinds=TRAIN_CONFIGS[config])
            data = None
            for loss in losses:
                key = f"s{seed}_{config}_{loss}"
                if data is None and not units.done(key):  # data and teachers only for a unit still to run
                    data = make_data(cfg)
                    if teachers is None:
                        teachers = train_teachers(cfg, data, progress=False)
                        if seed == seeds[0]:
                            _save_teachers(teachers, cfg, data, out)
                    else:
                        attach_teachers(data, teachers)
                keep = out if seed == seeds[0] and config == "swap_shift" else None
                rows.append(units.run(key, _student_unit, replace(cfg, loss=loss), config, data, teachers, keep,
                                      describe=lambda r: " ".join(f"{k} {v:.3f}" for k, v in r["per_kind"].items())))
    return units.report(out / "results.json", {"config": asdict(base), "seeds": list(seeds), "configs": list(configs),
                                               "losses": list(losses), "rows": rows})


def main(argv: list[str] | None = None) -> int:
    args = parse_build_args(build_parser(__doc__, ASSET_DIR, seeds=(0, 1, 2, 3)), argv)
    report = build(args.seeds, work=args.work, out=args.out)
    from kit.cmdfd.explore import ablation_table

    for r in ablation_table(report["rows"]):
        print(f"{r['config']:10s} {r['loss']:9s} {r['kind']:13s} {r['mean']:.3f} ± {r['std']:.3f} {r['per_seed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
