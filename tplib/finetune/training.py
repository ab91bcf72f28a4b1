"""End-to-end training on image files: decoding once into memory, augmentation, the
training loop (:func:`train_model`), evaluation on photos (:func:`evaluate_model`) and
:func:`train_new_head`, which picks the fastest path that gives the same head.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, OptionError
from ..models import Backbone
from ..preprocess import Preprocess
from ..profile import default_progress
from .heads import evaluate_batches, evaluate_head, train_head, train_step
from .models import FineTuneModel, attach_head
from .results import Evaluation, TrainResult, new_history
from .runtime import model_device, seeded, training_device
from .settings import DEFAULTS, check_count, check_labels, check_n_classes, check_training


def split_parts(images, name: str = "images", *, unknown_ok: bool = False,
                ) -> tuple[list[Path], np.ndarray]:
    """A data split (``.paths``, ``.labels``) or a (paths, labels) pair: (paths, (n,) int64).

    The labels must be integer class indices >= 0, one per path (:func:`check_labels`);
    ``name`` ("train", "val", ...) is used in the messages; ``unknown_ok`` lets -1
    (no class) through, for decoding alone.
    """
    if hasattr(images, "paths") and hasattr(images, "labels"):
        paths, labels = images.paths, images.labels
    elif isinstance(images, (tuple, list)) and len(images) == 2:
        paths, labels = images
    else:
        raise InputError(f"{name} must be a data split (e.g. lab.dataset.train) or a (paths, labels) "
                         f"pair, not {type(images).__name__}")
    if isinstance(paths, (str, Path)):
        raise InputError(f"{name}: give a list of image paths, not one path ({paths})")
    paths = [Path(p) for p in paths]
    return paths, check_labels(labels, f"{name} labels", n_rows=len(paths), unknown_ok=unknown_ok)


def check_split(images, name: str, *, n_classes: int | None = None, loss: str = "ce",
                min_classes: int = 1) -> tuple[list[Path], np.ndarray]:
    """:func:`split_parts` plus: at least one image, ``min_classes`` classes, labels the
    model can predict (< ``n_classes``; 0/1 for BCE)."""
    paths, labels = split_parts(images, name)
    if not paths:
        raise InputError(f"{name} holds no image: give a split with images"
                         + (" (or leave it out)" if name in ("val", "test") else ""))
    check_labels(labels, f"{name} labels", n_classes=n_classes, loss=loss, min_classes=min_classes)
    return paths, labels


def check_decoded(X: torch.Tensor, y: torch.Tensor, skipped: list, name: str,
                   min_classes: int = 1) -> None:
    """Refuse a split none of whose images could be decoded, or that lost a class."""
    if len(X) == 0:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise InputError(f"none of the {len(skipped)} images of {name} could be decoded{first}: "
                         "check the files, or give a split with readable images")
    if min_classes > 1:
        check_labels(y.numpy(), f"{name} labels of the decodable images", min_classes=min_classes)


def model_outputs(model: nn.Module) -> tuple[int | None, str]:
    """(classes the model tells apart or None if unknown, "bce" for one logit else "ce"),
    read from its last ``nn.Linear``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None, "ce"
    out = linears[-1].out_features
    return (2, "bce") if out == 1 else (out, "ce")


def decode_images(images, preprocess: Preprocess, *, threads: int = DEFAULTS.threads,
                  progress: bool | None = None, desc: str = "decode",
                  ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Decode and resize every image once, kept in memory as uint8.

    Args:
        images: a data split or a (paths, labels) pair.
        preprocess: gives the size and resize policy (normalisation comes later).

    Returns:
        X (n_ok, 3, S, S) uint8, y (n_ok,) int64, skipped [(path, reason)]. uint8 is 4x
        smaller than float32: cats vs dogs at 224 px is 560 x 150 KB = 84 MB.
    """
    from tqdm.auto import tqdm

    from ..features import iter_batches

    paths, labels = split_parts(images, unknown_ok=True)  # decoding needs no class
    check_count("threads", threads)
    batches, keep, skipped = [], [], []
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not default_progress(progress),
               leave=False)
    for s, batch, ok, errors in iter_batches(paths, preprocess, DEFAULTS.eval_batch_size, threads=threads):
        batches.append(batch)
        keep.append(np.flatnonzero(ok) + s)
        skipped.extend(errors)
        bar.update(len(ok))
    bar.close()
    size = preprocess.size
    X = torch.cat(batches) if batches else torch.empty((0, 3, size, size), dtype=torch.uint8)
    rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return X, torch.from_numpy(labels[rows]), skipped


def augment_batch(x: torch.Tensor, gen: torch.Generator, flip: bool, pad: int) -> torch.Tensor:
    """Random horizontal flips and random crops (reflect-padded by ``pad``), per image.

    x: (N, 3, S, S) float -> same shape. Cats and dogs look the same mirrored; shifted
    crops teach a from-scratch CNN some translation invariance it cannot get from
    560 images.
    """
    n, _, h, w = x.shape
    if flip:
        mirror = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mirror.view(n, 1, 1, 1), x.flip(3), x)
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        x = torch.stack([padded[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(zip(dy, dx))])
    return x


def _image_transform(model: nn.Module, preprocess: Preprocess, channels_last: bool):
    """uint8 batch -> the model's input; with ``channels_last``, also puts the model's
    4-d weights in that memory layout (same values; convolutions on channels-last
    tensors are usually faster on a CPU: see benchmarks/README.md)."""
    if not channels_last:
        return preprocess.normalize
    model.to(memory_format=torch.channels_last)
    return lambda xb: preprocess.normalize(xb).contiguous(memory_format=torch.channels_last)


def fit(model: nn.Module, param_groups: list[dict], X: torch.Tensor, y: torch.Tensor,
         Xv: torch.Tensor | None, yv: torch.Tensor | None, preprocess: Preprocess, *,
         epochs: int | None, seconds: float | None, t_start: float, weight_decay: float,
         batch_size: int, flip: bool, pad: int, seed: int, progress: bool, desc: str,
         history: dict[str, list[float]], channels_last: bool = False) -> float:
    """The training loop shared by :func:`train_model` and :func:`train_from_scratch`.

    Stops after ``epochs`` epochs, or after the epoch during which ``seconds`` (counted
    from ``t_start``) ran out, whichever comes first. Appends to ``history``; returns
    the seconds spent in training steps (validation excluded), for images/s.
    """
    from tqdm.auto import tqdm

    transform = _image_transform(model, preprocess, channels_last)
    device = model_device(model)
    optimizer = torch.optim.Adam(param_groups, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n_batches = math.ceil(len(X) / batch_size)
    bar = tqdm(total=epochs * n_batches if epochs else None, desc=desc, unit="batch",
               disable=not default_progress(progress), leave=False)
    epoch, train_seconds = 0, 0.0
    while epochs is None or epoch < epochs:
        epoch += 1
        model.train()
        t_epoch = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            x = augment_batch(preprocess.normalize(X[idx]), gen, flip, pad).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            batch_loss, batch_correct = train_step(model, optimizer, x, y[idx].to(device))
            loss_sum += batch_loss
            correct += batch_correct
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{batch_loss / len(idx):.3f}")
        history["epoch_seconds"].append(time.perf_counter() - t_epoch)
        train_seconds += history["epoch_seconds"][-1]
        history["train_loss"].append(loss_sum / len(X))
        history["train_acc"].append(correct / len(X))
        if Xv is not None and len(Xv):
            val = evaluate_batches(model, Xv, yv, transform=transform)
            history["val_loss"].append(val.loss)
            history["val_acc"].append(val.accuracy)
        history["elapsed"].append(time.perf_counter() - t_start)
        if seconds is not None and history["elapsed"][-1] >= seconds:
            break
    bar.close()
    model.eval()
    return train_seconds


def train_model(
    model: nn.Module,
    train,
    val=None,
    *,
    preprocess: Preprocess | None = None,
    epochs: int = DEFAULTS.end_to_end_epochs,
    lr: float = DEFAULTS.lr,
    base_lr: float | None = None,
    weight_decay: float = DEFAULTS.weight_decay,
    batch_size: int = DEFAULTS.batch_size,
    augment: bool = DEFAULTS.augment,
    seed: int = DEFAULTS.seed,
    threads: int = DEFAULTS.threads,
    channels_last: bool = DEFAULTS.channels_last,
    device: str | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model`` end to end on image files with cross-entropy and Adam.

    Args:
        model: usually from :func:`attach_head`; any module taking normalised
            (N, 3, S, S) images and returning (N, K) logits works.
        train, val: data splits (``.paths``, ``.labels``) or (paths, labels) pairs;
            decoded once (:func:`decode_images`), undecodable files skipped.
        preprocess: resize + normalisation; default ``model.preprocess``.
        lr: learning rate of the head (and of a :class:`FineTuneModel`'s ``front``;
            of everything, for a plain module).
        base_lr: learning rate of the trainable base blocks of a
            :class:`FineTuneModel`; default ``lr * DEFAULTS.base_lr_factor``, i.e.
            ``lr / 10`` (pretrained weights need only small corrections, large steps
            would destroy what ImageNet taught them).
        augment: random horizontal flips of the training images.
        seed: shuffling, flips and dropout (the mini-batch order is drawn from a
            private generator seeded by ``seed``, as in :func:`train_head`).
        channels_last: store the model's 4-d weights and the image batches channels
            last (the same numbers up to float rounding, faster convolutions).
        device: where to train ("cpu", "cuda"); the model is moved there and stays
            there. Default: the run profile's (``ci``: the CPU, deterministic; ``full``:
            a CUDA GPU when there is one).

    Only parameters with ``requires_grad`` are optimised; frozen blocks stay in eval
    mode (see :class:`FineTuneModel`). Slow on a CPU: every epoch runs the base on
    every image. For a frozen base without augmentation :func:`train_head` on cached
    features gives the same head (same initial head, ``augment=False``, same
    settings: see :func:`train_head`) in a fraction of the time;
    :func:`train_new_head` picks that path by itself.
    """
    t0 = time.perf_counter()
    # Every check before the first image is decoded.
    check_training(epochs=epochs, lr=lr, base_lr=base_lr, weight_decay=weight_decay,
                   batch_size=batch_size, seed=seed)
    preprocess = preprocess or getattr(model, "preprocess", None)
    if preprocess is None:
        raise OptionError("train_model needs preprocess= (the model does not carry one)")
    n_classes, loss = model_outputs(model)
    check_split(train, "train", n_classes=n_classes, loss=loss, min_classes=2)
    if val is not None:
        check_split(val, "val", n_classes=n_classes, loss=loss)
    groups = param_groups(model, lr, base_lr)
    model.to(training_device(device))
    X, y, skipped = decode_images(train, preprocess, threads=threads, progress=progress,
                                  desc="decode train")
    check_decoded(X, y, skipped, "train", min_classes=2)
    Xv = yv = None
    if val is not None:
        Xv, yv, more = decode_images(val, preprocess, threads=threads, progress=progress,
                                     desc="decode val")
        check_decoded(Xv, yv, more, "val")
        skipped += more
    history = new_history()
    with seeded(seed):
        train_seconds = fit(
            model, groups, X, y, Xv, yv, preprocess, epochs=epochs, seconds=None, t_start=t0,
            weight_decay=weight_decay, batch_size=batch_size, flip=augment, pad=0, seed=seed,
            progress=progress, desc="fine-tune", history=history, channels_last=channels_last)
    n_seen = len(X) * len(history["train_loss"])
    return TrainResult(model=model, history=history, seconds=time.perf_counter() - t0,
                       images_per_second=n_seen / train_seconds if train_seconds > 0 else float("inf"),
                       skipped=skipped)


def param_groups(model: nn.Module, lr: float, base_lr: float | None) -> list[dict]:
    """Adam's parameter groups: the head (and front) at ``lr``, trainable base blocks of a
    :class:`FineTuneModel` at ``base_lr``; an :class:`OptionError` when nothing trains."""
    if isinstance(model, FineTuneModel):
        base = [p for p in model.base.parameters() if p.requires_grad]
        new = [*(model.front.parameters() if model.front is not None else ()),
               *model.head.parameters()]
        groups = [{"params": [p for p in new if p.requires_grad], "lr": lr}]
        if base:
            groups.append({"params": base,
                           "lr": lr * DEFAULTS.base_lr_factor if base_lr is None else base_lr})
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    if not any(group["params"] for group in groups):
        raise OptionError("the model has no trainable parameter (requires_grad is False everywhere): "
                          "unfreeze the head, or attach_head(..., freeze=...) to train base blocks")
    return groups


def evaluate_model(model: nn.Module, images, preprocess: Preprocess | None = None, *,
                   batch_size: int = DEFAULTS.eval_batch_size, threads: int = DEFAULTS.threads,
                   channels_last: bool = DEFAULTS.channels_last) -> Evaluation:
    """An image model on a data split (or a (paths, labels) pair), in eval mode.

    Returns :class:`Evaluation`: accuracy, mean loss, predictions (n,), labels (n,) and
    paths of the images that could be decoded (for a confusion matrix and the
    mistakes). ``channels_last``: as in :func:`train_model`. Runs where the model's
    parameters are (it is not moved).
    """
    preprocess = preprocess or getattr(model, "preprocess", None)
    if preprocess is None:
        raise OptionError("evaluate_model needs preprocess= (the model does not carry one)")
    check_count("batch_size", batch_size)
    n_classes, loss = model_outputs(model)
    all_paths, _ = check_split(images, "split", n_classes=n_classes, loss=loss)
    X, y, skipped = decode_images(images, preprocess, threads=threads)
    check_decoded(X, y, skipped, "the split")
    bad = {p for p, _ in skipped}
    paths = [p for p in all_paths if str(p) not in bad]
    transform = _image_transform(model, preprocess, channels_last)
    return evaluate_batches(model, X, y, batch_size, transform=transform)._replace(paths=paths)


def train_new_head(
    backbone: Backbone,
    train,
    val=None,
    test=None,
    *,
    layer: str | None = None,
    hidden: int = 0,
    dropout: float = 0.0,
    loss: str = "ce",
    epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    weight_decay: float = DEFAULTS.weight_decay,
    batch_size: int = DEFAULTS.batch_size,
    augment: bool = DEFAULTS.augment,
    path: str = "auto",
    head: nn.Module | None = None,
    seed: int = DEFAULTS.seed,
    cache: bool = True,
    engine=None,
    device: str | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """A new head on ``backbone``'s frozen base, trained by the fastest path that allows it.

    Args:
        backbone: the pretrained network (its base is copied and frozen:
            ``attach_head(backbone, K, layer=..., freeze="all")``).
        train, val, test: data splits; ``val`` is scored after every epoch (learning
            curves), ``test`` once at the end (``result.test``).
        layer, hidden, dropout, loss: the base's cut and the head (:func:`attach_head`).
        epochs, lr, weight_decay, batch_size, seed: as in :func:`train_model`.
        augment: random horizontal flips (forces the end-to-end path).
        path: "auto" (the default): "features" unless ``augment``; or force
            "features" or "end-to-end".
        head: the initial head (default: a new one seeded by ``seed``).
        cache, engine: for the extraction (path "features"); engine defaults to the
            run profile's (:class:`tplib.engine.Engine`; the ``ci`` profile pins fp32).
        device: where the end-to-end path trains (:func:`train_model`); the head on
            features always trains on the CPU (it is tiny).

    The two paths (``result.path`` says which one ran):

    - "features": the frozen base gives an image the same output at every epoch, so
      it is computed once (:func:`tplib.extract_features`, cached on disk) and the head
      trains on the (n, d) matrices (:func:`train_head`): an epoch costs milliseconds.
    - "end-to-end": every step runs the images through base and head
      (:func:`train_model`); needed for augmentation, whose images change every epoch.

    Both give the same head up to float rounding (:func:`train_head` says why) when
    the extraction runs in fp32 (the ``ci`` profile; bf16 features, the ``full``
    profile's choice on CPUs with native bf16, round the features to 3 digits), so
    "auto" loses nothing. Returns a :class:`TrainResult` whose ``model`` is the
    :class:`FineTuneModel` (frozen base + trained head) in eval mode, whose
    ``history`` has the per-epoch curves (and "epoch_seconds"), and whose ``seconds``
    include extraction (or decoding).
    """
    from ..features import extract_features

    if path not in ("auto", "features", "end-to-end"):
        raise OptionError(f"path must be 'auto', 'features' or 'end-to-end', not {path!r}")
    if path == "auto":
        path = "end-to-end" if augment else "features"
    if path == "features" and augment:
        raise OptionError("augmented images change every epoch, so their features cannot be "
                         "computed once: use path='end-to-end' (or augment=False)")
    check_training(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed)
    _, labels = check_split(train, "train", min_classes=2)
    n_classes = len(train.classes) if hasattr(train, "classes") else int(labels.max()) + 1
    if head is not None:
        n_classes, loss = model_outputs(head)[0] or n_classes, model_outputs(head)[1]
    n_classes = check_n_classes(n_classes, loss)
    check_split(train, "train", n_classes=n_classes, loss=loss, min_classes=2)
    for name, split in (("val", val), ("test", test)):
        if split is not None:
            check_split(split, name, n_classes=n_classes, loss=loss)
    model = attach_head(backbone, n_classes, layer=layer, hidden=hidden, dropout=dropout,
                        loss=loss, freeze="all", head=head, seed=seed)
    if path == "end-to-end":
        result = train_model(model, train, val, epochs=epochs, lr=lr, weight_decay=weight_decay,
                             batch_size=batch_size, augment=augment, seed=seed, device=device,
                             progress=progress)
        if test is not None:
            result.test = evaluate_model(model, test)
        return result

    t0 = time.perf_counter()
    layer = layer or backbone.default_layer

    def features(split, name):
        found = extract_features(backbone, split, layer, cache=cache, progress=progress,
                                 desc=f"{getattr(split, 'name', name)} {layer}", engine=engine)
        check_decoded(found[layer], torch.from_numpy(np.asarray(found.labels)), found.skipped, name,
                       min_classes=2 if name == "train" else 1)
        return found
    ftrain = features(train, "train")
    fval = features(val, "val") if val is not None else None
    trained = train_head(ftrain[layer], ftrain.labels,
                         fval[layer] if fval is not None else None,
                         fval.labels if fval is not None else None,
                         head=model.head, epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, n_classes=n_classes, seed=seed, progress=progress)
    model.head = trained.head
    model.eval()
    skipped = ftrain.skipped + (fval.skipped if fval is not None else [])
    result = TrainResult(
        model=model, history=trained.history, seconds=time.perf_counter() - t0,
        images_per_second=(len(ftrain.labels) * epochs / sum(trained.history["epoch_seconds"])
                           if sum(trained.history["epoch_seconds"]) > 0 else float("inf")),
        skipped=skipped, path="features")
    if test is not None:
        ftest = features(test, "test")
        result.test = evaluate_head(model.head, ftest[layer], ftest.labels)._replace(
            paths=[Path(p) for p in ftest.paths])
    return result
