"""The corpus of student answers in ``tests/answers/``: reading it, and running it in a kernel.

Layout: ``tests/answers/<NN>_<check>/<name>.py``, one answer per file. ``NN`` picks the
solution notebook ``notebooks/NN_*.ipynb``; ``<check>`` names the check that follows the
exercise (``vgg16relu7`` for ``tplib.checks.check_vgg16relu7``). The exercise is the code
cell holding ``### BEGIN SOLUTION`` nearest before the first cell that calls that check,
so the mapping survives cells added or removed around it.

An answer file is the whole code cell as a student would leave it (it replaces the
solution cell), after a header of comment lines:

    # expect: ✘ flatten      the verdict's mark, then a piece of its message (any case)
    # expect: ✔              a right answer (any message)
    # expect: verdict        any verdict, ✔ or ✘, as long as the check does not raise
    # timeout: 30            optional: seconds the check cell may take (default 120)
    # exercise: hypothesis_2 optional: when one check follows several exercises, a piece
                             of the solution cell's text that picks the exercise

Anything else in the header is a note for the reader.

Of the notebook's own cells, only those the exercises need run (:func:`cells_to_run`):
plots, widgets and slow demonstrations that no exercise reads are left out, and so are
the cells nbval skips (``# NBVAL_SKIP``).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

REPO = Path(__file__).resolve().parents[1]
ANSWERS = Path(__file__).resolve().parent / "answers"
NOTEBOOKS = REPO / "notebooks"
OK_MARK, NO_MARK = "✔", "✘"
DEFAULT_TIMEOUT = 120.0
#: Cells the corpus never runs: the ones nbval skips too.
SKIP_MARKERS = ("# NBVAL_SKIP",)
CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")


class CorpusError(Exception):
    """An answer file or its exercise cannot be used (a clear test failure, not a crash)."""


@dataclass(frozen=True)
class Answer:
    path: Path
    exercise: str            # the folder name, e.g. "04_vgg16relu7"
    notebook_prefix: str     # "04"
    check: str               # "check_vgg16relu7"
    mark: str | None         # OK_MARK, NO_MARK, or None for "any verdict"
    hint: str                # a piece of the message that must appear ("" : any)
    timeout: float
    code: str
    marker: str = ""         # text of the solution cell, when one check ends several exercises

    @property
    def id(self) -> str:
        return f"{self.exercise}/{self.path.stem}"


def read_answer(path: Path) -> Answer:
    text = path.read_text(encoding="utf-8")
    exercise = path.parent.name
    m = re.fullmatch(r"(\d\d)_(\w+)", exercise)
    if not m:
        raise CorpusError(f"{path}: the folder should be named NN_<check>, e.g. 04_vgg16relu7")
    mark, hint, timeout, marker = None, "", DEFAULT_TIMEOUT, ""
    found = False
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.lower().startswith("expect:"):
            value = body.split(":", 1)[1].strip()
            found = True
            if value.lower() == "verdict":
                mark = None
            elif value[:1] in (OK_MARK, NO_MARK):
                mark, hint = value[0], value[1:].strip()
            else:
                raise CorpusError(f"{path}: '# expect:' takes ✔, ✘ <hint> or 'verdict', got {value!r}")
        elif body.lower().startswith("exercise:"):
            marker = body.split(":", 1)[1].strip()
        elif body.lower().startswith("timeout:"):
            timeout = float(body.split(":", 1)[1])
    if not found:
        raise CorpusError(f"{path}: no '# expect: ...' line in the header")
    return Answer(path, exercise, m.group(1), f"check_{m.group(2)}", mark, hint, timeout, text, marker)


def all_answers() -> list[Answer]:
    return [read_answer(p) for p in sorted(ANSWERS.glob("*/*.py"))]


def notebook_path(prefix: str) -> Path:
    found = sorted(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    if len(found) != 1:
        raise CorpusError(f"expected one notebook notebooks/{prefix}_*.ipynb, found {len(found)}")
    return found[0]


def code_cells(path: Path) -> list[str]:
    """The notebook's code cells' sources, in order (plain json: no nbformat import)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def locate_exercise(cells: list[str], check: str, marker: str = "") -> tuple[int, int]:
    """(index of the solution cell, index of the check cell) among the code cells.

    The check cell is the first that calls ``check`` (after the solution cell holding
    ``marker``, when given); the solution cell is the nearest one before it.
    """
    call = re.compile(rf"\b{re.escape(check)}\s*\(")
    start = 0
    if marker:
        found = [i for i, src in enumerate(cells) if "### BEGIN SOLUTION" in src and marker in src]
        if not found:
            raise CorpusError(f"no solution cell holds {marker!r} (the answer's '# exercise:' line)")
        start = found[0] + 1
    for j in range(start, len(cells)):
        if call.search(cells[j]):
            for i in range(j - 1, -1, -1):
                if "### BEGIN SOLUTION" in cells[i]:
                    return i, j
            raise CorpusError(f"no '### BEGIN SOLUTION' cell before the cell calling {check}")
    raise CorpusError(f"no cell calls {check}(...): has the exercise been renamed or removed?")


def sort_key(answer: Answer):
    """Notebook order, then exercise order: a kernel then only ever moves forward."""
    try:
        cells = code_cells(notebook_path(answer.notebook_prefix))
        position = locate_exercise(cells, answer.check, answer.marker)[0]
    except CorpusError:
        position = -1  # reported by the test itself
    return answer.notebook_prefix, position, answer.path.name


# ------------------------------------------------------- which cells the answers need
#: Calls that only show something: a cell made of these (and of assignments nobody
#: reads) changes nothing an exercise depends on.
DISPLAY_CALLS = ("print", "display", "tplib.viz.", "tplib.widgets.", "tplib.checks.")


def _dotted(node) -> str:
    import ast

    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _root(node):
    """The name at the bottom of ``a.b[c].d`` (or None)."""
    import ast

    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def cell_names(src: str):
    """(names the cell binds or changes, names it reads, its top-level calls' roots), or
    None when the cell cannot be parsed (it is then always run)."""
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(src))
    except SyntaxError:
        return None
    binds, reads, calls, local = set(), set(), set(), set()
    for fn in ast.walk(tree):  # names a function or lambda binds for itself
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for node in ast.walk(fn):
                if isinstance(node, ast.arg):
                    local.add(node.arg)
                elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                    local.add(node.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else binds).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            binds.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            binds.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
            binds.add(_root(node))  # x.attr = ..., x[i] = ...: x changes
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            name = _dotted(stmt.value.func)
            shows = name.rsplit(".", 1)[-1].startswith(("plot_", "show_"))
            if not shows and not any(name == d or (d.endswith(".") and name.startswith(d))
                                     for d in DISPLAY_CALLS):
                calls.add(_root(stmt.value) or "")
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Await):
            calls.add("")
    binds.discard(None)
    top = {n.id for stmt in tree.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
           for n in ast.walk(stmt) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    # a name the cell binds before it first reads it (``rows = ...; f(rows)``) comes from the cell
    reads = (reads & _read_before_bound(tree.body, set())) - (local - top)
    return binds - (local - top), reads, calls


def _read_before_bound(stmts, bound: set) -> set:
    """Names read before the statements themselves bind them, in execution order
    (``bound``: names bound so far; updated)."""
    import ast

    def names(nodes, load):
        return {n.id for node in nodes for n in ast.walk(node)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) == load}

    read_first = set()
    for stmt in stmts:
        bodies = [getattr(stmt, f) for f in ("body", "orelse", "finalbody", "handlers")
                  if getattr(stmt, f, None)]
        if bodies and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            header = [getattr(stmt, f) for f in ("iter", "test", "target") if getattr(stmt, f, None)]
            header += [item for item in getattr(stmt, "items", [])]
            read_first |= names(header, True) - bound
            bound |= names(header, False)
            for body in bodies:
                read_first |= _read_before_bound(body, bound)
            continue
        read_first |= names([stmt], True) - bound
        bound |= names([stmt], False)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in stmt.names)
    return read_first


def cells_to_run(cells: list[str], extra: list[str]) -> set[int]:
    """The code cells the exercises need, up to the last exercise's check.

    Roots: the first cell (the setup), every solution cell, every check cell, and the
    answers (``extra``). Walking back from the last root, a cell is kept when it binds or
    changes a name that a kept cell (or an answer) reads, or when it calls something at
    its top level on such a name (``model.train()``); cells that only show things
    (plots, widgets, prints) or compute what no exercise reads are left out, so a slow
    demo cell (``compare_networks``, a training run) costs nothing here.
    """
    roots = {0}
    for i, src in enumerate(cells):
        if "### BEGIN SOLUTION" in src:
            roots.add(i)
            check = next((j for j in range(i + 1, len(cells)) if CHECK_CALL.search(cells[j])), None)
            if check is not None:
                roots.add(check)
    last = max(roots)
    needed: set[str] = set()
    for code in extra:
        names = cell_names(code)
        needed |= names[1] if names else set()
    keep = set()
    for i in range(last, -1, -1):
        names = cell_names(cells[i])
        if names is None or i in roots:
            keep.add(i)
        else:
            binds, reads, calls = names
            if binds & needed or calls & (needed | {""}):
                keep.add(i)
        if i in keep and names is not None:
            needed |= names[1]
    return keep


# ------------------------------------------------------------------------- kernel
@dataclass
class CellResult:
    text: str = ""                        # execute_result / display_data text/plain and streams
    error: str | None = None              # "Name: value" when the cell raised
    traceback: list[str] = field(default_factory=list)
    timed_out: bool = False
    seconds: float = 0.0

    def verdict(self) -> str | None:
        """The check's line: the first line that starts with ✔ or ✘."""
        for line in self.text.splitlines():
            line = line.strip().strip("'\"")
            if line[:1] in (OK_MARK, NO_MARK):
                return line
        return None


class NotebookKernel:
    """One kernel that runs a notebook's code cells in order, and answers in their place."""

    def __init__(self, path: Path, env: dict[str, str], answers: list[str] = ()):
        self.path = path
        self.cells = code_cells(path)
        self.keep = cells_to_run(self.cells, list(answers))
        self.env = env
        self.km = None
        self.kc = None
        self.position = 0  # the next code cell to run
        self.pending_restore: int | None = None  # a solution cell an answer replaced
        self.log: list[tuple[int, float]] = []
        self._start()

    def _start(self):
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")  # a fresh one: a shut down one cannot restart
        self.km.start_kernel(env=self.env, cwd=str(self.path.parent))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.position = 0
        self.pending_restore = None

    def restart(self):
        self.shutdown()
        self._start()

    def alive(self) -> bool:
        return self.km.is_alive()

    def shutdown(self):
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km is not None and self.km.has_kernel:
            self.km.shutdown_kernel(now=True)

    def run(self, code: str, timeout: float = 600.0) -> CellResult:
        result = CellResult()
        chunks: list[str] = []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                chunks.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                chunks.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"
                result.traceback = content["traceback"]

        start = time.monotonic()
        try:
            self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False,
                                        allow_stdin=False)
        except TimeoutError:
            result.timed_out = True
            self._interrupt()
        except RuntimeError:
            # execute_interactive gives up when the kernel died under it (os._exit, a crash)
            result.error = result.error or "the kernel died"
        result.seconds = time.monotonic() - start
        result.text = "".join(chunks)
        if not self.alive():
            result.error = result.error or "the kernel died"
        return result

    def _interrupt(self):
        self.km.interrupt_kernel()
        deadline = time.monotonic() + 30
        # wait until the kernel is idle again (the interrupted cell's reply)
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_shell_msg(timeout=1)
            except Empty:
                continue
            if msg["msg_type"] == "execute_reply":
                break
        else:
            self.restart()

    def run_answer(self, solution: int, code: str, timeout: float) -> CellResult:
        """Run ``code`` in place of the solution cell ``solution`` (after advance_to(solution))."""
        self.pending_restore = solution
        return self.run(code, timeout=timeout)

    def advance_to(self, index: int):
        """Run the notebook's own code cells up to (not including) cell ``index``.

        After an answer, the kernel holds the answer's names instead of the solution's:
        the next answer to the same exercise replaces them anyway, and any other cell
        first gets the solution cell run again (the restore), so it sees the notebook's
        own state.
        """
        if not self.alive() or index < self.position:
            self.restart()
        if self.pending_restore is not None and self.pending_restore != index:
            solution, self.pending_restore = self.pending_restore, None
            res = self.run(self.cells[solution])
            if res.error or res.timed_out:
                self.restart()  # replay from the start rather than run on a broken state
            else:
                self.position = solution + 1
        while self.position < index:
            src = self.cells[self.position]
            if self.position in self.keep and not any(marker in src for marker in SKIP_MARKERS):
                res = self.run(src)
                self.log.append((self.position, res.seconds))
                if res.error or res.timed_out:
                    raise CorpusError(f"{self.path.name}: its own code cell {self.position} failed "
                                      f"({res.error or 'timed out'}):\n" + _plain(res.traceback))
            self.position += 1


def _plain(traceback: list[str]) -> str:
    """A traceback without its terminal colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback))


def kernel_env(cache: Path, real_data: Path) -> dict[str, str]:
    """The kernel's environment: the notebooks' nbval settings (notebooks/conftest.py)."""
    env = dict(os.environ)
    env["TPLIB_PROFILE"] = "ci"
    env["TPLIB_CACHE"] = os.environ.get("TPLIB_NBVAL_CACHE") or str(cache)
    env["TPLIB_REAL_DATA"] = str(real_data)
    env.pop("MPLBACKEND", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env
