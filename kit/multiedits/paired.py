"""The paired study of issue 11: parallel against sequential editing on the same ShapesWorld edits, case by case.

Each set is ``shapes_cases(n, n_aspects, seed)``; both editors edit every case with the same options and seed, and
the oracle scores both. Per case, the editor with more aspects right is *ahead*; a two-sided sign test on the
untied cases says whether the gap could be chance. The README's 2 x 36 two-aspect colour edits are::

    python -m kit.multiedits.paired --seeds 2 102 --n 36 --n-aspects 2

``--model-dir`` runs it on another ShapesWorld model saved by ``python -m kit.t2i.assets`` (e.g. one fine-tuned
on edit-rich scenes); ``--option name=value`` (repeatable) overrides a field of the preset's ``EditOptions`` (e.g.
``--option switch_step=0``); ``--json`` writes every row.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

__all__ = ["sign_test", "compare", "paired_rows", "parse_option", "main"]


def sign_test(ahead: int, behind: int) -> float:
    """Return the two-sided exact sign-test p-value of ``ahead`` wins against ``behind`` losses (ties dropped)."""
    if ahead < 0 or behind < 0:
        raise ValueError(f"counts must be >= 0, got ahead={ahead}, behind={behind}")
    n = ahead + behind
    if n == 0:
        return 1.0
    k = min(ahead, behind)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(rows: Sequence[dict], a: str = "parallel", b: str = "sequential") -> dict:
    """Return the paired comparison of methods ``a`` and ``b`` over rows of
    :func:`kit.multiedits.experiment.evaluate` (keyed by ``set`` when present, and ``case``): n, mean AspAcc of
    each, cases where ``a`` is ahead / behind / tied, the sign test's p and the time ratio a / b."""
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault((r.get("set"), r["case"]), {})[r["method"]] = r
    pairs = [(d[a], d[b]) for d in by.values() if a in d and b in d]
    if not pairs:
        raise ValueError(f"no case was edited by both {a!r} and {b!r}")
    diff = np.array([ra["aspacc"] - rb["aspacc"] for ra, rb in pairs])
    ahead, behind = int((diff > 0).sum()), int((diff < 0).sum())
    return {"n": len(pairs), f"{a}_aspacc": float(np.mean([ra["aspacc"] for ra, _ in pairs])),
            f"{b}_aspacc": float(np.mean([rb["aspacc"] for _, rb in pairs])),
            "ahead": ahead, "behind": behind, "tied": len(pairs) - ahead - behind, "p": sign_test(ahead, behind),
            "time_ratio": float(np.mean([ra["seconds"] for ra, _ in pairs]) /
                                np.mean([rb["seconds"] for _, rb in pairs]))}


def paired_rows(pipe, seeds: Sequence[int], n: int, n_aspects: int = 2, *, kinds: str = "colour",
                methods: Sequence[str] = ("parallel", "sequential"), options=None, seed: int = 0,
                progress: bool = True) -> list[dict]:
    """Return the rows of :func:`kit.multiedits.experiment.evaluate` for every set ``shapes_cases(n, n_aspects,
    s)``, s in ``seeds``, each row tagged with its ``set``."""
    from kit.multiedits.experiment import evaluate, shapes_cases

    if not seeds:
        raise ValueError("seeds must name at least one set")
    rows = []
    for s in seeds:
        for r in evaluate(pipe, shapes_cases(n, n_aspects, seed=s, kinds=kinds), methods, seed=seed,
                          progress=progress, options=options):
            r["set"] = int(s)
            rows.append(r)
    return rows


def parse_option(text: str, options) -> tuple[str, object]:
    """Return (name, value) of ``text`` = "name=value" for a field of ``options`` (an ``EditOptions``), the value
    read as that field's type."""
    from dataclasses import fields

    name, sep, raw = text.partition("=")
    kinds = {f.name: type(getattr(options, f.name)) for f in fields(options)}
    if not sep or name not in kinds:
        raise ValueError(f"an option is name=value with name one of {sorted(kinds)}, got {text!r}")
    kind = kinds[name]
    if kind is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{name} takes true or false, got {raw!r}")
        return name, raw.lower() in ("true", "1")
    try:
        return name, kind(raw)
    except ValueError as err:
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise ValueError(f"{name} takes {article} {kind.__name__}, got {raw!r}") from err


def main(argv: list[str] | None = None) -> int:
    from kit.core import set_threads
    from kit.multiedits.config import edit_options, load_pipeline, preset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="a ShapesWorld model folder (default: the committed one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 102])
    parser.add_argument("--n", type=int, default=36, help="edits per set")
    parser.add_argument("--n-aspects", type=int, default=2)
    parser.add_argument("--kinds", default="colour")
    parser.add_argument("--preset", default="shapes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="override an EditOptions field (repeatable)")
    parser.add_argument("--json", default=None, help="write every row here")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    cfg = preset(args.preset, model_dir=args.model_dir)
    options = edit_options(cfg)
    options = replace(options, **dict(parse_option(o, options) for o in args.option))
    pipe = load_pipeline(cfg)
    rows = paired_rows(pipe, args.seeds, args.n, args.n_aspects, kinds=args.kinds, options=options, seed=cfg.seed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "image"} for r in rows], f, indent=1, default=str)
    for s in args.seeds:
        c = compare([r for r in rows if r["set"] == s])
        print(f"set {s}: parallel {c['parallel_aspacc']:.3f}, sequential {c['sequential_aspacc']:.3f} AspAcc; "
              f"parallel ahead {c['ahead']}, behind {c['behind']}, tied {c['tied']}; time {c['time_ratio']:.2f}x")
    c = compare(rows)
    print(f"all {c['n']}: parallel {c['parallel_aspacc']:.3f}, sequential {c['sequential_aspacc']:.3f}; ahead "
          f"{c['ahead']}, behind {c['behind']} (sign test p = {c['p']:.3f}); time {c['time_ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
