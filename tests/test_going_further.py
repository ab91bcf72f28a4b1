"""tplib.going_further: the test-tuning bias over re-splits, labels and times, notebook 05's checks.

Small generated features (5 classes, rows of varied length so that L2 normalisation
matters), fast enough for the default test run; the notebook's own answers run in the
answer corpus (tests/answers/05_*).
"""
import time

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer
from sklearn.svm import LinearSVC

from tplib import checks
from tplib import going_further as gf
from tplib.features import Features
from tplib.svm import l2_normalize, svm_fit_score

K, PER_CLASS, D = 5, 16, 80  # 80 rows per split
LAYERS = ["low", "mid", "high"]


def _split(rng, centres, per_class, noise):
    X = {layer: [] for layer in LAYERS}
    y = np.repeat(np.arange(K), per_class)
    for layer, c in centres.items():
        rows = c[y] + noise[layer] * rng.standard_normal((len(y), c.shape[1]))
        rows *= rng.lognormal(0.0, 1.0, size=(len(y), 1))  # lengths vary: L2 changes the answer
        X[layer] = rows.astype(np.float32)
    return Features(arrays=X, labels=y.astype(np.int64), paths=[f"{i}.jpg" for i in range(len(y))])


@pytest.fixture(scope="module")
def feats():
    rng = np.random.RandomState(0)
    centres = {layer: rng.standard_normal((K, D)) for layer in LAYERS}
    noise = {"low": 7.0, "mid": 5.0, "high": 3.5}
    return _split(rng, centres, PER_CLASS, noise), _split(rng, centres, PER_CLASS, noise)


# ------------------------------------------------------------------ the bias
def test_tuning_bias_shapes_and_signs(feats):
    train, test = feats
    bias = gf.tuning_bias(train, test, "mid", n_splits=6, folds=2, seed=1)
    assert bias.n_splits == 6 and bias.n_train == len(train.labels) and bias.n_test == len(test.labels)
    for arr in (bias.chosen_C, bias.honest, bias.best_C, bias.optimistic):
        assert arr.shape == (6,) and arr.dtype == np.float64
    assert set(bias.chosen_C) <= set(gf.BIAS_CS) and set(bias.best_C) <= set(gf.BIAS_CS)
    assert np.all(bias.gaps >= 0)  # the chosen C is in the grid
    assert np.all((bias.honest > 0.2) & (bias.optimistic <= 1.0))
    assert bias.mean_gap == pytest.approx(float(np.mean(bias.optimistic - bias.honest)))
    assert bias.n_positive == int(np.sum(bias.gaps > 1e-12))


def test_tuning_bias_is_positive_on_noisy_features(feats):
    train, test = feats
    bias = gf.tuning_bias(train, test, "low", n_splits=8, folds=2, seed=0)
    assert bias.mean_gap > 0 and bias.n_positive >= 1


def test_tuning_bias_is_seeded(feats):
    train, test = feats
    a = gf.tuning_bias(train, test, "low", Cs=(0.1, 1.0, 10.0), n_splits=3, folds=2, seed=3)
    b = gf.tuning_bias(train, test, "low", Cs=(0.1, 1.0, 10.0), n_splits=3, folds=2, seed=3)
    c = gf.tuning_bias(train, test, "low", Cs=(0.1, 1.0, 10.0), n_splits=3, folds=2, seed=4)
    assert np.array_equal(a.honest, b.honest) and np.array_equal(a.optimistic, b.optimistic)
    assert not (np.array_equal(a.honest, c.honest) and np.array_equal(a.chosen_C, c.chosen_C))


def test_span_basis_keeps_the_svm_predictions(feats):
    """The rotation into the training rows' span changes nothing the SVM predicts."""
    train, test = feats
    Xa, Xb = l2_normalize(train["mid"]).astype(np.float64), l2_normalize(test["mid"]).astype(np.float64)
    basis = gf._span_basis(Xa)
    assert basis.shape == (D, min(Xa.shape))
    for C in (0.1, 1.0, 10.0):
        plain = LinearSVC(C=C, dual=True, random_state=0, max_iter=10_000).fit(Xa, train.labels)
        small = LinearSVC(C=C, dual=True, random_state=0, max_iter=10_000).fit(Xa @ basis, train.labels)
        assert np.mean(plain.predict(Xb) == small.predict(Xb @ basis)) >= 0.98


def test_tuning_bias_rejects_bad_options(feats):
    train, test = feats
    with pytest.raises(Exception, match="at least 2 values"):
        gf.tuning_bias(train, test, "mid", Cs=(1.0,), n_splits=1)
    with pytest.raises(Exception, match="n_splits"):
        gf.tuning_bias(train, test, "mid", n_splits=0)
    with pytest.raises(Exception, match="no features for layer"):
        gf.tuning_bias(train, test, "nope", n_splits=1)


def test_plot_tuning_bias(feats):
    train, test = feats
    bias = gf.tuning_bias(train, test, "low", Cs=(0.1, 1.0, 10.0), n_splits=4, folds=2)
    fig = gf.plot_tuning_bias(bias, title="generated features")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "generated features"
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert labels and labels[0].startswith("mean ")


# ------------------------------------------------------------------ labels and times
class _Spec:
    title = "EfficientNet-Lite0"


class _Backbone:
    def __init__(self, name):
        self.name, self.spec = name, _Spec()


class _Dataset:
    def __init__(self, subset_rule, train, test):
        self.title, self.subset_rule, self.train, self.test = "15 Scene", subset_rule, train, test


def test_run_label_names_network_and_subset(feats):
    train, test = feats
    label = gf.run_label(_Backbone("efficientnet_lite0"), _Dataset("ci profile: ...", train, test))
    assert label.startswith("EfficientNet-Lite0 (not VGG16), 15 Scene, ")
    assert label.endswith(f"subset: {PER_CLASS} + {PER_CLASS} images per class")
    vgg = _Backbone("vgg16")
    vgg.spec = type("S", (), {"title": "VGG16"})()
    assert gf.run_label(vgg, _Dataset("", train, test)) == "VGG16, 15 Scene"


def test_extraction_time_never_a_bare_zero(feats):
    train, _ = feats
    cached = Features(arrays=train.arrays, labels=train.labels, paths=train.paths, from_cache=True,
                      seconds=0.004)
    text = gf.extraction_time(cached)
    assert text.startswith("from cache") and "0.0 s" not in text
    cold = Features(arrays=train.arrays, labels=train.labels, paths=train.paths, seconds=4.0,
                    n_computed=80)
    assert gf.extraction_time(cold) == "extracted in 4.0 s (20.0 img/s)"


def test_first_per_class():
    y = np.array([2, 0, 1, 0, 2, 1, 0, 2])
    assert gf.first_per_class(y, 1).tolist() == [0, 1, 2]
    assert gf.first_per_class(y, 2).tolist() == [0, 1, 2, 3, 4, 5]
    assert gf.first_per_class(y, 9).tolist() == list(range(8))
    with pytest.raises(Exception, match="k must be"):
        gf.first_per_class(y, 0)


# ------------------------------------------------------------------ check_layer_sweep
def _sweep(train, test, fit="train", score="test", l2=True, layer_of=None, scale=1.0):
    out = {}
    for layer in LAYERS:
        src = layer_of or layer
        data = {"train": (train[src], train.labels), "test": (test[src], test.labels)}
        (Xf, yf), (Xs, ys) = data[fit], data[score]
        if l2:
            Xf, Xs = l2_normalize(Xf), l2_normalize(Xs)
        out[layer] = scale * LinearSVC(C=1, random_state=0, max_iter=10_000).fit(Xf, yf).score(Xs, ys)
    return out


def test_check_layer_sweep_right(feats):
    train, test = feats
    v = checks.check_layer_sweep(_sweep(train, test), train, test, LAYERS)
    assert v.ok and "3 layers" in v.message
    results = {layer: svm_fit_score(train[layer], train.labels, test[layer], test.labels)
               for layer in LAYERS}
    assert checks.check_layer_sweep(results, train, test, LAYERS).ok  # SVMResult values too


@pytest.mark.parametrize("mistake, hint", [
    (dict(scale=100.0), "percentages"),
    (dict(layer_of="high"), "reuses one layer"),
    (dict(fit="test", score="train"), "swapped"),
    (dict(fit="test", score="test"), "fitted on"),  # 1.0: as scored on its own images
    (dict(fit="train", score="train"), "scored on the images it was fitted on"),
    (dict(l2=False), "L2"),
])
def test_check_layer_sweep_names_the_mistake(feats, mistake, hint):
    train, test = feats
    v = checks.check_layer_sweep(_sweep(train, test, **mistake), train, test, LAYERS)
    assert not v.ok and hint in v.message, v


def test_check_layer_sweep_missing_and_odd(feats):
    train, test = feats
    good = _sweep(train, test)
    v = checks.check_layer_sweep({k: good[k] for k in LAYERS[1:]}, train, test, LAYERS)
    assert not v.ok and "no accuracy for layer(s) low" in v.message
    v = checks.check_layer_sweep(dict(good, extra=0.5), train, test, LAYERS)
    assert not v.ok and "unknown layer" in v.message
    v = checks.check_layer_sweep({i: a for i, a in enumerate(good.values())}, train, test, LAYERS)
    assert not v.ok and "layer names" in v.message
    for odd in (None, "0.9", [0.9], {}, float("nan")):
        v = checks.check_layer_sweep(odd, train, test, LAYERS)
        assert not v.ok
    v = checks.check_layer_sweep(dict(good, low="high"), train, test, LAYERS)
    assert not v.ok and "should be a number" in v.message
    v = checks.check_layer_sweep(good, train, test, LAYERS + ["absent"])
    assert not v.ok and "not in these features" in v.message
    v = checks.check_layer_sweep(good, None, test, LAYERS)  # context validated by the guard
    assert not v.ok and "train should be" in v.message
    # the expected values never appear in a verdict
    ref = _sweep(train, test)
    wrong = {k: 0.5 for k in LAYERS}
    v = checks.check_layer_sweep(wrong, train, test, LAYERS)
    assert not v.ok and all(f"{a:.3f}" not in v.message for a in ref.values())


# ------------------------------------------------------------------ check_pca_svm
def _pca_answer(fit_on="train", l2=True, clock="right"):
    def pca_svm_score(n, X_train, y_train, X_test, y_test):
        if l2:
            X_train, X_test = l2_normalize(X_train), l2_normalize(X_test)
        rows = {"train": X_train, "test": X_test, "both": np.vstack([X_train, X_test])}[fit_on]
        start = time.perf_counter()
        if clock == "nothing":
            seconds = time.perf_counter() - start
        pca = PCA(n, random_state=0).fit(rows)
        svm = LinearSVC(C=1, random_state=0, max_iter=10_000).fit(pca.transform(X_train), y_train)
        if clock == "right":
            seconds = time.perf_counter() - start
        elif clock == "stamp":
            seconds = time.perf_counter() + 1e5
        return svm.score(pca.transform(X_test), y_test), seconds
    return pca_svm_score


def _results(fn, train, test, ns=(4, 8)):
    return {n: fn(n, train["mid"], train.labels, test["mid"], test.labels) for n in ns}


def test_check_pca_svm_right(feats):
    train, test = feats

    def pipeline(n, X_train, y_train, X_test, y_test):
        model = make_pipeline(Normalizer(), PCA(n, random_state=0),
                              LinearSVC(C=1, random_state=0, max_iter=10_000))
        start = time.perf_counter()
        model.fit(X_train, y_train)
        return model.score(X_test, y_test), time.perf_counter() - start

    v = checks.check_pca_svm(pipeline, _results(pipeline, train, test), train, test, "mid")
    assert v.ok, v
    v = checks.check_pca_svm(_pca_answer(), _results(_pca_answer(), train, test), train, test, "mid")
    assert v.ok, v


@pytest.mark.parametrize("answer, hint", [
    (dict(fit_on="both"), "leaked"),
    (dict(fit_on="test"), "fitted on the test rows"),
    (dict(l2=False), "L2"),
    (dict(clock="stamp"), "duration"),
])
def test_check_pca_svm_names_the_mistake(feats, answer, hint):
    train, test = feats
    fn = _pca_answer(**answer)
    v = checks.check_pca_svm(fn, _results(_pca_answer(), train, test), train, test, "mid")
    assert not v.ok and hint in v.message, v


def test_check_pca_svm_timing_and_results(feats):
    train, test = feats
    right = _pca_answer()
    results = _results(right, train, test)
    v = checks.check_pca_svm(right, {n: (a, 0.0) for n, (a, _) in results.items()}, train, test, "mid")
    assert not v.ok and "0.0 s" in v.message
    v = checks.check_pca_svm(_pca_answer(clock="nothing"), results, train, test, "mid")
    assert not v.ok and "clock" in v.message
    n_train = len(train.labels)
    v = checks.check_pca_svm(right, {**results, n_train + 5: (0.9, 0.1)}, train, test, "mid")
    assert not v.ok and f"at most {n_train}" in v.message
    v = checks.check_pca_svm(right, {n: a for n, (a, _) in results.items()}, train, test, "mid")
    assert not v.ok and "(test accuracy, fit seconds)" in v.message

    def percent(*args):
        acc, s = right(*args)
        return 100 * acc, s

    assert "percentage" in checks.check_pca_svm(percent, results, train, test, "mid").message

    def raises(*args):
        raise ValueError("n_components=64 must be between 0 and min(n_samples, n_features)")

    v = checks.check_pca_svm(raises, results, train, test, "mid")
    assert not v.ok and "raised ValueError" in v.message
    assert not checks.check_pca_svm(None, results, train, test, "mid").ok


# ------------------------------------------------------------------ check_experiment
def test_check_experiment():
    h = "Logistic regression will score within two points of the SVM on these features."
    assert checks.check_experiment(h, {"svm": 0.90, "logreg": 0.91}).ok
    assert "write the hypothesis" in checks.check_experiment("", {"a": 0.9, "b": 0.8}).message
    assert "at least 8 words" in checks.check_experiment("it works better", {"a": 0.9, "b": 0.8}).message
    assert "at least two settings" in checks.check_experiment(h, {"a": 0.9}).message
    assert "percentage" in checks.check_experiment(h, {"a": 90.0, "b": 80.0}).message
    assert "should be a test accuracy" in checks.check_experiment(h, {"a": "high", "b": 0.8}).message
    assert not checks.check_experiment(h, {}).ok and not checks.check_experiment(None, None).ok
