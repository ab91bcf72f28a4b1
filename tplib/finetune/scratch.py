"""The baseline transfer learning beats: :class:`SmallCNN` trained from random weights
(:func:`train_from_scratch`) under a wall-clock budget or a number of epochs.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..errors import OptionError
from ..preprocess import Preprocess
from .results import ScratchResult, new_history
from .runtime import seeded, training_device
from .settings import DEFAULTS, check_count, check_training
from .training import check_decoded, check_split, decode_images, fit


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


def train_from_scratch(
    train_split,
    test_split,
    *,
    image_size: int = DEFAULTS.scratch_image_size,
    seconds: float | None = None,
    epochs: int | None = None,
    batch_size: int = DEFAULTS.batch_size,
    lr: float = DEFAULTS.lr,
    weight_decay: float = DEFAULTS.weight_decay,
    width: int = 32,
    seed: int = DEFAULTS.seed,
    threads: int = DEFAULTS.threads,
    channels_last: bool = DEFAULTS.channels_last,
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
    check_training(epochs=epochs, seconds=seconds, lr=lr, weight_decay=weight_decay,
                   batch_size=batch_size, seed=seed)
    check_count("image_size", image_size, minimum=16)
    check_count("width", width)
    _, labels = check_split(train_split, "train", min_classes=2)
    check_split(test_split, "test", n_classes=int(labels.max()) + 1)
    t0 = time.perf_counter()
    # Centring with ImageNet's statistics is as good as any for a network that learns
    # its own filters; only the scale matters for the optimiser.
    preprocess = Preprocess(size=image_size, interpolation="bilinear")
    X, y, skipped = decode_images(train_split, preprocess, threads=threads, progress=progress,
                                  desc="decode train")
    check_decoded(X, y, skipped, "train", min_classes=2)
    Xt, yt, skipped = decode_images(test_split, preprocess, threads=threads, progress=progress,
                                    desc="decode test")
    check_decoded(Xt, yt, skipped, "test")
    n_classes = int(max(int(y.max()), int(yt.max()))) + 1
    history = new_history()
    with seeded(seed):
        model = SmallCNN(n_classes, width=width).to(training_device(device))
        model.preprocess = preprocess  # so that evaluate_model(model, split) needs nothing more
        fit(model, [{"params": list(model.parameters()), "lr": lr}], X, y, Xt, yt, preprocess,
             epochs=epochs, seconds=seconds, t_start=t0, weight_decay=weight_decay,
             batch_size=batch_size, flip=True, pad=max(1, image_size // 16), seed=seed,
             progress=progress, desc="from scratch", history=history, channels_last=channels_last)
    accuracy = history["val_acc"][-1] if history["val_acc"] else float("nan")
    return ScratchResult(model, history, accuracy, time.perf_counter() - t0)
