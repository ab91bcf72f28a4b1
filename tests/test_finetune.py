"""tplib.finetune: heads on frozen features, frozen/partly frozen bases, a CNN from scratch.

Unit tests use synthetic features, random-weight networks and tiny generated images.
The real-data test reproduces the lecture's comparison on cats vs dogs: a frozen
ImageNet base + linear head against a small CNN trained from scratch for the same
wall-clock time.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from tplib.data import load_dataset
from tplib.engine import Engine
from tplib.errors import TplibError
from tplib.features import extract_features
from tplib.finetune import (
    FineTuneModel,
    SmallCNN,
    attach_head,
    cut_base,
    decode_images,
    evaluate_head,
    evaluate_model,
    forward_until,
    load_checkpoint,
    loss_and_predictions,
    make_head,
    save_checkpoint,
    train_from_scratch,
    train_head,
    train_model,
)
from tplib.models import load_backbone


# ------------------------------------------------------------------ helpers
def gaussian_blobs(n_per_class: int, seed: int, dim: int = 64, n_classes: int = 3):
    """Separable synthetic "features": one Gaussian per class, means 4 sigma apart."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(size=(n_classes, dim)) * 4 / np.sqrt(dim) * 2
    X = np.concatenate([rng.normal(size=(n_per_class, dim)) + m for m in means]).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class).astype(np.int64)
    return X, y


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer (BatchNorm running stats included)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


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


@pytest.fixture(scope="module")
def lite0_random():
    return load_backbone("efficientnet_lite0", weights="random")


# ------------------------------------------------------------------ train_head
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


# ------------------------------------------------------------------ base + head
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


def test_freeze_argument_is_checked(lite0_random):
    for bad in ("some", -1, 10, True):
        with pytest.raises(ValueError, match="freeze"):
            attach_head(lite0_random, n_classes=2, freeze=bad)


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


def test_train_from_scratch_runs_and_is_deterministic(image_folder):
    ds = load_dataset(image_folder)
    a = train_from_scratch(ds.train, ds.test, image_size=32, epochs=2, batch_size=4, seed=0)
    b = train_from_scratch(ds.train, ds.test, image_size=32, epochs=2, batch_size=4, seed=0)
    model, history, accuracy, seconds = a  # unpacks as the 4-tuple
    assert isinstance(model, SmallCNN) and not model.training
    assert len(history["train_loss"]) == len(history["val_acc"]) == 2
    assert 0.0 <= accuracy <= 1.0 and accuracy == history["val_acc"][-1]
    assert seconds > 0
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.test_accuracy == b.test_accuracy
    with pytest.raises(ValueError, match="seconds"):
        train_from_scratch(ds.train, ds.test)


def test_train_from_scratch_stops_after_the_epoch_that_crosses_the_budget(image_folder):
    ds = load_dataset(image_folder)
    result = train_from_scratch(ds.train, ds.test, image_size=32, seconds=0.0, batch_size=4)
    assert len(result.history["train_loss"]) == 1


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


# ------------------------------------------------------------------ bases, BCE, checkpoints
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


def test_vgg16_conv_base_for_the_lectures_small_head(vgg_random):
    model = attach_head(vgg_random, n_classes=2, layer="pool5", hidden=256, loss="bce")
    assert [name for name, _ in model.blocks] == [f"block{i}" for i in range(1, 6)]
    counts = model.parameter_counts()
    assert counts["base_trainable"] == 0 and counts["head"] == 25088 * 256 + 256 + 256 + 1
    # fc6..fc8 are cut away: their 123M parameters are not even counted as frozen
    assert counts["base_frozen"] == sum(p.numel() for p in vgg_random.model.features.parameters())
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1)


def test_bce_head_uses_logits():
    X, y = gaussian_blobs(80, seed=0, n_classes=2)
    result = train_head(X, y, epochs=15, loss="bce", seed=0)
    assert result.head[-1].out_features == 1
    logits = result.head(torch.from_numpy(X))
    loss, pred = loss_and_predictions(logits, torch.from_numpy(y))
    reference = torch.nn.BCELoss()(torch.sigmoid(logits[:, 0]), torch.from_numpy(y).float())
    torch.testing.assert_close(loss, reference)
    assert evaluate_head(result.head, X, y).accuracy >= 0.95
    with pytest.raises(ValueError, match="two classes"):
        make_head(8, 3, loss="bce")


def test_checkpoint_round_trip_gives_the_same_predictions(lite0_random, tmp_path, image_folder):
    model = attach_head(lite0_random, n_classes=3, hidden=8, seed=1)
    path = save_checkpoint(model, tmp_path / "ckpt" / "head.pt", epochs=3, note="test")
    other = attach_head(lite0_random, n_classes=3, hidden=8, seed=2)
    split = load_dataset(image_folder).test
    before = evaluate_model(model, split)
    assert not np.array_equal(evaluate_model(other, split).predictions, before.predictions) or \
        not torch.equal(other.head[0].weight, model.head[0].weight)
    assert load_checkpoint(other, path) == {"epochs": 3, "note": "test"}
    after = evaluate_model(other, split)
    np.testing.assert_array_equal(after.predictions, before.predictions)
    assert after.loss == pytest.approx(before.loss) and len(after.labels) == len(split)
    with pytest.raises(TplibError, match="not a checkpoint of this model"):
        load_checkpoint(make_head(4, 2), path)
