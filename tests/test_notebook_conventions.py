"""Every solution notebook follows the workbook's conventions (read without a kernel).

Title, Colab badge and setup cell pointing at the repository pyproject.toml names; one
setup cell that installs only on Colab; questions with reference answers; a summary;
outputs stored from the ci profile with real weights and real data, and no warnings.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if re.match(r"^\d\d_", p.name))
EXPECTED = ["01_vgg16_anatomy", "02_imagenet_prediction", "03_activation_maps",
            "04_relu7_svm_15scene", "05_going_further", "06_finetuning_new_head"]

sys.path.insert(0, str(REPO / "tools"))
from repository_links import repository  # noqa: E402


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _outputs_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif "data" in out:
            parts.append("".join(out["data"].get("text/plain", "")))
    return "".join(parts)


def test_the_six_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_badge_and_setup_cell(path):
    url, slug = repository()
    cells = _cells(path)
    first = _text(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith(f"# {path.name[:2]}.")
    badge = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}"
    assert badge in first and "colab-badge.svg" in first
    assert "what you will learn" in first.lower()
    code = [c for c in cells if c["cell_type"] == "code"]
    setup = _text(code[0])
    assert f'REPO_URL = "{url}"' in setup and "tplib.setup(" in setup
    # installs only on Colab, and only tplib: torch, torchvision, ipywidgets stay Colab's
    lines = setup.splitlines()
    pip = [i for i, line in enumerate(lines) if "%pip" in line or "!pip" in line]
    assert len(pip) == 1 and lines[pip[0] - 1].strip() == 'if "google.colab" in sys.modules:'
    assert '"tplib[offline] @ git+{REPO_URL}"' in lines[pip[0]]
    for cell in code[1:]:
        assert not re.search(r"^\s*[%!]\s*pip\b", _text(cell), re.M), "install only in the setup cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_questions_have_reference_answers_and_a_summary(path):
    cells = _cells(path)
    questions = [i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and re.search(r"\*\*Q\d+", _text(c))]
    assert questions, "no question"
    for i in questions:
        answer = cells[i + 1]
        assert answer["cell_type"] == "markdown" and "### BEGIN SOLUTION" in _text(answer), \
            f"question in cell {i} has no reference answer right after it"
    assert any(c["cell_type"] == "markdown" and re.search(r"^#+ .*Summary", _text(c), re.M | re.I)
               for c in cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_come_from_the_ci_profile_and_never_mislead(path):
    cells = [c for c in _cells(path) if c["cell_type"] == "code"]
    setup_out = _outputs_text(cells[0])
    assert setup_out.startswith("profile  ci: "), "store outputs from the ci profile"
    assert "RANDOM WEIGHTS" not in setup_out and "GENERATED DATA" not in setup_out
    for i, cell in enumerate(cells):
        if "NBVAL_SKIP" in _text(cell):
            continue
        assert cell.get("execution_count") is not None, f"code cell {i} was not run"
        streams = [o for o in cell.get("outputs", []) if o["output_type"] == "stream"]
        assert all(o["name"] == "stdout" for o in streams), f"code cell {i} wrote to stderr"
        assert not any(o["output_type"] == "error" for o in cell.get("outputs", []))
        assert "GENERATED DATA" not in _outputs_text(cell)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_saved_widget_state_or_run_timings(path):
    """A static render uses the plain call beside each view; timings only make diffs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in nb["metadata"], "run python tools/refresh_notebooks.py"
    assert not any("execution" in c.get("metadata", {}) for c in nb["cells"])


def test_badges_and_install_cells_point_at_the_repository():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "repository_links.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
