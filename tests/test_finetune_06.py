"""tplib.finetune as notebook 06 uses it: freezing, parameter counts, the two training
paths (cached features vs end to end) giving the same head, grayscale input.

Networks with seeded random weights (the architecture is what matters here) and tiny
generated images; the real-data comparison lives in tests/test_finetune.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tplib.data import load_dataset
from tplib.engine import Engine
from tplib.features import extract_features
from tplib.finetune import (
    FineTuneModel,
    GrayToRGB,
    add_gray_front,
    attach_head,
    decode_images,
    evaluate_model,
    gray_conv,
    grayscale_input,
    load_checkpoint,
    make_head,
    save_checkpoint,
    train_from_scratch,
    train_head,
    train_mode_effect,
    train_model,
    train_new_head,
    train_step,
    validation_split,
)
from tplib.models import build_model, load_backbone
from tplib.predict import count_parameters
from tplib.preprocess import Preprocess
from tplib.profile import get_profile
from tplib.viz import show_misclassified

VGG16_PARAMETERS = 138_357_544
EXACT = Engine(precision="fp32", channels_last=False, fold_bn=False)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer (BatchNorm running stats included)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture(scope="module")
def lite0_random():
    return load_backbone("efficientnet_lite0", weights="random")


@pytest.fixture
def batch(lite0_random):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 64, 64, generator=gen)
    return x, torch.tensor([0, 1, 1, 0])


# ------------------------------------------------------------------ frozen stays frozen
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


def test_train_mode_would_move_the_batchnorm_statistics(lite0_random, batch):
    """Why frozen bases stay in eval mode: train mode alone changes a BatchNorm network."""
    before = snapshot(lite0_random.model)
    effect = train_mode_effect(lite0_random.model, batch[0])
    assert effect.n_batchnorm == 49
    assert effect.running_stats_change > 0 and effect.output_change > 0
    assert not changed(before, snapshot(lite0_random.model))  # a copy was used
    assert not lite0_random.model.training
    vgg_like = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        scale = float(vgg_like(batch[0]).abs().max())
    assert train_mode_effect(vgg_like, batch[0]) == (0, 0.0, 0.0, pytest.approx(scale))


# ------------------------------------------------------------------ parameter counts
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
    model = attach_head(vgg_random, n_classes=2, layer="pool5", hidden=256)
    counts = model.parameter_counts()
    assert counts == {"base_frozen": 14_714_688, "base_trainable": 0,
                      "head": 25088 * 256 + 256 + 256 * 2 + 2}
    bce = attach_head(vgg_random, n_classes=2, layer="pool5", hidden=256, loss="bce")
    assert bce.parameter_counts()["head"] == 25088 * 256 + 256 + 256 + 1
    assert [r[0] for r in model.block_table()][-2:] == ["block5", "new head"]


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


def test_validation_split_holds_out_the_last_files_of_every_class(image_folder):
    split = load_dataset(image_folder).train  # 3 classes x 3 files
    train, val = validation_split(split, 0.2)
    assert (len(train), len(val), val.name, train.name) == (6, 3, "val", "train")
    assert set(train.paths).isdisjoint(val.paths)
    assert sorted(train.paths + val.paths) == sorted(split.paths)
    assert train.counts() == {"alpha": 2, "beta": 2, "gamma": 2}
    assert [p.name for p in val.paths] == ["img_2.jpg"] * 3
    assert validation_split(split, 0.2)[1].paths == val.paths  # deterministic
    with pytest.raises(ValueError):
        validation_split(split, 1.0)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_of_a_model_with_a_gray_front(lite0_random, tmp_path, image_folder):
    model = add_gray_front(attach_head(lite0_random, n_classes=3, seed=1))
    with torch.no_grad():
        model.front.conv.weight.mul_(1.5)  # "trained": no longer the copy
    path = save_checkpoint(model, tmp_path / "gray.pt", note="gray")
    other = add_gray_front(attach_head(lite0_random, n_classes=3, seed=2))
    assert load_checkpoint(other, path) == {"note": "gray"}
    split = load_dataset(image_folder).test
    a, b = evaluate_model(model, split), evaluate_model(other, split)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.loss == pytest.approx(b.loss)


# ------------------------------------------------------------------ grayscale input
def gray_images(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        path = folder / f"g{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8), mode="L").save(path)
        paths.append(path)
    return paths, np.array([0, 1] * (n // 2))


def test_gray_to_rgb_starts_as_copying_the_channel():
    front = GrayToRGB(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert front.conv.weight.shape == (3, 1, 1, 1)
    assert torch.equal(front.conv.weight.flatten(), torch.ones(3))
    assert torch.equal(front.conv.bias, torch.zeros(3))
    pre = Preprocess()
    g = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    x = pre.normalize(g.expand(-1, 3, -1, -1))  # a gray photo copied, then normalised
    torch.testing.assert_close(front(x), x, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
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
    gray = gray_conv(conv)
    assert gray.weight.shape == (64, 1, 3, 3) and gray.padding == conv.padding
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(gray(x), conv(x.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
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


# ------------------------------------------------------------------ what the notebook shows
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


def test_a_scratch_model_carries_its_preprocessing(image_folder):
    ds = load_dataset(image_folder)
    scratch = train_from_scratch(ds.train, ds.test, image_size=32, epochs=1, batch_size=4)
    assert scratch.model.preprocess.size == 32
    assert evaluate_model(scratch.model, ds.test).accuracy == pytest.approx(scratch.test_accuracy)


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


def test_gray_fronts_leave_the_global_random_state_alone():
    from tplib import finetune

    conv = torch.nn.Conv2d(3, 8, 3)
    state = torch.random.get_rng_state()
    front, summed = finetune.GrayToRGB(), finetune.gray_conv(conv)
    assert torch.equal(state, torch.random.get_rng_state())
    assert front.conv.weight.flatten().tolist() == [1.0, 1.0, 1.0] and front.conv.bias.abs().sum() == 0
    assert torch.allclose(summed.weight, conv.weight.sum(dim=1, keepdim=True))


def test_a_features_object_given_as_features_is_named():
    from tplib.errors import InputError
    from tplib.features import Features
    from tplib.finetune import train_head

    feats = Features(arrays={"pooled": np.ones((4, 3), np.float32)}, labels=np.array([0, 1, 0, 1]),
                     paths=["a", "b", "c", "d"])
    with pytest.raises(InputError, match=r"Features object \(layers pooled\).*feats\[layer\]"):
        train_head(feats, feats.labels, epochs=1)
