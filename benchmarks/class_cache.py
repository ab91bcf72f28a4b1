"""Many students, one class cache: N concurrent kernels run a notebook against it.

    python benchmarks/class_cache.py                          # 8 kernels, notebook 04, full profile
    python benchmarks/class_cache.py --kernels 4 --profile ci

Warms a class cache once (``tools/warm_class_cache.py``, the same notebook and profile;
``--cache DIR`` reuses a warm one), snapshots it, then runs the notebook in 1 kernel
and in N kernels at once, each with its own empty ``TPLIB_CACHE`` and
``TPLIB_SHARED_CACHE`` pointing at the class cache. Prints, measured side by side in
this run: the wall time of N against 1 (a ratio), each kernel's peak memory, how many
feature matrices each kernel computed (entries written to its own cache: 0 when every
matrix came from the class cache), whether the class cache was left as it was, and
whether every kernel printed the same results (compared as nbval compares them: times,
rates and paths aside). Exit status 1 when a kernel failed,
recomputed a matrix, changed the class cache or printed other numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run in each kernel's process: the notebook, then its peak memory (the kernel's own).
RUNNER = """
import json, re, resource, sys
sys.path.insert(0, {tools!r})
from pathlib import Path
from refresh_notebooks import execute, patch_message_waits
import nbformat
from nbval.plugin import get_sanitize_patterns
patch_message_waits()
# what nbval compares: times, rates and paths differ from kernel to kernel, results do not
rules = get_sanitize_patterns(Path({sanitize!r}).read_text(encoding="utf-8"))
path = Path({notebook!r})
nb = nbformat.read(path, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(
    "import resource; print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"))
copy = Path({workdir!r}) / path.name
nbformat.write(nb, copy)
ran, seconds = execute(copy, {profile!r})
texts = []
for cell in ran.cells:
    if cell.cell_type != "code" or "NBVAL_IGNORE_OUTPUT" in cell.source:
        continue
    # one text per cell and stream: how a stream is cut into outputs depends on timing
    parts = {{}}
    for out in cell.get("outputs", []):
        key = out.get("name", "data")
        text = out.get("text", "") + out.get("data", {{}}).get("text/plain", "")
        parts[key] = parts.get(key, "") + text
    for key in sorted(parts):
        text = parts[key]
        for regex, replace in rules:
            text = re.sub(regex, replace, text)
        texts.append(text)
peak = next(int(t.split()[1]) for t in texts if t.startswith("PEAK_RSS_MB"))
print(json.dumps({{"seconds": seconds, "peak_mb": peak,
                   "results": [t for t in texts if not t.startswith("PEAK_RSS_MB")]}}))
"""


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: (size, modification time in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def own_entries(cache: Path) -> int:
    """Feature matrices written to a kernel's own cache (finished or partial)."""
    features = cache / "features"
    return sum(1 for p in features.iterdir() if p.is_dir()) if features.is_dir() else 0


def run_kernel(notebook: Path, profile: str, class_cache: Path, work: Path) -> dict:
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TPLIB_CACHE"))}
    env.update(TPLIB_CACHE=str(work / "own-cache"), TPLIB_SHARED_CACHE=str(class_cache))
    script = RUNNER.format(tools=str(REPO / "tools"), notebook=str(notebook), workdir=str(work),
                           profile=profile, sanitize=str(REPO / "notebooks" / "nbval_sanitize.cfg"))
    t0 = time.perf_counter()
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                              cwd=work)
        # Kernels started at the same moment can race for the same free port (jupyter_client
        # picks ports, then binds them): a kernel that never started is started again.
        if proc.returncode == 0 or "_bind_socket" not in proc.stderr:
            break
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr[-3000:], "wall": wall, "own_entries": -1}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"ok": True, "wall": wall, "own_entries": own_entries(work / "own-cache"), **result}


def measure(kernels: int, profile: str, notebook: Path, cache: Path | None, work: Path) -> dict:
    """The whole measurement (see the module docstring); a dict of its numbers."""
    if cache is None:
        cache = work / "class-cache"
        warm = subprocess.run([sys.executable, str(REPO / "tools" / "warm_class_cache.py"), str(cache),
                               "--profile", profile, str(notebook)], capture_output=True, text=True)
        if warm.returncode != 0:
            raise SystemExit(f"warming the class cache failed:\n{warm.stdout}\n{warm.stderr[-3000:]}")
    before = snapshot(cache)
    single = run_kernel(notebook, profile, cache, work / "single")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(kernels) as pool:
        many = list(pool.map(lambda i: (time.sleep(i), run_kernel(notebook, profile, cache,
                                                                     work / f"k{i}"))[1],
                             range(kernels)))  # started a second apart, as students would
    wall_many = time.perf_counter() - t0
    runs = [single, *many]
    first = single.get("results") or []
    differing = sorted({text for r in runs for text in (r.get("results") or []) if text not in first})
    return {
        "kernels": kernels, "profile": profile, "notebook": notebook.name,
        "all_finished": all(r["ok"] for r in runs),
        "errors": [r["error"] for r in runs if not r["ok"]],
        "recomputed": sum(max(r["own_entries"], 0) for r in runs),
        "class_cache_unchanged": snapshot(cache) == before,
        "same_results": len({json.dumps(r.get("results")) for r in runs}) == 1,
        "differing_outputs": differing[:5],
        "wall_1": single["wall"], "wall_n": wall_many,
        "peak_mb": [r.get("peak_mb") for r in runs],
        "matrices_in_class_cache": own_entries(cache),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernels", type=int, default=8)
    ap.add_argument("--profile", default="full", choices=("full", "quick", "ci"))
    ap.add_argument("--notebook", type=Path, default=REPO / "notebooks" / "04_relu7_svm_15scene.ipynb")
    ap.add_argument("--cache", type=Path, help="a warm class cache (default: warm a new one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tplib-class-cache-") as tmp:
        r = measure(args.kernels, args.profile, args.notebook.resolve(), args.cache, Path(tmp))
    print(f"{r['notebook']}, {r['profile']} profile, class cache of {r['matrices_in_class_cache']} "
          f"feature matrices")
    print(f"kernels finished: {'all' if r['all_finished'] else 'NOT ALL'}; feature matrices "
          f"recomputed: {r['recomputed']}; class cache unchanged: {r['class_cache_unchanged']}; "
          f"same results in every kernel: {r['same_results']}")
    print(f"wall time: 1 kernel {r['wall_1']:.1f} s, {r['kernels']} kernels at once "
          f"{r['wall_n']:.1f} s ({r['wall_n'] / r['wall_1']:.2f}x)")
    print(f"peak memory per kernel: {min(r['peak_mb'])}-{max(r['peak_mb'])} MB")
    for err in r["errors"]:
        print(err, file=sys.stderr)
    good = r["all_finished"] and r["recomputed"] == 0 and r["class_cache_unchanged"] and r["same_results"]
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
