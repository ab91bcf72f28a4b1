"""The views under Google Colab's ipywidgets 7.7.1 (marker ``compat``).

Colab ships ipywidgets 7.7.1 and it must not be upgraded there; JupyterLab 4 renders only
ipywidgets 8. These tests run the fixture notebook headless (``jupyter nbconvert
--execute``) on a kernel with ipywidgets 7.7.1, ipykernel 5.5.6 and IPython 7.34 (Colab's),
move every slider and dropdown once from inside that kernel, and fail on any traceback,
including one that ipywidgets caught into an Output widget. The kernel's environment is
``.venv-widgets7/`` (see ``widgets_compat``), created on first use; without the package
registry it skips, unless ``TPLIB_REQUIRE_BROWSER=1`` makes that a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from widgets_compat import execute_headless, kernel_versions, widgets7_python

pytestmark = pytest.mark.compat

FIXTURE = Path(__file__).resolve().parent / "data" / "browser" / "views_demo.ipynb"


@pytest.fixture(scope="module")
def widgets7():
    try:
        import nbconvert  # noqa: F401
    except ImportError as exc:
        reason = f"nbconvert is not installed ({exc})"
    else:
        t0 = time.monotonic()
        try:
            python = widgets7_python()
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            reason = f"could not create the ipywidgets 7.7.1 environment: {exc}"
        else:
            print(f"\nipywidgets 7.7.1 environment: {python} ({time.monotonic() - t0:.1f} s)")
            return python
    if os.environ.get("TPLIB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TPLIB_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def test_fixture_runs_under_colab_widgets(widgets7):
    """Same notebook, same callbacks, on Colab's ipywidgets: no traceback anywhere."""
    with ThreadPoolExecutor(1) as pool:  # importing torch there takes seconds: meanwhile
        versions = pool.submit(kernel_versions, widgets7)
        run = execute_headless(FIXTURE, widgets7)
        versions = versions.result()
    print(f"kernel: {versions}; nbconvert --execute took {run.seconds:.1f} s")
    assert versions["ipywidgets"] == "7.7.1"
    assert versions["ipykernel"] == "5.5.6" and versions["IPython"] == "7.34.0"
    assert versions["torch"]  # the main environment's packages are there too
    assert run.errors == []
    assert "ipywidgets 7.7.1" in "".join(run.cell_texts())
    assert run.poke_output.startswith("TPLIB-POKED 7.7.1 3 ")
    for control in ("IntSlider('channel')", "Dropdown('layer')", "FloatLogSlider('C')"):
        assert control in run.poke_output


def test_broken_callback_is_reported_under_colab_widgets(widgets7, tmp_path):
    """nbconvert alone passes a notebook whose interact callback raises (the traceback
    lands in an Output widget); the check reads the widgets' saved outputs and fails it."""
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]).replace("BROKEN = False", "BROKEN = True")
    broken = tmp_path / "views_broken.ipynb"
    broken.write_text(json.dumps(nb))
    run = execute_headless(broken, widgets7)
    assert any("ValueError: broken callback for channel 7" in e and "Output widget" in e
               for e in run.errors), run.errors


@pytest.mark.browser
def test_colab_widgets_do_not_render_in_jupyterlab4(widgets7, browser, screenshot_dir):
    """The red box ipywidgets shows when it cannot render a view fails the browser check:
    a kernel with ipywidgets 7.7.1 in JupyterLab 4 (which only has ipywidgets 8's
    front end) is such a case, hence the headless check above for Colab."""
    from browser_harness import NotebookError, check_notebook, running_lab

    spec = {"argv": [str(widgets7), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "ipywidgets 7.7.1", "language": "python"}
    with running_lab([FIXTURE], kernel_name="widgets7", kernelspecs={"widgets7": spec}) as lab:
        with pytest.raises(NotebookError) as error:
            check_notebook(lab, browser, FIXTURE.name, screenshot_dir=screenshot_dir / "widgets7")
    message = str(error.value)
    print("\n" + message[:1200])
    assert "could not render a view (red error box)" in message
    assert "Failed to load model class" in message and "is not registered" in message
    assert "screenshot:" in message


def test_tplibs_views_run_under_colab_widgets(widgets7):
    """Every view of tplib.widgets, built and then moved control by control, on Colab's
    ipywidgets 7.7.1: no traceback in a cell or inside a view's Output."""
    run = execute_headless(FIXTURE.with_name("tplib_views.ipynb"), widgets7, timeout=600)
    print(f"nbconvert --execute took {run.seconds:.1f} s; {run.poke_output.strip()}")
    assert run.errors == []
    assert "ipywidgets 7.7.1" in "".join(run.cell_texts())
    for control in ("Dropdown('photo')", "IntSlider('channel')", "Dropdown('layer')",
                    "Dropdown('true → predicted')", "FloatLogSlider('C')",
                    "FloatLogSlider('learning rate')", "IntSlider('epochs')", "Dropdown('head')"):
        assert control in run.poke_output, control
