"""Library helpers behind notebooks 01-03: the layer table, the plots, the first layers of
each network, train mode without side effects, and a photo from a path or a URL."""
from __future__ import annotations

import http.server
import io
import socket
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import tplib
from tplib import viz
from tplib.errors import DownloadError, ImageError, TplibError
from tplib.images import image_from_bytes, load_image_from, load_rgb
from tplib.models import build_model, first_layers, mode_sensitive_layers, train_mode
from tplib.predict import LayerTable, layer_table
from tplib.registry import NETWORKS
from tplib.samples import sample_photos

FC_WEIGHTS = 25088 * 4096 + 4096 * 4096 + 4096 * 1000


# ------------------------------------------------------------------ notebook 01: the table
def test_vgg16_table_total_and_fc_share(vgg_random):
    table = layer_table(vgg_random)
    assert isinstance(table, LayerTable) and isinstance(table, list)
    assert table.total == 138_357_544
    fc = sum(r.params for r in table if r.kind == "Linear")
    assert fc == FC_WEIGHTS + 4096 + 4096 + 1000
    assert FC_WEIGHTS / table.total == pytest.approx(0.8936, abs=1e-4)
    assert table.share("fc6") == pytest.approx(102_764_544 / 138_357_544)
    with pytest.raises(KeyError):
        table.share("fc9")


def test_table_shows_as_aligned_text_and_html(vgg_random):
    table = layer_table(vgg_random)
    text = repr(table)
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "module", "kind", "output", "shape", "parameters", "share"]
    assert len(lines) == 1 + 1 + len(table) + 1 + 1  # head, rule, rows, rule, total
    assert lines[-1].split() == ["total", "138,357,544", "100%"]
    fc6 = next(line for line in lines if line.startswith("fc6"))
    assert "102,764,544" in fc6 and "74.3%" in fc6 and "4096" in fc6
    conv11 = next(line for line in lines if line.startswith("conv1_1"))
    assert "64 x 224 x 224" in conv11 and "<0.1%" in conv11
    assert len({len(line) for line in lines if line.startswith(("conv", "fc"))}) <= 2  # aligned
    html = table._repr_html_()
    assert html.startswith('<table class="tplib-layer-table">')
    assert html.count("<tr") == len(table) + 2 and "138,357,544" in html


def test_table_total_counts_modules_without_a_friendly_name(lite0):
    table = layer_table(lite0)
    assert table.total == sum(p.numel() for p in lite0.model.parameters())
    assert table.total > sum(r.params for r in table)  # conv_stem has no friendly name
    assert LayerTable([], total=None).total == 0


def test_parameter_plot_has_one_bar_per_layer_with_parameters(vgg_random):
    table = layer_table(vgg_random)
    fig = viz.plot_layer_parameters(table)
    ax = fig.axes[0]
    assert len(ax.patches) == 16 and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:2] == ["conv1_1", "conv1_2"] and labels[-3:] == ["fc6", "fc7", "fc8"]
    colors = {tuple(p.get_facecolor()) for p in ax.patches[-3:]}
    assert len(colors) == 1 and colors != {tuple(ax.patches[0].get_facecolor())}
    assert "74%" in [t.get_text() for t in ax.texts]
    fig = viz.plot_layer_parameters({"a": 10, "b": 0, "c": 1000}, log=False)
    assert len(fig.axes[0].patches) == 2 and fig.axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="no layer"):
        viz.plot_layer_parameters({"relu": 0})


# ------------------------------------------------------------------ notebook 02
def test_plot_topk_one_or_several_rows():
    top = [("espresso", 0.9), ("cup", 0.05), ("mug", 0.01)]
    fig = viz.plot_topk(top)
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 3
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "espresso"  # best on top
    img = Image.new("RGB", (30, 20), (255, 0, 0))
    fig = viz.plot_topk([top, top[:2]], images=[img, np.zeros((8, 8, 3))], titles=["a", "b"])
    assert len(fig.axes) == 4 and len(fig.axes[3].patches) == 2 and fig.axes[1].get_title() == "a"
    assert len(viz.plot_topk(top, images=img).axes) == 2
    with pytest.raises(ValueError):
        viz.plot_topk([1, 2, 3])
    with pytest.raises(ValueError, match="titles"):
        viz.plot_topk([top, top], titles=["only one"])


def test_train_mode_restores_the_mode_and_batchnorm_statistics(lite0):
    model = lite0.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.stack([lite0.preprocess(load_rgb(p)) for p in sample_photos().values()])
    with torch.no_grad():
        eval_out = model.eval()(x[:1])
        with train_mode(model):
            assert model.training
            alone, again = model(x[:1]), model(x[:1])
            in_batch = model(x)[:1]
        assert not any(m.training for m in model.modules())
        assert torch.equal(model(x[:1]), eval_out)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # BatchNorm in train mode: batch statistics, not the stored ones; depends on the batch
    assert not torch.allclose(alone, eval_out, atol=1e-3)
    assert torch.allclose(alone, again)
    assert not torch.allclose(alone, in_batch, atol=1e-3)


def test_train_mode_keeps_a_mixed_mode_and_restores_after_errors():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).eval()
    model[1].train()
    with pytest.raises(RuntimeError), train_mode(model):
        raise RuntimeError("inside")
    assert not model.training and not model[0].training and model[1].training


def test_mode_sensitive_layers(vgg_random, lite0):
    assert mode_sensitive_layers(vgg_random.model) == {"dropout": 2, "batchnorm": 0}
    lite = mode_sensitive_layers(lite0.model)
    assert lite["batchnorm"] > 40 and lite["dropout"] == int(lite0.model.drop_rate > 0)


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def http_server():
    """A local HTTP server on 127.0.0.1: /photo.jpg, /page.html, anything else 404."""
    photo = _jpeg_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = {"/photo.jpg": photo, "/page.html": b"<html>not a photo</html>"}.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_image_from_a_url(http_server):
    img = load_image_from(f"{http_server}/photo.jpg")
    assert img.mode == "RGB" and img.size == (40, 30)


@pytest.mark.parametrize("path, error, words", [
    ("/missing.jpg", DownloadError, ["HTTP 404", "Check the URL"]),
    ("/page.html", ImageError, ["not an image"]),
])
def test_url_failures_are_one_line(http_server, path, error, words):
    with pytest.raises(error) as err:
        load_image_from(http_server + path)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words)


def test_closed_port_says_no_network_in_one_line():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TplibError) as err:
        load_image_from(f"http://127.0.0.1:{port}/photo.jpg", timeout=5)
    message = str(err.value)
    assert "\n" not in message and "No network here?" in message and "file path" in message
    assert err.value.__suppress_context__  # a notebook shows the line, not a chain of errors


def test_load_image_from_a_path(tmp_path):
    photo = next(iter(sample_photos().values()))
    assert load_image_from(photo).size == load_rgb(photo).size
    assert load_image_from(str(photo)).mode == "RGB"
    with pytest.raises(ImageError, match="no such file"):
        load_image_from(tmp_path / "nope.jpg")
    for empty in ("", "  ", None):
        with pytest.raises(ImageError, match="file path or a URL"):
            load_image_from(empty)


def test_image_from_bytes_takes_bytes_and_memoryview():
    data = _jpeg_bytes()
    assert image_from_bytes(memoryview(data)).size == (40, 30)
    gray = io.BytesIO()
    Image.new("L", (5, 5), 80).save(gray, "PNG")
    assert image_from_bytes(gray.getvalue()).mode == "RGB"
    with pytest.raises(ImageError, match="empty"):
        image_from_bytes(b"", "x.jpg")
    with pytest.raises(ImageError, match="x.txt: not an image"):
        image_from_bytes(b"hello", "x.txt")


def test_images_is_a_public_submodule():
    assert tplib.images.load_image_from is load_image_from


# ------------------------------------------------------------------ notebook 03
def test_first_layers_of_vgg16_and_lite0(vgg_random, lite0):
    assert tuple(first_layers(vgg_random)) == ("conv1_1", "relu1_1", "relu4_3")
    assert tuple(first_layers(lite0)) == ("conv_stem", "stem", "block4")
    photo = sample_photos()["chelsea"]
    for backbone in (vgg_random, lite0):
        f = first_layers(backbone)
        acts = tplib.activations(backbone, photo, list(f))
        conv, act, deep = (acts[name] for name in f)
        weight = backbone.module(f.conv).weight
        assert weight.shape[:2] == (conv.shape[0], 3)  # the first conv reads RGB
        assert act.shape == conv.shape and act.min() >= 0  # after ReLU / ReLU6
        assert not torch.equal(act, conv)  # the conv's own output, before the non-linearity
        assert deep.shape[1] < act.shape[1] and deep.shape[0] > act.shape[0]


@pytest.mark.parametrize("name", [n for n in NETWORKS if n != "vgg16"])
def test_first_layers_exist_in_every_network(name):
    model = build_model(name)
    modules = dict(model.named_modules())
    spec = NETWORKS[name]
    f = first_layers(spec)
    assert all(f)
    for layer in f:
        assert (spec.node(layer) or layer) in modules
    assert isinstance(modules[spec.node(f.conv) or f.conv], torch.nn.Conv2d)
    assert modules[spec.node(f.conv) or f.conv].in_channels == 3


def test_plot_filters_draws_rgb_tiles_scaled_per_filter():
    w = torch.randn(10, 3, 3, 3)
    fig = viz.plot_filters(w, ncols=4, title="filters")
    assert len(fig.axes) == 10
    tile = fig.axes[0].images[0].get_array()
    assert tile.shape == (3, 3, 3) and float(tile.min()) == 0.0 and float(tile.max()) == 1.0
    gray = viz.plot_filters(np.ones((4, 16, 3, 3)), n=2)
    assert len(gray.axes) == 2 and gray.axes[0].images[0].get_array().shape == (3, 3)
    with pytest.raises(ValueError):
        viz.plot_filters(np.zeros((3, 3)))


def test_plot_activation_channel():
    maps = torch.rand(8, 12, 12)
    fig = viz.plot_activation_channel(maps, 5, image=Image.new("RGB", (12, 12)), title="t")
    assert len(fig.axes) == 3  # input, map, colour bar
    assert np.allclose(fig.axes[1].images[0].get_array(), maps[5].numpy())
    assert "channel 5 of 8" in fig.axes[1].get_title()
    assert len(viz.plot_activation_channel(maps[None], 0).axes) == 2
    with pytest.raises(ValueError, match="out of range"):
        viz.plot_activation_channel(maps, 8)
