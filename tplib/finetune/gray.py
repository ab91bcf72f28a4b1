"""Grayscale input: photos read as gray (:func:`grayscale_input`), a learnable 1 -> 3
convolution in front of the base (:class:`GrayToRGB`, :func:`add_gray_front`), and the
first convolution's weights summed over RGB (:func:`gray_conv`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InputError, OptionError
from ..models import Backbone

if TYPE_CHECKING:  # annotations only: FineTuneModel's room sits above this one
    from .models import FineTuneModel


class GrayToRGB(nn.Module):
    """A learnable 1 -> 3 channel 1x1 convolution in front of a network that wants RGB.

    (N, 3, S, S) normalised images -> (N, 3, S, S) normalised images, for a base
    trained on colour photos that now gets grayscale ones. Inside: the gray level
    g in [0, 1] (the normalisation ``mean``/``std`` undone, then the luma
    0.299 R + 0.587 G + 0.114 B, which is g itself for a grayscale photo decoded as
    three equal channels, as tplib decodes them), then
    ``conv = nn.Conv2d(1, 3, 1)`` initialised to copying (weight 1 on each output
    channel, bias 0), then the normalisation again. So at initialisation it is exactly
    the usual fix, copying the channel (up to float rounding); training can then find
    another gain and offset per colour channel, if the base prefers them.
    """

    LUMA = (0.299, 0.587, 0.114)

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        # skip_init: no random draw (it would move the caller's global RNG), set below
        self.conv = nn.utils.skip_init(nn.Conv2d, 1, 3, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("luma", torch.tensor(self.LUMA, dtype=torch.float32).view(1, 3, 1, 1))

    def gray(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, 1, S, S) gray levels in [0, 1]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputError(f"GrayToRGB takes (N, 3, S, S) images, got {tuple(x.shape)}")
        return ((x * self.std + self.mean) * self.luma).sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv(self.gray(x)) - self.mean) / self.std


def add_gray_front(model: FineTuneModel) -> FineTuneModel:
    """Put a learnable :class:`GrayToRGB` in front of ``model``'s base; returns ``model``.

    The front uses the base's own normalisation (``model.preprocess``) and trains with
    the head (:func:`train_model` gives it the head's learning rate). Its 6 parameters
    get their gradients through the base, frozen or not: training runs the backward
    pass through the whole base, so it is end to end (slower than the frozen base's
    forward alone), and it cannot use cached features.
    """
    if model.preprocess is None:
        raise OptionError("the model has no preprocess: its normalisation is needed")
    model.front = GrayToRGB(model.preprocess.mean, model.preprocess.std)
    model.front.train(model.training)
    return model


def grayscale_input(backbone: Backbone) -> Backbone:
    """The same network (the same ``model`` object, not a copy) whose preprocessing
    converts every photo to grayscale first (:meth:`Preprocess.with_grayscale`).

    Its features are cached apart from the colour ones (the preprocessing is part of
    the cache key), and :func:`attach_head` on it gives a model whose ``preprocess``
    decodes grayscale photos for :func:`train_model` and :func:`evaluate_model`.
    """
    return replace(backbone, preprocess=backbone.preprocess.with_grayscale(),
                   notes=list(backbone.notes))


def gray_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv`` for one input channel: its weights summed over the input channels.

    On a one-channel image g it computes what ``conv`` computes on g copied to every
    input channel: sum_c (w_c * g) = (sum_c w_c) * g, so for the first layer of a
    network trained on RGB, summing its weights over R, G, B is the same as feeding it
    the gray image three times. Weight (out, in, k, k) -> (out, 1, k, k); bias, stride,
    padding, dilation and groups (must be 1) are kept.
    """
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise OptionError("gray_conv takes an nn.Conv2d with groups=1")
    new = nn.utils.skip_init(  # no random init to overwrite: the global RNG stays where it was
        nn.Conv2d, 1, conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None,
        padding_mode=conv.padding_mode, device=conv.weight.device)
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(conv.weight.dtype)
