"""Where and how training runs: a private seeded RNG scope, the thread count, the device.

The lowest room of :mod:`tplib.finetune`: every other room may import it, it imports
none of them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """A private RNG scope: seeds torch inside, restores the caller's RNG state after.

    Layer initialisation and dropout draw from torch's global RNG; forking it makes a
    run reproducible without changing what the caller's next random call returns.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def training_device(device) -> torch.device:
    """``device`` as a torch.device; None: the run profile's (ci: the CPU; full: a CUDA GPU
    when there is one)."""
    from ..engine import resolve_device
    from ..profile import default_engine

    return default_engine(None).check_device() if device is None else resolve_device(device)
