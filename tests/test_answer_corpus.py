"""Every check, on a corpus of real student answers, in its notebook's own context.

Each file of ``tests/answers/`` is one answer to one exercise of the solution notebooks,
with the verdict it must get (``tests/answer_corpus.py`` says how to write one). The
test starts one kernel per notebook (the ``ci`` profile, real data, as nbval runs it),
runs the notebook's own cells up to the exercise, then the answer in place of the
solution cell, then the notebook's check cell, and compares the verdict line with the
one expected. The next answer to the same exercise replaces the answer's names; before
any later cell, the solution cell runs again, so the notebook goes on from its own
state. A check that raises or runs past the answer's time limit fails the test: a
student must always get one line.

Answers run in notebook order, so each kernel only moves forward; a new exercise's
answers go in a new folder ``tests/answers/<NN>_<check>/``.
"""
from __future__ import annotations

import pytest
from answer_corpus import (
    NO_MARK,
    NOTEBOOKS,
    OK_MARK,
    CorpusError,
    NotebookKernel,
    all_answers,
    code_cells,
    kernel_env,
    locate_exercise,
    notebook_path,
    sort_key,
)
from answer_corpus import _plain as plain_traceback

ANSWERS = sorted(all_answers(), key=sort_key)

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


class Kernels:
    """At most one notebook kernel alive at a time (the answers come in notebook order)."""

    def __init__(self, env):
        self.env = env
        self.prefix = None
        self.kernel = None

    def get(self, prefix: str) -> NotebookKernel:
        if self.prefix != prefix:
            self.close()
            answers = [a.code for a in ANSWERS if a.notebook_prefix == prefix]
            self.kernel = NotebookKernel(notebook_path(prefix), self.env, answers)
            self.prefix = prefix
        return self.kernel

    def close(self):
        if self.kernel is not None:
            self.kernel.shutdown()
        self.kernel, self.prefix = None, None


@pytest.fixture(scope="module")
def kernels(real_data_dir, tmp_path_factory):
    pool = Kernels(kernel_env(tmp_path_factory.mktemp("corpus-cache"), real_data_dir))
    yield pool
    pool.close()


def test_corpus_size():
    """The tracker's floor: at least 60 wrong and 15 right answers, and every exercise of
    every solution notebook answered both rightly and wrongly."""
    right = [a for a in ANSWERS if a.mark == OK_MARK]
    wrong = [a for a in ANSWERS if a.mark == NO_MARK]
    assert len(right) >= 15 and len(wrong) >= 60, (len(right), len(wrong))
    marks: dict[tuple[str, int], set] = {}
    for a in ANSWERS:
        try:
            solution = locate_exercise(code_cells(notebook_path(a.notebook_prefix)), a.check, a.marker)[0]
        except CorpusError as exc:
            pytest.fail(f"{a.id}: {exc}")
        marks.setdefault((a.notebook_prefix, solution), set()).add(a.mark)
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        prefix, cells = path.name[:2], code_cells(path)
        for i, src in enumerate(cells):
            if "### BEGIN SOLUTION" in src:
                got = marks.get((prefix, i), set())
                first = src.strip().splitlines()[0][:60]
                assert {OK_MARK, NO_MARK} <= got, (
                    f"{path.name}, exercise cell {i} ({first!r}): the corpus needs a right and a "
                    f"wrong answer to it in tests/answers/{prefix}_<check>/")


@pytest.mark.parametrize("answer", ANSWERS, ids=[a.id for a in ANSWERS])
def test_answer(answer, kernels):
    try:
        kernel = kernels.get(answer.notebook_prefix)
        solution, check = locate_exercise(kernel.cells, answer.check, answer.marker)
        kernel.advance_to(solution)
    except CorpusError as exc:
        pytest.fail(f"{answer.id}: {exc}")
    mine = kernel.run_answer(solution, answer.code, timeout=answer.timeout)
    if mine.error or mine.timed_out:
        pytest.fail(f"the answer cell itself failed ({mine.error or 'timed out'}): the check "
                    "never saw it\n" + plain_traceback(mine.traceback))
    res = kernel.run(kernel.cells[check], timeout=answer.timeout)
    if res.timed_out:
        pytest.fail(f"the check was still running after {answer.timeout:g} s (interrupted)")
    if res.error:
        pytest.fail(f"the check raised {res.error} instead of giving a verdict\n"
                    + plain_traceback(res.traceback)[-3000:])
    verdict = res.verdict()
    if verdict is None:
        pytest.fail(f"no ✔/✘ line in the check's output: {res.text!r}")
    if answer.mark is not None and (verdict[0] != answer.mark
                                    or answer.hint.lower() not in verdict.lower()):
        pytest.fail(f"expected {answer.mark} with {answer.hint!r} in the message, got: {verdict}",
                    pytrace=False)

