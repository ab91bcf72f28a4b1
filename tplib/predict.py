"""ImageNet top-k predictions and layer tables (notebooks 01 and 02, ``tplib predict``)."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from .errors import ImageError
from .images import load_rgb
from .models import Backbone


@torch.no_grad()
def predict_topk(backbone: Backbone, images: Sequence, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` (class name, probability) for each PIL image, best first.

    Uses the weights' own evaluation transform (resize + centre crop), eval mode
    (dropout off, batch-norm statistics frozen: notebook 02, Q3) and a softmax over
    the 1000 logits. Returns one list of ``k`` pairs per image; probabilities are
    Python floats in [0, 1].
    """
    prep = backbone.preprocess.with_policy("crop")
    x = torch.stack([prep(img) for img in images])
    probs = backbone.model.eval()(x).softmax(dim=1)
    top = probs.topk(k, dim=1)
    return [[(backbone.categories[i], float(p)) for p, i in zip(ps, idx)]
            for ps, idx in zip(top.values.tolist(), top.indices.tolist())]


def predict_files(backbone: Backbone, files: Sequence, k: int = 5):
    """Yield (path, top-k list) per file, or (path, reason) for files that cannot be decoded."""
    for path in files:
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


@torch.no_grad()
def layer_table(backbone: Backbone) -> list[LayerRow]:
    """One :class:`LayerRow` per friendly layer, in forward order, from one dummy pass."""
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
    return rows


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (VGG16: 138,357,544; notebook 01); only trainable ones on request."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
