"""Give the solution notebooks the cell metadata nbgrader grades with.

    python tools/nbgrader_metadata.py            # rewrite notebooks/NN_*.ipynb in place
    python tools/nbgrader_metadata.py --check    # exit 1 if a notebook lacks it or is stale
    python tools/nbgrader_metadata.py NOTEBOOK_OR_DIR ... [--check]

The roles follow from what a cell holds, so a new exercise gets its metadata by running
this tool (``tests/test_nbgrader_metadata.py`` fails until it is run):

- a code cell with a ``### BEGIN SOLUTION`` region: an exercise, a *solution cell*
  (``solution: true``, not graded itself: its check is);
- a markdown cell with a solution region: a written answer, a *manually graded answer*
  (``solution: true, grade: true``, points);
- a code cell that calls a self-check, ``check_*(...)``: an *autograded test*
  (``grade: true, locked: true``, points). Under nbgrader a ``✘`` verdict raises
  (``tplib.checks``), so the test's points are lost;
- a code cell that calls ``expect_*(...)`` only: a *read-only* cell (``locked: true``):
  it checks a result of the lab's own code, worth no points;
- any other cell carries no ``nbgrader`` metadata (the tool removes stale metadata).

``grade_id`` is the cell's id (unique and stable already). ``points`` default to
:data:`DEFAULT_POINTS`; a value an instructor has set in a cell is kept. A cell that
holds both a solution region and a check is refused: the test cell is locked, so the
student's answer must live in a cell of its own. Nothing else of the notebook changes,
and the output is byte-stable (the notebooks' own formatting). Needs only nbformat.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_notebooks import NAME, _show, read, render  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA_VERSION = 3  # nbgrader >= 0.6's cell metadata schema
DEFAULT_POINTS = 1
SOLUTION = re.compile(r"^\s*###\s*BEGIN SOLUTION\s*$", re.M)
# a statement that calls a check: tplib.checks.check_x(...), checks.check_x(...), check_x(...)
CALL = re.compile(r"^\s*(?:tplib\.)?(?:checks\.)?(check|expect)_\w+\(", re.M)
HINT = "run python tools/nbgrader_metadata.py"


class RoleError(ValueError):
    """A cell whose role is ambiguous (an exercise and its check in one cell)."""


def role(cell, where: str) -> str | None:
    """'exercise', 'answer', 'test', 'readonly' or None (see the module docstring)."""
    source = cell.source
    has_solution = bool(SOLUTION.search(source))
    calls = {m.group(1) for m in CALL.finditer(source)} if cell.cell_type == "code" else set()
    if has_solution and calls:
        raise RoleError(f"{where}: a solution region and a check in one cell; put the check "
                        "in the next cell (it is locked for the student)")
    if has_solution:
        return "exercise" if cell.cell_type == "code" else "answer"
    if "check" in calls:
        return "test"
    return "readonly" if calls else None


def metadata(cell, kind: str) -> dict:
    """The ``nbgrader`` metadata of a cell of role ``kind`` (points kept if already set)."""
    meta = {"grade": kind in ("answer", "test"), "grade_id": cell.id,
            "locked": kind in ("test", "readonly"), "schema_version": SCHEMA_VERSION,
            "solution": kind in ("exercise", "answer"), "task": False}
    if meta["grade"]:
        meta["points"] = cell.metadata.get("nbgrader", {}).get("points", DEFAULT_POINTS)
    return meta


def annotate(nb, name: str):
    """``nb`` with every cell's ``nbgrader`` metadata set from its role (in place)."""
    for i, cell in enumerate(nb.cells):
        if "id" not in cell:
            raise RoleError(f"{name} cell {i}: no cell id (nbformat 4.5 ids are the grade ids)")
        kind = role(cell, f"{name} cell {i}")
        if kind is None:
            cell.metadata.pop("nbgrader", None)
        else:
            cell.metadata["nbgrader"] = metadata(cell, kind)
    return nb


def points(nb) -> dict[str, float]:
    """``{grade_id: points}`` of the graded cells (tests and written answers)."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="solution notebooks or folders (default: notebooks/)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is stale")
    args = ap.parse_args(argv)
    notebooks = []
    for p in args.paths or [REPO / "notebooks"]:
        notebooks += sorted(q for q in p.glob("*.ipynb") if NAME.match(q.name)) if p.is_dir() else [p]
    problems = []
    for path in notebooks:
        try:
            data = render(annotate(read(path), _show(path)))
        except RoleError as e:
            problems.append(str(e))
            continue
        if data == path.read_bytes():
            continue
        if args.check:
            problems.append(f"{_show(path)} lacks nbgrader's cell metadata or has stale metadata: {HINT}")
        else:
            path.write_bytes(data)
            print(f"wrote {_show(path)}")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
