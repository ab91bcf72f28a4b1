"""tools/student_notebooks.py: student notebooks generated from the solution notebooks.

Fixture solution notebooks: tests/data/notebooks/ (01: code exercises in a function
body, a method and at top level, stored outputs, widget state; 02: markdown answers,
Colab links). No Jupyter kernel is needed here.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "data" / "notebooks"
TOOL = REPO / "tools" / "student_notebooks.py"
HINT = "run python tools/student_notebooks.py"

_spec = importlib.util.spec_from_file_location("student_notebooks", TOOL)
sn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sn)


@pytest.fixture
def solutions(tmp_path) -> Path:
    """A copy of the fixture solution notebooks, in ``tmp/notebooks/``."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for nb in FIXTURES.glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(nb, folder / nb.name)
    return folder


@pytest.fixture
def students(solutions) -> Path:
    assert sn.main([str(solutions)]) == 0
    return solutions / "student"


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def test_code_exercise_in_a_function_body(students):
    cell = read(students / "01_exercises.ipynb").cells[2]
    assert cell.source == (
        "def normalise_rows(rows):\n"
        '    """Scale each row (a list of floats) to unit L2 norm."""\n'
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()"
    )


def test_code_exercise_in_a_method_keeps_the_rest_of_the_class(students):
    cell = read(students / "01_exercises.ipynb").cells[3]
    assert cell.source == (
        "class Accumulator:\n"
        "    def __init__(self):\n"
        "        self.total = 0.0\n"
        "\n"
        "    def add(self, value):\n"
        "        # YOUR CODE HERE\n"
        "        raise NotImplementedError()"
    )


def test_code_exercise_at_top_level_keeps_the_lines_around_it(students):
    cell = read(students / "01_exercises.ipynb").cells[5]
    assert cell.source == (
        "# Mean of the squares of 1..10, rounded to 2 decimals.\n"
        "# YOUR CODE HERE\n"
        "raise NotImplementedError()\n"
        'print("mean square:", mean_square)'
    )


def test_markdown_answers_are_replaced_and_questions_stay(students):
    cells = read(students / "02_questions.ipynb").cells
    assert cells[4].source == (
        "**Question 1.** Why scale feature rows to unit norm before a linear SVM?\n\n"
        "YOUR ANSWER HERE"
    )
    assert cells[5].source == (
        "**Question 2.** Does a larger training set change the extracted features?\n\n"
        "YOUR ANSWER HERE\n\nAnswer in two sentences at most."
    )


def test_colab_links_point_at_the_student_notebooks(students):
    base = "https://colab.research.google.com/github/example/tplib/blob/main/notebooks/"
    first = read(students / "01_exercises.ipynb").cells[0].source
    second = read(students / "02_questions.ipynb").cells[0].source
    assert f"({base}student/01_exercises.ipynb)" in first
    assert f"({base}student/02_questions.ipynb)" in second
    assert f"({base}student/01_exercises.ipynb)" in second  # a link to another notebook
    assert f"{base}0" not in first + second
    assert "https://colab.research.google.com/assets/colab-badge.svg" in first  # the image


def test_outputs_counts_timings_and_widget_state_go_ids_and_metadata_stay(solutions, students):
    for name in ("01_exercises.ipynb", "02_questions.ipynb"):
        sol, stu = read(solutions / name), read(students / name)
        assert [c.id for c in stu.cells] == [c.id for c in sol.cells]
        assert [c.cell_type for c in stu.cells] == [c.cell_type for c in sol.cells]
        assert "widgets" not in stu.metadata
        assert stu.metadata.kernelspec == sol.metadata.kernelspec
        for cell in stu.cells:
            assert "execution" not in cell.metadata  # run timings
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" in read(solutions / "01_exercises.ipynb").metadata  # it was there
    assert "execution" in read(solutions / "01_exercises.ipynb").cells[1].metadata
    assert any(c.get("outputs") for c in read(solutions / "01_exercises.ipynb").cells)


def _python(source: str) -> str:
    """The cell without IPython's magics and shell escapes."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))


def test_student_code_is_valid_python_and_the_exercises_raise(students):
    namespace: dict = {}
    for path in sorted(students.glob("*.ipynb")):
        for i, cell in enumerate(read(path).cells):
            if cell.cell_type == "code":
                compile(_python(cell.source), f"{path.name} cell {i}", "exec")
    cells = read(students / "01_exercises.ipynb").cells
    for i in (1, 2, 3):
        exec(_python(cells[i].source), namespace)
    with pytest.raises(NotImplementedError):
        namespace["normalise_rows"]([[3.0, 4.0]])
    with pytest.raises(NotImplementedError):
        namespace["Accumulator"]().add(1.0)
    with pytest.raises(NotImplementedError):
        exec(_python(cells[5].source), namespace)


def test_regenerating_is_byte_identical_and_check_passes(solutions, students, capsys):
    before = {p.name: p.read_bytes() for p in students.glob("*.ipynb")}
    assert sorted(before) == ["01_exercises.ipynb", "02_questions.ipynb"]
    assert all(data.endswith(b"}\n") for data in before.values())
    assert sn.main([str(solutions)]) == 0
    assert {p.name: p.read_bytes() for p in students.glob("*.ipynb")} == before
    capsys.readouterr()
    assert sn.main([str(solutions), "--check"]) == 0
    assert capsys.readouterr().err == ""


def test_cells_without_ids_get_stable_ones(tmp_path):
    """nbformat would give them random ids, and --check would never pass."""
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"}
    nb = {"cells": [cell, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "01_no_ids.ipynb").write_text(json.dumps(nb))
    assert sn.main([str(tmp_path)]) == 0
    first = (tmp_path / "student" / "01_no_ids.ipynb").read_bytes()
    assert [c["id"] for c in json.loads(first)["cells"]] == ["cell-0", "cell-1"]
    assert sn.main([str(tmp_path)]) == 0 and sn.main([str(tmp_path), "--check"]) == 0
    assert (tmp_path / "student" / "01_no_ids.ipynb").read_bytes() == first


def test_out_and_single_notebook_arguments(solutions, tmp_path):
    out = tmp_path / "elsewhere"
    assert sn.main([str(solutions / "02_questions.ipynb"), "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["02_questions.ipynb"]
    assert sn.main([str(solutions / "02_questions.ipynb"), "--out", str(out), "--check"]) == 0


def test_check_reports_a_stale_notebook_and_writes_nothing(solutions, students, capsys):
    nb = read(solutions / "01_exercises.ipynb")
    nb.cells[4].source += "\nprint('one more line')"
    nbformat.write(nb, str(solutions / "01_exercises.ipynb"))
    before = (students / "01_exercises.ipynb").read_bytes()
    capsys.readouterr()
    assert sn.main([str(solutions), "--check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{students / '01_exercises.ipynb'} is out of date: {HINT}"]
    assert (students / "01_exercises.ipynb").read_bytes() == before
    assert sn.main([str(solutions)]) == 0 and sn.main([str(solutions), "--check"]) == 0


def test_check_reports_missing_and_extra_notebooks_and_generation_mends_both(
        solutions, students, capsys):
    (students / "02_questions.ipynb").unlink()
    shutil.copy(students / "01_exercises.ipynb", students / "07_renamed.ipynb")
    capsys.readouterr()
    assert sn.main([str(solutions), "--check"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{students / '02_questions.ipynb'} is missing: {HINT}",
        f"{students / '07_renamed.ipynb'} has no solution notebook: {HINT}",
    ]
    assert sn.main([str(solutions)]) == 0
    assert sorted(p.name for p in students.iterdir()) == ["01_exercises.ipynb", "02_questions.ipynb"]


@pytest.mark.parametrize("source, problem", [
    ("x = 1\n### BEGIN SOLUTION\ny = 2", "BEGIN SOLUTION without END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: END SOLUTION without BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: BEGIN SOLUTION inside"),
    ("## BEGIN SOLUTION\ny = 2\n### END SOLUTION", "line 1: malformed marker '## BEGIN SOLUTION'"),
])
def test_unbalanced_markers_name_the_notebook_and_cell(solutions, capsys, source, problem):
    nb = read(solutions / "02_questions.ipynb")
    nb.cells[2].source = source
    nbformat.write(nb, str(solutions / "02_questions.ipynb"))
    for args in ([str(solutions), "--check"], [str(solutions)]):
        capsys.readouterr()
        assert sn.main(args) == 1
        err = capsys.readouterr().err
        assert f"{solutions / '02_questions.ipynb'} cell 2" in err and problem in err
    assert not (solutions / "student" / "02_questions.ipynb").exists()


def test_the_script_runs_from_the_command_line(solutions, students):
    (students / "01_exercises.ipynb").write_text("{}")
    cmd = [sys.executable, str(TOOL), str(solutions), "--check"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=solutions.parent)
    assert run.returncode == 1
    assert run.stderr == f"notebooks/student/01_exercises.ipynb is out of date: {HINT}\n"
    fixed = subprocess.run(cmd[:-1], capture_output=True, text=True, cwd=solutions.parent)
    assert fixed.returncode == 0 and "wrote notebooks/student/01_exercises.ipynb" in fixed.stdout


def test_find_leaks_passes_a_clean_pair_and_flags_planted_leaks(solutions, students):
    solution = read(solutions / "01_exercises.ipynb")
    assert sn.find_leaks(solution, read(students / "01_exercises.ipynb")) == []
    assert sn.find_leaks(solutions / "02_questions.ipynb", students / "02_questions.ipynb") == []

    leaky = read(students / "01_exercises.ipynb")
    leaky.cells[2].source += "\n    norm = math.sqrt(sum(v * v for v in row))"  # a solution line
    leaky.cells[5].source += "\n### BEGIN SOLUTION"
    leaky.cells[4].outputs = [nbformat.v4.new_output(
        "stream", name="stdout", text="squares = [k * k for k in range(1, 11)]\n")]
    leaky.cells[6].source += "\nreturn out"  # too short to count
    assert sn.find_leaks(solution, leaky) == [
        "cell 2: solution line 'norm = math.sqrt(sum(v * v for v in row))'",
        "cell 4: solution line 'squares = [k * k for k in range(1, 11)]'",
        "cell 5: solution marker '### BEGIN SOLUTION'",
    ]

    answers = read(students / "02_questions.ipynb")
    answers.cells[4].source += "\nmake images comparable whatever their overall activation level."
    assert sn.find_leaks(read(solutions / "02_questions.ipynb"), answers) == [
        "cell 4: solution line 'make images comparable whatever their overall activation level.'"]


def test_find_leaks_ignores_solution_lines_that_are_also_public():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("model.eval_all()\n### BEGIN SOLUTION\nmodel.eval_all()\n"
                                          "secret_answer = 42\n### END SOLUTION")]
    student = sn.make_student(nb, "demo")
    assert sn.find_leaks(nb, student) == []
    student.cells[0].source += "\nsecret_answer = 42"
    assert sn.find_leaks(nb, student) == ["cell 0: solution line 'secret_answer = 42'"]


# The committed notebooks: empty until notebooks/NN_*.ipynb exist.
SOLUTIONS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if sn.NAME.match(p.name))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_committed_student_notebook_is_current_leak_free_and_empty(solution):
    student = solution.parent / "student" / solution.name
    assert student.is_file(), f"{student} is missing: {HINT}"
    expected = sn.render(sn.make_student(sn.read(solution), str(solution)))
    assert student.read_bytes() == expected, f"{student} is out of date: {HINT}"
    nb = read(student)
    assert sn.find_leaks(read(solution), nb) == []
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")
    assert "widgets" not in nb.metadata


def test_no_committed_student_notebook_without_its_solution():
    names = {p.name for p in SOLUTIONS}
    orphans = [p for p in (REPO / "notebooks" / "student").glob("*.ipynb") if p.name not in names]
    assert orphans == [], f"no solution notebook for {orphans}: {HINT}"
