"""Warm a class feature cache once, so that a whole class reads features instead of computing them.

    python tools/warm_class_cache.py /srv/tplib-class-cache            # full profile, notebooks 04-06
    python tools/warm_class_cache.py DIR --profile ci notebooks/04_*.ipynb

It runs the solution notebooks top to bottom (outputs are not saved) with
``TPLIB_CACHE=DIR``: every feature matrix they extract (the networks, layers, pooling
and data subset of the chosen profile) lands in ``DIR/features/``. Then give the
students ``TPLIB_SHARED_CACHE=DIR``, read-only for them (on a JupyterHub, in the
single-user environment; ``chmod -R a-w DIR`` once warmed). Their kernels read a
feature matrix from there when its key matches, and compute what is missing into
their own ``TPLIB_CACHE``, saying so on the ``tplib`` logger: a partly warmed class
cache, a data set that changed since, or a damaged entry (checksums are checked on
every read) is never used blindly.

A key covers the weights' numbers and every image file's resolved path, size and
modification time: warm with the data folders the students will read (the same
``TPLIB_REAL_DATA`` or ``../shared/data``) and the same profile and precision.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from refresh_notebooks import execute, patch_message_waits  # noqa: E402

# The notebooks whose cells extract features of the data sets (01-03 use a few photos).
DEFAULT_NOTEBOOKS = ("04_*.ipynb", "05_*.ipynb", "06_*.ipynb")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cache", type=Path, help="the class cache folder (created if missing)")
    ap.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: 04, 05, 06)")
    ap.add_argument("--profile", default="full", choices=("full", "quick", "ci"),
                    help="the run profile the students will use (default: full)")
    args = ap.parse_intermixed_args(argv)  # notebooks may follow --profile
    cache = args.cache.expanduser().absolute()
    cache.mkdir(parents=True, exist_ok=True)
    paths = args.notebooks or [p for pattern in DEFAULT_NOTEBOOKS
                               for p in sorted((REPO / "notebooks").glob(pattern))]
    patch_message_waits()
    for path in paths:
        print(f"{path.name}: running in the {args.profile} profile into {cache} ...", flush=True)
        _, seconds = execute(path.resolve(), args.profile, {"TPLIB_CACHE": str(cache)})
        print(f"{path.name}: done ({seconds:.0f} s)", flush=True)
    entries = sorted(p for p in (cache / "features").iterdir() if p.is_dir() and "." not in p.name)
    size = sum(f.stat().st_size for e in entries for f in e.iterdir())
    print(f"{cache}: {len(entries)} feature matrices, {size / 1e6:.1f} MB; "
          f"students: TPLIB_SHARED_CACHE={cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
