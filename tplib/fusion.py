"""Folding each BatchNorm into the convolution in front of it, for inference.

In eval mode a ``BatchNorm2d`` is a fixed per-channel affine map ``y = a * x + b``
(``a = gamma / sqrt(running_var + eps)``, ``b = beta - a * running_mean``), so the
convolution that feeds it can absorb it: ``w' = a * w`` and ``bias' = a * bias + b``.
The folded network computes the same function (the outputs differ by float rounding,
about 1e-6 relative) and skips one full pass over every activation map per pair.
EfficientNet-Lite0 has 49 such pairs (the speed-up is measured by
``benchmarks/extraction.py``, see its README). VGG16 has no BatchNorm: nothing changes.

Folding is done on a copy, so the user's model (which they may fine-tune, with
BatchNorm statistics that still move) is never touched. Pairs are found by watching
one forward pass (a BatchNorm whose input *is* a convolution's output), and the copy
is checked against the original on a probe input; anything that does not match is
not used. Used by :func:`tplib.extract_features` (notebooks 04 and 05).
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Relative tolerance of the check: float32 rounding of the folded weights moves the
# outputs by about 1e-6; a wrongly folded pair moves them by orders of magnitude more.
CHECK_RTOL = 1e-4


class _AfterFold(nn.Module):
    """What stays of timm's ``BatchNormAct2d`` once its affine map lives in the conv.

    Keeps the ``drop`` and ``act`` names, so ``bn1.act`` is still a module one can tap.
    """

    def __init__(self, drop: nn.Module, act: nn.Module):
        super().__init__()
        self.drop, self.act = drop, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def _replacement(bn: nn.Module) -> nn.Module | None:
    """What stays of a BatchNorm once its affine map lives in the convolution, or None."""
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or bn.running_var is None:
        return None  # without running statistics it normalises by the batch: not affine
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    # timm's BatchNormAct2d: batch norm, then dropout (identity in eval), then activation
    if isinstance(getattr(bn, "act", None), nn.Module) and isinstance(getattr(bn, "drop", None), nn.Module):
        return _AfterFold(bn.drop, bn.act)
    return None  # an unknown subclass may do more than the affine map: leave it


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _conv_bn_pairs(model: nn.Module, x: torch.Tensor) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """[(conv name, bn name)] where the BatchNorm's input is the conv's output, and model(x)."""
    # tensors kept alive, so ids stay unique; the version counter tells whether anything
    # (an in-place ReLU between them, say) changed the tensor before the BatchNorm read it
    conv_outputs: dict[int, tuple[str, torch.Tensor, int]] = {}
    pairs: list[tuple[str, str]] = []
    handles = []

    def on_conv(name):
        def hook(module, inputs, output):
            conv_outputs[id(output)] = (name, output, output._version)
        return hook

    def on_bn(name):
        def hook(module, inputs, output):
            found = conv_outputs.get(id(inputs[0]))
            if found is not None and found[1] is inputs[0] and found[2] == inputs[0]._version:
                pairs.append((found[0], name))
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv(name)))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_hook(on_bn(name)))
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    # a conv or a BatchNorm that runs twice (shared modules) cannot be folded safely
    convs = [c for c, _ in pairs]
    bns = [b for _, b in pairs]
    pairs = [(c, b) for c, b in pairs if convs.count(c) == 1 and bns.count(b) == 1]
    return pairs, out


@torch.no_grad()
def fold_batchnorm(model: nn.Module, input_size: int = 224,
                   keep: Iterable[str] = ()) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model``, on the CPU, with every conv -> BatchNorm pair folded.

    Args:
        model: any network taking (N, 3, input_size, input_size) float32 input.
        input_size: side of the probe input used to find and check the pairs.
        keep: module names whose own output must stay as it is (layers someone taps):
            a conv named here keeps its BatchNorm.

    Returns:
        ``(folded copy, number of pairs folded)``, or ``(model, 0)`` -- the model
        itself, not copied -- when it has no BatchNorm to fold, when it cannot be copied
        or probed, or when the folded copy does not reproduce the original's output.
        The probe and the check run on the CPU in float32 (no TF32 on a GPU to blur
        the comparison); move the copy where it is needed.
    """
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model, 0
    keep = set(keep)
    generator = torch.Generator().manual_seed(0)  # never touches the global RNG
    x = torch.randn(1, 3, input_size, input_size, generator=generator)
    try:
        folded = copy.deepcopy(model).cpu().eval()
        pairs, expected = _conv_bn_pairs(folded, x)
        n_folded = 0
        for conv_name, bn_name in pairs:
            bn = folded.get_submodule(bn_name)
            rest = _replacement(bn)
            if rest is None or conv_name in keep:
                continue
            conv = fuse_conv_bn_eval(folded.get_submodule(conv_name), bn)
            _set_submodule(folded, conv_name, conv)
            _set_submodule(folded, bn_name, rest)
            n_folded += 1
        if n_folded == 0 or not isinstance(expected, torch.Tensor):
            return model, 0
        got = folded(x)
    except Exception:  # noqa: BLE001 -- fall back to the model as it is; its real pass reports
        return model, 0
    scale = expected.abs().max().clamp_min(1e-12)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape \
            or (got - expected).abs().max() > CHECK_RTOL * scale:
        return model, 0
    return folded, n_folded
