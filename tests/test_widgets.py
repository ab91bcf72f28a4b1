"""tplib.widgets: every view checks its arguments before its first draw (one line, never a
traceback from ipywidgets or a value a slider would silently clamp), and notebook 06's
view, headless: changing a control retrains the head with that setting and redraws.

The views of notebooks 02-05 are driven in test_widgets_01_03.py and test_widgets_04_05.py.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from tplib import widgets  # noqa: E402
from tplib.errors import InputError, OptionError  # noqa: E402
from tplib.features import Features  # noqa: E402


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n, 8)) + 2, rng.normal(size=(n, 8)) - 2]).astype(np.float32)
    return X, np.repeat([0, 1], n)


def test_head_training_view_trains_with_each_control_value(monkeypatch):
    """Before: the test passed even if the learning rate never reached training."""
    import tplib.finetune as finetune

    drawn, calls = [], []
    real = finetune.train_head

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_head", spy)
    monkeypatch.setattr(widgets, "show_figure", lambda out, fig: drawn.append(fig))
    (X, y), (Xv, yv) = blobs(20, 0), blobs(10, 1)
    view = widgets.head_training_view(X, y, Xv, yv, loss="bce", epochs=3)
    assert "tplib-head-training" in view._dom_classes
    lr, epochs, head = view.children[0].children
    assert [c.description for c in (lr, epochs, head)] == ["learning rate", "epochs", "head"]
    assert len(drawn) == 1 and "lr 3e-03, 3 epochs, linear head" in drawn[0]._suptitle.get_text()
    assert (calls[0]["lr"], calls[0]["epochs"], calls[0]["hidden"], calls[0]["loss"]) == (3e-3, 3, 0, "bce")
    lr.value = 0.1
    assert len(drawn) == 2 and "lr 1e-01" in drawn[1]._suptitle.get_text()
    assert calls[1]["lr"] == pytest.approx(0.1) and calls[1]["epochs"] == 3
    head.value = 256
    assert "256 hidden units" in drawn[2]._suptitle.get_text() and calls[2]["hidden"] == 256
    epochs.value = 5
    assert "5 epochs" in drawn[3]._suptitle.get_text() and calls[3]["epochs"] == 5
    lr.value = 0.1 * 10 ** 0  # unchanged value: no redraw, no training
    assert len(drawn) == 4 and len(calls) == 4
    lr.value = 3e-3  # a new setting (256 hidden units, 5 epochs): trained
    assert len(drawn) == 5 and len(calls) == 5 and calls[4]["lr"] == pytest.approx(3e-3)
    lr.value = 0.1  # tried before with these controls: drawn from memory, not trained again
    assert len(drawn) == 6 and len(calls) == 5
    # the title's accuracy is the last epoch of a head trained with exactly those settings
    again = real(X, y, Xv, yv, hidden=256, epochs=5, lr=3e-3, loss="bce", seed=0, progress=False)
    assert f"validation accuracy {again.history['val_acc'][-1]:.3f}" in drawn[4]._suptitle.get_text()


@pytest.mark.parametrize("X_val", [None, "empty"])
def test_head_training_view_refuses_an_empty_validation_split(X_val):
    (X, y), (Xv, yv) = blobs(20, 0), blobs(10, 1)
    if X_val == "empty":
        X_val, y_val = Xv[:0], yv[:0]
    else:
        y_val = None
    with pytest.raises(InputError, match="^the validation split is empty: the view draws validation"):
        widgets.head_training_view(X, y, X_val, y_val)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(lr=3.0), r"^lr=3 is outside the slider's range 1e-05 to 1"),
    (dict(lr=1e-7), r"^lr=1e-07 is outside"),
    (dict(epochs=0), r"^epochs=0 is outside the slider's range 1 to 100"),
    (dict(epochs=500), r"^epochs=500 is outside")])
def test_head_training_view_refuses_what_its_sliders_would_clamp(kwargs, needle):
    (X, y), (Xv, yv) = blobs(20, 0), blobs(10, 1)
    with pytest.raises(OptionError, match=needle):
        widgets.head_training_view(X, y, Xv, yv, **kwargs)


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    arrays = {"a": rng.normal(size=(20, 8)).astype(np.float32) + y[:, None],
              "b": rng.normal(size=(20, 4)).astype(np.float32)}
    return Features(arrays, y, [f"{i}.jpg" for i in range(20)], classes=["x", "y"])


@pytest.mark.parametrize("kwargs, needle", [
    (dict(C_range=(2, -3)), r"^C_range=\(2, -3\) must be \(min, max\) exponents of 10 with min < max"),
    (dict(C_range=(1, 1)), r"with min < max"),
    (dict(C_range=5), r"^C_range must be \(min, max\) exponents of 10"),
    (dict(C_range=(-20, 2)),
     r"goes beyond the C that LinearSVC can solve: give exponents of 10 from -10 to 10"),
    (dict(C=1e5), r"^C=100000 is outside the slider's range 0.001 to 100: widen C_range"),
    (dict(C=1e150), r"outside what LinearSVC can solve"),
    (dict(layers=[]), r"^layers is empty")])
def test_svm_explorer_refuses_bad_arguments_before_drawing(features, monkeypatch, kwargs, needle):
    drawn = []
    monkeypatch.setattr(widgets, "show_figure", lambda out, fig: drawn.append(fig))
    with pytest.raises(OptionError, match=needle):
        widgets.svm_explorer(features, features, **kwargs)
    assert drawn == []
    view = widgets.svm_explorer(features, features, layers=["a"], C=1e-3)  # the bound itself
    assert view.children[0].children[1].value == pytest.approx(1e-3) and len(drawn) == 1


@pytest.mark.parametrize("view", ["topk_view", "activation_browser"])
def test_photo_views_refuse_an_empty_photo_dict(view):
    with pytest.raises(InputError, match=r"^photos is empty: give \{name: image file or PIL image\}"):
        getattr(widgets, view)(None, photos={})
    with pytest.raises(InputError, match="^photos must be a dict"):
        getattr(widgets, view)(None, photos=5)


def test_activation_browser_refuses_an_empty_layer_list(lite0):
    with pytest.raises(OptionError, match="^layers is empty: give one or more layer names"):
        widgets.activation_browser(lite0, layers=[])
