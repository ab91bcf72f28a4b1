"""Fine-tuning a new head on a frozen (or partly frozen) pretrained base.

The lecture's variant of transfer learning: keep the convolutional base of an
ImageNet network, throw away its classifier, put a small new head on top and train
only the head (frozen base), or the head plus the last blocks of the base
(fine-tuning), on cats vs dogs. The lecture's numbers: a frozen VGG16 base with a
small head reaches about 98% where a small CNN trained from scratch on the same
images stays around 86%. Taught in notebook 06 (and Q11 of the lab: "replace the
last layer by a new FC layer and train it, with or without gradients into the rest").

Two ways to train a head, same result for a frozen base without augmentation:

- **Fast path** (:func:`train_head`): the base is frozen, so its output for an image
  never changes. Compute it once with :func:`tplib.features.extract_features` (cached
  on disk) and train the head on the (n, d) matrix: an epoch costs milliseconds.
- **End-to-end path** (:func:`attach_head` + :func:`train_model`): images go through
  base and head at every step. Needed when gradients flow into the base
  (``freeze="none"`` or the last k blocks) or for data augmentation; slow on a CPU.

And the comparison: :class:`SmallCNN` trained from scratch by
:func:`train_from_scratch` under the same wall-clock budget.

Everything is seeded and runs deterministically on the CPU (the global torch RNG is
left as it was); progress bars (``tqdm.auto``) are off unless ``progress=True``.
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import TplibError
from .models import Backbone
from .preprocess import Preprocess

__all__ = [
    "HeadResult", "TrainResult", "ScratchResult", "make_head", "train_head",
    "evaluate_head", "FineTuneModel", "attach_head", "train_model", "evaluate_model",
    "SmallCNN", "train_from_scratch", "decode_images",
]

_HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "elapsed")


def _new_history() -> dict[str, list[float]]:
    """Per-epoch lists; "val_*" stay empty without validation data, "elapsed" is
    the wall-clock time (s) at the end of each epoch (for accuracy-vs-time plots)."""
    return {key: [] for key in _HISTORY_KEYS}


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """A private RNG scope: seeds torch inside, restores the caller's RNG state after.

    Layer initialisation and dropout draw from torch's global RNG; forking it makes a
    run reproducible without changing what the caller's next random call returns.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# =========================================================== fast path: features
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


def make_head(in_features: int, n_classes: int, hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """A new classification head: (N, in_features) -> (N, n_classes) logits.

    ``hidden=0``: one ``nn.Linear`` (logistic regression on the features; what the
    lab's "replace the last layer by a new FC layer" means). ``hidden>0``: Linear ->
    ReLU -> Dropout -> Linear, the lecture's small head (Dense 256 + output).
    ``dropout`` with ``hidden=0`` drops input features before the Linear.
    """
    if hidden < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"need hidden >= 0 and 0 <= dropout < 1, got {hidden}, {dropout}")
    if hidden == 0:
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        return nn.Sequential(*layers, nn.Linear(in_features, n_classes))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, n_classes))


def _as_features(X) -> torch.Tensor:
    """(n, d) array (float16/32, memory-mapped or not) -> contiguous float32 tensor."""
    X = np.ascontiguousarray(np.asarray(X), dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"features must be an (n, d) matrix, got shape {X.shape}")
    return torch.from_numpy(X)


def _as_labels(y, n: int) -> torch.Tensor:
    y = torch.from_numpy(np.ascontiguousarray(np.asarray(y), dtype=np.int64))
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    if n and int(y.min()) < 0:
        raise ValueError("labels must be class indices >= 0 (-1 means unknown: drop those rows)")
    return y


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor) -> tuple[float, int]:
    """One cross-entropy step on a batch; returns (summed loss, correct predictions)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item() * len(y), int((logits.argmax(1) == y).sum())


@torch.no_grad()
def _loss_and_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                       batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on (X, y)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, len(X), batch_size):
        logits = model(X[s:s + batch_size])
        loss += float(F.cross_entropy(logits, y[s:s + batch_size], reduction="sum"))
        correct += int((logits.argmax(1) == y[s:s + batch_size]).sum())
    model.train(was_training)
    n = max(len(X), 1)
    return loss / n, correct / n


def train_head(
    X_train, y_train, X_val=None, y_val=None, *,
    hidden: int = 0,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    dropout: float = 0.0,
    n_classes: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> HeadResult:
    """Train a new head on frozen-base features with cross-entropy and Adam.

    Args:
        X_train: (n, d) float features, e.g. ``extract_features(backbone, split,
            "pooled")["pooled"]``; y_train: (n,) int class indices.
        X_val, y_val: optional held-out features/labels, scored after every epoch.
        hidden, dropout: the head's shape (see :func:`make_head`).
        epochs, lr, weight_decay, batch_size: Adam on shuffled mini-batches.
        n_classes: default ``max(labels) + 1``.
        seed: initialisation, shuffling and dropout; the same seed gives the same head.

    Returns:
        :class:`HeadResult`; ``history["train_loss"]`` etc. have ``epochs`` entries.
        The train loss/accuracy of an epoch are averages over its mini-batches (with
        dropout on, as the model was while learning), the val ones a clean pass.
    """
    from tqdm.auto import tqdm

    X = _as_features(X_train)
    y = _as_labels(y_train, len(X))
    has_val = X_val is not None
    if has_val:
        Xv = _as_features(X_val)
        yv = _as_labels(y_val, len(Xv))
    n_classes = n_classes or int(max(int(y.max()), int(yv.max()) if has_val else 0)) + 1
    history = _new_history()
    t0 = time.perf_counter()
    # One thread: a head's matrices are so small that thread synchronisation costs
    # more than the arithmetic (measured here: 30 epochs on 560 x 1280 features take
    # 0.2 s on one thread, over 10 s on two when the other core is busy).
    with _seeded(seed), _torch_threads(1):
        head = make_head(X.shape[1], n_classes, hidden=hidden, dropout=dropout)
        optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
        # A private generator for the shuffling order: reproducible, independent of
        # how many random numbers dropout has drawn.
        order_rng = torch.Generator().manual_seed(seed)
        bar = tqdm(range(epochs), desc="head", unit="epoch", disable=not progress, leave=False)
        for _ in bar:
            head.train()
            loss_sum, correct = 0.0, 0
            for idx in torch.randperm(len(X), generator=order_rng).split(batch_size):
                batch_loss, batch_correct = _train_step(head, optimizer, X[idx], y[idx])
                loss_sum += batch_loss
                correct += batch_correct
            history["train_loss"].append(loss_sum / len(X))
            history["train_acc"].append(correct / len(X))
            if has_val:
                vloss, vacc = _loss_and_accuracy(head, Xv, yv)
                history["val_loss"].append(vloss)
                history["val_acc"].append(vacc)
            history["elapsed"].append(time.perf_counter() - t0)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                            **({"val_acc": f"{history['val_acc'][-1]:.3f}"} if has_val else {}))
        bar.close()
    return HeadResult(head=head.eval(), history=history, seconds=time.perf_counter() - t0)


def evaluate_head(head: nn.Module, X, y) -> float:
    """Accuracy of ``head`` on features X (n, d) with labels y (n,): a float in [0, 1]."""
    Xt = _as_features(X)
    return _loss_and_accuracy(head, Xt, _as_labels(y, len(Xt)))[1]


# ====================================================== end-to-end: base + head
class _VGGBase(nn.Module):
    """VGG16 up to relu7 (what ``backbone.default_layer`` gives): (N, 3, H, W) -> (N, 4096).

    Keeps torchvision's module names (``features.*``, ``classifier.0-4``) so that
    block names match :data:`tplib.models.VGG16_LAYERS`.
    """

    def __init__(self, vgg: nn.Module):
        super().__init__()
        self.features = copy.deepcopy(vgg.features)
        self.avgpool = copy.deepcopy(vgg.avgpool)
        self.classifier = nn.Sequential(*[copy.deepcopy(m) for m in list(vgg.classifier)[:5]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _base_from_backbone(backbone: Backbone) -> tuple[nn.Module, int, list[tuple[str, list[str]]]]:
    """A copy of the backbone up to its default layer: (base, output dim, blocks).

    ``blocks`` lists (name, module names in ``base``) in forward order: the units that
    ``freeze=k`` unfreezes from the top.
    """
    model = backbone.model
    if backbone.name == "vgg16":
        base = _VGGBase(model)
        pools = [i for i, m in enumerate(base.features) if isinstance(m, nn.MaxPool2d)]
        blocks, start = [], 0
        for b, stop in enumerate(pools, start=1):
            blocks.append((f"block{b}", [f"features.{i}" for i in range(start, stop + 1)]))
            start = stop + 1
        blocks += [("fc6", ["classifier.0", "classifier.1", "classifier.2"]),
                   ("fc7", ["classifier.3", "classifier.4"])]
        return base, 4096, blocks
    if hasattr(model, "reset_classifier") and hasattr(model, "blocks"):  # timm EfficientNet
        base = copy.deepcopy(model)
        base.reset_classifier(0)  # classifier -> Identity: forward gives the pooled features
        blocks = [("stem", ["conv_stem", "bn1"])]
        blocks += [(f"block{i + 1}", [f"blocks.{i}"]) for i in range(len(base.blocks))]
        blocks += [("head", ["conv_head", "bn2"])]
        return base, int(base.num_features), blocks
    raise TplibError(f"attach_head does not know where to cut {backbone.name}; build "
                     "FineTuneModel(base, head) yourself with a base that outputs (N, d)")


class FineTuneModel(nn.Module):
    """A base network (frozen, partly frozen or not) followed by a new head.

    (N, 3, S, S) normalised images -> base -> (N, d) features -> head -> (N, K) logits.

    Args:
        base: module whose output is (N, d).
        head: module (N, d) -> (N, K), e.g. from :func:`make_head` or :func:`train_head`.
        blocks: [(name, [module names in base])] in forward order; needed for an
            integer ``freeze``. Default: the whole base is one block.
        freeze: "all" (only the head trains: the lab's feature extraction + new layer),
            "none" (gradients flow into the whole base), or an int k: the last k blocks
            of the base train too, the earlier ones stay frozen (fine-tuning).
        freeze_bn: keep every BatchNorm of the base in eval mode, even in trainable
            blocks (the usual advice: small batches give noisy batch statistics that
            would overwrite ImageNet's; their scale and shift still learn).
        preprocess: how images become input tensors (default for :func:`train_model`).

    Frozen parameters have ``requires_grad=False`` and frozen blocks stay in eval mode
    whatever ``.train()`` says, so their BatchNorm running statistics never drift and
    their dropout stays off. With the whole base frozen, it runs under ``no_grad``.
    """

    def __init__(self, base: nn.Module, head: nn.Module, *, blocks=None, freeze="all",
                 freeze_bn: bool = True, preprocess: Preprocess | None = None):
        super().__init__()
        self.base = base
        self.head = head
        self.blocks = [(name, list(mods)) for name, mods in (blocks or [("base", [""])])]
        self.freeze_bn = freeze_bn
        self.preprocess = preprocess
        if freeze == "all":
            k = 0
        elif freeze == "none":
            k = len(self.blocks)
        elif isinstance(freeze, int) and not isinstance(freeze, bool) and 0 <= freeze <= len(self.blocks):
            k = freeze
        else:
            raise ValueError(f"freeze must be 'all', 'none' or an int in [0, {len(self.blocks)}] "
                             f"(number of last base blocks to train), not {freeze!r}")
        self.freeze = freeze
        self.trainable_blocks = [name for name, _ in self.blocks[len(self.blocks) - k:]]
        modules = dict(base.named_modules())
        for p in base.parameters():  # parameters outside every block train only with "none"
            p.requires_grad_(freeze == "none")
        self._frozen_modules: list[str] = []
        for name, mods in self.blocks:
            trainable = name in self.trainable_blocks
            for m in mods:
                if m not in modules:
                    raise ValueError(f"block {name!r}: base has no module {m!r}")
                modules[m].requires_grad_(trainable)
                if not trainable:
                    self._frozen_modules.append(m)
        self.base_frozen = not any(p.requires_grad for p in base.parameters())
        self.train(False)

    def train(self, mode: bool = True) -> "FineTuneModel":
        super().train(mode)
        if mode:
            modules = dict(self.base.named_modules())
            if self.base_frozen:
                self.base.eval()
            for m in self._frozen_modules:
                modules[m].eval()
            if self.freeze_bn:
                for m in self.base.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.base_frozen:
            with torch.no_grad():  # no graph through a base nobody trains: less memory
                features = self.base(x)
        else:
            features = self.base(x)
        return self.head(features)

    def parameter_counts(self) -> dict[str, int]:
        """{"base_frozen", "base_trainable", "head"}: numbers of parameters."""
        frozen = sum(p.numel() for p in self.base.parameters() if not p.requires_grad)
        trainable = sum(p.numel() for p in self.base.parameters() if p.requires_grad)
        return {"base_frozen": frozen, "base_trainable": trainable,
                "head": sum(p.numel() for p in self.head.parameters())}

    def describe(self) -> str:
        """One line: what trains and what does not."""
        c = self.parameter_counts()
        which = ("whole base frozen" if self.base_frozen
                 else f"base blocks trained: {', '.join(self.trainable_blocks)}")
        return (f"{which}; base {c['base_frozen']:,} frozen + {c['base_trainable']:,} "
                f"trainable parameters, head {c['head']:,}")


def attach_head(backbone: Backbone, n_classes: int, *, hidden: int = 0, dropout: float = 0.0,
                freeze: str | int = "all", freeze_bn: bool = True, head: nn.Module | None = None,
                seed: int = 0) -> FineTuneModel:
    """A copy of ``backbone``'s base with a new head, ready for :func:`train_model`.

    The base ends at ``backbone.default_layer`` (VGG16: relu7, 4096-d; EfficientNet-
    Lite: the pooled 1280-d features), so a head trained by :func:`train_head` on
    ``extract_features(backbone, ..., backbone.default_layer)`` plugs in unchanged
    (``head=result.head``). The base is a deep copy: training it never changes
    ``backbone.model`` (whose features the feature cache keys by its weights).

    Blocks for an integer ``freeze`` (see :class:`FineTuneModel`): VGG16 block1..block5,
    fc6, fc7; EfficientNet stem, block1..block7, head (conv_head + BN).
    """
    base, dim, blocks = _base_from_backbone(backbone)
    if head is None:
        with _seeded(seed):
            head = make_head(dim, n_classes, hidden=hidden, dropout=dropout)
    return FineTuneModel(base, head, blocks=blocks, freeze=freeze, freeze_bn=freeze_bn,
                         preprocess=backbone.preprocess)


# ------------------------------------------------------------ images in memory
def _split_parts(images) -> tuple[list[Path], np.ndarray]:
    """A data split (``.paths``, ``.labels``) or a (paths, labels) pair."""
    if hasattr(images, "paths"):
        paths, labels = images.paths, images.labels
    else:
        paths, labels = images
    return [Path(p) for p in paths], np.asarray(labels, dtype=np.int64)


def decode_images(images, preprocess: Preprocess, *, threads: int = 2, progress: bool = False,
                  desc: str = "decode") -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Decode and resize every image once, kept in memory as uint8.

    Args:
        images: a data split or a (paths, labels) pair.
        preprocess: gives the size and resize policy (normalisation comes later).

    Returns:
        X (n_ok, 3, S, S) uint8, y (n_ok,) int64, skipped [(path, reason)]. uint8 is 4x
        smaller than float32: cats vs dogs at 224 px is 560 x 150 KB = 84 MB.
    """
    from tqdm.auto import tqdm

    from .features import iter_batches

    paths, labels = _split_parts(images)
    batches, keep, skipped = [], [], []
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, leave=False)
    for s, batch, ok, errors in iter_batches(paths, preprocess, 64, threads=threads):
        batches.append(batch)
        keep.append(np.flatnonzero(ok) + s)
        skipped.extend(errors)
        bar.update(len(ok))
    bar.close()
    size = preprocess.size
    X = torch.cat(batches) if batches else torch.empty((0, 3, size, size), dtype=torch.uint8)
    rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return X, torch.from_numpy(labels[rows]), skipped


def _augment(x: torch.Tensor, gen: torch.Generator, flip: bool, pad: int) -> torch.Tensor:
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


@torch.no_grad()
def _evaluate_images(model: nn.Module, X: torch.Tensor, y: torch.Tensor, preprocess: Preprocess,
                     batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on uint8 images X (n, 3, S, S)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, len(X), batch_size):
        logits = model(preprocess.normalize(X[s:s + batch_size]))
        loss += float(F.cross_entropy(logits, y[s:s + batch_size], reduction="sum"))
        correct += int((logits.argmax(1) == y[s:s + batch_size]).sum())
    model.train(was_training)
    n = max(len(X), 1)
    return loss / n, correct / n


def _fit(model: nn.Module, param_groups: list[dict], X: torch.Tensor, y: torch.Tensor,
         Xv: torch.Tensor | None, yv: torch.Tensor | None, preprocess: Preprocess, *,
         epochs: int | None, seconds: float | None, t_start: float, weight_decay: float,
         batch_size: int, flip: bool, pad: int, seed: int, progress: bool, desc: str,
         history: dict[str, list[float]]) -> float:
    """The training loop shared by :func:`train_model` and :func:`train_from_scratch`.

    Stops after ``epochs`` epochs, or after the epoch during which ``seconds`` (counted
    from ``t_start``) ran out, whichever comes first. Appends to ``history``; returns
    the seconds spent in training steps (validation excluded), for images/s.
    """
    from tqdm.auto import tqdm

    optimizer = torch.optim.Adam(param_groups, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n_batches = math.ceil(len(X) / batch_size)
    bar = tqdm(total=epochs * n_batches if epochs else None, desc=desc, unit="batch",
               disable=not progress, leave=False)
    epoch, train_seconds = 0, 0.0
    while epochs is None or epoch < epochs:
        epoch += 1
        model.train()
        t_epoch = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            x = _augment(preprocess.normalize(X[idx]), gen, flip, pad)
            batch_loss, batch_correct = _train_step(model, optimizer, x, y[idx])
            loss_sum += batch_loss
            correct += batch_correct
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{batch_loss / len(idx):.3f}")
        train_seconds += time.perf_counter() - t_epoch
        history["train_loss"].append(loss_sum / len(X))
        history["train_acc"].append(correct / len(X))
        if Xv is not None and len(Xv):
            vloss, vacc = _evaluate_images(model, Xv, yv, preprocess, batch_size * 2)
            history["val_loss"].append(vloss)
            history["val_acc"].append(vacc)
        history["elapsed"].append(time.perf_counter() - t_start)
        if seconds is not None and history["elapsed"][-1] >= seconds:
            break
    bar.close()
    model.eval()
    return train_seconds


@dataclass
class TrainResult:
    """What :func:`train_model` reports.

    Attributes:
        model: the trained model (same object as given), in eval mode.
        history: per-epoch "train_loss", "train_acc", "val_loss", "val_acc", "elapsed".
        seconds: wall-clock time, decoding included; images_per_second: training
            images processed per second of training (decoding and validation excluded).
        skipped: [(path, reason)] images that could not be decoded.
    """

    model: nn.Module
    history: dict[str, list[float]]
    seconds: float
    images_per_second: float
    skipped: list[tuple[str, str]] = field(default_factory=list)


def train_model(
    model: nn.Module,
    train,
    val=None,
    *,
    preprocess: Preprocess | None = None,
    epochs: int = 3,
    lr: float = 1e-3,
    base_lr: float | None = None,
    weight_decay: float = 1e-4,
    batch_size: int = 16,
    augment: bool = True,
    seed: int = 0,
    threads: int = 2,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` end to end on image files with cross-entropy and Adam.

    Args:
        model: usually from :func:`attach_head`; any module taking normalised
            (N, 3, S, S) images and returning (N, K) logits works.
        train, val: data splits (``.paths``, ``.labels``) or (paths, labels) pairs;
            decoded once (:func:`decode_images`), undecodable files skipped.
        preprocess: resize + normalisation; default ``model.preprocess``.
        lr: learning rate of the head (of everything, for a plain module).
        base_lr: learning rate of the trainable base blocks of a
            :class:`FineTuneModel`; default ``lr / 10`` (pretrained weights need only
            small corrections, large steps would destroy what ImageNet taught them).
        augment: random horizontal flips of the training images.

    Only parameters with ``requires_grad`` are optimised; frozen blocks stay in eval
    mode (see :class:`FineTuneModel`). Slow on a CPU: every epoch runs the base on
    every image. For a frozen base without augmentation :func:`train_head` on cached
    features gives the same kind of head in a fraction of the time.
    """
    t0 = time.perf_counter()
    preprocess = preprocess or getattr(model, "preprocess", None)
    if preprocess is None:
        raise ValueError("train_model needs preprocess= (the model does not carry one)")
    X, y, skipped = decode_images(train, preprocess, threads=threads, progress=progress,
                                  desc="decode train")
    Xv = yv = None
    if val is not None:
        Xv, yv, more = decode_images(val, preprocess, threads=threads, progress=progress,
                                     desc="decode val")
        skipped += more
    if isinstance(model, FineTuneModel):
        base = [p for p in model.base.parameters() if p.requires_grad]
        groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": lr}]
        if base:
            groups.append({"params": base, "lr": lr / 10 if base_lr is None else base_lr})
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    history = _new_history()
    with _seeded(seed):
        train_seconds = _fit(
            model, groups, X, y, Xv, yv, preprocess, epochs=epochs, seconds=None, t_start=t0,
            weight_decay=weight_decay, batch_size=batch_size, flip=augment, pad=0, seed=seed,
            progress=progress, desc="fine-tune", history=history)
    n_seen = len(X) * len(history["train_loss"])
    return TrainResult(model=model, history=history, seconds=time.perf_counter() - t0,
                       images_per_second=n_seen / train_seconds if train_seconds > 0 else float("inf"),
                       skipped=skipped)


def evaluate_model(model: nn.Module, images, preprocess: Preprocess | None = None, *,
                   batch_size: int = 32, threads: int = 2) -> float:
    """Accuracy of an image model on a data split (or (paths, labels) pair)."""
    preprocess = preprocess or getattr(model, "preprocess", None)
    if preprocess is None:
        raise ValueError("evaluate_model needs preprocess= (the model does not carry one)")
    X, y, _ = decode_images(images, preprocess, threads=threads)
    return _evaluate_images(model, X, y, preprocess, batch_size)[1]


# ============================================================= from scratch
class SmallCNN(nn.Module):
    """A small CNN for training from scratch: the baseline transfer learning beats.

    Four blocks of 3x3 conv -> BatchNorm -> ReLU -> 2x2 max-pool (channels width, 2w,
    4w, 8w; each block halves the image), global average pooling, dropout, a linear
    layer. (N, in_channels, H, W) -> (N, n_classes) for any H, W >= 16. With
    ``width=32``: about 390k parameters, 0.3% of VGG16's 138M.
    """

    def __init__(self, n_classes: int, in_channels: int = 3, width: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(4):
            out = width * 2 ** i
            # No conv bias: the BatchNorm right after has its own shift.
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class ScratchResult(NamedTuple):
    """What :func:`train_from_scratch` returns (unpacks as a 4-tuple).

    model: trained :class:`SmallCNN` (eval mode); history: per-epoch lists, "val_*"
    measured on the test split; test_accuracy: after the last epoch (no picking of
    the best epoch: that would tune on the test set); seconds: wall clock, decoding
    included.
    """

    model: SmallCNN
    history: dict[str, list[float]]
    test_accuracy: float
    seconds: float


def train_from_scratch(
    train_split,
    test_split,
    *,
    image_size: int = 64,
    seconds: float | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    width: int = 32,
    seed: int = 0,
    threads: int = 2,
    progress: bool = False,
) -> ScratchResult:
    """Train a :class:`SmallCNN` from random weights on the training images.

    Images are decoded once, resized to ``image_size`` square (uint8 in memory), and
    augmented with random flips and random crops (reflect padding of image_size/16).
    Training stops after ``epochs`` epochs or after the epoch during which the
    wall-clock budget ``seconds`` runs out (counted from the call, decoding included,
    so it compares with the frozen path's extraction + head time), whichever comes
    first. With a time budget, the number of epochs (and so the result) depends on
    the machine's speed; with ``epochs`` the run is deterministic on a given CPU.

    Why 64 px by default: on a 2-core CPU an epoch over 560 images takes about 20 s at
    64 px but 40-80 s at 128 px, so a one-minute budget would give the network one or
    two epochs (still at chance, 0.50-0.56 on cats vs dogs) instead of three to five
    (about 0.6). Use 128 on a GPU.

    Args:
        train_split, test_split: data splits (or (paths, labels) pairs).

    Returns:
        :class:`ScratchResult` (model, history, test_accuracy, seconds).
    """
    if seconds is None and epochs is None:
        raise ValueError("give a time budget (seconds=) or a number of epochs (epochs=)")
    t0 = time.perf_counter()
    # Centring with ImageNet's statistics is as good as any for a network that learns
    # its own filters; only the scale matters for the optimiser.
    preprocess = Preprocess(size=image_size, interpolation="bilinear")
    X, y, _ = decode_images(train_split, preprocess, threads=threads, progress=progress,
                            desc="decode train")
    Xt, yt, _ = decode_images(test_split, preprocess, threads=threads, progress=progress,
                              desc="decode test")
    n_classes = int(max(int(y.max()), int(yt.max()) if len(yt) else 0)) + 1
    history = _new_history()
    with _seeded(seed):
        model = SmallCNN(n_classes, width=width)
        _fit(model, [{"params": list(model.parameters()), "lr": lr}], X, y, Xt, yt, preprocess,
             epochs=epochs, seconds=seconds, t_start=t0, weight_decay=weight_decay,
             batch_size=batch_size, flip=True, pad=max(1, image_size // 16), seed=seed,
             progress=progress, desc="from scratch", history=history)
    accuracy = history["val_acc"][-1] if history["val_acc"] else float("nan")
    return ScratchResult(model, history, accuracy, time.perf_counter() - t0)
