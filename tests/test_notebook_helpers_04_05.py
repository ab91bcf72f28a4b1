"""tplib helpers added for notebooks 04 and 05: confusions, layer sweeps, the network
table, and their plots."""
from __future__ import annotations

import numpy as np
import pytest

from tplib import viz
from tplib.experiments import NetworkRow, compare_networks, network_table
from tplib.registry import NETWORKS, sweep_layers
from tplib.svm import Confusion, InputError, confused_indices, most_confused

CLASSES = ["a", "b", "c"]
CM = np.array([[5, 2, 0],
               [3, 4, 2],
               [0, 2, 6]])


# ---------------------------------------------------------------- confusions (04)
def test_most_confused_is_sorted_by_count_then_class_order():
    pairs = most_confused(CM, CLASSES, k=None)
    assert pairs[0] == Confusion("b", "a", 3, 1, 0)
    # ties (2 images) in class order: a->b, b->c, c->b
    assert [(p.true, p.predicted, p.count) for p in pairs[1:]] == [("a", "b", 2), ("b", "c", 2),
                                                                  ("c", "b", 2)]
    assert most_confused(CM, CLASSES, k=2) == pairs[:2]
    assert all(p.true != p.predicted and p.count > 0 for p in pairs)


def test_most_confused_perfect_and_bad_input():
    assert most_confused(np.diag([3, 4, 5]), CLASSES) == []
    with pytest.raises(InputError, match="square"):
        most_confused(np.zeros((2, 3)), CLASSES)
    with pytest.raises(InputError, match="class names"):
        most_confused(CM, ["a", "b"])


def test_confused_indices():
    y_true = np.array([0, 1, 1, 2, 1, 0])
    y_pred = np.array([0, 0, 1, 2, 0, 1])
    assert confused_indices(y_true, y_pred, 1, 0).tolist() == [1, 4]
    assert confused_indices(y_true, y_pred, 2, 0).tolist() == []
    with pytest.raises(InputError):
        confused_indices(y_true, y_pred[:3], 1, 0)


# ---------------------------------------------------------------- layer sweep (05)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_sweep_layers_are_known_layers_in_forward_order(name):
    spec = NETWORKS[name]
    layers = sweep_layers(name)
    order = list(spec.layers)
    assert len(layers) >= 4
    assert all(layer in spec.layers for layer in layers)
    assert [order.index(layer) for layer in layers] == sorted(order.index(layer) for layer in layers)
    assert spec.default_layer in layers


def test_sweep_layers_of_vgg16():
    assert sweep_layers("vgg16") == ("pool1", "pool2", "pool3", "pool4", "pool5", "relu6", "relu7")
    with pytest.raises(KeyError):
        sweep_layers("vgg19")


# ---------------------------------------------------------------- network table (05)
def test_missing_networks_are_listed_not_skipped(image_folder):
    from tplib.data import load_dataset

    rows = compare_networks(load_dataset(image_folder), ["vgg16", "resnet18"])
    assert [r.name for r in rows] == ["vgg16", "resnet18"]
    vgg = rows[0]
    assert not vgg.available and vgg.weights_file == "vgg16-397923af.pth"
    assert "vgg16-397923af.pth" in vgg.missing and "553,433,881 bytes" in vgg.missing
    table = network_table(rows)
    assert "weights not here: vgg16-397923af.pth" in table
    assert "resnet18-" in table


def test_compare_networks_runs_an_available_network(image_folder):
    from tplib.data import load_dataset

    (row,) = compare_networks(load_dataset(image_folder), ["efficientnet_lite0"], progress=False)
    assert row.available and row.layer == "pooled" and row.dim == 1280
    assert row.params == 4_652_008
    assert row.n_test == 6 and 0 <= row.accuracy <= 1 and row.n_correct == round(row.accuracy * 6)
    assert row.seconds > 0 and not row.from_cache
    (again,) = compare_networks(load_dataset(image_folder), ["efficientnet_lite0"], progress=False)
    assert again.from_cache and again.accuracy == row.accuracy


def test_network_table_format():
    rows = [NetworkRow("efficientnet_lite0", "EfficientNet-Lite0", True, "pooled", 1280, 4_652_008,
                       7.25, False, 0.9033, 271, 300),
            NetworkRow("vgg16", "VGG16", False, "relu7", weights_file="vgg16-397923af.pth")]
    lines = network_table(rows).splitlines()
    assert lines[0].split() == ["network", "layer", "feature", "size", "parameters", "test", "accuracy"]
    assert lines[2].split() == ["EfficientNet-Lite0", "pooled", "1,280", "4.7", "M", "0.903", "(271/300)"]
    assert "weights not here: vgg16-397923af.pth" in lines[3]
    timed = network_table(rows, times=True).splitlines()
    assert timed[0].endswith("time (s)") and timed[2].endswith("7.2") and timed[3].endswith("-")
    assert "(cache)" in network_table([NetworkRow(**{**rows[0].__dict__, "from_cache": True})],
                                      times=True)


# ---------------------------------------------------------------- plots
def test_plot_class_counts():
    fig = viz.plot_class_counts({"train": {"a": 100, "b": 100}, "test": {"a": 116, "b": 260}})
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    # first class on top
    assert {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()} == {"a": 1, "b": 0}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train (200)", "test (376)"]
    assert sorted(p.get_width() for p in ax.patches) == [100, 100, 116, 260]
    with pytest.raises(ValueError):
        viz.plot_class_counts({})


def _images(tmp_path, n):
    from PIL import Image

    paths = []
    for i in range(n):
        p = tmp_path / f"im{i}.jpg"
        Image.fromarray(np.full((20, 30), 10 * i, dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_show_confused(tmp_path):
    paths = _images(tmp_path, 6)
    y_true = [0, 1, 1, 1, 2, 1]
    y_pred = [0, 0, 0, 1, 2, 0]
    fig = viz.show_confused(paths, y_true, y_pred, CLASSES, 1, 0)
    assert len(fig.axes) == 3
    assert fig._suptitle.get_text() == "true b, predicted a: 3 shown of 3"
    assert [ax.get_title() for ax in fig.axes] == ["im1.jpg", "im2.jpg", "im5.jpg"]
    assert fig.dpi == 72
    few = viz.show_confused(paths, y_true, y_pred, CLASSES, 1, 0, max_images=2)
    assert len(few.axes) == 2 and "2 shown of 3" in few._suptitle.get_text()
    none = viz.show_confused(paths, y_true, y_pred, CLASSES, 2, 0)
    assert "no test image of c was predicted as a" in none.axes[0].texts[0].get_text()
    with pytest.raises(ValueError):
        viz.show_confused(paths[:2], y_true, y_pred, CLASSES, 1, 0)


def test_show_images_dpi(tmp_path):
    imgs = [np.zeros((8, 8), dtype=np.uint8)] * 2
    assert viz.show_images(imgs, dpi=50).dpi == 50
    assert viz.show_images(imgs).dpi != 50


def test_plot_c_curve():
    Cs = [10.0, 0.1, 1.0]
    cv = {0.1: 0.8, 1.0: 0.9, 10.0: 0.85}
    fig = viz.plot_c_curve(Cs, cv, test_scores=[0.84, 0.79, 0.88], best_C=1.0)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_xdata(), [0.1, 1.0, 10.0])
    np.testing.assert_allclose(lines[0].get_ydata(), [0.8, 0.9, 0.85])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.79, 0.88, 0.84])
    assert "C chosen by cross-validation (1)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(viz.plot_c_curve(Cs, [0.1, 0.2, 0.3]).axes[0].get_lines()) == 1
    with pytest.raises(ValueError):
        viz.plot_c_curve(Cs, [0.1, 0.2])


def test_plot_pca_curve():
    fig = viz.plot_pca_curve([8, 16, 32], [0.8, 0.85, 0.9], fit_seconds=[0.1, 0.2, 0.3], baseline=0.91)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "16", "32"]
    assert "no PCA (0.910)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(viz.plot_pca_curve([8, 16], [0.8, 0.9]).axes) == 1
    with pytest.raises(ValueError):
        viz.plot_pca_curve([8, 16], [0.8])
