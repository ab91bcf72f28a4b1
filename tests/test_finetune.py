"""tplib.finetune: heads on cached features, frozen and partly frozen bases, the two
training paths giving the same head, grayscale input, a CNN from scratch, checkpoints,
the argument check every training path shares, and the rooms' import direction.

Unit tests use synthetic features, networks with seeded random weights (the
architecture is what matters) and tiny generated images. The real-data test reproduces
the lecture's comparison on cats vs dogs: a frozen ImageNet base + linear head against
a small CNN trained from scratch for the same wall-clock time.
"""
from __future__ import annotations

import ast
import dataclasses
import errno
import importlib
import inspect
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tplib.finetune as finetune
from tplib.data import load_dataset
from tplib.engine import Engine
from tplib.errors import InputError, OptionError, TplibError, WeightsError
from tplib.features import Features, extract_features
from tplib.finetune import (
    DEFAULTS,
    FineTuneModel,
    GrayToRGB,
    SmallCNN,
    add_gray_front,
    attach_head,
    cut_base,
    decode_images,
    evaluate_head,
    evaluate_model,
    forward_until,
    gray_conv,
    grayscale_input,
    load_checkpoint,
    loss_and_predictions,
    make_head,
    save_checkpoint,
    train_from_scratch,
    train_head,
    train_model,
    train_new_head,
    train_step,
)
from tplib.models import build_model, load_backbone
from tplib.predict import count_parameters
from tplib.preprocess import Preprocess
from tplib.profile import get_profile
from tplib.viz import show_misclassified

VGG16_PARAMETERS = 138_357_544
EXACT = Engine(precision="fp32", channels_last=False, fold_bn=False)


# ------------------------------------------------------------------ helpers
def gaussian_blobs(n_per_class: int, seed: int, dim: int = 64, n_classes: int = 3):
    """Separable synthetic "features": one Gaussian per class, means 4 sigma apart."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(size=(n_classes, dim)) * 4 / np.sqrt(dim) * 2
    X = np.concatenate([rng.normal(size=(n_per_class, dim)) + m for m in means]).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class).astype(np.int64)
    return X, y


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer (BatchNorm running stats included)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def tiny_images(folder, n: int = 4, size=(40, 32)):
    """``n`` small RGB JPEGs, alternating two classes coloured red / blue; (paths, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(n):
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        arr[..., 0 if i % 2 == 0 else 2] = 255
        path = folder / f"img_{i}.jpg"
        Image.fromarray(arr).save(path)
        paths.append(path)
        labels.append(i % 2)
    return paths, np.array(labels, dtype=np.int64)


def gray_images(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        path = folder / f"g{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8), mode="L").save(path)
        paths.append(path)
    return paths, np.array([0, 1] * (n // 2))


@pytest.fixture(scope="module")
def lite0_random():
    return load_backbone("efficientnet_lite0", weights="random")


@pytest.fixture
def batch(lite0_random):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 64, 64, generator=gen)
    return x, torch.tensor([0, 1, 1, 0])


# ------------------------------------------------------------------ heads on cached features
def test_train_head_learns_separable_features():
    X, y = gaussian_blobs(100, seed=0)
    Xt, yt = gaussian_blobs(50, seed=1)
    result = train_head(X, y, Xt, yt, epochs=20, seed=0)
    assert evaluate_head(result.head, Xt, yt).accuracy >= 0.95
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "elapsed"):
        assert len(result.history[key]) == 20, key
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
    assert result.history["val_loss"][-1] < result.history["val_loss"][0]
    assert result.history["val_acc"][-1] == pytest.approx(evaluate_head(result.head, Xt, yt).accuracy)
    assert result.seconds > 0
    assert not result.head.training


def test_train_head_is_deterministic_and_leaves_global_rng_alone():
    X, y = gaussian_blobs(60, seed=0)
    before = torch.random.get_rng_state()
    a = train_head(X, y, hidden=16, dropout=0.2, epochs=5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = train_head(X, y, hidden=16, dropout=0.2, epochs=5, seed=3)
    c = train_head(X, y, hidden=16, dropout=0.2, epochs=5, seed=4)
    sa, sb, sc = a.head.state_dict(), b.head.state_dict(), c.head.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.history["val_loss"] == [] and a.history["val_acc"] == []


def test_make_head_shapes():
    x = torch.randn(5, 32)
    linear = make_head(32, 4)
    assert [type(m).__name__ for m in linear] == ["Linear"]
    assert linear(x).shape == (5, 4)
    mlp = make_head(32, 4, hidden=8, dropout=0.5)
    assert [type(m).__name__ for m in mlp] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert mlp(x).shape == (5, 4)


def test_bce_head_uses_logits():
    X, y = gaussian_blobs(80, seed=0, n_classes=2)
    result = train_head(X, y, epochs=15, loss="bce", seed=0)
    assert result.head[-1].out_features == 1
    logits = result.head(torch.from_numpy(X))
    loss, pred = loss_and_predictions(logits, torch.from_numpy(y))
    reference = torch.nn.BCELoss()(torch.sigmoid(logits[:, 0]), torch.from_numpy(y).float())
    torch.testing.assert_close(loss, reference)
    assert evaluate_head(result.head, X, y).accuracy >= 0.95
    with pytest.raises(OptionError, match="two classes"):
        make_head(8, 3, loss="bce")


def test_head_trained_on_features_plugs_into_the_base(lite0_random, image_folder):
    """train_head on extracted features == the same head on top of attach_head's base."""
    split = load_dataset(image_folder).train
    feats = extract_features(lite0_random, split, "pooled", cache=False, progress=False,
                             engine=Engine(precision="fp32", channels_last=False))
    head = train_head(feats["pooled"], feats.labels, epochs=3).head
    model = attach_head(lite0_random, n_classes=3, head=head)
    X, y, skipped = decode_images(split, lite0_random.preprocess)
    assert skipped == [] and torch.equal(y, torch.from_numpy(feats.labels))
    with torch.no_grad():
        logits = model(lite0_random.preprocess.normalize(X))
        expected = head(torch.from_numpy(feats["pooled"]))
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ frozen stays frozen
def test_frozen_base_does_not_change_and_head_learns(lite0_random, tmp_path):
    model = attach_head(lite0_random, n_classes=2, freeze="all")
    assert isinstance(model, FineTuneModel) and model.base_frozen
    assert not any(p.requires_grad for p in model.base.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    # A deep copy: training it can never touch the backbone used for extraction.
    assert model.base.conv_stem.weight is not lite0_random.model.conv_stem.weight
    base_before, head_before = snapshot(model.base), snapshot(model.head)
    backbone_before = snapshot(lite0_random.model)

    paths, labels = tiny_images(tmp_path / "imgs", n=4)
    result = train_model(model, (paths, labels), epochs=1, batch_size=4, lr=1e-2)

    base_after, head_after = snapshot(model.base), snapshot(model.head)
    # Bit-identical: weights, BN running mean/var and num_batches_tracked.
    assert base_after.keys() == base_before.keys()
    changed = [k for k in base_before if not torch.equal(base_before[k], base_after[k])]
    assert changed == []
    assert any("running_mean" in k for k in base_before)
    assert all(not torch.equal(head_before[k], head_after[k]) for k in head_before)
    backbone_after = snapshot(lite0_random.model)
    assert all(torch.equal(backbone_before[k], backbone_after[k]) for k in backbone_before)
    assert len(result.history["train_loss"]) == 1 and result.history["val_acc"] == []
    assert result.images_per_second > 0
    assert not model.training


@pytest.mark.parametrize("give", ["trainable", "everything"])
def test_a_training_step_changes_no_frozen_parameter_nor_batchnorm_statistic(lite0_random, batch, give):
    """Even an optimizer given every parameter (Adam + weight decay) cannot move frozen ones."""
    model = attach_head(lite0_random, n_classes=2)
    params = model.trainable_parameters() if give == "trainable" else list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=0.1, weight_decay=0.1)
    before = snapshot(model)
    model.train()
    assert model.head.training and not model.base.training  # frozen base: eval whatever
    for _ in range(2):
        train_step(model, optimizer, *batch)
    after = snapshot(model)
    assert any("running_mean" in k for k in before)
    assert changed(before, after) == {"head.0.weight", "head.0.bias"}


def test_frozen_blocks_stay_in_eval_mode(lite0_random):
    model = attach_head(lite0_random, n_classes=2, freeze=1)
    model.train()
    assert model.head.training
    assert not model.base.blocks[0].training  # frozen block: eval whatever .train() says
    assert not model.base.bn2.training  # freeze_bn: BatchNorm of a trainable block too
    assert model.base.conv_head.training


def test_partly_frozen_base_trains_only_the_last_block(lite0_random, tmp_path):
    model = attach_head(lite0_random, n_classes=2, freeze=1)  # train "head" = conv_head + bn2
    assert model.trainable_blocks == ["head"]
    trainable = {n for n, p in model.base.named_parameters() if p.requires_grad}
    assert trainable == {"conv_head.weight", "bn2.weight", "bn2.bias"}
    before = snapshot(model.base)
    paths, labels = tiny_images(tmp_path / "imgs", n=4)
    train_model(model, (paths, labels), epochs=1, batch_size=4, lr=1e-2, base_lr=1e-2)
    after = snapshot(model.base)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == trainable  # BN running stats unchanged (freeze_bn), nothing else moved

    everything = attach_head(lite0_random, n_classes=2, freeze="none")
    assert all(p.requires_grad for p in everything.parameters()) and not everything.base_frozen
    counts = everything.parameter_counts()
    assert counts["base_frozen"] == 0 and counts["head"] == 1280 * 2 + 2


def test_a_partly_frozen_base_moves_only_its_trainable_block(lite0_random, batch):
    model = attach_head(lite0_random, n_classes=2, freeze=2)  # block7 + Lite0's "head" block
    assert model.trainable_blocks == ["block7", "head"]
    trainable = {f"base.{n}" for n, p in model.base.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("base.blocks.6", "base.conv_head", "base.bn2"))
                             for n in trainable)
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    before = snapshot(model)
    model.train()
    train_step(model, optimizer, *batch)
    moved = changed(before, snapshot(model))
    # weights of the trainable blocks and the head; no running statistic anywhere (freeze_bn)
    assert moved == trainable | {"head.0.weight", "head.0.bias"}
    assert not any("running" in k or "num_batches" in k for k in moved)


def test_freeze_argument_is_checked(lite0_random):
    for bad in ("some", -1, 10, True):
        with pytest.raises(OptionError, match="freeze"):
            attach_head(lite0_random, n_classes=2, freeze=bad)


# ------------------------------------------------------------------ bases and parameter counts
def test_vgg16_base_ends_at_relu7_and_unfreezes_fc_blocks(vgg_random):
    model = attach_head(vgg_random, n_classes=2, freeze=2, hidden=8, dropout=0.5)
    assert [name for name, _ in model.blocks] == [
        "block1", "block2", "block3", "block4", "block5", "fc6", "fc7"]
    assert model.trainable_blocks == ["fc6", "fc7"]
    trainable = {n for n, p in model.base.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.0.weight", "classifier.0.bias",
                         "classifier.3.weight", "classifier.3.bias"}
    model.train()
    assert model.base.classifier[2].training and not model.base.features[0].training
    model.eval()
    with torch.no_grad():
        assert model.base(torch.zeros(1, 3, 224, 224)).shape == (1, 4096)


def test_vgg16_the_labs_variant_new_fc8(vgg_random):
    """classifier[6] replaced by Linear(4096, K): 4096 K + K trainable, the rest frozen."""
    for k in (2, 15):
        model = attach_head(vgg_random, n_classes=k)
        counts = model.parameter_counts()
        assert counts == {"base_frozen": VGG16_PARAMETERS - (4096 * 1000 + 1000),
                          "base_trainable": 0, "head": 4096 * k + k}
        assert counts["base_frozen"] == 134_260_544
        rows = model.block_table()
        assert [r[0] for r in rows] == ["block1", "block2", "block3", "block4", "block5", "fc6",
                                        "fc7", "new head"]
        assert [r[2] for r in rows] == ["frozen"] * 7 + ["trainable"]
        assert sum(r[1] for r in rows) == sum(counts.values())

    # the same numbers the plain-torch way (notebook 06's exercises)
    vgg = build_model("vgg16")
    for p in vgg.parameters():
        p.requires_grad = False
    vgg.classifier[6] = nn.Linear(4096, 2)
    assert count_parameters(vgg, trainable_only=True) == 8194
    assert count_parameters(vgg) - 8194 == 134_260_544


def test_vgg16_the_lectures_variant_conv_base_and_small_head(vgg_random):
    """pool5 (25,088 values) + Linear(25088, 256) -> ReLU -> Dropout -> Linear(256, K)."""
    model = attach_head(vgg_random, n_classes=2, layer="pool5", hidden=256)
    counts = model.parameter_counts()
    assert counts == {"base_frozen": 14_714_688, "base_trainable": 0,
                      "head": 25088 * 256 + 256 + 256 * 2 + 2}
    # fc6..fc8 are cut away: their 123M parameters are not even counted as frozen
    assert counts["base_frozen"] == sum(p.numel() for p in vgg_random.model.features.parameters())
    assert [name for name, _ in model.blocks] == [f"block{i}" for i in range(1, 6)]
    assert [r[0] for r in model.block_table()][-2:] == ["block5", "new head"]
    bce = attach_head(vgg_random, n_classes=2, layer="pool5", hidden=256, loss="bce")
    assert bce.parameter_counts()["head"] == 25088 * 256 + 256 + 256 + 1
    with torch.no_grad():
        assert bce(torch.zeros(2, 3, 224, 224)).shape == (2, 1)

def test_the_substitute_lite0_counts(lite0_random):
    total = count_parameters(lite0_random.model)
    assert total == 4_652_008
    model = attach_head(lite0_random, n_classes=2)
    assert model.parameter_counts() == {"base_frozen": total - (1280 * 1000 + 1000),
                                        "base_trainable": 0, "head": 1280 * 2 + 2}
    partly = attach_head(lite0_random, n_classes=2, freeze=1)
    assert partly.parameter_counts()["base_trainable"] == 320 * 1280 + 2 * 1280  # conv_head + bn2
    assert dict((r[0], r[2]) for r in partly.block_table())["head"] == "trainable"
    assert add_gray_front(attach_head(lite0_random, n_classes=2)).parameter_counts()["front"] == 6


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "mobilenet_v3_large", "efficientnet_lite0"])
def test_cut_base_gives_the_extractor_features(name, image_folder):
    """The base attach_head builds computes exactly the default layer's features."""
    backbone = load_backbone(name, weights="random")
    base, node, dim, blocks = cut_base(backbone)
    split = load_dataset(image_folder).test
    feats = extract_features(backbone, split, backbone.default_layer, cache=False, progress=False,
                             engine=Engine(precision="fp32", channels_last=False, fold_bn=False))
    X, _, _ = decode_images(split, backbone.preprocess)
    with torch.no_grad():
        out = forward_until(base, node, backbone.preprocess.normalize(X))
    assert out.shape == (len(split), dim) == feats[backbone.default_layer].shape
    torch.testing.assert_close(out, torch.from_numpy(feats[backbone.default_layer]), rtol=1e-4, atol=1e-4)
    assert [b for b, _ in blocks] == [b for b, _ in backbone.spec.blocks]


# ------------------------------------------------------------------ two paths, one head
def _both_paths(backbone, split, *, hidden=0, dropout=0.0, seed=0, augment=False, epochs=3):
    feats = extract_features(backbone, split, "pooled", cache=False, progress=False, engine=EXACT)
    initial = make_head(1280, 3, hidden=hidden, dropout=dropout)
    fast = train_head(feats["pooled"], feats.labels, head=initial, epochs=epochs, lr=1e-2,
                      batch_size=4, seed=seed)
    model = attach_head(backbone, n_classes=3, head=initial)
    assert model.head is initial
    before = snapshot(initial)
    # the same arithmetic as EXACT's extraction: no BatchNorm folding, no channels-last layout
    slow = train_model(model, split, epochs=epochs, lr=1e-2, batch_size=4, augment=augment,
                       seed=seed, progress=False, channels_last=False)
    return fast, slow, before


@pytest.mark.parametrize("hidden, dropout", [(0, 0.0), (8, 0.3)])
def test_head_on_cached_features_equals_head_trained_end_to_end(lite0_random, image_folder,
                                                                hidden, dropout):
    """Same initial head, same mini-batches, no augmentation, same seed: the same head."""
    split = load_dataset(image_folder).train
    fast, slow, initial = _both_paths(lite0_random, split, hidden=hidden, dropout=dropout)
    fast_state, slow_state = fast.head.state_dict(), slow.model.head.state_dict()
    assert fast_state.keys() == slow_state.keys()
    for key in fast_state:
        assert not torch.equal(fast_state[key], initial[key]), key  # both really trained
        torch.testing.assert_close(fast_state[key], slow_state[key], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast.history["train_loss"], slow.history["train_loss"], rtol=1e-4)
    assert fast.history["train_acc"] == slow.history["train_acc"]


def test_the_paths_differ_with_augmentation_or_another_seed(lite0_random, image_folder):
    split = load_dataset(image_folder).train
    fast, flipped, _ = _both_paths(lite0_random, split, augment=True)
    assert not torch.allclose(fast.head[0].weight, flipped.model.head[0].weight, atol=1e-5)
    other, _, _ = _both_paths(lite0_random, split, seed=1)
    assert not torch.allclose(fast.head[0].weight, other.head[0].weight, atol=1e-5)


@pytest.mark.parametrize("engine", [EXACT, get_profile("ci").engine])
def test_train_new_head_takes_the_fast_path_when_it_can(lite0_random, image_folder, engine):
    ds = load_dataset(image_folder)
    kwargs = dict(epochs=2, lr=1e-2, batch_size=4, seed=0, progress=False)
    fast = train_new_head(lite0_random, ds.train, ds.test, ds.test, engine=engine, **kwargs)
    slow = train_new_head(lite0_random, ds.train, ds.test, ds.test, path="end-to-end", **kwargs)
    assert (fast.path, slow.path) == ("features", "end-to-end")
    assert isinstance(fast.model, FineTuneModel) and fast.model.base_frozen
    assert not fast.model.training
    # the ci profile folds BatchNorm into the convolutions for extraction: the features
    # differ in the last float digits, and so do the heads
    torch.testing.assert_close(fast.model.head[0].weight, slow.model.head[0].weight,
                               rtol=1e-4, atol=1e-5 if engine is EXACT else 1e-4)
    for result in (fast, slow):
        assert len(result.history["val_acc"]) == len(result.history["epoch_seconds"]) == 2
        assert result.seconds_per_epoch > 0 and result.test is not None
    np.testing.assert_array_equal(fast.test.predictions, slow.test.predictions)
    # the head trained on features works on images, through the frozen base
    on_images = evaluate_model(fast.model, ds.test)
    np.testing.assert_array_equal(on_images.predictions, fast.test.predictions)
    assert train_new_head(lite0_random, ds.train, augment=True, **kwargs).path == "end-to-end"
    with pytest.raises(ValueError, match="augment"):
        train_new_head(lite0_random, ds.train, augment=True, path="features", **kwargs)
    with pytest.raises(ValueError, match="path"):
        train_new_head(lite0_random, ds.train, path="fast", **kwargs)


def test_evaluation_knows_its_photos_and_mistakes(lite0_random, image_folder):
    ds = load_dataset(image_folder)
    result = train_new_head(lite0_random, ds.train, test=ds.test, epochs=1, progress=False)
    assert result.how.startswith("cached features") and result.test.paths == list(ds.test.paths)
    on_images = evaluate_model(result.model, ds.test)
    assert on_images.paths == list(ds.test.paths)
    cm = on_images.confusion(3)
    assert cm.shape == (3, 3) and cm.sum() == len(ds.test)
    assert np.trace(cm) == len(ds.test) - len(on_images.mistakes())
    fig = show_misclassified(on_images.paths, on_images.labels, on_images.predictions,
                             ds.classes, max_images=2)
    n_wrong = len(on_images.mistakes())
    assert len(fig.axes) == (min(n_wrong, 2) if n_wrong else 0)
    none = show_misclassified(on_images.paths, on_images.labels, on_images.labels, ds.classes)
    assert "no misclassified image among 6" in none.texts[0].get_text()


def test_training_runs_on_the_device_asked_for(lite0_random, tmp_path):
    """The ci profile trains on the CPU; a device this machine lacks is refused up front."""
    from tplib.engine import OptionError
    from tplib.profile import set_active_profile

    paths, labels = gray_images(tmp_path / "imgs")
    set_active_profile(get_profile("ci"))
    model = attach_head(lite0_random, n_classes=2)
    train_model(model, (paths, labels), epochs=1, batch_size=4, progress=False)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert evaluate_model(model, (paths, labels)).predictions.shape == (4,)
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="CUDA"):
            train_model(attach_head(lite0_random, n_classes=2), (paths, labels), device="cuda")


# ------------------------------------------------------------------ from scratch
@pytest.mark.parametrize("size", [64, 128])
def test_small_cnn_matches_its_description(size):
    """Four 3x3 conv blocks (no bias) + BN, widths w, 2w, 4w, 8w, then a linear layer."""
    w, k = 32, 5
    convs = sum(c_in * c_out * 9 for c_in, c_out in ((3, w), (w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)))
    bn = 2 * (w + 2 * w + 4 * w + 8 * w)
    model = SmallCNN(n_classes=k).eval()
    assert sum(p.numel() for p in model.parameters()) == convs + bn + 8 * w * k + k
    with torch.no_grad():
        maps = model.features(torch.zeros(2, 3, size, size))
        assert maps.shape == (2, 8 * w, size // 16, size // 16)  # four 2x2 pools
        assert model(torch.zeros(2, 3, size, size)).shape == (2, k)


def test_train_from_scratch_is_deterministic_and_its_model_carries_its_preprocessing(image_folder):
    ds = load_dataset(image_folder)
    a = train_from_scratch(ds.train, ds.test, image_size=32, epochs=2, batch_size=4, seed=0)
    b = train_from_scratch(ds.train, ds.test, image_size=32, epochs=2, batch_size=4, seed=0)
    model, history, accuracy, seconds = a  # unpacks as the 4-tuple
    assert isinstance(model, SmallCNN) and not model.training
    assert len(history["train_loss"]) == len(history["val_acc"]) == 2 == a.epochs
    assert accuracy == history["val_acc"][-1] and seconds > 0
    assert a.seconds_per_epoch == pytest.approx(np.mean(history["epoch_seconds"]))
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.test_accuracy == b.test_accuracy
    assert not torch.equal(model.classifier[-1].weight, SmallCNN(3).classifier[-1].weight)
    assert model.preprocess.size == 32
    again = evaluate_model(model, ds.test)
    assert again.accuracy == pytest.approx(a.test_accuracy)
    assert again.n_correct == round(a.test_accuracy * len(ds.test))
    with pytest.raises(OptionError, match="seconds"):
        train_from_scratch(ds.train, ds.test)

def test_train_from_scratch_stops_after_the_epoch_that_crosses_the_budget(image_folder):
    ds = load_dataset(image_folder)
    result = train_from_scratch(ds.train, ds.test, image_size=32, seconds=0.0, batch_size=4)
    assert len(result.history["train_loss"]) == 1


# ------------------------------------------------------------------ grayscale input
def test_gray_to_rgb_starts_as_copying_the_channel():
    state = torch.random.get_rng_state()
    front = GrayToRGB(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert torch.equal(state, torch.random.get_rng_state())  # no random init drawn
    assert front.conv.weight.shape == (3, 1, 1, 1)
    assert torch.equal(front.conv.weight.flatten(), torch.ones(3))
    assert torch.equal(front.conv.bias, torch.zeros(3))
    pre = Preprocess()
    g = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    x = pre.normalize(g.expand(-1, 3, -1, -1))  # a gray photo copied, then normalised
    torch.testing.assert_close(front(x), x, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match=r"\(N, 3, S, S\)"):
        front(torch.zeros(1, 1, 4, 4))


def test_a_gray_front_learns_through_the_frozen_base(lite0_random, tmp_path):
    paths, labels = gray_images(tmp_path / "gray")
    plain = attach_head(lite0_random, n_classes=2)
    model = add_gray_front(attach_head(lite0_random, n_classes=2))
    X, _, _ = decode_images((paths, labels), lite0_random.preprocess)
    with torch.no_grad():  # at initialisation: exactly the copied channel
        x = lite0_random.preprocess.normalize(X)
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)
    base_before, front_before = snapshot(model.base), snapshot(model.front)
    train_model(model, (paths, labels), epochs=1, batch_size=4, lr=0.05, augment=False,
                progress=False)
    assert not changed(base_before, snapshot(model.base))  # frozen, BN statistics included
    assert changed(front_before, snapshot(model.front)) == {"conv.weight", "conv.bias"}
    assert not model.training and not model.front.training


def test_summing_the_first_convs_weights_equals_copying_the_channel():
    conv = build_model("vgg16").features[0]  # conv1_1, seeded random weights
    state = torch.random.get_rng_state()
    gray = gray_conv(conv)
    assert torch.equal(state, torch.random.get_rng_state())
    assert gray.weight.shape == (64, 1, 3, 3) and gray.padding == conv.padding
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(gray(x), conv(x.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)
    with pytest.raises(OptionError, match="groups=1"):
        gray_conv(nn.Conv2d(4, 4, 3, groups=2))


def test_grayscale_preprocessing_and_its_cache_key(lite0_random, tmp_path):
    rgb = Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    pre = Preprocess(size=16)
    gray = pre.with_grayscale()
    t = gray.to_uint8(rgb)
    assert t.shape == (3, 16, 16) and torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    assert torch.equal(t, pre.to_uint8(rgb.convert("L")))
    assert not torch.equal(t, pre.to_uint8(rgb))
    assert "grayscale" not in pre.key() and gray.key()["grayscale"] is True
    assert "grayscale" in gray.describe()
    backbone = grayscale_input(lite0_random)
    assert backbone.model is lite0_random.model and backbone.preprocess.grayscale
    assert not lite0_random.preprocess.grayscale
    assert attach_head(backbone, n_classes=2).preprocess.grayscale


# ------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("front", [False, True])
def test_checkpoint_round_trip_gives_the_same_predictions(lite0_random, tmp_path, image_folder, front):
    def build(seed):
        model = attach_head(lite0_random, n_classes=3, hidden=8, seed=seed)
        return add_gray_front(model) if front else model
    model = build(1)
    if front:
        with torch.no_grad():
            model.front.conv.weight.mul_(1.5)  # "trained": no longer the copy
    path = save_checkpoint(model, tmp_path / "ckpt" / "head.pt", epochs=3, note="test")
    other = build(2)
    split = load_dataset(image_folder).test
    before = evaluate_model(model, split)
    assert evaluate_model(other, split).loss != pytest.approx(before.loss)  # really another model
    assert load_checkpoint(other, path) == {"epochs": 3, "note": "test"}
    after = evaluate_model(other, split)
    np.testing.assert_array_equal(after.predictions, before.predictions)
    assert after.loss == pytest.approx(before.loss) and len(after.labels) == len(split)
    with pytest.raises(WeightsError, match="not a checkpoint of this model"):
        load_checkpoint(make_head(4, 2), path)


def one_line(exc_info) -> str:
    """The error's message, checked to be one line that never advises an unsafe load."""
    message = str(exc_info.value)
    assert "\n" not in message and "weights_only" not in message, message
    return message


class RunsCode:
    """A pickle that creates a folder when it is loaded: the code a checkpoint must not run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_code_running_pickle_is_refused_and_its_code_does_not_run(tmp_path, how):
    marker = tmp_path / "the code ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        if how == "torch.save":
            torch.save({"state_dict": RunsCode(marker)}, f)
        else:
            pickle.dump({"state_dict": RunsCode(marker)}, f, protocol=2)
    with pytest.raises(WeightsError) as info:
        load_checkpoint(make_head(4, 2), path)
    assert "objects other than tensors" in one_line(info) and str(path) in one_line(info)
    assert not marker.exists()


def test_a_bare_tensor_an_image_or_a_folder_is_not_a_checkpoint(tmp_path):
    head = make_head(4, 2)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.ones(3), tensor)
    with pytest.raises(WeightsError, match="holds a Tensor, not a checkpoint") as info:
        load_checkpoint(head, tensor)
    one_line(info)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(jpeg)
    with pytest.raises(WeightsError, match="is not a checkpoint file") as info:
        load_checkpoint(head, jpeg)
    one_line(info)
    with pytest.raises(WeightsError, match="is a folder") as info:
        load_checkpoint(head, tmp_path)
    one_line(info)
    with pytest.raises(WeightsError, match="no checkpoint file") as info:
        load_checkpoint(head, tmp_path / "missing.pt")
    one_line(info)
    with pytest.raises(OptionError, match=r"is a folder: give a file name") as info:
        save_checkpoint(head, tmp_path)
    one_line(info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "tensor.pt"]


def test_an_unwritable_folder_names_the_checkpoint_not_a_temporary_file(tmp_path, monkeypatch):
    import tempfile

    def refuse(dir=None, prefix="", suffix=""):  # what mkstemp raises in a read-only folder
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x1y2z3{suffix}")
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "model.pt"
    with pytest.raises(OptionError) as info:
        save_checkpoint(make_head(4, 2), target)
    message = one_line(info)
    assert str(target) in message and "Permission denied" in message and ".tmp" not in message
    assert not target.exists()

# ------------------------------------------------------------------ real data
@pytest.mark.real_data
@pytest.mark.slow
def test_frozen_imagenet_base_beats_cnn_from_scratch(real_data_dir, lite0):
    """The lecture's comparison, cats vs dogs (560 train / 240 test real photos)."""
    ds = load_dataset(real_data_dir / "catsdogs")
    assert (len(ds.train), len(ds.test)) == (560, 240)

    t0 = time.perf_counter()
    train = extract_features(lite0, ds.train, "pooled", cache=False, progress=False)
    test = extract_features(lite0, ds.test, "pooled", cache=False, progress=False)
    head = train_head(train["pooled"], train.labels, test["pooled"], test.labels, seed=0)
    frozen_seconds = time.perf_counter() - t0
    frozen_acc = evaluate_head(head.head, test["pooled"], test.labels).accuracy
    n_images = len(ds.train) + len(ds.test)
    print(f"\nfrozen EfficientNet-Lite0 + linear head: test accuracy {frozen_acc:.3f} "
          f"({round(frozen_acc * len(ds.test))}/{len(ds.test)}); {frozen_seconds:.1f} s = "
          f"extraction {train.seconds + test.seconds:.1f} s "
          f"({n_images / (train.seconds + test.seconds):.1f} img/s) + head {head.seconds:.2f} s")
    assert frozen_acc >= 0.95  # about 0.98 expected

    # The same wall-clock time for a CNN from scratch (64 px, the default); at least
    # 60 s, so that the comparison does not starve it when extraction happens to be
    # fast (on this 2-core CPU the frozen path takes about 40-90 s, depending on load).
    budget = max(frozen_seconds, 60.0)
    scratch = train_from_scratch(ds.train, ds.test, seconds=budget, seed=0)
    epochs = len(scratch.history["train_loss"])
    print(f"SmallCNN from scratch (64 px), budget {budget:.0f} s: test accuracy "
          f"{scratch.test_accuracy:.3f} after {epochs} epoch(s), {scratch.seconds:.1f} s "
          f"({epochs * len(ds.train) / scratch.seconds:.1f} train img/s incl. decoding and eval)")
    assert 0.4 <= scratch.test_accuracy <= 0.9
    assert scratch.test_accuracy < frozen_acc




# ------------------------------------------------------------------ one argument check for training
@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any long work starts: an optimizer, decoding, an extraction."""
    import tplib.features
    import tplib.finetune.scratch
    import tplib.finetune.training

    def started(*args, **kwargs):
        raise AssertionError("training started before the arguments were checked")
    monkeypatch.setattr(torch.optim, "Adam", started)
    monkeypatch.setattr(tplib.finetune.training, "decode_images", started)
    monkeypatch.setattr(tplib.finetune.scratch, "decode_images", started)
    monkeypatch.setattr(tplib.features, "extract_features", started)


def refused(error, match, call, *args, **kwargs) -> str:
    """``call(*args, **kwargs)`` raises ``error`` (a TplibError) with a one-line message."""
    with pytest.raises(error, match=match) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, TplibError)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, message
    return message


@pytest.fixture
def pair(tmp_path):
    """Four tiny photos, labels 0 1 0 1, as a (paths, labels) pair."""
    return tiny_images(tmp_path / "imgs", n=4)


def test_one_class_is_refused_on_every_path(lite0_random, pair, no_training):
    X, _ = gaussian_blobs(10, seed=0)
    refused(InputError, "one class only", train_head, X, np.zeros(len(X), np.int64))
    paths, _ = pair
    one = (paths, [0, 0, 0, 0])
    refused(InputError, "one class only", train_model, attach_head(lite0_random, 2), one)
    refused(InputError, "one class only", train_new_head, lite0_random, one)
    refused(InputError, "one class only", train_from_scratch, one, one, epochs=1)


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf"), 0.0, "0.01", True])
def test_a_learning_rate_that_is_not_positive_and_finite_is_refused(lite0_random, pair, no_training, bad):
    X, y = gaussian_blobs(10, seed=0)
    model = attach_head(lite0_random, 2, freeze=1)
    refused(OptionError, "lr must be a finite number > 0", train_head, X, y, lr=bad)
    refused(OptionError, "lr must be a finite number > 0", train_model, model, pair, lr=bad)
    refused(OptionError, "base_lr must be a finite number > 0", train_model, model, pair, base_lr=bad)
    refused(OptionError, "lr must be", train_new_head, lite0_random, pair, path="end-to-end", lr=bad)
    refused(OptionError, "lr must be", train_from_scratch, pair, pair, epochs=1, lr=bad)
    refused(OptionError, "weight_decay must be", train_model, model, pair, weight_decay=-1.0)


@pytest.mark.parametrize("setting, bad", [("batch_size", 0), ("batch_size", -4), ("epochs", 2.5),
                                          ("epochs", 0), ("epochs", True), ("batch_size", "32")])
def test_counts_must_be_whole_numbers_of_at_least_one(lite0_random, pair, no_training, setting, bad):
    X, y = gaussian_blobs(10, seed=0)
    match = f"{setting} must be a whole number >= 1"
    refused(OptionError, match, train_head, X, y, **{setting: bad})
    refused(OptionError, match, train_model, attach_head(lite0_random, 2), pair, **{setting: bad})
    refused(OptionError, match, train_new_head, lite0_random, pair, **{setting: bad})
    refused(OptionError, match, train_from_scratch, pair, pair, **{"epochs": 1, setting: bad})


def test_labels_must_be_integer_class_indices(lite0_random, pair, no_training):
    X, y = gaussian_blobs(10, seed=0)
    refused(InputError, "integer class indices.*float64", train_head, X, y.astype(np.float64))
    refused(InputError, "integer class indices", train_head, X, np.array(["cat", "dog", "owl"] * 10))
    refused(InputError, "negative labels", train_head, X, y - 1)
    paths, _ = pair
    model = attach_head(lite0_random, 2)
    refused(InputError, "integer class indices", train_model, model, (paths, [0.0, 1.0, 0.5, 1.0]))
    refused(InputError, "integer class indices", train_model, model, (paths, ["cat", "dog"] * 2))
    refused(InputError, "integer class indices", evaluate_head, make_head(64, 3), X, y.astype(float))


def test_labels_the_head_cannot_predict_are_refused(lite0_random, pair, no_training):
    X, y = gaussian_blobs(10, seed=0)  # labels 0, 1, 2
    refused(InputError, "label 2 but the head has 2 classes", train_head, X, y, n_classes=2)
    refused(InputError, "loss='bce' takes labels 0 and 1 only", train_head, X, y, loss="bce")
    paths, _ = pair
    three = (paths, [0, 1, 2, 1])
    refused(InputError, "label 2 but the head has 2 classes", train_model, attach_head(lite0_random, 2),
            three)
    refused(InputError, "loss='bce' takes labels 0 and 1 only", train_model,
            attach_head(lite0_random, 2, loss="bce"), three)
    refused(InputError, "label 2 but the head has 2 classes", evaluate_head, make_head(64, 2), X, y)


def test_features_must_be_finite_rows_and_validation_data_not_empty(no_training):
    X, y = gaussian_blobs(10, seed=0)
    bad = X.copy()
    bad[3, 5] = np.nan
    refused(InputError, r"X_train has 1 row\(s\) with NaN or inf values \(first: row 3\)", train_head,
            bad, y)
    refused(InputError, "X_val is empty", train_head, X, y, X[:0], y[:0])
    refused(InputError, "X_val has 1 row", train_head, X, y, bad, y)
    refused(InputError, "X is empty", evaluate_head, make_head(64, 3), X[:0], y[:0])
    refused(InputError, "X_train has 64 features per row, X_val 8", train_head, X, y, X[:, :8], y)
    refused(OptionError, "both X_val and y_val", train_head, X, y, X)
    feats = Features(arrays={"pooled": np.ones((4, 3), np.float32)}, labels=np.array([0, 1, 0, 1]),
                     paths=["a", "b", "c", "d"])
    refused(InputError, r"Features object \(layers pooled\).*feats\[layer\]", train_head, feats,
            feats.labels, epochs=1)


def test_empty_or_undecodable_splits_are_refused(lite0_random, pair, tmp_path, no_training):
    model = attach_head(lite0_random, 2)
    refused(InputError, "train holds no image", train_model, model, ([], []))
    refused(InputError, "val holds no image", train_model, model, pair, ([], []))
    refused(InputError, "test holds no image", train_new_head, lite0_random, pair, test=([], []))
    refused(InputError, "split holds no image", evaluate_model, model, ([], []))
    refused(InputError, "test holds no image", train_from_scratch, pair, ([], []), epochs=1)
    refused(InputError, "data split .* or a .paths, labels. pair", train_model, model, "photos/")


def test_a_split_none_of_whose_images_decode_is_named(lite0_random, tmp_path):
    broken = []
    for i in range(4):
        path = tmp_path / f"broken_{i}.jpg"
        path.write_bytes(b"not a JPEG")
        broken.append(path)
    split = (broken, [0, 1, 0, 1])
    message = refused(InputError, "none of the 4 images of train could be decoded", train_model,
                      attach_head(lite0_random, 2), split, epochs=1, progress=False)
    assert "broken_0.jpg" in message
    refused(InputError, "none of the 4 images of the split could be decoded", evaluate_model,
            attach_head(lite0_random, 2), split)


def test_nothing_trainable_and_impossible_class_counts_are_refused(lite0_random, pair, no_training):
    frozen = attach_head(lite0_random, 2)
    for p in frozen.head.parameters():
        p.requires_grad_(False)
    refused(OptionError, "no trainable parameter", train_model, frozen, pair)
    for bad in (0, -1, 1, 2.0, "2"):
        refused(OptionError, "n_classes must be a whole number >= 2", attach_head, lite0_random, bad)
        refused(OptionError, "n_classes must be a whole number >= 2", make_head, 8, bad)
    refused(OptionError, "dropout must be", make_head, 8, 2, dropout=1.0)
    refused(OptionError, "hidden must be a whole number >= 0", make_head, 8, 2, hidden=-1)
    refused(OptionError, "seconds .* >= 0", train_from_scratch, pair, pair, seconds=-1.0)


# ------------------------------------------------------------------ defaults and result shape
def test_every_training_function_reads_the_one_set_of_defaults():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.lr = 1.0
    # notebook 06's values: batches of 32, Adam at 1e-3, 30 epochs of a head, no augmentation
    assert (DEFAULTS.batch_size, DEFAULTS.lr, DEFAULTS.epochs, DEFAULTS.augment) == (32, 1e-3, 30, False)
    functions = (train_head, train_model, train_new_head, train_from_scratch)
    for setting in ("lr", "weight_decay", "batch_size", "seed"):
        for f in functions:
            default = inspect.signature(f).parameters[setting].default
            expected = getattr(DEFAULTS, "feature_batch_size" if (f, setting) == (train_head, "batch_size")
                               else setting)
            assert default == expected, (f.__name__, setting)
    assert DEFAULTS.feature_batch_size == 64  # notebooks 05 and 06 store results trained with it
    epochs = {f.__name__: inspect.signature(f).parameters["epochs"].default for f in functions}
    assert epochs == {"train_head": DEFAULTS.epochs, "train_new_head": DEFAULTS.epochs,
                      "train_model": DEFAULTS.end_to_end_epochs, "train_from_scratch": None}
    for f in (train_model, train_new_head):
        assert inspect.signature(f).parameters["augment"].default is DEFAULTS.augment


def test_every_result_has_the_same_shape(image_folder, lite0_random):
    X, y = gaussian_blobs(20, seed=0)
    head = train_head(X, y, X, y, epochs=3)
    assert head.epochs == 3
    assert head.seconds_per_epoch == pytest.approx(np.mean(head.history["epoch_seconds"]))
    evaluation = evaluate_head(head.head, X, y)
    assert evaluation.n_correct == int((evaluation.predictions == y).sum())
    assert evaluation.n_images == 60
    assert evaluation.n_correct == round(evaluation.accuracy * 60)
    assert np.trace(evaluation.confusion(3)) == evaluation.n_correct
    ds = load_dataset(image_folder)
    result = train_new_head(lite0_random, ds.train, test=ds.test, epochs=2, progress=False)
    assert result.epochs == 2 and result.seconds_per_epoch == pytest.approx(
        np.mean(result.history["epoch_seconds"]))
    assert result.test.n_correct == round(result.test.accuracy * len(ds.test))
    assert set(result.history) == set(head.history)


# ------------------------------------------------------------------ the rooms
ROOMS = ["runtime", "settings", "results", "heads", "models", "gray", "checkpoints", "training",
         "scratch", "efficiency", "unfreezing"]  # lowest first: a room imports only rooms before it


def test_each_room_imports_only_rooms_below_it_and_no_private_name():
    folder = Path(finetune.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted([*ROOMS, "__init__"])
    for i, room in enumerate(ROOMS):
        importlib.import_module(f"tplib.finetune.{room}")
        tree = ast.parse((folder / f"{room}.py").read_text())
        type_checking = [n for n in ast.walk(tree) if isinstance(n, ast.If)
                         and getattr(n.test, "id", "") == "TYPE_CHECKING"]
        hidden = {id(m) for block in type_checking for m in ast.walk(block)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            names = [a.name for a in node.names]
            assert not [n for n in names if n.startswith("_")], (room, node.module, names)
            if node.level == 1 and id(node) not in hidden:
                assert node.module in ROOMS[:i], f"{room} imports .{node.module}, a room above it"
            if node.level == 2:
                assert node.module != "finetune", room


def test_data_and_models_do_not_import_finetune():
    code = ("import sys, tplib.data, tplib.models; "
            "print(sorted(m for m in sys.modules if m.startswith('tplib.finetune')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from tplib.data import validation_split
    from tplib.models import train_mode_effect
    assert finetune.validation_split is validation_split
    assert finetune.train_mode_effect is train_mode_effect


def test_the_facade_keeps_every_name_the_notebooks_and_the_library_use():
    used = {"attach_head", "decode_images", "train_mode_effect", "validation_split", "train_new_head",
            "evaluate_model", "train_from_scratch", "train_model", "train_head", "evaluate_head",
            "gray_conv", "grayscale_input", "add_gray_front", "GrayToRGB", "SmallCNN", "train_step",
            "Evaluation", "FineTuneModel", "TrainResult", "HeadResult", "ScratchResult",
            "TrainModeEffect", "save_checkpoint", "load_checkpoint", "make_head", "cut_base",
            "forward_until", "loss_and_predictions", "DEFAULTS", "TrainingDefaults"}
    assert used <= set(finetune.__all__)
    assert all(callable(getattr(finetune, name)) or name == "DEFAULTS" for name in used)
