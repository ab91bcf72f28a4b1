"""Colab's path, reproduced as far as this machine allows (marker ``compat``).

Colab starts a kernel with torch, torchvision, timm, scikit-learn, scikit-image, tqdm
and ipywidgets 7.7.1 installed, ``google.colab`` imported, and no tplib. Each student
notebook's setup cell then runs ``%pip install "tplib[offline] @ git+{REPO_URL}"``.
This test builds that kernel: a fresh virtual environment with Colab's widget and
kernel versions (ipywidgets 7.7.1, ipykernel 5.5.6, IPython 7.34), the heavy packages
seen through a plain path to this environment's site-packages (so tplib's own editable
install is NOT visible: ``import tplib`` fails there before the setup cell), and a
``google.colab`` module imported at start-up. ``REPO_URL`` points at this checkout's
git repository (its committed ``HEAD``), so pip really clones, builds and installs
tplib; then the first cells of each student notebook run (setup and the next).

What it cannot prove: a real Colab runtime (its exact package set, its Python, its
file system), its GPU, and its network (installing from GitHub, downloading VGG16's
weights and the course's zip); the data here come from ``TPLIB_REAL_DATA``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from widgets_compat import WIDGETS7_KERNEL, WIDGETS7_NODEPS, execute_headless

REPO = Path(__file__).resolve().parents[1]
# The setup cell and the one after it: enough to show that the installed tplib works; the
# rest of each notebook runs under nbval and, on Colab's widget version, test_widgets_compat.
FIRST_CODE_CELLS = 2
STUDENTS = sorted((REPO / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))

pytestmark = [pytest.mark.compat, pytest.mark.slow, pytest.mark.real_data]


def _purelib(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()


def _colab_like_python(root: Path) -> Path:
    """A kernel interpreter as Colab gives one: Colab's widget stack, no tplib."""
    venv = root / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(_purelib(python))
    # A bare path, not addsitedir: the main environment's .pth files (tplib's editable
    # install among them) are not run, so tplib is absent as on Colab.
    (site / "zzz_preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    colab = site / "google" / "colab"  # `google` stays a namespace package (protobuf's too)
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text('"""Stand-in for Colab\'s own module: only its presence matters."""\n')
    (site / "zzz_colab_runtime.pth").write_text("import google.colab\n")  # imported at start-up
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # Colab's pip is recent (24+); the one venv bundles with an older Python rejects a
    # git+file:// URL without a host, which a GitHub URL never is.
    for args in (["--upgrade", "pip>=24"], ["--no-deps", *WIDGETS7_NODEPS], WIDGETS7_KERNEL):
        proc = subprocess.run(pip + args, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return python


def _first_cells(src: Path, dst: Path, repo_url: str, n_code: int = FIRST_CODE_CELLS) -> int:
    """Copy ``src``'s first ``n_code`` code cells (fewer when an exercise comes first), with
    ``REPO_URL`` set; returns how many code cells the copy runs."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and ("raise NotImplementedError" in text
                                            or sum(c["cell_type"] == "code" for c in cells) == n_code):
            break
        if "REPO_URL = " in text:
            lines = [f'REPO_URL = "{repo_url}"' if line.startswith("REPO_URL = ") else line
                     for line in text.split("\n")]
            cell["source"] = "\n".join(lines)
        cells.append(cell)
    cells.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                  "id": "colab-probe",
                  "source": "import google.colab, ipywidgets, tplib\n"
                            "print('PROBE', ipywidgets.__version__, tplib.__file__)"})
    nb["cells"] = cells
    dst.write_text(json.dumps(nb), encoding="utf-8")
    return sum(c["cell_type"] == "code" for c in cells)


def test_student_notebooks_install_tplib_and_run_as_on_colab(tmp_path, real_data_dir, monkeypatch):
    assert len(STUDENTS) == 6
    python = _colab_like_python(tmp_path)
    before = subprocess.run([str(python), "-c", "import google.colab, torch, timm, ipywidgets; "
                             "print(ipywidgets.__version__); import tplib"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert before.stdout.strip() == "7.7.1", before.stderr
    assert "No module named 'tplib'" in before.stderr  # absent until the setup cell installs it
    monkeypatch.setenv("TPLIB_PROFILE", "ci")
    monkeypatch.setenv("TPLIB_REAL_DATA", str(real_data_dir))
    if os.environ.get("TPLIB_NBVAL_CACHE"):  # CI's feature cache for the notebooks, warm by now
        monkeypatch.setenv("TPLIB_CACHE", os.environ["TPLIB_NBVAL_CACHE"])
    site = _purelib(python)
    for student in STUDENTS:
        copy = tmp_path / "nb" / student.name
        copy.parent.mkdir(exist_ok=True)
        n_code = _first_cells(student, copy, f"file://{REPO}")
        assert n_code >= 2, student.name
        run = execute_headless(copy, python, poke=False, timeout=600)
        assert not run.errors, run.errors
        texts = run.cell_texts()
        probe = next(t for t in texts if "PROBE" in t)
        version, where = probe.split("PROBE ", 1)[1].split()[:2]
        assert version == "7.7.1"
        assert where.startswith(site), where  # the installed copy, not the checkout
        assert "profile  ci" in "\n".join(texts)  # the setup cell ran after the install
