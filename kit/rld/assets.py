"""The committed digits teacher of the RLD series: ``python -m kit.rld.assets`` rebuilds it (10-25 s on a CPU).

It is the "tiny" preset's seed-0 teacher exactly as 01_train trains it (the 64-256-256-10 MLP, Adam lr 1e-3, 150
epochs on the 900 pool digits the student never sees); 03_explore loads it to find the test digits it gets wrong
(:func:`kit.rld.mistakes.teacher_mistakes`). Writes ``kit/assets/rld_digits/``: ``teacher.safetensors`` (float32,
so the committed logits equal a fresh training's on the same torch) and ``config.json`` (the preset, the seed and
what the teacher measured).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kit.core import RunDir, load_weights, read_json, save_weights, set_threads, write_json
from kit.rld.config import RLDConfig, preset

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "rld_digits"
REBUILD = "python -m kit.rld.assets"


def committed_config(folder: str | Path | None = None) -> RLDConfig:
    """Return the :class:`RLDConfig` the committed teacher was trained with (``config.json``)."""
    rec = read_json(Path(folder or ASSET_DIR) / "config.json", REBUILD)
    return preset(rec["preset"], **rec["overrides"])


def committed_record(folder: str | Path | None = None) -> dict[str, Any]:
    """Return ``config.json`` of the committed teacher: preset, overrides, test accuracy, error on the student's
    training digits, the test digits it gets wrong, seconds and torch version of the build."""
    return read_json(Path(folder or ASSET_DIR) / "config.json", REBUILD)


def load_teacher(folder: str | Path | None = None) -> nn.Module:
    """Return the committed digits teacher (float32, CPU, eval mode); a missing file raises FileNotFoundError
    naming the command that rebuilds it."""
    from kit.rld.experiment import build_network

    folder = Path(folder or ASSET_DIR)
    cfg = committed_config(folder)
    return load_weights(build_network(cfg, cfg.teacher, 10, "teacher"), folder / "teacher.safetensors", REBUILD)


def build(folder: str | Path = ASSET_DIR, seed: int = 0) -> dict[str, Any]:
    """Return the record written to ``folder/config.json`` after training the tiny preset's teacher with ``seed``
    and saving it to ``folder/teacher.safetensors``."""
    from kit.rld.experiment import load_data, predict, train_teacher

    t0 = time.perf_counter()
    overrides = {"seed": seed, "device": "cpu"}
    cfg = preset("tiny", **overrides)
    data = load_data(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        teacher = train_teacher(cfg, RunDir(tmp), data)
    pred, y = predict(teacher.model, data.test)
    wrong = (pred != y).nonzero().flatten().tolist()
    folder = Path(folder)
    save_weights(teacher.model, folder / "teacher.safetensors", dtype=torch.float32)
    record = {"preset": "tiny", "overrides": overrides, "test_acc": teacher.test_acc,
              "error_on_student_train": teacher.error_on_student_train, "test_mistakes": wrong,
              "seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__}
    write_json(folder / "config.json", record)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ASSET_DIR), help="folder to write (default: the committed one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    set_threads()
    rec = build(args.out, args.seed)
    print(f"teacher: test accuracy {rec['test_acc']:.4f}, {len(rec['test_mistakes'])} test mistakes, "
          f"{rec['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
