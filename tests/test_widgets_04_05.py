"""Views of notebooks 04 and 05, headless: change a control, the output changes.

No browser and no kernel: the views' text lines are Output widgets whose ``outputs`` are
set directly, and figures go through ``tplib.widgets.show_figure``, recorded here.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

import tplib.widgets as widgets  # noqa: E402
from tplib.features import Features  # noqa: E402
from tplib.svm import most_confused, svm_fit_score  # noqa: E402


@pytest.fixture
def shown(monkeypatch):
    """Every figure a view shows, in order: [(Output widget, Figure)]."""
    figures = []
    monkeypatch.setattr(widgets, "show_figure", lambda out, fig: figures.append((out, fig)))
    return figures


def text_of(out) -> str:
    return "".join(o.get("text", "") for o in out.outputs)


def _features(tmp_path, name, labels, arrays, classes):
    from PIL import Image

    paths = []
    for i, y in enumerate(labels):
        p = tmp_path / name / f"img_{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 32), 40 * int(y) % 256, dtype=np.uint8)).save(p)
        paths.append(str(p))
    return Features(arrays=arrays, labels=np.asarray(labels, dtype=np.int64), paths=paths,
                    classes=classes)


@pytest.fixture
def svm_case(tmp_path):
    """Two layers of generated features for 4 classes, with image files for the gallery."""
    rng = np.random.default_rng(0)
    k, classes = 4, ["bedroom", "kitchen", "coast", "forest"]
    centers = {"deep": rng.normal(size=(k, 64)), "shallow": rng.normal(size=(k, 8))}
    out = []
    for name, n in (("train", 15), ("test", 12)):
        y = np.repeat(np.arange(k), n)
        arrays = {layer: (c[y] * 0.6 + rng.normal(size=(len(y), c.shape[1]))).astype(np.float32)
                  for layer, c in centers.items()}
        out.append(_features(tmp_path, name, y, arrays, classes))
    return out


# ---------------------------------------------------------------- 04: confusion explorer
def test_confusion_explorer_follows_the_dropdown(svm_case, shown):
    train, test = svm_case
    result = svm_fit_score(train["shallow"], train.labels, test["shallow"], test.labels, C=1)
    pairs = most_confused(result.confusion, test.classes, k=None)
    assert len(pairs) >= 2, "the generated data should give several confusions"
    view = widgets.confusion_explorer(result, test)
    assert "tplib-confusion-explorer" in view._dom_classes
    pick, text, gallery = view.children
    assert pick.description
    # options ordered by count, most frequent first, with the count shown
    counts = [result.confusion[i, j] for _, (i, j) in pick.options]
    assert counts == sorted(counts, reverse=True)
    assert pick.value == (pairs[0].true_index, pairs[0].predicted_index)
    first_text = text_of(text)
    assert f"{pairs[0].count} of the" in first_text and pairs[0].predicted in first_text
    assert len(shown) == 1 and shown[0][0] is gallery
    first_title = shown[0][1]._suptitle.get_text()
    assert pairs[0].true in first_title and pairs[0].predicted in first_title

    pick.value = pick.options[1][1]  # what a click does
    assert len(shown) == 2
    true, pred = pick.value
    assert text_of(text) != first_text
    assert f"predicted as {test.classes[pred]}" in text_of(text)
    fig = shown[1][1]
    assert fig._suptitle.get_text() != first_title
    n_images = int(result.confusion[true, pred])
    assert len(fig.axes) == min(n_images, 8)


def test_confusion_explorer_without_any_confusion(svm_case, shown):
    train, test = svm_case
    result = svm_fit_score(train["deep"], train.labels, test["deep"], test.labels, C=1)
    result.confusion = np.diag(np.diag(result.confusion) + result.confusion.sum(axis=1) -
                               np.diag(result.confusion))
    result.predictions = test.labels.copy()
    view = widgets.confusion_explorer(result, test)
    assert "no confusion" in view.children[0].options[0][0]
    assert len(shown) == 1  # a gallery of the first class's correct images, no error


def test_confusion_options_match_most_confused(svm_case):
    train, test = svm_case
    result = svm_fit_score(train["shallow"], train.labels, test["shallow"], test.labels)
    options = widgets.confusion_options(result, test.classes)
    pairs = most_confused(result.confusion, test.classes, k=None)
    assert [v for _, v in options] == [(p.true_index, p.predicted_index) for p in pairs]
    assert options[0][0] == f"{pairs[0].true} → {pairs[0].predicted} ({pairs[0].count})"


# ---------------------------------------------------------------- 05: layer and C
def test_svm_explorer_follows_the_slider_and_the_dropdown(svm_case, shown, monkeypatch):
    train, test = svm_case
    import tplib.svm

    calls = []
    real = tplib.svm.svm_fit_score

    def spy(*args, **kwargs):
        calls.append(kwargs.get("C"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tplib.svm, "svm_fit_score", spy)  # the view imports it when made
    view = widgets.svm_explorer(train, test, ["shallow", "deep"])
    assert "tplib-svm-explorer" in view._dom_classes
    controls, text, plot = view.children
    layer_pick, c_slider = controls.children
    assert layer_pick.description and c_slider.description
    assert type(c_slider).__name__ == "FloatLogSlider"
    assert layer_pick.value == "deep" and c_slider.value == 1.0
    first = text_of(text)
    expected = svm_fit_score(train["deep"], train.labels, test["deep"], test.labels, C=1.0)
    assert f"{expected.accuracy:.3f}" in first and "layer deep (64 values" in first and "fit" in first
    assert len(shown) == 1 and shown[0][0] is plot

    c_slider.value = 0.001
    assert calls == [1.0, 0.001]
    assert "C = 0.001" in text_of(text) and text_of(text) != first
    small = svm_fit_score(train["deep"], train.labels, test["deep"], test.labels, C=0.001)
    assert f"{small.accuracy:.3f}" in text_of(text)
    assert len(shown) == 2

    layer_pick.value = "shallow"
    assert "layer shallow (8 values" in text_of(text)
    assert "shallow" in shown[-1][1].axes[0].get_title()

    # back to a pair already fitted: read from the view's memory, not fitted again
    layer_pick.value = "deep"
    assert len(calls) == 3
    assert set(view.results) == {("deep", 1.0), ("deep", 0.001), ("shallow", 0.001)}


def test_svm_line_format():
    class R:
        accuracy, n_correct, n_test, fit_seconds = 0.5, 3, 6, 0.01234

    assert widgets.svm_line(R, "relu7", 0.1, 4096) == (
        "layer relu7 (4,096 values per image), C = 0.1: test accuracy 0.500 (3/6), fit 0.01 s")


def test_show_figure_sets_the_png_without_a_kernel():
    import ipywidgets
    from matplotlib.figure import Figure

    out = ipywidgets.Output()
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1])
    widgets.show_figure(out, fig)
    (first,) = out.outputs
    assert first["output_type"] == "display_data"
    assert first["data"]["text/plain"] == "<Figure size 100x50 with 1 Axes>"
    import base64

    assert base64.b64decode(first["data"]["image/png"]).startswith(b"\x89PNG")
    fig.axes[0].plot([1, 0])
    widgets.show_figure(out, fig)
    assert len(out.outputs) == 1 and out.outputs[0] != first  # replaced, not appended


def test_confusion_explorer_gallery_changes_for_real(svm_case):
    """No recording: the gallery Output widget itself holds a new image after a change."""
    train, test = svm_case
    result = svm_fit_score(train["shallow"], train.labels, test["shallow"], test.labels, C=1)
    view = widgets.confusion_explorer(result, test)
    pick, _, gallery = view.children
    before = gallery.outputs[0]["data"]["image/png"]
    pick.value = pick.options[1][1]
    assert gallery.outputs[0]["data"]["image/png"] != before
