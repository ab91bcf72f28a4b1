"""Notebook 05's experiments and self-checks: the layer sweep, PCA, the test-tuning bias.

- :func:`tuning_bias` repeats the C search over random re-splits of cached features and
  measures how much better the best test accuracy over a grid of C looks than the test
  accuracy of the C chosen by cross-validation (the optimism of tuning on the test
  split); :func:`plot_tuning_bias` draws it.
- :func:`run_label` names the network and the data subset for titles and prints;
  :func:`extraction_time` says how long features took, or that they came from the cache.
- :func:`check_layer_sweep`, :func:`check_pca_svm` and :func:`check_experiment` are the
  exercises' self-checks, written to :mod:`tplib.checks`' conventions (a
  :class:`~tplib.checks.Verdict`, never an exception, never the expected value).

Imports only downward (``svm``, ``checks``, ``profile``); nothing in tplib imports it.
Taught in notebook 05.
"""
import math
import numbers
import time
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .checks import Kind, Verdict, _call, _guard, _raised, _what, failed, passed
from .errors import InputError
from .svm import RANDOM_STATE, check_C, check_count, check_xy, l2_normalize

#: The C grid of :func:`tuning_bias`: 7 values, half a decade apart, 0.01 to 10 (on L2
#: rows nothing changes past about 10, and cross-validation never picks less than 0.01).
BIAS_CS = (0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0)


# ============================================================ labels and times
def run_label(backbone, dataset) -> str:
    """'EfficientNet-Lite0 (not VGG16), 15 Scene, ci subset: 20 + 20 images per class'.

    Names the network (and that it is not the lab's VGG16) and the data (and the subset
    the run profile took, with the train + test images per class), for figure titles
    and printed results. The lab's own setting gives just 'VGG16, 15 Scene'.
    """
    from .profile import active_profile

    net = backbone.spec.title
    if backbone.name != "vgg16":
        net += " (not VGG16)"
    data = getattr(dataset, "title", "") or getattr(dataset, "name", "data")
    if getattr(dataset, "subset_rule", ""):
        def per_class(split):
            counts = np.bincount(np.asarray(split.labels)[np.asarray(split.labels) >= 0])
            counts = counts[counts > 0]
            if len(counts) == 0:
                return "0"
            return str(counts[0]) if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"

        data += (f", {active_profile().name} subset: {per_class(dataset.train)} + "
                 f"{per_class(dataset.test)} images per class")
    return f"{net}, {data}"


def extraction_time(features) -> str:
    """How long ``features`` (a :class:`tplib.features.Features`) took, in words.

    'from cache (read in 0.04 s)' for a cache hit, never a bare '0.0 s'; else
    'extracted in 12.3 s (48.6 img/s)'.
    """
    if features.from_cache:
        return f"from cache (read in {features.seconds:.2f} s; not an extraction time)"
    rate = features.images_per_second
    speed = f" ({rate:.1f} img/s)" if math.isfinite(rate) else ""
    return f"extracted in {features.seconds:.1f} s{speed}"


def first_per_class(labels, k: int) -> np.ndarray:
    """Row indices (ascending, int64) of the first ``k`` rows of every class in ``labels`` (n,).

    A smaller training set with the same classes, e.g. ``X[first_per_class(y, 5)]``.
    """
    k = check_count(k, "k")
    labels = np.asarray(labels)
    keep = [np.flatnonzero(labels == c)[:k] for c in np.unique(labels[labels >= 0])]
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, np.int64)


# ============================================================ the test-tuning bias
@dataclass
class TuningBias:
    """What :func:`tuning_bias` measured over R random re-splits.

    Attributes:
        Cs: the C grid (G values).
        chosen_C: (R,) float64, the C chosen by cross-validation on each split's
            training part.
        honest: (R,) float64, the test accuracy of that C (the number to report).
        best_C: (R,) float64, the C with the best test accuracy (first of ties).
        optimistic: (R,) float64, the best test accuracy over the grid.
        n_train, n_test: images in each split's two parts; folds: cross-validation folds.
        seconds: wall-clock time of the whole computation.
    """

    Cs: tuple
    chosen_C: np.ndarray
    honest: np.ndarray
    best_C: np.ndarray
    optimistic: np.ndarray
    n_train: int
    n_test: int
    folds: int
    seconds: float

    @property
    def gaps(self) -> np.ndarray:
        """(R,) optimistic - honest: never negative (the chosen C is in the grid)."""
        return self.optimistic - self.honest

    @property
    def mean_gap(self) -> float:
        return float(self.gaps.mean())

    @property
    def n_splits(self) -> int:
        return len(self.gaps)

    @property
    def n_positive(self) -> int:
        """Splits where tuning on the test split would have reported a better number."""
        return int((self.gaps > 1e-12).sum())


def _span_basis(X: np.ndarray) -> np.ndarray:
    """(d, r) orthonormal basis of the row space of X (n, d), r <= n."""
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    keep = s > s[0] * 1e-10 if len(s) else s > 0
    return vt[keep].T


def tuning_bias(train, test, layer: str, Cs: Sequence[float] = BIAS_CS, *, n_splits: int = 10,
                folds: int = 3, seed: int = 0) -> TuningBias:
    """The optimism of choosing C on the test split, over random re-splits.

    The rows of both splits are pooled, L2-normalised, and split again ``n_splits``
    times at random (seeded, stratified) into parts of the original sizes. On each
    split: the C chosen by ``folds``-fold cross-validation on the training part, its
    test accuracy (honest), and the best test accuracy over all of ``Cs``
    (optimistic). Each classifier is ``LinearSVC(C, random_state=0)`` with the dual
    solver, as :func:`tplib.svm_fit_score` picks for fewer images than features.

    A linear SVM's weights lie in the span of its training rows, so the rows are first
    expressed in an orthonormal basis of that span (at most n_train values instead of
    d): the same classifier and the same predictions, several times faster.

    Args:
        train, test: :class:`tplib.features.Features` (cached features of one run).
        layer: the layer to read, e.g. ``backbone.default_layer``.
        Cs: the C grid (at least 2 values).
        n_splits: R, the number of re-splits; folds: cross-validation folds (>= 2).
        seed: seeds the re-splits.

    Returns:
        :class:`TuningBias`. About a second per split for 300 + 300 images of 1,280
        values on one CPU core (the large Cs take most of it).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.svm import LinearSVC

    t0 = time.perf_counter()
    n_splits = check_count(n_splits, "n_splits")
    folds = check_count(folds, "folds", minimum=2)
    Cs = tuple(check_C(c) for c in Cs)
    if len(Cs) < 2:
        raise InputError("Cs needs at least 2 values of C to choose from, e.g. tplib.going_further.BIAS_CS")
    X_tr, y_tr = check_xy(train[layer], train.labels, "train")
    X_te, y_te = check_xy(test[layer], test.labels, "test")
    X = l2_normalize(np.vstack([X_tr, X_te])).astype(np.float64)
    y = np.concatenate([y_tr, y_te])
    n_train, n_test = len(y_tr), len(y_te)
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    if smallest < 2 * folds:
        raise InputError(f"the smallest class has {smallest} images in all: too few for "
                         f"{folds}-fold cross-validation on half of them; use folds=2")
    rng = np.random.RandomState(seed)
    out = {k: [] for k in ("chosen_C", "honest", "best_C", "optimistic")}

    def svm(C):
        return LinearSVC(C=C, dual=True, random_state=RANDOM_STATE, max_iter=10_000)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(n_splits):
            a, b = train_test_split(np.arange(len(y)), train_size=n_train, test_size=n_test,
                                    stratify=y, random_state=rng.randint(2**31 - 1))
            basis = _span_basis(X[a])
            Xa, Xb, ya, yb = X[a] @ basis, X[b] @ basis, y[a], y[b]
            cv = StratifiedKFold(folds, shuffle=True, random_state=RANDOM_STATE)
            parts = list(cv.split(Xa, ya))
            cv_score, test_score = [], []
            for C in Cs:
                cv_score.append(np.mean([svm(C).fit(Xa[i], ya[i]).score(Xa[j], ya[j])
                                         for i, j in parts]))
                test_score.append(svm(C).fit(Xa, ya).score(Xb, yb))
            chosen, best = int(np.argmax(cv_score)), int(np.argmax(test_score))
            out["chosen_C"].append(Cs[chosen])
            out["honest"].append(test_score[chosen])
            out["best_C"].append(Cs[best])
            out["optimistic"].append(test_score[best])
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    return TuningBias(Cs=Cs, n_train=n_train, n_test=n_test, folds=folds,
                      seconds=time.perf_counter() - t0, **arrays)


def plot_tuning_bias(bias: TuningBias, title: str | None = None):
    """Per split, the honest and the optimistic test accuracy; beside it, the gaps.

    Left: one column per re-split (sorted by the honest accuracy), a dot for the test
    accuracy of the C chosen by cross-validation and a triangle for the best test
    accuracy over the grid, joined by a line. Right: the gap of each split in test
    images, with its mean. Returns the Figure (2 axes).
    """
    from matplotlib.figure import Figure

    order = np.argsort(bias.honest, kind="stable")
    x = np.arange(1, bias.n_splits + 1)
    # not a pyplot figure: shown once, as the cell's value (like tplib.viz's figures)
    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    ax.vlines(x, bias.honest[order], bias.optimistic[order], color="grey", linewidth=1)
    ax.plot(x, bias.honest[order], "o", color="tab:blue",
            label=f"C chosen by {bias.folds}-fold CV (mean {bias.honest.mean():.3f})")
    ax.plot(x, bias.optimistic[order], "^", color="tab:red",
            label=f"best C on the test split (mean {bias.optimistic.mean():.3f})")
    ax.set_xlabel(f"re-split of the pooled images ({bias.n_train} train + {bias.n_test} test), "
                  "sorted")
    ax.set_ylabel("Test accuracy")
    ax.set_xticks(x)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    images = np.rint(bias.gaps * bias.n_test).astype(int)
    values, counts = np.unique(images, return_counts=True)
    ax2.bar(values, counts, width=0.8, color="tab:red", alpha=0.7)
    mean = bias.mean_gap * bias.n_test
    ax2.axvline(mean, color="black", linestyle="--",
                label=f"mean {mean:.2f} images ({100 * bias.mean_gap:+.2f} points)")
    ax2.set_xlabel("gap per re-split (test images)")
    ax2.set_ylabel("re-splits")
    ax2.set_xticks(np.arange(0, max(int(values.max()), 1) + 1))
    ax2.yaxis.get_major_locator().set_params(integer=True)
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=8, loc="upper right")
    fig.suptitle(title if title is not None else "Choosing C on the test split: an optimistic number",
                 fontsize=11)
    fig.tight_layout()
    return fig


# ============================================================ self-checks
# Kinds (see tplib.checks.Kind): the student's answers, then what the notebook supplies.
def _is_split(value) -> bool:
    return isinstance(getattr(value, "arrays", None), dict) and hasattr(value, "labels")


AccuracyDict = Kind("a dict {layer: test accuracy}", lambda v: isinstance(v, Mapping) and bool(v))
PcaResults = Kind("a dict {n_components: (test accuracy, fit seconds)}",
                  lambda v: isinstance(v, Mapping) and bool(v))
Function = Kind("a function", lambda v: callable(v) and not isinstance(v, type))
Text = Kind("a sentence (a str)", lambda v: isinstance(v, str) and bool(v.strip()))
Results = Kind("a dict {setting: test accuracy}", lambda v: isinstance(v, Mapping) and bool(v))
Split = Kind("the Features of one split (e.g. sweep_train)", _is_split, context=True)
Layers = Kind("a list of layer names", lambda v: isinstance(v, (list, tuple)) and bool(v)
              and all(isinstance(x, str) for x in v), context=True)
LayerName = Kind("a layer name (a str)", lambda v: isinstance(v, str), context=True)


def _accuracy_of(value):
    """A float from a number, a 0-d array or an object with ``.accuracy``; else None."""
    if hasattr(value, "accuracy") and not isinstance(value, (numbers.Number, np.ndarray)):
        value = value.accuracy
    if isinstance(value, (bool, np.bool_)):
        return None
    if hasattr(value, "shape") and tuple(getattr(value, "shape", ())) == () and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _missing_layers(train, test, layers):
    gone = [layer for layer in layers if layer not in train.arrays or layer not in test.arrays]
    if gone:
        return failed(f"layer(s) {', '.join(map(repr, gone))} are not in these features (they hold "
                      f"{', '.join(train.arrays)})")
    return None


def check_layer_sweep(scores: AccuracyDict, train: Split, test: Split, layers: Layers) -> Verdict:
    """Notebook 05: ``{layer: test accuracy}`` of ``LinearSVC(C=1)`` on every layer.

    Args:
        scores: the student's dict, one accuracy (a fraction) per layer of ``layers``;
            an :class:`tplib.svm.SVMResult` per layer is accepted too.
        train, test: the sweep's :class:`tplib.features.Features` (all layers).
        layers: the layers the loop had to cover.

    The reference is :func:`tplib.svm_fit_score` per layer (L2 rows, C=1, fixed seed);
    each accuracy within 1 point (at least 2 test images) passes. Names a missing or
    unknown layer, percentages, one layer's features reused for every layer, an SVM
    fitted on the test split or scored on its own training images, train and test
    swapped, and rows that were not L2-normalised.
    """
    from .svm import fit_and_score, make_svm, svm_fit_score

    if not isinstance(scores, Mapping) or not scores:
        return failed(f"scores should be a dict {{layer: test accuracy}}, got {_what(scores)}")
    bad = _missing_layers(train, test, layers)
    if bad is not None:
        return bad
    keys = list(scores)
    if not all(isinstance(k, str) for k in keys):
        return failed("the keys should be the layer names (the loop's `layer`), e.g. "
                      f"{layers[0]!r}, not {_what(keys[0])}")
    missing = [layer for layer in layers if layer not in scores]
    if missing:
        return failed(f"no accuracy for layer(s) {', '.join(missing)}: the loop must cover every "
                      "layer in LAYERS")
    extra = [k for k in keys if k not in layers]
    if extra:
        return failed(f"unknown layer name(s) {', '.join(map(repr, extra))}: use the names in LAYERS")
    values = {}
    for layer in layers:
        v = _accuracy_of(scores[layer])
        if v is None or not math.isfinite(v):
            return failed(f"the accuracy of {layer!r} should be a number (e.g. svm.score(X_test, "
                          f"y_test)), got {_what(scores[layer])}")
        values[layer] = v
    if any(1.0 < v <= 100.0 for v in values.values()):
        return failed("accuracies as percentages: give fractions between 0 and 1 (svm.score gives one)")
    if any(not 0.0 <= v <= 1.0 for v in values.values()):
        return failed("every accuracy must lie between 0 and 1")
    got = np.array([values[layer] for layer in layers])
    ytr, yte = train.labels, test.labels
    tol = max(0.01, 2.0 / len(yte))
    ref = np.array([svm_fit_score(train[la], ytr, test[la], yte, C=1).accuracy for la in layers])
    if np.all(np.abs(got - ref) <= tol):
        return passed(f"the test accuracy of all {len(layers)} layers as expected (L2 rows, "
                      "LinearSVC(C=1) fitted on the training split, scored on the test split)")

    def variant(fit, score, l2=True):
        acc = []
        for la in layers:
            data = {"train": (train[la], ytr), "test": (test[la], yte)}
            (Xf, yf), (Xs, ys) = data[fit], data[score]
            if l2:
                Xf, Xs = l2_normalize(Xf), l2_normalize(Xs)
            acc.append(fit_and_score(make_svm(1.0), Xf, yf, Xs, ys).accuracy)
        return np.array(acc)

    suspects = [
        (lambda: variant("train", "train"), "the SVM was scored on the images it was fitted on: "
         "fit on the training rows, score on the test rows"),
        (lambda: variant("test", "train"), "train and test swapped: fit on sweep_train's rows and "
         "y_train, score on sweep_test's rows and y_test"),
        (lambda: variant("test", "test"), "the SVM was fitted on the test split: fit on the "
         "training rows (sweep_train[layer], y_train)"),
        (lambda: variant("train", "test", l2=False), "this is what rows without L2 normalisation "
         "give: normalise each layer's rows (tplib.l2_normalize) before the SVM"),
    ]
    computed = [(fn(), hint) for fn, hint in suspects]
    for acc, hint in computed:
        if np.all(np.abs(got - acc) <= 1e-9):
            return failed(hint)
    if len(layers) > 1 and np.ptp(got) < 1e-12 and np.ptp(ref) > tol:
        return failed("every layer has the same accuracy: the loop reuses one layer's features; "
                      "read the loop's own layer, sweep_train[layer] and sweep_test[layer]")
    for acc, hint in computed:
        if np.all(np.abs(got - acc) <= tol):
            return failed(hint)
    wrong = [la for la, g, r in zip(layers, got, ref) if abs(g - r) > tol]
    return failed(f"the accuracy of {', '.join(wrong)} is more than {100 * tol:.1f} points away "
                  "from what these features give with L2 rows and LinearSVC(C=1) fitted on the "
                  "training split")


def _pca_reference(n, Xtr, ytr, Xte, yte, fit_on):
    """Test accuracy of L2 -> PCA(n) -> LinearSVC(C=1) with PCA fitted on ``fit_on``:
    "train" (the lab's), "both" (train + test), "test", or "no_l2" (train, raw rows)."""
    from sklearn.decomposition import PCA

    from .svm import fit_and_score, make_svm

    ntr, nte = l2_normalize(Xtr), l2_normalize(Xte)
    if fit_on == "no_l2":
        pca = PCA(n, random_state=RANDOM_STATE).fit(Xtr)
        return fit_and_score(make_svm(1.0), pca.transform(Xtr), ytr, pca.transform(Xte), yte).accuracy
    rows = {"train": ntr, "test": nte, "both": np.vstack([ntr, nte])}[fit_on]
    pca = PCA(n, random_state=RANDOM_STATE).fit(rows)
    return fit_and_score(make_svm(1.0), pca.transform(ntr), ytr, pca.transform(nte), yte).accuracy


def _pca_probe(seed: int = 0, per_class: int = 20, d: int = 24):
    """Generated rows on which each usual PCA mistake gives a very different accuracy.

    3 classes, 20 + 20 rows of 24 values: a large common offset, the classes on a
    circle in two dimensions, every row scaled by a random length (so only L2 rows show
    the classes to a 2-component PCA), and noise of large variance along one direction
    in the test rows only (so a PCA fitted on them keeps the noise). With 2 components:
    about 0.98 when PCA is fitted on the L2 training rows, 0.3 on train + test or on
    test, 0.5 without L2. Returns (X_train, y_train, X_test, y_test), float32 / int64.
    """
    rng = np.random.RandomState(seed)
    angle = 2 * np.pi * np.arange(3) / 3
    means = np.zeros((3, d))
    means[:, 1], means[:, 2] = 2 * np.cos(angle), 2 * np.sin(angle)

    def rows(noisy):
        y = np.repeat(np.arange(3), per_class)
        X = 10 * np.eye(d)[0] + means[y] + 0.3 * rng.standard_normal((len(y), d))
        if noisy:
            X[:, 5] += 30.0 * rng.standard_normal(len(y))
        X *= rng.lognormal(0.0, 1.0, size=(len(y), 1))
        return X.astype(np.float32), y.astype(np.int64)

    return (*rows(False), *rows(True))


def _run_pca_answer(fn, n, Xtr, ytr, Xte, yte):
    """(accuracy, seconds, wall seconds) from the student's function, or a Verdict."""
    t0 = time.perf_counter()
    try:
        out = _call(f"pca_svm_score({n}, X_train, y_train, X_test, y_test)", fn, n,
                    Xtr.copy(), ytr.copy(), Xte.copy(), yte.copy())
    except Exception as exc:  # noqa: BLE001 - the student's error, told in one line
        return _raised(f"pca_svm_score({n}, ...)", exc)
    wall = time.perf_counter() - t0
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return failed(f"pca_svm_score should return (test accuracy, fit seconds), got {_what(out)}")
    acc, seconds = _accuracy_of(out[0]), _accuracy_of(out[1])
    if acc is None or not math.isfinite(acc):
        return failed(f"the accuracy returned should be a number, got {_what(out[0])}")
    if 1.0 < acc <= 100.0:
        return failed("the accuracy is a percentage: return a fraction between 0 and 1 "
                      "(model.score gives one)")
    if not 0.0 <= acc <= 1.0:
        return failed("the accuracy must lie between 0 and 1")
    if seconds is None or not math.isfinite(seconds):
        return failed(f"the fit time returned should be a number of seconds, got {_what(out[1])}")
    return acc, seconds, wall


def check_pca_svm(pca_svm_score: Function, results: PcaResults, train: Split, test: Split,
                  layer: LayerName) -> Verdict:
    """Notebook 05: PCA then ``LinearSVC(C=1)``, fitted on the training rows, timed.

    Args:
        pca_svm_score: the student's function ``(n_components, X_train, y_train, X_test,
            y_test) -> (test accuracy, fit seconds)``. The check runs it (time-bounded)
            on generated rows where each usual mistake gives a very different accuracy
            (:func:`_pca_probe`), then on the real features with 16 components, and
            compares with the lab's reference, :func:`tplib.pca_svm` (L2 rows, PCA,
            the SVM; within 1 point, at least 2 test images, on the real features).
        results: the student's ``{n_components: (accuracy, seconds)}``.
        train, test: :class:`tplib.features.Features`; layer: the layer read.

    Names: PCA fitted on train + test (a leak), PCA fitted on the test split, no L2
    normalisation before PCA, more components than training images, a fit time that
    measures nothing (0.0 s) or is a clock reading, percentages, the wrong return shape.
    """
    if not isinstance(results, Mapping) or not results:
        return failed(f"results should be a dict {{n_components: (accuracy, seconds)}}, got "
                      f"{_what(results)}")
    if layer not in train.arrays or layer not in test.arrays:
        return failed(f"layer {layer!r} is not in these features (they hold {', '.join(train.arrays)})")
    Xtr, ytr, Xte, yte = train[layer], train.labels, test[layer], test.labels
    n_max = min(Xtr.shape)
    for n, value in results.items():
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            return failed(f"the keys of results should be numbers of components (ints), got {_what(n)}")
        if n > n_max:
            return failed(f"{n} components from {Xtr.shape[0]} training images of {Xtr.shape[1]} "
                          f"values: PCA has at most {n_max}; a PCA that gave {n} was fitted on "
                          "more rows than the training split (train + test?)")
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return failed(f"results[{n}] should be (test accuracy, fit seconds), got {_what(value)}")
        seconds = _accuracy_of(value[1])
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            return failed(f"the fit time of results[{n}] should be a number of seconds, got "
                          f"{_what(value[1])}")
        if seconds < 1e-4:
            return failed(f"the fit time for {n} components reads {seconds:.1f} s: the clock was "
                          "read around nothing; start it just before fit and read it just after")
    probe = _pca_probe()
    out = _run_pca_answer(pca_svm_score, 2, *probe)
    if isinstance(out, Verdict):
        return out
    acc = out[0]
    refs = {k: _pca_reference(2, *probe, k) for k in ("train", "both", "test", "no_l2")}
    if abs(acc - refs["train"]) > 0.05:
        hints = {"both": "PCA was fitted on the training AND test rows: the test images leaked "
                         "into the model; fit the whole pipeline on X_train only",
                 "test": "PCA was fitted on the test rows: fit it (the whole pipeline) on X_train, "
                         "then only transform X_test",
                 "no_l2": "this is what PCA without L2 normalisation gives: the lab normalises "
                          "each row first (Normalizer() as the pipeline's first step)"}
        nearest = min(hints, key=lambda k: abs(acc - refs[k]))
        if abs(acc - refs[nearest]) <= 0.05:
            return failed(hints[nearest])
        return failed("on generated rows this pipeline does not behave like L2 rows -> "
                      "PCA(n_components) -> LinearSVC(C=1) fitted on X_train only")
    n = min(16, n_max)
    out = _run_pca_answer(pca_svm_score, n, Xtr, ytr, Xte, yte)
    if isinstance(out, Verdict):
        return out
    acc, seconds, wall = out
    if seconds > wall + 1.0:
        return failed(f"the fit time returned ({seconds:.3g}) is longer than the whole call: "
                      "return a duration, the clock after fit minus the clock before it")
    if seconds < max(1e-4, 0.02 * wall):
        return failed(f"the fit time returned ({seconds:.4f} s) covers almost nothing of the "
                      "call: start the clock just before fit and read it just after")
    tol = max(0.01, 2.0 / len(yte))
    if abs(acc - _pca_reference(n, Xtr, ytr, Xte, yte, "train")) > tol:
        return failed(f"with {n} components the test accuracy is more than {100 * tol:.1f} "
                      "points away from L2 rows -> PCA -> LinearSVC(C=1) fitted on X_train, "
                      "y_train and scored on X_test, y_test")
    return passed("PCA + LinearSVC fitted on the L2 training rows only, test accuracy as "
                  "expected, fit timed")


_PLACEHOLDERS = ("your hypothesis", "your answer", "todo", "...", "write it", "xxx")


def check_experiment(hypothesis: Text, results: Results) -> Verdict:
    """Notebook 05's open experiments: a hypothesis written down, and a comparison run.

    Args:
        hypothesis: one or two sentences written before running: what you expect and
            why (a str of at least 8 words, not the template's placeholder).
        results: ``{setting: test accuracy}`` with the baseline and at least one change
            (fractions between 0 and 1).

    It cannot judge the experiment itself; it checks that it is recorded so that its
    conclusion can be compared with the hypothesis.
    """
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        return failed(f"write the hypothesis first, as a sentence in `hypothesis` (got "
                      f"{_what(hypothesis)}): what you expect, and why")
    text = " ".join(hypothesis.lower().split())
    if any(text.startswith(p) or text == p for p in _PLACEHOLDERS) or len(text.split()) < 8:
        return failed("the hypothesis should say what you expect and why, in a sentence (at "
                      "least 8 words), written before you run the experiment")
    if not isinstance(results, Mapping) or not results:
        return failed(f"results should be a dict {{setting: test accuracy}}, got {_what(results)}")
    if len(results) < 2:
        return failed("results should hold at least two settings: the baseline and your change, "
                      "measured the same way")
    for name, value in results.items():
        v = _accuracy_of(value)
        if v is None or not math.isfinite(v):
            return failed(f"results[{name!r}] should be a test accuracy (a number), got {_what(value)}")
        if 1.0 < v <= 100.0:
            return failed(f"results[{name!r}] is a percentage: give fractions between 0 and 1")
        if not 0.0 <= v <= 1.0:
            return failed(f"results[{name!r}] must lie between 0 and 1")
    return passed(f"hypothesis written; {len(results)} settings measured: now compare the result "
                  "with what you expected")


check_layer_sweep = _guard(check_layer_sweep)
check_pca_svm = _guard(check_pca_svm)
check_experiment = _guard(check_experiment)
