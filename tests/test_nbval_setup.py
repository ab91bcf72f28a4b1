"""The notebook run inside `pytest`: nbval's sanitize rules and its wiring.

The fixture notebooks in tests/data/notebooks/ are themselves collected by nbval in
every `pytest` run (their stored outputs are compared); the test below runs a copy of
the real wiring (pyproject.toml, notebooks/conftest.py, notebooks/nbval_sanitize.cfg)
in a subprocess to show what fails and what does not.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "data" / "notebooks"
SANITIZE = REPO / "notebooks" / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    """What nbval compares for ``text``, with the project's rules."""
    from nbval.plugin import get_sanitize_patterns

    for regex, replace in get_sanitize_patterns(SANITIZE.read_text(encoding="utf-8")):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize("text, expected", [
    ("features: 100%|██████████| 47/47 [00:12<00:00,  3.80img/s]\ndone",
     "<progress bar>\ndone"),
    ("  0%|          | 0/50 [00:00<?, ?img/s]", "<progress bar>"),
    ("scratch folder: /tmp/tmplx2qbb5j\n", "scratch folder: <path>\n"),
    ("/tmp/ipykernel_7991/3033493872.py:1: UserWarning: careful",
     "<path>:1: UserWarning: careful"),
    ("/private/var/folders/x1/abc/T/pytest-of-me/pytest-3/test_a0/cache",
     "<path>"),
    ("data: /home/alice/tplib/notebooks/../data/15SceneData (real)", "data: <path> (real)"),
    ("PosixPath('/root/.cache/tplib/features')", "PosixPath('<path>')"),
    ("C:\\Users\\alice\\AppData\\Local\\Temp\\tmpab12", "<path>"),
    ("an object: <object object at 0x7fc99714f310>", "an object: <object object at 0x<address>>"),
    ("<Figure size 640x480 with 1 Axes>", "<Figure size 640x480 with 1 Axes>"),
    ("created 2025-01-31T12:00:00+01:00", "created <timestamp>"),
    ("report: reports/run-20250131-120000/summary.md", "report: reports/run-<timestamp>/summary.md"),
    ("95 s inside the run (48.6 img/s), 1.25s/it", "<time> inside the run (<rate>), <rate>"),
    ("CPU times: user 12 μs, sys: 1 µs, total: 13 ms\nWall time: 1.5 s",
     "CPU times: user <time>, sys: <time>, total: <time>\nWall time: <time>"),
    ("took 1 min 47 s", "took <time> <time>"),
])
def test_sanitize_rules_hide_what_changes_between_runs(text, expected):
    assert sanitize(text) == expected


@pytest.mark.parametrize("text", [
    "test accuracy: 0.927 (2768/2985)",
    "15 Scene: 1500 train / 2985 test, 15 classes, 3 samples, 12 steps",
    "train/forest/image_0001.jpg",
    "https://colab.research.google.com/github/example/tplib/blob/main/notebooks/01_a.ipynb",
    "array([0.6, 0.8]) C=1 relu7: 4096-d, 2 epochs",
    "<table><tr><td>0.93</td></tr></table>",
])
def test_sanitize_rules_leave_results_alone(text):
    assert sanitize(text) == text


def test_kernel_environment():
    spec = importlib.util.spec_from_file_location("nbconftest", REPO / "notebooks" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    assert conftest.kernel_environment({"TPLIB_PROFILE": "full", "MPLBACKEND": "Agg"}) == {
        "TPLIB_PROFILE": "ci", "MPLBACKEND": None}
    assert conftest.kernel_environment({"TPLIB_NBVAL_CACHE": "/shared/cache"}) == {
        "TPLIB_PROFILE": "ci", "MPLBACKEND": None, "TPLIB_CACHE": "/shared/cache"}
    assert conftest.collect_ignore == ["student"]


def _edit(src: Path, dst: Path, cell: int, source=None, text=None) -> None:
    """Copy a notebook, changing one code cell's source or first stored output text."""
    nb = nbformat.read(str(src), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"][cell]
    if source is not None:
        code.source = source(code.source)
    if text is not None:
        code.outputs[0] = nbformat.from_dict({**code.outputs[0], **text(code.outputs[0])})
    nbformat.write(nb, str(dst))


def test_pytest_runs_the_notebooks_and_fails_on_a_changed_output(tmp_path):
    """A checkout in miniature: `python -m pytest`, no arguments, as `make test` does."""
    for name in ("pyproject.toml", "notebooks/conftest.py", "notebooks/nbval_sanitize.cfg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    nbs = tmp_path / "notebooks"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    for nb in FIXTURES.glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(nb, nbs / nb.name)
    exercises = FIXTURES / "01_exercises.ipynb"
    # 03: a stored number changed (Cell 4 fails); the widget's stored text changed too,
    # but that cell is marked NBVAL_IGNORE_OUTPUT (Cell 5 passes).
    _edit(exercises, nbs / "03_changed.ipynb", 4,
          text=lambda o: {"text": o["text"].replace("38.5", "38.6")})
    _edit(nbs / "03_changed.ipynb", nbs / "03_changed.ipynb", 5,
          text=lambda o: {"data": {**o["data"], "text/plain": "IntSlider(value=4)"}})
    # 04: the same notebook, but its first code cell now warns: a new stderr stream.
    _edit(exercises, nbs / "04_warns.ipynb", 0,
          source=lambda s: s + "\nimport warnings\nwarnings.warn('soon deprecated')")
    (nbs / "student").mkdir()
    _edit(exercises, nbs / "student" / "01_exercises.ipynb", 1,
          source=lambda s: "raise NotImplementedError()")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(TPLIB_PROFILE="full", TPLIB_NBVAL_CACHE=str(tmp_path / "shared-cache"), MPLBACKEND="Agg")
    run = subprocess.run([sys.executable, "-m", "pytest", "-rA", "--color=no", "-p", "no:cacheprovider"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    passed = set(re.findall(r"^PASSED (\S+(?: \d+)?)", out, re.MULTILINE))
    failed = set(re.findall(r"^FAILED (\S+(?: \d+)?)", out, re.MULTILINE))
    assert run.returncode == 1, out
    assert failed == {"notebooks/03_changed.ipynb::Cell 4", "notebooks/04_warns.ipynb::Cell 0"}, out
    assert "tests/test_plain.py::test_plain" in passed
    assert "notebooks/02_questions.ipynb::Cell 0" in passed  # profile forced, shared cache
    assert "notebooks/03_changed.ipynb::Cell 5" in passed  # NBVAL_IGNORE_OUTPUT
    assert "notebooks/02_questions.ipynb::Cell 2" in passed  # a figure, though MPLBACKEND=Agg
    assert len(passed) == 1 + 6 + 3 + 5 + 5, out  # test_plain, 01, 02, 03, 04
    assert "mean square: 38.6" in out and "mean square: 38.5" in out
    assert "Unexpected output fields from running code: {'stderr'}" in out
    assert "student" not in out
