r"""Drive notebooks' ipywidgets views in a real JupyterLab 4 in headless Chromium.

A test names a notebook and what its views must do when a person uses them (the
fixtures ``browser`` and ``screenshot_dir`` come from tests/conftest.py)::

    import pytest
    from browser_harness import View, check_notebook, running_lab

    NOTEBOOK = REPO / "notebooks" / "activations.ipynb"
    VIEWS = [
        View("slider", label="channel", press=["ArrowRight"], output_contains="channel 1",
             output_image=True),
        View("dropdown", label="layer", option="conv5_3", output_contains="conv5_3"),
        View("slider", label="C", value=10, output_matches=r"accuracy \d+\.\d%"),
        View("upload", label="photo", files=[PHOTO], output_image=True),
    ]

    @pytest.mark.browser
    def test_activation_views(browser, screenshot_dir):
        with running_lab([NOTEBOOK], env={"TPLIB_REAL_DATA": str(DATA)}) as lab:
            result = check_notebook(lab, browser, NOTEBOOK.name, VIEWS,
                                    screenshot_dir=screenshot_dir)
        print(result.summary())

``running_lab`` serves COPIES of the notebooks with every output and the saved widget
state removed, so a view can only pass when a live kernel drew it. ``check_notebook``
opens the notebook, runs all cells, fails on a cell error, a traceback inside a widget's
Output or in JupyterLab's log console (where ipywidgets sends an ``observe`` callback's
exception), a widget that cannot render (ipywidgets' red error box), a dialog or a dead
kernel, then applies each ``View`` and waits until the output next to the control changes
and holds still. Every failure raises ``NotebookError`` with what the page showed and the
path of a screenshot.

Everything runs in temporary folders (Jupyter config, data, runtime, lab settings,
workspaces, IPython profile): the user's settings never matter, and ``running_lab``
leaves no process behind (it raises ``LeftoverProcesses`` if one survived).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import psutil

__all__ = [
    "BrowserUnavailable",
    "JupyterLab",
    "LabPage",
    "LeftoverProcesses",
    "NotebookError",
    "NotebookResult",
    "View",
    "ViewResult",
    "browser",
    "browser_session",
    "check_notebook",
    "chromium",
    "chromium_executable",
    "clean_notebook_copy",
    "require_browser",
    "running_lab",
    "screenshot_dir",
    "screenshot_folder",
]

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]

# JupyterLab user settings written into the temporary settings folder.
LAB_SETTINGS = {
    # Every cell stays in the DOM (the default windowing can leave off-screen cells
    # unrendered, so prompts, outputs and widgets would be missing from the page).
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No "Would you like to receive official Jupyter news?" toast, no update check.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

SERVER_CONFIG = {
    "ServerApp": {
        "open_browser": False,
        "terminals_enabled": False,
    },
    # The language-server extension would scan the system for servers at start: slow and
    # unused here. (Switching it off entirely makes the page poll a missing /lsp/status.)
    "LanguageServerManager": {"autodetect": False},
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
    },
}

# The red box ipywidgets draws when a view cannot render, and the renderer's own message.
WIDGET_ERROR_SELECTOR = ".jupyter-widgets-error-widget"
WIDGET_ERROR_TEXTS = ("Error displaying widget", "is not registered",
                      "Failed to load model class", "Failed to create view")

# Controls a View can drive: CSS class of the view's root element in ipywidgets 8.
CONTROLS = {
    "slider": ".widget-slider",  # IntSlider, FloatSlider, FloatLogSlider, ...
    "dropdown": ".widget-dropdown",
    "upload": ".widget-upload",
    "button": "button.widget-button",
    "checkbox": ".widget-checkbox",
    "text": ".widget-text",
    "toggle_buttons": ".widget-toggle-buttons",
}

# Elements whose content is "the output" of a view.
OUTPUT_SELECTOR = ".widget-output, .widget-html, .widget-htmlmath, .widget-image"

KERNEL_LOG_ERRORS = re.compile(r"Traceback \(most recent call last\)|Exception in comm_msg|"
                               r"Error in observer")


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing."""


class NotebookError(AssertionError):
    """A notebook or one of its views did not do what the test expects."""


class LeftoverProcesses(AssertionError):
    """A process started by the lab server survived its shutdown."""


# --------------------------------------------------------------------------- browser


def chromium_executable() -> str | None:
    """Path of a Chromium to drive: ``TPLIB_CHROMIUM``, else the system's, else None."""
    env = os.environ.get("TPLIB_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _playwright_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed ({exc}); pip install playwright"
    for mod in ("jupyterlab", "ipywidgets", "ipykernel"):
        try:
            __import__(mod)
        except ImportError as exc:
            return f"{mod} is not installed ({exc})"
    return None


def require_browser() -> str:
    """Chromium's path, or skip the calling test (fail when ``TPLIB_REQUIRE_BROWSER=1``)."""
    reason = _playwright_missing()
    exe = chromium_executable()
    if reason is None and exe is None:
        reason = ("no Chromium found: apt-get install chromium (or set TPLIB_CHROMIUM to a "
                  "Chromium/Chrome executable)")
    if reason is not None:
        if os.environ.get("TPLIB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TPLIB_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return exe


@contextlib.contextmanager
def browser_session(executable: str | None = None, headless: bool = True) -> Iterator:
    """A Playwright ``Browser`` (headless Chromium with a fresh temporary profile)."""
    reason = _playwright_missing()
    executable = executable or chromium_executable()
    if reason or executable is None:
        raise BrowserUnavailable(reason or "no Chromium found")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=headless,
                                    args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --------------------------------------------------------------------------- notebooks


def clean_notebook_copy(src: Path, dst: Path, kernel_name: str | None = "python3") -> Path:
    """Copy a notebook without outputs, execution counts or saved widget state.

    With ``kernel_name`` the copy also asks for that kernel, so JupyterLab never opens its
    kernel picker. Plain JSON, no nbformat: importing nbformat is slow here.
    """
    nb = json.loads(Path(src).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    meta = nb.setdefault("metadata", {})
    meta.pop("widgets", None)
    if kernel_name:
        display = "Python 3 (ipykernel)" if kernel_name == "python3" else kernel_name
        meta["kernelspec"] = {"name": kernel_name, "display_name": display,
                              "language": "python"}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return dst


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A ``jupyter lab`` server on 127.0.0.1 serving clean copies of some notebooks.

    Use it through ``running_lab(...)`` (or as a context manager). ``root`` holds the
    copies; ``url(name)`` opens one; ``log_text()`` is the server's log, with what its
    kernels wrote to their real stdout/stderr (a crash, a C-level warning).

    Every process it starts carries ``TPLIB_LAB_ID`` in its environment: ``stop()`` ends
    the server's process tree and any process holding that mark, so a kernel's child that
    left the process group (or was orphaned) is found as well.

    notebooks: copied clean into ``root``; extra_files: copied beside them; links:
    symlinked beside them (data folders); env: added to the environment of the server and
    its kernels (e.g. ``TPLIB_CACHE``; ``MPLBACKEND`` is removed so figures show inline);
    kernel_name: the kernel every copy asks for; kernelspecs: ``{name: kernel.json
    content}`` installed in the temporary data folder; workdir: keep everything there
    instead of in a temporary folder removed at stop.
    """

    def __init__(self, notebooks: Iterable[Path | str], *, workdir: Path | str | None = None,
                 extra_files: Iterable[Path | str] = (), links: Iterable[Path | str] = (),
                 env: dict[str, str] | None = None,
                 kernel_name: str | None = "python3", kernelspecs: dict[str, dict] | None = None,
                 startup_timeout: float = 90.0):
        self.notebooks = [Path(n) for n in notebooks]
        self.extra_files = [Path(f) for f in extra_files]  # copied beside the notebooks
        self.links = [Path(f) for f in links]  # symlinked beside them (data folders)
        self.extra_env = dict(env or {})
        self.kernel_name = kernel_name
        self.kernelspecs = dict(kernelspecs or {})
        self.startup_timeout = startup_timeout
        self._workdir_arg = Path(workdir) if workdir else None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.token = secrets.token_hex(24)
        self.lab_id = secrets.token_hex(8)
        self.processes: list[psutil.Process] = []  # everything the server started, seen at stop

    # ---- paths and URLs
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base}/lab/tree/{name}?reset&token={self.token}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # ---- REST
    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", method=method, data=data,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict]:
        return self.api("GET", "/api/kernels")

    def shutdown_kernels(self) -> None:
        """Stop every running kernel (the server keeps running)."""
        for k in self.kernels():
            with contextlib.suppress(urllib.error.URLError, OSError):
                self.api("DELETE", f"/api/kernels/{k['id']}", timeout=30)

    # ---- start / stop
    def _prepare(self) -> dict[str, str]:
        if self._workdir_arg is not None:
            work = self._workdir_arg
            work.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="tplib-lab-")
            work = Path(self._tmp.name)
        self.work = work
        self.root = work / "notebooks"
        self.root.mkdir(exist_ok=True)
        for nb in self.notebooks:
            clean_notebook_copy(nb, self.root / nb.name, self.kernel_name)
        for f in self.extra_files:
            target = self.root / f.name
            if f.is_dir():
                shutil.copytree(f, target, dirs_exist_ok=True)
            else:
                shutil.copy2(f, target)
        for f in self.links:
            target = self.root / f.name
            if not target.exists():
                target.symlink_to(f.resolve(), target_is_directory=f.is_dir())
        dirs = {name: work / name for name in
                ("config", "data", "runtime", "settings", "workspaces", "ipython")}
        for d in dirs.values():
            d.mkdir(exist_ok=True)
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
        for plugin, values in LAB_SETTINGS.items():
            path = dirs["settings"] / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        for name, spec in self.kernelspecs.items():
            kdir = dirs["data"] / "kernels" / name
            kdir.mkdir(parents=True, exist_ok=True)
            (kdir / "kernel.json").write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JUPYTER", "IPYTHON")) and k not in ("MPLBACKEND",)}
        # MPLBACKEND=Agg (set by CI) would stop the kernel's inline figures.
        env.update({
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "PYTHONUNBUFFERED": "1",
            "TPLIB_LAB_ID": self.lab_id,
        })
        env.update(self.extra_env)
        return env

    def start(self) -> "JupyterLab":
        env = self._prepare()
        self.log_path = self.work / "jupyter-lab.log"
        last_error = ""
        for _attempt in range(3):  # the free port can be taken between probe and bind
            self.port = _free_port()
            cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
                   "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
                   f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                self.stop(check=False)
        raise RuntimeError(last_error)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n"
                                   f"{self.log_text()[-3000:]}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not answer within {self.startup_timeout:.0f} s:\n"
                           f"{self.log_text()[-3000:]}")

    def stop(self, check: bool = True, timeout: float = 15.0) -> None:
        """Shut down kernels and the server; kill whatever is left of its processes.

        With ``check``, raise ``LeftoverProcesses`` if any process survived.
        """
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        seen = self._own_processes(proc.pid, {})
        if proc.poll() is None:
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                self.api("POST", "/api/shutdown", timeout=timeout)  # stops the kernels first
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
            # The server's group, then every process it had or that carries its mark
            # (kernels run in sessions of their own: the group alone would miss them).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            seen = self._own_processes(proc.pid, seen)
            alive = [p for p in seen.values() if _alive(p)]
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.send_signal(sig)
            psutil.wait_procs(alive, timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if not any(_alive(p) for p in self._own_processes(proc.pid, seen).values()):
                break
        self.processes = list(seen.values())
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        survivors = [p for p in self.processes if _alive(p)]
        if check and survivors:
            raise LeftoverProcesses(f"still running after the lab stopped: {survivors}")

    def _own_processes(self, pid: int, seen: dict[int, psutil.Process]) -> dict[int, psutil.Process]:
        """``seen`` plus the server, its descendants and every process with its mark."""
        found = dict(seen)
        with contextlib.suppress(psutil.Error):
            server = psutil.Process(pid)
            found.setdefault(pid, server)
            for p in server.children(recursive=True):
                found.setdefault(p.pid, p)
        me = os.getpid()
        for p in psutil.process_iter():
            if p.pid in found or p.pid == me:
                continue
            with contextlib.suppress(psutil.Error):
                if p.environ().get("TPLIB_LAB_ID") == self.lab_id:
                    found[p.pid] = p
        return found

    def __enter__(self) -> "JupyterLab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(check=exc[0] is None)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def running_lab(notebooks: Iterable[Path | str], **kwargs) -> JupyterLab:
    """``with running_lab([nb, ...]) as lab:`` a started ``JupyterLab`` (see its arguments)."""
    return JupyterLab(notebooks, **kwargs)


# --------------------------------------------------------------------------- views


@dataclass
class View:
    """One use of one control, and what its output must show afterwards.

    control: a key of ``CONTROLS`` ("slider", "dropdown", "upload", "button", "checkbox",
        "text", "toggle_buttons").
    label: the control's description (the text left of it; a button's or an upload's
        caption); None: any. index: which of the matching controls (0: the first, in page
        order). cell: only controls in this notebook cell (0-based, markdown cells count).
    The action: slider: ``value`` typed into its readout if given, else the keys in
        ``press`` on its focused handle ("ArrowRight", "ArrowLeft", "End", "Home",
        "PageUp"...); dropdown / toggle_buttons: ``option`` (a label; None: the next one);
        upload: ``files``; text: ``value`` typed then Enter; button / checkbox: a click.
    Expectations on the watched output (``watch="cell"``: the widget outputs of the
        control's cell; an int: those of that notebook cell; "notebook": all of them;
        else a CSS selector, first match): it changes (``expect_change``), its text
        contains ``output_contains`` / matches the regular expression ``output_matches``,
        it shows an image (``output_image=True``) or none (False), within ``timeout`` s.
    """

    control: str
    label: str | None = None
    index: int = 0
    cell: int | None = None
    press: Sequence[str] = ("ArrowRight",)
    value: str | float | None = None
    option: str | None = None
    files: Sequence[Path | str] = ()
    output_contains: str | None = None
    output_matches: str | None = None
    output_image: bool | None = None
    expect_change: bool = True
    watch: str | int = "cell"
    timeout: float = 30.0

    def __post_init__(self):
        if self.control not in CONTROLS:
            raise ValueError(f"unknown control {self.control!r}; one of {sorted(CONTROLS)}")
        if isinstance(self.press, str):
            self.press = (self.press,)

    def describe(self) -> str:
        where = f" {self.label!r}" if self.label is not None else ""
        where += f" #{self.index}" if self.index else ""
        where += f" in cell {self.cell}" if self.cell is not None else ""
        if self.control == "slider":
            act = f"readout := {self.value}" if self.value is not None else "+".join(self.press)
        elif self.control in ("dropdown", "toggle_buttons"):
            act = f"pick {self.option!r}" if self.option is not None else "pick the next option"
        elif self.control == "upload":
            act = "upload " + ", ".join(Path(f).name for f in self.files)
        elif self.control == "text":
            act = f"type {self.value!r}"
        else:
            act = "click"
        return f"{self.control}{where}: {act}"


@dataclass
class Snapshot:
    """What a view's output shows: its text and its images (digests of their sources)."""

    text: str
    images: tuple[str, ...] = ()

    @classmethod
    def from_page(cls, raw: dict) -> "Snapshot":
        return cls(raw["text"], tuple(hashlib.sha1(s.encode()).hexdigest()[:12]
                                      for s in raw["images"]))


@dataclass
class ViewResult:
    view: View
    before: Snapshot
    after: Snapshot
    seconds: float

    def summary(self) -> str:
        text = " | ".join(line for line in self.after.text.splitlines() if line.strip())
        return (f"{self.view.describe()} -> {text[:120]!r}"
                f"{f' + {len(self.after.images)} image(s)' if self.after.images else ''}"
                f" in {self.seconds:.2f} s")


@dataclass
class NotebookResult:
    name: str
    open_seconds: float = 0.0
    run_seconds: float = 0.0
    total_seconds: float = 0.0
    views: list[ViewResult] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.name}: opened in {self.open_seconds:.1f} s, ran all cells in "
                 f"{self.run_seconds:.1f} s, {len(self.views)} view(s), "
                 f"{self.total_seconds:.1f} s in all"]
        lines += [f"  {r.summary()}" for r in self.views]
        lines += [f"  screenshot: {p}" for p in self.screenshots]
        return "\n".join(lines)


# JavaScript run in the page. Scope arguments are elements (or null: the whole notebook).
_JS_PROMPTS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(
    c => (c.querySelector('.jp-InputArea-prompt') || {}).innerText || '')"""

# The kernel's state as the status bar shows it ("Python 3 (ipykernel) | Idle"): 'none'
# until a kernel is attached, then 'starting', 'connecting', 'idle', 'busy', 'dead'...
# (the toolbar's execution indicator alone reads 'idle' before any kernel exists).
_JS_KERNEL = """() => {
    const item = [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
        .find(e => (e.title || '').startsWith('Change kernel'));
    const text = item ? item.innerText.trim() : '';
    if (!text || text.startsWith('No Kernel')) return 'none';
    const m = /\\|\\s*([^|]+)$/.exec(text);
    const status = m ? m[1].trim().toLowerCase() : 'unknown';
    const ind = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
    const busy = ind && ind.dataset.status && ind.dataset.status !== 'idle';
    return status === 'idle' && busy ? ind.dataset.status : status;
}"""

_JS_SNAPSHOT = """([root, sel]) => {
    root = root || document.querySelector('.jp-Notebook');
    const all = [...root.querySelectorAll(sel)];
    const tops = all.filter(e => !all.some(o => o !== e && o.contains(e)));
    let text, images;
    if (tops.length) {
        text = tops.map(e => e.innerText.trim()).join('\\n---\\n');
        images = tops.flatMap(e => e.tagName === 'IMG' ? [e] : [...e.querySelectorAll('img')]);
    } else {
        const area = root.querySelector('.jp-Cell-outputArea') || root;
        text = area.innerText.trim();
        images = [...area.querySelectorAll('img')];
    }
    return {text, images: images.map(i => i.getAttribute('src') || '')};
}"""

_JS_ERRORS = """([root, errorSel, errorTexts]) => {
    root = root || document.querySelector('.jp-Notebook');
    const found = [];
    const where = el => {
        const cell = el.closest('.jp-Cell');
        if (!cell) return 'page';
        const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
        return 'cell ' + cells.indexOf(cell) + (el.closest('.widget-output') ? ' (inside a widget output)' : '');
    };
    const errorLine = /^(\\w+\\.)*\\w*(Error|Exception|Exit|Interrupt)\\b(:|$)/m;
    for (const el of root.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')) {
        const t = el.innerText;
        if (t.includes('Traceback') || errorLine.test(t))
            found.push(where(el) + ': ' + t.trim());
    }
    for (const el of root.querySelectorAll(errorSel)) {
        // The box shows "Click to show javascript error."; its click handler (on the
        // view's element) swaps in the message and the stack.
        const host = el.parentElement;
        if (el.classList.contains('icon-error') && host && host.onclick) host.onclick();
        const pre = el.innerText.trim().replace(/^\\[Open Browser Console[^\\]]*\\]\\s*/, '');
        found.push(where(el) + ': ipywidgets could not render a view (red error box): ' + pre);
    }
    for (const el of root.querySelectorAll('.jp-OutputArea-output')) {
        const t = (el.childElementCount === 0 || el.children.length === 1 && el.firstElementChild.tagName === 'PRE')
            ? el.innerText.trim() : '';
        if (t && errorTexts.some(s => t.startsWith(s) || t.includes(s) && t.length < 400))
            found.push(where(el) + ': ' + t);
    }
    return found;
}"""

_JS_LOADING = """() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')]
    .filter(e => e.textContent.trim() === 'Loading widget...').length"""

_JS_DIALOGS = """() => [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.trim())"""

# How many messages the log console holds (its status-bar item is hidden while empty).
# ipywidgets sends there what a callback printed or raised outside any Output widget,
# e.g. the traceback of an ``observe`` callback.
_JS_LOG_COUNT = """() => {
    const item = document.querySelector('.jp-LogConsoleStatusItem');
    if (!item || item.classList.contains('lm-mod-hidden')) return 0;
    return parseInt(item.innerText, 10) || 0;
}"""

# Error-level entries of the log console (open).
_JS_LOG_ERRORS = """() => [...document.querySelectorAll('.jp-LogConsolePanel .jp-OutputArea-child')]
    .filter(e => e.querySelector('[data-log-level="error"], [data-log-level="critical"]'))
    .map(e => (e.querySelector('.jp-OutputArea-output') || e).innerText.trim())"""

# The viewport height that shows the whole notebook, down to its last cell.
_JS_NOTEBOOK_HEIGHT = """() => {
    const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
    const cells = outer ? outer.querySelectorAll('.jp-Cell') : [];
    if (!cells.length) return 0;
    const box = outer.getBoundingClientRect();
    const bottom = cells[cells.length - 1].getBoundingClientRect().bottom - box.top + outer.scrollTop;
    return Math.ceil(box.top + bottom + 40 + (window.innerHeight - box.bottom));
}"""


class LabPage:
    """One notebook open in a JupyterLab tab, driven like a person would."""

    def __init__(self, lab: JupyterLab, page, name: str):
        self.lab = lab
        self.page = page
        self.name = name
        self.console_errors: list[str] = []
        self.screenshot_dir: Path | None = None
        self._log_mark = 0
        self._failures = 0
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"page error: {exc}"))

    def _on_console(self, msg) -> None:
        if msg.type == "error":
            self.console_errors.append(msg.text[:500])

    # ---- state of the page
    def kernel_status(self) -> str:
        return self.page.evaluate(_JS_KERNEL)

    def prompts(self) -> list[str]:
        return self.page.evaluate(_JS_PROMPTS)

    def errors(self, scope=None) -> list[str]:
        """What went wrong on the page so far (empty: nothing).

        Tracebacks in outputs (cells' and widget Outputs', within ``scope`` if given),
        ipywidgets' red error boxes and "Error displaying widget", error entries of the
        log console (a callback's exception outside any Output), dialogs, a dead kernel.
        """
        handle = scope.element_handle() if scope is not None else None
        found = self.page.evaluate(
            _JS_ERRORS, [handle, WIDGET_ERROR_SELECTOR, list(WIDGET_ERROR_TEXTS)])
        found += [f"log console (error): {e}" for e in self.log_console_errors()]
        found += [f"dialog: {d}" for d in self.page.evaluate(_JS_DIALOGS)]
        if self.kernel_status() == "dead":
            found.append("the kernel is dead")
        return found

    def log_console_errors(self) -> list[str]:
        """Error-level entries of JupyterLab's log console (opened once it holds any)."""
        if self.page.evaluate(_JS_LOG_COUNT) == 0:
            return []
        if not self.page.locator(".jp-LogConsolePanel").count():
            self.page.locator(".jp-LogConsoleStatusItem").click()
            self.page.wait_for_selector(".jp-LogConsolePanel .jp-OutputArea-child",
                                        state="attached", timeout=10_000)
        return self.page.evaluate(_JS_LOG_ERRORS)

    def kernel_log_errors(self) -> list[str]:
        """Tracebacks the kernels wrote to the server's log since the last call."""
        text = self.lab.log_text()
        new, self._log_mark = text[self._log_mark:], len(text)
        if not KERNEL_LOG_ERRORS.search(new):
            return []
        return [f"kernel log:\n{new[-4000:].strip()}"]

    def fail(self, message: str, details: Iterable[str] = ()) -> None:
        """Raise ``NotebookError``: the message, the page's errors, a screenshot's path."""
        self._failures += 1
        shot = self.screenshot(suffix="failed" if self._failures == 1 else f"failed{self._failures}")
        parts = [f"{self.name}: {message}", *(_shorten(d) for d in details)]
        if self.console_errors:
            parts.append("browser console errors:\n  " + "\n  ".join(self.console_errors[-8:]))
        if shot:
            parts.append(f"screenshot: {shot}")
        raise NotebookError("\n".join(parts))

    def _wait(self, ready, timeout: float, what: str, poll: float = 0.1, scope=None):
        """Poll ``ready()`` (truthy: done) until ``timeout``; fail on errors meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            errs = self.errors(scope)
            if errs:
                self.fail(f"{what}: the page shows an error", errs)
            got = ready()
            if got:
                return got
            if time.monotonic() > deadline:
                self.fail(f"{what}: timed out after {timeout:.0f} s")
            time.sleep(poll)

    # ---- actions on the notebook
    def open(self, timeout: float = 120.0) -> float:
        """Load the notebook; wait for its kernel to be idle. Returns seconds taken."""
        t0 = time.monotonic()
        self._log_mark = len(self.lab.log_text())
        self.page.goto(self.lab.url(self.name), wait_until="domcontentloaded",
                       timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell",
                                    timeout=timeout * 1000)
        self._wait(lambda: self.kernel_status() == "idle", timeout,
                   "waiting for the kernel to be idle", poll=0.2)
        # Fold the left sidebar away: the notebook gets the whole width (screenshots).
        current = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()
        return time.monotonic() - t0

    def run_all(self, timeout: float = 300.0) -> float:
        """Run > Run All Cells; wait until every code cell ran and the kernel is idle.

        Fails on the first error (JupyterLab stops running cells after an error).
        """
        t0 = time.monotonic()
        prompts = self.prompts()
        if not prompts:
            self.fail("the notebook has no code cell")
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^\s*Run\s*$")).click()
        self.page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
        numbered = re.compile(r"^\[\d+\]:$")

        def done():
            p = self.prompts()
            if any("*" in x for x in p) or self.kernel_status() != "idle":
                return False
            if all(numbered.match(x.strip()) for x in p):
                return True
            return False

        self._wait(done, timeout, "running all cells", poll=0.2)
        self._wait(lambda: self.page.evaluate(_JS_LOADING) == 0, 30,
                   "waiting for the widgets to render")
        self.settle()
        errs = self.errors() + self.kernel_log_errors()
        if errs:
            self.fail("running all cells showed errors", errs)
        return time.monotonic() - t0

    def settle(self, quiet: float = 0.4, timeout: float = 30.0) -> None:
        """Wait until the kernel is idle and the notebook's outputs stop changing."""
        last, since = None, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = (self.kernel_status(), self.page.evaluate(_JS_SNAPSHOT, [None, ".jp-OutputArea"]))
            if snap != last:
                last, since = snap, time.monotonic()
            elif snap[0] == "idle" and time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def widget_count(self) -> int:
        """Rendered widget views (top-level ``.jupyter-widgets`` in outputs)."""
        return self.page.evaluate("""() => [...document.querySelectorAll(
            '.jp-Notebook .jp-Cell-outputArea .jupyter-widgets')].filter(
            e => !e.parentElement.closest('.jupyter-widgets')).length""")

    def controls(self, view: View):
        """Locator of the controls matching ``view`` (kind, label, cell)."""
        root = self.page.locator(".jp-Notebook")
        if view.cell is not None:
            root = self.page.locator(".jp-Notebook .jp-Cell").nth(view.cell)
        loc = root.locator(CONTROLS[view.control])
        if view.label is not None:
            exact = re.compile(rf"^\s*{re.escape(view.label)}\s*$")
            if view.control in ("button", "upload"):
                loc = loc.filter(has_text=re.compile(rf"^\s*{re.escape(view.label)}\b"))
            else:
                loc = loc.filter(has=self.page.locator(
                    ".widget-label, .widget-label-basic span", has_text=exact))
        return loc

    def control(self, view: View):
        loc = self.controls(view)
        n = loc.count()
        if n <= view.index:
            kinds = {k: self.page.locator(f".jp-Notebook {sel}").count()
                     for k, sel in CONTROLS.items()}
            labels = self.page.evaluate("""() => [...document.querySelectorAll(
                '.jp-Notebook .jupyter-widgets .widget-label')].map(e => e.innerText.trim())
                .filter(Boolean)""")
            self.fail(f"{view.describe()}: found {n} such control(s)",
                      [f"controls on the page: { {k: v for k, v in kinds.items() if v} }",
                       f"labels on the page: {labels}"])
        return loc.nth(view.index)

    def snapshot(self, scope) -> Snapshot:
        handle = scope.element_handle() if scope is not None else None
        return Snapshot.from_page(self.page.evaluate(_JS_SNAPSHOT, [handle, OUTPUT_SELECTOR]))

    def _act(self, view: View, ctl) -> None:
        kb = self.page.keyboard
        if view.control == "slider":
            if view.value is not None:
                readout = ctl.locator(".widget-readout")
                readout.click()
                kb.press("Control+A")
                kb.type(str(view.value))
                kb.press("Enter")
            else:
                handle = ctl.locator(".noUi-handle").first
                handle.focus()
                for key in view.press:
                    kb.press(key)
        elif view.control == "dropdown":
            select = ctl.locator("select")
            if view.option is not None:
                select.select_option(label=view.option)
            else:
                labels = select.evaluate("s => [...s.options].map(o => o.label)")
                current = select.evaluate("s => s.selectedIndex")
                select.select_option(label=labels[(current + 1) % len(labels)])
        elif view.control == "toggle_buttons":
            buttons = ctl.locator("button")
            if view.option is not None:
                buttons.filter(has_text=re.compile(rf"^\s*{re.escape(view.option)}\s*$")).click()
            else:
                texts = buttons.all_inner_texts()
                current = ctl.locator("button.mod-active").first.inner_text()
                buttons.nth((texts.index(current) + 1) % len(texts)).click()
        elif view.control == "upload":
            # The view's <input type=file> lives outside the button: click it like a
            # person and answer the file chooser.
            with self.page.expect_file_chooser() as chooser:
                ctl.click()
            chooser.value.set_files([str(f) for f in view.files])
        elif view.control == "text":
            box = ctl.locator("input, textarea").first
            box.fill(str(view.value if view.value is not None else ""))
            box.press("Enter")
        elif view.control == "checkbox":
            ctl.locator("input[type=checkbox]").click()
        else:  # button
            ctl.click()

    def apply(self, view: View) -> ViewResult:
        """Use one control; wait until its output shows what ``view`` expects."""
        t0 = time.monotonic()
        self.kernel_log_errors()  # only new tracebacks count
        ctl = self.control(view)
        ctl.scroll_into_view_if_needed()
        if view.watch == "cell":
            scope = ctl.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]")
        elif view.watch == "notebook":
            scope = self.page.locator(".jp-Notebook").first
        elif isinstance(view.watch, int):
            scope = self.page.locator(".jp-Notebook .jp-Cell").nth(view.watch)
        else:
            scope = self.page.locator(view.watch).first
        before = self.snapshot(scope)
        self._act(view, ctl)
        pattern = re.compile(view.output_matches) if view.output_matches else None

        def satisfied(s: Snapshot) -> bool:
            return ((not view.expect_change or s != before)
                    and (view.output_contains is None or view.output_contains in s.text)
                    and (pattern is None or bool(pattern.search(s.text)))
                    and (view.output_image is None or bool(s.images) == view.output_image))

        state = {"last": None, "since": time.monotonic()}

        def ready():
            if self.kernel_log_errors_peek():
                self.fail(f"{view.describe()}: the kernel logged an error",
                          self.kernel_log_errors())
            s = self.snapshot(scope)
            if s != state["last"]:
                state["last"], state["since"] = s, time.monotonic()
                return False
            # The output must hold still (clear_output(wait=True) redraws in steps).
            if time.monotonic() - state["since"] < 0.3 or self.kernel_status() != "idle":
                return False
            return s if satisfied(s) else False

        try:
            after = self._wait(ready, view.timeout, view.describe(), scope=scope)
        except NotebookError as exc:
            now = state["last"] or self.snapshot(scope)
            log = self.kernel_log_errors()
            raise NotebookError(
                f"{exc}\n{view.describe()}: expected "
                f"{self._expectation(view)}\n  before: {before.text[:600]!r} "
                f"({len(before.images)} image(s))\n  now:    {now.text[:600]!r} "
                f"({len(now.images)} image(s))" + ("\n" + "\n".join(log) if log else "")) from None
        log = self.kernel_log_errors()
        if log:
            self.fail(f"{view.describe()}: the kernel logged an error", log)
        return ViewResult(view, before, after, time.monotonic() - t0)

    def kernel_log_errors_peek(self) -> bool:
        return bool(KERNEL_LOG_ERRORS.search(self.lab.log_text()[self._log_mark:]))

    @staticmethod
    def _expectation(view: View) -> str:
        parts = []
        if view.expect_change:
            parts.append("a changed output")
        if view.output_contains is not None:
            parts.append(f"text containing {view.output_contains!r}")
        if view.output_matches is not None:
            parts.append(f"text matching {view.output_matches!r}")
        if view.output_image is not None:
            parts.append("an image" if view.output_image else "no image")
        return ", ".join(parts) or "nothing"

    def screenshot(self, path: Path | str | None = None, suffix: str = "") -> Path | None:
        """The whole notebook in one PNG (the viewport grows to its height for the shot)."""
        if path is None:
            if self.screenshot_dir is None:
                return None
            stem = Path(self.name).stem + (f"-{suffix}" if suffix else "")
            path = self.screenshot_dir / f"{stem}.png"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = self.page.viewport_size or {"width": 1280, "height": 900}
        try:
            current = size["height"]
            for _ in range(4):  # outputs can reflow at the new size: measure again
                height = max(size["height"], min(int(self.page.evaluate(_JS_NOTEBOOK_HEIGHT) or 0),
                                                 12000))
                if height == current:
                    break
                current = height
                self.page.set_viewport_size({"width": size["width"], "height": height})
                self.page.wait_for_timeout(300)
            self.page.evaluate("""() => document.querySelectorAll(
                '.jp-NotebookPanel .jp-WindowedPanel-outer').forEach(e => e.scrollTop = 0)""")
            self.page.wait_for_timeout(100)
            self.page.screenshot(path=str(path))
        except Exception:  # a screenshot must never hide the real failure
            return None
        finally:
            with contextlib.suppress(Exception):
                self.page.set_viewport_size(size)
        return path


def _shorten(text: str, limit: int = 3000) -> str:
    """Long tracebacks: their first lines (where) and their end (what), not the middle."""
    if len(text) <= limit:
        return text
    return f"{text[:300]}\n[...]\n{text[-(limit - 300):]}"


def screenshot_folder(tmp_path_factory=None) -> Path:
    """``TPLIB_SCREENSHOTS`` if set, else a ``screenshots`` folder under pytest's tmp dir."""
    env = os.environ.get("TPLIB_SCREENSHOTS")
    if env:
        path = Path(env)
    elif tmp_path_factory is not None:
        path = tmp_path_factory.getbasetemp() / "screenshots"
    else:
        path = Path(tempfile.mkdtemp(prefix="tplib-screenshots-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_notebook(lab: JupyterLab, browser, name: str, views: Sequence[View] = (), *,
                   screenshot_dir: Path | str | None = None, min_widgets: int = 1,
                   run_timeout: float = 300.0, viewport=(1280, 900)) -> NotebookResult:
    """Open ``name`` in ``lab``, run all cells, check the views; screenshot; stop its kernel.

    Raises ``NotebookError`` on any error (with the page's text and a screenshot path).
    """
    t0 = time.monotonic()
    result = NotebookResult(name)
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = LabPage(lab, context.new_page(), name)
        page.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        result.open_seconds = page.open()
        result.run_seconds = page.run_all(timeout=run_timeout)
        if page.widget_count() < min_widgets:
            page.fail(f"expected at least {min_widgets} rendered widget view(s), "
                      f"found {page.widget_count()}")
        for view in views:
            result.views.append(page.apply(view))
        page.settle()
        errs = page.errors() + page.kernel_log_errors()
        if errs:
            page.fail("errors after using the views", errs)
        shot = page.screenshot()
        if shot:
            result.screenshots.append(shot)
        result.console_errors = list(page.console_errors)
    finally:
        context.close()
        with contextlib.suppress(Exception):
            lab.shutdown_kernels()
    result.total_seconds = time.monotonic() - t0
    return result


# --------------------------------------------------------------------------- pytest fixtures
# tests/conftest.py imports these, so every test module can ask for them.

import pytest  # noqa: E402  (the harness is test code; the helpers above do not need it)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path; skips (fails with ``TPLIB_REQUIRE_BROWSER=1``) without a browser."""
    return require_browser()


@pytest.fixture(scope="module")
def browser(chromium):
    """A headless Chromium for one test module (closed after it)."""
    with browser_session(chromium) as b:
        yield b


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where notebook screenshots go (``TPLIB_SCREENSHOTS`` or pytest's tmp dir)."""
    path = screenshot_folder(tmp_path_factory)
    print(f"\nscreenshots: {path}")
    return path
