"""Notebook 06's view, headless: changing a control retrains the head and redraws."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from tplib import widgets  # noqa: E402


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n, 8)) + 2, rng.normal(size=(n, 8)) - 2]).astype(np.float32)
    return X, np.repeat([0, 1], n)


def test_head_training_view_redraws_for_a_new_learning_rate(monkeypatch):
    drawn = []
    monkeypatch.setattr(widgets, "show_figure", lambda out, fig: drawn.append(fig))
    (X, y), (Xv, yv) = blobs(20, 0), blobs(10, 1)
    view = widgets.head_training_view(X, y, Xv, yv, loss="bce", epochs=3)
    assert "tplib-head-training" in view._dom_classes
    lr, epochs, head = view.children[0].children
    assert [c.description for c in (lr, epochs, head)] == ["learning rate", "epochs", "head"]
    assert len(drawn) == 1 and "lr 3e-03, 3 epochs, linear head" in drawn[0]._suptitle.get_text()
    lr.value = 0.1
    assert len(drawn) == 2 and "lr 1e-01" in drawn[1]._suptitle.get_text()
    head.value = 256
    assert "256 hidden units" in drawn[2]._suptitle.get_text()
    epochs.value = 5
    assert "5 epochs" in drawn[3]._suptitle.get_text()
    lr.value = 0.1 * 10 ** 0  # unchanged value: no redraw
    assert len(drawn) == 4
