"""Write the graders' answer key: for every question of the six notebooks, the numbers a
student sees in the ``full`` profile, the notebook's stored ``ci`` numbers, VGG16's
published numbers and the reference answer.

    python tools/answer_key.py                     # run all six in the full profile, write the key
    python tools/answer_key.py notebooks/06_*.ipynb  # run some again, rebuild the key
    python tools/answer_key.py --no-run            # rebuild the key from the last runs

Each solution notebook runs top to bottom in a fresh kernel with ``TPLIB_PROFILE=full``
(all the photos, the network that runs on this machine: VGG16 when its weights are in
the cache, else EfficientNet-Lite0, as every notebook's setup block says); the executed
copies are kept in ``reports/answer-key/`` (the stored notebooks are not touched) and
the key is written to ``docs/answer-key.md``. Features are read from and written to
tplib's usual cache, so a second run is quick.

The numbers printed under a question are the text outputs of the notebook sections its
answer rests on (:data:`QUESTIONS`), in the full run and, where they differ, in the
stored ci outputs, so a grader can tell which numbers a student's run should show.
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "reports" / "answer-key"
KEY = REPO / "docs" / "answer-key.md"
MAX_LINES = 40  # per cell output in the key

#: question -> (sections whose printed results answer it, as "NN:heading prefix";
#: VGG16's published numbers for it, "" when none apply). A renamed heading fails
#: tests/test_answer_key.py.
QUESTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "Q1": (("01:Your estimate", "01:Layer by layer", "01:The exact count"),
           "VGG16 has 138,357,544 parameters (138 M in the VGG paper); fc6, fc7 and fc8 hold "
           "123,633,664 weights, about 89% of them."),
    "Q2": (("01:The output",), "1,000 scores, one per ImageNet class."),
    "Q3": (("02:1. Preprocessing", "02:2. Forward pass", "02:3. Without normalisation",
            "02:4. Eval mode"),
           "VGG16 has two Dropout(0.5) layers (after fc6 and fc7) and no BatchNorm."),
    "Q4": (("03:1. The first layer", "03:3. Receptive fields"), ""),
    "Q5": (("04:1. The data",),
           "VGG16 was trained on 1.28 million ImageNet photos in 2-3 weeks on 4 GPUs (the VGG "
           "paper); 15 Scene has 1,500 training photos."),
    "Q6": (("04:5. A linear SVM", "04:7. What ImageNet pretraining brings"),
           "relu7 + LinearSVC(C=1) on this split: about 0.888 (2651/2985) in public student "
           "runs with torchvision's weights; Zhou et al. (2017): 86.3% for ImageNet-VGG16 fc7 "
           "+ linear SVM. Expect 85-90%; below 80% means a bug."),
    "Q7": (("04:6. Where does it go wrong",), ""),
    "Q8": (("05:1. Which layer",),
           "A student's report on this lab (VGG16 + LinearSVC, a layer sweep): accuracy rises "
           "with depth up to its \"ReLU14\" (relu6), the best cut at 9.0% error, and drops at "
           "the last one (\"ReLU15\", relu7); worst cut 11.2% error."),
    "Q9": (("04:1. The data",), ""),
    "Q10": (("04:5. A linear SVM",), ""),
    "Q11": (("05:1. Which layer", "05:2. Other pretrained networks", "05:3. Choosing C",
             "05:4. Fewer dimensions", "05:5. A new linear layer", "05:6. Your own experiments"),
            "The same student report: a tuned SVM and an MLP on VGG16's features both reach "
            "about 91%."),
    "Q12": (("06:1. A frozen base",),
            "The lecture's head: 65,793 trainable parameters (\"65k\"); the Keras chapter's "
            "flatten head about 1.6 M."),
    "Q13": (("06:1. A frozen base",), ""),
    "Q14": (("06:4. The fast path",), ""),
    "Q15": (("06:5. How many photos",),
            "The lecture, cats vs dogs: 0.983 with the frozen pretrained VGG16 base against 86% "
            "for a CNN trained from scratch (\"98% vs. 86%\"); the Keras chapter: 96% with a "
            "frozen base and a flatten head."),
    "Q16": (("06:6. Fine-tuning on 15 Scene", "06:7. What an epoch costs"), ""),
    "Q17": (("06:9. Grayscale photos",), ""),
    "Q18": (("06:8. 15 Scene",),
            "The student report: a tuned SVM and an MLP on VGG16's features both about 91%."),
}

_QUESTION = re.compile(r"\*\*(Q\d+)[^*]*\*\*")


def section_of(source: str, current: str) -> str:
    """The section a cell leaves open: its last "## " heading, else ``current``."""
    headings = [line[3:].strip() for line in source.splitlines() if line.startswith("## ")]
    return headings[-1] if headings else current


def text_outputs(cell) -> str:
    """What a code cell printed (stdout, plain-text results), without figures, widgets
    or progress bars (stderr)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append("".join(out.get("text", "")))
        elif out.get("output_type") in ("execute_result", "display_data"):
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                continue  # a view or a progress bar: its plain text is a snapshot
            text = "".join(out.get("data", {}).get("text/plain", ""))
            if text and not re.match(r"<(Figure|IPython)|[A-Z][A-Za-z]*Box\(children", text):
                parts.append(text + "\n")
    return "".join(parts).rstrip()


def printed_by_section(nb) -> dict[str, list[str]]:
    """{section heading: [printed text of each code cell in it, in order]}; the setup
    cell's block is under "setup"."""
    sections: dict[str, list[str]] = {}
    current = "setup"
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            current = section_of(source, current)
        elif cell["cell_type"] == "code":
            text = text_outputs(cell)
            if text:
                sections.setdefault(current, []).append(text)
    return sections


def questions(nb) -> list[tuple[str, str, str]]:
    """[(label "Q12", question text, reference answer)] in notebook order."""
    found, cells = [], nb["cells"]
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        match = _QUESTION.match(source) if cell["cell_type"] == "markdown" else None
        if not match:
            continue
        answer = ""
        if i + 1 < len(cells) and "BEGIN SOLUTION" in "".join(cells[i + 1]["source"]):
            answer = re.sub(r"^###? (BEGIN|END) SOLUTION\s*$", "", "".join(cells[i + 1]["source"]),
                            flags=re.M).strip()
        found.append((match.group(1), source.strip(), answer))
    return found


def find_sections(printed: dict[str, list[str]], prefix: str) -> list[str]:
    """The section headings of one notebook that start with ``prefix``."""
    return [name for name in printed if name.startswith(prefix)]


def _block(lines: list[str]) -> str:
    text = "\n\n".join(lines)
    rows = text.splitlines()
    if len(rows) > MAX_LINES * max(1, len(lines)):
        rows = rows[:MAX_LINES * len(lines)] + ["..."]
    return "```text\n" + "\n".join(rows) + "\n```"


def notebook_part(name: str, run, stored) -> list[str]:
    """The key's lines for one notebook: what ran, then each question."""
    number = name[:2]
    full, ci = printed_by_section(run), printed_by_section(stored)
    out = [f"## Notebook {name}", "", "What ran (the notebook's setup block, full profile):", "",
           _block(full.get("setup", ["(no setup block printed)"])[:1]), ""]
    for label, question, answer in questions(run):
        refs, published = QUESTIONS.get(label, ((), ""))
        out += [f"### {question}", ""]
        for ref in refs:
            nb_number, prefix = ref.split(":", 1)
            if nb_number != number:
                continue
            for section in find_sections(full, prefix):
                out += [f"Printed in the full profile, section \"{section}\":", "", _block(full[section]), ""]
                if ci.get(section) != full[section] and ci.get(section):
                    out += ["Stored in the notebook (ci profile: the fixed subset):", "",
                            _block(ci[section]), ""]
        for ref in refs:  # sections of another notebook (Q8 is asked in 04, measured in 05)
            if ref.split(":", 1)[0] != number:
                out += [f"Measured in notebook {ref.split(':', 1)[0]}, section \"{ref.split(':', 1)[1]}...\" "
                        "(below, under that notebook).", ""]
        if published:
            out += [f"**VGG16, published:** {published}", ""]
        out += ["**Reference answer:**", "", answer or "(none in the notebook)", ""]
    return out


def build_key(runs: dict[str, dict], stored: dict[str, dict], when: str) -> str:
    """The whole key (Markdown) from executed and stored notebooks, keyed by file name."""
    lines = ["# Answer key", "",
             f"Written by `make answer-key` ({when}): every solution notebook run top to bottom "
             "in the `full` profile (all the photos) on the machine that wrote it, with the "
             "network its setup block names. A student on the `full` profile with the same "
             "network should see these numbers, up to a photo or two where training is "
             "involved; the stored `ci` outputs (a fixed subset) follow where they differ. "
             "With VGG16's weights the numbers change: run `make answer-key` again on a machine "
             "that has them, and compare with VGG16's published numbers given beside each "
             "question.", ""]
    for name in sorted(runs):
        lines += notebook_part(name, runs[name], stored[name])
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: all six)")
    ap.add_argument("--no-run", action="store_true", help="only rebuild the key from the last runs")
    args = ap.parse_args(argv)
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    to_run = [] if args.no_run else [p.resolve() for p in args.paths] or notebooks
    RUNS.mkdir(parents=True, exist_ok=True)
    if to_run:
        sys.path.insert(0, str(REPO / "tools"))
        from refresh_notebooks import execute, patch_message_waits

        patch_message_waits()
        for path in to_run:
            print(f"{path.name}: running in the full profile ...", flush=True)
            nb, seconds = execute(path, "full")
            tmp = RUNS / (path.name + ".part")
            nbformat.write(nb, tmp)
            tmp.replace(RUNS / path.name)  # atomic: a failed run leaves the last good one
            print(f"{path.name}: done in {seconds:.0f} s", flush=True)
    missing = [p.name for p in notebooks if not (RUNS / p.name).exists()]
    if missing:
        print(f"no full-profile run of {', '.join(missing)} in {RUNS}: run "
              f"python tools/answer_key.py {' '.join('notebooks/' + m for m in missing)}", file=sys.stderr)
        return 1
    runs = {p.name: nbformat.read(RUNS / p.name, as_version=4) for p in notebooks}
    stored = {p.name: nbformat.read(p, as_version=4) for p in notebooks}
    KEY.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.date.today().isoformat()
    KEY.write_text(build_key(runs, stored, when), encoding="utf-8")
    print(f"answer key written: {KEY.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
