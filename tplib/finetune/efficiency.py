"""Data efficiency: test accuracy against the number of training photos per class, for a
frozen pretrained base + a new head and for :class:`SmallCNN` trained from scratch on the
same photos (the lecture's argument, 98% against 86% there, measured).

Both are trained to convergence, not under a time budget: the head on the cached
features of the base (an epoch costs milliseconds), the small CNN with random flips and
crops for at least ``steps`` optimiser steps and ``min_epochs`` passes over its photos,
until it fits them. Each is scored once, on the whole test split, after
its last step (no picking of the best epoch: that would tune on the test split).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..data import Split
from ..preprocess import Preprocess
from .heads import evaluate_batches, evaluate_head, train_head
from .results import new_history
from .runtime import seeded, training_device
from .scratch import SmallCNN
from .settings import DEFAULTS, check_count, check_training
from .training import check_decoded, decode_images, fit


@dataclass(frozen=True)
class EfficiencyRow:
    """One size of the training set: ``per_class`` photos of every class (``n_train`` in
    all), the test accuracy of each model, and what training the small CNN took."""

    per_class: int
    n_train: int
    head_accuracy: float
    scratch_accuracy: float
    scratch_train_accuracy: float  # on its (augmented) training photos, last epoch
    scratch_epochs: int
    scratch_seconds: float


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Row indices of the first ``per_class`` items of every class, in their order.

    (n,) int labels -> (<= per_class * n_classes,) sorted indices; the same photos as
    ``Split.subset(per_class)``, so every size contains the smaller ones.
    """
    keep = [i for c in np.unique(labels) for i in np.flatnonzero(labels == c)[:per_class]]
    return np.array(sorted(keep), dtype=np.int64)


def data_efficiency(
    backbone,
    train: Split,
    test: Split,
    sizes=(5, 10, 25, 50, 100),
    *,
    layer: str | None = None,
    steps: int = 200,
    min_epochs: int = 60,
    head_epochs: int = 100,
    head_lr: float = 3e-3,
    image_size: int = DEFAULTS.scratch_image_size,
    batch_size: int = DEFAULTS.batch_size,
    lr: float = DEFAULTS.lr,
    width: int = 16,
    seed: int = DEFAULTS.seed,
    progress: bool | None = None,
) -> list[EfficiencyRow]:
    """Test accuracy of a frozen ``backbone`` + new linear head and of a small CNN from
    scratch, trained on the first ``n`` photos of every class for each ``n`` in ``sizes``.

    Args:
        backbone: the pretrained network (its ``layer`` features, default its own
            default layer, come from :func:`tplib.extract_features`: cached).
        train, test: data splits; every size takes its photos from ``train`` (the first
            ones of each class), every model is scored on all of ``test``.
        steps, min_epochs: the small CNN trains for at least ``steps`` optimiser steps
            and at least ``min_epochs`` passes over its photos, whichever is longer:
            enough to fit its training photos (the row's ``scratch_train_accuracy``).
        width, image_size: the small CNN (:class:`SmallCNN`; width 16: about 100,000
            parameters, an optimiser step on 32 photos of 64 px takes about 35 ms on 2 cores).
        head_epochs, head_lr: the head's training (Adam, cross-entropy).

    Returns:
        one :class:`EfficiencyRow` per size, smallest first. Sizes larger than the
        smallest class are cut to it (and given once).
    """
    from ..features import extract_features

    check_count("steps", steps)
    check_count("min_epochs", min_epochs)
    check_training(epochs=head_epochs, lr=head_lr, batch_size=batch_size, seed=seed)
    check_training(lr=lr)
    smallest = int(np.bincount(np.asarray(train.labels)).min())
    wanted = sorted({min(check_count("size", n), smallest) for n in sizes})
    layer = layer or backbone.default_layer
    f_train, f_test = (extract_features(backbone, s, layer, progress=progress) for s in (train, test))
    F, Ft = np.asarray(f_train[layer], dtype=np.float32), np.asarray(f_test[layer], dtype=np.float32)

    preprocess = Preprocess(size=image_size, interpolation="bilinear")
    X, y, skipped = decode_images(train, preprocess, progress=progress, desc="decode train")
    check_decoded(X, y, skipped, "train", min_classes=2)
    Xt, yt, skipped = decode_images(test, preprocess, progress=progress, desc="decode test")
    check_decoded(Xt, yt, skipped, "test")
    labels = y.numpy()
    n_classes = int(max(labels.max(), int(yt.max()))) + 1

    rows = []
    for per_class in wanted:
        idx = first_per_class(labels, per_class)
        head = train_head(F[idx], labels[idx], epochs=head_epochs, lr=head_lr, n_classes=n_classes,
                          seed=seed, progress=False)
        head_acc = evaluate_head(head.head, Ft, np.asarray(test.labels)).accuracy

        t0 = time.perf_counter()
        epochs = max(min_epochs, math.ceil(steps / math.ceil(len(idx) / batch_size)))
        history = new_history()
        with seeded(seed):
            cnn = SmallCNN(n_classes, width=width).to(training_device(None))
            fit(cnn, [{"params": list(cnn.parameters()), "lr": lr}], X[idx], y[idx], None, None,
                preprocess, epochs=epochs, seconds=None, t_start=t0, weight_decay=DEFAULTS.weight_decay,
                batch_size=batch_size, flip=True, pad=max(1, image_size // 16), seed=seed,
                progress=progress, desc=f"from scratch, {per_class} per class", history=history)
        scratch = evaluate_batches(cnn, Xt, yt, transform=preprocess.normalize)
        rows.append(EfficiencyRow(per_class, len(idx), float(head_acc), float(scratch.accuracy),
                                  float(history["train_acc"][-1]), epochs,
                                  time.perf_counter() - t0))
    return rows


def efficiency_table(rows: list[EfficiencyRow]) -> str:
    """The rows as a text table, one line per size."""
    lines = [f"{'per class':>9}  {'photos':>6}  {'frozen base + head':>18}  {'small CNN from scratch':>22}"
             f"  {'(train acc., epochs)':>20}"]
    for r in rows:
        fitted = f"({r.scratch_train_accuracy:.2f}, {r.scratch_epochs})"
        lines.append(f"{r.per_class:>9}  {r.n_train:>6}  {r.head_accuracy:>18.3f}  "
                     f"{r.scratch_accuracy:>22.3f}  {fitted:>20}")
    return "\n".join(lines)


