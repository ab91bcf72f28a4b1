"""Self-checks of notebooks 04 and 05: the right answer passes, the usual mistakes are named.

The VGG16relu7 check runs VGG16's architecture with seeded random weights; the feature
and SVM checks run on small generated feature matrices (the checks' logic does not
depend on where features come from; the notebooks run them on real ones).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import tplib.checks as checks
from tplib.checks import (
    Verdict,
    check_c_search,
    check_head_accuracy,
    check_l2_features,
    check_svm_accuracy,
    check_vgg16relu7,
)
from tplib.features import Features
from tplib.svm import l2_normalize, search_C, svm_fit_score

LAYER = "pooled"


# ---------------------------------------------------------------- VGG16relu7
@pytest.fixture(scope="module")
def _vgg_master():
    return checks._vgg16_for_check()


@pytest.fixture
def fast_vgg(monkeypatch, _vgg_master):
    """The check's VGG16 is a copy of one built once (building takes seconds)."""
    monkeypatch.setattr(checks, "_vgg16_for_check", lambda: copy.deepcopy(_vgg_master))


class Lab(nn.Module):
    """The lab's class, written as the notebook's solution."""

    def __init__(self, vgg16):
        super().__init__()
        self.features = nn.Sequential(*list(vgg16.features.children()))
        self.classifier = nn.Sequential(*list(vgg16.classifier.children())[:-2])

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def variant(cut=-2, flatten=True, avgpool=False, new_network=False, skip_features=False,
            view=False):
    class Variant(nn.Module):
        def __init__(self, vgg16):
            super().__init__()
            if new_network:
                import torchvision

                vgg16 = torchvision.models.vgg16(weights=None)
            self.features = vgg16.features
            self.avgpool = vgg16.avgpool
            children = list(vgg16.classifier.children())
            self.classifier = nn.Sequential(*(children if cut is None else children[:cut]))

        def forward(self, x):
            if not skip_features:
                x = self.features(x)
            if avgpool:
                x = self.avgpool(x)
            if view:
                x = x.view(x.size(0), -1)
            elif flatten:
                x = torch.flatten(x, 1)
            return self.classifier(x)

    return Variant


class NotWritten(nn.Module):
    def __init__(self, vgg16):
        super().__init__()
        raise NotImplementedError()


class ForwardNotWritten(Lab):
    def forward(self, x):
        raise NotImplementedError()


def test_vgg_lab_class_and_tplib_class_pass(fast_vgg):
    from tplib.models import VGG16relu7

    for cls in (Lab, VGG16relu7):
        verdict = check_vgg16relu7(cls)
        assert isinstance(verdict, Verdict) and verdict.ok, verdict
        assert str(verdict).startswith("✔")


@pytest.mark.parametrize("kwargs", [dict(avgpool=True), dict(view=True)])
def test_vgg_harmless_variants_pass(fast_vgg, kwargs):
    # avgpool is AdaptiveAvgPool2d(7): nothing changes on 224x224 input
    assert check_vgg16relu7(variant(**kwargs)).ok


@pytest.mark.parametrize("kwargs, hint", [
    (dict(flatten=False), "flatten"),                       # forgotten flatten: shape error
    (dict(cut=None), "1000 outputs"),                       # classifier not cut
    (dict(cut=-1), "Dropout after relu7"),                  # cut one too late
    (dict(cut=-3), "negative values"),                      # fc7 before its ReLU
    (dict(cut=-4), "relu6"),                                # cut too early
    (dict(cut=0), "stops after the flatten"),               # no classifier at all
    (dict(skip_features=True), "self.features first"),      # features not used
    (dict(new_network=True), "do not build a new VGG16"),   # other weights
])
def test_vgg_usual_mistakes_are_named(fast_vgg, kwargs, hint):
    verdict = check_vgg16relu7(variant(**kwargs))
    assert not verdict.ok
    assert hint in verdict.message, verdict


def test_vgg_no_flatten_no_classifier(fast_vgg):
    class Maps(nn.Module):
        def __init__(self, vgg16):
            super().__init__()
            self.features = vgg16.features

        def forward(self, x):
            return self.features(x)

    verdict = check_vgg16relu7(Maps)
    assert not verdict.ok and "(N, 512, 7, 7)" in verdict.message


def test_vgg_not_written_and_wrong_arguments(fast_vgg):
    assert "__init__ is not written" in check_vgg16relu7(NotWritten).message
    assert "forward is not written" in check_vgg16relu7(ForwardNotWritten).message
    assert "class itself" in check_vgg16relu7(Lab(checks._vgg16_for_check())).message
    assert "class itself" in check_vgg16relu7(None).message


def test_vgg_check_builds_random_weights_by_itself():
    """Without the test's shortcut: VGG16's architecture, seeded, no weights file needed."""
    assert check_vgg16relu7(Lab).ok


# ---------------------------------------------------------------- features
def make_features(seed=0, n_per_class=(20, 30), k=5, d=200, shift=0.0, sep=0.35):
    """Train/test Features of one layer: k Gaussian classes, d > n_train (separable)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) + shift
    out = []
    for n in n_per_class:
        y = np.repeat(np.arange(k), n)
        X = np.abs(centers[y] * sep + rng.normal(size=(len(y), d))).astype(np.float32)
        out.append(Features(arrays={LAYER: X}, labels=y.astype(np.int64),
                            paths=[f"img_{i}.jpg" for i in range(len(y))],
                            classes=[f"c{i}" for i in range(k)]))
    return out


@pytest.fixture(scope="module")
def feats():
    return make_features()


def normalised(feats):
    train, test = feats
    return (train[LAYER] / np.linalg.norm(train[LAYER], axis=1, keepdims=True),
            test[LAYER] / np.linalg.norm(test[LAYER], axis=1, keepdims=True))


def test_l2_rows_pass(feats):
    X_train, X_test = normalised(feats)
    verdict = check_l2_features(X_train, X_test, *feats, LAYER)
    assert verdict.ok, verdict
    assert check_l2_features(l2_normalize(feats[0][LAYER]), l2_normalize(feats[1][LAYER]), *feats).ok
    # float64 and lists are fine too
    assert check_l2_features(X_train.astype(np.float64), X_test.tolist(), *feats, LAYER).ok


def test_l2_usual_mistakes(feats):
    train, test = feats
    X_train, X_test = normalised(feats)
    cols = train[LAYER] / np.linalg.norm(train[LAYER], axis=0, keepdims=True)
    zero = X_train.copy()
    zero[3] = 0
    nan = X_train.copy()
    nan[1] = np.nan
    perm = X_train[np.random.default_rng(1).permutation(len(X_train))]
    cases = [
        ((train[LAYER], X_test), "not normalised"),
        ((cols, X_test), "columns have unit length"),
        ((zero, X_test), "all-zero row"),
        ((nan, X_test), "NaN"),
        ((X_train.T, X_test), "transpose"),
        ((X_train[:-1], X_test), "one row per image"),
        ((X_train[:, :-1], X_test), "values per row"),
        ((perm, X_test), "another order"),
        ((X_train, X_test * 2), "X_test"),
        ((X_train[0], X_test), "matrix"),
        (("features", X_test), "NumPy array"),
        ((X_train, X_train[::-1].copy()), "X_test"),
    ]
    for (a, b), hint in cases:
        verdict = check_l2_features(a, b, train, test, LAYER)
        assert not verdict.ok, hint
        assert hint in verdict.message, (hint, verdict)


def test_l2_swapped_splits():
    train, test = make_features(n_per_class=(20, 20))
    X_train, X_test = normalised((train, test))
    verdict = check_l2_features(X_test, X_train, train, test, LAYER)
    assert not verdict.ok and "other split" in verdict.message


def test_l2_other_unit_rows():
    train, test = make_features()
    other, _ = make_features(seed=5)
    verdict = check_l2_features(l2_normalize(other[LAYER]), normalised((train, test))[1], train, test)
    assert not verdict.ok and "not the normalised features" in verdict.message


# ---------------------------------------------------------------- SVM accuracy
def sk_accuracy(Xfit, yfit, Xscore, yscore, C=1.0, random_state=0):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=C, random_state=random_state, max_iter=10_000).fit(Xfit, yfit).score(Xscore, yscore)


def test_svm_right_answer_passes(feats):
    train, test = feats
    X_train, X_test = normalised(feats)
    acc = sk_accuracy(X_train, train.labels, X_test, test.labels)
    assert acc < 0.97  # the generated data leave room between right and wrong answers
    verdict = check_svm_accuracy(acc, train, test, LAYER)
    assert verdict.ok, verdict
    # another random_state is fine; so is a numpy float
    assert check_svm_accuracy(np.float64(sk_accuracy(X_train, train.labels, X_test, test.labels,
                                                     random_state=3)), train, test).ok


def test_svm_usual_mistakes(feats):
    train, test = feats
    X_train, X_test = normalised(feats)
    ytr, yte = train.labels, test.labels
    scored_on_train = sk_accuracy(X_train, ytr, X_train, ytr)
    fit_on_test = sk_accuracy(X_test, yte, X_train, ytr)
    test_on_test = sk_accuracy(X_test, yte, X_test, yte)
    cases = [
        (scored_on_train, "scored on the images it was fitted on"),
        (fit_on_test, "fitted on the test split"),
        (test_on_test, "fitted and scored on the test split"),
        (1.0, "fitted on"),
        (100 * sk_accuracy(X_train, ytr, X_test, yte), "percentage"),
        ("0.9", "should be a number"),
        (None, "should be a number"),
        (True, "should be a number"),
        (-0.2, "between 0 and 1"),
        (0.2, "points away"),
    ]
    for value, hint in cases:
        verdict = check_svm_accuracy(value, train, test, LAYER)
        assert not verdict.ok, hint
        assert hint in verdict.message, (hint, verdict)


def test_svm_not_normalised_is_named():
    # rows of very different lengths: the unnormalised SVM is clearly worse
    train, test = make_features(seed=2)
    rng = np.random.default_rng(3)
    for f in (train, test):
        f.arrays[LAYER] = f.arrays[LAYER] * rng.uniform(0.01, 100, size=(len(f.labels), 1)).astype(np.float32)
    ref = svm_fit_score(train[LAYER], train.labels, test[LAYER], test.labels).accuracy
    raw = svm_fit_score(train[LAYER], train.labels, test[LAYER], test.labels, l2=False).accuracy
    assert abs(ref - raw) > 0.02
    verdict = check_svm_accuracy(raw, train, test, LAYER)
    assert not verdict.ok and "unnormalised" in verdict.message


# ---------------------------------------------------------------- C search (05)
CS = [0.001, 0.01, 0.1, 1.0, 10.0]


@pytest.fixture(scope="module")
def cs_feats():
    """Like notebook 05's `ci` profile: 15 classes, 20 images per class and split,
    accuracies about 0.85, so that an honest search and the leaks give distinct curves."""
    return make_features(n_per_class=(20, 20), k=15, d=300, sep=0.6)


def test_c_search_by_cross_validation_passes(cs_feats):
    train, test = cs_feats
    best, scores = search_C(train[LAYER], train.labels, CS)
    assert check_c_search(best, scores, train, test, LAYER).ok
    # the notebook's way: cross_val_score with the same folds
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import LinearSVC

    X = l2_normalize(train[LAYER])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    mine = {C: cross_val_score(LinearSVC(C=C, random_state=0), X, train.labels, cv=folds).mean()
            for C in CS}
    assert check_c_search(max(mine, key=mine.get), mine, train, test, LAYER).ok
    # other folds (no shuffling) give other, close scores: still fine
    theirs = {C: cross_val_score(LinearSVC(C=C, random_state=0), X, train.labels, cv=4).mean()
              for C in CS}
    assert check_c_search(max(theirs, key=theirs.get), theirs, train, test, LAYER).ok


def test_c_tuned_on_the_test_split_is_flagged(cs_feats):
    train, test = cs_feats
    on_test = {C: svm_fit_score(train[LAYER], train.labels, test[LAYER], test.labels, C=C).accuracy
               for C in CS}
    verdict = check_c_search(max(on_test, key=on_test.get), on_test, train, test, LAYER)
    assert not verdict.ok and "tuned on the test split" in verdict.message
    # the same done with plain scikit-learn
    X_train, X_test = normalised(cs_feats)
    sk = {C: sk_accuracy(X_train, train.labels, X_test, test.labels, C=C) for C in CS}
    verdict = check_c_search(max(sk, key=sk.get), sk, train, test, LAYER)
    assert not verdict.ok and "tuned on the test split" in verdict.message


def test_c_search_other_mistakes(cs_feats):
    train, test = cs_feats
    best, scores = search_C(train[LAYER], train.labels, CS)
    worst = min(scores, key=scores.get)
    X_train, _ = normalised(cs_feats)
    on_train = {C: sk_accuracy(X_train, train.labels, X_train, train.labels, C=C) for C in CS}
    cases = [
        ((worst if worst != best else 123.0, scores), "best_C"),
        ((best, [0.9, 0.8]), "dict"),
        ((best, {}), "dict"),
        ((best, {best: 0.9}), "several values"),
        ((best, {C: 90.0 for C in CS}), "between 0 and 1"),
        (("ten", scores), "number"),
        ((max(on_train, key=on_train.get), on_train), "scored on the images it was fitted on"),
        ((best, {C: 0.2 for C in CS}), "far from a cross-validation"),
    ]
    for (b, s), hint in cases:
        verdict = check_c_search(b, s, train, test, LAYER)
        assert not verdict.ok, hint
        assert hint in verdict.message, (hint, verdict)


# ---------------------------------------------------------------- trained head (05)
def test_head_band():
    assert check_head_accuracy(0.90, 0.903).ok
    assert check_head_accuracy(0.86, 0.903).ok
    low = check_head_accuracy(0.70, 0.903)
    assert not low.ok and "below" in low.message
    high = check_head_accuracy(1.0, 0.903)
    assert not high.ok and "training rows" in high.message
    assert not check_head_accuracy("0.9", 0.9).ok
    # the verdict never shows the numbers
    assert "0.9" not in str(check_head_accuracy(0.90, 0.903))
