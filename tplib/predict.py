"""ImageNet top-k predictions and layer tables (notebooks 01 and 02, ``tplib predict``)."""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from PIL import Image

from .errors import ImageError, InputError, OptionError
from .images import load_rgb
from .models import Backbone


@torch.no_grad()
def predict_topk(backbone: Backbone, images: Sequence, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` (class name, probability) for each image, best first.

    ``images``: a list of PIL images or image file paths (one image or path alone is
    taken as a list of one; an empty list gives an empty list). Uses the weights' own evaluation
    transform (resize + centre crop), eval mode (dropout off, batch-norm statistics
    frozen: notebook 02, Q3) and a softmax over the 1000 logits. Returns one list of
    ``k`` pairs per image; probabilities are Python floats in [0, 1].

    Raises:
        OptionError: ``k`` is not between 1 and the number of classes.
        InputError: an array, a tensor or anything else that is not an image or a path.
        ImageError: a path that cannot be read as an image.
    """
    n_classes = len(backbone.categories)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_classes:
        raise OptionError(f"k (top) must be a whole number from 1 to {n_classes}, not {k!r}")
    images = [load_rgb(img) if isinstance(img, (str, os.PathLike)) else img
              for img in _image_list(images)]
    if not images:
        return []
    prep = backbone.preprocess.with_policy("crop")
    x = torch.stack([prep(img) for img in images])
    probs = backbone.model.eval()(x).softmax(dim=1)
    top = probs.topk(k, dim=1)
    return [[(backbone.categories[i], float(p)) for p, i in zip(ps, idx)]
            for ps, idx in zip(top.values.tolist(), top.indices.tolist())]


def _image_list(images) -> list:
    """``images`` as a list of PIL images and paths, or a one-line :class:`InputError`.

    Arrays and tensors are refused rather than guessed at: their layout (HWC or CHW),
    range (0-255 or 0-1) and normalisation cannot be told apart.
    """
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if hasattr(images, "shape") or not isinstance(images, Iterable):
        raise InputError(f"images must be a list of PIL images or image file paths, not "
                         f"{_kind(images)}: for an (H, W, 3) uint8 array use "
                         "[PIL.Image.fromarray(array)]")
    images = list(images)
    for i, img in enumerate(images):
        if not isinstance(img, (str, os.PathLike, Image.Image)):
            raise InputError(f"images[{i}] is {_kind(img)}, not a PIL image or an image file path: "
                             "for an (H, W, 3) uint8 array use PIL.Image.fromarray(array)")
    return images


def _kind(value) -> str:
    shape = getattr(value, "shape", None)
    name = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
    return f"a {name} of shape {tuple(shape)}" if shape is not None else f"a {type(value).__name__}"


def predict_files(backbone: Backbone, files: Sequence, k: int = 5):
    """Yield (path, top-k list) per file, or (path, reason) for files that cannot be decoded."""
    for path in files:
        if "://" in str(path) or Path(path).is_dir():
            yield str(path), ("a URL: download the image and give the file" if "://" in str(path)
                              else "a folder, not an image file")
            continue
        try:
            img = load_rgb(path)
        except ImageError as exc:
            yield str(path), str(exc).split(": ", 1)[-1]
            continue
        yield str(path), predict_topk(backbone, [img], k)[0]


class LayerRow(NamedTuple):
    """One named layer of a network, for one input image.

    layer: friendly name; module: torchvision/timm module name; kind: module class
    ("Conv2d", "ReLU", "MaxPool2d", "Linear", ...); shape: output shape for one image,
    (C, H, W) or (D,); values: number of output values; params: parameters of the
    module itself (0 for ReLU and pooling).
    """

    layer: str
    module: str
    kind: str
    shape: tuple[int, ...]
    values: int
    params: int


def _share_text(params: int, total: int) -> str:
    """"12.3%"; a non-zero share that would round to 0.0% is "<0.1%"; no parameters: ""."""
    if params == 0 or total <= 0:
        return ""
    share = 100.0 * params / total
    return "<0.1%" if share < 0.05 else f"{share:.1f}%"


class LayerTable(list):
    """The rows of :func:`layer_table` (a list of :class:`LayerRow`) and the model's total.

    Shows as an HTML table in a notebook and as aligned text elsewhere (``repr``), with
    one row per layer: layer, module, kind, output shape, parameters and their share of
    ``total`` (all parameters of the model, including modules without a friendly name),
    then a total row. No pandas needed. Taught in notebook 01.
    """

    def __init__(self, rows=(), total: int | None = None):
        super().__init__(rows)
        self.total = int(total if total is not None else sum(r.params for r in self))

    def share(self, layer: str) -> float:
        """Fraction of all parameters held by ``layer`` (0.0 to 1.0)."""
        row = next((r for r in self if r.layer == layer), None)
        if row is None:
            raise KeyError(f"no layer {layer!r} in this table")
        return row.params / self.total if self.total else 0.0

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        head = ["layer", "module", "kind", "output shape", "parameters", "share"]
        body = [[r.layer, r.module, r.kind, " x ".join(str(d) for d in r.shape), f"{r.params:,}",
                 _share_text(r.params, self.total)] for r in self]
        body.append(["total", "", "", "", f"{self.total:,}", "100%" if self.total else ""])
        return head, body

    def __repr__(self) -> str:
        head, body = self._cells()
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        right = {3, 4, 5}  # numbers are right-aligned

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(head), rule, *(line(r) for r in body[:-1]), rule, line(body[-1])])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        import html

        head, body = self._cells()
        style = "text-align:right"
        th = "".join(f'<th style="{style if i >= 3 else "text-align:left"}">{html.escape(h)}</th>'
                     for i, h in enumerate(head))
        rows = []
        for k, cells in enumerate(body):
            tds = "".join(f'<td style="{style if i >= 3 else "text-align:left"}">{html.escape(c)}</td>'
                          for i, c in enumerate(cells))
            bold = ' style="font-weight:bold"' if k == len(body) - 1 else ""
            rows.append(f"<tr{bold}>{tds}</tr>")
        return (f'<table class="tplib-layer-table"><thead><tr>{th}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>')


@torch.no_grad()
def layer_table(backbone: Backbone) -> LayerTable:
    """One :class:`LayerRow` per friendly layer, in forward order, from one dummy pass.

    Returns a :class:`LayerTable` (a list of rows that shows as a table, with the
    model's total parameter count). Weights do not matter for shapes and counts:
    ``load_backbone("vgg16", weights="random")`` gives VGG16's exact table (notebook 01).
    """
    from .features import LayerTap

    size = backbone.preprocess.size
    model = backbone.model
    was_training = model.training
    modules = dict(model.named_modules())
    try:
        with LayerTap(model.eval(), dict(backbone.layers), pool=None) as tap:
            out = tap.run(torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
    rows = []
    for name, node in backbone.layers.items():
        shape = tuple(out[name].shape[1:])
        module = modules[node]
        rows.append(LayerRow(name, node, type(module).__name__, shape, math.prod(shape),
                             count_parameters(module)))
    return LayerTable(rows, total=count_parameters(model))


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (VGG16: 138,357,544; notebook 01); only trainable ones on request."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
