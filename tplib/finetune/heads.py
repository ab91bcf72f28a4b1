"""Heads on cached features: a new head, its loss, one training step, its training
(:func:`train_head`) and evaluation (:func:`evaluate_head`).

The fast path of notebook 06: the frozen base gives an image the same output at every
epoch, so its features are computed once (:func:`tplib.features.extract_features`,
cached on disk) and the head trains on the (n, d) matrix in milliseconds per epoch.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, OptionError
from ..profile import default_progress
from .results import Evaluation, HeadResult, new_history
from .runtime import model_device, seeded, torch_threads
from .settings import DEFAULTS, check_count, check_features, check_labels, check_n_classes, check_training

LOSSES = ("ce", "bce")


def make_head(in_features: int, n_classes: int, hidden: int = 0, dropout: float = 0.0,
              loss: str = "ce") -> nn.Module:
    """A new classification head: (N, in_features) float32 -> (N, K) logits.

    ``hidden=0``: one ``nn.Linear`` (logistic regression on the features; what the
    lab's "replace the last layer by a new FC layer" means). ``hidden>0``: Linear ->
    ReLU -> Dropout -> Linear, the lecture's small head (Dense 256 + output).
    ``dropout`` with ``hidden=0`` drops input features before the Linear.
    ``loss="bce"`` (two classes only): one output unit, a logit for class 1, trained
    with ``BCEWithLogitsLoss``; ``"ce"``: K outputs and cross-entropy.
    """
    check_count("in_features", in_features)
    check_count("hidden", hidden, minimum=0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise OptionError(f"dropout must be a number in [0, 1), not {dropout!r}")
    outputs = n_outputs(n_classes, loss)
    if hidden == 0:
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        return nn.Sequential(*layers, nn.Linear(in_features, outputs))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, outputs))


def n_outputs(n_classes: int, loss: str) -> int:
    """Output units of a head for ``n_classes`` (>= 2) and ``loss``: K, or 1 for "bce"."""
    if loss not in LOSSES:
        raise OptionError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    check_n_classes(n_classes)
    if loss == "bce":
        if n_classes != 2:
            raise OptionError(f"loss='bce' is for two classes (one logit), not {n_classes}")
        return 1
    return n_classes


def loss_and_predictions(logits: torch.Tensor, y: torch.Tensor,
                         reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, predicted labels) for (N, K) logits and (N,) int labels.

    One output unit means a binary logit: ``binary_cross_entropy_with_logits`` (which
    takes logits, never probabilities) and prediction ``logit > 0``; K >= 2 outputs:
    cross-entropy and argmax.
    """
    if logits.shape[1] == 1:
        z = logits[:, 0]
        return (F.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction=reduction),
                (z > 0).long())
    return F.cross_entropy(logits, y, reduction=reduction), logits.argmax(1)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> tuple[float, int]:
    """One training step on a batch: forward, loss, backward, update.

    x: (N, ...) inputs; y: (N,) int64 labels. The loss is cross-entropy, or
    BCE-with-logits for a one-output model (:func:`loss_and_predictions`). Returns
    (summed loss over the batch, correct predictions). Notebook 06 writes this step.
    """
    logits = model(x)
    loss, pred = loss_and_predictions(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item() * len(y), int((pred == y).sum())


@torch.no_grad()
def evaluate_batches(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                     batch_size: int = DEFAULTS.eval_batch_size, transform=None) -> Evaluation:
    """Evaluate ``model`` in eval mode on (X, y), batch by batch, on the device its
    parameters are on; its mode is restored."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    loss, preds = 0.0, []
    try:
        for s in range(0, len(X), batch_size):
            xb = X[s:s + batch_size]
            xb = (transform(xb) if transform is not None else xb).to(device)
            logits = model(xb)
            batch_loss, pred = loss_and_predictions(logits, y[s:s + batch_size].to(device),
                                                    reduction="sum")
            loss += float(batch_loss)
            preds.append(pred.cpu())
    finally:
        model.train(was_training)
    n = max(len(X), 1)
    predictions = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    labels = y.numpy()
    return Evaluation(float((predictions == labels).sum()) / n, loss / n, predictions, labels)


def train_head(
    X_train, y_train, X_val=None, y_val=None, *,
    hidden: int = 0,
    epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    weight_decay: float = DEFAULTS.weight_decay,
    batch_size: int = DEFAULTS.feature_batch_size,
    dropout: float = 0.0,
    n_classes: int | None = None,
    loss: str = "ce",
    head: nn.Module | None = None,
    seed: int = DEFAULTS.seed,
    progress: bool | None = None,
) -> HeadResult:
    """Train a new head on frozen-base features with Adam.

    Args:
        X_train: (n, d) float features, e.g. ``extract_features(backbone, split,
            "pooled")["pooled"]``; y_train: (n,) int class indices.
        X_val, y_val: optional held-out features/labels, scored after every epoch.
        hidden, dropout: the head's shape (see :func:`make_head`).
        epochs, lr, weight_decay, batch_size: Adam on shuffled mini-batches.
        n_classes: default ``max(labels) + 1``.
        loss: "ce" (cross-entropy, K outputs) or "bce" (two classes, one logit,
            BCE-with-logits).
        head: the initial head (a copy of it is trained; ``hidden``, ``dropout`` and
            ``loss`` are then ignored); default a new :func:`make_head` seeded by ``seed``.
        seed: initialisation, shuffling and dropout; the same seed gives the same head.

    Returns:
        :class:`HeadResult`; ``history["train_loss"]`` etc. have ``epochs`` entries.
        The train loss/accuracy of an epoch are averages over its mini-batches (with
        dropout on, as the model was while learning), the val ones a clean pass.

    The same head as the slow path: :func:`train_model` on
    ``attach_head(backbone, K, head=<the same initial head>)`` with ``augment=False``
    and the same ``epochs``, ``lr``, ``weight_decay``, ``batch_size`` and ``seed``
    visits the same mini-batches in the same order (both shuffle with a private
    generator seeded by ``seed``), draws the same dropout masks (both train inside a
    fresh torch RNG scope seeded by ``seed``) and makes the same Adam steps, so it
    ends with the same head up to float rounding (tests/test_finetune.py checks it).
    """
    from tqdm.auto import tqdm

    X, y, Xv, yv, n_classes = _check_head_data(X_train, y_train, X_val, y_val, n_classes,
                                                head=head, loss=loss)
    check_training(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed)
    has_val = Xv is not None
    history = new_history()
    t0 = time.perf_counter()
    if head is None:
        with seeded(seed):
            head = make_head(X.shape[1], n_classes, hidden=hidden, dropout=dropout, loss=loss)
    else:
        head = copy.deepcopy(head)
    # One thread: a head's matrices are so small that thread synchronisation costs
    # more than the arithmetic (a busy second core made it 50x slower; see
    # benchmarks/README.md). A fresh RNG scope, as train_model's: same dropout masks.
    with seeded(seed), torch_threads(1):
        optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
        # A private generator for the shuffling order: reproducible, independent of
        # how many random numbers dropout has drawn.
        order_rng = torch.Generator().manual_seed(seed)
        bar = tqdm(range(epochs), desc="head", unit="epoch", disable=not default_progress(progress),
                   leave=False)
        for _ in bar:
            head.train()
            loss_sum, correct = 0.0, 0
            t_epoch = time.perf_counter()
            for idx in torch.randperm(len(X), generator=order_rng).split(batch_size):
                batch_loss, batch_correct = train_step(head, optimizer, X[idx], y[idx])
                loss_sum += batch_loss
                correct += batch_correct
            history["epoch_seconds"].append(time.perf_counter() - t_epoch)
            history["train_loss"].append(loss_sum / len(X))
            history["train_acc"].append(correct / len(X))
            if has_val:
                val = evaluate_batches(head, Xv, yv)
                history["val_loss"].append(val.loss)
                history["val_acc"].append(val.accuracy)
            history["elapsed"].append(time.perf_counter() - t0)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                            **({"val_acc": f"{history['val_acc'][-1]:.3f}"} if has_val else {}))
        bar.close()
    return HeadResult(head=head.eval(), history=history, seconds=time.perf_counter() - t0)


def evaluate_head(head: nn.Module, X, y) -> Evaluation:
    """``head`` on features X (n, d) with labels y (n,): accuracy, loss, predictions.

    X must be finite and hold at least one row; y integer class indices the head has.
    """
    X = check_features(X, "X")
    y = check_labels(y, "y", n_rows=len(X), n_classes=_head_classes(head))
    return evaluate_batches(head, torch.from_numpy(X), torch.from_numpy(y))


def _head_outputs(head: nn.Module) -> int | None:
    """Output units of a head's last Linear layer (1: a BCE logit); None without one."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def _head_classes(head: nn.Module) -> int | None:
    """The classes a head tells apart (2 for one logit); None if unknown."""
    outputs = _head_outputs(head)
    return 2 if outputs == 1 else outputs


def _check_head_data(X_train, y_train, X_val, y_val, n_classes, *, head, loss):
    """The argument check of :func:`train_head`: (X, y, Xv, yv, n_classes), tensors."""
    X = check_features(X_train, "X_train")
    y = check_labels(y_train, "y_train", n_rows=len(X), min_classes=2)
    if (X_val is None) != (y_val is None):
        raise OptionError("give both X_val and y_val (validation features and labels), or neither")
    Xv = yv = None
    if X_val is not None:
        Xv = check_features(X_val, "X_val")
        if Xv.shape[1] != X.shape[1]:
            raise InputError(f"X_train has {X.shape[1]} features per row, X_val {Xv.shape[1]}: "
                             "both must come from the same layer")
        yv = check_labels(y_val, "y_val", n_rows=len(Xv))
    if head is not None:  # the head decides: one logit is BCE, K outputs are K classes
        outputs = _head_outputs(head)
        loss = "bce" if outputs == 1 else "ce"
        if n_classes is None:
            n_classes = _head_classes(head)
    if n_classes is None:
        n_classes = max(int(y.max()), int(yv.max()) if yv is not None else 0) + 1
    n_classes = check_n_classes(n_classes, loss)
    check_labels(y, "y_train", n_classes=n_classes, loss=loss)
    if yv is not None:
        check_labels(yv, "y_val", n_classes=n_classes, loss=loss)
        Xv, yv = torch.from_numpy(Xv), torch.from_numpy(yv)
    return torch.from_numpy(X), torch.from_numpy(y), Xv, yv, n_classes
