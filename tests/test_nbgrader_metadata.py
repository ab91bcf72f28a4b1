"""tools/nbgrader_metadata.py: the solution notebooks carry nbgrader's cell metadata.

Roles come from the cells' contents (solution regions, check calls), so a new exercise
fails here until the tool is run. No Jupyter kernel is needed.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "nbgrader_metadata.py"

_spec = importlib.util.spec_from_file_location("nbgrader_metadata", TOOL)
nm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nm)

SOLUTIONS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if nm.NAME.match(p.name))


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s, id=f"c{i}") if kind == "code"
                else nbformat.v4.new_markdown_cell(s, id=f"c{i}")
                for i, (kind, s) in enumerate(cells)]
    return nb


def test_roles_from_cell_contents():
    nb = nm.annotate(_notebook(
        ("markdown", "**Exercise.** Compute x."),
        ("code", "import tplib\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
        ("code", "tplib.checks.check_fc_estimate(x)"),
        ("code", "check_layer_sweep(scores, train, test, LAYERS)"),
        ("code", 'tplib.checks.expect_between(acc, 0.9, 1.0, "accuracy")'),
        ("markdown", "**Q1.** Why?"),
        ("markdown", "### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        ("code", "from tplib.checks import check_experiment\nprint(x)"),
    ), "demo")
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    assert meta[0] is None and meta[5] is None and meta[7] is None  # an import is no check
    common = {"schema_version": 3, "task": False}
    assert meta[1] == {**common, "grade": False, "grade_id": "c1", "locked": False, "solution": True}
    for i in (2, 3):
        assert meta[i] == {**common, "grade": True, "grade_id": f"c{i}", "locked": True,
                           "points": 1, "solution": False}
    assert meta[4] == {**common, "grade": False, "grade_id": "c4", "locked": True, "solution": False}
    assert meta[6] == {**common, "grade": True, "grade_id": "c6", "locked": False, "points": 1,
                       "solution": True}
    assert nm.points(nb) == {"c2": 1, "c3": 1, "c6": 1}


def test_points_set_by_an_instructor_stay_and_stale_metadata_goes():
    nb = _notebook(("code", "checks.check_fc_estimate(x)"), ("code", "print(1)"))
    nb.cells[0].metadata["nbgrader"] = {"points": 3, "grade": True}
    nb.cells[1].metadata["nbgrader"] = {"grade": True, "points": 2, "grade_id": "old"}
    nb.cells[1].metadata["tags"] = ["keep-me"]
    nm.annotate(nb, "demo")
    assert nb.cells[0].metadata["nbgrader"]["points"] == 3
    assert nb.cells[1].metadata == {"tags": ["keep-me"]}


def test_a_solution_and_its_check_in_one_cell_are_refused():
    nb = _notebook(("code", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\ntplib.checks.check_fc_estimate(x)"))
    with pytest.raises(nm.RoleError, match="demo cell 0: a solution region and a check in one cell"):
        nm.annotate(nb, "demo")


def test_rewriting_is_byte_identical_and_check_reports_stale_notebooks(tmp_path, capsys):
    path = tmp_path / "01_demo.ipynb"
    path.write_bytes(nm.render(_notebook(("code", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"))))
    assert nm.main([str(tmp_path), "--check"]) == 1
    assert "01_demo.ipynb lacks nbgrader's cell metadata" in capsys.readouterr().err
    assert nm.main([str(tmp_path)]) == 0
    first = path.read_bytes()
    assert nm.main([str(tmp_path)]) == 0 and path.read_bytes() == first
    assert nm.main([str(tmp_path), "--check"]) == 0


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_committed_solution_notebook_carries_current_metadata(solution):
    expected = nm.render(nm.annotate(nm.read(solution), solution.name))
    assert solution.read_bytes() == expected, f"{solution.name}: {nm.HINT}"
    nb = nm.read(solution)
    assert nm.points(nb), "no graded cell"
    exercises = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
                 and c.cell_type == "code"]
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
             and c.cell_type == "code"]
    assert len(tests) >= len(exercises) > 0 or (not exercises and not tests)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_nbgraders_own_validator_accepts_the_metadata(solution):
    pytest.importorskip("nbgrader", reason="nbgrader is in the test extra (pip install -e .[test])")
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(nbformat.read(str(solution), as_version=4))


def test_the_script_runs_from_the_command_line():
    import subprocess

    run = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
