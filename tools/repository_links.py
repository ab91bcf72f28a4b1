"""Point the notebooks' Colab badges and install cells at the repository pyproject.toml names.

    python tools/repository_links.py            # rewrite notebooks/NN_*.ipynb, then run
                                                # tools/student_notebooks.py
    python tools/repository_links.py --check    # exit 1 if a notebook disagrees

The repository is named once, in ``pyproject.toml`` (``[project.urls] Repository``).
Each solution notebook uses it twice: its "Open in Colab" badge
(``https://colab.research.google.com/github/OWNER/REPO/blob/main/notebooks/...``) and
the ``REPO_URL = "..."`` line of its setup cell (what Colab installs tplib from). After
forking the workbook, change that one line and run this tool.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from student_notebooks import NAME, read, render  # noqa: E402

URL_LINE = re.compile(r'^Repository\s*=\s*"(https://github\.com/([^/"]+)/([^/"]+?))/?"\s*$', re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/")
REPO_URL = re.compile(r'^REPO_URL = "[^"]*"$', re.M)


def repository(pyproject: Path = REPO / "pyproject.toml") -> tuple[str, str]:
    """(https URL, "owner/name") of ``[project.urls] Repository``."""
    m = URL_LINE.search(pyproject.read_text(encoding="utf-8"))
    if m is None:
        raise SystemExit(f"{pyproject}: no `Repository = \"https://github.com/OWNER/NAME\"` line")
    return m.group(1), f"{m.group(2)}/{m.group(3)}"


def relink(source: str, url: str, slug: str) -> str:
    """``source`` with its Colab badge and REPO_URL line pointing at ``url``."""
    source = BADGE.sub(f"https://colab.research.google.com/github/{slug}/blob/", source)
    return REPO_URL.sub(f'REPO_URL = "{url}"', source)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 on a mismatch")
    args = ap.parse_args(argv)
    url, slug = repository()
    stale = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        if not NAME.match(path.name):
            continue
        nb = read(path)
        for cell in nb.cells:
            cell.source = relink(cell.source, url, slug)
        if render(nb) != path.read_bytes():
            stale.append(path)
            if not args.check:
                path.write_bytes(render(nb))
    for path in stale:
        verb = "does not point at" if args.check else "now points at"
        print(f"{path.relative_to(REPO)} {verb} {url}")
    if args.check and stale:
        print("run python tools/repository_links.py, then python tools/student_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
