"""The widget views in a real JupyterLab 4, driven in headless Chromium (marker ``browser``).

Proves the harness (``browser_harness``) on ``data/browser/views_demo.ipynb``: the views
render from a live kernel, a key press on a slider and a dropdown choice change what they
show, and the harness fails, saying why, when a callback or a cell is broken.

Needs Chromium (``apt-get install chromium``) and Playwright; without them these tests
skip, unless ``TPLIB_REQUIRE_BROWSER=1`` (CI) makes that a failure. Screenshots go to
``TPLIB_SCREENSHOTS`` or a ``screenshots`` folder under pytest's temporary directory.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from browser_harness import (
    JupyterLab,
    LabPage,
    NotebookError,
    View,
    browser_session,
    check_notebook,
    clean_notebook_copy,
    require_browser,
    running_lab,
    screenshot_folder,
)

DATA = Path(__file__).resolve().parent / "data" / "browser"
FIXTURE = DATA / "views_demo.ipynb"

# What a person does with the fixture's views, and what each must show afterwards.
VIEWS = [
    View("slider", label="channel", press=["ArrowRight"], output_contains="channel 1:",
         output_image=True),
    View("slider", label="channel", press=["End"], output_contains="channel 7:",
         output_image=True),
    View("dropdown", label="layer", option="conv5_3",
         output_contains="layer conv5_3: 100,352 features"),
    View("dropdown", label="layer"),  # the next option: conv5_3 -> relu7
    View("slider", label="C", value=100, output_contains="C = 100: test accuracy"),
    View("slider", label="C", press=["ArrowLeft"], output_matches=r"C = 31\.6\d*: test accuracy"),
]

# Appended to the broken variant: an observe callback that raises outside any Output
# widget (ipywidgets then only sends the traceback to JupyterLab's log console).
BAD_OBSERVER = (
    "bad = widgets.Dropdown(options=['a', 'b'], description='bad')\n"
    "def explode(change):\n"
    "    raise RuntimeError('observer failed on purpose')\n"
    "bad.observe(explode, names='value')\n"
    "display(bad)"
)


def _variant(dst: Path, *, broken: bool = False, append: str | None = None,
             insert_after: int | None = None) -> Path:
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if broken:
            src = src.replace("BROKEN = False", "BROKEN = True")
        cell["source"] = src
    if append is not None:
        new = {"cell_type": "code", "execution_count": None, "id": f"extra-{dst.stem}",
               "metadata": {}, "outputs": [], "source": append}
        nb["cells"].insert(len(nb["cells"]) if insert_after is None else insert_after + 1, new)
    dst.write_text(json.dumps(nb, indent=1))
    return dst


@pytest.fixture(scope="module")
def chromium():
    return require_browser()


@pytest.fixture(scope="module")
def browser(chromium):
    with browser_session(chromium) as b:
        yield b


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory):
    path = screenshot_folder(tmp_path_factory)
    print(f"\nscreenshots: {path}")
    return path


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser-notebooks")
    return {
        "demo": FIXTURE,
        "broken": _variant(d / "views_broken.ipynb", broken=True, append=BAD_OBSERVER),
        "cell_error": _variant(d / "views_cell_error.ipynb", insert_after=1,
                               append="raise RuntimeError('cell failed on purpose')"),
    }


@pytest.fixture(scope="module")
def lab(chromium, notebooks):
    with running_lab(notebooks.values()) as server:
        yield server


def test_clean_copy_has_no_outputs_or_widget_state(tmp_path):
    """A served copy can only show what a live kernel draws."""
    nb = json.loads(FIXTURE.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "old"}]
    nb["cells"][1]["execution_count"] = 7
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    stale = tmp_path / "stale.ipynb"
    stale.write_text(json.dumps(nb))
    copy = json.loads(clean_notebook_copy(stale, tmp_path / "copy" / "stale.ipynb").read_text())
    assert "widgets" not in copy["metadata"]
    assert copy["metadata"]["kernelspec"]["name"] == "python3"
    for cell in copy["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert [c["source"] for c in copy["cells"]] == [c["source"] for c in nb["cells"]]


@pytest.mark.browser
def test_lab_leaves_no_process_behind(chromium, tmp_path):
    """Kernels, and what they started in a session of their own, all end with the lab."""
    # A kernel that first starts a child in a new session: neither the server's process
    # group nor the kernel's reaches it; only the harness's psutil sweep does.
    spec = {"argv": ["/bin/sh", "-c",
                     'setsid sleep 600 & exec "$0" -m ipykernel_launcher -f "$1"',
                     sys.executable, "{connection_file}"],
            "display_name": "stubborn", "language": "python"}
    lab = JupyterLab([FIXTURE], kernelspecs={"stubborn": spec}, workdir=tmp_path / "lab")
    lab.start()
    try:
        kernel = lab.api("POST", "/api/kernels", body={"name": "stubborn"})
        server = psutil.Process(lab.proc.pid)
        deadline = time.monotonic() + 60
        while True:
            started = server.children(recursive=True)
            kernels = [p for p in started if "ipykernel_launcher" in " ".join(p.cmdline())]
            sleepers = [p for p in started if p.name() == "sleep"]
            if kernels and sleepers:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"kernel {kernel['id']} did not start:\n{lab.log_text()[-2000:]}")
            time.sleep(0.2)
        assert os.getsid(sleepers[0].pid) not in (os.getsid(server.pid), os.getsid(kernels[0].pid))
    finally:
        lab.stop()  # raises LeftoverProcesses if anything survived
    everything = [server, *started]
    assert [p for p in everything if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert {p.pid for p in everything} <= {p.pid for p in lab.processes}


@pytest.mark.browser
def test_views_respond_in_jupyterlab(lab, browser, screenshot_dir, tmp_path):
    """Slider keys, a dropdown choice, a typed readout and an upload change the outputs."""
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (200, 40, 40)).save(photo)
    views = [*VIEWS, View("upload", label="photo", files=[photo],
                          output_contains="photo.png: 32x24 pixels, mode RGB")]
    result = check_notebook(lab, browser, FIXTURE.name, views, screenshot_dir=screenshot_dir)
    print("\n" + result.summary())

    channel1, channel7, conv5, nxt, c100, c_left, upload = result.views
    assert "channel 0:" in channel1.before.text and len(channel1.before.images) == 1
    assert channel1.after.images != channel1.before.images  # a new figure, not only text
    assert channel7.after.images != channel1.after.images
    assert "relu7" in conv5.before.text
    assert "layer relu7: 4,096 features" in nxt.after.text  # the option after conv5_3
    assert "C = 1: test accuracy" in c100.before.text
    assert "no photo yet" in upload.before.text
    shot = result.screenshots[0]
    assert shot.exists() and shot.stat().st_size > 20_000
    # JupyterLab with a kernel, run and checked within the test's time budget.
    assert result.total_seconds < 60, result.summary()


@pytest.mark.browser
def test_broken_callbacks_are_reported(lab, browser, notebooks, screenshot_dir):
    """An exception in a callback fails the view, whether ipywidgets shows it in the
    view's Output (interact) or only sends it to the log console (a bare observe)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = LabPage(lab, context.new_page(), notebooks["broken"].name)
        page.screenshot_dir = screenshot_dir
        page.open()
        page.run_all()  # the callbacks only break once a control moves

        with pytest.raises(NotebookError) as interact_error:
            page.apply(View("slider", label="channel", press=["ArrowRight"], timeout=20))
        message = str(interact_error.value)
        print("\n" + message[:800])
        assert "ValueError: broken callback for channel 1" in message
        assert "inside a widget output" in message
        assert "screenshot:" in message

        with pytest.raises(NotebookError) as observe_error:
            page.apply(View("dropdown", label="bad", timeout=20))
        message = str(observe_error.value)
        assert "log console" in message
        assert "RuntimeError: observer failed on purpose" in message
    finally:
        context.close()
        lab.shutdown_kernels()


@pytest.mark.browser
def test_cell_error_fails_run_all(lab, browser, notebooks, screenshot_dir):
    with pytest.raises(NotebookError) as error:
        check_notebook(lab, browser, notebooks["cell_error"].name, VIEWS[:1],
                       screenshot_dir=screenshot_dir)
    message = str(error.value)
    assert "running all cells" in message
    assert "RuntimeError: cell failed on purpose" in message
    assert "cell 2" in message  # the inserted cell, counted with the markdown cells
