"""Run notebooks headless on a kernel with Google Colab's ipywidgets 7.7.1.

Colab ships ipywidgets 7.7.1 (with IPython 7.34 and ipykernel 5.5.6) and it must not be
upgraded there, while JupyterLab 4 only renders ipywidgets 8. The lab's views are written
to the API both share; this module catches a Colab-only break: it executes a notebook with
``jupyter nbconvert --execute`` on a kernel whose ipywidgets is 7.7.1, then moves every
slider and dropdown once from inside the kernel (so the callbacks run under 7.7.1 too) and
reports tracebacks, including those that ipywidgets caught into an Output widget.

The kernel's interpreter is a small virtual environment, by default ``.venv-widgets7/`` in
the repository (git-ignored; ``TPLIB_WIDGETS7_VENV`` moves it, ``TPLIB_WIDGETS7_PYTHON``
names an existing interpreter instead). It holds only the widget and kernel packages; a
``.pth`` file placed after its own site-packages adds the main environment's (torch,
numpy, matplotlib, tplib...), so nothing heavy is installed twice and its own packages win.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Installed without their dependencies: only what the kernel side needs from them.
# (widgetsnbextension 3.6 would pull the classic notebook and an older JupyterLab.)
WIDGETS7_NODEPS = ["ipywidgets==7.7.1", "widgetsnbextension==3.6.1",
                   "jupyterlab_widgets==1.1.1", "ipython_genutils==0.2.0"]
# Colab's kernel and shell; their dependencies come from the main environment when it
# already satisfies them.
WIDGETS7_KERNEL = ["ipykernel==5.5.6", "ipython==7.34.0"]
MARKER = "tplib-widgets7.json"

# Appended to the copy that runs: every slider and dropdown moves once, from the kernel.
POKE_CELL = '''\
# Compatibility check: move every slider and dropdown once, so their callbacks run here.
from ipywidgets.widgets import widget as _widget_module
import ipywidgets as _w

_all = getattr(_widget_module, "_instances", None)  # ipywidgets 8
if _all is None:
    _all = _widget_module.Widget.widgets  # ipywidgets 7
_moved = []
for _x in list(_all.values()):
    if isinstance(_x, _w.FloatLogSlider):
        _top = _x.base ** _x.max
        _x.value = _top if _x.value != _top else _x.base ** _x.min
    elif isinstance(_x, (_w.IntSlider, _w.FloatSlider)):
        _x.value = _x.max if _x.value != _x.max else _x.min
    elif isinstance(_x, (_w.Dropdown, _w.ToggleButtons, _w.RadioButtons)) and len(_x.options) > 1:
        _x.index = 0 if _x.index is None else (_x.index + 1) % len(_x.options)
    else:
        continue
    _moved.append(f"{type(_x).__name__}({_x.description!r})")
print("TPLIB-POKED", _w.__version__, len(_moved), ", ".join(_moved))
'''


# ``jupyter nbconvert`` with one change: the client waits for kernel messages in short
# slices. With Colab's ipykernel 5.5.6 (and 6.x), the asyncio zmq client here
# often misses the edge-triggered wake-up of an execute_reply that is already queued and
# sleeps until the cell's whole timeout (measured: 20 s stalls with timeout=20, 300 s with
# 300) although the kernel replied in milliseconds. Polling again finds the queued reply.
NBCONVERT = f"""\
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "tools")!r})
from refresh_notebooks import patch_message_waits
patch_message_waits()
from nbconvert.nbconvertapp import main
sys.argv[0] = "jupyter-nbconvert"
sys.exit(main())
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _purelib(python: Path | str) -> str:
    return subprocess.run([str(python), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()


def _spec() -> dict:
    return {"nodeps": WIDGETS7_NODEPS, "kernel": WIDGETS7_KERNEL,
            "main_site": sysconfig.get_paths()["purelib"],
            "python": sys.version.split()[0]}


def widgets7_venv_dir() -> Path:
    return Path(os.environ.get("TPLIB_WIDGETS7_VENV") or REPO / ".venv-widgets7")


def widgets7_python(log=print) -> Path:
    """The interpreter of the ipywidgets 7.7.1 environment; created on first use.

    Reused while its marker file matches this environment (same packages, same Python,
    same main site-packages); otherwise rebuilt next to it and moved into place.
    """
    if os.environ.get("TPLIB_WIDGETS7_PYTHON"):
        return Path(os.environ["TPLIB_WIDGETS7_PYTHON"])
    venv = widgets7_venv_dir()
    python = venv / "bin" / "python"
    marker = venv / MARKER
    spec = _spec()
    try:
        if json.loads(marker.read_text()) == spec and python.exists():
            return python
    except (OSError, ValueError):
        pass
    t0 = time.monotonic()
    build = venv.with_name(f"{venv.name}.build-{os.getpid()}")
    shutil.rmtree(build, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(build)], check=True)
    site = Path(_purelib(build / "bin" / "python"))
    # Processed after the venv's own site-packages is on sys.path: its packages win.
    # addsitedir (not a bare path) also runs the main environment's .pth files (the
    # editable tplib install).
    (site / "zzz_tplib_main_env.pth").write_text(
        f"import site; site.addsitedir({spec['main_site']!r})\n")
    pip = [sys.executable, "-m", "pip", "--python", str(build / "bin" / "python"),
           "install", "--disable-pip-version-check"]
    for args in (["--no-deps", "--ignore-installed", *WIDGETS7_NODEPS], WIDGETS7_KERNEL):
        # pip's resolver complains that the main environment's JupyterLab wants a newer
        # ipykernel: true, and irrelevant to this kernel-only environment.
        proc = subprocess.run(pip + args, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            raise RuntimeError(f"could not create {venv}: pip install {' '.join(args)}:\n"
                               f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    shutil.rmtree(venv, ignore_errors=True)
    build.rename(venv)
    (venv / MARKER).write_text(json.dumps(spec))
    log(f"created {venv} in {time.monotonic() - t0:.1f} s")
    return python


def kernel_versions(python: Path | str, modules=("ipywidgets", "ipykernel", "IPython",
                                                 "torch")) -> dict[str, str]:
    """``{module: version}`` as imported by ``python`` (a failed import raises)."""
    code = ("import importlib, json, sys; print(json.dumps({m: getattr(importlib.import_module(m), "
            "'__version__', '?') for m in sys.argv[1:]}))")
    out = subprocess.run([str(python), "-c", code, *modules], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class HeadlessRun:
    """What ``execute_headless`` saw."""

    notebook: dict
    seconds: float
    errors: list[str] = field(default_factory=list)
    poke_output: str = ""

    def cell_texts(self) -> list[str]:
        texts = []
        for cell in self.notebook.get("cells", []):
            for out in cell.get("outputs", []):
                texts.append("".join(out.get("text", "")) +
                             "".join(out.get("data", {}).get("text/plain", "")))
        return texts


def _output_errors(outputs, where: str) -> list[str]:
    found = []
    for out in outputs or []:
        if out.get("output_type") == "error":
            tb = _strip_ansi("\n".join(out.get("traceback", [])))
            found.append(f"{where}: {out.get('ename')}: {out.get('evalue')}\n{tb[-1500:]}")
        elif out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = "".join(out.get("text", ""))
            if "Traceback" in text:
                found.append(f"{where}: {text.strip()[-1500:]}")
    return found


def execute_headless(notebook: Path | str, python: Path | str, *, poke: bool = True,
                     timeout: float = 300.0, workdir: Path | str | None = None) -> HeadlessRun:
    """``jupyter nbconvert --execute`` a clean copy of ``notebook`` on ``python``'s kernel.

    Raises ``AssertionError`` with nbconvert's message when a cell fails; returns the
    executed notebook with ``errors``: tracebacks the widgets' Output areas captured.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser_harness import clean_notebook_copy

    with tempfile.TemporaryDirectory(prefix="tplib-nbconvert-") as tmp:
        tmp = Path(tmp)
        work = Path(workdir) if workdir else tmp / "run"
        src = clean_notebook_copy(Path(notebook), work / Path(notebook).name, "widgets7")
        nb = json.loads(src.read_text())
        if poke:
            nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "tplib-poke",
                                "metadata": {}, "outputs": [], "source": POKE_CELL})
            src.write_text(json.dumps(nb))
        kdir = tmp / "data" / "kernels" / "widgets7"
        kdir.mkdir(parents=True)
        (kdir / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "widgets7", "language": "python"}))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JUPYTER", "IPYTHON")) and k != "MPLBACKEND"}
        env.update({"JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
                    "JUPYTER_RUNTIME_DIR": str(tmp / "rt"), "IPYTHONDIR": str(tmp / "ipy"),
                    "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        out = work / "executed.ipynb"
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", NBCONVERT, "--to", "notebook", "--execute",
             "--ExecutePreprocessor.kernel_name=widgets7",
             f"--ExecutePreprocessor.timeout={int(timeout)}",
             "--output", str(out), str(src)],
            cwd=work, env=env, capture_output=True, text=True, timeout=timeout + 60)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            raise AssertionError(f"nbconvert --execute failed on {Path(notebook).name} "
                                 f"with {python}:\n{_strip_ansi(proc.stderr)[-4000:]}")
        executed = json.loads(out.read_text())
    run = HeadlessRun(executed, seconds)
    for i, cell in enumerate(executed["cells"]):
        run.errors += _output_errors(cell.get("outputs"), f"cell {i}")
        if cell.get("id") == "tplib-poke":
            run.poke_output = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
    state = executed.get("metadata", {}).get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model_id, model in state.items():
        if model.get("model_name") == "OutputModel":
            run.errors += _output_errors(model.get("state", {}).get("outputs"),
                                         f"Output widget {model_id[:8]}")
    return run
