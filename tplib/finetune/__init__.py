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
augmentation: :func:`train_head` says why, ``tests/test_finetune.py`` checks it),
so :func:`train_new_head` takes the fast one whenever it can and says which it took.

And the comparison: :class:`SmallCNN` trained from scratch by
:func:`train_from_scratch` under the same wall-clock budget. For grayscale photos:
:func:`grayscale_input` (photos converted to gray, copied to 3 channels),
:class:`GrayToRGB` / :func:`add_gray_front` (a learnable 1 -> 3 convolution in front
of the base) and :func:`gray_conv` (the first convolution's weights summed over RGB,
the same as copying the channel). :func:`train_mode_effect` shows why a frozen base
with BatchNorm stays in eval mode.

The rooms, lowest first (each imports only rooms listed before it):
``runtime`` (seeded RNG scope, threads, device), ``settings`` (the one set of
training defaults, :data:`DEFAULTS`, and the argument check every path shares),
``results`` (what training and evaluation return: one shape), ``heads`` (heads on
cached features), ``models`` (base + head), ``gray`` (grayscale fronts),
``checkpoints``, ``training`` (decoding, the end-to-end loop,
:func:`train_new_head`), ``scratch`` (:class:`SmallCNN`), ``efficiency`` (test
accuracy against training photos per class, frozen base + head vs :class:`SmallCNN`:
:func:`data_efficiency`), ``unfreezing`` (the frozen base against its last blocks
trained too, on augmented views, over seeds: :func:`unfreezing_comparison`). :func:`validation_split`
lives in :mod:`tplib.data`, :func:`train_mode_effect` in :mod:`tplib.models`; both
are re-exported here, as is every name notebooks 05 and 06 use.

Every training function checks its arguments before any image is decoded or any
epoch runs (the same rules on every path: learning rates finite and > 0, whole
numbers of epochs and batches, integer labels the head can predict, at least two
classes, finite feature rows, no empty split) and says in one line what to change.

Everything is seeded and runs deterministically on the CPU (the global torch RNG is
left as it was); end-to-end training runs on the run profile's device (``ci``: the CPU;
``full``: a CUDA GPU when there is one, which is not bit-for-bit deterministic).
Progress bars (``tqdm.auto``) follow the run profile unless ``progress`` is given.
"""
from __future__ import annotations

from ..data import validation_split
from ..models import TrainModeEffect, train_mode_effect
from .checkpoints import load_checkpoint, save_checkpoint
from .efficiency import EfficiencyRow, data_efficiency, efficiency_table
from .gray import GrayToRGB, add_gray_front, gray_conv, grayscale_input
from .heads import LOSSES, evaluate_head, loss_and_predictions, make_head, train_head, train_step
from .models import FineTuneModel, attach_head, cut_base, forward_until
from .results import PATHS, Evaluation, HeadResult, ScratchResult, TrainResult
from .scratch import SmallCNN, train_from_scratch
from .settings import DEFAULTS, TrainingDefaults
from .training import decode_images, evaluate_model, train_model, train_new_head
from .unfreezing import StoredViews, UnfreezeComparison, store_views, unfreezing_comparison

__all__ = [
    "HeadResult", "TrainResult", "ScratchResult", "Evaluation", "make_head", "train_head",
    "evaluate_head", "FineTuneModel", "attach_head", "cut_base", "forward_until", "train_step",
    "train_model", "evaluate_model", "loss_and_predictions", "save_checkpoint",
    "load_checkpoint", "SmallCNN", "train_from_scratch", "decode_images", "train_new_head",
    "validation_split", "GrayToRGB", "add_gray_front", "gray_conv", "grayscale_input", "TrainModeEffect",
    "train_mode_effect", "LOSSES", "PATHS", "DEFAULTS", "TrainingDefaults", "EfficiencyRow",
    "data_efficiency", "efficiency_table", "unfreezing_comparison", "store_views", "StoredViews",
    "UnfreezeComparison",
]
