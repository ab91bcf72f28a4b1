"""One command points the whole workbook at the repository where it is published.

    python tools/repository_links.py --set https://github.com/ME/my-lab
                                                # pyproject.toml, the notebooks' Colab
                                                # badges and install cells, the README's
                                                # links, then the student notebooks
    python tools/repository_links.py            # the same from pyproject.toml's URL
    python tools/repository_links.py --check    # exit 1 if anything disagrees

The repository is named once, in ``pyproject.toml`` (``[project.urls] Repository``).
Each solution notebook uses it twice: its "Open in Colab" badge
(``https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/...``) and
the ``REPO_URL = "..."`` line of its setup cell (what Colab installs tplib from); the
README links to the student notebooks on Colab. After forking, run ``--set`` once.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from student_notebooks import NAME, read, render  # noqa: E402
from student_notebooks import main as make_students  # noqa: E402

GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)/?$")
URL_LINE = re.compile(r'^Repository\s*=\s*"(https://github\.com/([^/"]+)/([^/"]+?))/?"\s*$', re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/")
REPO_URL = re.compile(r'^REPO_URL = "[^"]*"$', re.M)


def repository(pyproject: Path = REPO / "pyproject.toml") -> tuple[str, str]:
    """(https URL, "owner/name") of ``[project.urls] Repository``."""
    m = URL_LINE.search(pyproject.read_text(encoding="utf-8"))
    if m is None:
        raise SystemExit(f"{pyproject}: no `Repository = \"https://github.com/OWNER/NAME\"` line")
    return m.group(1), f"{m.group(2)}/{m.group(3)}"


def set_repository(url: str, pyproject: Path = REPO / "pyproject.toml") -> None:
    """Write ``url`` (``https://github.com/OWNER/NAME``) into pyproject.toml's Repository line."""
    m = GITHUB.match(url.strip())
    if m is None:
        raise SystemExit(f"--set {url!r}: give the GitHub address, https://github.com/OWNER/NAME "
                         "(Colab opens notebooks from GitHub)")
    url = f"https://github.com/{m.group(1)}/{m.group(2).removesuffix('.git')}"
    text = pyproject.read_text(encoding="utf-8")
    if URL_LINE.search(text) is None:
        repository(pyproject)  # raises with the message
    pyproject.write_text(URL_LINE.sub(f'Repository = "{url}"', text), encoding="utf-8")


def relink(source: str, url: str, slug: str) -> str:
    """``source`` with its Colab links and REPO_URL line pointing at ``url``."""
    source = BADGE.sub(f"https://colab.research.google.com/github/{slug}/blob/", source)
    return REPO_URL.sub(f'REPO_URL = "{url}"', source)


def _targets() -> list[tuple[Path, bytes, bytes]]:
    """(file, what it holds, what it should hold) for every file that names the repository."""
    url, slug = repository()
    out = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        if not NAME.match(path.name):
            continue
        nb = read(path)
        for cell in nb.cells:
            cell.source = relink(cell.source, url, slug)
        out.append((path, path.read_bytes(), render(nb)))
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    out.append((readme, text.encode("utf-8"), relink(text, url, slug).encode("utf-8")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 on a mismatch")
    ap.add_argument("--set", metavar="URL", help="the repository's GitHub address: written to "
                    "pyproject.toml, then everywhere else")
    args = ap.parse_args(argv)
    if args.set and args.check:
        ap.error("--set writes, --check does not: give one of them")
    if args.set:
        set_repository(args.set)
    url, _ = repository()
    stale = [(path, want) for path, have, want in _targets() if have != want]
    for path, want in stale:
        if not args.check:
            path.write_bytes(want)
        verb = "does not point at" if args.check else "now points at"
        print(f"{path.relative_to(REPO)} {verb} {url}")
    if args.check:
        if stale:
            print("run python tools/repository_links.py (it regenerates the student notebooks too)")
        return 1 if stale else 0
    if stale:
        return make_students([])  # student notebooks carry the same badges and setup cells
    return 0


if __name__ == "__main__":
    sys.exit(main())
