"""tplib.extraction: the cut network of notebook 04's loop, and the check of the student's rows.

The cut network gives the rows of ``extract_features`` and leaves the backbone as it was;
the check passes right answers (a plain loop, a DataLoader, one image at a time, float64)
and names each usual mistake. The tests run the real EfficientNet-Lite0 on a tiny folder of
generated grayscale images (the check compares rows, so any images do; grayscale like 15
Scene), also told to expect ImageNet's per-channel mean and std (VGG16's numbers), where
channel order and a gray channel normalised once change the rows; ResNet-18's and VGG16's
architectures (seeded random weights) for the cut network and the VGG16relu7 path. The
answers in notebook 04's own context are in tests/answers/04_extracted_features/.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from tplib import checks, extraction
from tplib.data import Split
from tplib.extraction import (
    SAME_ROW,
    CutNetwork,
    cut_network,
    diagnose_extraction,
    reference_engine,
    right_input,
    wrong_inputs,
)
from tplib.features import extract_features
from tplib.models import VGG16relu7, load_backbone
from tplib.preprocess import IMAGENET_MEAN, IMAGENET_STD
from tplib.svm import l2_normalize

LAYER = "pooled"


@pytest.fixture(scope="module")
def gray_split(tmp_path_factory) -> Split:
    """3 classes x 4 grayscale JPEGs of varied sizes (12 images: batches of 5 leave 2)."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("gray") / "train"
    paths, labels = [], []
    classes = ["alpha", "beta", "gamma"]
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(4):
            h, w = (int(v) for v in rng.integers(60, 140, size=2))
            base = np.linspace(0, 255, w)[None, :] * (k + 1) / 3 + rng.normal(0, 30, size=(h, w))
            path = root / name / f"img_{i}.jpg"
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="L").save(path)
            paths.append(path)
            labels.append(k)
    return Split(root=root, name="train", classes=classes, paths=paths,
                 labels=np.array(labels, dtype=np.int64))


@pytest.fixture(scope="module")
def resnet():
    """A torchvision network with BatchNorm; seeded random weights (rows are compared)."""
    return load_backbone("resnet18", weights="random")


@pytest.fixture(scope="module")
def lite0_imagenet(lite0):
    """Real weights told to expect ImageNet's per-channel mean and std (VGG16's numbers): a
    stand-in for VGG16 where channel order and one-channel normalisation change the rows
    (random weights would not tell such small input changes apart)."""
    prep = dataclasses.replace(lite0.preprocess, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return dataclasses.replace(lite0, preprocess=prep, notes=[])


def student_rows(net, split, prep, *, batch=5, make=None, train=False, grad=False, l2=True):
    """A student's loop: batches in order, one row per image, L2 rows, the labels."""
    make = make or (lambda img: right_input(img, prep))
    net.train() if train else net.eval()
    rows = []
    with torch.set_grad_enabled(grad):
        for start in range(0, len(split.paths), batch):
            x = torch.stack([make(Image.open(p)) for p in split.paths[start:start + batch]])
            rows.append(net(x))
    net.eval()
    X = torch.cat(rows)
    if grad:
        return X, np.asarray(split.labels)
    X = X.numpy()
    if l2:
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.asarray(split.labels)


def judge(X, y, split, backbone, layer=LAYER):
    return diagnose_extraction(X, y, split, backbone, layer)


# ------------------------------------------------------------------ the cut network
@pytest.mark.parametrize("which", ["lite0", "resnet"])
def test_cut_network_gives_the_rows_of_extract_features(which, request, gray_split):
    backbone = request.getfixturevalue(which)
    net = cut_network(backbone)
    assert isinstance(net, CutNetwork) and net.layer == backbone.default_layer
    x = torch.stack([backbone.preprocess(Image.open(p)) for p in gray_split.paths[:6]])
    with torch.no_grad():
        rows = net.eval()(x).numpy()
    ref = extract_features(backbone, gray_split.paths[:6], backbone.default_layer, cache=False,
                           progress=False, engine=reference_engine())[backbone.default_layer]
    assert rows.shape == ref.shape and rows.dtype == np.float32
    assert np.abs(rows - ref).max() <= 1e-4 * np.abs(ref).max()
    assert "up to" in repr(net) and "\n" not in repr(net)


def test_cut_network_of_vgg16_at_relu7_is_the_lab_class(vgg_random):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine = cut_network(vgg_random, "relu7").eval()(x)
        lab = VGG16relu7(vgg_random.model).eval()(x)
    assert mine.shape == (2, 4096)
    torch.testing.assert_close(mine, lab, rtol=1e-4, atol=1e-5)


def test_cut_network_shares_the_weights_keeps_the_graph_and_never_changes_the_backbone(lite0):
    net = cut_network(lite0)
    shared = {p.data_ptr() for p in lite0.model.parameters()}
    assert all(p.data_ptr() in shared for p in net.parameters())  # no copy of the weights
    before = {k: v.clone() for k, v in lite0.model.state_dict().items()}
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    out = net.train()(x)  # train mode, gradients on: what the usual mistakes do
    assert out.requires_grad  # a graph, as any module gives without torch.no_grad()
    with torch.no_grad():
        assert not net.eval()(x).requires_grad
    after = lite0.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too
    assert not lite0.model.training
    assert any(not torch.equal(a, b) for a, b in zip(
        [b for n, b in net.network.named_buffers() if "running_mean" in n],
        [b for n, b in lite0.model.named_buffers() if "running_mean" in n]))


# ------------------------------------------------------------------ right answers
def test_a_plain_loop_passes_with_one_line(lite0, gray_split):
    X, y = student_rows(cut_network(lite0), gray_split, lite0.preprocess)
    found = judge(X, y, gray_split, lite0)
    assert found.ok and "\n" not in found.message, found
    verdict = checks.check_extracted_features(X, y, gray_split, lite0, LAYER)
    assert verdict.ok and str(verdict).startswith("✔")


def test_a_dataloader_one_image_at_a_time_and_float64_pass(lite0, gray_split):
    from torch.utils.data import DataLoader, Dataset

    prep = lite0.preprocess
    net = cut_network(lite0).eval()

    class Images(Dataset):
        def __len__(self):
            return len(gray_split.paths)

        def __getitem__(self, i):
            return right_input(Image.open(gray_split.paths[i]), prep), int(gray_split.labels[i])

    rows, labels = [], []
    with torch.no_grad():
        for x, y in DataLoader(Images(), batch_size=4, shuffle=False):
            rows.append(net(x).numpy())
            labels.append(y.numpy())
    X = np.concatenate(rows)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert judge(X, np.concatenate(labels), gray_split, lite0).ok
    X1, y1 = student_rows(net, gray_split, prep, batch=1)
    found = judge(X1.astype(np.float64), torch.from_numpy(y1), gray_split, lite0)
    assert found.ok and "float64" in found.message, found


def test_harmless_here_channel_order_on_gray_images_with_equal_statistics(lite0, gray_split):
    """BGR changes nothing on gray images normalised with the same mean and std per channel."""
    prep = lite0.preprocess
    X, y = student_rows(cut_network(lite0), gray_split, prep,
                        make=lambda img: right_input(img, prep).flip(0))
    assert judge(X, y, gray_split, lite0).ok


# ------------------------------------------------------------------ mistakes: rows and types
@pytest.fixture(scope="module")
def right(lite0, gray_split):
    return student_rows(cut_network(lite0), gray_split, lite0.preprocess)


def _shuffled(X, y):
    order = np.random.default_rng(1).permutation(len(X))
    return X[order], y[order]


def _zero_tail(X, y):
    X = X.copy()
    X[-2:] = 0  # a pre-allocated array, the last partial batch of 2 never written
    return X, y


def _nan_tail(X, y):
    X, y = _zero_tail(X, y)
    with np.errstate(invalid="ignore"):
        return X / np.linalg.norm(X, axis=1, keepdims=True), y


def _garbage_tail(X, y):
    X = X.copy()
    X[-2:] = np.random.default_rng(0).random((2, X.shape[1]))  # np.empty's leftovers
    return X, y


@pytest.mark.parametrize("mistake, hint", [
    (_zero_tail, "partial batch"),
    (_nan_tail, "partial batch"),
    (_garbage_tail, "partial batch"),
    (lambda X, y: (X[:10], y[:10]), "drop_last"),
    (lambda X, y: (np.concatenate([X, X[-2:]]), np.concatenate([y, y[-2:]])), "added twice"),
    (lambda X, y: (np.concatenate([X[:5], X[:5], X[10:]]), y), "appear twice"),
    (_shuffled, "shuffled together"),
    (lambda X, y: (_shuffled(X, y)[0], y), "another order"),
    (lambda X, y: (X, _shuffled(X, y)[1]), "y holds the right labels in another order"),
    (lambda X, y: (X, y + 1), "from 1"),
    (lambda X, y: (X, np.array(["alpha"] * len(y))), "class names"),
    (lambda X, y: (X, y[:-1]), "one label per row"),
    (lambda X, y: (X * 7.0, y), "lengths are not 1"),
    (lambda X, y: (torch.from_numpy(X), y), "torch tensor"),
    (lambda X, y: ([X[:5], X[5:10], X[10:]], y), "list of 3 batches"),
    (lambda X, y: (list(X), y), "np.stack"),
    (lambda X, y: (X.T, y), "transpose"),
    (lambda X, y: (X[:, :, None, None], y), "flatten"),
    (lambda X, y: (X[:, :1000], y), "ImageNet scores"),
    (lambda X, y: (X[:, :100], y), "100 values per row"),
    (lambda X, y: ((X * 1000).astype(np.int64), y), "integers"),
])
def test_mistakes_in_the_rows_are_named(right, lite0, gray_split, mistake, hint):
    X, y = mistake(*right)
    found = judge(X, y, gray_split, lite0)
    assert not found.ok and hint.lower() in found.message.lower(), found


def test_rows_not_l2_normalised_are_named(lite0, gray_split):
    X, y = student_rows(cut_network(lite0), gray_split, lite0.preprocess, l2=False)
    found = judge(X, y, gray_split, lite0)
    assert not found.ok and "not L2-normalised yet" in found.message, found


def test_a_graph_kept_is_named(lite0, gray_split):
    X, y = student_rows(cut_network(lite0), gray_split, lite0.preprocess, grad=True)
    assert X.requires_grad
    found = judge(X, y, gray_split, lite0)
    assert not found.ok and "requires grad" in found.message and "no_grad" in found.message
    found = judge(list(X.split(5)), y, gray_split, lite0)
    assert not found.ok and "no_grad" in found.message


# ------------------------------------------------------------------ mistakes: preprocessing
@pytest.mark.slow
@pytest.mark.parametrize("batch", [5, 12, 16])
def test_train_mode_is_named_for_the_usual_batch_sizes(lite0, gray_split, batch, monkeypatch):
    monkeypatch.setattr(extraction, "VARIANT_BUDGET_S", 600.0)  # even on a loaded machine
    X, y = student_rows(cut_network(lite0), gray_split, lite0.preprocess, batch=batch, train=True)
    found = judge(X, y, gray_split, lite0)
    assert not found.ok and "train mode" in found.message and "BatchNorm" in found.message, found


def test_train_mode_with_an_unusual_batch_size_still_points_at_eval_mode(lite0, gray_split):
    X, y = student_rows(cut_network(lite0), gray_split, lite0.preprocess, batch=3, train=True)
    found = judge(X, y, gray_split, lite0)
    assert not found.ok and "eval mode" in found.message, found


def test_train_mode_of_the_students_vgg16relu7_is_seen_on_the_backbone(vgg_random, gray_split):
    """VGG16relu7 shares its modules with the backbone: dropout left on shows there."""
    split = Split(gray_split.root, "train", gray_split.classes, gray_split.paths[:3],
                  gray_split.labels[:3])
    net = VGG16relu7(vgg_random.model)
    try:
        X, y = student_rows(net.train(), split, vgg_random.preprocess, train=True)
        net.train()  # as the student left it
        found = judge(X, y, split, vgg_random, "relu7")
    finally:
        vgg_random.model.eval()
    assert not found.ok and "train mode" in found.message and "dropout" in found.message, found


@pytest.mark.slow
@pytest.mark.parametrize("which", ["lite0", "lite0_imagenet"])
def test_every_usual_preprocessing_mistake_is_told_apart(which, request, gray_split):
    """Each variant's rows get that variant's message (none is mistaken for another)."""
    backbone = request.getfixturevalue(which)
    prep = backbone.preprocess
    net = cut_network(backbone)
    wrong = []
    for variant in wrong_inputs(prep):
        try:
            X, y = student_rows(net, gray_split, prep, make=variant.make)
        except RuntimeError:  # a size this network refuses: the student's loop fails first
            continue
        found = judge(X, y, gray_split, backbone, backbone.default_layer)
        if found.ok:  # the same numbers as the right input here (gray images): harmless
            ref = l2_normalize(extract_features(backbone, gray_split, backbone.default_layer,
                                                progress=False, engine=reference_engine())[
                backbone.default_layer])
            assert np.linalg.norm(X - ref, axis=1).max() < SAME_ROW, variant.name
            continue
        if found.message != variant.message:
            wrong.append(f"{variant.name}: {found.message}")
    assert not wrong, "\n".join(wrong)


def test_channel_order_and_a_gray_channel_normalised_once_matter_with_imagenet_statistics(
        lite0_imagenet, gray_split):
    backbone = lite0_imagenet
    prep = backbone.preprocess
    net = cut_network(backbone)
    names = {v.name: v for v in wrong_inputs(prep)}
    assert {"bgr_stats", "gray_once", "half_stats"} <= set(names)
    assert "imagenet_stats" not in names  # these ARE the network's numbers
    X, y = student_rows(net, gray_split, prep, make=names["bgr_stats"].make)
    assert "BGR" in judge(X, y, gray_split, backbone).message
    X, y = student_rows(net, gray_split, prep, make=names["gray_once"].make)
    assert "normalised once" in judge(X, y, gray_split, backbone).message
    # BGR pixels of a gray image are the same pixels: harmless, passes
    X, y = student_rows(net, gray_split, prep, make=names["bgr_pixels"].make)
    assert judge(X, y, gray_split, backbone).ok


def test_a_small_typo_is_close_and_other_rows_are_not_features(lite0, gray_split):
    prep = lite0.preprocess
    net = cut_network(lite0)
    typo = lambda img: (right_input(img, prep) * 0.5 + 0.5 - torch.tensor(  # noqa: E731
        [0.5, 0.51, 0.5]).view(3, 1, 1)) / 0.5
    X, y = student_rows(net, gray_split, prep, make=typo)
    found = judge(X, y, gray_split, lite0)
    assert not found.ok and "close to the right ones" in found.message, found
    noise = np.abs(np.random.default_rng(0).normal(size=(12, 1280)))
    found = judge(l2_normalize(noise), y, gray_split, lite0)
    assert not found.ok and "not EfficientNet-Lite0 pooled's features" in found.message, found


# ------------------------------------------------------------------ the public check
def test_check_extracted_features_names_odd_values_and_never_raises(right, lite0, gray_split):
    X, y = right
    for value, word in ((None, "None"), ("rows", "str"), (3, "int"), (float("nan"), "NaN"),
                        (np.array([]), "empty")):
        verdict = checks.check_extracted_features(value, y, gray_split, lite0, LAYER)
        assert not verdict.ok and word in verdict.message and "\n" not in str(verdict), verdict
        verdict = checks.check_extracted_features(X, value, gray_split, lite0, LAYER)
        assert not verdict.ok and word in verdict.message, verdict
    verdict = checks.check_extracted_features(X, y, None, lite0, LAYER)
    assert not verdict.ok and verdict.message.startswith("split should be"), verdict
    verdict = checks.check_extracted_features(X, y, gray_split, lite0, "no_such_layer")
    assert not verdict.ok and "no_such_layer" in verdict.message, verdict
    assert checks.check_extracted_features(X, y, gray_split, lite0).ok  # the default layer
