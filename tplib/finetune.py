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

Both paths give the same head (same initial head, same mini-batches, same seed, no
augmentation: :func:`train_head` says why, ``tests/test_finetune_06.py`` checks it),
so :func:`train_new_head` takes the fast one whenever it can and says which it took.

And the comparison: :class:`SmallCNN` trained from scratch by
:func:`train_from_scratch` under the same wall-clock budget. For grayscale photos:
:func:`grayscale_input` (photos converted to gray, copied to 3 channels),
:class:`GrayToRGB` / :func:`add_gray_front` (a learnable 1 -> 3 convolution in front
of the base) and :func:`gray_conv` (the first convolution's weights summed over RGB,
the same as copying the channel). :func:`train_mode_effect` shows why a frozen base
with BatchNorm stays in eval mode.

Everything is seeded and runs deterministically on the CPU (the global torch RNG is
left as it was); end-to-end training runs on the run profile's device (``ci``: the CPU;
``full``: a CUDA GPU when there is one, which is not bit-for-bit deterministic).
Progress bars (``tqdm.auto``) follow the run profile unless ``progress`` is given.
"""
from __future__ import annotations

import copy
import math
import numbers
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError, OptionError, TplibError
from .models import Backbone
from .preprocess import Preprocess
from .profile import default_progress

__all__ = [
    "HeadResult", "TrainResult", "ScratchResult", "Evaluation", "make_head", "train_head",
    "evaluate_head", "FineTuneModel", "attach_head", "cut_base", "forward_until", "train_step",
    "train_model", "evaluate_model", "loss_and_predictions", "save_checkpoint",
    "load_checkpoint", "SmallCNN", "train_from_scratch", "decode_images", "train_new_head",
    "validation_split", "GrayToRGB", "add_gray_front", "gray_conv", "grayscale_input", "TrainModeEffect",
    "train_mode_effect",
]

LOSSES = ("ce", "bce")

_HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "elapsed", "epoch_seconds")


def _new_history() -> dict[str, list[float]]:
    """Per-epoch lists; "val_*" stay empty without validation data, "elapsed" is
    the wall-clock time (s) at the end of each epoch (for accuracy-vs-time plots),
    "epoch_seconds" the time of the epoch's training steps alone (no validation, no
    decoding: what an epoch costs, for comparing training paths)."""
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
    if hidden < 0 or not 0.0 <= dropout < 1.0:
        raise OptionError(f"need hidden >= 0 and 0 <= dropout < 1, got {hidden}, {dropout}")
    outputs = _n_outputs(n_classes, loss)
    if hidden == 0:
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        return nn.Sequential(*layers, nn.Linear(in_features, outputs))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, outputs))


def _n_outputs(n_classes: int, loss: str) -> int:
    if loss not in LOSSES:
        raise OptionError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
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


def _model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _training_device(device) -> torch.device:
    """``device`` as a torch.device; None: the run profile's (ci: the CPU; full: a CUDA GPU
    when there is one)."""
    from .engine import resolve_device
    from .profile import default_engine

    return default_engine(None).check_device() if device is None else resolve_device(device)


def _as_features(X) -> torch.Tensor:
    """(n, d) array (float16/32, memory-mapped or not) -> contiguous float32 tensor."""
    if hasattr(X, "arrays") and hasattr(X, "labels"):  # a tplib Features object
        raise InputError(f"features given as a Features object (layers {', '.join(X.arrays)}): pass "
                         "one layer's matrix, e.g. feats[layer], and feats.labels as the labels")
    X = np.ascontiguousarray(np.asarray(X), dtype=np.float32)
    if X.ndim != 2:
        raise InputError(f"features must be an (n, d) matrix, got shape {X.shape}")
    return torch.from_numpy(X)


def _as_labels(y, n: int) -> torch.Tensor:
    y = torch.from_numpy(np.ascontiguousarray(np.asarray(y), dtype=np.int64))
    if y.shape != (n,):
        raise InputError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    if n and int(y.min()) < 0:
        raise InputError("labels must be class indices >= 0 (-1 means unknown: drop those rows)")
    return y


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


class Evaluation(NamedTuple):
    """What an evaluation measured: accuracy in [0, 1], mean loss, predictions (n,)
    int64, the true labels (n,) int64 (for a confusion matrix) and, when the
    evaluation ran on image files, their paths (n,) in row order (else None)."""

    accuracy: float
    loss: float
    predictions: np.ndarray
    labels: np.ndarray
    paths: list | None = None

    def confusion(self, n_classes: int | None = None) -> np.ndarray:
        """(K, K) int64 counts, row = true class, column = predicted class."""
        k = n_classes or int(max(self.labels.max(initial=-1), self.predictions.max(initial=-1))) + 1
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (self.labels, self.predictions), 1)
        return cm

    def mistakes(self) -> np.ndarray:
        """Row indices of the misclassified images."""
        return np.flatnonzero(self.predictions != self.labels)


@torch.no_grad()
def _evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
              transform=None) -> Evaluation:
    """Evaluate ``model`` in eval mode on (X, y), batch by batch, on the device its
    parameters are on; its mode is restored."""
    device = _model_device(model)
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
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    dropout: float = 0.0,
    n_classes: int | None = None,
    loss: str = "ce",
    head: nn.Module | None = None,
    seed: int = 0,
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
    ends with the same head up to float rounding (tests/test_finetune_06.py checks it).
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
    if head is None:
        with _seeded(seed):
            head = make_head(X.shape[1], n_classes, hidden=hidden, dropout=dropout, loss=loss)
    else:
        head = copy.deepcopy(head)
    # One thread: a head's matrices are so small that thread synchronisation costs
    # more than the arithmetic (a busy second core made it 50x slower; see
    # benchmarks/README.md). A fresh RNG scope, as train_model's: same dropout masks.
    with _seeded(seed), _torch_threads(1):
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
                val = _evaluate(head, Xv, yv)
                history["val_loss"].append(val.loss)
                history["val_acc"].append(val.accuracy)
            history["elapsed"].append(time.perf_counter() - t0)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                            **({"val_acc": f"{history['val_acc'][-1]:.3f}"} if has_val else {}))
        bar.close()
    return HeadResult(head=head.eval(), history=history, seconds=time.perf_counter() - t0)


def evaluate_head(head: nn.Module, X, y) -> Evaluation:
    """``head`` on features X (n, d) with labels y (n,): accuracy, loss, predictions."""
    Xt = _as_features(X)
    return _evaluate(head, Xt, _as_labels(y, len(Xt)))


# ====================================================== end-to-end: base + head
def forward_until(model: nn.Module, node: str, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on ``x`` up to the module ``node``; its output flattened, (N, d).

    Gradients flow (unlike :class:`tplib.features.LayerTap`, which copies outputs for
    extraction). The pass stops right after ``node``: nothing later runs.
    """
    from .features import _StopForward

    captured = []

    def hook(module, inputs, output):
        captured.append(output)
        raise _StopForward

    handle = model.get_submodule(node).register_forward_hook(hook)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise TplibError(f"module {node} was not reached by the forward pass")
    return torch.flatten(captured[0], 1)


def cut_base(backbone: Backbone, layer: str | None = None) -> tuple[nn.Module, str, int, list]:
    """A copy of ``backbone.model`` that ends at ``layer``: (base, node, output dim, blocks).

    ``layer`` defaults to the network's feature layer (VGG16: relu7, 4096-d; ResNet and
    EfficientNet-Lite: the pooled features). Modules after it are replaced by
    ``nn.Identity`` (they never run, and their parameters must not count as frozen);
    ``blocks`` are the registry's fine-tuning blocks that still hold modules before the
    cut, in forward order. Module names stay the network's own (``features.0``).
    """
    node = backbone.node(layer or backbone.default_layer)
    base = copy.deepcopy(backbone.model).eval()
    leaves = {name: m for name, m in base.named_modules() if name and not list(m.children())}
    reached: list[str] = []
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=name: reached.append(name))
               for name, m in leaves.items()]
    size = backbone.preprocess.size
    try:
        with torch.no_grad():
            out = forward_until(base, node, torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    used = set(reached)
    for name in leaves:
        if name not in used:
            _replace_module(base, name, nn.Identity())

    def in_use(module_name: str) -> bool:
        return any(r == module_name or r.startswith(module_name + ".") for r in used) \
            or module_name == node
    blocks = [(name, list(mods)) for name, mods in backbone.spec.blocks if any(map(in_use, mods))]
    return base, node, int(out.shape[1]), blocks


def _replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class FineTuneModel(nn.Module):
    """A base network (frozen, partly frozen or not) followed by a new head.

    (N, 3, S, S) normalised images -> base -> (N, d) features -> head -> (N, K) logits.

    Args:
        base: module whose output is (N, d), or whose module ``cut`` gives it.
        head: module (N, d) -> (N, K), e.g. from :func:`make_head` or :func:`train_head`.
        cut: module name in ``base`` where the features are read (the forward pass
            stops there and flattens them); None: ``base(x)`` itself.
        blocks: [(name, [module names in base])] in forward order; needed for an
            integer ``freeze``. Default: the whole base is one block.
        freeze: "all" (only the head trains: the lab's feature extraction + new layer),
            "none" (gradients flow into the whole base), or an int k: the last k blocks
            of the base train too, the earlier ones stay frozen (fine-tuning).
        freeze_bn: keep every BatchNorm of the base in eval mode, even in trainable
            blocks (the usual advice: small batches give noisy batch statistics that
            would overwrite ImageNet's; their scale and shift still learn).
        preprocess: how images become input tensors (default for :func:`train_model`).
        front: an optional module run before the base on the input, e.g.
            :class:`GrayToRGB` (see :func:`add_gray_front`); it trains with the head.

    Frozen parameters have ``requires_grad=False`` and frozen blocks stay in eval mode
    whatever ``.train()`` says, so their BatchNorm running statistics never drift and
    their dropout stays off. With the whole base frozen (and no trainable ``front``),
    it runs under ``no_grad``; a trainable front gets its gradients through the frozen
    base (its weights do not change, but the backward pass runs through every layer).
    """

    def __init__(self, base: nn.Module, head: nn.Module, *, blocks=None, freeze="all",
                 freeze_bn: bool = True, preprocess: Preprocess | None = None,
                 cut: str | None = None, front: nn.Module | None = None):
        super().__init__()
        self.front = front
        self.base = base
        self.head = head
        self.cut = cut
        self.blocks = [(name, list(mods)) for name, mods in (blocks or [("base", [""])])]
        self.freeze_bn = freeze_bn
        self.preprocess = preprocess
        if freeze == "all":
            k = 0
        elif freeze == "none":
            k = len(self.blocks)
        elif (isinstance(freeze, numbers.Integral) and not isinstance(freeze, bool)
              and 0 <= freeze <= len(self.blocks)):
            k = freeze
        else:
            raise OptionError(f"freeze must be 'all', 'none' or an int in [0, {len(self.blocks)}] "
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
                    raise OptionError(f"block {name!r}: base has no module {m!r}")
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, d) base features."""
        return forward_until(self.base, self.cut, x) if self.cut else self.base(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.front is not None:
            x = self.front(x)
        if self.base_frozen and not (torch.is_grad_enabled() and x.requires_grad):
            with torch.no_grad():  # no graph through a base nobody trains: less memory
                features = self.features(x)
        else:
            features = self.features(x)
        return self.head(features)

    def parameter_counts(self) -> dict[str, int]:
        """{"base_frozen", "base_trainable", "head"} (and "front" when there is one):
        numbers of parameters."""
        frozen = sum(p.numel() for p in self.base.parameters() if not p.requires_grad)
        trainable = sum(p.numel() for p in self.base.parameters() if p.requires_grad)
        counts = {"base_frozen": frozen, "base_trainable": trainable,
                  "head": sum(p.numel() for p in self.head.parameters())}
        if self.front is not None:
            counts["front"] = sum(p.numel() for p in self.front.parameters())
        return counts

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimizer should get: those with ``requires_grad``."""
        return [p for p in self.parameters() if p.requires_grad]

    def describe(self) -> str:
        """One line: what trains and what does not."""
        c = self.parameter_counts()
        which = ("whole base frozen" if self.base_frozen
                 else f"base blocks trained: {', '.join(self.trainable_blocks)}")
        front = f", front {c['front']:,}" if "front" in c else ""
        return (f"{which}; base {c['base_frozen']:,} frozen + {c['base_trainable']:,} "
                f"trainable parameters, head {c['head']:,}{front}")

    def block_table(self) -> list[tuple[str, int, str]]:
        """Rows (part, parameters, "frozen" | "trainable"), in forward order.

        The base's blocks (the registry's names: VGG16 block1..block5, fc6, fc7;
        EfficientNet stem, block1..block7, head), then "new head" (and "front" first
        when there is one). Parameters outside every block (none in the registry's
        networks) are not listed.
        """
        modules = dict(self.base.named_modules())
        rows = []
        if self.front is not None:
            rows.append(("front", sum(p.numel() for p in self.front.parameters()), "trainable"))
        for name, mods in self.blocks:
            params = [p for m in mods for p in modules[m].parameters()]
            state = "trainable" if params and all(p.requires_grad for p in params) else "frozen"
            rows.append((name, sum(p.numel() for p in params), state))
        rows.append(("new head", sum(p.numel() for p in self.head.parameters()), "trainable"))
        return rows


def attach_head(backbone: Backbone, n_classes: int, *, layer: str | None = None,
                hidden: int = 0, dropout: float = 0.0, loss: str = "ce",
                freeze: str | int = "all", freeze_bn: bool = True, head: nn.Module | None = None,
                seed: int = 0) -> FineTuneModel:
    """A copy of ``backbone``'s base with a new head, ready for :func:`train_model`.

    The base ends at ``layer`` (default the network's feature layer: VGG16 relu7,
    4096-d, i.e. the lab's "replace fc8 by a new layer"; EfficientNet-Lite and ResNet:
    the pooled features), so a head trained by :func:`train_head` on
    ``extract_features(backbone, ..., layer)`` plugs in unchanged (``head=result.head``).
    ``layer="pool5"`` on VGG16 gives the lecture's variant: the convolutional base only
    (25,088 values per image) and a small head (``hidden=256``). The base is a deep
    copy: training it never changes ``backbone.model`` (whose features the feature
    cache keys by its weights).

    ``freeze`` (see :class:`FineTuneModel`) counts the registry's blocks from the top:
    VGG16 block1..block5, fc6, fc7; EfficientNet stem, block1..block7, head; ResNet
    stem, layer1..layer4. ``loss="bce"`` (two classes) gives a one-logit head.
    """
    base, node, dim, blocks = cut_base(backbone, layer)
    if head is None:
        with _seeded(seed):
            head = make_head(dim, n_classes, hidden=hidden, dropout=dropout, loss=loss)
    return FineTuneModel(base, head, blocks=blocks, freeze=freeze, freeze_bn=freeze_bn,
                         preprocess=backbone.preprocess, cut=node)


def validation_split(split, fraction: float = 0.2):
    """(train, val): the last ``fraction`` of every class's files held out for validation.

    Deterministic (the files are sorted; no random draw), every class keeps at least
    one training and one validation file. Choose epochs and learning rates on ``val``,
    so that the test split is used once, at the end. Both are :class:`tplib.data.Split`
    (``val.name == "val"``).
    """
    from dataclasses import replace

    if not 0.0 < fraction < 1.0:
        raise OptionError(f"fraction must be in (0, 1), not {fraction}")
    labels = np.asarray(split.labels)
    train_rows, val_rows = [], []
    for c in range(len(split.classes)):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            raise InputError(f"class {split.classes[c]!r} has {len(rows)} file(s): "
                             "too few to hold any out")
        n_val = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        train_rows += rows[:-n_val].tolist()
        val_rows += rows[-n_val:].tolist()
    train_rows.sort()
    val_rows.sort()

    def part(rows, name):
        return replace(split, name=name, paths=[split.paths[i] for i in rows], labels=labels[rows])
    return part(train_rows, split.name), part(val_rows, "val")


# ============================================================ grayscale input
class GrayToRGB(nn.Module):
    """A learnable 1 -> 3 channel 1x1 convolution in front of a network that wants RGB.

    (N, 3, S, S) normalised images -> (N, 3, S, S) normalised images, for a base
    trained on colour photos that now gets grayscale ones. Inside: the gray level
    g in [0, 1] (the normalisation ``mean``/``std`` undone, then the luma
    0.299 R + 0.587 G + 0.114 B, which is g itself for a grayscale photo decoded as
    three equal channels, as tplib decodes them), then
    ``conv = nn.Conv2d(1, 3, 1)`` initialised to copying (weight 1 on each output
    channel, bias 0), then the normalisation again. So at initialisation it is exactly
    the usual fix, copying the channel (up to float rounding); training can then find
    another gain and offset per colour channel, if the base prefers them.
    """

    LUMA = (0.299, 0.587, 0.114)

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        # skip_init: no random draw (it would move the caller's global RNG), set below
        self.conv = nn.utils.skip_init(nn.Conv2d, 1, 3, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("luma", torch.tensor(self.LUMA, dtype=torch.float32).view(1, 3, 1, 1))

    def gray(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, 1, S, S) gray levels in [0, 1]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputError(f"GrayToRGB takes (N, 3, S, S) images, got {tuple(x.shape)}")
        return ((x * self.std + self.mean) * self.luma).sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv(self.gray(x)) - self.mean) / self.std


def add_gray_front(model: FineTuneModel) -> FineTuneModel:
    """Put a learnable :class:`GrayToRGB` in front of ``model``'s base; returns ``model``.

    The front uses the base's own normalisation (``model.preprocess``) and trains with
    the head (:func:`train_model` gives it the head's learning rate). Its 6 parameters
    get their gradients through the base, frozen or not: training runs the backward
    pass through the whole base, so it is end to end (slower than the frozen base's
    forward alone), and it cannot use cached features.
    """
    if model.preprocess is None:
        raise OptionError("the model has no preprocess: its normalisation is needed")
    model.front = GrayToRGB(model.preprocess.mean, model.preprocess.std)
    model.front.train(model.training)
    return model


def grayscale_input(backbone: Backbone) -> Backbone:
    """The same network (the same ``model`` object, not a copy) whose preprocessing
    converts every photo to grayscale first (:meth:`Preprocess.with_grayscale`).

    Its features are cached apart from the colour ones (the preprocessing is part of
    the cache key), and :func:`attach_head` on it gives a model whose ``preprocess``
    decodes grayscale photos for :func:`train_model` and :func:`evaluate_model`.
    """
    from dataclasses import replace

    return replace(backbone, preprocess=backbone.preprocess.with_grayscale(),
                   notes=list(backbone.notes))


def gray_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv`` for one input channel: its weights summed over the input channels.

    On a one-channel image g it computes what ``conv`` computes on g copied to every
    input channel: sum_c (w_c * g) = (sum_c w_c) * g, so for the first layer of a
    network trained on RGB, summing its weights over R, G, B is the same as feeding it
    the gray image three times. Weight (out, in, k, k) -> (out, 1, k, k); bias, stride,
    padding, dilation and groups (must be 1) are kept.
    """
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise OptionError("gray_conv takes an nn.Conv2d with groups=1")
    new = nn.utils.skip_init(  # no random init to overwrite: the global RNG stays where it was
        nn.Conv2d, 1, conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None,
        padding_mode=conv.padding_mode, device=conv.weight.device)
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(conv.weight.dtype)


class TrainModeEffect(NamedTuple):
    """What train mode does to a network's BatchNorm layers (:func:`train_mode_effect`).

    n_batchnorm: BatchNorm layers in the network; running_stats_change: the largest
    change of a running mean or variance after ONE forward pass in train mode (eval
    mode: 0); output_change: the largest difference between the outputs in train and
    in eval mode for the same batch; output_scale: the largest output in eval mode.
    """

    n_batchnorm: int
    running_stats_change: float
    output_change: float
    output_scale: float


@torch.no_grad()
def train_mode_effect(model: nn.Module, x: torch.Tensor) -> TrainModeEffect:
    """Run a copy of ``model`` on ``x`` in eval mode, then once in train mode, and compare.

    Shows why a frozen base stays in eval mode: in train mode every BatchNorm layer
    normalises with the statistics of the current batch instead of ImageNet's running
    ones (the output changes with the batch), and overwrites its running statistics
    (they drift away from ImageNet's although no weight has a gradient). ``model``
    itself is not modified. x: (N, 3, S, S) normalised images, N >= 2.
    """
    m = copy.deepcopy(model)
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    out_eval = m.eval()(x)
    out_train = m.train()(x)
    after = m.state_dict()
    change = max((float((after[k] - v).abs().max()) for k, v in before.items()), default=0.0)
    n_bn = sum(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    return TrainModeEffect(n_bn, change, float((out_train - out_eval).abs().max()),
                           float(out_eval.abs().max()))


def save_checkpoint(model: nn.Module, path, **meta) -> Path:
    """Save ``model.state_dict()`` (plus JSON-able ``meta``) to ``path``, atomically.

    A state dict, not a pickled model: it loads with ``torch.load(weights_only=True)``
    into the same architecture, on any machine (:func:`load_checkpoint`).
    """
    from .fsutil import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "meta": dict(meta)}
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def load_checkpoint(model: nn.Module, path) -> dict:
    """Load a :func:`save_checkpoint` file into ``model`` (same architecture); returns its meta."""
    from .errors import WeightsError

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, EOFError) as exc:
        raise WeightsError(f"{path} is not a checkpoint of this model ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); save it again with "
                           "save_checkpoint") from exc
    return dict(state.get("meta", {}))


# ------------------------------------------------------------ images in memory
def _split_parts(images) -> tuple[list[Path], np.ndarray]:
    """A data split (``.paths``, ``.labels``) or a (paths, labels) pair."""
    if hasattr(images, "paths"):
        paths, labels = images.paths, images.labels
    else:
        paths, labels = images
    return [Path(p) for p in paths], np.asarray(labels, dtype=np.int64)


def decode_images(images, preprocess: Preprocess, *, threads: int = 2, progress: bool | None = None,
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
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not default_progress(progress),
               leave=False)
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


def _image_transform(model: nn.Module, preprocess: Preprocess, channels_last: bool):
    """uint8 batch -> the model's input; with ``channels_last``, also puts the model's
    4-d weights in that memory layout (same values; convolutions on channels-last
    tensors are usually faster on a CPU: see benchmarks/README.md)."""
    if not channels_last:
        return preprocess.normalize
    model.to(memory_format=torch.channels_last)
    return lambda xb: preprocess.normalize(xb).contiguous(memory_format=torch.channels_last)


def _fit(model: nn.Module, param_groups: list[dict], X: torch.Tensor, y: torch.Tensor,
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
    device = _model_device(model)
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
            x = _augment(preprocess.normalize(X[idx]), gen, flip, pad).to(device)
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
            val = _evaluate(model, Xv, yv, batch_size * 2, transform=transform)
            history["val_loss"].append(val.loss)
            history["val_acc"].append(val.accuracy)
        history["elapsed"].append(time.perf_counter() - t_start)
        if seconds is not None and history["elapsed"][-1] >= seconds:
            break
    bar.close()
    model.eval()
    return train_seconds


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
        times = self.history.get("epoch_seconds") or []
        return float(np.mean(times)) if times else float("nan")


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
    channels_last: bool = True,
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
            :class:`FineTuneModel`; default ``lr / 10`` (pretrained weights need only
            small corrections, large steps would destroy what ImageNet taught them).
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
    preprocess = preprocess or getattr(model, "preprocess", None)
    if preprocess is None:
        raise OptionError("train_model needs preprocess= (the model does not carry one)")
    model.to(_training_device(device))
    X, y, skipped = decode_images(train, preprocess, threads=threads, progress=progress,
                                  desc="decode train")
    Xv = yv = None
    if val is not None:
        Xv, yv, more = decode_images(val, preprocess, threads=threads, progress=progress,
                                     desc="decode val")
        skipped += more
    if isinstance(model, FineTuneModel):
        base = [p for p in model.base.parameters() if p.requires_grad]
        new = [*(model.front.parameters() if model.front is not None else ()),
               *model.head.parameters()]
        groups = [{"params": [p for p in new if p.requires_grad], "lr": lr}]
        if base:
            groups.append({"params": base, "lr": lr / 10 if base_lr is None else base_lr})
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    history = _new_history()
    with _seeded(seed):
        train_seconds = _fit(
            model, groups, X, y, Xv, yv, preprocess, epochs=epochs, seconds=None, t_start=t0,
            weight_decay=weight_decay, batch_size=batch_size, flip=augment, pad=0, seed=seed,
            progress=progress, desc="fine-tune", history=history, channels_last=channels_last)
    n_seen = len(X) * len(history["train_loss"])
    return TrainResult(model=model, history=history, seconds=time.perf_counter() - t0,
                       images_per_second=n_seen / train_seconds if train_seconds > 0 else float("inf"),
                       skipped=skipped)


def evaluate_model(model: nn.Module, images, preprocess: Preprocess | None = None, *,
                   batch_size: int = 32, threads: int = 2, channels_last: bool = True) -> Evaluation:
    """An image model on a data split (or a (paths, labels) pair), in eval mode.

    Returns :class:`Evaluation`: accuracy, mean loss, predictions (n,), labels (n,) and
    paths of the images that could be decoded (for a confusion matrix and the
    mistakes). ``channels_last``: as in :func:`train_model`. Runs where the model's
    parameters are (it is not moved).
    """
    preprocess = preprocess or getattr(model, "preprocess", None)
    if preprocess is None:
        raise OptionError("evaluate_model needs preprocess= (the model does not carry one)")
    X, y, skipped = decode_images(images, preprocess, threads=threads)
    bad = {p for p, _ in skipped}
    paths = [p for p in _split_parts(images)[0] if str(p) not in bad]
    transform = _image_transform(model, preprocess, channels_last)
    return _evaluate(model, X, y, batch_size, transform=transform)._replace(paths=paths)


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
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    augment: bool = False,
    path: str = "auto",
    head: nn.Module | None = None,
    seed: int = 0,
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
    from .features import extract_features

    if path not in ("auto", "features", "end-to-end"):
        raise OptionError(f"path must be 'auto', 'features' or 'end-to-end', not {path!r}")
    if path == "auto":
        path = "end-to-end" if augment else "features"
    if path == "features" and augment:
        raise OptionError("augmented images change every epoch, so their features cannot be "
                         "computed once: use path='end-to-end' (or augment=False)")
    _, labels = _split_parts(train)
    n_classes = len(train.classes) if hasattr(train, "classes") else int(labels.max()) + 1
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

    def features(split):
        return extract_features(backbone, split, layer, cache=cache, progress=progress,
                                desc=f"{getattr(split, 'name', 'images')} {layer}", engine=engine)
    ftrain = features(train)
    fval = features(val) if val is not None else None
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
        ftest = features(test)
        result.test = evaluate_head(model.head, ftest[layer], ftest.labels)._replace(
            paths=[Path(p) for p in ftest.paths])
    return result


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
    channels_last: bool = True,
    device: str | None = None,
    progress: bool | None = None,
) -> ScratchResult:
    """Train a :class:`SmallCNN` from random weights on the training images.

    Images are decoded once, resized to ``image_size`` square (uint8 in memory), and
    augmented with random flips and random crops (reflect padding of image_size/16).
    Training stops after ``epochs`` epochs or after the epoch during which the
    wall-clock budget ``seconds`` runs out (counted from the call, decoding included,
    so it compares with the frozen path's extraction + head time), whichever comes
    first. With a time budget, the number of epochs (and so the result) depends on
    the machine's speed; with ``epochs`` the run is deterministic on a given CPU.

    Why 64 px by default: an epoch at 128 px costs several times one at 64 px, so on a
    small CPU a short budget would give the network only one or two epochs (still at
    chance on cats vs dogs). Use 128 on a GPU.

    Args:
        train_split, test_split: data splits (or (paths, labels) pairs).
        device: as in :func:`train_model` (default: the run profile's).

    Returns:
        :class:`ScratchResult` (model, history, test_accuracy, seconds); ``model.preprocess``
        is its image size and normalisation, so ``evaluate_model(model, split)`` works.
    """
    if seconds is None and epochs is None:
        raise OptionError("give a time budget (seconds=) or a number of epochs (epochs=)")
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
        model = SmallCNN(n_classes, width=width).to(_training_device(device))
        model.preprocess = preprocess  # so that evaluate_model(model, split) needs nothing more
        _fit(model, [{"params": list(model.parameters()), "lr": lr}], X, y, Xt, yt, preprocess,
             epochs=epochs, seconds=seconds, t_start=t0, weight_decay=weight_decay,
             batch_size=batch_size, flip=True, pad=max(1, image_size // 16), seed=seed,
             progress=progress, desc="from scratch", history=history, channels_last=channels_last)
    accuracy = history["val_acc"][-1] if history["val_acc"] else float("nan")
    return ScratchResult(model, history, accuracy, time.perf_counter() - t0)
