"""The promises every self-check keeps, whatever it is given (tplib/checks.py).

- Every public check (enumerated from the module, so a new one is covered) gets odd
  values in every position: it returns a one-line verdict, in bounded time, that names
  the odd value and never shows the expected one.
- Student code that never returns gets a verdict within the time limit; SystemExit is
  a verdict too.
- False passes and false fails found by probing the checks: an answer that ignores
  its input, a diagnosis that names the wrong layer, a C search judged by its form,
  a head judged by its module types, a top-k function that restores the caller's
  mode, float16 features, a tensor that requires grad.

The notebook-specific hints of each check are tested in tests/test_checks_0*.py.
"""
from __future__ import annotations

import copy
import inspect
import signal
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tplib import checks
from tplib.checks import Verdict
from tplib.features import Features
from tplib.images import load_rgb
from tplib.samples import sample_photos
from tplib.svm import l2_normalize

LAYER = "pooled"


# ------------------------------------------------------------------ shared material
def make_split_pair(seed=0, k=15, n=(20, 20), d=300, sep=0.6):
    """Train/test Features of one layer: k classes around random centres, d features.

    The default mimics notebook 05's `ci` profile (15 classes, 20 images each per
    split, a few hundred features, accuracies around 0.8-0.9 on the test split).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    out = []
    for m in n:
        y = np.repeat(np.arange(k), m)
        X = np.abs(centers[y] * sep + rng.normal(size=(len(y), d))).astype(np.float32)
        out.append(Features(arrays={LAYER: X}, labels=y.astype(np.int64),
                            paths=[f"img_{i}.jpg" for i in range(len(y))],
                            classes=[f"c{i}" for i in range(k)]))
    return out


@pytest.fixture(scope="module")
def splits():
    return make_split_pair()


@pytest.fixture(scope="module")
def vgg_master():
    return checks._vgg16_for_check()


@pytest.fixture
def fast_vgg(monkeypatch, vgg_master):
    """The check's VGG16 is a copy of one built once (building takes seconds)."""
    monkeypatch.setattr(checks, "_vgg16_for_check", lambda: copy.deepcopy(vgg_master))


class Lab(nn.Module):
    """The lab's class, as the notebook's solution writes it."""

    def __init__(self, vgg16):
        super().__init__()
        self.features = nn.Sequential(*list(vgg16.features.children()))
        self.classifier = nn.Sequential(*list(vgg16.classifier.children())[:-2])

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def right_topk(model, x, categories, k=5):
    model.eval()
    with torch.no_grad():
        probs = model(x.unsqueeze(0))[0].softmax(dim=0)
    values, indices = probs.topk(k)
    return [(categories[i], float(p)) for p, i in zip(values, indices.tolist())]


def right_head(in_features, n_classes, loss="ce"):
    return nn.Linear(in_features, 1 if loss == "bce" else n_classes)


def right_loss(logits, y):
    return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())


def right_step(model, optimizer, loss_fn, x, y):
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def right_evaluate(model, X, y):
    model.eval()
    with torch.no_grad():
        logits = model(X)
    pred = logits.argmax(1) if logits.shape[1] > 1 else (logits[:, 0] > 0).long()
    return (pred == y).float().mean().item()


def small_model():
    """A frozen base with a trainable head, and an optimizer over the head."""
    base = nn.Linear(4, 3).requires_grad_(False)
    model = nn.Sequential(base, nn.Linear(3, 1))
    return model, torch.optim.SGD(model[1].parameters(), lr=0.1)


@pytest.fixture(scope="module")
def photo():
    return load_rgb(sample_photos()["chelsea"])


@pytest.fixture(scope="module")
def tiny_backbone(lite0):
    """lite0's preprocessing and class names with a tiny network (1000 scores): the
    odd-value test calls the checks hundreds of times."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5),
                        nn.Linear(16, 1000)).eval()
    return SimpleNamespace(model=net, preprocess=lite0.preprocess, categories=lite0.categories)


@pytest.fixture(scope="module")
def valid(splits, tiny_backbone, photo):
    """Right arguments for every public check (a new check must be added here)."""
    train, test = splits
    X_train, X_test = l2_normalize(train[LAYER]), l2_normalize(test[LAYER])
    lite0 = tiny_backbone
    x = lite0.preprocess(photo)
    maps = torch.zeros(4, 3, 3)
    maps[1] = 1.0
    frozen = nn.Linear(3, 2).requires_grad_(False)
    model, optimizer = small_model()
    return {
        "check_fc_estimate": dict(value=25088 * 4096 + 4096 * 4096 + 4096 * 1000),
        "check_preprocess": dict(x=x, backbone=lite0, image=photo),
        "check_topk": dict(top_k=right_topk, backbone=lite0, x=x, k=5),
        "check_strongest_channel": dict(channel=1, maps=maps),
        "check_vgg16relu7": dict(cls=Lab),
        "check_l2_features": dict(X_train=X_train, X_test=X_test, train=train, test=test,
                                  layer=LAYER),
        "check_svm_accuracy": dict(accuracy=0.8, train=train, test=test, layer=LAYER, C=1.0),
        "check_c_search": dict(best_C=1.0, scores={0.1: 0.7, 1.0: 0.8}, train=train, test=test,
                               layer=LAYER, folds=5),
        "check_head_accuracy": dict(head_accuracy=0.88, svm_accuracy=0.9, below=0.06, above=0.06),
        "expect_between": dict(value=0.5, low=0.0, high=1.0, what="a number"),
        "check_frozen": dict(model=frozen),
        "check_new_head": dict(new_head=right_head),
        "check_optimizer": dict(optimizer=optimizer, model=model),
        "check_bce_loss": dict(loss_fn=right_loss),
        "check_train_step": dict(train_step=right_step),
        "check_evaluate": dict(evaluate=right_evaluate),
        "check_experiment": dict(hypothesis="a larger C should fit the training rows more closely "
                                            "and lose a little on the test rows",
                                 results={"C=1": 0.8, "C=100": 0.78}),
    }


# ------------------------------------------------------------------ odd values
def raises(*args, **kwargs):
    raise ValueError("student's error")


class RaisingClass:
    def __init__(self, *args, **kwargs):
        raise ValueError("student's error")


def endless(*args, **kwargs):
    while True:
        pass


# value, and the words of which the verdict must hold one when the value is odd there
ODD = {
    "None": (None, ["None"]),
    "str": ("a string", ["str"]),
    "int": (7, ["int"]),
    "NaN": (float("nan"), ["NaN"]),
    "float64 array": (np.ones((2, 3)), ["array"]),
    "float64 tensor": (torch.ones(2, 3, dtype=torch.float64), ["tensor"]),
    "empty array": (np.array([]), ["empty"]),
    "raising function": (raises, ["raised", "function"]),
    "raising class": (RaisingClass, ["raised", "class"]),
    "endless function": (endless, ["did not return", "function"]),
}


def test_every_public_check_is_guarded_and_declares_its_arguments():
    public = {name for name, obj in vars(checks).items()
              if name.startswith(("check_", "expect_")) and callable(obj)}
    assert public == set(checks.CHECKS)
    assert len(public) >= 16
    for name in checks.CHECKS:
        check = getattr(checks, name)
        assert getattr(check, "__wrapped__", None) is not None, name  # wrapped by _guard
        kinds = checks.kinds_of(check)  # raises if a parameter has no Kind
        assert list(kinds) == list(inspect.signature(check).parameters), name


def test_a_new_check_is_guarded_by_the_module_loop():
    def check_new(value: checks.Number) -> Verdict:
        raise SystemExit(3)

    namespace = {"check_new": check_new, "__name__": checks.__name__}
    check_new.__module__ = checks.__name__
    assert checks._guard_public_checks(namespace) == ("check_new",)
    verdict = namespace["check_new"](1)
    assert not verdict.ok and "SystemExit" in verdict.message


def test_every_check_gives_a_verdict_for_odd_values_in_every_position(valid, fast_vgg,
                                                                    monkeypatch):
    monkeypatch.setattr(checks, "TIME_LIMIT_S", 1.0)
    assert set(valid) <= set(checks.CHECKS)
    secrets = ("123633664", "123,633,664", "138357544", "138,357,544")
    problems = []
    for name in checks.CHECKS:
        check = getattr(checks, name)
        kinds = checks.kinds_of(check)
        # a check without right arguments in `valid` (a new one) gets the odd value in
        # every position at once; the others get it in one position at a time
        positions = list(kinds) if name in valid else [None]
        for param in positions:
            for odd, (value, words) in ODD.items():
                if param is None:
                    args = dict.fromkeys(kinds, value)
                    judged = next((p for p in kinds if not kinds[p].ok(value)), list(kinds)[0])
                else:
                    args = dict(valid[name], **{param: value})
                    judged = param
                start = time.monotonic()
                verdict = check(**args)
                seconds = time.monotonic() - start
                where = f"{name}({judged}={odd})"
                if not isinstance(verdict, Verdict):
                    problems.append(f"{where}: no verdict but {verdict!r}")
                    continue
                text = str(verdict)
                if "\n" in text or not text.startswith(("✔", "✘")):
                    problems.append(f"{where}: not one line: {text!r}")
                if any(s in text for s in secrets):
                    problems.append(f"{where}: shows an expected value: {text}")
                if seconds > 30:
                    problems.append(f"{where}: took {seconds:.0f} s")
                student_code = kinds[judged] in (checks.Function, checks.Class) and callable(value)
                if not kinds[judged].ok(value) or student_code and odd != "raising class":
                    if verdict.ok or not any(w.lower() in verdict.message.lower() for w in words):
                        problems.append(f"{where}: does not name the odd value: {text}")
    assert not problems, "\n".join(problems)


def test_the_verdict_never_shows_the_expected_value(splits):
    from tplib.svm import svm_fit_score

    train, test = splits
    ref = svm_fit_score(train[LAYER], train.labels, test[LAYER], test.labels).accuracy
    for value in (0.1, 0.5, ref - 0.2, 1.0, 95.0):
        text = str(checks.check_svm_accuracy(value, train, test, LAYER))
        assert f"{ref:.3f}" not in text and f"{ref:.2f}" not in text, text
    for value in ("123633664", 123633664.5, 123633663, -1):
        text = str(checks.check_fc_estimate(value))
        assert "123633664" not in text and "123,633,664" not in text, text


# ------------------------------------------------------------------ time limit, SystemExit
def test_an_endless_loop_gets_a_verdict_within_seconds(monkeypatch):
    monkeypatch.setattr(checks, "TIME_LIMIT_S", 2.0)

    def evaluate(model, X, y):
        while True:
            pass

    start = time.monotonic()
    verdict = checks.check_evaluate(evaluate)
    seconds = time.monotonic() - start
    assert not verdict.ok and "did not return within 2 s" in verdict.message, verdict
    assert seconds < 6, seconds


def test_the_default_time_limit_is_a_few_seconds():
    assert 2 <= checks.TIME_LIMIT_S <= 15


def test_an_endless_loop_that_catches_everything_once_is_still_stopped(monkeypatch):
    monkeypatch.setattr(checks, "TIME_LIMIT_S", 0.5)

    def stubborn(model, X, y):
        try:
            while True:
                pass
        except BaseException:  # noqa: BLE001 - the student's bare except
            while True:
                pass

    start = time.monotonic()
    verdict = checks.check_evaluate(stubborn)
    assert not verdict.ok and "did not return" in verdict.message
    assert time.monotonic() - start < 5


def test_the_time_limit_leaves_other_timers_and_handlers_as_they_were(monkeypatch):
    monkeypatch.setattr(checks, "TIME_LIMIT_S", 0.3)
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        verdict = checks.check_train_step(endless)
        assert not verdict.ok and "did not return" in verdict.message
        handler = signal.getsignal(signal.SIGALRM)
        delay, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < delay <= 30  # the outer timer goes on with its remaining time
        assert handler is not None and handler is not signal.SIG_DFL
        assert checks.check_train_step(right_step).ok
        assert not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_off_the_main_thread_the_time_limit_still_holds(monkeypatch):
    monkeypatch.setattr(checks, "TIME_LIMIT_S", 0.5)
    out = {}

    def run():
        out["endless"] = checks.check_bce_loss(endless)
        out["right"] = checks.check_bce_loss(right_loss)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert not out["endless"].ok and "did not return" in out["endless"].message
    assert out["right"].ok, out["right"]


@pytest.mark.parametrize("check, student", [
    (checks.check_evaluate, lambda model, X, y: exit()),
    (checks.check_train_step, lambda *a: (_ for _ in ()).throw(SystemExit(1))),
    (checks.check_new_head, lambda *a, **k: (_ for _ in ()).throw(SystemExit("bye"))),
    (checks.check_bce_loss, lambda z, y: (_ for _ in ()).throw(GeneratorExit())),
])
def test_system_exit_from_student_code_is_a_verdict(check, student):
    verdict = check(student)
    assert not verdict.ok
    assert "SystemExit" in verdict.message or "GeneratorExit" in verdict.message, verdict


def test_keyboard_interrupt_still_stops_a_check():
    def interrupted(model, X, y):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checks.check_evaluate(interrupted)


def test_what_names_odd_values():
    assert checks._what(None) == "None"
    assert checks._what(float("nan")) == "NaN"
    assert checks._what("123633664") == "a str (text in quotes)"  # no echo of the text
    assert checks._what(np.zeros((0, 3))) == "an empty array (shape (0, 3))"
    assert checks._what(torch.ones(2, dtype=torch.float64)) == "a float64 tensor of shape (2,)"
    assert checks._what(np.array([1.0, np.nan])) == "a float64 array of shape (2,) holding NaN"
    assert checks._what(raises) == "a function (raises)"
    assert checks._what(RaisingClass) == "a class (RaisingClass)"


# ------------------------------------------------------------------ VGG16relu7
def test_vgg_right_class_passes_also_when_forward_returns_float64(fast_vgg):
    class Double(Lab):
        def forward(self, x):
            return super().forward(x).double()

    assert checks.check_vgg16relu7(Lab).ok
    verdict = checks.check_vgg16relu7(Double)
    assert verdict.ok, verdict


def test_vgg_class_that_builds_its_own_network_fails_even_with_the_setup_seed(fast_vgg):
    import torchvision

    class OwnNetwork(Lab):
        def __init__(self, vgg16):
            torch.manual_seed(0)  # what tplib.setup() does, and tplib.build_model's seed
            super().__init__(torchvision.models.vgg16(weights=None))

    verdict = checks.check_vgg16relu7(OwnNetwork)
    assert not verdict.ok and "do not build a new VGG16" in verdict.message, verdict


def test_vgg_class_that_keeps_a_network_from_an_earlier_call_fails(fast_vgg):
    kept = {}

    class Cached(nn.Module):
        def __init__(self, vgg16):
            super().__init__()
            if "net" not in kept:
                kept["net"] = Lab(copy.deepcopy(vgg16))
            self.net = kept["net"]

        def forward(self, x):
            return self.net(x)

    verdict = checks.check_vgg16relu7(Cached)
    assert not verdict.ok and "network passed to __init__" in verdict.message, verdict


def test_vgg_reference_weights_are_not_the_setup_seed():
    from tplib.models import build_model

    assert checks._VGG_CHECK_SEED != 0
    mine = checks._vgg16_for_check()
    seeded = build_model("vgg16")  # seed 0, as after tplib.setup()
    assert not torch.equal(mine.features[0].weight, seeded.features[0].weight)


# ------------------------------------------------------------------ fc estimate
@pytest.mark.parametrize("answer, named, not_named", [
    (25088 * 4096, "only fc6", "fc6 looks wrong"),
    (4096 * 4096, "only fc7", "fc6 looks wrong"),
    (4096 * 1000, "only fc8", "fc6 looks wrong"),
    (25088 * 4096 + 4096, "only fc6", "fc6 looks wrong"),  # with its bias
    (25088 * 4096 + 4096 * 4096, "missing (fc8)", "fc6 looks wrong"),
    (4096 * 4096 + 4096 * 1000, "missing (fc6)", "looks wrong"),
    (4096 * 4096 * 2 + 4096 * 1000, "fc6 looks wrong", "missing"),  # 4096 typed for 25088
])
def test_fc_estimate_names_the_mistake_that_was_made(answer, named, not_named):
    verdict = checks.check_fc_estimate(answer)
    assert not verdict.ok and named in verdict.message and not_named not in verdict.message, verdict


# ------------------------------------------------------------------ C search
def _cv_scores(X, y, cv, Cs=(0.01, 0.1, 1.0, 10.0)):
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import LinearSVC

    return {C: cross_val_score(LinearSVC(C=C, random_state=0), X, y, cv=cv).mean() for C in Cs}


def _judge(scores, train, test):
    return checks.check_c_search(max(scores, key=scores.get), scores, train, test, LAYER)


def test_c_search_plain_scikit_learn_on_the_training_split_passes(splits):
    from sklearn.model_selection import KFold, StratifiedKFold

    train, test = splits
    X, y = l2_normalize(train[LAYER]), train.labels
    for cv in (5, 3, 10, StratifiedKFold(5, shuffle=True, random_state=42),
               KFold(5, shuffle=True, random_state=7)):
        verdict = _judge(_cv_scores(X, y, cv), train, test)
        assert verdict.ok, (cv, verdict)
    # unnormalised rows: another, close curve
    assert _judge(_cv_scores(train[LAYER], y, 5), train, test).ok


def test_c_search_over_train_and_test_pooled_is_the_leak(splits):
    train, test = splits
    X = np.vstack([l2_normalize(train[LAYER]), l2_normalize(test[LAYER])])
    y = np.concatenate([train.labels, test.labels])
    for cv in (5, 3):
        verdict = _judge(_cv_scores(X, y, cv), train, test)
        assert not verdict.ok and "pooled together" in verdict.message, (cv, verdict)


def test_c_search_on_the_test_split_is_named(splits):
    from sklearn.svm import LinearSVC

    train, test = splits
    X, Xt = l2_normalize(train[LAYER]), l2_normalize(test[LAYER])
    scores = {C: LinearSVC(C=C, random_state=0).fit(X, train.labels).score(Xt, test.labels)
              for C in (0.01, 0.1, 1.0, 10.0)}
    verdict = _judge(scores, train, test)
    assert not verdict.ok and "tuned on the test split" in verdict.message, verdict


def test_c_search_far_scores_fail(splits):
    train, test = splits
    verdict = _judge({0.1: 0.2, 1.0: 0.25, 10.0: 0.2}, train, test)
    assert not verdict.ok and "far from a cross-validation" in verdict.message, verdict


# ------------------------------------------------------------------ new head
def test_new_head_judged_by_its_outputs():
    class SigmoidInForward(nn.Module):
        def __init__(self, i, k):
            super().__init__()
            self.fc = nn.Linear(i, k)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    cases = {
        "never gives a negative": lambda i, k, loss="ce": nn.Sequential(
            right_head(i, k, loss), nn.ReLU()),
        "zeros in train mode": lambda i, k, loss="ce": nn.Sequential(
            right_head(i, k, loss), nn.Dropout(1.0)),
        "sigmoid": lambda i, k, loss="ce": SigmoidInForward(i, 1 if loss == "bce" else k),
        "log_softmax": lambda i, k, loss="ce": nn.Sequential(
            right_head(i, k, loss), nn.LogSoftmax(dim=1)),
    }
    for words, head in cases.items():
        verdict = checks.check_new_head(head)
        assert not verdict.ok and words in verdict.message, (words, verdict)

    def mlp(i, k, loss="ce"):
        return nn.Sequential(nn.Linear(i, 32), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(32, 1 if loss == "bce" else k))

    assert checks.check_new_head(right_head).ok
    assert checks.check_new_head(mlp).ok


# ------------------------------------------------------------------ top-k
def test_topk_that_restores_the_callers_mode_passes(lite0, photo):
    x = lite0.preprocess(photo)

    def polite(model, x, categories, k=5):
        was_training = model.training
        try:
            return right_topk(model, x, categories, k)
        finally:
            model.train(was_training)

    verdict = checks.check_topk(polite, lite0, x)
    assert verdict.ok, verdict


def test_topk_that_reads_the_notebooks_variables_fails(lite0, photo):
    x0 = lite0.preprocess(photo)
    model, categories = lite0.model, lite0.categories

    def global_model(m, x, cats, k=5):
        return right_topk(model, x, cats, k)

    def global_categories(m, x, cats, k=5):
        return right_topk(m, x, categories, k)

    def global_x(m, x, cats, k=5):
        return right_topk(m, x0, cats, k)

    for student in (global_model, global_categories, global_x):
        verdict = checks.check_topk(student, lite0, x0)
        assert not verdict.ok and "arguments" in verdict.message, (student.__name__, verdict)


# ------------------------------------------------------------------ L2 features
def test_l2_float16_features_pass_with_the_notebooks_solution(splits):
    train, test = (copy.deepcopy(f) for f in splits)
    for f in (train, test):
        f.arrays[LAYER] = (f.arrays[LAYER] * 3).astype(np.float16)  # the engine's float16 option
    X_train = train[LAYER] / np.linalg.norm(train[LAYER], axis=1, keepdims=True)
    X_test = test[LAYER] / np.linalg.norm(test[LAYER], axis=1, keepdims=True)
    assert X_train.dtype == np.float16
    verdict = checks.check_l2_features(X_train, X_test, train, test, LAYER)
    assert verdict.ok, verdict
    # the mistakes are still seen at that precision
    assert not checks.check_l2_features(train[LAYER], X_test, train, test, LAYER).ok
    assert not checks.check_l2_features(X_train[::-1], X_test, train, test, LAYER).ok


def test_l2_tensor_that_requires_grad_is_a_verdict(splits):
    train, test = splits
    X_train = torch.from_numpy(l2_normalize(train[LAYER])).requires_grad_(True)
    verdict = checks.check_l2_features(X_train, l2_normalize(test[LAYER]), train, test, LAYER)
    assert not verdict.ok and "gradients" in verdict.message and "detach" in verdict.message
    # a plain tensor is fine
    assert checks.check_l2_features(X_train.detach(), l2_normalize(test[LAYER]), train, test,
                                    LAYER).ok


# ------------------------------------------------------------------ train step
def test_train_step_that_uses_another_loss_than_its_argument_fails():
    def notebook_loss(logits, y):
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())

    def ignores_loss_fn(model, optimizer, loss_fn, x, y):
        return right_step(model, optimizer, notebook_loss, x, y)

    verdict = checks.check_train_step(ignores_loss_fn)
    assert not verdict.ok and "loss_fn it was given" in verdict.message, verdict
    assert checks.check_train_step(right_step).ok
