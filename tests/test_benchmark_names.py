"""No benchmark script may share its name with an installed top-level package: ``python benchmarks/x.py`` puts
benchmarks/ first on sys.path, so a benchmarks/kernels.py would shadow Hugging Face's ``kernels`` (which diffusers
looks for) and break every benchmark that imports diffusers."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_benchmark_scripts_do_not_shadow_installed_packages():
    clashes = {}
    for script in BENCHMARKS.glob("*.py"):
        spec = importlib.util.find_spec(script.stem)  # tests run from the repo root: benchmarks/ is not on sys.path
        if spec is not None and Path(spec.origin or "").resolve() != script.resolve():
            clashes[script.name] = spec.origin
    assert not clashes, f"benchmark scripts shadow installed modules: {clashes}"
