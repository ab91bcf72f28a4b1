"""ImageNet top-k predictions and layer tables (notebooks 01 and 02, ``tplib predict``)."""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import ImageError
from .images import load_rgb
from .models import Backbone


@torch.no_grad()
def predict_topk(backbone: Backbone, images: Sequence, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` (class name, probability) for each PIL image, best first.

    Uses the weights' own evaluation transform (resize + centre crop) and eval mode:
    dropout off, batch-norm statistics frozen (notebook 02, Q3).
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


@torch.no_grad()
def layer_table(backbone: Backbone) -> list[tuple[str, str, tuple[int, ...]]]:
    """(friendly name, module name, output shape for one image) for every named layer."""
    from .features import LayerTap

    size = backbone.preprocess.size
    with LayerTap(backbone.model.eval(), dict(backbone.layers), pool=None) as tap:
        out = tap.run(torch.zeros(1, 3, size, size))
    return [(name, node, tuple(out[name].shape[1:])) for name, node in backbone.layers.items()]


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (VGG16: 138,357,544; notebook 01)."""
    return sum(p.numel() for p in model.parameters())
