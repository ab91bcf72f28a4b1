"""Views of notebooks 02 and 03, headless: change a control, the output changes."""
from __future__ import annotations

import datetime
import io
import statistics
import time

import pytest
from PIL import Image

pytest.importorskip("ipywidgets")

import tplib.features  # noqa: E402
import tplib.predict  # noqa: E402
from tplib import widgets  # noqa: E402


@pytest.fixture
def shown(monkeypatch):
    """Every figure or text a view puts in its Output, in order."""
    figures = []
    monkeypatch.setattr(widgets, "show_figure", lambda out, fig: figures.append(fig))
    monkeypatch.setattr(widgets, "_show_text", lambda out, text: figures.append(text))
    return figures


def _png(color=(200, 10, 10), size=(48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _bar_labels(fig):
    return [t.get_text() for t in fig.axes[-1].get_yticklabels()]


# ------------------------------------------------------------------ uploads, ipywidgets 7 and 8
def test_uploaded_files_reads_both_ipywidgets_formats():
    data = _png()
    v8 = ({"name": "a.png", "type": "image/png", "size": len(data), "content": memoryview(data),
           "last_modified": datetime.datetime.now()},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": len(data)},
                    "content": data}}
    assert widgets.uploaded_files(v8) == [("a.png", data)]
    assert widgets.uploaded_files(v7) == [("a.png", data)]
    assert widgets.uploaded_files(()) == [] and widgets.uploaded_files({}) == []


# ------------------------------------------------------------------ 02: top-k view
def test_topk_view_redraws_for_the_chosen_photo(lite0, shown, monkeypatch):
    calls = []
    real = tplib.predict.predict_topk
    monkeypatch.setattr(tplib.predict, "predict_topk",
                        lambda b, imgs, k=5: calls.append(len(imgs)) or real(b, imgs, k))
    view = widgets.topk_view(lite0)
    assert "tplib-topk" in view._dom_classes
    assert view.photo.description and view.upload.description
    assert len(shown) == 1 and view.photo.value == "chelsea"
    view.photo.value = "coffee"
    assert len(shown) == 2 and _bar_labels(shown[-1])[-1] == "espresso"  # best on top
    assert shown[-1].axes[-1].get_title() == "coffee"
    view.photo.value = "chelsea"
    view.photo.value = "coffee"
    assert len(shown) == 4 and calls == [1, 1]  # each photo predicted once


def test_topk_view_upload_ipywidgets8_format(lite0, shown):
    view = widgets.topk_view(lite0, k=3)
    data = _png()
    view.upload.value = ({"name": "red.png", "type": "image/png", "size": len(data),
                          "content": memoryview(data), "last_modified": datetime.datetime.now()},)
    assert view.photo.value == "upload: red.png" and "upload: red.png" in view.photo.options
    assert len(shown) == 2 and len(_bar_labels(shown[-1])) == 3
    assert shown[-1].axes[-1].get_title() == "upload: red.png"


def test_topk_view_upload_that_is_not_an_image_says_one_line(lite0, shown):
    view = widgets.topk_view(lite0, photos={"coffee": tplib.sample_photos()["coffee"]})
    view.upload.value = ({"name": "notes.txt", "type": "text/plain", "size": 5,
                          "content": memoryview(b"hello"), "last_modified": datetime.datetime.now()},)
    assert isinstance(shown[-1], str) and "notes.txt: not an image" in shown[-1]
    assert view.photo.options == ("coffee",)


def test_topk_view_accepts_pil_images(lite0, shown):
    img = Image.new("RGB", (64, 64), (0, 0, 255))
    view = widgets.topk_view(lite0, photos={"blue": img}, k=2)
    assert view.photo.options == ("blue",) and len(_bar_labels(shown[-1])) == 2


# ------------------------------------------------------------------ 03: activation browser
def test_activation_browser_channel_slider_redraws_from_the_cache(lite0, shown, monkeypatch):
    computed = []
    real = tplib.features.activations
    monkeypatch.setattr(tplib.features, "activations",
                        lambda b, img, layers: computed.append(layers) or real(b, img, layers))
    view = widgets.activation_browser(lite0, layers=["stem", "block4"])
    assert "tplib-activations" in view._dom_classes
    assert all(w.description for w in (view.photo, view.layer, view.channel))
    assert view.channel.max == 31 and len(shown) == 1 and computed == ["stem"]
    first = shown[-1].axes[1].images[0].get_array().copy()
    view.channel.value = 5
    assert len(shown) == 2 and "channel 5 of 32" in shown[-1].axes[1].get_title()
    assert (shown[-1].axes[1].images[0].get_array() != first).any()
    assert computed == ["stem"]  # the slider only redraws

    times = []
    for c in range(10):
        t0 = time.perf_counter()
        view.channel.value = 10 + c
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 1.0 and computed == ["stem"]


def test_activation_browser_layer_and_photo_changes(lite0, shown):
    view = widgets.activation_browser(lite0, layers=["stem", "block4"], channel=31)
    assert view.channel.value == 31
    n = len(shown)
    view.layer.value = "block4"
    assert view.channel.max == 79 and view.channel.value == 31 and len(shown) == n + 1  # drawn once
    assert "(14x14)" in shown[-1].axes[1].get_title()
    view.channel.value = 79
    view.layer.value = "stem"
    assert view.channel.max == 31 and view.channel.value == 31  # clamped to the new range
    before = len(shown)
    view.photo.value = "rocket"
    assert len(shown) == before + 1 and "rocket" in shown[-1].texts[0].get_text()


def test_activation_browser_default_layers_are_the_spatial_ones(lite0, shown):
    view = widgets.activation_browser(lite0)
    assert view.layer.options[0] == "stem" and "head" in view.layer.options
    assert "pooled" not in view.layer.options and "logits" not in view.layer.options
