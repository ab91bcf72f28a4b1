"""The lab notebooks' interactive views, used as a person would: a real JupyterLab 4 in
headless Chromium (marker ``browser``; see ``browser_harness``).

Each notebook is opened from a copy without stored outputs or widget state (nothing can
pass without a live kernel), all its cells run in the ``ci`` profile, and each view must
render, react to a control (a slider key press, a dropdown choice, an upload) and show
something new. A screenshot per notebook goes to ``TPLIB_SCREENSHOTS`` (CI:
``reports/browser-screenshots/``). The kernels share ``TPLIB_NBVAL_CACHE`` when it is
set, and these tests run after the notebooks' nbval run (tests/conftest.py orders them
last), so the features computed there are not computed again.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_harness import View, check_notebook, running_lab

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "assets" / "rocket.jpg"

VIEWS = {
    "02_imagenet_prediction": [
        View("dropdown", label="photo", option="coffee", output_image=True),
        View("upload", label="your photo", files=[PHOTO], output_image=True),
    ],
    "03_activation_maps": [
        View("slider", label="channel", press=["ArrowRight"], output_image=True),
        View("slider", label="channel", press=["End"], output_image=True),
        View("dropdown", label="layer", output_image=True),
        View("dropdown", label="photo", option="coffee", output_image=True),
    ],
    "04_relu7_svm_15scene": [
        View("dropdown", label="true → predicted", output_contains="were predicted", output_image=True),
    ],
    "05_going_further": [
        View("slider", label="C", value=10, output_contains="C = 10: test accuracy"),
        View("dropdown", label="layer", output_matches=r"layer \S+ \([\d,]+ values per image\)"),
    ],
}
# Notebook 06's view (learning curves of a new head) is driven headless in
# tests/test_widgets.py and under ipywidgets 7.7.1 in tests/test_widgets_compat.py: a
# browser run of 06 would retrain its end-to-end models (about a minute of the 4-minute
# budget of the browser tests in CI).


@pytest.fixture(scope="module")
def lab():
    """One JupyterLab serving clean copies of the notebooks with views, ci profile."""
    env = {"TPLIB_PROFILE": "ci"}
    if os.environ.get("TPLIB_NBVAL_CACHE"):
        env["TPLIB_CACHE"] = os.environ["TPLIB_NBVAL_CACHE"]
    notebooks = [REPO / "notebooks" / f"{name}.ipynb" for name in VIEWS]
    with running_lab(notebooks, env=env) as server:
        yield server


@pytest.mark.parametrize("name", list(VIEWS))
def test_views_render_and_react(name, lab, browser, screenshot_dir):
    result = check_notebook(lab, browser, f"{name}.ipynb", VIEWS[name], screenshot_dir=screenshot_dir,
                            run_timeout=600)
    print("\n" + result.summary())
    assert len(result.views) == len(VIEWS[name])
    assert result.screenshots and all(p.is_file() for p in result.screenshots)
