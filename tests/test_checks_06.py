"""Self-checks of notebook 06 (fine-tuning a new head): the usual wrong answers are flagged.

Each check gets the right answer (it must pass) and the typical mistakes listed in
the notebook's exercises (each must fail with the hint that names the mistake).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tplib import checks
from tplib.finetune import attach_head


def small_net() -> nn.Module:
    """A stand-in for VGG16 in structure: features, then classifier[0..6]."""
    torch.manual_seed(0)
    net = nn.Module()
    net.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    net.classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 8),
                                   nn.ReLU(), nn.Dropout(), nn.Linear(8, 10))
    return net


def assert_flags(verdict, *words):
    assert not verdict.ok, verdict
    for word in words:
        assert word in verdict.message, (word, verdict.message)


# ------------------------------------------------------------------ freezing
def test_check_frozen_passes_a_frozen_network():
    net = small_net()
    for p in net.parameters():
        p.requires_grad = False
    verdict = checks.check_frozen(net)
    assert verdict.ok and str(verdict).startswith("✔")


def test_check_frozen_flags_the_usual_mistakes():
    assert_flags(checks.check_frozen(small_net()), "nothing is frozen")
    net = small_net()
    net.requires_grad = False  # a plain attribute: freezes nothing
    assert_flags(checks.check_frozen(net), "plain attribute")
    assert_flags(checks.check_frozen(small_net().eval()), "eval()")
    net = small_net()
    for p in net.features.parameters():  # only the conv part
        p.requires_grad = False
    assert_flags(checks.check_frozen(net), "still trainable", "classifier.0.weight")
    assert_flags(checks.check_frozen(None), "nn.Module")
    assert_flags(checks.check_frozen(nn.ReLU()), "no parameters")


# ------------------------------------------------------------------ new head
def right_head(in_features, n_classes, loss="ce"):
    return nn.Linear(in_features, 1 if loss == "bce" else n_classes)


def test_check_new_head_passes_the_right_head():
    assert checks.check_new_head(right_head).ok
    def mlp(in_features, n_classes, loss="ce"):  # a small head is fine too
        return nn.Sequential(nn.Linear(in_features, 16), nn.ReLU(),
                             nn.Linear(16, 1 if loss == "bce" else n_classes))
    assert checks.check_new_head(mlp).ok


def test_check_new_head_flags_the_usual_mistakes():
    assert_flags(checks.check_new_head(lambda i, k, loss="ce": nn.Linear(i, 1000)), "1000")
    assert_flags(checks.check_new_head(lambda i, k, loss="ce": nn.Linear(i, k)), "ONE logit")
    assert_flags(checks.check_new_head(lambda i, k, loss="ce": nn.Linear(i, 2)),
                 "one score per class")
    assert_flags(checks.check_new_head(lambda i, k, loss="ce": nn.Linear(4096, k)),
                 "does not take 1280 input")
    def frozen(i, k, loss="ce"):
        return right_head(i, k, loss).requires_grad_(False)
    assert_flags(checks.check_new_head(frozen), "frozen")
    def with_sigmoid(i, k, loss="ce"):
        return nn.Sequential(right_head(i, k, loss), nn.Sigmoid())
    assert_flags(checks.check_new_head(with_sigmoid), "sigmoid")
    def no_loss_argument(i, k):
        return nn.Linear(i, k)
    assert_flags(checks.check_new_head(no_loss_argument), "TypeError")
    assert_flags(checks.check_new_head(lambda i, k, loss="ce": "Linear"), "not a layer")
    assert_flags(checks.check_new_head(42), "function")


# ------------------------------------------------------------------ optimizer
@pytest.fixture(scope="module")
def frozen_model(vgg_random):
    """AlexNet would do as well; VGG16's architecture with random weights, frozen, new head."""
    return attach_head(vgg_random, n_classes=2, loss="bce")


def test_check_optimizer_passes_the_trainable_parameters(frozen_model):
    opt = torch.optim.Adam([p for p in frozen_model.parameters() if p.requires_grad], lr=1e-3)
    verdict = checks.check_optimizer(opt, frozen_model)
    assert verdict.ok and "4,097" in verdict.message  # 4096 weights + 1 bias
    assert checks.check_optimizer(torch.optim.SGD(frozen_model.head.parameters(), lr=0.1),
                                  frozen_model).ok


def test_check_optimizer_flags_the_usual_mistakes(frozen_model):
    everything = torch.optim.Adam(frozen_model.parameters(), lr=1e-3)
    assert_flags(checks.check_optimizer(everything, frozen_model), "frozen parameter")
    base_only = torch.optim.Adam(frozen_model.base.parameters(), lr=1e-3)
    assert_flags(checks.check_optimizer(base_only, frozen_model), "frozen parameter")
    other_head = torch.optim.Adam(nn.Linear(4096, 1).parameters(), lr=1e-3)
    assert_flags(checks.check_optimizer(other_head, frozen_model), "not this model's")
    half = torch.optim.Adam([frozen_model.head[0].weight], lr=1e-3)
    assert_flags(checks.check_optimizer(half, frozen_model), "missing", "head.0.bias")
    assert_flags(checks.check_optimizer("adam", frozen_model), "optimizer")


# ------------------------------------------------------------------ BCE loss
def test_check_bce_loss_passes_logits_to_bce_with_logits():
    assert checks.check_bce_loss(lambda z, y: F.binary_cross_entropy_with_logits(z[:, 0], y.float())).ok
    criterion = nn.BCEWithLogitsLoss()
    assert checks.check_bce_loss(lambda z, y: criterion(z.squeeze(1), y.float())).ok


def test_check_bce_loss_flags_the_usual_mistakes():
    criterion = nn.BCEWithLogitsLoss()
    assert_flags(checks.check_bce_loss(lambda z, y: criterion(torch.sigmoid(z[:, 0]), y.float())),
                 "sigmoid applied twice")
    assert_flags(checks.check_bce_loss(lambda z, y: criterion(z, y.float())), "shape", "logits[:, 0]")
    assert_flags(checks.check_bce_loss(lambda z, y: criterion(z[:, 0], y)), "float targets")
    assert_flags(checks.check_bce_loss(
        lambda z, y: F.binary_cross_entropy_with_logits(z[:, 0], y.float(), reduction="sum")),
        "summed")
    assert_flags(checks.check_bce_loss(lambda z, y: F.cross_entropy(z, y)), "ONE output")
    assert_flags(checks.check_bce_loss(
        lambda z, y: nn.BCELoss()(torch.sigmoid(z[:, 0]), y.float())), "large ones")
    assert_flags(checks.check_bce_loss(lambda z, y: criterion(z[:, 0], y.float()).item()),
                 "no gradient")
    assert_flags(checks.check_bce_loss(lambda z, y: F.mse_loss(z[:, 0], y.float())),
                 "not the binary cross-entropy")


# ------------------------------------------------------------------ training step
def right_step(model, optimizer, loss_fn, x, y):
    logits = model(x)
    loss = loss_fn(logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_check_train_step_passes_the_textbook_step():
    assert checks.check_train_step(right_step).ok
    def zero_grad_at_the_end(model, optimizer, loss_fn, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss.detach())
    assert checks.check_train_step(zero_grad_at_the_end).ok


def test_check_train_step_flags_the_usual_mistakes():
    def no_zero_grad(model, optimizer, loss_fn, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()
    assert_flags(checks.check_train_step(no_zero_grad), "accumulate", "zero_grad")

    def no_backward(model, optimizer, loss_fn, x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        optimizer.step()
        return loss.item()
    assert_flags(checks.check_train_step(no_backward), "backward")

    def no_step(model, optimizer, loss_fn, x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        return loss.item()
    assert_flags(checks.check_train_step(no_step), "step() is missing")

    def zero_grad_before_step(model, optimizer, loss_fn, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        return loss.item()
    assert_flags(checks.check_train_step(zero_grad_before_step), "between")

    def returns_tensor(model, optimizer, loss_fn, x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    assert_flags(checks.check_train_step(returns_tensor), "loss.item()")

    def loss_after_update(model, optimizer, loss_fn, x, y):
        right_step(model, optimizer, loss_fn, x, y)
        with torch.no_grad():
            return loss_fn(model(x), y).item()
    assert_flags(checks.check_train_step(loss_after_update), "not this batch's loss")

    def wrong_signature(model, optimizer, x, y):
        return 0.0
    assert_flags(checks.check_train_step(wrong_signature), "TypeError")


# ------------------------------------------------------------------ evaluation
def right_evaluate(model, X, y):
    model.eval()
    with torch.no_grad():
        logits = model(X)
    pred = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
    return (pred == y).float().mean().item()


def test_check_evaluate_passes_the_right_evaluation():
    assert checks.check_evaluate(right_evaluate).ok


def test_check_evaluate_flags_the_usual_mistakes():
    def train_mode(model, X, y):
        with torch.no_grad():
            logits = model(X)
        pred = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
        return (pred == y).float().mean().item()
    assert_flags(checks.check_evaluate(train_mode), "train mode", "model.eval()")

    def with_gradients(model, X, y):
        model.eval()
        logits = model(X)
        pred = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
        return (pred == y).float().mean().item()
    assert_flags(checks.check_evaluate(with_gradients), "no_grad")

    def count(model, X, y):
        model.eval()
        with torch.no_grad():
            logits = model(X)
        pred = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
        return int((pred == y).sum())
    assert_flags(checks.check_evaluate(count), "number of correct")

    def percent(model, X, y):
        return 100 * right_evaluate(model, X, y)
    assert_flags(checks.check_evaluate(percent), "percentage")

    def argmax_only(model, X, y):
        model.eval()
        with torch.no_grad():
            return (model(X).argmax(1) == y).float().mean().item()
    assert_flags(checks.check_evaluate(argmax_only), "argmax always gives class 0")

    def sigmoid_above_zero(model, X, y):
        model.eval()
        with torch.no_grad():
            logits = model(X)
        pred = logits.argmax(1) if logits.shape[1] > 1 else (torch.sigmoid(logits[:, 0]) > 0).long()
        return (pred == y).float().mean().item()
    assert_flags(checks.check_evaluate(sigmoid_above_zero), "sigmoid is always > 0")

    def crashes(model, X, y):
        raise RuntimeError("boom")
    assert_flags(checks.check_evaluate(crashes), "RuntimeError", "boom")
    assert_flags(checks.check_evaluate(None), "function")


# ------------------------------------------------------------------ stable lines for trained numbers
def test_expect_between_says_in_or_out_without_the_number():
    inside = checks.expect_between(0.987654, 0.9, 1.0, "test accuracy")
    assert inside.ok and "0.98" not in inside.message and "[0.9, 1]" in inside.message
    assert_flags(checks.expect_between(0.5, 0.9, 1.0, "test accuracy"), "outside")
    assert checks.expect_between(torch.tensor(0.95), 0.9, 1.0, "x").ok
    assert_flags(checks.expect_between("high", 0.9, 1.0, "x"), "expected a number")
