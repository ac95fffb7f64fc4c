"""Binder's limits, checked: binder/requirements.txt satisfies every import of kit, widgets and the notebooks and
pins what pyproject.toml pins; the README's Binder link is built from the git remote, never a placeholder."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kit.binder import BEGIN, END, binder_url, github_repo, readme_block, remote_github_repo
from kit.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS_OFF_BINDER = ("data", "dev", "metrics", "nlp")  # not on Binder: real-dataset readers, the test tools, FID, spaCy


def binder_requirements() -> dict[str, Requirement]:
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(ln.split("#")[0].strip()) for ln in lines if ln.strip() and not ln.startswith(("#", "-"))]
    return {canonicalize_name(r.name): r for r in reqs}


def pyproject_requirements(*groups: str) -> dict[str, Requirement]:
    out = {}
    for group in groups:
        specs = (PYPROJECT["project"]["dependencies"] if group == "dependencies"
                 else PYPROJECT["project"]["optional-dependencies"][group])
        for spec in specs:
            r = Requirement(spec.split("#")[0].strip())
            out[canonicalize_name(r.name)] = r
    return out


def imported_modules() -> dict[str, set[str]]:
    """Return top-level module name -> files importing it, over kit/, widgets/ and every notebook's code."""
    found: dict[str, set[str]] = {}

    def scan(source: str, where: str) -> None:
        for node in ast.walk(ast.parse(source)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(where)

    for p in sorted([*(ROOT / "kit").rglob("*.py"), *(ROOT / "widgets").rglob("*.py")]):
        scan(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
    for p in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in p.parts:
            continue
        for cell in json.loads(p.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                src = "".join(cell["source"])
                scan("\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))),
                     str(p.relative_to(ROOT)))
    return {m: w for m, w in found.items()
            if m not in sys.stdlib_module_names and m not in ("kit", "widgets", "__future__")}


def installed_closure(names: set[str]) -> set[str]:
    """Return the distributions ``names`` install: themselves and their requirements, transitively (as installed
    here; markers for extras are not followed)."""
    seen, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for spec in reqs:
            r = Requirement(spec)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return seen


def test_binder_requirements_satisfy_every_import():
    binder = binder_requirements()
    closure = installed_closure(set(binder))
    by_module = md.packages_distributions()
    optional = {n for g in EXTRAS_OFF_BINDER for n in pyproject_requirements(g)}
    missing = []
    for module, where in sorted(imported_modules().items()):
        dists = {canonicalize_name(d) for d in by_module.get(module, [])}
        if not dists:
            if canonicalize_name(module) in optional:
                continue  # an optional extra's module, imported only where its feature is used
            missing.append(f"{module} (imported by {sorted(where)[:3]}) is not installed here at all")
        elif not dists & closure:
            missing.append(f"{module} ({'/'.join(sorted(dists))}, imported by {sorted(where)[:3]})")
    assert not missing, "binder/requirements.txt does not install:\n" + "\n".join(missing)


def test_binder_pins_agree_with_pyproject():
    binder = binder_requirements()
    wanted = pyproject_requirements("dependencies", "lab")
    absent = sorted(set(wanted) - set(binder))
    assert not absent, f"binder/requirements.txt lacks {absent} (in pyproject's dependencies or lab extra)"
    extra = sorted(set(binder) - set(wanted))
    assert not extra, f"binder/requirements.txt has {extra}, which pyproject.toml does not declare"
    differ = [f"{n}: binder {binder[n].specifier} vs pyproject {wanted[n].specifier}"
              for n in wanted if str(binder[n].specifier) != str(wanted[n].specifier)]
    assert not differ, "pins differ:\n" + "\n".join(differ)
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu", "CPU torch wheels first"
    assert not any(ln.startswith(("-e", "-r", "-c", ".")) for ln in lines), "no local references (image cache)"


def test_binder_runtime_matches_requires_python():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert m, runtime
    low = re.search(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert (int(m[1]), int(m[2])) >= (int(low[1]), int(low[2]))


# ------------------------------------------------------------------------------------------ the Binder link

@pytest.mark.parametrize("url", ["https://github.com/ada/kit", "https://github.com/ada/kit.git",
                                 "git@github.com:ada/kit.git", "ssh://git@github.com/ada/kit",
                                 "https://token@github.com/ada/kit.git/"])
def test_github_remotes_are_read(url):
    assert github_repo(url) == ("ada", "kit")


@pytest.mark.parametrize("url", ["/srv/git/kit", "https://gitlab.com/ada/kit", "file:///tmp/kit.git", ""])
def test_other_remotes_have_no_binder_link(url):
    assert github_repo(url) is None


def test_binder_url_opens_the_tour_or_an_explore_app():
    assert binder_url(("ada", "kit"), ref="v1") == \
        "https://mybinder.org/v2/gh/ada/kit/v1?urlpath=lab/tree/notebooks/00_start_here.ipynb"
    assert binder_url(("ada", "kit"), ref="main", voila="trajectory").endswith(
        "?urlpath=voila/render/notebooks/trajectory/03_explore.ipynb")


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_binder_url_command_reads_the_remote(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "notebooks" / "00_start_here.ipynb").write_text("{}")
    _git("init", "-q", "-b", "main", cwd=repo)
    monkeypatch.setenv("KIT_ROOT", str(repo))
    assert main(["binder-url"]) == 2
    assert "no GitHub remote" in capsys.readouterr().err
    _git("remote", "add", "origin", "git@github.com:ada/kit.git", cwd=repo)
    assert main(["binder-url", "--ref", "v0.1"]) == 0
    assert capsys.readouterr().out.strip() == \
        "https://mybinder.org/v2/gh/ada/kit/v0.1?urlpath=lab/tree/notebooks/00_start_here.ipynb"
    (repo / "README.md").write_text(f"# kit\n\n{BEGIN}\nold\n{END}\n\nmore\n")
    assert main(["binder-url", "--readme"]) == 0
    text = (repo / "README.md").read_text()
    assert "](https://mybinder.org/v2/gh/ada/kit/main?urlpath=lab/tree/notebooks/00_start_here.ipynb)" in text
    assert "old" not in text and text.endswith("\n\nmore\n")


def test_readme_binder_block_is_built_from_the_remote():
    """No placeholder: the block is what `python -m kit binder-url --readme` writes for this clone's remote (a
    clone without a GitHub remote says how to get the link)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "OWNER" not in text and "<owner>/<repo>/" not in text.split(BEGIN)[0]
    assert BEGIN in text and END in text, "README.md needs its Binder block"
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == readme_block(remote_github_repo(ROOT)), \
        "README's Binder block is stale: run `python -m kit binder-url --readme`"
