"""Grading with nbgrader, end to end, on notebooks 01 and 02 (the ci profile).

A temporary course folder (nbgrader_config.py, SQLite gradebook) and a local exchange
folder; nbgrader's own command line does every step an instructor and three students
would: generate, release, fetch, submit (three students, each from a folder of their
own), collect, autograde, grade the written answers (what formgrader writes, through
nbgrader's Gradebook API), generate feedback, export the grades to CSV.

- ``ada`` submits the reference solutions: full marks;
- ``ben`` makes typical mistakes (answers from tests/answers/ whose checks give ✘) in
  two of the three exercises and leaves the written answers as released: he scores the
  points of the one exercise left right;
- ``cyd`` submits the notebooks untouched: zero.

The points come from the notebooks' metadata (tools/nbgrader_metadata.py), so the test
follows them. Run time: 144 s measured on 2 cores busy with another test run (six
notebook executions, about 15 s for 01 and 40 s for 02 with a solution; nbgrader's own
steps take a few seconds each). It prints its time.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("nbgrader") is None:  # a failure, never a silent skip
    raise ImportError('nbgrader is missing: it is in the test extra (pip install -e ".[test]")')

from answer_corpus import code_cells, locate_exercise, read_answer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01_vgg16_anatomy.ipynb", "02_imagenet_prediction.ipynb"]
COURSE, ASSIGNMENT = "transfer-learning", "lab"
STUDENTS = ("ada", "ben", "cyd")
#: ben's mistakes: (notebook, check, answer file) - each answer's check gives ✘
MISTAKES = [("01_vgg16_anatomy.ipynb", "check_fc_estimate", "01_fc_estimate/wrong_with_biases.py"),
            ("02_imagenet_prediction.ipynb", "check_topk", "02_topk/wrong_not_best_first.py")]

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nbgrader(*args: str, cwd: Path, env: dict[str, str]) -> str:
    """Run ``nbgrader ARGS`` (this interpreter's) in ``cwd``; its log, or a failure with it."""
    exe = Path(sys.executable).with_name("nbgrader")
    run = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"
    return run.stdout + run.stderr


def write_config(course: Path, exchange: Path) -> None:
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.course_id = {COURSE!r}\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(course / 'gradebook.db')!r}\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
        "c.Execute.timeout = 600  # seconds per cell: the first cell loads a network\n"
        "c.CollectApp.check_owner = False  # every student here is this OS user\n")


def cell_by_grade_id(nb: dict, grade_id: str) -> dict:
    found = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(found) == 1, grade_id
    return found[0]


def without_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n")
                     if not re.match(r"^\s*###\s*(BEGIN|END) SOLUTION\s*$", line))


def exercise_id(notebook: str, check: str) -> str:
    """The cell id (nbgrader's grade_id) of the exercise that ``check`` follows."""
    solution = REPO / "notebooks" / notebook
    index = locate_exercise(code_cells(solution), check)[0]
    cells = [c for c in json.loads(solution.read_text())["cells"] if c["cell_type"] == "code"]
    return cells[index]["id"]


def answer(folder: Path, student: str) -> None:
    """Edit the fetched notebooks in ``folder`` as ``student`` would."""
    if student == "cyd":
        return
    for name in NOTEBOOKS:
        path = folder / name
        nb = json.loads(path.read_text())
        solution = json.loads((REPO / "notebooks" / name).read_text())
        for cell in solution["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("solution") and (student == "ada" or cell["cell_type"] == "code"):
                cell_by_grade_id(nb, meta["grade_id"])["source"] = without_markers("".join(cell["source"]))
        if student == "ben":
            for notebook, check, file in MISTAKES:
                if notebook == name:
                    wrong = read_answer(REPO / "tests" / "answers" / file)
                    assert wrong.mark == "✘", file
                    cell_by_grade_id(nb, exercise_id(name, check))["source"] = wrong.code
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False))


def test_points_of_the_graded_notebooks():
    """What the scores below add up from (1 point per check, 1 per written answer)."""
    nm = _tool("nbgrader_metadata")
    points = {name: nm.points(nm.read(REPO / "notebooks" / name)) for name in NOTEBOOKS}
    assert points == {"01_vgg16_anatomy.ipynb": {"01-10": 1, "01-21": 1, "01-23": 1},
                      "02_imagenet_prediction.ipynb": {"02-08": 1, "02-11": 1, "02-31": 1}}


def test_generate_release_submit_collect_autograde_feedback_export(tmp_path, real_data_dir):
    t0 = time.perf_counter()
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    exchange.mkdir()
    write_config(course, exchange)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBGRADER", "PYTEST_"))}
    env.update(TPLIB_PROFILE="ci", TPLIB_REAL_DATA=str(real_data_dir))
    # nbgrader runs `alembic` (its gradebook's migrations) from PATH: this environment's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])

    # instructor: the solution notebooks are nbgrader's source; generate, then release
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for name in NOTEBOOKS:
        (source / name).write_bytes((REPO / "notebooks" / name).read_bytes())
    nbgrader("generate_assignment", ASSIGNMENT, cwd=course, env=env)
    nbgrader("release_assignment", ASSIGNMENT, cwd=course, env=env)
    released = course / "release" / ASSIGNMENT
    assert sorted(p.name for p in released.glob("*.ipynb")) == NOTEBOOKS
    assert_same_cells_as_the_repositorys_student_notebooks(released)

    # students: each fetches into a folder of their own, answers, submits under their id
    for student in STUDENTS:
        home = tmp_path / "students" / student
        home.mkdir(parents=True)
        flags = [f"--course={COURSE}", f"--Exchange.root={exchange}",
                 f"--Exchange.cache={home / '.nbgrader_cache'}"]
        nbgrader("fetch_assignment", ASSIGNMENT, *flags, cwd=home, env=env)
        answer(home / ASSIGNMENT, student)
        nbgrader("submit", ASSIGNMENT, f"--student={student}", *flags, cwd=home, env=env)

    # instructor: collect, autograde, grade the written answers, feedback, export
    nbgrader("collect", ASSIGNMENT, cwd=course, env=env)
    assert sorted(p.name for p in (course / "submitted").iterdir()) == list(STUDENTS)
    nbgrader("autograde", ASSIGNMENT, cwd=course, env=env)
    manual = grade_written_answers(course, "ada")
    nbgrader("generate_feedback", ASSIGNMENT, cwd=course, env=env)
    nbgrader("export", f"--to={tmp_path / 'grades.csv'}", cwd=course, env=env)

    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    scores = {s: float(rows[s]["score"]) for s in STUDENTS}
    max_score = {float(rows[s]["max_score"]) for s in STUDENTS}
    assert max_score == {6.0}
    assert manual == 3.0  # ada's three written answers: the autograder leaves them to a person
    # ben: notebook 02's preprocess, 1 point; his two ✘ and his three untouched answers: 0
    assert scores == {"ada": 6.0, "ben": 1.0, "cyd": 0.0}

    for student in STUDENTS:
        feedback = course / "feedback" / student / ASSIGNMENT
        assert sorted(p.name for p in feedback.glob("*.html")) == [
            n.replace(".ipynb", ".html") for n in NOTEBOOKS]
    ben = (course / "feedback" / "ben" / ASSIGNMENT / "01_vgg16_anatomy.html").read_text()
    assert "CheckFailed" in ben and "that count includes the biases" in ben
    autograded = json.loads((course / "autograded" / "ada" / ASSIGNMENT / NOTEBOOKS[0]).read_text())
    assert "✔ right" in json.dumps(autograded, ensure_ascii=False)
    print(f"nbgrader, end to end (3 students, 2 notebooks): {time.perf_counter() - t0:.0f} s")


def grade_written_answers(course: Path, student: str) -> float:
    """Full points to every answer of ``student`` awaiting a person; the points given."""
    from nbgrader.api import Gradebook

    given = 0.0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for nb in gb.find_submission(ASSIGNMENT, student).notebooks:
            for grade in nb.grades:
                if grade.needs_manual_grade:
                    grade.manual_score = grade.max_score
                    given += grade.max_score
        gb.db.commit()
        for other in set(STUDENTS) - {student}:
            assert not gb.find_submission(ASSIGNMENT, other).needs_manual_grade
    return given


def assert_same_cells_as_the_repositorys_student_notebooks(released: Path) -> None:
    """nbgrader's student version has the cells tools/student_notebooks.py makes (same
    types, ids and sources, the Colab link aside): two ways, one result."""
    sn = _tool("student_notebooks")
    for name in NOTEBOOKS:
        ours = json.loads((REPO / "notebooks" / "student" / name).read_text())["cells"]
        theirs = json.loads((released / name).read_text())["cells"]
        assert [(c["cell_type"], c["id"]) for c in theirs] == [(c["cell_type"], c["id"]) for c in ours]
        for a, b in zip(theirs, ours):
            source = "".join(a["source"])
            if a["cell_type"] == "markdown":
                source = sn.COLAB.sub(r"\1student/\2", source)
            assert source == "".join(b["source"]), f"{name} cell {a['id']}"
