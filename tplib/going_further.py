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
import time
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

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
