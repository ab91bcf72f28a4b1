"""tools/answer_key.py: every question of the six notebooks gets its printed numbers,
VGG16's published numbers where they apply, and its reference answer.

Built here from the stored notebooks (the full-profile run is `make answer-key`, far
too long for CI): the same code reads the executed copies.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import answer_key  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def stored():
    return {p.name: nbformat.read(p, as_version=4) for p in NOTEBOOKS}


def test_every_question_is_mapped_to_sections_that_exist(stored):
    asked = [label for nb in stored.values() for label, _, _ in answer_key.questions(nb)]
    assert asked == [f"Q{i}" for i in range(1, 19)]
    assert sorted(answer_key.QUESTIONS, key=lambda q: int(q[1:])) == asked
    by_number = {name[:2]: answer_key.printed_by_section(nb) for name, nb in stored.items()}
    for label, (refs, _) in answer_key.QUESTIONS.items():
        for ref in refs:
            number, prefix = ref.split(":", 1)
            found = answer_key.find_sections(by_number[number], prefix)
            assert len(found) == 1, f"{label}: section {ref!r} found {found}"


def test_the_key_holds_each_question_its_numbers_and_its_answer(stored):
    key = answer_key.build_key(stored, stored, "2026-01-01")
    for i in range(1, 19):
        assert key.count(f"### **Q{i}.") + key.count(f"### **Q{i} ") == 1, i
    assert key.count("**Reference answer:**") == 18 and "(none in the notebook)" not in key
    # numbers a student must see, taken from the stored outputs
    assert "138,357,544" in key and "65,793" in key
    assert "9.0% error" in key and "0.888 (2651/2985)" in key  # VGG16's published numbers
    assert "<Figure" not in key and "BEGIN SOLUTION" not in key
    # the setup block says which network and profile produced the numbers
    assert key.count("What ran (the notebook's setup block") == 6
    assert "efficientnet_lite0" in key or "vgg16" in key


def test_stored_ci_numbers_are_shown_only_where_they_differ(stored):
    name = NOTEBOOKS[0].name
    same = "\n".join(answer_key.notebook_part(name, stored[name], stored[name]))
    assert "Stored in the notebook (ci profile" not in same
    changed = nbformat.from_dict(stored[name])
    changed = nbformat.reads(nbformat.writes(changed), as_version=4)
    for cell in changed.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and "138,357,544" in out.get("text", ""):
                out["text"] = out["text"].replace("138,357,544", "999")
    differ = "\n".join(answer_key.notebook_part(name, changed, stored[name]))
    assert "Stored in the notebook (ci profile" in differ and "999" in differ


def test_missing_runs_are_named_with_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(answer_key, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(answer_key, "KEY", tmp_path / "key.md")
    assert answer_key.main(["--no-run"]) == 1
    err = capsys.readouterr().err
    assert "no full-profile run of 01_" in err and "python tools/answer_key.py notebooks/01_" in err
    assert not (tmp_path / "key.md").exists()


def test_widgets_figures_and_stderr_are_left_out():
    cell = {"outputs": [
        {"output_type": "stream", "name": "stderr", "text": "100%|####| 9/9"},
        {"output_type": "display_data", "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
            "text/plain": "decode train:   0%|          | 0/448"}},
        {"output_type": "display_data", "data": {"text/plain": "<Figure size 650x400 with 1 Axes>"}},
        {"output_type": "stream", "name": "stdout", "text": "test accuracy 0.926\n"},
        {"output_type": "execute_result", "data": {"text/plain": "0.5"}},
    ]}
    assert answer_key.text_outputs(cell) == "test accuracy 0.926\n0.5"
