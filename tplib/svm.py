"""Linear SVM on feature rows: fit, score, choose C, reduce with PCA.

Plain scikit-learn with the two settings that make results reproducible:
``LinearSVC`` picks the dual solver when samples < features (1500 x 4096 for relu7
on 15 Scene), and the dual solver's coordinate order depends on ``random_state``;
``PCA`` on such matrices picks the randomized solver. Both get a fixed seed.

Every function checks its inputs first (shapes, lengths, NaN or inf, at least two
classes, C, fold and component counts) and says which argument is wrong in a
:class:`~tplib.errors.TplibError`, instead of an error from deep inside scikit-learn.
scikit-learn is imported by the functions that fit, so :func:`check_C` is cheap to
import (the command line checks ``--C`` with it before loading anything heavy).

Taught in notebook 04 (fit/score) and 05 (C, PCA, layers).
"""
from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .defaults import DEFAULT_C
from .errors import InputError, OptionError, TplibError  # noqa: F401 (also tplib.svm.InputError)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

RANDOM_STATE = 0

#: The C values liblinear can solve. Its primal solver (chosen when images outnumber
#: features) never returns for C of about 1e140 and more or 1e-190 and less (measured
#: here with scikit-learn's LinearSVC); within these bounds, on unit rows or rows 1000
#: times longer, it fits in milliseconds. Past 1e3 on L2 rows C changes nothing more.
C_MIN, C_MAX = 1e-10, 1e10


def check_C(C) -> float:
    """A LinearSVC ``C``: a number from :data:`C_MIN` to :data:`C_MAX` (else an :class:`OptionError`)."""
    # float("1") and float(True) would pass silently (numpy's bool_ too)
    if isinstance(C, (bool, str, bytes, np.bool_)):
        raise OptionError(f"C must be a number > 0, not {C!r}")
    try:
        value = float(C)
    except (TypeError, ValueError):
        raise OptionError(f"C must be a number > 0, not {C!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise OptionError(f"C must be a finite number > 0, not {C!r} (the lab uses C={DEFAULT_C:g})")
    if not C_MIN <= value <= C_MAX:
        raise OptionError(f"C={value:g} is outside what LinearSVC can solve: use a C from {C_MIN:g} "
                          f"to {C_MAX:g} (the lab uses C={DEFAULT_C:g}; past 1e3 nothing changes "
                          "on L2 rows)")
    return value


def check_count(value, name: str, minimum: int = 1, error: type = OptionError) -> int:
    """A whole number >= ``minimum`` (numpy integers too; not a bool, not 2.5), else ``error``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise error(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return int(value)


def check_xy(X, y, name: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(n, d) finite float features and (n,) int labels, or an :class:`InputError`.

    ``name`` ("train", "test") is used in the messages: ``X_train has 3 rows but
    y_train has 4 labels``.
    """
    if hasattr(X, "arrays") and hasattr(X, "labels"):  # a tplib Features object
        raise InputError(f"X_{name} is a Features object (layers {', '.join(X.arrays)}): pass one "
                         f"layer's matrix, e.g. {name}[layer], and {name}.labels as y_{name}")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise InputError(f"X_{name} must be an (n_images, n_features) matrix, got shape {X.shape}")
    if len(X) == 0:
        raise InputError(f"X_{name} is empty (0 images): nothing to {'fit' if name == 'train' else 'score'}")
    if y.shape != (len(X),):
        raise InputError(f"X_{name} has {len(X)} rows but y_{name} has shape {y.shape}: one label per row")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"y_{name} must hold integer class indices, not {y.dtype}")
    if y.size and y.min() < 0:
        raise InputError(f"y_{name} holds negative labels ({int(y.min())}): class indices start at 0 "
                         "(-1 marks files without a class folder: drop those rows)")
    if not np.issubdtype(X.dtype, np.number):
        raise InputError(f"X_{name} must be numbers, not {X.dtype}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise InputError(f"X_{name} has {int(bad.sum())} row(s) with NaN or inf values (first: row "
                         f"{int(np.flatnonzero(bad)[0])}); such features come from a broken "
                         "extraction or cache: recompute them")
    return X, y


def _check_two_classes(y_train: np.ndarray) -> None:
    if len(np.unique(y_train)) < 2:
        raise InputError(f"y_train holds one class only ({int(y_train[0])}): a classifier needs at "
                         "least two")


def _check_pair(X_train, y_train, X_test, y_test):
    X_train, y_train = check_xy(X_train, y_train, "train")
    X_test, y_test = check_xy(X_test, y_test, "test")
    if X_train.shape[1] != X_test.shape[1]:
        raise InputError(f"X_train has {X_train.shape[1]} features per row, X_test "
                         f"{X_test.shape[1]}: both must come from the same layer")
    _check_two_classes(y_train)
    return X_train, y_train, X_test, y_test


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, d) float32 rows of unit Euclidean norm (all-zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        hint = ": for one feature vector use X.reshape(1, -1)" if X.ndim == 1 else ""
        raise InputError(f"l2_normalize needs an (n_images, n_features) matrix, got shape "
                         f"{X.shape}{hint}")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def make_svm(C: float = DEFAULT_C, random_state: int = RANDOM_STATE, max_iter: int = 10_000) -> "LinearSVC":
    """``LinearSVC(C)`` with a fixed seed (see the module docstring)."""
    from sklearn.svm import LinearSVC

    return LinearSVC(C=check_C(C), random_state=random_state, max_iter=max_iter)


@dataclass
class SVMResult:
    """Test-set results of one classifier.

    Attributes:
        accuracy: fraction of correct test predictions; n_correct, n_test: counts.
        per_class_accuracy: (K,) float64 recall per class (NaN where a class has no
            test image).
        support: (K,) int64 test images per class.
        confusion: (K, K) int64 counts, rows = true class, columns = predicted.
        predictions: (n_test,) int64 predicted labels.
        fit_seconds, predict_seconds: wall-clock times.
        model: the fitted estimator; warnings: e.g. non-convergence.
    """

    accuracy: float
    n_correct: int
    n_test: int
    per_class_accuracy: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    fit_seconds: float
    predict_seconds: float
    model: object = None
    warnings: list[str] = field(default_factory=list)


def fit_and_score(estimator, X_train, y_train, X_test, y_test, n_classes: int | None = None) -> SVMResult:
    """Fit ``estimator`` on (X_train (n, d), y_train (n,)), score on the test pair.

    Records fit and predict times and convergence warnings; ``n_classes`` (default
    ``max(label) + 1``) sizes the confusion matrix.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import confusion_matrix

    X_train, y_train, X_test, y_test = _check_pair(X_train, y_train, X_test, y_test)
    top = int(max(y_train.max(), y_test.max()))
    if n_classes is not None and top >= n_classes:
        raise InputError(f"labels go up to {top} but n_classes={n_classes}: class indices must be "
                         f"0 to {n_classes - 1} (or leave n_classes out)")
    n_classes = n_classes or top + 1
    pca = getattr(estimator, "named_steps", {}).get("pca")
    if pca is not None and isinstance(pca.n_components, numbers.Integral):
        most = min(X_train.shape)
        if pca.n_components > most:
            raise InputError(f"PCA with {pca.n_components} components needs at least that many "
                             f"training images and features; these have {X_train.shape[0]} images of "
                             f"{X_train.shape[1]} features: use at most {most} components")
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        estimator.fit(X_train, y_train)
        fit_s = time.perf_counter() - t0
    notes += [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    t0 = time.perf_counter()
    pred = estimator.predict(X_test)
    pred_s = time.perf_counter() - t0
    cm = confusion_matrix(y_test, pred, labels=np.arange(n_classes))
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(cm) / support
    n_correct = int(np.diag(cm).sum())
    return SVMResult(n_correct / len(y_test), n_correct, len(y_test), per_class, support, cm,
                     pred, fit_s, pred_s, estimator, notes)


def svm_fit_score(X_train, y_train, X_test, y_test, C: float = DEFAULT_C, *, l2: bool = True,
                  n_classes: int | None = None) -> SVMResult:
    """The lab's classifier: L2-normalised rows, ``LinearSVC(C)``, test accuracy.

    Args:
        X_train: (n_train, d) features; y_train: (n_train,) int class indices.
        X_test: (n_test, d) features of the same layer; y_test: (n_test,).
        C: LinearSVC's regularisation (finite, > 0).
        l2: normalise every row to unit length first (the lab does).
        n_classes: K, for the confusion matrix (default ``max(label) + 1``).
    """
    svm = make_svm(C)
    X_train, y_train, X_test, y_test = _check_pair(X_train, y_train, X_test, y_test)
    if l2:
        X_train, X_test = l2_normalize(X_train), l2_normalize(X_test)
    return fit_and_score(svm, X_train, y_train, X_test, y_test, n_classes)


class CSearch(NamedTuple):
    """What :func:`search_C` found (unpacks as ``best_C, scores``).

    best_C: the C with the best mean cross-validation accuracy; scores: {C: mean
    accuracy over the folds}, in the order of the Cs given.
    """

    best_C: float
    scores: dict[float, float]


def search_C(X_train, y_train, Cs=(0.01, 0.1, 1.0, 10.0, 100.0), *, folds: int = 5,
             l2: bool = True) -> CSearch:
    """Pick C by stratified cross-validation on the training split only.

    Args:
        X_train: (n, d) features; y_train: (n,) int labels. The test split is never seen.
        Cs: the values tried (one number: its cross-validation accuracy alone);
        folds: stratified folds, 2 or more (shuffled with a fixed seed).

    Returns:
        :class:`CSearch` (best C, {C: mean CV accuracy}).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    folds = check_count(folds, "folds", minimum=2)
    if isinstance(Cs, (numbers.Number, np.generic)) and not isinstance(Cs, (bool, np.bool_)):
        Cs = [Cs]  # one C: a search of one value (iterating a float would fail)
    try:
        if isinstance(Cs, (str, bytes)):
            raise TypeError
        Cs = [check_C(c) for c in Cs]
    except TypeError:  # not a list of values
        raise OptionError(f"Cs must be a list of C values, e.g. [0.01, 0.1, 1, 10, 100], not "
                          f"{Cs!r}") from None
    X_train, y_train = check_xy(X_train, y_train, "train")
    if not Cs:
        raise InputError("Cs is empty: give the values of C to try, e.g. [0.01, 0.1, 1, 10, 100]")
    _check_two_classes(y_train)
    counts = np.bincount(y_train)
    smallest = int(counts[counts > 0].min())
    if smallest < folds:
        raise InputError(f"{folds}-fold cross-validation needs at least {folds} training images per "
                         f"class; the smallest class has {smallest}: use folds={max(2, smallest)}")
    if l2:
        X_train = l2_normalize(X_train)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=RANDOM_STATE)
    grid = GridSearchCV(make_svm(), {"C": list(Cs)}, cv=cv, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X_train, y_train)
    scores = {float(c): float(s) for c, s in zip(grid.cv_results_["param_C"],
                                                 grid.cv_results_["mean_test_score"])}
    return CSearch(float(grid.best_params_["C"]), scores)


def pca_svm(n_components: int, C: float = DEFAULT_C) -> "Pipeline":
    """L2-normalised rows -> ``PCA(n_components)`` (seeded) -> ``LinearSVC(C)``, one pipeline.

    The same L2 step as :func:`svm_fit_score`, then the projection; fit it on raw
    (n, d) features with :func:`fit_and_score`.
    """
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer

    n_components = check_count(n_components, "n_components", error=InputError)
    return Pipeline([("l2", Normalizer(norm="l2")),
                     ("pca", PCA(n_components=n_components, random_state=RANDOM_STATE)),
                     ("svm", make_svm(C))])


# ------------------------------------------------------------------ notebook 04: errors
class Confusion(NamedTuple):
    """One off-diagonal cell of a confusion matrix: ``count`` test images of class
    ``true`` (index ``true_index``) predicted as ``predicted`` (``predicted_index``)."""

    true: str
    predicted: str
    count: int
    true_index: int
    predicted_index: int


def most_confused(confusion, classes, k: int | None = 5) -> list[Confusion]:
    """The ``k`` largest off-diagonal cells of a confusion matrix, largest first.

    Args:
        confusion: (K, K) counts, rows = true class, columns = predicted
            (``SVMResult.confusion``).
        classes: the K class names.
        k: how many pairs; None: every pair with at least one image.

    Returns:
        A list of :class:`Confusion` (cells with count 0 are never listed); ties are in
        class order (true class, then predicted class). Taught in notebook 04.
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InputError(f"confusion must be a square (K, K) matrix, got shape {cm.shape}")
    if len(classes) != len(cm):
        raise InputError(f"{len(classes)} class names for a {len(cm)}x{len(cm)} confusion matrix")
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off > 0)
    # stable sort on -count keeps the row-major (class) order of the ties
    order = np.argsort(-off[rows, cols], kind="stable")
    pairs = [Confusion(str(classes[i]), str(classes[j]), int(off[i, j]), int(i), int(j))
             for i, j in zip(rows[order], cols[order])]
    return pairs if k is None else pairs[:k]


def confused_indices(y_true, y_pred, true: int, predicted: int) -> np.ndarray:
    """Indices (ascending, int64) of the test rows of class ``true`` predicted as ``predicted``.

    ``y_true``, ``y_pred``: (n,) int labels (e.g. ``test.labels``, ``result.predictions``).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise InputError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    return np.flatnonzero((y_true == true) & (y_pred == predicted)).astype(np.int64)
