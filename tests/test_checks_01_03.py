"""Self-checks of notebooks 01-03: each usual wrong answer gets its hint, the right one passes,
and no answer makes a check raise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tplib import checks
from tplib.images import load_rgb
from tplib.preprocess import Preprocess
from tplib.samples import sample_photos

FC6, FC7, FC8 = 25088 * 4096, 4096 * 4096, 4096 * 1000
RIGHT = FC6 + FC7 + FC8


def _says(verdict, ok, *words):
    text = repr(verdict)
    assert verdict.ok is ok, text
    assert text.startswith("✔" if ok else "✘")
    assert "\n" not in text
    for w in words:
        assert w in text, text


# ------------------------------------------------------------------ 01: the fc estimate
def test_fc_estimate_right_answer_passes():
    assert RIGHT == 123_633_664
    for answer in (RIGHT, 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000, np.int64(RIGHT),
                   torch.tensor(RIGHT), float(RIGHT)):
        _says(checks.check_fc_estimate(answer), True, "right")


@pytest.mark.parametrize("answer, words", [
    (123_642_856, ["biases"]),  # + 4096 + 4096 + 1000
    (FC6 + FC7, ["missing"]),  # fc8 forgotten
    (FC7 + FC8, ["missing"]),  # fc6 forgotten
    (FC6 + FC8, ["missing"]),
    (FC6 + FC7 + 4096 + 4096, ["missing"]),  # fc8 forgotten, biases in
    (4096 * 4096 + FC7 + FC8, ["fc6", "pool5"]),  # 7*7*512 typed as 4096
    (512 * 4096 + FC7 + FC8, ["fc6", "pool5"]),  # the 7 x 7 forgotten
    (7 * 7 * 256 * 4096 + FC7 + FC8, ["fc6"]),
    (4096 * 4096 + FC7 + FC8 + 9192, ["fc6"]),  # the same mistake, biases in
    (138_357_544, ["whole network"]),
    (123.6, ["not millions"]),
    (124, ["not millions"]),
    (RIGHT + 1, ["in_features x out_features"]),
    (-5, ["in_features x out_features"]),
])
def test_fc_estimate_mistakes(answer, words):
    _says(checks.check_fc_estimate(answer), False, *words)


@pytest.mark.parametrize("answer", ["123633664", None, [RIGHT], True, RIGHT + 0.5, torch.ones(2)])
def test_fc_estimate_odd_types_never_raise(answer):
    verdict = checks.check_fc_estimate(answer)
    _says(verdict, False)
    assert "123633664" not in repr(verdict) and "123,633,664" not in repr(verdict)


# ------------------------------------------------------------------ 02: preprocessing
@pytest.fixture(scope="module")
def photo():
    return load_rgb(sample_photos()["chelsea"])  # 451 x 300: not square


def _pieces(backbone, img):
    prep = backbone.preprocess
    ref = prep(img)
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    return ref, ref * std + mean, mean, std


@pytest.mark.parametrize("which", ["vgg", "lite"])
def test_preprocess_right_answer_passes(which, vgg_random, lite0, photo):
    backbone = vgg_random if which == "vgg" else lite0
    prep = backbone.preprocess
    from PIL import Image

    # what a student writes, step by step
    img = photo.resize((prep.size, prep.size), Image.Resampling[prep.interpolation.upper()])
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    x = (x - torch.tensor(prep.mean).view(3, 1, 1)) / torch.tensor(prep.std).view(3, 1, 1)
    _says(checks.check_preprocess(x, backbone, photo), True, "identical")
    _says(checks.check_preprocess(x.unsqueeze(0), backbone, photo), True)  # a batch of one
    _says(checks.check_preprocess(x.numpy(), backbone, photo), True)
    # another interpolation: accepted, with a word about it
    other = "bilinear" if prep.interpolation == "bicubic" else "bicubic"
    close = Preprocess(size=prep.size, mean=prep.mean, std=prep.std, interpolation=other)(photo)
    _says(checks.check_preprocess(close, backbone, photo), True, "interpolation")


@pytest.mark.parametrize("mistake, words", [
    ("no_norm", ["no normalisation", "[0, 1]"]),
    ("no_255", ["/255 forgotten"]),
    ("raw", ["divide by 255"]),
    ("swapped", ["mean and std swapped"]),
    ("mean_only", ["only the mean"]),
    ("std_only", ["only divided by the std"]),
    ("bgr", ["BGR"]),
    ("channels_last", ["channels last", "permute(2, 0, 1)"]),
    ("uint8", ["integer", "255"]),
    ("small", ["wrong size", "224 x 224"]),
    ("not_resized", ["not resized"]),
    ("crop", ["resize the whole image"]),
    ("rank2", ["expected shape (3, 224, 224)"]),
    ("list", ["torch tensor"]),
])
def test_preprocess_mistakes(mistake, words, vgg_random, photo):
    ref, u, mean, std = _pieces(vgg_random, photo)
    prep = vgg_random.preprocess
    x = {
        "no_norm": lambda: u,
        "no_255": lambda: (u * 255 - mean) / std,
        "raw": lambda: u * 255,
        "swapped": lambda: (u - std) / mean,
        "mean_only": lambda: u - mean,
        "std_only": lambda: u / std,
        "bgr": lambda: ref.flip(0),
        "channels_last": lambda: ref.permute(1, 2, 0),
        "uint8": lambda: (u * 255).round().to(torch.uint8),
        "small": lambda: Preprocess(size=200, mean=prep.mean, std=prep.std)(photo),
        "not_resized": lambda: torch.zeros(3, photo.height, photo.width),
        "crop": lambda: prep.with_policy("crop")(photo),
        "rank2": lambda: ref[0],
        "list": lambda: "a tensor",
    }[mistake]()
    _says(checks.check_preprocess(x, vgg_random, photo), False, *words)


def test_preprocess_swapped_mean_and_std_are_harmless_when_equal(lite0, photo):
    # EfficientNet-Lite's mean and std are both 0.5: swapping them changes nothing
    ref, u, mean, std = _pieces(lite0, photo)
    _says(checks.check_preprocess((u - std) / mean, lite0, photo), True)
    _says(checks.check_preprocess(u, lite0, photo), False, "no normalisation")


# ------------------------------------------------------------------ 02: top-k
def _topk(model, x, categories, k=5, *, eval_mode=True, softmax="dim0", order="best", names=True,
          ignore_k=False):
    if eval_mode:
        model.eval()
    with torch.no_grad():
        logits = model(x.unsqueeze(0))
    if softmax == "dim0":
        scores = logits[0].softmax(dim=0)
    elif softmax == "batch_dim":
        scores = logits.softmax(dim=0)[0]
    elif softmax == "none":
        scores = logits[0]
    elif softmax == "sigmoid":
        scores = logits[0].sigmoid()
    values, indices = scores.topk(5 if ignore_k else k)
    pairs = [(categories[i] if names else i, p) for p, i in zip(values, indices.tolist())]
    return pairs[::-1] if order == "reversed" else pairs


@pytest.fixture(scope="module")
def lite_x(lite0):
    return lite0.preprocess(load_rgb(sample_photos()["coffee"]))


def test_topk_right_answer_passes_and_leaves_the_model_as_it_was(lite0, lite_x):
    before = {k: v.clone() for k, v in lite0.model.state_dict().items()}
    _says(checks.check_topk(_topk, lite0, lite_x), True, "right")
    # a mistake that runs in train mode must not change the network for the next cells
    _says(checks.check_topk(lambda m, x, c, k=5: _topk(m, x, c, k, eval_mode=False), lite0, lite_x), False)
    assert not lite0.model.training
    assert all(torch.equal(before[k], v) for k, v in lite0.model.state_dict().items())

    def as_floats(m, x, c, k=5):
        return [(n, float(p)) for n, p in _topk(m, x, c, k)]

    _says(checks.check_topk(as_floats, lite0, lite_x), True)


@pytest.mark.parametrize("kwargs, words", [
    ({"eval_mode": False}, ["train mode", "model.eval()"]),
    ({"softmax": "none"}, ["logits", "softmax"]),
    ({"softmax": "batch_dim"}, ["wrong dimension"]),
    ({"softmax": "sigmoid"}, ["sum to more than 1", "softmax"]),
    ({"order": "reversed"}, ["best first"]),
    ({"names": False}, ["class names"]),
    ({"ignore_k": True}, ["ignores k"]),
])
def test_topk_mistakes(kwargs, words, lite0, lite_x):
    def student(model, x, categories, k=5):
        return _topk(model, x, categories, k, **kwargs)

    _says(checks.check_topk(student, lite0, lite_x), False, *words)


def test_topk_train_mode_with_dropout_is_caught_too(vgg_random):
    x = vgg_random.preprocess(load_rgb(sample_photos()["rocket"]))

    def forgets_eval_then_fixes_mode(model, x, categories, k=5):
        out = _topk(model, x, categories, k, eval_mode=False)  # dropout active
        model.eval()
        return out

    _says(checks.check_topk(_topk, vgg_random, x), True)
    _says(checks.check_topk(forgets_eval_then_fixes_mode, vgg_random, x), False, "eval mode")


@pytest.mark.parametrize("student, words", [
    ("not callable", ["pass your function"]),
    (lambda m, x, c, k=5: (_ for _ in ()).throw(NotImplementedError()), ["not written yet"]),
    (lambda m, x, c, k=5: 1 / 0, ["ZeroDivisionError"]),
    (lambda m, x, c, k=5: torch.zeros(5), ["list of (class name, probability) pairs"]),
    (lambda m, x, c, k=5: [("a", 0.5)], ["k=5, got 1"]),
    (lambda m, x, c, k=5: [("a", "high")] * 5, ["not a number"]),
    (lambda m, x, c, k=5: ["a"] * 5, ["pairs"]),
    (lambda m, x, c, k=5: m.eval() and [("espresso", 0.2)] * 5, ["not the classes"]),
])
def test_topk_odd_answers_never_raise(student, words, lite0, lite_x):
    _says(checks.check_topk(student, lite0, lite_x), False, *words)


# ------------------------------------------------------------------ 03: strongest channel
@pytest.fixture
def maps():
    m = torch.zeros(6, 4, 4)
    m[2] = 1.0  # largest mean
    m[4, 0, 0] = 9.0  # largest single value, small mean
    m[5] = -1.0  # smallest mean
    return m


@pytest.mark.parametrize("answer", [2, np.int64(2), torch.tensor(2)])
def test_strongest_channel_right(answer, maps):
    _says(checks.check_strongest_channel(answer, maps), True, "channel 2")
    _says(checks.check_strongest_channel(answer, maps.numpy()), True)


@pytest.mark.parametrize("answer, words", [
    (5, ["weakest", "argmax"]),
    (4, ["largest single value", "mean"]),
    (0, ["not the channel with the largest mean"]),
    (6, ["no channel 6", "0 to 5"]),
    (1.0, ["index", "not its activation value"]),
    (torch.tensor(1.0), ["not its activation value"]),
    ("2", ["as an int"]),
])
def test_strongest_channel_mistakes(answer, words, maps):
    _says(checks.check_strongest_channel(answer, maps), False, *words)


def test_strongest_channel_bad_maps():
    _says(checks.check_strongest_channel(0, torch.zeros(3, 3)), False, "(C, H, W)")


def test_a_check_that_breaks_says_so_in_one_line(monkeypatch, lite0, photo):
    class Broken:
        @property
        def preprocess(self):
            raise RuntimeError("boom")

    _says(checks.check_preprocess(torch.zeros(3, 224, 224), Broken(), photo), False,
          "could not check", "RuntimeError")
