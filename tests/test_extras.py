"""pyproject.toml's extras: nbgrader is for instructors and the tests, never for students.

Read from pyproject.toml itself (``tplib[a,b]`` inside an extra expands that extra), so
the answer is what pip would install from this checkout, without installing anything.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11+")

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def requirements(*extras: str) -> set[str]:
    """Names of the distributions ``pip install tplib[extras]`` asks for (lower case)."""
    names, todo, seen = set(), list(extras), set()
    for req in PROJECT["dependencies"]:
        names.add(re.split(r"[<>=!~\[ ;@]", req, maxsplit=1)[0].lower())
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in EXTRAS[extra]:
            m = re.fullmatch(r"tplib\[([\w,]+)\]", req)
            if m:
                todo += m.group(1).split(",")
            else:
                names.add(re.split(r"[<>=!~\[ ;@]", req, maxsplit=1)[0].lower())
    return names


@pytest.mark.parametrize("extras", [(), ("offline",), ("notebooks",), ("offline", "notebooks")])
def test_a_students_install_does_not_pull_nbgrader(extras):
    assert "nbgrader" not in requirements(*extras)
    if "notebooks" in extras:
        assert "jupyterlab" in requirements(*extras)


@pytest.mark.parametrize("extra", ["nbgrader", "instructor", "test", "browser"])
def test_instructors_and_the_tests_get_nbgrader(extra):
    assert "nbgrader" in requirements(extra)
    assert any(r.startswith("nbgrader>=0.9") for r in EXTRAS["nbgrader"])
