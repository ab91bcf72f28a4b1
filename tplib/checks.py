"""Self-checks for the lab's exercises: one friendly line, never the answer.

After each exercise a notebook calls one of these with the student's result; the
returned :class:`Verdict` shows as one line (``✔ ...`` or ``✘ ...``) that says whether
the result is right and, when it is not, which usual mistake it looks like, without
giving the expected values away. Each check compares with a reference computed by
tplib itself (the weights' own transforms, the library's extractor, scikit-learn), and
``tests/test_checks.py`` feeds every check the usual wrong answers.

Checks never raise on a wrong answer (a wrong type or shape is a verdict too), so a
student can run the check cell as often as they like.
"""
from __future__ import annotations

from dataclasses import dataclass

OK_MARK, NO_MARK = "✔", "✘"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``ok`` and one line for the student.

    ``bool(verdict)`` is ``ok``; in a notebook it shows as ``✔ message`` or ``✘ message``.
    """

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"{OK_MARK if self.ok else NO_MARK} {self.message}"

    __str__ = __repr__


def passed(message: str) -> Verdict:
    return Verdict(True, message)


def failed(message: str) -> Verdict:
    return Verdict(False, message)
