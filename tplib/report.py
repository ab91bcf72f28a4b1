"""Write the results of a lab run to disk, and summarise them on the terminal.

A run produces one plain, JSON-serialisable ``result`` dict (see :func:`write_report`).
:func:`write_report` turns it into ``metrics.json``, two PNG figures and ``summary.md``;
:func:`format_console_summary` turns it into text for the terminal.

The report folder is written as a whole: its files go to a temporary folder that then
replaces the report folder, so an interrupted run leaves the previous report or the new
one, never half of one or a mix of two. Figures are drawn without ``pyplot``, so no global backend is touched.
"""
from __future__ import annotations

import errno
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from .fsutil import atomic_write, atomic_write_text

__all__ = ["write_report", "format_console_summary", "console_banner"]

METRICS_NAME = "metrics.json"
CONFUSION_NAME = "confusion_matrix.png"
PER_CLASS_NAME = "per_class_accuracy.png"
SUMMARY_NAME = "summary.md"

# Enough to spot a pattern (one bad folder, one format); the full list is in metrics.json.
MAX_SKIPPED_LISTED = 200
PNG_DPI = 110


# ------------------------------------------------------------------ atomic writes


def _atomic_save_figure(path: Path, fig: Any) -> None:
    """Atomically save a matplotlib Figure as PNG."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=PNG_DPI))


# -------------------------------------------------------------------- metrics.json


def _jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json`` can write as strict JSON.

    The result dict should already be plain, but numpy scalars / arrays and paths slip in
    easily, and NaN (accuracy of a class with no test image) is not valid JSON: it
    becomes null.
    """
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy array / scalar, torch tensor
        return _jsonable(obj.tolist())
    return str(obj)


def _tplib_version() -> str:
    """Installed tplib version, or "unknown" when running from an uninstalled checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tplib")
    except PackageNotFoundError:
        return "unknown"


def _metrics_json(result: Mapping[str, Any], created: str) -> str:
    """The result dict plus "created" and "tplib_version", as indented JSON text."""
    data = _jsonable(result)
    data["created"] = created
    data["tplib_version"] = _tplib_version()
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"


# ------------------------------------------------------------------------ figures


def _figure_title(result: Mapping[str, Any], what: str) -> str:
    """Run title, then accuracy, test size and weights: a figure must stand on its own."""
    settings = result.get("settings") or {}
    weights = result.get("weights") or settings.get("weights") or "?"
    import textwrap

    text = (f"{result.get('title', 'Lab run')}\n{what}: accuracy {_accuracy_text(result)}, "
            f"weights {weights}")
    return "\n".join(textwrap.fill(line, 64) for line in text.splitlines())


def _confusion_figure(result: Mapping[str, Any]) -> Any:
    from .viz import plot_confusion_matrix

    return plot_confusion_matrix(result["confusion_matrix"], result["classes"], normalize=True,
                                 title=_figure_title(result, "row-normalised confusion matrix"))


def _per_class_figure(result: Mapping[str, Any]) -> Any:
    from .viz import plot_per_class_accuracy

    return plot_per_class_accuracy(
        result["classes"], result["per_class_accuracy"], overall=result.get("accuracy"),
        support=result.get("per_class_support"),
        title=_figure_title(result, "per-class accuracy"),
    )


# ---------------------------------------------------------------------- formatting


def _accuracy_text(result: Mapping[str, Any]) -> str:
    """E.g. "0.8881 (2651/2985)"."""
    acc = result.get("accuracy")
    acc_text = "n/a" if acc is None or not math.isfinite(acc) else f"{acc:.4f}"
    if result.get("n_correct") is None or result.get("n_test") is None:
        return acc_text
    return f"{acc_text} ({result['n_correct']}/{result['n_test']})"


def _value_text(value: Any) -> str:
    """A settings value as short text (floats without trailing noise)."""
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def _split_timings(timings: Mapping[str, Any]) -> tuple[dict[str, float], float | None]:
    """Separate durations (seconds) from the throughput, which is not a duration."""
    durations = {k: float(v) for k, v in timings.items() if k != "images_per_second" and v is not None}
    ips = timings.get("images_per_second")
    return durations, None if ips is None else float(ips)


def _accuracy_value_text(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


# ------------------------------------------------------------------------ markdown


def _md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (a '|' would start a new column)."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_code(text: str) -> str:
    """Inline code span; paths are shown verbatim so '_' or '*' in them stay literal."""
    text = text.replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> list[str]:
    """Markdown table lines; ``align`` holds one of 'l' / 'r' per column."""
    marks = {"l": ":---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _md_banner(banner: Sequence[str]) -> list[str]:
    """Banner lines as one blockquote; blank '>' lines keep them on separate lines."""
    lines: list[str] = []
    for i, msg in enumerate(banner):
        if i:
            lines.append(">")
        lines.append(f"> **WARNING:** {msg}")
    return lines


def _md_skipped(skipped: Sequence[Mapping[str, Any]]) -> list[str]:
    if not skipped:
        return ["none"]
    lines = [f"{len(skipped)} file(s) could not be used.", ""]
    for item in skipped[:MAX_SKIPPED_LISTED]:
        lines.append(f"- {_md_code(str(item.get('path', '?')))}: {item.get('reason', '')}")
    if len(skipped) > MAX_SKIPPED_LISTED:
        lines += ["", f"... and {len(skipped) - MAX_SKIPPED_LISTED} more (full list in `{METRICS_NAME}`)."]
    return lines


def _summary_markdown(result: Mapping[str, Any], created: str) -> str:
    """The whole summary.md text."""
    lines = [f"# {result.get('title', 'Lab run')}", ""]
    if result.get("banner"):
        # Right under the title, so nobody reads the accuracy without seeing it.
        lines += _md_banner(result["banner"]) + [""]
    lines += [f"**Accuracy:** {_accuracy_text(result)}", "", f"Created {created}."]
    cache = result.get("cache")
    if cache:
        where = f" ({_md_code(str(cache['path']))})" if cache.get("path") else ""
        lines += ["", f"Feature cache: {'hit' if cache.get('hit') else 'miss'}{where}."]

    settings = result.get("settings") or {}
    lines += ["", "## Settings", ""]
    lines += _md_table(["Setting", "Value"], [(k, _value_text(v)) for k, v in settings.items()], "ll")

    durations, ips = _split_timings(result.get("timings") or {})
    lines += ["", "## Timings", ""]
    lines += _md_table(["Step", "Seconds"], [(k, f"{v:.1f}") for k, v in durations.items()], "lr")
    if ips is not None:
        lines += ["", f"Throughput: {ips:.1f} images/s."]

    classes = result.get("classes") or []
    rows = zip(classes, result.get("per_class_support") or [None] * len(classes),
               result.get("per_class_accuracy") or [None] * len(classes))
    lines += ["", "## Per-class accuracy", ""]
    lines += _md_table(["Class", "Support", "Accuracy"],
                       [(c, "?" if s is None else s, _accuracy_value_text(a)) for c, s, a in rows], "lrr")

    lines += ["", "## Figures", "",
              f"![Row-normalised confusion matrix]({CONFUSION_NAME})", "",
              f"![Per-class accuracy]({PER_CLASS_NAME})"]
    lines += ["", "## Skipped files", ""] + _md_skipped(result.get("skipped") or [])
    ignored = result.get("ignored") or []
    lines += ["", "## Ignored files", ""]
    lines += ([f"{len(ignored)} file(s) or folder(s) were not taken as images.", ""]
              + [f"- {_md_code(str(i.get('path', '?')))}: {i.get('reason', '')}"
                 for i in ignored[:MAX_SKIPPED_LISTED]] if ignored else ["none"])
    warnings = result.get("warnings") or []
    lines += ["", "## Warnings", ""] + ([f"- {w}" for w in warnings] or ["none"])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ public


REPORT_FILES = (METRICS_NAME, CONFUSION_NAME, PER_CLASS_NAME, SUMMARY_NAME)


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a report folder that cannot be used; returns it as a Path.

    A file, a folder holding files that are not an earlier report (they would be lost),
    or a place that cannot be written is a :class:`~tplib.errors.TplibError`. An
    earlier report there is fine: :func:`write_report` replaces it as a whole.
    """
    from .errors import TplibError

    out = Path(os.path.abspath(Path(out_dir).expanduser()))  # ".", ".." and relative names resolved
    if out.is_symlink():  # the report replaces a folder: the link's target, never the link
        out = out.resolve()
    try:
        here = Path.cwd()
    except FileNotFoundError:  # the working folder was deleted: nothing to protect
        here = None
    if here is not None and (out == here or out in here.parents):
        # the report replaces its folder as a whole: a shell standing in it would be left
        # in a deleted folder
        raise TplibError(f"--out {out_dir} is the current folder (or holds it): give a folder "
                         "inside it, e.g. --out reports/run1")
    if out.exists() and not out.is_dir():
        raise TplibError(f"--out {out} is an existing file; give a folder for the report")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in REPORT_FILES)
        if others:
            raise TplibError(f"--out {out} holds other files ({', '.join(others[:3])}"
                             f"{', ...' if len(others) > 3 else ''}); give an empty or new folder "
                             "(an earlier report there would be replaced)")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise TplibError(f"cannot write the report in {out}: {ancestor} is not a writable folder")
    return out


def write_report(out_dir: str | os.PathLike[str], result: dict) -> dict[str, Path]:
    """Write metrics.json, confusion_matrix.png, per_class_accuracy.png and summary.md.

    The four files are written into a temporary folder beside ``out_dir``, which then
    replaces ``out_dir`` (an earlier report there is replaced as a whole: never a mix of
    two runs' files). ``out_dir`` must be new, empty or an earlier report
    (:func:`check_out_dir`).

    Args:
        out_dir: folder to write into; created (with parents) if missing.
        result: the run's plain dict: "title", "banner" (list[str]), "settings",
            "timings" (seconds, optionally "images_per_second"), "accuracy",
            "n_correct", "n_test", "classes" (K), "per_class_accuracy" (K floats),
            "per_class_support" (K ints), "confusion_matrix" (K x K ints, row = true),
            "skipped" and "ignored" (lists of {"path", "reason"}), "warnings"
            (list[str]) and optionally "cache". It is not modified.

    Returns:
        {"metrics", "confusion_matrix", "per_class", "summary"} -> path of each file.

    Raises:
        TplibError: the folder cannot be used, or the disk is full (naming the folder).
    """
    import shutil

    from .errors import TplibError

    out = check_out_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    created = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        # metrics.json first: the numbers matter most if plotting fails later.
        atomic_write_text(tmp / METRICS_NAME, _metrics_json(result, created))
        _atomic_save_figure(tmp / CONFUSION_NAME, _confusion_figure(result))
        _atomic_save_figure(tmp / PER_CLASS_NAME, _per_class_figure(result))
        atomic_write_text(tmp / SUMMARY_NAME, _summary_markdown(result, created))
        if out.exists():
            os.replace(out, old)  # the earlier report (or an empty folder) steps aside
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)  # put the earlier report back
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise TplibError(f"no space left on the disk of {out.parent} while writing the report "
                             "(it needs about 1 MB): free some space or give another --out") from exc
        raise TplibError(f"cannot write the report in {out} ({exc.strerror or exc}): give "
                         "another --out") from exc
    shutil.rmtree(old, ignore_errors=True)
    return {"metrics": out / METRICS_NAME, "confusion_matrix": out / CONFUSION_NAME,
            "per_class": out / PER_CLASS_NAME, "summary": out / SUMMARY_NAME}


def console_banner(banner: Sequence[str]) -> list[str]:
    """Banner lines between two full lines of '!' so they stand out in a scrolling log."""
    import textwrap

    width = 88
    body = [line for msg in banner
            for line in textwrap.wrap(msg, width - 4, initial_indent="!!! ", subsequent_indent="    ")]
    frame = "!" * width
    return [frame, *body, frame]


def _console_per_class(result: Mapping[str, Any]) -> list[str]:
    classes = [str(c) for c in result.get("classes") or []]
    if not classes:
        return []
    acc = result.get("per_class_accuracy") or [None] * len(classes)
    sup = result.get("per_class_support") or [None] * len(classes)
    w = max(len("class"), *(len(c) for c in classes))
    lines = ["Per-class accuracy:", f"  {'class':<{w}}  {'support':>7}  {'accuracy':>8}"]
    for c, s, a in zip(classes, sup, acc):
        lines.append(f"  {c:<{w}}  {'?' if s is None else s:>7}  {_accuracy_value_text(a):>8}")
    return lines


def _console_confusion(result: Mapping[str, Any]) -> list[str]:
    """Counts as aligned text; columns headed by the first 6 letters of each class."""
    classes = [str(c) for c in result.get("classes") or []]
    cm = result.get("confusion_matrix")
    if not classes or not cm:
        return []
    wrow = max(len(c) for c in classes)
    wcol = max(6, *(len(str(v)) for row in cm for v in row))
    header = " " * (wrow + 2) + " ".join(f"{c[:6]:>{wcol}}" for c in classes)
    lines = ["Confusion matrix (rows = true class, columns = predicted):", header]
    for name, row in zip(classes, cm):
        lines.append(f"  {name:<{wrow}}" + " ".join(f"{v:>{wcol}}" for v in row))
    return lines


def format_console_summary(result: dict, *, summary_path: str | os.PathLike[str] | None = None) -> str:
    """Compact multi-line text for the terminal (no trailing newline).

    Holds the banner (framed by lines of '!'), the accuracy, an aligned per-class table,
    the confusion matrix as integer counts, the number of skipped files and warnings, and
    the timings on one line. ``summary_path`` (e.g. ``write_report(...)["summary"]``)
    replaces the generic "see summary.md" hint with the actual path.
    """
    hint = f"see {summary_path}" if summary_path is not None else f"see {SUMMARY_NAME}"
    lines: list[str] = []
    if result.get("banner"):
        lines += console_banner(result["banner"])
    lines += [str(result.get("title", "Lab run")), f"Accuracy: {_accuracy_text(result)}", ""]
    lines += _console_per_class(result)
    confusion = _console_confusion(result)
    if confusion:
        lines += [""] + confusion
    lines.append("")
    lines.append(f"Skipped files: {len(result.get('skipped') or [])} ({hint})")
    warnings = result.get("warnings") or []
    if warnings:
        lines.append(f"Warnings: {len(warnings)} ({hint})")
        lines += [f"  - {w}" for w in warnings[:10]]
    durations, ips = _split_timings(result.get("timings") or {})
    if durations or ips is not None:
        parts = [f"{k} {v:.1f}s" for k, v in durations.items()]
        if ips is not None:
            parts.append(f"{ips:.1f} images/s")
        import textwrap

        lines += textwrap.wrap("Timings: " + " | ".join(parts), 88, subsequent_indent="  ")
    return "\n".join(lines)
