"""Linear SVM on feature rows: fit, score, choose C, reduce with PCA.

Plain scikit-learn with the two settings that make results reproducible:
``LinearSVC`` picks the dual solver when samples < features (1500 x 4096 for relu7
on 15 Scene), and the dual solver's coordinate order depends on ``random_state``;
``PCA`` on such matrices picks the randomized solver. Both get a fixed seed.

Taught in notebook 04 (fit/score) and 05 (C, PCA, layers).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

RANDOM_STATE = 0


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, d) float32 rows of unit Euclidean norm (all-zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def make_svm(C: float = 1.0, random_state: int = RANDOM_STATE, max_iter: int = 10_000) -> LinearSVC:
    """``LinearSVC(C)`` with a fixed seed (see the module docstring)."""
    return LinearSVC(C=C, random_state=random_state, max_iter=max_iter)


@dataclass
class SVMResult:
    """Test-set results of one classifier.

    Attributes:
        accuracy: fraction of correct test predictions; n_correct, n_test: counts.
        per_class_accuracy: (K,) recall per class (NaN where a class has no test image).
        support: (K,) test images per class.
        confusion: (K, K) int counts, rows = true class, columns = predicted.
        predictions: (n_test,) predicted labels.
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
    """Fit ``estimator`` on train, score on test; records times and warnings."""
    n_classes = n_classes or int(max(y_train.max(), y_test.max())) + 1
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


def svm_fit_score(X_train, y_train, X_test, y_test, C: float = 1.0, *, l2: bool = True,
                  n_classes: int | None = None) -> SVMResult:
    """The lab's classifier: L2-normalised rows, ``LinearSVC(C)``, test accuracy."""
    if l2:
        X_train, X_test = l2_normalize(X_train), l2_normalize(X_test)
    return fit_and_score(make_svm(C), X_train, y_train, X_test, y_test, n_classes)


def search_C(X_train, y_train, Cs=(0.01, 0.1, 1.0, 10.0, 100.0), *, folds: int = 5,
             l2: bool = True) -> tuple[float, dict[float, float]]:
    """Pick C by stratified cross-validation on the training split only.

    Returns (best C, {C: mean CV accuracy}). The test split is never seen.
    """
    if l2:
        X_train = l2_normalize(X_train)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=RANDOM_STATE)
    grid = GridSearchCV(make_svm(), {"C": list(Cs)}, cv=cv, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X_train, y_train)
    scores = {float(c): float(s) for c, s in zip(grid.cv_results_["param_C"],
                                                 grid.cv_results_["mean_test_score"])}
    return float(grid.best_params_["C"]), scores


def pca_svm(n_components: int, C: float = 1.0):
    """PCA(n_components, seeded) followed by ``LinearSVC(C)``, as one pipeline."""
    return make_pipeline(PCA(n_components=n_components, random_state=RANDOM_STATE), make_svm(C))
