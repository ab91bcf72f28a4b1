"""The lab's extraction written by hand (notebook 04): the cut network, and what judges the rows.

The handout's central step is the student's: "create the matrices X_train and X_test in
which each row corresponds to a feature vector". Open each image, give it three channels,
resize it, scale and normalise it, run the network cut at the feature layer in eval mode
without gradients, keep one row per image in the order of the labels, L2-normalise the
rows. :func:`tplib.extract_features` does the same, fast and cached, for every later
repetition. This module gives the exercise what it needs:

- :func:`cut_network` (a :class:`CutNetwork`): any network of the registry cut at one
  layer, as an ``nn.Module``: (N, 3, S, S) float32 -> (N, D) float32, the rows that
  ``extract_features(backbone, images, layer)[layer]`` holds (``pool="none"``: the
  layer's output flattened). Where VGG16's weights are missing it stands in for the
  student's ``VGG16relu7``, so the student's loop is the same code either way. It
  shares the backbone's weights (no copy of the parameters) but has its own modules
  and buffers: ``net.train()`` on it never changes the backbone (BatchNorm's running
  statistics stay the ImageNet ones).
- :func:`diagnose_extraction`: the student's rows against ``extract_features`` on the
  same images, and the usual mistake named when they differ; the verdict of
  :func:`tplib.checks.check_extracted_features`.

How a mistake is recognised: types, shapes and zero or NaN rows by looking; rows out of
order by matching each row with the reference rows; everything else by recomputing the
usual wrong variants (train mode, no or wrong normalisation, another size, resize or
interpolation, channels scrambled...) on the first few images and finding the one the
student's rows equal. A variant that gives the same numbers as the right preprocessing
on these images (channel order on grayscale images with equal per-channel statistics)
is harmless, and the rows then pass.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from .models import Backbone, mode_sensitive_layers, train_mode
from .preprocess import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CutNetwork", "cut_network", "Diagnosis", "diagnose_extraction", "reference_engine",
           "right_input", "wrong_inputs"]

#: Two unit rows closer than this (Euclidean distance) are "the same row": float rounding
#: (another batch size, BatchNorm folded) stays below 1e-5, float16 storage below 1e-3,
#: and the nearest real mistake (bilinear instead of bicubic) is 0.15 away.
SAME_ROW = 5e-3
#: Images on which the usual mistakes are recomputed (the first ones of the split): the
#: student's rows equal one mistake's on every image, or none.
PROBE_IMAGES = 4
#: Batch sizes tried for the train-mode mistake, most likely first (a BatchNorm network in
#: train mode normalises with the batch's own statistics: its rows depend on the batch;
#: 16 is the notebook's batch size; the split's size stands for any larger one).
TRAIN_BATCH_SIZES = (16, 32, 8, 10, 64, 4, 20, 25, 50, 5, 12, 100, 1)
#: Seconds after which the diagnosis stops trying more batch sizes for train mode and
#: settles for a general hint (the usual preprocessing mistakes are always tried).
VARIANT_BUDGET_S = 20.0


# ===================================================================== the cut network
class _Stop(Exception):
    """Raised by the hook on the cut layer: nothing after it is computed."""


class CutNetwork(nn.Module):
    """A network cut at one layer: (N, 3, S, S) float32 -> (N, D) float32 rows.

    The rows are the layer's output flattened, exactly what
    ``tplib.extract_features(backbone, images, layer)[layer]`` holds for the same
    normalised inputs (up to float rounding). The forward pass stops right after the
    layer. Gradients flow as through any module: run it under ``torch.no_grad()`` to
    extract features.

    Attributes:
        network: the backbone's model, its modules and buffers copied, its parameters
            shared (the same tensors: no second copy of the weights). Train mode on this
            module changes its own BatchNorm statistics, never the backbone's.
        layer: the friendly layer name (``"pooled"``, ``"relu7"``); node: its module name.
        title: the network's name, for printing.

    Taught in notebook 04 (the stand-in for ``VGG16relu7`` when VGG16's weights are missing).
    """

    def __init__(self, backbone: Backbone, layer: str | None = None):
        super().__init__()
        layer = layer or backbone.default_layer
        self.layer = layer
        self.node = backbone.node(layer)
        self.title = backbone.spec.title
        model = backbone.model
        # the memo maps every parameter to itself: deepcopy shares them, copies the rest
        self.network = copy.deepcopy(model, memo={id(p): p for p in model.parameters()})
        self.train(model.training)
        self._target = self.network.get_submodule(self.node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box: dict[str, torch.Tensor] = {}

        def hook(module, inputs, output):
            box["out"] = output
            raise _Stop

        handle = self._target.register_forward_hook(hook)
        try:
            self.network(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if "out" not in box:  # pragma: no cover - the registry's layers all run
            raise RuntimeError(f"layer {self.layer!r} ({self.node}) did not run")
        # flatten(1) of a view, then a copy: the rows never alias an in-place ReLU's buffer
        return box["out"].flatten(1).clone()

    def extra_repr(self) -> str:
        return f"{self.title} up to {self.layer!r} ({self.node})"

    def __repr__(self) -> str:  # one line: the full module tree says nothing here
        return f"CutNetwork({self.extra_repr()})"


def cut_network(backbone: Backbone, layer: str | None = None) -> CutNetwork:
    """``backbone``'s network cut at ``layer`` (default: its feature layer) as an nn.Module.

    ``net = cut_network(lab.backbone)`` then ``net(x)`` for a batch ``x`` of normalised
    images (N, 3, S, S) gives (N, D) rows, the same as :func:`tplib.extract_features`
    gives for the layer. For VGG16 and ``"relu7"`` these are the rows of the lab's
    ``VGG16relu7`` (notebook 04).
    """
    return CutNetwork(backbone, layer)


# ===================================================================== the wrong variants
@dataclass(frozen=True)
class Variant:
    """One usual way of getting the inputs wrong, and what to tell the student."""

    name: str
    message: str
    make: Callable  # PIL image -> the wrong (3, H, W) float tensor


def _rgb(img):
    return img if img.mode == "RGB" else img.convert("RGB")


def _resample(name: str):
    from PIL import Image

    return Image.Resampling[name.upper()]


def _float_chw(img) -> torch.Tensor:
    """RGB PIL image -> float32 (3, H, W) in [0, 1], as a student writes it."""
    a = np.asarray(img, dtype=np.float32) / 255
    return torch.from_numpy(a).permute(2, 0, 1)


def _normalised(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def right_input(img, prep) -> torch.Tensor:
    """The lab's preprocessing written the student's way (notebook 02's ``preprocess``):
    three channels, a Pillow resize to ``size`` x ``size``, /255, per-channel mean and std.
    The same numbers as ``prep(img)``."""
    img = _rgb(img).resize((prep.size, prep.size), _resample(prep.interpolation))
    return _normalised(_float_chw(img), prep.mean, prep.std)


def wrong_inputs(prep) -> list[Variant]:
    """The usual preprocessing mistakes for the network preprocessing ``prep`` (a
    :class:`tplib.Preprocess`), most frequent first. Each variant's ``make`` turns a PIL
    image into the (wrong) input tensor. Variants that cannot differ from the right
    input for this network are left out (the ImageNet statistics for VGG16, channel
    order when the three means and stds are equal)."""
    size, mean, std = prep.size, tuple(prep.mean), tuple(prep.std)
    resample = _resample(prep.interpolation)

    def resized(img, side=size, how=resample):
        return _rgb(img).resize((side, side), how)

    def norm(x, m=mean, s=std):
        return _normalised(x, m, s)

    out = [
        Variant("no_norm", "the inputs were not normalised (values in [0, 1]): subtract MEAN and "
                "divide by STD, channel by channel", lambda img: _float_chw(resized(img))),
        Variant("no_255", "the pixel values were normalised without dividing by 255 first (the mean "
                "and std are for values in [0, 1])",
                lambda img: norm(_float_chw(resized(img)) * 255)),
    ]
    if (mean, std) != (IMAGENET_MEAN, IMAGENET_STD):
        out.append(Variant("imagenet_stats", "normalised with ImageNet's mean and std (VGG16's "
                           "numbers), not this network's MEAN and STD",
                           lambda img: norm(_float_chw(resized(img)), IMAGENET_MEAN, IMAGENET_STD)))
    else:
        out.append(Variant("half_stats", "normalised with mean 0.5 and std 0.5, not this network's "
                           "MEAN and STD",
                           lambda img: norm(_float_chw(resized(img)), (0.5,) * 3, (0.5,) * 3)))
    out += [
        Variant("swapped_stats", "mean and std swapped: (x - STD) / MEAN instead of (x - MEAN) / STD",
                lambda img: norm(_float_chw(resized(img)), std, mean)),
        Variant("mean_only", "only the mean was subtracted: divide by STD too",
                lambda img: norm(_float_chw(resized(img)), mean, (1.0,) * 3)),
        Variant("std_only", "only divided by the std: subtract MEAN first",
                lambda img: norm(_float_chw(resized(img)), (0.0,) * 3, std)),
        Variant("twice", "the inputs were normalised twice (your normalisation and another one)",
                lambda img: norm(norm(_float_chw(resized(img))))),
    ]
    if mean != mean[::-1] or std != std[::-1]:
        out.append(Variant("bgr_stats", "the channels are in BGR order against the RGB mean and std "
                           "(reversed after normalising?): keep RGB order, MEAN[0] goes with red",
                           lambda img: norm(_float_chw(resized(img))).flip(0)))
        out.append(Variant("bgr_pixels", "the channels are in BGR order (as OpenCV loads images): "
                           "convert to RGB before normalising",
                           lambda img: norm(_float_chw(resized(img)).flip(0))))
    if len(set(mean)) > 1 or len(set(std)) > 1:
        out.append(Variant("gray_once", "the gray channel was normalised once (with the first "
                           "channel's mean and std) and then copied: give the image three channels "
                           "first (img.convert('RGB')), then normalise each with its own mean and std",
                           lambda img: norm(_float_chw(resized(img))[:1], mean[:1] * 3,
                                            std[:1] * 3).expand(3, -1, -1)))
    for side in (256, 227):
        if side != size:
            out.append(Variant(f"size_{side}", f"the images were resized to {side}x{side}, not "
                               f"SIZE x SIZE ({size}x{size})",
                               lambda img, side=side: norm(_float_chw(resized(img, side)))))
    out.append(Variant("crop", f"resized and centre-cropped (the weights' evaluation transform), "
                       f"not the lab's plain resize of the whole image to {size}x{size}",
                       lambda img: norm(_float_chw(_crop(_rgb(img), prep)))))
    out.append(Variant("shorter_side", f"only the shorter side was resized to {size} (the aspect "
                       f"ratio kept): resize to ({size}, {size})",
                       lambda img: norm(_float_chw(_shorter_side(_rgb(img), size, prep.interpolation)))))
    for how in ("bilinear", "bicubic", "nearest"):
        if how != prep.interpolation:
            out.append(Variant(f"interp_{how}", f"resized with {how} interpolation, not the "
                               f"network's {prep.interpolation} (pass RESAMPLE to img.resize)",
                               lambda img, how=how: norm(_float_chw(resized(img, how=_resample(how))))))
    for antialias in (True, False):
        out.append(Variant(f"tensor_resize_{'aa' if antialias else 'noaa'}",
                           "resized as a tensor: torch's resize gives other pixels than Pillow's, "
                           "which the network's preprocessing uses: resize the PIL image, then convert",
                           lambda img, aa=antialias: norm(_tensor_resize(_float_chw(_rgb(img)), size,
                                                                         prep.interpolation, aa))))
    out.append(Variant("reshape", "the (H, W, 3) array was reshaped to (3, H, W) instead of permuted: "
                       "that scrambles the pixels; use .permute(2, 0, 1)",
                       lambda img: norm(torch.from_numpy(
                           np.asarray(resized(img), dtype=np.float32) / 255).reshape(3, size, size))))
    return out


def _crop(img, prep):
    """torchvision's Resize(resize_size) + CenterCrop(size) on a PIL image."""
    from torchvision.transforms import functional as TF

    img = _shorter_side(img, prep.resize_size, prep.interpolation)
    return TF.center_crop(img, [prep.size, prep.size])


def _shorter_side(img, side: int, interpolation: str):
    """torchvision's Resize(side) on a PIL image: the shorter side to ``side``, the aspect
    ratio kept (its rounding of the longer side, and Pillow's resize)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    return TF.resize(img, side, interpolation=InterpolationMode(interpolation), antialias=True)


def _tensor_resize(x, size, interpolation, antialias):
    mode = "bicubic" if interpolation == "bicubic" else "bilinear"
    return torch.nn.functional.interpolate(x[None], size=(size, size), mode=mode,
                                           antialias=antialias, align_corners=False)[0]


# ===================================================================== the diagnosis
class Diagnosis(NamedTuple):
    """``ok`` and one line for the student (made a Verdict by :mod:`tplib.checks`)."""

    ok: bool
    message: str


def _fail(message: str) -> Diagnosis:
    return Diagnosis(False, message)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _describe_positions(idx: np.ndarray, n: int) -> str:
    idx = np.asarray(idx)
    if len(idx) and np.array_equal(idx, np.arange(n - len(idx), n)):
        return f"the last {len(idx)}" if len(idx) > 1 else "the last one"
    shown = ", ".join(str(i) for i in idx[:5])
    return f"rows {shown}{', ...' if len(idx) > 5 else ''}"


def _tail_hint(k: int) -> str:
    return (f"the last, partial batch ({k} image{'s' if k != 1 else ''}) was never written: fill "
            "the array for every batch, the last one included (or collect the rows in a list and "
            "np.concatenate them)")


def _as_rows(X, n: int, d: int, what: str) -> tuple[np.ndarray | None, Diagnosis | None, str]:
    """The student's X as a float64 (rows, d) array, or the mistake; plus a note for ✔."""
    note = ""
    if isinstance(X, torch.Tensor):
        if X.requires_grad:
            return None, _fail(f"{what} is a torch tensor that requires grad: the network ran with "
                               "gradients on, keeping the graph of every batch in memory. Run it "
                               "under torch.no_grad() and return a NumPy array (.numpy())"), note
        return None, _fail(f"{what} is a torch tensor: return a NumPy array (X.numpy(), after "
                           ".cpu() on a GPU): scikit-learn and the cells below expect one"), note
    if isinstance(X, (list, tuple)):
        if not X:
            return None, _fail(f"{what} is an empty {type(X).__name__}: one row per image"), note
        first = X[0]
        if any(isinstance(v, torch.Tensor) and v.requires_grad for v in X):
            return None, _fail(f"{what} is a list of torch tensors that require grad: run the "
                               "network under torch.no_grad(), then stack the batches into one "
                               "NumPy array"), note
        dims = {np.ndim(v) if not isinstance(v, torch.Tensor) else v.dim() for v in X}
        if dims == {2}:
            return None, _fail(f"{what} is a list of {len(X)} batches: stack them into one "
                               "(n_images, D) array (np.concatenate)"), note
        if dims == {1} and len(X) == n:
            return None, _fail(f"{what} is a list of {len(X)} rows: make it one (n_images, D) "
                               "NumPy array (np.stack)"), note
        return None, _fail(f"{what} should be one NumPy array (n_images, D), not a "
                           f"{type(X).__name__} of {type(first).__name__}"), note
    if not isinstance(X, np.ndarray):
        return None, _fail(f"{what} should be a NumPy array (n_images, D), not "
                           f"{type(X).__name__}"), note
    if X.dtype.kind not in "f":
        kind = {"i": "integers", "u": "integers", "b": "booleans", "O": "Python objects",
                "c": "complex numbers"}.get(X.dtype.kind, str(X.dtype))
        return None, _fail(f"{what} holds {kind} ({X.dtype}): the rows are the network's float "
                           "values"), note
    if X.dtype == np.float64:
        note = " (float64: fine; float32 holds the same values in half the memory)"
    elif X.dtype == np.float16:
        note = " (float16: close enough here; float32 keeps the network's precision)"
    if X.ndim == 2 and X.shape == (d, n) and n != d:
        return None, _fail(f"{what} has shape {X.shape}: one column per image; it needs one row "
                           "per image (n_images, D): transpose it"), note
    if X.ndim > 2 and X.shape[0] == n and int(np.prod(X.shape[1:])) == d:
        return None, _fail(f"{what} has shape {X.shape}: flatten each image's output into one row "
                           f"(X.reshape(len(X), -1) gives ({n}, {d}))"), note
    if X.ndim == 3 and X.shape[-1] == d:
        return None, _fail(f"{what} has shape {X.shape}: batches stacked on a new axis; make it one "
                           f"(n_images, D) array (np.concatenate over the batches)"), note
    if X.ndim != 2:
        return None, _fail(f"{what} should be a matrix (n_images, D); its shape is {X.shape}"), note
    return X.astype(np.float64), None, note


def _as_labels(y, n: int) -> tuple[np.ndarray | None, Diagnosis | None]:
    kind = "tensor" if isinstance(y, torch.Tensor) else "array"
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if y is None:
        return None, _fail("y is None: return the labels too, one class index per row")
    try:
        arr = np.asarray(y)
    except Exception:  # noqa: BLE001 - ragged lists and the like
        return None, _fail(f"y should be one class index per row, not a {type(y).__name__}")
    if arr.dtype.kind in "US" or arr.dtype == object and arr.size and isinstance(arr.flat[0], str):
        return None, _fail("y holds class names: give the class indices (split.labels), one per row")
    if arr.dtype.kind not in "iuf" or arr.ndim != 1:
        return None, _fail(f"y should be a 1-D array of class indices, got a {kind} of shape "
                           f"{arr.shape} ({arr.dtype})")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            return None, _fail("y should hold whole class indices")
        arr = arr.astype(np.int64)
    if len(arr) != n:
        return None, _fail(f"y has {len(arr)} labels for {n} rows: one label per row")
    return arr.astype(np.int64), None


def _labels_verdict(labels: np.ndarray, expected: np.ndarray, classes: Sequence[str]) -> Diagnosis | None:
    if np.array_equal(labels, expected):
        return None
    if np.array_equal(labels, expected + 1):
        return _fail("y counts classes from 1: class indices start at 0 (use split.labels)")
    if np.array_equal(np.sort(labels), np.sort(expected)):
        return _fail("y holds the right labels in another order: row i's label is "
                     "split.labels[i] (do not shuffle or sort)")
    return _fail("y is not the split's labels: row i's label is split.labels[i]")


def _in_train_mode(model: nn.Module) -> bool:
    """Any module that behaves differently in training (dropout, BatchNorm) left in train mode."""
    kinds = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    return any(m.training for m in model.modules() if isinstance(m, kinds))


TRAIN_MODE = ("the network ran in train mode ({why}): call net.eval() before the loop "
              "(the rows differ from eval mode's)")


def _train_why(model: nn.Module) -> str:
    counts = mode_sensitive_layers(model)
    parts = []
    if counts["batchnorm"]:
        parts.append("BatchNorm used each batch's own statistics")
    if counts["dropout"]:
        parts.append("dropout zeroed random values")
    return " and ".join(parts) or "layers behaved as in training"


@torch.no_grad()
def _variants_rows(net: CutNetwork, images, variants: Sequence[Variant]) -> dict[str, np.ndarray]:
    """{variant name: unit rows of ``images``}; inputs of equal shape run as one batch (in
    eval mode a row does not depend on the rest of the batch). A variant whose inputs
    cannot be made or that the network refuses (another size for VGG16relu7) is left
    out: it cannot be the student's mistake."""
    inputs: dict[tuple, list[tuple[str, int, torch.Tensor]]] = {}
    for variant in variants:
        try:
            made = [variant.make(img) for img in images]
        except Exception:  # noqa: BLE001 - e.g. an image too small for a crop
            continue
        for i, x in enumerate(made):
            inputs.setdefault(tuple(x.shape), []).append((variant.name, i, x))
    rows: dict[str, list] = {variant.name: [None] * len(images) for variant in variants}
    for members in inputs.values():
        try:
            out = net(torch.stack([x for _, _, x in members])).float().numpy().astype(np.float64)
        except Exception:  # noqa: BLE001 - a size the network refuses
            continue
        for (name, i, _), row in zip(members, out):
            rows[name][i] = row
    return {name: _unit(np.stack(r)) for name, r in rows.items() if all(v is not None for v in r)}


#: {(model, weights, preprocessing, layer, images): {mistake: rows}} of the last few checks
_VARIANT_ROWS: dict[tuple, dict[str, np.ndarray]] = {}


@torch.no_grad()
def _train_rows(net: CutNetwork, images, prep) -> np.ndarray:
    """Rows of ``images`` as one batch in train mode; ``net``'s running statistics are
    restored afterwards (a train-mode pass overwrites them)."""
    x = torch.stack([right_input(img, prep) for img in images])
    with train_mode(net):
        return _unit(net(x).float().numpy().astype(np.float64))


def _nearest_variant(S: np.ndarray, paths, backbone: Backbone, layer: str,
                     deadline: float) -> Diagnosis | None:
    """The usual mistake whose rows on the first images equal the student's, if any."""
    from .images import load_image

    net = CutNetwork(backbone, layer).eval()
    prep = backbone.preprocess
    images: list = []

    def train_mode_with_batches_of(size: int) -> bool:
        # BatchNorm in train mode normalises with each batch's own statistics, so a row
        # depends on the other images of its batch: the first B images run as one batch
        # in train mode equal the student's first batch of B
        images.extend(load_image(p) for p in paths[len(images):size])
        T = _train_rows(net, images[:size], prep)
        return bool(np.linalg.norm(S[:size] - T, axis=1).max() < SAME_ROW)

    batchnorm = mode_sensitive_layers(backbone.model)["batchnorm"] > 0
    sizes = list(dict.fromkeys(min(b, len(S)) for b in TRAIN_BATCH_SIZES))
    if batchnorm and train_mode_with_batches_of(sizes[0]):  # the notebook's batch size
        return _fail(TRAIN_MODE.format(why=_train_why(backbone.model)))
    k = min(len(S), PROBE_IMAGES)
    variants = wrong_inputs(prep)
    key = (id(backbone.model), backbone.weights_id, repr(prep), layer, tuple(map(str, paths[:k])))
    found = _VARIANT_ROWS.get(key)
    if found is None:  # the same images and network: the next wrong answer reuses them
        images.extend(load_image(p) for p in paths[len(images):k])
        found = _variants_rows(net, images[:k], variants)
        if len(_VARIANT_ROWS) >= 8:
            _VARIANT_ROWS.pop(next(iter(_VARIANT_ROWS)))
        _VARIANT_ROWS[key] = found
    for variant in variants:
        V = found.get(variant.name)
        if V is not None and np.linalg.norm(S[:k] - V, axis=1).max() < SAME_ROW:
            return _fail(variant.message)
    # other batch sizes while time allows; an unusual one gets the general hint, which
    # names eval mode too
    for size in sizes[1:] if batchnorm else ():
        if time.monotonic() > deadline:
            break
        if train_mode_with_batches_of(size):
            return _fail(TRAIN_MODE.format(why=_train_why(backbone.model)))
    return None


def reference_engine():
    """The active profile's engine, computing as a student's loop does: fp32 on the CPU,
    float32 rows (the ``ci`` profile's own settings; a ``full`` run may use bf16 or a GPU,
    whose rows differ from a plain fp32 loop by more than rounding)."""
    from .profile import default_engine

    return default_engine(None).replace(device="cpu", precision="fp32", dtype="float32")


def diagnose_extraction(X, y, split, backbone: Backbone, layer: str | None = None) -> Diagnosis:
    """The student's rows ``X`` and labels ``y`` for the images of ``split``, judged.

    Args:
        X: (n_images, D) float array: one L2-normalised row per image of ``split``, in the
            order of ``split.paths`` (the order of ``split.labels``).
        y: (n_images,) the class indices, row by row.
        split: the data split the rows were made from (``data.train``, ``small.test``...).
        backbone: the network whose cut made the rows (the student's ``VGG16relu7`` on
            VGG16, or :func:`cut_network` of this backbone).
        layer: the feature layer (default ``backbone.default_layer``).

    The reference is :func:`tplib.extract_features` on the same images (cached), fp32 on
    the CPU (:func:`reference_engine`). Returns
    a :class:`Diagnosis`; it never raises for any ``X`` or ``y``.
    """
    from .features import extract_features
    from .svm import l2_normalize

    layer = layer or backbone.default_layer
    # before extract_features, which puts the model in eval mode and back: the student's
    # VGG16relu7 shares its modules with backbone.model, so its train mode shows here
    left_in_train_mode = _in_train_mode(backbone.model)
    ref = extract_features(backbone, split, layer, progress=False, engine=reference_engine())
    R_raw = np.asarray(ref[layer], dtype=np.float64)
    n, d = R_raw.shape
    where = f"{backbone.spec.title} {layer}"
    images = f"the {n} {getattr(split, 'name', '')} images".replace("  ", " ")
    rows, bad, note = _as_rows(X, n, d, "X")
    if bad is not None:
        return bad
    n_x, d_x = rows.shape
    if d_x != d:
        if d_x == 1000 and d != 1000:
            return _fail(f"X has 1000 values per row: the ImageNet scores of the network's last "
                         f"layer. Run the cut network ({where}: {d} values)")
        return _fail(f"X has {d_x} values per row; {where} gives {d}: run the cut network "
                     "and flatten each image's output")
    R = l2_normalize(R_raw).astype(np.float64)
    if n_x < n:
        head = _unit(rows)
        if n_x and np.linalg.norm(head - R[:n_x], axis=1).max() < SAME_ROW:
            return _fail(f"X has {n_x} rows for {images}: the last {n - n_x} are missing (a "
                         "DataLoader with drop_last=True, or a loop that stops before the last, "
                         "partial batch?)")
        return _fail(f"X has {n_x} rows for {images}: one row per image")
    if n_x > n:
        return _fail(f"X has {n_x} rows for {images}: one row per image (was a batch added twice?)")
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite)
        tail = np.array_equal(bad_rows, np.arange(n - len(bad_rows), n))
        return _fail(f"X has NaN or inf in {_describe_positions(bad_rows, n)} row(s)"
                     + (f": zero rows divided by their norm? {_tail_hint(len(bad_rows))}" if tail
                        else ": a row of zeros divided by its norm?"))
    norms = np.linalg.norm(rows, axis=1)
    zero = norms < 1e-12
    if zero.any():
        zero_rows = np.flatnonzero(zero)
        if np.array_equal(zero_rows, np.arange(n - len(zero_rows), n)):
            return _fail(f"X's last {len(zero_rows)} row(s) are all zeros: {_tail_hint(len(zero_rows))}")
        return _fail(f"X has {len(zero_rows)} all-zero row(s) ({_describe_positions(zero_rows, n)}): "
                     "every image needs its features")
    S = rows / norms[:, None]
    labels, bad_y = _as_labels(y, n)
    dist = np.linalg.norm(S - R, axis=1)
    same = dist < SAME_ROW
    expected = np.asarray(ref.labels, dtype=np.int64)
    if not same.all():
        wrong = np.flatnonzero(~same)
        # the rows of other images? (a shuffled loader, rows sorted, a batch written twice)
        cos = np.clip(S @ R.T, -1.0, 1.0)
        best = cos.argmax(axis=1)
        best_dist = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * cos[np.arange(n), best]))
        if (best_dist < SAME_ROW).all():
            if len(set(best.tolist())) < n:
                return _fail("some images' rows appear twice and others are missing: was a batch "
                             "written twice, or into the wrong slice of the array?")
            if labels is not None and np.array_equal(labels, expected[best]):
                return _fail("rows and labels are shuffled together (a DataLoader with "
                             "shuffle=True?): keep the split's order, so that row i is the image "
                             "split.paths[i] (shuffle=False)")
            return _fail("the rows are the right images' features in another order: row i must "
                         "be the image split.paths[i], in the order of the labels (do not shuffle "
                         "or sort)")
        if np.array_equal(wrong, np.arange(wrong[0], n)) and wrong[0] > 0:
            return _fail(f"X's last {n - wrong[0]} row(s) are not their images' features: "
                         f"{_tail_hint(n - wrong[0])}")
        if left_in_train_mode:
            return _fail(TRAIN_MODE.format(why=_train_why(backbone.model)))
        deadline = time.monotonic() + VARIANT_BUDGET_S
        found = _nearest_variant(S, list(ref.paths), backbone, layer, deadline)
        if found is not None:
            return found
        close = float(np.median(np.sum(S * R, axis=1)))
        if close > 0.9:
            return _fail("the rows are close to the right ones but not equal: the preprocessing "
                         "differs a little; compare your resize and normalisation with SIZE, "
                         "RESAMPLE, MEAN and STD (a typo in one number?)")
        return _fail(f"these rows are not {where}'s features of these images: check the "
                     "preprocessing (three channels, resize to SIZE x SIZE, /255, MEAN and STD) "
                     "and that net is the cut network in eval mode")
    if not np.allclose(norms, 1.0, atol=2e-3):
        if np.allclose(rows, R_raw, rtol=1e-3, atol=1e-5 * float(np.abs(R_raw).max())):
            return _fail("the right rows, but not L2-normalised yet: divide each row by its own "
                         "norm (np.linalg.norm(X, axis=1, keepdims=True))")
        return _fail("the rows point the right way but their lengths are not 1: divide each row "
                     "by its own L2 norm (axis=1, keepdims=True)")
    if bad_y is not None:
        return bad_y
    verdict = _labels_verdict(labels, expected, getattr(split, "classes", []))
    if verdict is not None:
        return verdict
    return Diagnosis(True, f"{n} rows of {d} values ({where}), one unit-length row per image in "
                           f"the order of the labels: the rows tplib.extract_features gives{note}")
