"""Generate the student notebooks from the solution notebooks.

    python tools/student_notebooks.py            # notebooks/NN_*.ipynb -> notebooks/student/
    python tools/student_notebooks.py --check    # exit 1 if a student notebook is stale
    python tools/student_notebooks.py DIR_OR_NOTEBOOK ... [--out DIR]

The solution notebooks are the source of truth; student notebooks are never edited by
hand. The markers are nbgrader's, so instructors can still use nbgrader instead:

- code cell: the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (any
  indentation) become ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` at the
  marker's indentation, so a function or class body stays valid Python;
- markdown cell: the same region becomes ``YOUR ANSWER HERE`` (reference answers);
- outputs, execution counts, cell timings and widget state are dropped; cell ids
  and the rest of the metadata stay, so regenerating gives small diffs;
- an "Open in Colab" link to ``notebooks/NN_name.ipynb`` points at
  ``notebooks/student/NN_name.ipynb``.

Output is byte-stable. ``--check`` writes nothing and prints one line per stale,
missing or extra student notebook; both modes fail on unbalanced markers. Default
output folder: ``student/`` beside each solution notebook. Needs only nbformat.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import nbformat.reader

REPO = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^\d\d_[^/\\]+\.ipynb$")
MARKER = re.compile(r"^(\s*)###\s*(BEGIN|END) SOLUTION\s*$")
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = "YOUR ANSWER HERE"
COLAB = re.compile(r"(https://colab\.research\.google\.com/github/[^\s)\"'>]*?/notebooks/)(\d\d_[^/\s)\"'>]+\.ipynb)")
HINT = "run python tools/student_notebooks.py"


class MarkerError(ValueError):
    """A solution region that is not closed, not opened, nested or misspelt."""


def _regions(source: str, where: str):
    """Yield ``(line, kind, indent)``: kind is None, 'begin', 'inside' or 'end'."""
    kind = None
    for i, line in enumerate(source.split("\n")):
        m = MARKER.match(line)
        if m is None and re.search(r"(BEGIN|END)\s+SOLUTION", line):
            raise MarkerError(f"{where}, line {i + 1}: malformed marker {line.strip()!r}")
        if m and m.group(2) == "BEGIN":
            if kind in ("begin", "inside"):
                raise MarkerError(f"{where}, line {i + 1}: BEGIN SOLUTION inside a solution region")
            kind = "begin"
        elif m:
            if kind not in ("begin", "inside"):
                raise MarkerError(f"{where}, line {i + 1}: END SOLUTION without BEGIN SOLUTION")
            kind = "end"
        else:
            kind = "inside" if kind in ("begin", "inside") else None
        yield line, kind, (m.group(1) if m else "")
    if kind in ("begin", "inside"):
        raise MarkerError(f"{where}: BEGIN SOLUTION without END SOLUTION")


def strip_solutions(source: str, cell_type: str, where: str) -> str:
    """The student version of one cell's source."""
    out = []
    for line, kind, indent in _regions(source, where):
        if kind == "begin":
            stub = CODE_STUB if cell_type == "code" else [TEXT_STUB]
            out += [indent + s for s in stub]
        elif kind is None:
            out.append(line)
    return "\n".join(out)


def solution_lines(nb) -> set[str]:
    """Non-trivial lines (stripped, >= 12 chars, not comments) found only inside regions."""
    inside, outside = set(), set()
    for i, cell in enumerate(nb.cells):
        for line, kind, _ in _regions(cell.source, f"cell {i}"):
            (inside if kind == "inside" else outside).add(line.strip())
    return {s for s in inside - outside if len(s) >= 12 and not s.startswith("#")}


def find_leaks(solution_nb, student_nb) -> list[str]:
    """What of the solutions shows in the student notebook (sources and outputs); [] if clean.

    Arguments are notebooks or paths. Reports solution markers and any solution line
    (see ``solution_lines``) that appears as a line of a student cell or output.
    """
    sol, stu = (read(n) if isinstance(n, (str, Path)) else n for n in (solution_nb, student_nb))
    secret = solution_lines(sol)
    leaks = []
    for i, cell in enumerate(stu.cells):
        outs = cell.get("outputs", [])
        texts = [cell.source] + [str(o.get("text", "")) for o in outs]
        texts += [str(v) for o in outs for v in o.get("data", {}).values()]
        for line in "\n".join(texts).split("\n"):
            if re.search(r"(BEGIN|END)\s+SOLUTION", line):
                leaks.append(f"cell {i}: solution marker {line.strip()!r}")
            elif line.strip() in secret:
                leaks.append(f"cell {i}: solution line {line.strip()!r}")
    return leaks


def read(path: Path):
    """The notebook as stored (``nbformat.read`` gives cells without an id random ones)."""
    return nbformat.convert(nbformat.reader.reads(Path(path).read_text(encoding="utf-8")), 4)


def make_student(nb, name: str):
    """The student notebook (a new object) for the solution notebook ``nb``."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        if nb.nbformat_minor >= 5 and "id" not in cell:
            cell.id = f"cell-{i}"  # stable, unlike the random one nbformat would add
        cell.source = strip_solutions(cell.source, cell.cell_type, f"{name} cell {i}")
        for key in ("execution", "ExecuteTime"):  # run timings (nbclient, JupyterLab)
            cell.metadata.pop(key, None)
        if cell.cell_type == "markdown":
            cell.source = COLAB.sub(r"\1student/\2", cell.source)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def render(nb) -> bytes:
    text = nbformat.writes(nb)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def _show(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def plan(paths: list[Path], out: Path | None) -> tuple[dict[Path, Path], set[Path]]:
    """``({student: solution}, {folders whose NN_*.ipynb are all generated})``."""
    pairs, owned = {}, set()
    for p in paths:
        sources = sorted(q for q in p.glob("*.ipynb") if NAME.match(q.name)) if p.is_dir() else [p]
        target = out or (p if p.is_dir() else p.parent) / "student"
        if p.is_dir():
            owned.add(target.resolve())
        pairs.update({(target / s.name).resolve(): s for s in sources})
    return pairs, owned


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="solution notebooks or folders (default: notebooks/)")
    ap.add_argument("--out", type=Path, help="student folder (default: student/ beside the solutions)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is stale")
    args = ap.parse_args(argv)
    pairs, owned = plan(args.paths or [REPO / "notebooks"], args.out)
    problems, wanted = [], {}
    for student, solution in sorted(pairs.items()):
        try:
            wanted[student] = render(make_student(read(solution), _show(solution)))
        except MarkerError as e:
            problems.append(f"{e}: fix the markers")
    extra = sorted(q.resolve() for d in owned if d.is_dir() for q in d.glob("*.ipynb")
                   if NAME.match(q.name) and q.resolve() not in pairs)
    changes = [(p, data, "is out of date" if p.exists() else "is missing")
               for p, data in wanted.items() if not p.exists() or p.read_bytes() != data]
    changes += [(p, None, "has no solution notebook") for p in extra]
    for path, data, state in changes:
        if args.check:
            problems.append(f"{_show(path)} {state}: {HINT}")
        elif data is None:
            path.unlink()
            print(f"removed {_show(path)} (no solution notebook)")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {_show(path)}")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
