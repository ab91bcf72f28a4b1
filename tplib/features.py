"""Batched, cached feature extraction: many layers in one forward pass.

The pipeline for one set of images::

    files --(threads: decode + resize, uint8)--> batches --(model, hooks)--> rows

- Layers are captured with forward hooks, so any set of layers comes out of one
  pass, and the pass stops right after the deepest requested layer. A hook copies
  (or pools) its output at once: VGG's ReLUs are in-place, so ``fc7`` read later
  would already hold ``relu7``'s values.
- Convolutional outputs (N, C, H, W) can be pooled to a bounded size: ``"avg"`` and
  ``"max"`` (C values), ``"pyramid"`` (global + 2x2 average, 5C values), or kept
  whole with ``"none"`` (C*H*W, what the lab does for relu7's 4096 values).
- Rows stream into arrays of the final size (no list of batches; rows of images that
  fail to decode are dropped, never left as zeros).
- With ``cache=True`` the rows are also written, batch by batch, into an entry of the
  feature cache on disk (:mod:`tplib.cache`): an interrupted run resumes where it
  stopped, a finished entry is renamed into place atomically, and any change to the
  model (its weights too, even changed in place), layers, pooling, preprocessing,
  precision or image files gives a new key.
- How the work is done (batch size, device, precision, decoding threads, BatchNorm
  folding, storage dtype) is one :class:`tplib.engine.Engine`; the active run profile
  gives its defaults.

Taught in notebook 04 (relu7 + SVM) and 05 (layer sweep).
"""
from __future__ import annotations

import logging
import os
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .engine import DEFAULT_BATCH_SIZE, POOLINGS, Engine, resolve_precision, resolve_threads
from .errors import DataError, ImageError, MemoryBudgetError, OptionError, TplibError
from .fusion import fold_batchnorm
from .images import load_image, load_rgb
from .models import Backbone
from .preprocess import Preprocess
from .profile import default_engine, default_progress

logger = logging.getLogger("tplib")


class _StopForward(Exception):
    """Raised by the last hook: nothing after the deepest requested layer is needed."""


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ------------------------------------------------------------------ pooling
def pool_output(out: torch.Tensor, pool: str) -> torch.Tensor:
    """One layer's output -> (N, D) float32 rows.

    (N, C, H, W) conv maps: "none" -> C*H*W, "avg"/"max" -> C, "pyramid" -> 5C
    (global mean, then the 2x2 grid of means). (N, D) outputs pass unchanged.
    Always returns a new tensor (never a view of ``out``, which an in-place ReLU
    may overwrite later in the same forward pass).
    """
    if out.dim() == 2 or pool == "none":
        return out.flatten(1).to(torch.float32, copy=True)
    if out.dim() != 4:
        raise TplibError(f"cannot pool an output of shape {tuple(out.shape)}")
    if pool == "avg":
        return out.mean(dim=(2, 3), dtype=torch.float32)
    if pool == "max":
        return out.amax(dim=(2, 3)).to(torch.float32)
    if pool == "pyramid":
        whole = out.mean(dim=(2, 3), dtype=torch.float32)
        grid = F.adaptive_avg_pool2d(out.float() if out.dtype != torch.float32 else out, 2)
        return torch.cat([whole, grid.flatten(1)], dim=1)
    raise OptionError(f"pool must be one of {', '.join(POOLINGS)}, not {pool!r}")


class LayerTap:
    """Forward hooks that capture several layers of a model in one pass.

    ``with LayerTap(model, {"relu7": backbone.node("relu7")}, pool="none") as tap:`` then
    ``model(x)``; ``tap.outputs["relu7"]`` is an (N, D) float32 tensor. With
    ``stop_after`` set, the pass ends right after that module (caught by :meth:`run`).
    ``pool=None`` keeps raw outputs (cloned), e.g. (N, C, H, W) activation maps.
    """

    def __init__(self, model: torch.nn.Module, nodes: dict[str, str],
                 pool: str | None = "none", stop_after: str | None = None):
        self.model = model
        self.nodes = nodes
        self.pool = pool
        self.stop_after = stop_after
        self.outputs: dict[str, torch.Tensor] = {}
        self.order: list[str] = []
        self._handles = []

    def __enter__(self) -> "LayerTap":
        modules = dict(self.model.named_modules())
        for layer, node in self.nodes.items():
            self._handles.append(modules[node].register_forward_hook(self._hook(layer, node)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, layer: str, node: str):
        def hook(module, inputs, output):
            if layer in self.outputs:
                raise TplibError(f"module {node} ran twice in one forward pass; "
                                 f"cannot tell which output is {layer}")
            if self.pool is None:
                self.outputs[layer] = output.detach().clone()
            else:
                self.outputs[layer] = pool_output(output.detach(), self.pool)
            self.order.append(layer)
            if node == self.stop_after:
                raise _StopForward
        return hook

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward ``x`` and return {layer: output} (the pass may stop early)."""
        self.outputs, self.order = {}, []
        try:
            self.model(x)
        except _StopForward:
            pass
        missing = set(self.nodes) - set(self.outputs)
        if missing:
            raise TplibError(f"layers {sorted(missing)} were not reached by the forward pass")
        return self.outputs


@torch.no_grad()
def activations(backbone: Backbone, image, layers: str | Sequence[str]) -> dict[str, torch.Tensor]:
    """Raw outputs of ``layers`` for one image (PIL image or file path).

    Returns {layer: tensor (C, H, W) or (D,)} in float32, e.g. the 64 maps of
    ``relu1_1`` (64, 224, 224) for notebook 03 (activation maps).
    """
    layers = layer_list(backbone, layers)
    if not hasattr(image, "size"):
        image = load_rgb(image)
    x = backbone.preprocess(image).unsqueeze(0)
    nodes = {layer: backbone.node(layer) for layer in layers}
    backbone.model.eval()
    with LayerTap(backbone.model, nodes, pool=None) as tap:
        out = tap.run(x)
    return {layer: out[layer][0].float() for layer in layers}


# ------------------------------------------------------------------ decoding
def _decode_batch(paths: Sequence[Path], preprocess: Preprocess):
    """Paths -> (uint8 tensor (n_ok, 3, S, S), ok mask (n,), [(path, reason)])."""
    tensors, ok, errors = [], np.zeros(len(paths), dtype=bool), []
    for i, path in enumerate(paths):
        try:
            tensors.append(preprocess.to_uint8(load_image(path)))
            ok[i] = True
        except ImageError as exc:
            errors.append((str(path), str(exc).split(": ", 1)[-1]))
    size = preprocess.size
    batch = torch.stack(tensors) if tensors else torch.empty((0, 3, size, size), dtype=torch.uint8)
    return batch, ok, errors


def iter_batches(paths: Sequence[Path], preprocess: Preprocess, batch_size: int,
                 start: int = 0, threads: int = 2, prefetch: int = 2) -> Iterator:
    """Yield (start_row, uint8 batch, ok mask, errors), decoding ahead in threads.

    Threads rather than DataLoader worker processes: Pillow releases the GIL while
    decoding and resizing, threads start instantly in notebooks and Colab, and at
    most ``prefetch`` batches wait in memory.
    """
    starts = list(range(start, len(paths), batch_size))
    if threads <= 0:  # decode in the caller's thread, between forward passes
        for s in starts:
            yield (s, *_decode_batch(paths[s:s + batch_size], preprocess))
        return
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="tplib-decode") as pool:
        pending: deque = deque()
        for s in starts[:prefetch]:
            pending.append((s, pool.submit(_decode_batch, paths[s:s + batch_size], preprocess)))
        next_index = len(pending)
        while pending:
            s, future = pending.popleft()
            if next_index < len(starts):
                nxt = starts[next_index]
                pending.append((nxt, pool.submit(_decode_batch, paths[nxt:nxt + batch_size], preprocess)))
                next_index += 1
            batch, ok, errors = future.result()
            yield s, batch, ok, errors


# ------------------------------------------------------------------ extraction
@dataclass
class Features:
    """Feature matrices of one set of images.

    Attributes:
        arrays: layer -> (n, D) array (float32 or float16), one row per usable image.
        labels: (n,) int64 class indices (-1 when unknown).
        paths: (n,) the image files, in row order.
        skipped: [(path, reason)] for files that could not be decoded.
        classes: class names, index = label.
        from_cache: True if read from the feature cache.
        cache_path: the cache entry folder, or None.
        seconds: time spent (extraction, or loading from the cache).
        settings: precision, device, pooling, batch size actually used.
        n_computed: images run through the network by this call (0 on a cache hit;
            fewer than all when an interrupted extraction was resumed).
    """

    arrays: dict[str, np.ndarray]
    labels: np.ndarray
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    from_cache: bool = False
    cache_path: Path | None = None
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    n_computed: int = 0

    def __getitem__(self, layer: str) -> np.ndarray:
        try:
            return self.arrays[layer]
        except KeyError:
            raise TplibError(f"no features for layer {layer!r}: these hold "
                             f"{', '.join(self.arrays)}") from None

    # a mapping of layer -> array: `"relu7" in feats`, `list(feats)`, `feats.items()`
    def __contains__(self, layer: object) -> bool:
        return layer in self.arrays

    def __iter__(self):
        return iter(self.arrays)

    def __len__(self) -> int:
        """The number of layers (``len(feats.labels)`` is the number of images)."""
        return len(self.arrays)

    def keys(self):
        return self.arrays.keys()

    def items(self):
        return self.arrays.items()

    @property
    def images_per_second(self) -> float:
        """Images run through the network per second (a resumed run counts only its own)."""
        if self.from_cache:
            return float("nan")
        return self.n_computed / self.seconds if self.seconds > 0 else float("inf")


# model -> {(nodes, pool, input size): (dims, order)}: the dummy pass costs about a
# second for VGG16 on a CPU, and notebooks call extract_features many times.
_PROBES: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def probe_layers(backbone: Backbone, nodes: dict[str, str], pool: str) -> tuple[dict[str, int], list[str]]:
    """Feature size per layer and the order in which the layers fire, from one dummy pass."""
    size = backbone.preprocess.size
    memo = _PROBES.setdefault(backbone.model, {})
    # the modules' identities are in the key: replacing a layer (a new head) re-probes
    modules = dict(backbone.model.named_modules())
    key = (tuple(nodes.items()), tuple(id(modules[n]) for n in nodes.values()), pool, size)
    if key not in memo:
        was_training = backbone.model.training
        try:
            with torch.no_grad(), LayerTap(backbone.model.eval(), nodes, pool=pool) as tap:
                param = next(backbone.model.parameters(), None)
                device = param.device if param is not None else None
                out = tap.run(torch.zeros(1, 3, size, size, device=device))
        finally:
            backbone.model.train(was_training)
        memo[key] = ({layer: int(out[layer].shape[1]) for layer in nodes}, list(tap.order))
    dims, order = memo[key]
    return dict(dims), list(order)


def check_memory(dims: dict[str, int], n_images: int, itemsize: int, max_bytes: int | None,
                 pool: str) -> int:
    """Raise :class:`MemoryBudgetError` before allocating features that cannot fit."""
    import psutil

    total = n_images * sum(dims.values()) * itemsize
    budget = max_bytes if max_bytes is not None else int(psutil.virtual_memory().available * 0.5)
    if total > budget:
        worst = max(dims, key=dims.get)
        hint = ("use pool='avg' (or --pool avg): one value per channel"
                if pool == "none" else "extract fewer layers at a time, or use dtype float16")
        raise MemoryBudgetError(
            f"features would need {total / 1e9:.1f} GB ({n_images:,} images x "
            f"{sum(dims.values()):,} values x {itemsize} bytes; {worst} alone has "
            f"{dims[worst]:,} values per image), more than the {budget / 1e9:.1f} GB "
            f"budget (half the available memory). {hint}."
        )
    return total


def _split_parts(images) -> tuple[list[Path], np.ndarray, list[str]]:
    """A data split (``.paths``, ``.labels``, ``.classes``), a list of paths, or one path."""
    if hasattr(images, "paths"):
        labels = np.asarray(images.labels, dtype=np.int64)
        return [Path(p) for p in images.paths], labels, list(images.classes)
    if isinstance(images, (str, os.PathLike)):
        # A bare string would otherwise be iterated character by character.
        path = Path(images)
        if path.is_dir():
            raise DataError(f"{path} is a folder: pass a data split (tplib.load_dataset(...).train) "
                            "or a list of image files")
        images = [path]
    try:
        paths = [Path(p) for p in images]
    except TypeError:
        raise DataError(f"images must be a data split, a list of image files or one file, not "
                        f"{type(images).__name__}") from None
    return paths, np.full(len(paths), -1, dtype=np.int64), []


def layer_list(backbone: Backbone, layers) -> list[str]:
    """``layers`` as a list of names: None -> [the default layer], "relu7" -> ["relu7"].

    A number, an empty list or a list holding something other than names is an
    :class:`OptionError` (the names themselves are checked by ``backbone.node``).
    """
    if layers is None:
        return [backbone.default_layer]
    if isinstance(layers, str):
        return [layers]
    example = f"e.g. {backbone.default_layer!r} or [{backbone.default_layer!r}]"
    try:
        layers = list(layers)
    except TypeError:  # a number, a module...
        raise OptionError(f"layers must be a layer name or a list of names ({example}), not "
                          f"{layers!r}") from None
    if not layers:
        raise OptionError(f"layers is empty: give one or more layer names, {example} "
                          "(or leave it out for the default layer)")
    for x in layers:
        if not isinstance(x, str):
            raise OptionError(f"layers must be layer names ({example}), not {x!r}")
    return layers


#: cache problems already reported in this process (the same one for train and test)
_WARNED: set[str] = set()


def _check_some_exist(paths: list[Path]) -> None:
    """Refuse a call where no image file exists (a typo, or relative paths after a
    change of folder), before any work: it would return 0 rows. Some missing files
    are skipped and listed, like undecodable ones; an empty split (no files asked
    for, e.g. no validation photos) gives 0 rows, as asked."""
    if paths and not any(p.exists() for p in paths):
        raise DataError(f"none of the {len(paths)} image files exists (first: {paths[0]}; working "
                        f"folder {Path.cwd()}): check the paths, or load the data again")


@torch.no_grad()
def extract_features(
    backbone: Backbone,
    images,
    layers: str | Sequence[str] | None = None,
    *,
    pool: str = "none",
    cache: bool = True,
    progress: bool | None = None,
    desc: str | None = None,
    engine: Engine | None = None,
) -> Features:
    """Extract features of ``layers`` for every image, in one pass per batch.

    Args:
        backbone: from :func:`tplib.load_backbone` or :func:`tplib.setup`.
        images: a data split (``tplib.load_dataset(...).train``), a list of image
            files, or one image file.
        layers: friendly or module names; default ``backbone.default_layer``.
        pool: "none" (the whole output), or "avg", "max", "pyramid" for (N, C, H, W)
            convolutional outputs (C, C and 5C values per image).
        cache: read/write the on-disk feature cache (``TPLIB_CACHE``). The key knows
            the weights by their source and by their numbers
            (:func:`tplib.cache.weights_digest`): a model trained or edited in place
            gets new features, never the rows of its old weights.
        progress: show a progress bar; default the active profile's choice.
        engine: batch size, device, precision, decoding threads, BatchNorm folding,
            storage dtype, memory budget (:class:`tplib.engine.Engine`); default the
            active profile's.

    Returns:
        :class:`Features`; ``features[layer]`` is an (n_usable, D) float32 array (float16
        with ``Engine(dtype="float16")``), one row per image that could be decoded.
    """
    from . import cache as feature_cache

    engine = default_engine(engine)
    progress = default_progress(progress)
    layers = layer_list(backbone, layers)
    if pool not in POOLINGS:
        raise OptionError(f"pool must be one of {', '.join(POOLINGS)}, not {pool!r}")
    nodes = {layer: backbone.node(layer) for layer in layers}
    same = {}
    for layer, node in nodes.items():  # "pooled" and "global_pool" are one layer: ask once
        if node in same:
            raise OptionError(f"layers {same[node]!r} and {layer!r} are the same module ({node}) "
                              f"of {backbone.name}: give it once")
        same[node] = layer
    batch_size = engine.batch_size or DEFAULT_BATCH_SIZE
    dev = engine.check_device()
    prec = resolve_precision(engine.precision, dev)
    threads = resolve_threads(engine.threads, dev)
    use_cl = engine.channels_last and dev.type in ("cpu", "cuda")
    fold_bn, dtype = engine.fold_bn, engine.dtype
    paths, labels, classes = _split_parts(images)
    _check_some_exist(paths)
    settings = dict(precision=prec, device=dev.type, pool=pool, batch_size=batch_size,
                    channels_last=use_cl, fold_bn=fold_bn, dtype=dtype, decode_threads=threads)

    np_dtype = np.dtype(dtype)
    key = None
    if cache:
        t0 = time.perf_counter()
        key = feature_cache.make_key(backbone, nodes, pool, prec, dev.type, use_cl, dtype, paths,
                                     fold_bn=fold_bn)
        hit = feature_cache.load(key)
        if hit is not None:
            arrays, valid, skipped, entry = hit
            return Features(
                arrays={layer: arrays[layer] for layer in layers}, labels=labels[valid],
                paths=[str(p) for p, v in zip(paths, valid) if v], skipped=skipped,
                classes=classes, from_cache=True, cache_path=entry,
                seconds=time.perf_counter() - t0, settings=settings)

    t0 = time.perf_counter()
    dims, order = probe_layers(backbone, nodes, pool)
    check_memory(dims, len(paths), np_dtype.itemsize, engine.max_bytes, pool)
    if key is not None:
        writer, unavailable = feature_cache.open_writer_or_memory(key, dims, len(paths), np_dtype)
        if unavailable:  # a read-only or full cache: the features are still computed
            if unavailable not in _WARNED:  # said once, not once per split
                _WARNED.add(unavailable)
                logger.warning("%s; computing without the cache", unavailable)
            settings["cache"] = f"unavailable: {unavailable}"
    else:
        writer = feature_cache.MemoryWriter(dims, len(paths), np_dtype)
    info = feature_cache.entry_info(backbone.name, nodes, pool, paths, precision=prec, dtype=dtype)
    with writer:
        resumed = writer.done
        _run_extraction(backbone, paths, nodes, order, pool, batch_size, prec, dev, use_cl,
                        fold_bn, threads, progress, desc, writer)
        arrays, valid, skipped = writer.finish(info=info)
    return Features(
        arrays={layer: arrays[layer] for layer in layers}, labels=labels[valid],
        paths=[str(p) for p, v in zip(paths, valid) if v], skipped=skipped, classes=classes,
        from_cache=False, cache_path=writer.entry, seconds=time.perf_counter() - t0,
        settings=settings, n_computed=len(paths) - resumed)


@contextmanager
def _prepared_model(model: torch.nn.Module, dev: torch.device, channels_last: bool,
                    fold_bn: bool = False, input_size: int = 224, keep: Sequence[str] = ()):
    """Model on ``dev`` in eval mode (channels_last if asked), ready for inference.

    With ``fold_bn``, a copy with every BatchNorm folded into its convolution (see
    :mod:`tplib.fusion`; convs named in ``keep`` are tapped and keep theirs) when the
    model has any; otherwise the model itself, moved and converted in place and
    restored afterwards (no copy of VGG16's 528 MB).
    """
    if fold_bn:
        folded, n_folded = fold_batchnorm(model, input_size, keep)
        if n_folded:
            folded.to(dev)
            if channels_last:
                folded.to(memory_format=torch.channels_last)
            yield folded
            return
    was_training = model.training
    original = next(model.parameters()).device
    model.eval().to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        model.to(original).train(was_training)


def _run_extraction(backbone, paths, nodes, order, pool, batch_size, prec, dev, use_cl,
                    fold_bn, threads, progress, desc, writer) -> None:
    from tqdm.auto import tqdm

    stop_after = nodes[order[-1]] if order else None
    start = writer.done
    bar = tqdm(total=len(paths), initial=start, disable=not progress, unit="img",
               desc=desc or f"{backbone.name} {','.join(nodes)}", leave=False)
    with _prepared_model(backbone.model, dev, use_cl, fold_bn, backbone.preprocess.size,
                         keep=list(nodes.values())) as model, \
            LayerTap(model, nodes, pool=pool, stop_after=stop_after) as tap:
        for s, batch, ok, errors in iter_batches(paths, backbone.preprocess, batch_size,
                                                 start=start, threads=threads):
            outputs = {}
            if len(batch):
                # uint8 crosses to the device (4x less than float32), normalised there
                x = backbone.preprocess.normalize(batch.to(dev, non_blocking=True))
                if use_cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(prec, dev):
                    outputs = tap.run(x)
            writer.write(s, {k: v.cpu().numpy() for k, v in outputs.items()}, ok, errors)
            bar.update(len(ok))
    bar.close()
