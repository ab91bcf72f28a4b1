"""Base + head models: a pretrained network cut at a layer (:func:`cut_base`), a new
head on top (:class:`FineTuneModel`, :func:`attach_head`), frozen, partly frozen or not.
"""
from __future__ import annotations

import copy
import numbers

import torch
from torch import nn

from ..errors import OptionError, TplibError
from ..models import Backbone
from ..preprocess import Preprocess
from .heads import make_head
from .runtime import seeded
from .settings import check_n_classes


class _StopForward(Exception):
    """Raised by a forward hook to end a pass once the wanted module has run."""


def _run_to(model: nn.Module, node: str, x: torch.Tensor, *, before: bool) -> torch.Tensor:
    """Run ``model`` on ``x`` and stop at the module ``node``: its input (``before``) or
    its output, as they are (gradients flow); nothing after it runs."""
    captured = []

    def stop(value):
        captured.append(value)
        raise _StopForward

    target = model.get_submodule(node)
    handle = (target.register_forward_pre_hook(lambda module, inputs: stop(inputs[0])) if before
              else target.register_forward_hook(lambda module, inputs, output: stop(output)))
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise TplibError(f"module {node} was not reached by the forward pass")
    return captured[0]


def forward_until(model: nn.Module, node: str, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on ``x`` up to the module ``node``; its output flattened, (N, d).

    Gradients flow (unlike :class:`tplib.features.LayerTap`, which copies outputs for
    extraction). The pass stops right after ``node``: nothing later runs.
    """
    return torch.flatten(_run_to(model, node, x, before=False), 1)


def input_of(base: nn.Module, module: str, x: torch.Tensor) -> torch.Tensor:
    """What ``module`` of ``base`` receives when ``base`` runs on ``x``; the pass stops
    there. (N, 3, S, S) images -> that module's input, e.g. (N, 192, 7, 7)."""
    return _run_to(base, module, x, before=True)


def cut_base(backbone: Backbone, layer: str | None = None) -> tuple[nn.Module, str, int, list]:
    """A copy of ``backbone.model`` that ends at ``layer``: (base, node, output dim, blocks).

    ``layer`` defaults to the network's feature layer (VGG16: relu7, 4096-d; ResNet and
    EfficientNet-Lite: the pooled features). Modules after it are replaced by
    ``nn.Identity`` (they never run, and their parameters must not count as frozen);
    ``blocks`` are the registry's fine-tuning blocks that still hold modules before the
    cut, in forward order. Module names stay the network's own (``features.0``).
    """
    node = backbone.node(layer or backbone.default_layer)
    base = copy.deepcopy(backbone.model).eval()
    leaves = {name: m for name, m in base.named_modules() if name and not list(m.children())}
    reached: list[str] = []
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=name: reached.append(name))
               for name, m in leaves.items()]
    size = backbone.preprocess.size
    try:
        with torch.no_grad():
            out = forward_until(base, node, torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    used = set(reached)
    for name in leaves:
        if name not in used:
            _replace_module(base, name, nn.Identity())

    def in_use(module_name: str) -> bool:
        return any(r == module_name or r.startswith(module_name + ".") for r in used) \
            or module_name == node
    blocks = [(name, list(mods)) for name, mods in backbone.spec.blocks if any(map(in_use, mods))]
    return base, node, int(out.shape[1]), blocks


def _replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class FineTuneModel(nn.Module):
    """A base network (frozen, partly frozen or not) followed by a new head.

    (N, 3, S, S) normalised images -> base -> (N, d) features -> head -> (N, K) logits.

    Args:
        base: module whose output is (N, d), or whose module ``cut`` gives it.
        head: module (N, d) -> (N, K), e.g. from :func:`make_head` or :func:`train_head`.
        cut: module name in ``base`` where the features are read (the forward pass
            stops there and flattens them); None: ``base(x)`` itself.
        blocks: [(name, [module names in base])] in forward order; needed for an
            integer ``freeze``. Default: the whole base is one block.
        freeze: "all" (only the head trains: the lab's feature extraction + new layer),
            "none" (gradients flow into the whole base), or an int k: the last k blocks
            of the base train too, the earlier ones stay frozen (fine-tuning).
        freeze_bn: keep every BatchNorm of the base in eval mode, even in trainable
            blocks (the usual advice: small batches give noisy batch statistics that
            would overwrite ImageNet's; their scale and shift still learn).
        preprocess: how images become input tensors (default for :func:`train_model`).
        front: an optional module run before the base on the input, e.g.
            :class:`GrayToRGB` (see :func:`add_gray_front`); it trains with the head.

    Frozen parameters have ``requires_grad=False`` and frozen blocks stay in eval mode
    whatever ``.train()`` says, so their BatchNorm running statistics never drift and
    their dropout stays off. With the whole base frozen (and no trainable ``front``),
    it runs under ``no_grad``; a trainable front gets its gradients through the frozen
    base (its weights do not change, but the backward pass runs through every layer).
    """

    def __init__(self, base: nn.Module, head: nn.Module, *, blocks=None, freeze="all",
                 freeze_bn: bool = True, preprocess: Preprocess | None = None,
                 cut: str | None = None, front: nn.Module | None = None):
        super().__init__()
        self.front = front
        self.base = base
        self.head = head
        self.cut = cut
        self.blocks = [(name, list(mods)) for name, mods in (blocks or [("base", [""])])]
        self.freeze_bn = freeze_bn
        self.preprocess = preprocess
        if freeze == "all":
            k = 0
        elif freeze == "none":
            k = len(self.blocks)
        elif (isinstance(freeze, numbers.Integral) and not isinstance(freeze, bool)
              and 0 <= freeze <= len(self.blocks)):
            k = freeze
        else:
            raise OptionError(f"freeze must be 'all', 'none' or an int in [0, {len(self.blocks)}] "
                             f"(number of last base blocks to train), not {freeze!r}")
        self.freeze = freeze
        self.trainable_blocks = [name for name, _ in self.blocks[len(self.blocks) - k:]]
        modules = dict(base.named_modules())
        for p in base.parameters():  # parameters outside every block train only with "none"
            p.requires_grad_(freeze == "none")
        self._frozen_modules: list[str] = []
        for name, mods in self.blocks:
            trainable = name in self.trainable_blocks
            for m in mods:
                if m not in modules:
                    raise OptionError(f"block {name!r}: base has no module {m!r}")
                modules[m].requires_grad_(trainable)
                if not trainable:
                    self._frozen_modules.append(m)
        self.base_frozen = not any(p.requires_grad for p in base.parameters())
        self.train(False)

    def train(self, mode: bool = True) -> "FineTuneModel":
        super().train(mode)
        if mode:
            modules = dict(self.base.named_modules())
            if self.base_frozen:
                self.base.eval()
            for m in self._frozen_modules:
                modules[m].eval()
            if self.freeze_bn:
                for m in self.base.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, d) base features."""
        return forward_until(self.base, self.cut, x) if self.cut else self.base(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.front is not None:
            x = self.front(x)
        if self.base_frozen and not (torch.is_grad_enabled() and x.requires_grad):
            with torch.no_grad():  # no graph through a base nobody trains: less memory
                features = self.features(x)
        else:
            features = self.features(x)
        return self.head(features)

    def parameter_counts(self) -> dict[str, int]:
        """{"base_frozen", "base_trainable", "head"} (and "front" when there is one):
        numbers of parameters."""
        frozen = sum(p.numel() for p in self.base.parameters() if not p.requires_grad)
        trainable = sum(p.numel() for p in self.base.parameters() if p.requires_grad)
        counts = {"base_frozen": frozen, "base_trainable": trainable,
                  "head": sum(p.numel() for p in self.head.parameters())}
        if self.front is not None:
            counts["front"] = sum(p.numel() for p in self.front.parameters())
        return counts

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimizer should get: those with ``requires_grad``."""
        return [p for p in self.parameters() if p.requires_grad]

    def describe(self) -> str:
        """One line: what trains and what does not."""
        c = self.parameter_counts()
        which = ("whole base frozen" if self.base_frozen
                 else f"base blocks trained: {', '.join(self.trainable_blocks)}")
        front = f", front {c['front']:,}" if "front" in c else ""
        return (f"{which}; base {c['base_frozen']:,} frozen + {c['base_trainable']:,} "
                f"trainable parameters, head {c['head']:,}{front}")

    def block_table(self) -> list[tuple[str, int, str]]:
        """Rows (part, parameters, "frozen" | "trainable"), in forward order.

        The base's blocks (the registry's names: VGG16 block1..block5, fc6, fc7;
        EfficientNet stem, block1..block7, head), then "new head" (and "front" first
        when there is one). Parameters outside every block (none in the registry's
        networks) are not listed.
        """
        modules = dict(self.base.named_modules())
        rows = []
        if self.front is not None:
            rows.append(("front", sum(p.numel() for p in self.front.parameters()), "trainable"))
        for name, mods in self.blocks:
            params = [p for m in mods for p in modules[m].parameters()]
            state = "trainable" if params and all(p.requires_grad for p in params) else "frozen"
            rows.append((name, sum(p.numel() for p in params), state))
        rows.append(("new head", sum(p.numel() for p in self.head.parameters()), "trainable"))
        return rows


def attach_head(backbone: Backbone, n_classes: int, *, layer: str | None = None,
                hidden: int = 0, dropout: float = 0.0, loss: str = "ce",
                freeze: str | int = "all", freeze_bn: bool = True, head: nn.Module | None = None,
                seed: int = 0) -> FineTuneModel:
    """A copy of ``backbone``'s base with a new head, ready for :func:`train_model`.

    The base ends at ``layer`` (default the network's feature layer: VGG16 relu7,
    4096-d, i.e. the lab's "replace fc8 by a new layer"; EfficientNet-Lite and ResNet:
    the pooled features), so a head trained by :func:`train_head` on
    ``extract_features(backbone, ..., layer)`` plugs in unchanged (``head=result.head``).
    ``layer="pool5"`` on VGG16 gives the lecture's variant: the convolutional base only
    (25,088 values per image) and a small head (``hidden=256``). The base is a deep
    copy: training it never changes ``backbone.model`` (whose features the feature
    cache keys by its weights).

    ``freeze`` (see :class:`FineTuneModel`) counts the registry's blocks from the top:
    VGG16 block1..block5, fc6, fc7; EfficientNet stem, block1..block7, head; ResNet
    stem, layer1..layer4. ``loss="bce"`` (two classes) gives a one-logit head.
    """
    check_n_classes(n_classes, loss)
    base, node, dim, blocks = cut_base(backbone, layer)
    if head is None:
        with seeded(seed):
            head = make_head(dim, n_classes, hidden=hidden, dropout=dropout, loss=loss)
    return FineTuneModel(base, head, blocks=blocks, freeze=freeze, freeze_bn=freeze_bn,
                         preprocess=backbone.preprocess, cut=node)
