"""The setup block every notebook prints is the same on every machine.

nbval compares it with the stored output, so it may not depend on where the weights
cache is (``TORCH_HOME``), the home folder (``HOME``), tplib's cache (``TPLIB_CACHE``),
where the checkout lies, or whether ``../shared`` is a symbolic link (a common way to
place shared data). Two checks: the block printed under two environments is
identical, and nbval passes each notebook's stored setup cell in the second one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# What each notebook's setup cell asks for, as the block shows it.
SETUP_CALLS = ['tplib.setup(network=None)', 'tplib.setup()', 'tplib.setup(data="15scene")',
               'tplib.setup(data="catsdogs")']

pytestmark = [pytest.mark.real_data, pytest.mark.slow]


def _moved_checkout(tmp_path: Path, real_data: Path) -> tuple[Path, dict[str, str]]:
    """A copy of tplib in another folder whose ``../shared`` is a link (to a folder whose
    ``data`` is a link to the real data), and an environment with HOME, TORCH_HOME and
    TPLIB_CACHE elsewhere: everything that could leak into a printed path differs."""
    checkout = tmp_path / "elsewhere" / "checkout"
    checkout.mkdir(parents=True)
    shutil.copytree(REPO / "tplib", checkout / "tplib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    real_shared = tmp_path / "mounted" / "course-share"
    real_shared.mkdir(parents=True)
    (real_shared / "data").symlink_to(real_data.resolve(), target_is_directory=True)
    (checkout.parent / "shared").symlink_to(real_shared, target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TPLIB_")) and k not in ("XDG_CACHE_HOME", "PYTHONPATH")}
    home = tmp_path / "home" / "someone"
    home.mkdir(parents=True)
    env.update(HOME=str(home), TORCH_HOME=str(tmp_path / "torch-weights"),
               TPLIB_CACHE=str(tmp_path / "tplib-cache"), PYTHONPATH=str(checkout),
               TPLIB_PROFILE="ci", MPLBACKEND="Agg")
    return checkout, env


def _blocks(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """The setup block of each kind of setup call, printed in a fresh interpreter."""
    script = "import tplib\n" + "".join(
        f"print('=== {call}')\n{call}\n" for call in SETUP_CALLS)
    run = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    parts = re.split(r"^=== (.*)\n", run.stdout, flags=re.MULTILINE)[1:]
    return dict(zip(parts[::2], parts[1::2]))


def test_setup_block_is_the_same_in_another_environment(tmp_path, real_data_dir):
    home_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PYTEST_", "TPLIB_")) and k != "TORCH_HOME"}
    home_env.update(TPLIB_PROFILE="ci", MPLBACKEND="Agg", TPLIB_CACHE=str(tmp_path / "first-cache"))
    if not (REPO.parent / "shared" / "data" / "15SceneData").is_dir():
        # the data came through $TPLIB_REAL_DATA, which the block names as such
        pytest.skip("compares with ../shared/data beside the checkout, which is not there")
    checkout, other_env = _moved_checkout(tmp_path, real_data_dir)
    first = _blocks(home_env, REPO)
    second = _blocks(other_env, checkout)
    # The moved copy really is the one that ran, reading the data through the links.
    assert set(first) == set(SETUP_CALLS)
    assert "15 Scene" in second['tplib.setup(data="15scene")']
    assert "cats vs dogs" in second['tplib.setup(data="catsdogs")']
    for call in SETUP_CALLS:
        assert second[call] == first[call], call
        # no machine-specific path may appear in the block
        for leak in (str(tmp_path), str(REPO), str(Path.home()), str(real_data_dir)):
            assert leak not in second[call]


def _setup_cell_notebook(src: Path, dst: Path) -> None:
    """A copy of ``src`` holding only its first code cell (the setup cell) and its stored output."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    nb["cells"] = [first]
    dst.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def test_nbval_passes_the_stored_setup_cells_in_another_environment(tmp_path, real_data_dir):
    """nbval itself, with the project's wiring, on every notebook's stored setup output."""
    checkout, env = _moved_checkout(tmp_path, real_data_dir)
    for name in ("pyproject.toml", "notebooks/conftest.py", "notebooks/nbval_sanitize.cfg"):
        (checkout / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, checkout / name)
    for nb in NOTEBOOKS:
        _setup_cell_notebook(nb, checkout / "notebooks" / nb.name)
    run = subprocess.run([sys.executable, "-m", "pytest", "-rA", "--color=no", "-p", "no:cacheprovider",
                          "notebooks"], cwd=checkout, env=env, capture_output=True, text=True,
                         timeout=600)
    out = run.stdout + run.stderr
    passed = re.findall(r"^PASSED (\S+)", out, re.MULTILINE)
    assert run.returncode == 0, out
    assert len(passed) == len(NOTEBOOKS) == 6, out
