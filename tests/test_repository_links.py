"""tools/repository_links.py: one command points the workbook at its published repository."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path) -> Path:
    """A copy of what the tool reads and writes: tools/, pyproject.toml, README.md, notebooks."""
    root = tmp_path / "fork"
    shutil.copytree(REPO / "tools", root / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    (root / "notebooks").mkdir()
    for nb in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(nb, root / "notebooks" / nb.name)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "tools" / "repository_links.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_set_points_everything_at_the_new_repository(tmp_path):
    root = _copy(tmp_path)
    old = re.search(r'Repository = "https://github.com/([^"]+)"',
                    (root / "pyproject.toml").read_text()).group(1)
    run = _run(root, "--set", "https://github.com/a-teacher/vision-lab.git")
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'Repository = "https://github.com/a-teacher/vision-lab"' in (root / "pyproject.toml").read_text()
    files = [root / "README.md", *sorted((root / "notebooks").glob("*.ipynb")),
             *sorted((root / "notebooks" / "student").glob("*.ipynb"))]
    assert len(files) == 1 + 6 + 6
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert old not in text, path
        assert "colab.research.google.com/github/a-teacher/vision-lab/blob/" in text, path
        if path.suffix == ".ipynb":
            assert 'REPO_URL = \\"https://github.com/a-teacher/vision-lab\\"' in text, path
    assert _run(root, "--check").returncode == 0


def test_check_names_what_disagrees_and_a_bad_address_is_refused(tmp_path):
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(re.sub(r'Repository = "[^"]+"', 'Repository = "https://github.com/x/y"',
                                pyproject.read_text()))
    run = _run(root, "--check")
    assert run.returncode == 1
    assert "README.md does not point at https://github.com/x/y" in run.stdout
    assert "notebooks/04_relu7_svm_15scene.ipynb does not point at" in run.stdout
    bad = _run(root, "--set", "git@github.com:x/y")
    assert bad.returncode != 0 and "https://github.com/OWNER/NAME" in bad.stderr
    assert 'Repository = "https://github.com/x/y"' in pyproject.read_text()  # untouched
