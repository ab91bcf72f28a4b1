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
    check_notebook,
    clean_notebook_copy,
    running_lab,
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


def _variant(dst: Path, *, broken: bool = False, append: tuple[str, ...] = ()) -> Path:
    """The fixture with ``BROKEN = True`` and/or extra code cells at its end."""
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if broken:
            src = src.replace("BROKEN = False", "BROKEN = True")
        cell["source"] = src
    for i, code in enumerate(append):
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"extra-{i}",
                            "metadata": {}, "outputs": [], "source": code})
    dst.write_text(json.dumps(nb, indent=1))
    return dst


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser-notebooks")
    broken = _variant(d / "views_broken.ipynb", broken=True,
                      append=(BAD_OBSERVER, "raise RuntimeError('cell failed on purpose')"))
    return {"demo": FIXTURE, "broken": broken}


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
    """Kernels, and what they started, all end with the lab: even a child in a session of
    its own (beyond any process group) and an orphan (no longer a descendant)."""
    spec = {"argv": ["/bin/sh", "-c",
                     "setsid sleep 601 & (sleep 602 &) ; "
                     'exec "$0" -m ipykernel_launcher -f "$1"',
                     sys.executable, "{connection_file}"],
            "display_name": "stubborn", "language": "python"}
    lab = JupyterLab([FIXTURE], kernelspecs={"stubborn": spec}, workdir=tmp_path / "lab")
    lab.start()
    try:
        kernel = lab.api("POST", "/api/kernels", body={"name": "stubborn"})
        server = psutil.Process(lab.proc.pid)
        deadline = time.monotonic() + 60
        while True:
            tree = server.children(recursive=True)
            kernels = [p for p in tree if "ipykernel_launcher" in " ".join(p.cmdline())]
            in_tree = [p for p in tree if p.cmdline()[:2] == ["sleep", "601"]]
            orphans = [p for p in psutil.process_iter() if p.name() == "sleep"
                       and p.cmdline()[1:] == ["602"]
                       and p.environ().get("TPLIB_LAB_ID") == lab.lab_id]
            if kernels and in_tree and orphans:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"kernel {kernel['id']} did not start:\n{lab.log_text()[-2000:]}")
            time.sleep(0.2)
        assert os.getsid(in_tree[0].pid) not in (os.getsid(server.pid), os.getsid(kernels[0].pid))
        assert orphans[0].pid not in {p.pid for p in tree}
    finally:
        lab.stop()  # raises LeftoverProcesses if anything survived
    everything = [server, *tree, *orphans]
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
def test_broken_notebook_is_reported(lab, browser, notebooks, screenshot_dir):
    """A failing cell fails Run All; an exception in a callback fails its view, whether
    ipywidgets shows it in the view's Output (interact) or only sends it to the log
    console (a bare observe). In one page, to load JupyterLab once."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = LabPage(lab, context.new_page(), notebooks["broken"].name)
        page.screenshot_dir = screenshot_dir
        page.open()

        with pytest.raises(NotebookError) as cell_error:
            page.run_all()
        message = str(cell_error.value)
        assert "running all cells: the page shows an error" in message
        assert "RuntimeError: cell failed on purpose" in message
        assert "cell 11:" in message  # the last cell (markdown cells count)
        assert "screenshot:" in message
        # Every earlier cell ran: the views are live, and break once a control moves.

        with pytest.raises(NotebookError) as interact_error:
            page.apply(View("slider", label="channel", press=["ArrowRight"], timeout=20))
        message = str(interact_error.value)
        print("\n" + message[:800])
        assert "ValueError: broken callback for channel 1" in message
        assert "inside a widget output" in message

        with pytest.raises(NotebookError) as observe_error:
            page.apply(View("dropdown", label="bad", timeout=20))
        message = str(observe_error.value)
        assert "log console (error)" in message
        assert "RuntimeError: observer failed on purpose" in message
    finally:
        context.close()
        lab.shutdown_kernels()
