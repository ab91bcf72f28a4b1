"""What training and evaluation return: :class:`Evaluation`, :class:`HeadResult`,
:class:`TrainResult`, :class:`ScratchResult`, and the per-epoch history they share.

One shape: every training result has ``history`` (the same keys), ``seconds`` and the
properties ``seconds_per_epoch`` and ``epochs``; every evaluation has ``accuracy``,
the property ``n_correct`` and the method ``confusion(K)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from torch import nn

_HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "elapsed", "epoch_seconds")


def mean_epoch_seconds(history: dict[str, list[float]]) -> float:
    """Mean time of an epoch's training steps (``history["epoch_seconds"]``); NaN before any."""
    times = history.get("epoch_seconds") or []
    return float(np.mean(times)) if times else float("nan")


def new_history() -> dict[str, list[float]]:
    """Per-epoch lists; "val_*" stay empty without validation data, "elapsed" is
    the wall-clock time (s) at the end of each epoch (for accuracy-vs-time plots),
    "epoch_seconds" the time of the epoch's training steps alone (no validation, no
    decoding: what an epoch costs, for comparing training paths)."""
    return {key: [] for key in _HISTORY_KEYS}


class Evaluation(NamedTuple):
    """What an evaluation measured: accuracy in [0, 1], mean loss, predictions (n,)
    int64, the true labels (n,) int64 (for a confusion matrix) and, when the
    evaluation ran on image files, their paths (n,) in row order (else None).

    ``n_correct`` and ``n_images`` are counts (properties, as ``SVMResult.n_correct``);
    ``confusion(K)`` the (K, K) matrix.
    """

    accuracy: float
    loss: float
    predictions: np.ndarray
    labels: np.ndarray
    paths: list | None = None

    @property
    def n_correct(self) -> int:
        """Correctly predicted images."""
        return int((np.asarray(self.predictions) == np.asarray(self.labels)).sum())

    @property
    def n_images(self) -> int:
        """Images evaluated (those that could be decoded)."""
        return len(self.labels)

    def confusion(self, n_classes: int | None = None) -> np.ndarray:
        """(K, K) int64 counts, row = true class, column = predicted class."""
        k = n_classes or int(max(self.labels.max(initial=-1), self.predictions.max(initial=-1))) + 1
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (self.labels, self.predictions), 1)
        return cm

    def mistakes(self) -> np.ndarray:
        """Row indices of the misclassified images."""
        return np.flatnonzero(self.predictions != self.labels)


@dataclass
class HeadResult:
    """A head trained on precomputed features.

    Attributes:
        head: the trained ``nn.Module`` in eval mode, (N, d) float32 -> (N, K) logits.
        history: per-epoch lists "train_loss", "train_acc", "val_loss", "val_acc"
            (the val lists are empty without validation data) and "elapsed" (s).
        seconds: wall-clock training time.
    """

    head: nn.Module
    history: dict[str, list[float]]
    seconds: float

    @property
    def seconds_per_epoch(self) -> float:
        """Mean time of an epoch's training steps (``history["epoch_seconds"]``)."""
        return mean_epoch_seconds(self.history)

    @property
    def epochs(self) -> int:
        """Epochs trained (entries of ``history["train_loss"]``)."""
        return len(self.history["train_loss"])


#: What the two training paths do, in words (:attr:`TrainResult.how`).
PATHS = {
    "features": "cached features: the frozen base ran once per photo (its outputs cached on "
                "disk), then the head trained on them",
    "end-to-end": "end to end: every training step ran the photos through base and head",
}


@dataclass
class TrainResult:
    """What :func:`train_model` reports.

    Attributes:
        model: the trained model (same object as given), in eval mode.
        history: per-epoch "train_loss", "train_acc", "val_loss", "val_acc", "elapsed".
        seconds: wall-clock time, decoding included; images_per_second: training
            images processed per second of training (decoding and validation excluded).
        skipped: [(path, reason)] images that could not be decoded.
        path: "end-to-end" (images through base and head at every step) or
            "features" (the head trained on cached features of the frozen base:
            :func:`train_new_head`).
        test: the test split's :class:`Evaluation` when :func:`train_new_head` was
            given one, else None.
    """

    model: nn.Module
    history: dict[str, list[float]]
    seconds: float
    images_per_second: float
    skipped: list[tuple[str, str]] = field(default_factory=list)
    path: str = "end-to-end"
    test: Evaluation | None = None

    @property
    def how(self) -> str:
        """One line saying which path trained the head."""
        return PATHS.get(self.path, self.path)

    @property
    def seconds_per_epoch(self) -> float:
        """Mean time of an epoch's training steps (``history["epoch_seconds"]``)."""
        return mean_epoch_seconds(self.history)

    @property
    def epochs(self) -> int:
        """Epochs trained (entries of ``history["train_loss"]``)."""
        return len(self.history["train_loss"])


class ScratchResult(NamedTuple):
    """What :func:`train_from_scratch` returns (unpacks as a 4-tuple).

    model: trained :class:`SmallCNN` (eval mode); history: per-epoch lists, "val_*"
    measured on the test split; test_accuracy: after the last epoch (no picking of
    the best epoch: that would tune on the test set); seconds: wall clock, decoding
    included.
    """

    model: nn.Module
    history: dict[str, list[float]]
    test_accuracy: float
    seconds: float

    @property
    def seconds_per_epoch(self) -> float:
        """Mean time of an epoch's training steps (``history["epoch_seconds"]``)."""
        return mean_epoch_seconds(self.history)

    @property
    def epochs(self) -> int:
        """Epochs trained within the budget (entries of ``history["train_loss"]``)."""
        return len(self.history["train_loss"])
