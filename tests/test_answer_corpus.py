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
    OK_MARK,
    CorpusError,
    NotebookKernel,
    all_answers,
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
            self.kernel = NotebookKernel(notebook_path(prefix), self.env)
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
    """The tracker's floor: at least 60 wrong and 15 right answers, every exercise covered."""
    right = [a for a in ANSWERS if a.mark == OK_MARK]
    wrong = [a for a in ANSWERS if a.mark == NO_MARK]
    assert len(right) >= 15 and len(wrong) >= 60, (len(right), len(wrong))
    covered = {(a.notebook_prefix, a.check) for a in ANSWERS}
    for prefix in ("01", "02", "03", "04", "05", "06"):
        cells = _cells(prefix)
        checks = {_check_after(cells, i) for i, src in enumerate(cells) if "### BEGIN SOLUTION" in src}
        missing = {c for c in checks if (prefix, c) not in covered}
        assert not missing, f"notebook {prefix}: no answer in the corpus for {sorted(missing)}"
        assert {c for p, c in covered if p == prefix} <= checks, f"notebook {prefix}: stale folders"
    for check in {a.check for a in ANSWERS}:
        kinds = {a.mark for a in ANSWERS if a.check == check}
        assert OK_MARK in kinds and NO_MARK in kinds, f"{check}: needs right and wrong answers"


def _cells(prefix):
    from answer_corpus import code_cells

    return code_cells(notebook_path(prefix))


def _check_after(cells, i):
    import re

    for src in cells[i + 1:]:
        m = re.search(r"\b(check_\w+)\s*\(", src)
        if m:
            return m.group(1)
    return None


@pytest.mark.parametrize("answer", ANSWERS, ids=[a.id for a in ANSWERS])
def test_answer(answer, kernels):
    try:
        kernel = kernels.get(answer.notebook_prefix)
        solution, check = locate_exercise(kernel.cells, answer.check)
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

