"""Top-activating patches (notebook 03): receptive fields measured right, patches cut right.

A tiny network whose receptive fields are known by hand checks the geometry and the patch
coordinates; VGG16's and EfficientNet-Lite0's fields are checked against their layers'
kernels and strides; on real 15 Scene images the top patch's activation is the maximum
of that image's map, as the network computes it on its own.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tplib
from tplib import patches
from tplib.errors import LayerError, OptionError
from tplib.images import load_image
from tplib.models import Backbone
from tplib.preprocess import Preprocess
from tplib.registry import NetworkSpec

SIZE = 32
#: As the ci profile runs (the default, precision 'auto', may pick bf16 on this CPU)
FP32 = tplib.Engine(device="cpu", precision="fp32")
EPS = 1e-4


# ------------------------------------------------------------------ a network known by hand
def _toy_backbone() -> Backbone:
    """conv 3x3 (pad 1) -> ReLU -> max-pool 2 -> conv 3x3 (pad 1) -> ReLU.

    Fields: c1 3 px (stride 1, starts at -1), p1 4 px (stride 2, -1), c2 8 px (stride 2,
    -3). Channel 0 of c2 is about the image's brightness, max-pooled (a centre tap of 1,
    the other taps EPS, so that every tap counts): its maximum sits under the brightest
    pixel. Channel 1 is half of it, channel 2 is 0 everywhere.
    """
    conv1, conv2 = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        for conv in (conv1, conv2):
            conv.weight.fill_(EPS)
            conv.bias.zero_()
        conv1.weight[0, :, 1, 1] = 1.0 / 3      # channel 0: the mean of R, G, B at the pixel
        conv1.weight[1, 0, 1, 1] = 1.0           # channel 1: the red
        conv2.weight[0, 0, 1, 1] = 1.0
        conv2.weight[1] = conv2.weight[0] / 2
        conv2.weight[2] = 0.0
    model = nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2), conv2, nn.ReLU()).eval()
    spec = NetworkSpec(name="toy", title="Toy", family="torchvision",
                       layers={"c1": "1", "p1": "2", "c2": "4"}, default_layer="c2", blocks=(),
                       head_module="3", builder="", weights="")
    return Backbone(spec=spec, model=model, weights="random", source="built by hand",
                    weights_id="toy", categories=[],
                    preprocess=Preprocess(size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                          interpolation="nearest"))


@pytest.fixture
def toy():
    return _toy_backbone()


@pytest.fixture
def dots(tmp_path):
    """Black 32x32 PNGs, each with one bright pixel: (brightness, row, column) per file."""
    spots = [(250, 16, 16), (200, 9, 22), (150, 25, 6), (100, 12, 12), (50, 20, 27), (255, 1, 1)]
    paths = []
    for i, (value, r, c) in enumerate(spots):
        a = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        a[r, c] = value
        path = tmp_path / f"dot_{i}.png"
        Image.fromarray(a).save(path)
        paths.append(path)
    return paths, spots


@pytest.mark.parametrize("layer, size, stride, start", [
    ("c1", 3, 1, -1), ("p1", 4, 2, -1), ("c2", 8, 2, -3),
])
def test_receptive_fields_of_a_network_known_by_hand(toy, layer, size, stride, start):
    rf = patches.receptive_field(toy, layer)
    assert rf.size == (size, size) and rf.stride == (stride, stride) and rf.start == (start, start)
    assert rf.complete and rf.input_size == SIZE and rf.channels == {"c1": 2, "p1": 2, "c2": 3}[layer]
    assert rf.map_size == ((SIZE, SIZE) if layer == "c1" else (SIZE // 2, SIZE // 2))


def test_fields_do_not_depend_on_which_relus_are_on_or_which_value_a_pool_keeps(toy):
    """A max-pool's gradient reaches only the largest value of its window, and an off ReLU
    none: measured as they are, the fields would shrink with the input. tplib measures the
    network with average pools and without activations, then puts them back."""
    with torch.no_grad():
        toy.model[0].bias.fill_(-100.0)  # every ReLU after conv1 is off, for any input
    assert patches.receptive_field(toy, "c2").size == (8, 8)
    for module in toy.model.modules():
        assert "forward" not in vars(module)  # the modules' own forward is back
    x = torch.rand(1, 3, SIZE, SIZE)
    assert toy.model(x).abs().max() == 0  # ... and the network computes as before


def test_boxes_and_the_positions_that_see_only_the_image(toy):
    rf = patches.receptive_field(toy, "c2")
    assert rf.box(0, 0, clip=False) == (-3, -3, 5, 5)
    assert rf.box(0, 0) == (0, 0, 5, 5)
    assert rf.box(5, 7) == (7, 11, 15, 19)
    assert rf.box(15, 15, clip=False) == (27, 27, 35, 35) and rf.box(15, 15) == (27, 27, 32, 32)
    rows, cols = rf.inside()
    assert (rows.start, rows.stop) == (2, 14) == (cols.start, cols.stop)  # 2*2-3 >= 0, 13*2-3+8 <= 32
    assert rf.describe() == "c2: 3 maps of 16 x 16, each value sees 8 x 8 px of the 32 x 32 input (stride 2)"


def test_patch_coordinates_on_a_network_known_by_hand(toy, dots):
    paths, spots = dots
    found = patches.top_patches(toy, paths, "c2", channels=[0, 1], k=3, inside=False)["c2"]
    rf = found.receptive_field
    assert found.channels == [0, 1] and found.n_images == 6 and found.n_channels == 3
    # channel 0: the brightest dots first, each patch's field holding its dot
    best = found.patches[0]
    assert [p.path for p in best] == [str(paths[i]) for i in (5, 0, 1)]
    for patch in best:
        value, r, c = spots[paths.index(type(paths[0])(patch.path))]
        assert patch.position == (r // 2, c // 2)
        assert patch.value == pytest.approx(value / 255, rel=1e-2)
        assert patch.field == rf.box(r // 2, c // 2, clip=False) and patch.box == rf.box(r // 2, c // 2)
        top, left, bottom, right = patch.box
        assert patch.pixels.shape == (bottom - top, right - left, 3) and patch.pixels.dtype == np.uint8
        assert tuple(patch.pixels[r - top, c - left]) == (value,) * 3
        assert patch.pixels.sum() == 3 * value  # the dot, and nothing else, is in the patch
    # the dot at (1, 1): its field reaches past the top-left corner, so the patch is clipped
    assert best[0].field == (-3, -3, 5, 5) and best[0].box == (0, 0, 5, 5)
    assert [p.value for p in found.patches[1]] == pytest.approx([v / 2 / 255 for v in (255, 250, 200)],
                                                                rel=1e-2)
    fig = patches.plot_top_patches(found)
    assert len(fig.axes) == 6 and "toy, c2" in fig._suptitle.get_text()


def test_inside_keeps_the_fields_that_see_only_the_image(toy, dots):
    paths, spots = dots
    found = patches.top_patches(toy, paths, ["c2"], channels=[0], k=6)["c2"]
    assert found.inside
    rows, cols = found.receptive_field.inside()
    order = [paths.index(type(paths[0])(p.path)) for p in found.patches[0]]
    assert order[:5] == [0, 1, 2, 3, 4]  # the dot at (1, 1) lies where no whole field fits
    for patch in found.patches[0]:
        assert rows.start <= patch.position[0] < rows.stop and cols.start <= patch.position[1] < cols.stop
        assert patch.box == patch.field
    assert found.patches[0][5].value < 1e-6  # that image's map is ~0 wherever a whole field fits


def test_automatic_channels_are_deterministic_and_options_are_checked(toy, dots):
    paths, _ = dots
    a = patches.top_patches(toy, paths, "c2", channels=2, k=3)["c2"]
    b = patches.top_patches(toy, paths, "c2", channels=2, k=3)["c2"]
    assert a.channels == b.channels and len(a.channels) == 2
    assert 2 not in a.channels  # all zero: nothing stands out
    assert "stand out" in a.chosen_by and "toy, c2" in a.describe()
    with pytest.raises(OptionError, match="k must"):
        patches.top_patches(toy, paths, "c2", k=0)
    with pytest.raises(OptionError, match="out of range"):
        patches.top_patches(toy, paths, "c2", channels=[3])
    with pytest.raises(OptionError, match="channels must"):
        patches.top_patches(toy, paths, "c2", channels=0)
    with pytest.raises(OptionError, match="layers is empty"):
        patches.top_patches(toy, paths, [])


def test_the_pass_over_the_images_is_done_once(toy, dots, monkeypatch):
    paths, _ = dots
    calls = []
    scan = patches._scan
    monkeypatch.setattr(patches, "_scan", lambda *a, **kw: calls.append(1) or scan(*a, **kw))
    patches.top_patches(toy, paths, ["c1", "c2"], channels=1, k=2)
    patches.top_patches(toy, paths, ["c1", "c2"], channels=[0, 1], k=4)
    assert len(calls) == 1
    patches.top_patches(toy, paths[:3], ["c1", "c2"], channels=1, k=2)
    assert len(calls) == 2


# ------------------------------------------------------------------ the lab's networks
@pytest.mark.parametrize("layer, size, stride, start", [
    ("relu1_1", 3, 1, -1), ("pool2", 16, 4, -6), ("relu3_3", 40, 4, -18), ("pool4", 100, 16, -42),
])
def test_vgg16_fields_match_its_kernels_and_strides(vgg_random, layer, size, stride, start):
    # 3x3 convs (padding 1) add 2 x stride each, 2x2 pools add 1 x stride and double it
    rf = patches.receptive_field(vgg_random, layer)
    assert (rf.size, rf.stride, rf.start) == ((size, size), (stride, stride), (start, start))


@pytest.mark.parametrize("layer, size, stride, start", [
    # TensorFlow's "same" padding pads a stride-2 conv on the bottom and right only
    ("stem", 3, 2, 0), ("block2", 19, 4, -6), ("block3", 67, 8, -26), ("block4", 147, 16, -58),
])
def test_lite0_fields_match_its_kernels_and_strides(lite0, layer, size, stride, start):
    rf = patches.receptive_field(lite0, layer)
    assert (rf.size, rf.stride, rf.start) == ((size, size), (stride, stride), (start, start))


def test_a_field_larger_than_the_input_is_measured_on_a_larger_probe(lite0):
    assert not patches.receptive_field(lite0, "block5", max_factor=1).complete
    rf = patches.receptive_field(lite0, "block5")  # 147 + 3 blocks x 2 x 2 x 16 = 339
    assert rf.complete and rf.size == (339, 339) and rf.map_size == (14, 14)
    rows, cols = rf.inside()
    assert rows.stop == rows.start and cols.stop == cols.start  # no position sees only the image


def test_patch_layers_pick_an_early_and_a_deep_stage(vgg_random, lite0):
    assert patches.patch_layers(vgg_random) == ("pool2", "pool4")
    assert patches.patch_layers(lite0) == ("block2", "block3")
    fields = patches.receptive_fields(lite0)
    assert [f.layer for f in fields] == ["stem", *(f"block{i}" for i in range(1, 8))]  # no "pooled"
    assert [f.complete for f in fields] == [True] * 5 + [False] * 3
    assert "more than the 224 x 224 input" in fields[-1].describe()


def test_vectors_have_no_receptive_field(vgg_random):
    with pytest.raises(LayerError, match="vectors, not maps"):
        patches.receptive_field(vgg_random, "relu7")


# ------------------------------------------------------------------ real images
@pytest.mark.real_data
def test_top_patch_activation_is_the_maximum_of_its_map(lite0, real_data_dir):
    split = tplib.load_dataset(real_data_dir / "15SceneData").train.subset(2)
    found = patches.top_patches(lite0, split, ["block2", "block3"], channels=3, k=4,
                                description="15 Scene, 2 per class", engine=FP32)
    for layer, result in found.items():
        assert result.n_images == 30 and result.maxima.shape == (30, result.n_channels)
        assert result.title().startswith(f"efficientnet_lite0, {layer} (receptive field")
        assert "15 Scene, 2 per class" in result.title()
        rows, cols = result.receptive_field.inside()
        for c in result.channels:
            values = [p.value for p in result.patches[c]]
            assert values == sorted(values, reverse=True)
            assert values[0] == pytest.approx(result.maxima[:, c].max())
            top = result.patches[c][0]
            maps = tplib.activations(lite0, top.path, layer)[layer][c]  # the plain model, one image
            assert top.value == pytest.approx(float(maps[rows, cols].max()), rel=1e-4, abs=1e-4)
            assert top.value == pytest.approx(float(maps[top.position]), rel=1e-4, abs=1e-4)
            x = lite0.preprocess.to_uint8(load_image(top.path))
            t, left, b, r = top.box
            assert np.array_equal(top.pixels, x[:, t:b, left:r].permute(1, 2, 0).numpy())
            assert top.box == top.field  # inside: whole fields only
        fig = patches.plot_top_patches(result)
        assert len(fig.axes) == 3 * 4


@pytest.mark.real_data
def test_without_inside_the_top_patch_is_the_whole_maps_maximum(lite0, real_data_dir):
    split = tplib.load_dataset(real_data_dir / "15SceneData").train.subset(1)
    result = patches.top_patches(lite0, split, "block3", channels=2, k=2, inside=False,
                                 engine=FP32)["block3"]
    for c in result.channels:
        top = result.patches[c][0]
        maps = tplib.activations(lite0, top.path, "block3")["block3"][c]
        assert top.value == pytest.approx(float(maps.max()), rel=1e-4, abs=1e-4)
    with pytest.raises(OptionError, match="inside=False"):
        patches.top_patches(lite0, split, "block5")
