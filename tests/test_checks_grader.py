"""Under nbgrader a ✘ verdict fails its cell; for a student it stays one line.

nbgrader sets ``NBGRADER_EXECUTION`` while it executes a notebook to grade it
(``autograde``) or to validate it (``validate``). The guard every public check goes
through (tplib/checks.py) raises ``CheckFailed`` for a ✘ verdict then, and only then.
"""
from __future__ import annotations

import pytest

from tplib import checks

RIGHT = sum(i * o for i, o in checks.VGG16_FC)


@pytest.mark.parametrize("value", [None, "many", RIGHT + 1, float("nan")])
def test_without_nbgrader_a_wrong_answer_is_a_verdict(monkeypatch, value):
    monkeypatch.delenv(checks.GRADER_ENV, raising=False)
    verdict = checks.check_fc_estimate(value)
    assert verdict.ok is False and str(verdict).startswith("✘ ")


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_under_nbgrader_a_wrong_answer_raises_with_the_verdicts_line(monkeypatch, mode):
    monkeypatch.delenv(checks.GRADER_ENV, raising=False)
    expected = str(checks.check_fc_estimate(RIGHT + 4096 + 4096 + 1000))  # biases counted
    monkeypatch.setenv(checks.GRADER_ENV, mode)
    with pytest.raises(AssertionError) as info:
        checks.check_fc_estimate(RIGHT + 4096 + 4096 + 1000)
    assert isinstance(info.value, checks.CheckFailed)
    assert str(info.value) == expected
    assert expected.startswith("✘ that count includes the biases")


@pytest.mark.parametrize("value", [None, "many"])
def test_under_nbgrader_odd_values_and_bad_calls_raise_too(monkeypatch, value):
    """Every ✘, including the guard's own (odd values, a wrong call), goes through one place."""
    monkeypatch.setenv(checks.GRADER_ENV, "autograde")
    with pytest.raises(checks.CheckFailed, match=r"^✘ give a whole number"):
        checks.check_fc_estimate(value)
    with pytest.raises(checks.CheckFailed, match=r"^✘ check_fc_estimate: "):
        checks.check_fc_estimate()


def test_under_nbgrader_a_right_answer_is_still_a_verdict(monkeypatch):
    monkeypatch.setenv(checks.GRADER_ENV, "autograde")
    verdict = checks.check_fc_estimate(RIGHT)
    assert verdict.ok is True and str(verdict).startswith("✔ ")


def test_other_values_of_the_variable_change_nothing(monkeypatch):
    monkeypatch.setenv(checks.GRADER_ENV, "")
    assert checks.check_fc_estimate(RIGHT + 1).ok is False


def test_every_public_check_goes_through_the_grader_switch(monkeypatch):
    monkeypatch.setenv(checks.GRADER_ENV, "validate")
    for name in checks.CHECKS:
        with pytest.raises(checks.CheckFailed):
            getattr(checks, name)()  # no arguments: the guard's own ✘
