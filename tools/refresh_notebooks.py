"""Run the solution notebooks in the ci profile and store their outputs (what nbval compares).

    python tools/refresh_notebooks.py                      # every notebooks/NN_*.ipynb
    python tools/refresh_notebooks.py notebooks/04_*.ipynb # some of them

Each notebook runs top to bottom in a fresh kernel of this Python, in its own folder,
with ``TPLIB_PROFILE=ci`` (real weights, the fixed real-data subset, fp32 on the CPU)
and without ``MPLBACKEND`` (figures inline, as in Jupyter); a failing cell stops with
its traceback and the notebook is left as it was. The saved widget state is dropped:
every view has a plain call beside it that shows the result without a kernel, and the
state would only grow the file; so would per-cell run timings. The student notebooks
are regenerated afterwards.

Waits for kernel messages in short slices: with some ipykernel / pyzmq versions a
single long wait for a reply can miss the wake-up and stall until the cell timeout.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

REPO = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 600


def patch_message_waits() -> None:
    """Make jupyter_client wait for kernel messages in 0.25 s slices (see the module docstring)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    if getattr(original, "_sliced", False):
        return

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            try:
                return await original(self, timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    get_msg._sliced = True
    AsyncZMQSocketChannel.get_msg = get_msg


def execute(path: Path, profile: str = "ci", env: dict[str, str] | None = None):
    """Run ``path`` top to bottom in a fresh kernel in ``profile``; (notebook, seconds).

    ``env``: more variables for the kernel (``TPLIB_CACHE`` for a class cache, ...).
    Raises nbclient's CellExecutionError, with the traceback, when a cell fails.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    wanted = {"TPLIB_PROFILE": profile, "MPLBACKEND": None, **(env or {})}
    saved = {k: os.environ.get(k) for k in wanted}
    for name, value in wanted.items():  # the kernel copies os.environ when it starts
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return nb, time.perf_counter() - t0


def refresh(path: Path) -> float:
    """Execute ``path`` in place (ci profile); returns the seconds it took."""
    import nbformat

    nb, seconds = execute(path, "ci")
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:  # run timings would make every refresh a diff
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="solution notebooks (default: all)")
    args = ap.parse_args(argv)
    paths = args.paths or sorted(p for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    patch_message_waits()
    for path in paths:
        print(f"{path.name}: running in the ci profile ...", flush=True)
        print(f"{path.name}: outputs stored ({refresh(path.resolve()):.0f} s)", flush=True)
    return subprocess.call([sys.executable, str(REPO / "tools" / "student_notebooks.py")])


if __name__ == "__main__":
    sys.exit(main())
