"""The Binder link of this clone, built from its git remote: ``python -m kit binder-url``.

Binder builds the image from ``binder/`` (CPU torch wheels, about 2 GB of memory per user) and opens
``notebooks/00_start_here.ipynb`` in JupyterLab, or an explore notebook in Voila.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from kit.catalog import repo_root

BINDER = "https://mybinder.org/v2/gh"
BADGE = "https://mybinder.org/badge_logo.svg"
START = "notebooks/00_start_here.ipynb"
BEGIN, END = "<!-- binder: written by `python -m kit binder-url --readme` -->", "<!-- /binder -->"
_GITHUB = re.compile(r"^(?:https?://(?:[^@/]+@)?github\.com/|git@github\.com:|ssh://git@github\.com/)"
                     r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$")
HOW_TO = ("run `python -m kit binder-url` in a clone whose `origin` is the repository on GitHub: it prints the "
          "Binder link (JupyterLab on `notebooks/00_start_here.ipynb`), `--voila SERIES` links an explore notebook "
          "as an app, and `--readme` writes the badge here")


def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd or repo_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def github_repo(url: str) -> tuple[str, str] | None:
    """Return (owner, repo) of a GitHub remote URL (https, ssh or scp-like), or None for any other URL."""
    m = _GITHUB.match(url.strip())
    return (m["owner"], m["repo"]) if m else None


def remote_github_repo(cwd: Path | None = None) -> tuple[str, str] | None:
    """Return (owner, repo) of ``origin`` (else the first remote) when it is on GitHub, else None."""
    names = (_git("remote", cwd=cwd) or "").split()
    for name in (["origin"] if "origin" in names else []) + [n for n in names if n != "origin"]:
        url = _git("remote", "get-url", name, cwd=cwd)
        found = github_repo(url) if url else None
        if found:
            return found
    return None


def binder_url(owner_repo: tuple[str, str] | None = None, ref: str | None = None, voila: str | None = None,
               cwd: Path | None = None) -> str:
    """Return the mybinder.org link of the GitHub repository (default: this clone's remote) at ``ref`` (default:
    the current branch, else main), opening 00_start_here in JupyterLab, or ``voila``'s explore notebook in Voila.

    Raises ``ValueError`` saying how to set a remote when the clone has no GitHub remote.
    """
    owner_repo = owner_repo or remote_github_repo(cwd)
    if owner_repo is None:
        raise ValueError("this clone has no GitHub remote, so it has no Binder link yet: add one with "
                         "`git remote add origin https://github.com/<owner>/<repo>` and push, then "
                         "`python -m kit binder-url` prints the link")
    if ref is None:
        branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd)
        ref = branch if branch and branch != "HEAD" else "main"
    path = f"voila/render/notebooks/{voila}/03_explore.ipynb" if voila else f"lab/tree/{START}"
    owner, repo = owner_repo
    return f"{BINDER}/{owner}/{repo}/{ref}?urlpath={path}"


def readme_block(owner_repo: tuple[str, str] | None, ref: str = "main") -> str:
    """Return the README's Binder block: the badge for the GitHub repository, or how to get the link."""
    if owner_repo is None:
        body = f"Binder: this clone has no GitHub remote, so there is no link to print here; {HOW_TO}."
    else:
        body = f"[![Binder]({BADGE})]({binder_url(owner_repo, ref=ref)}) (JupyterLab on Binder, CPU only; {HOW_TO}.)"
    return f"{BEGIN}\n{body}\n{END}"


def update_readme(readme: Path | None = None) -> tuple[Path, str | None]:
    """Write the Binder block into README.md (between its markers) for this clone's remote; return (path, url)."""
    readme = readme or repo_root() / "README.md"
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme}: no Binder block ({BEGIN} ... {END}) to write into")
    owner_repo = remote_github_repo(readme.parent)
    block = readme_block(owner_repo)
    head, rest = text.split(BEGIN, 1)
    readme.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")
    return readme, binder_url(owner_repo, ref="main") if owner_repo else None
