"""How ``python -m pytest`` runs the solution notebooks (nbval).

pyproject.toml's ``addopts`` turn nbval on: each ``notebooks/NN_*.ipynb`` is collected,
its code cells run in order in one fresh kernel (this interpreter, whatever kernel the
notebook's metadata names: ``--nbval-current-env``), and each cell's outputs are
compared with the stored ones after the rules in ``nbval_sanitize.cfg``. Ordinary test
files are collected as before. ``notebooks/student/`` is never collected: those
notebooks are generated without outputs, and their exercises raise.

Every notebook kernel starts with (pytest's own environment stays as it is):

- ``TPLIB_PROFILE=ci``, forced: the stored outputs are the ci profile's.
- ``TPLIB_CACHE=$TPLIB_NBVAL_CACHE`` when that is set, so CI can share one feature
  cache between notebooks and runs; otherwise ``TPLIB_CACHE`` as it is (the data sets
  live there).
- no ``MPLBACKEND`` (CI sets ``Agg`` for the tests): ipykernel then chooses its inline
  backend, as in Jupyter, and figures are shown as they were when stored.

Per cell: ``# NBVAL_IGNORE_OUTPUT`` (runs, output not compared: widgets, progress
bars), ``# NBVAL_SKIP`` (not run), ``# NBVAL_RAISES_EXCEPTION`` (must raise); the
cell tags ``nbval-ignore-output``, ``nbval-skip`` and ``raises-exception`` do the same.
Options: ``--nbval-cell-timeout=SECONDS``; ``--ignore-glob="*.ipynb"`` leaves all
notebooks out of a run; ``pytest notebooks/03_x.ipynb`` runs one.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

collect_ignore = ["student"]


def kernel_environment(environ) -> dict[str, str | None]:
    """Variables to set for a notebook kernel (``None``: remove), given pytest's."""
    env: dict[str, str | None] = {"TPLIB_PROFILE": "ci", "MPLBACKEND": None}
    if environ.get("TPLIB_NBVAL_CACHE"):
        env["TPLIB_CACHE"] = environ["TPLIB_NBVAL_CACHE"]
    return env


def pytest_configure(config):
    # nbval opens the sanitize file relative to the working directory; pyproject.toml
    # names it relative to the checkout, so pytest may start from any folder.
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not Path(path).is_file() and (config.rootpath / path).is_file():
        config.option.nbval_sanitize_with = str(config.rootpath / path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """nbval starts a notebook's kernel while pytest sets up the notebook's first cell,
    and the kernel copies ``os.environ`` then: the variables hold during a setup only."""
    if item.path.suffix != ".ipynb":
        yield
        return
    env = kernel_environment(os.environ)
    saved = {name: os.environ.get(name) for name in env}
    _set(env)
    try:
        yield
    finally:
        _set(saved)


def _set(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
