"""Top-activating image patches: what one channel of a layer responds to, on real images.

A first-layer filter is a 3x3 tile, and a deep activation map a blur of 14x14 values:
neither says much by eye. What any network can show instead (Zeiler & Fergus, 2014) is,
for one channel of one layer, the pieces of a set of images where that channel responds
most, each cut to the channel's **receptive field** (the input pixels its value depends
on). Early layers' patches are edges, lines, bright or dark or coloured blobs; deeper
layers' are textures and parts.

One pass over the images (all asked layers at once, in batches) keeps, for every image
and channel, the largest value of the map and its position; only the chosen channels'
top images are read again, to cut their patches. The result is kept in memory for the
session: asking again for other channels or other k costs nothing.

The receptive field is measured, not derived from a list of kernel sizes: the gradient
of one unit in the middle of the map with respect to the input is non-zero exactly on
the pixels that unit depends on, whatever the layers are (3x3 convolutions and max-pools
in VGG16; depthwise 3x3 and 5x5 convolutions with TensorFlow's "same" padding, residual
additions and BatchNorm in EfficientNet-Lite). While it is measured, max-pools act as
average pools and activation functions as identities: the maximum of a window depends on
every value of it, but its gradient reaches only the largest, and a ReLU that is off for
one input would hide pixels that other inputs reach. It is measured once per layer and
input size and cached; the field of any other position is that box shifted by the
layer's stride.

By default only the positions whose whole field lies inside the image compete: at the
border a deep unit sees mostly the network's zero padding, and some channels respond to
the border itself (``inside=False`` lets them compete too).

Taught in notebook 03 (activation maps).
"""
from __future__ import annotations

import textwrap
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .engine import Engine, resolve_precision, resolve_threads
from .errors import DataError, LayerError, OptionError
from .features import LayerTap, _autocast, _prepared_model, iter_batches, probe_layers
from .images import load_image
from .models import Backbone
from .profile import default_engine

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ReceptiveField", "Patch", "TopPatches", "receptive_field", "receptive_fields",
           "patch_layers", "top_patches", "plot_top_patches"]

#: Random inputs whose gradients are combined when a receptive field is measured (the
#: network is measured without its non-linearities, but a layer tplib does not know as
#: one may remain: what one input hides, another shows).
PROBE_INPUTS = 2
#: :func:`receptive_field` doubles its probe input up to this many times the network's
#: input size while the field touches the probe's border.
MAX_PROBE_FACTOR = 4


class _Stop(Exception):
    """Raised by a hook once every asked layer has run: nothing after them is needed."""


# ------------------------------------------------------------------ receptive fields
@dataclass(frozen=True)
class ReceptiveField:
    """Where one position of a layer's map looks in the input.

    Attributes:
        layer: the layer (friendly or module name, as asked).
        size: (height, width) of the field, in input pixels.
        stride: input pixels between two neighbouring positions of the map (rows, columns).
        start: (top, left) of the field of map position (0, 0); negative where it reaches
            past the image's top-left corner (into the padding).
        input_size: the side of the network's square input that the boxes refer to.
        map_size: (height, width) of the layer's map for that input.
        complete: False when the field outgrew the largest probe input: ``size`` is then
            a lower bound (and ``start`` meaningless).
        channels: the layer's number of maps (C).
    """

    layer: str
    size: tuple[int, int]
    stride: tuple[int, int]
    start: tuple[int, int]
    input_size: int
    map_size: tuple[int, int]
    complete: bool = True
    channels: int = 0

    def box(self, y: int, x: int, *, clip: bool = True) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the field of map position (y, x), bottom and right
        excluded. With ``clip`` the box is cut to the input (0..input_size)."""
        top = self.start[0] + y * self.stride[0]
        left = self.start[1] + x * self.stride[1]
        bottom, right = top + self.size[0], left + self.size[1]
        if clip:
            s = self.input_size
            top, left = max(0, top), max(0, left)
            bottom, right = min(s, bottom), min(s, right)
        return top, left, bottom, right

    def inside(self) -> tuple[slice, slice]:
        """The map positions whose whole field lies inside the input, as (rows, columns) slices
        (empty when the field is larger than the input)."""
        if not self.complete:
            return slice(0, 0), slice(0, 0)
        def axis(start: int, stride: int, size: int, n: int) -> slice:
            first = max(0, -(start // stride))                   # start + y * stride >= 0
            stop = min(n, (self.input_size - size - start) // stride + 1)  # ... + size <= input
            return slice(first, max(first, stop))

        return (axis(self.start[0], self.stride[0], self.size[0], self.map_size[0]),
                axis(self.start[1], self.stride[1], self.size[1], self.map_size[1]))

    def describe(self) -> str:
        """e.g. ``pool2: 128 maps of 56 x 56, each value sees 16 x 16 px of the 224 x 224
        input (stride 4)``."""
        h, w = self.size
        stride = self.stride[0] if self.stride[0] == self.stride[1] else self.stride
        where = f"the {self.input_size} x {self.input_size} input"
        seen = f"{h} x {w} px of {where}" if self.complete else f"more than {where}"
        return (f"{self.layer}: {self.channels} maps of {self.map_size[0]} x {self.map_size[1]}, "
                f"each value sees {seen} (stride {stride})")


# model -> {(node, module id, input size): {max probe factor: measured geometry}}
_FIELDS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def _outputs(model: torch.nn.Module, nodes: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of modules ``nodes`` for input ``x``, with their autograd graph; the pass
    stops once all have run."""
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(node: str):
        def hook(module, inputs, output):
            captured[node] = output
            if len(captured) == len(nodes):
                raise _Stop
        return hook

    for node in nodes:
        handles.append(model.get_submodule(node).register_forward_hook(hook_for(node)))
    try:
        model(x)
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [n for n in nodes if n not in captured]
    if missing:
        raise LayerError(f"module {missing[0]} was not reached by the forward pass")
    return captured


#: Element-wise activations: identities while a field is measured.
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus)


@contextmanager
def _without_nonlinearities(model: nn.Module):
    """Max-pools as average pools (same window), activations as identities, for a ``with``
    block; the modules' own ``forward`` comes back afterwards. Only exact ``nn.MaxPool2d``
    (without dilation) is replaced: a subclass (timm's "same"-padded pool) pads in its own
    way and keeps its forward."""
    changed = []
    for module in model.modules():
        if type(module) is nn.MaxPool2d and module.dilation in (1, (1, 1)) and not module.return_indices:
            pool = module
            module.forward = lambda x, m=pool: F.avg_pool2d(x, m.kernel_size, m.stride, m.padding,
                                                            ceil_mode=m.ceil_mode)
            changed.append(module)
        elif isinstance(module, _ACTIVATIONS):
            module.forward = lambda x: x
            changed.append(module)
    try:
        yield model
    finally:
        for module in changed:
            del module.forward


def _measure(model: torch.nn.Module, nodes: Sequence[str], size: int, max_factor: int) -> dict:
    """{node: (field size, stride, start, map size at ``size``, complete, channels)} from input gradients;
    None for a node whose output is not maps (N, C, H, W)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    found: dict[str, tuple] = {}
    map_sizes: dict[str, tuple[int, int]] = {}
    todo, probe = list(nodes), size
    while todo:
        x = torch.randn(PROBE_INPUTS, 3, probe, probe, generator=generator).to(device).requires_grad_(True)
        retry = []
        with torch.enable_grad(), _without_nonlinearities(model):
            outs = _outputs(model, todo, x)
            for node in todo:
                out = outs[node]
                if out.dim() != 4:
                    found[node] = None
                    continue
                h, w = int(out.shape[-2]), int(out.shape[-1])
                map_sizes.setdefault(node, (h, w))
                cy, cx = h // 2, w // 2
                seed = torch.zeros_like(out)
                seed[:, :, cy, cx] = 1.0
                (grad,) = torch.autograd.grad(out, x, seed, retain_graph=True)
                reached = (grad != 0).any(dim=0).any(dim=0).cpu()  # (probe, probe) input pixels
                rows = torch.nonzero(reached.any(dim=1)).flatten()
                cols = torch.nonzero(reached.any(dim=0)).flatten()
                if len(rows) == 0:
                    raise LayerError(f"{node}: no input pixel changes the centre of its map")
                top, bottom = int(rows[0]), int(rows[-1]) + 1
                left, right = int(cols[0]), int(cols[-1]) + 1
                touches = top == 0 or left == 0 or bottom == probe or right == probe
                if touches and probe * 2 <= max_factor * size:
                    retry.append(node)
                    continue
                stride = (round(probe / h), round(probe / w))
                start = (top - cy * stride[0], left - cx * stride[1])
                found[node] = ((bottom - top, right - left), stride, start, map_sizes[node], not touches,
                               int(out.shape[1]))
        todo, probe = retry, probe * 2
    return found


def receptive_fields(backbone: Backbone, layers: Sequence[str] | None = None, *,
                     max_factor: int = 1) -> list[ReceptiveField]:
    """The receptive fields of several layers, measured in one forward pass (see the module).

    Args:
        backbone: any :class:`tplib.models.Backbone`.
        layers: friendly or module names of layers with (C, H, W) maps; default the
            network's convolutional stages (:func:`tplib.registry.sweep_layers`, without
            the pooled vectors at its end).
        max_factor: the probe input grows (doubling) up to this many times the input
            size while a field touches its border; a field still larger is returned with
            ``complete=False``. The default, 1, measures at the input size only (fast): a
            field larger than the input says so.

    Returns:
        One :class:`ReceptiveField` per layer, in the order asked.

    A network whose blocks hold a global pooling (MobileNetV3's squeeze-and-excitation)
    has fields as large as the input after its first such block: every value then
    depends on every pixel. VGG16 and EfficientNet-Lite have none.
    """
    from .registry import sweep_layers

    default = layers is None
    layers = list(sweep_layers(backbone.name) if default else layers)
    model = backbone.model
    size = int(backbone.preprocess.size)
    nodes = {layer: backbone.node(layer) for layer in layers}
    memo = _FIELDS.setdefault(model, {})
    keys = {node: (node, id(model.get_submodule(node)), size) for node in nodes.values()}

    def known(node: str):
        """The geometry measured with this max_factor; a complete one measured with a smaller
        factor is the same (the probe grows only while the field touches its border)."""
        by_factor = memo.get(keys[node], {})
        if max_factor in by_factor:
            return by_factor[max_factor]
        for factor, geometry in sorted(by_factor.items()):
            if factor < max_factor and (geometry is None or geometry[4]):
                return geometry
        return False

    missing = sorted(node for node in keys if known(node) is False)
    if missing:
        was_training = model.training
        model.eval()
        try:
            for node, geometry in _measure(model, missing, size, max_factor).items():
                memo.setdefault(keys[node], {})[max_factor] = geometry
        finally:
            model.train(was_training)
    fields = []
    for layer, node in nodes.items():
        geometry = known(node)
        if default and (geometry is None or geometry[3] == (1, 1)):
            continue  # the stages end with pooled vectors (or 1 x 1 maps: a global pool)
        if geometry is None:
            raise LayerError(f"{layer} ({node}) of {backbone.name} outputs vectors, not maps (C, H, W): "
                             "receptive fields and patches need a convolutional layer")
        rf_size, stride, start, map_size, complete, channels = geometry
        fields.append(ReceptiveField(layer, rf_size, stride, start, size, map_size, complete, channels))
    return fields


def receptive_field(backbone: Backbone, layer: str, *, max_factor: int = MAX_PROBE_FACTOR) -> ReceptiveField:
    """The receptive field of ``layer``'s map positions (VGG16's ``pool2``: 16 x 16 px, stride
    4; ``pool4``: 100 x 100 px, stride 16). See :func:`receptive_fields`."""
    return receptive_fields(backbone, [layer], max_factor=max_factor)[0]


def patch_layers(backbone: Backbone, *, early_px: int = 12, deep_fraction: float = 0.4) -> tuple[str, str]:
    """An early and a deep layer whose top patches can be read, chosen by receptive field.

    Among the network's convolutional stages (:func:`receptive_fields`, measured at the
    input size): the early layer is the first whose field is at least ``early_px``
    pixels wide (a first-layer field, 3 x 3, is too small to see anything in); the deep
    one, among the later stages whose field fits in the input, the one nearest
    ``deep_fraction`` of the input (large enough for parts, small enough to leave
    positions that see only the image). VGG16: ``pool2`` (16 px) and ``pool4`` (100 px);
    EfficientNet-Lite0: ``block2`` (19 px) and ``block3`` (67 px).
    """
    fields = [f for f in receptive_fields(backbone) if f.complete]
    if len(fields) < 2:
        raise LayerError(f"{backbone.name}: fewer than two convolutional stages to choose from")
    early = next((f for f in fields if f.size[1] >= early_px), fields[0])
    later = [f for f in fields if f.size[1] > early.size[1]] or [fields[-1]]
    target = deep_fraction * early.input_size
    deep = min(later, key=lambda f: abs(f.size[1] - target))
    return early.layer, deep.layer


# ------------------------------------------------------------------ the search
@dataclass(frozen=True)
class Patch:
    """One image's strongest response of one channel, and the input patch under it.

    Attributes:
        channel: the channel (index into the layer's C maps).
        value: the activation there: the largest value of this image's map of ``channel``
            (among the positions that competed: see ``inside`` in :func:`top_patches`).
        path: the image file.
        position: (y, x) of that value in the layer's map.
        box: (top, left, bottom, right) of its receptive field in the input as the network
            sees it (resized to ``input_size`` square), clipped to the input.
        field: the same box, unclipped (it reaches past the borders when ``inside=False``).
        pixels: (h, w, 3) uint8, the input inside ``box``.
    """

    channel: int
    value: float
    path: str
    position: tuple[int, int]
    box: tuple[int, int, int, int]
    field: tuple[int, int, int, int]
    pixels: np.ndarray = field(repr=False)


@dataclass
class TopPatches:
    """For a few channels of one layer, the patches of a set of images that activate each most.

    Attributes:
        network: the network's registry name.
        layer: the layer.
        channels: the channels shown, in order.
        patches: channel -> its :class:`Patch` list, strongest first (one per image).
        receptive_field: the layer's :class:`ReceptiveField`.
        images: what the images are, in words (for titles).
        n_channels: channels of the layer (C).
        maxima: (n_images, C) float32, every image's largest value per channel.
        positions: (n_images, C, 2) int, where in the map each maximum is.
        paths: the searched image files, in row order of ``maxima``.
        inside: True when only the positions whose field lies inside the image competed.
        chosen_by: how the channels were chosen, in words.
    """

    network: str
    layer: str
    channels: list[int]
    patches: dict[int, list[Patch]]
    receptive_field: ReceptiveField
    images: str
    n_channels: int
    maxima: np.ndarray = field(repr=False)
    positions: np.ndarray = field(repr=False)
    paths: list[str] = field(default_factory=list, repr=False)
    inside: bool = True
    chosen_by: str = ""

    @property
    def k(self) -> int:
        """Patches per channel (fewer only when there are fewer images)."""
        return max((len(p) for p in self.patches.values()), default=0)

    @property
    def n_images(self) -> int:
        return len(self.paths)

    def title(self) -> str:
        """What produced the figure: network, layer, field size, images."""
        h, w = self.receptive_field.size
        return (f"{self.network}, {self.layer} (receptive field {h} x {w} px): the top {self.k} patches "
                f"of each channel, in {self.images}")

    def describe(self) -> str:
        """A few lines: layer, field, images, how the channels were chosen, their top values."""
        lines = [f"{self.network}, {self.layer}: {self.n_channels} channels, searched in {self.images}",
                 f"receptive field {self.receptive_field.describe()}",
                 f"channels: {self.chosen_by}; each one's top {self.k} activations:"]
        for c in self.channels:
            values = " ".join(f"{p.value:5.1f}" for p in self.patches[c])
            lines.append(f"  #{c:<4} {values}")
        return "\n".join(lines)

    def __repr__(self) -> str:  # a cell ending with the object shows the summary
        return self.describe()


def _image_paths(images) -> list[Path]:
    if hasattr(images, "paths"):
        return [Path(p) for p in images.paths]
    if isinstance(images, (str, Path)):
        return [Path(images)]
    try:
        return [Path(p) for p in images]
    except TypeError:
        raise DataError(f"images must be a data split, a list of image files or one file, "
                        f"not {type(images).__name__}") from None


def _describe_images(images, n: int) -> str:
    root = getattr(images, "root", None)
    if root is not None:
        return f"{n} images of {Path(root).parent.name}/{Path(root).name}"
    return f"{n} images"


# model -> {(weights id, layer nodes, module ids, paths, inside, engine): (scan, usable paths)}
_SCANS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


@torch.no_grad()
def _scan(backbone: Backbone, paths: list[Path], nodes: dict[str, str],
          regions: dict[str, tuple[slice, slice]], engine: Engine):
    """One pass over ``paths``: {layer: ((n, C) maxima, (n, C, 2) positions)} within each
    layer's region of the map, and the n files that could be decoded.

    Run as :func:`tplib.extract_features` runs (the engine's device, precision, BatchNorm
    folding, memory format): the same values up to float rounding, 2-3x faster on a CPU
    than the plain model.
    """
    dev = engine.check_device()
    precision = resolve_precision(engine.precision, dev)
    channels_last = engine.channels_last and dev.type in ("cpu", "cuda")
    batch_size = engine.batch_size or backbone.batch_size
    _, order = probe_layers(backbone, nodes, "max")
    maxima = {layer: [] for layer in nodes}
    positions = {layer: [] for layer in nodes}
    usable: list[str] = []
    with _prepared_model(backbone.model, dev, channels_last, engine.fold_bn, backbone.preprocess.size,
                         keep=list(nodes.values())) as model, \
            LayerTap(model, nodes, pool=None, stop_after=nodes[order[-1]]) as tap:
        for start, batch, ok, _errors in iter_batches(paths, backbone.preprocess, batch_size,
                                                      threads=resolve_threads(engine.threads, dev)):
            usable += [str(paths[start + i]) for i in np.flatnonzero(ok)]
            if not len(batch):
                continue
            x = backbone.preprocess.normalize(batch.to(dev))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(precision, dev):
                outs = tap.run(x)
            for layer in nodes:
                rows, cols = regions[layer]
                region = outs[layer][:, :, rows, cols].float()
                n, c, h, w = region.shape
                value, index = region.reshape(n, c, h * w).max(dim=2)
                index = index.cpu().numpy()
                maxima[layer].append(value.cpu().numpy())
                positions[layer].append(np.stack([index // w + rows.start, index % w + cols.start], axis=-1))
    if not usable:
        raise DataError(f"none of the {len(paths)} images could be read")
    return {layer: (np.concatenate(maxima[layer]).astype(np.float32),
                    np.concatenate(positions[layer]).astype(np.int64)) for layer in nodes}, usable


def _pick_channels(maxima: np.ndarray, channels, k: int) -> tuple[list[int], str]:
    n_channels = maxima.shape[1]
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        count = int(channels)
        if count < 1:
            raise OptionError(f"channels must be a count >= 1 or a list of channel indices, not {channels!r}")
        # Selective channels: their k strongest images stand out from the rest (a z-score).
        # A channel that responds about as much to every image (a large uniform area, sky or
        # wall) has strong but unreadable top patches. Ties go to the lower index.
        top = -np.sort(-maxima, axis=0)[:k]
        spread = maxima.std(axis=0)
        score = (top.mean(axis=0) - maxima.mean(axis=0)) / np.where(spread > 0, spread, np.inf)
        order = np.argsort(-score, kind="stable")[:count]
        return [int(c) for c in order], (f"the {len(order)} of {n_channels} whose top {k} images stand "
                                         "out most from the others")
    try:
        picked = [int(c) for c in channels]
    except TypeError:
        raise OptionError(f"channels must be a count or a list of channel indices, "
                          f"not {channels!r}") from None
    bad = [c for c in picked if not 0 <= c < n_channels]
    if bad:
        raise OptionError(f"channel {bad[0]} out of range 0..{n_channels - 1}")
    return picked, "as asked"


def top_patches(backbone: Backbone, images, layers: str | Sequence[str], *,
                channels: int | Sequence[int] = 6, k: int = 8, inside: bool = True,
                description: str | None = None, engine: Engine | None = None) -> dict[str, TopPatches]:
    """The image patches that activate some channels of ``layers`` most.

    Args:
        backbone: the network (:func:`tplib.setup`'s ``lab.backbone``).
        images: a data split (``lab.dataset.train``, or ``.subset(10)`` of it), a list of
            image files, or one file. 100-300 images take seconds with EfficientNet-Lite0;
            VGG16 runs at about 3-4 images per second on a laptop's CPU.
        layers: one or more layers with (C, H, W) maps (friendly or module names); all
            are computed in one pass over the images.
        channels: how many channels to show per layer, chosen automatically and
            deterministically (those whose top k images stand out most from the others),
            or a list of channel indices.
        k: patches per channel: the k images whose map of that channel holds the largest
            value, one patch each, at that map's maximum.
        inside: only positions whose whole receptive field lies inside the image compete
            (see the module docstring); False: every position of the map.
        description: what the images are, for titles (default: their count and folder).
        engine: how the pass runs (:class:`tplib.engine.Engine`: batch size, device,
            precision...); default the active profile's, as for :func:`tplib.extract_features`.

    Returns:
        {layer: :class:`TopPatches`}; ``result[layer].patches[c][0]`` is channel c's
        strongest patch. The pass over the images is remembered for this session (per
        model, weights id, layers and images): asking again with other channels or k reads
        it back. After training a model in place, give it a new ``weights_id``.
    """
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise OptionError("layers is empty: give one or more layer names")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise OptionError(f"k must be a whole number >= 1, not {k!r}")
    paths = _image_paths(images)
    if not paths:
        raise DataError("no images to search")
    nodes = {layer: backbone.node(layer) for layer in layers}
    fields = dict(zip(layers, receptive_fields(backbone, layers, max_factor=MAX_PROBE_FACTOR)))
    regions = {}
    for layer, rf in fields.items():
        rows, cols = rf.inside() if inside else (slice(0, rf.map_size[0]), slice(0, rf.map_size[1]))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            raise OptionError(f"the receptive field of {layer} ({rf.describe()}) does not fit in the "
                              "input: no position sees only the image. Use inside=False, or an "
                              "earlier layer")
        regions[layer] = (rows, cols)
    engine = default_engine(engine)
    model = backbone.model
    modules = dict(model.named_modules())
    key = (backbone.weights_id, tuple(nodes.items()), tuple(id(modules[n]) for n in nodes.values()),
           tuple(str(p) for p in paths), inside, engine)
    memo = _SCANS.setdefault(model, {})
    if key not in memo:
        memo.clear()  # one scan per model is enough to come back to
        memo[key] = _scan(backbone, paths, nodes, regions, engine)
    scans, usable = memo[key]
    words = description or _describe_images(images, len(usable))

    results = {}
    for layer in layers:
        maxima, positions = scans[layer]
        picked, chosen_by = _pick_channels(maxima, channels, min(k, len(usable)))
        order = {c: [int(i) for i in np.argsort(-maxima[:, c], kind="stable")[:k]] for c in picked}
        rf = fields[layer]
        pixels = {i: backbone.preprocess.to_uint8(load_image(usable[i]))
                  for i in sorted({i for rows in order.values() for i in rows})}
        patches = {}
        for c in picked:
            row = []
            for i in order[c]:
                y, x = (int(v) for v in positions[i, c])
                box = rf.box(y, x)
                top, left, bottom, right = box
                crop = pixels[i][:, top:bottom, left:right].permute(1, 2, 0).numpy().copy()
                row.append(Patch(c, float(maxima[i, c]), usable[i], (y, x), box,
                                 rf.box(y, x, clip=False), crop))
            patches[c] = row
        results[layer] = TopPatches(network=backbone.name, layer=layer, channels=picked, patches=patches,
                                    receptive_field=rf, images=words, n_channels=int(maxima.shape[1]),
                                    maxima=maxima, positions=positions, paths=list(usable),
                                    inside=inside, chosen_by=chosen_by)
    return results


# ------------------------------------------------------------------ plot
def _tile(patch: Patch) -> tuple[np.ndarray, bool]:
    """The patch on a canvas of its whole field (white where the field leaves the image),
    so that every tile of a row has the same scale; and whether it was clipped."""
    top, left, bottom, right = patch.field
    if patch.box == patch.field:
        return patch.pixels, False
    canvas = np.full((bottom - top, right - left, 3), 255, dtype=np.uint8)
    b = patch.box
    canvas[b[0] - top:b[2] - top, b[1] - left:b[3] - left] = patch.pixels
    return canvas, True


def plot_top_patches(result: TopPatches, *, size: float = 0.85, title: str | None = None,
                     values: bool = True, dpi: float = 72) -> Figure:
    """A grid of top patches: one row per channel, its strongest patch first.

    Args:
        result: one layer's :class:`TopPatches` (an item of :func:`top_patches`' result).
        size: inches per tile.
        title: the figure's title (default ``result.title()``: network, layer, field, images).
        values: write each patch's activation above it.
        dpi: pixels per inch (72: a 67 px patch drawn on 0.85 inch keeps about its own
            pixels, and a notebook stores a lighter image).

    Returns:
        The Figure. Each tile is the patch of the input (as the network sees it, resized)
        under one receptive field, all at the same scale; where a field reaches past the
        image's border (``inside=False``), the tile is white there.
    """
    from matplotlib.figure import Figure

    rows = [c for c in result.channels if result.patches.get(c)]
    if not rows:
        raise OptionError("no patches to plot")
    cols = result.k
    text = title if title is not None else result.title()
    width = size * cols + 0.5
    lines = textwrap.wrap(text, max(40, int(width * 10)))
    fig = Figure(figsize=(width, size * len(rows) * (1.2 if values else 1.0) + 0.2 + 0.2 * len(lines)),
                 layout="constrained", dpi=dpi)
    for r, c in enumerate(rows):
        for j, patch in enumerate(result.patches[c]):
            ax = fig.add_subplot(len(rows), cols, r * cols + j + 1)
            tile, clipped = _tile(patch)
            # a few dozen pixels drawn on an inch: show them as squares, not a blur
            ax.imshow(tile, interpolation="nearest" if tile.shape[0] < 40 else "antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(clipped)
                spine.set_color("0.7")
            if values:
                ax.set_title(f"{patch.value:.1f}", fontsize=7, pad=2)
            if j == 0:
                ax.set_ylabel(f"#{c}", fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle("\n".join(lines), fontsize=10)
    return fig
