"""One set of training defaults and one argument check, shared by every training path.

:class:`TrainingDefaults` holds the value every function of :mod:`tplib.finetune`
uses when a setting is left out (``DEFAULTS``); the ``check_*`` functions refuse, in
one line that says what to do and before any image is decoded or any epoch runs, what
would otherwise train silently wrong (a negative learning rate climbs the loss; one
class scores 1.0; float labels are truncated) or end in an error from deep inside
torch. The same rules as :mod:`tplib.svm`'s checks for the same inputs.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, OptionError


@dataclass(frozen=True)
class TrainingDefaults:
    """The defaults of every training function (notebook 06's values).

    Attributes:
        epochs: epochs of a head (:func:`train_head`, :func:`train_new_head`):
            notebook 06's ``EPOCHS``; an epoch on cached features costs milliseconds.
        end_to_end_epochs: epochs of :func:`train_model`, where every epoch runs the
            base on every photo (tens of seconds per epoch on a CPU).
        lr: Adam's learning rate (of the head; of everything for a plain module).
        base_lr_factor: trainable base blocks learn at ``lr * base_lr_factor``
            (pretrained weights need small corrections only).
        weight_decay: Adam's L2 penalty.
        batch_size: training images per step on every path that sees images
            (:func:`train_model`, :func:`train_new_head` on either path, so that both
            paths give the same head, :func:`train_from_scratch`).
        feature_batch_size: feature rows per step of :func:`train_head` called on its
            own (notebooks 05 and 06 train their 15 Scene heads with it: their stored
            0.907 depends on it).
        eval_batch_size: rows per forward pass when evaluating (no effect on results).
        augment: random flips while training end to end (off: the same head as on
            cached features).
        seed: initialisation, shuffling, dropout, augmentation.
        threads: image-decoding threads.
        channels_last: channels-last memory layout for convolutions.
        scratch_image_size: the image side of :func:`train_from_scratch` (64 px: a
            CPU gets several epochs within a short budget).
    """

    epochs: int = 30
    end_to_end_epochs: int = 3
    lr: float = 1e-3
    base_lr_factor: float = 0.1
    weight_decay: float = 1e-4
    batch_size: int = 32
    feature_batch_size: int = 64
    eval_batch_size: int = 64
    augment: bool = False
    seed: int = 0
    threads: int = 2
    channels_last: bool = True
    scratch_image_size: int = 64


#: The defaults in force (read by every signature of :mod:`tplib.finetune`).
DEFAULTS = TrainingDefaults()


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or an :class:`OptionError` naming ``name``."""
    if not _is_int(value) or value < minimum:
        raise OptionError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return int(value)


def check_rate(name: str, value, *, positive: bool = True) -> float:
    """``value`` as a finite float > 0 (>= 0 when not ``positive``), or an :class:`OptionError`.

    A negative learning rate makes every step climb the loss (gradient ascent), a NaN
    one fills the weights with NaN: both train without a word, so both are refused.
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise OptionError(f"{name} must be a finite number {need}, not {value!r} "
                          f"(e.g. {name}={DEFAULTS.lr if 'lr' in name else DEFAULTS.weight_decay})")
    return float(value)


def check_training(*, epochs=None, lr=None, weight_decay=None, batch_size=None, base_lr=None,
                   seconds=None, seed=None) -> None:
    """The settings every training path shares; None means "not used by this call".

    Raises :class:`OptionError` for a learning rate (``lr``, ``base_lr``) that is not
    finite and > 0, a ``weight_decay`` < 0 or not finite, ``epochs`` / ``batch_size``
    that are not whole numbers >= 1, a time budget ``seconds`` < 0, a ``seed`` that is
    not a whole number.
    """
    if epochs is not None:
        check_count("epochs", epochs)
    if batch_size is not None:
        check_count("batch_size", batch_size)
    if lr is not None:
        check_rate("lr", lr)
    if base_lr is not None:
        check_rate("base_lr", base_lr)
    if weight_decay is not None:
        check_rate("weight_decay", weight_decay, positive=False)
    if seconds is not None and (not isinstance(seconds, numbers.Real) or isinstance(seconds, bool)
                                or not math.isfinite(seconds) or seconds < 0):
        # 0 is allowed: one epoch, the one during which the budget runs out
        raise OptionError(f"seconds (the time budget) must be a finite number >= 0, not {seconds!r}")
    if seed is not None:
        check_count("seed", seed, minimum=0)


def check_n_classes(n_classes, loss: str = "ce") -> int:
    """The number of classes of a new head: a whole number >= 2 (2 for ``loss="bce"``)."""
    if not _is_int(n_classes) or n_classes < 2:
        raise OptionError(f"n_classes must be a whole number >= 2 (a classifier needs two classes "
                          f"at least), not {n_classes!r}")
    return int(n_classes)


def check_labels(y, name: str, *, n_classes: int | None = None, loss: str = "ce",
                 n_rows: int | None = None, min_classes: int = 1,
                 unknown_ok: bool = False) -> np.ndarray:
    """(n,) int64 class indices, or an :class:`InputError` naming ``name`` ("y_train", ...).

    Refused: labels that are not integers (strings; floats, which torch would
    truncate), negative ones (-1 marks files without a class), ones >= ``n_classes``,
    ones outside {0, 1} with ``loss="bce"``, a length other than ``n_rows``, and fewer
    than ``min_classes`` distinct classes (2 for training data: one class scores 1.0
    and teaches nothing). ``unknown_ok``: -1 (no class) is allowed, for decoding only.
    """
    if hasattr(y, "detach"):  # a torch tensor
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"{name} must be a 1-d array of class indices, got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise InputError(f"{name} has {len(y)} labels for {n_rows} rows: one label per row")
    if y.size == 0:  # an empty list has no dtype to judge (np.asarray([]) is float64)
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name} must hold integer class indices 0..K-1, not {y.dtype} "
                         "(map class names to indices first, e.g. split.classes.index(name))")
    y = y.astype(np.int64, copy=False)
    if len(y) and y.min() < (-1 if unknown_ok else 0):
        raise InputError(f"{name} holds negative labels ({int(y.min())}): class indices start at 0 "
                         "(-1 marks files without a class folder: drop those rows)")
    if loss == "bce" and len(y) and y.max() > 1:
        raise InputError(f"{name} holds label {int(y.max())}, but loss='bce' takes labels 0 and 1 only: "
                         "use loss='ce' for more than two classes")
    if n_classes is not None and len(y) and y.max() >= n_classes:
        raise InputError(f"{name} holds label {int(y.max())} but the head has {n_classes} classes "
                         f"(0 to {n_classes - 1}): give n_classes={int(y.max()) + 1} or fix the labels")
    if min_classes > 1 and len(np.unique(y)) < min_classes:
        found = f"one class only ({int(y[0])})" if len(y) else "no label"
        raise InputError(f"{name} holds {found}: a classifier needs at least {min_classes} classes "
                         "to learn from (check the data folder)")
    return y


def check_features(X, name: str) -> np.ndarray:
    """(n, d) finite float32 features with n >= 1, or an :class:`InputError` naming ``name``.

    Accepts numpy arrays (float16/32/64, memory-mapped or not) and CPU tensors.
    """
    if hasattr(X, "arrays") and hasattr(X, "labels"):  # a tplib Features object
        raise InputError(f"{name} is a Features object (layers {', '.join(X.arrays)}): pass one "
                         "layer's matrix, e.g. feats[layer], and feats.labels as the labels")
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{name} must be an (n, d) matrix of features, got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)) \
            or X.dtype == np.bool_:
        raise InputError(f"{name} must hold numbers, not {X.dtype}")
    if len(X) == 0:
        raise InputError(f"{name} is empty (0 rows): pass the features of at least one image "
                         "(or leave the validation data out)")
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise InputError(f"{name} has {int(bad.sum())} row(s) with NaN or inf values (first: row "
                         f"{int(np.flatnonzero(bad)[0])}); such features come from a broken "
                         "extraction or cache: recompute them")
    return X
