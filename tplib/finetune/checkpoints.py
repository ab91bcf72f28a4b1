"""Checkpoints: a model's state dict (and JSON-able meta) saved and loaded safely."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_checkpoint(model: nn.Module, path, **meta) -> Path:
    """Save ``model.state_dict()`` (plus JSON-able ``meta``) to ``path``, atomically.

    A state dict, not a pickled model: it loads with ``torch.load(weights_only=True)``
    into the same architecture, on any machine (:func:`load_checkpoint`).
    """
    from ..fsutil import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "meta": dict(meta)}
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def load_checkpoint(model: nn.Module, path) -> dict:
    """Load a :func:`save_checkpoint` file into ``model`` (same architecture); returns its meta."""
    from ..errors import WeightsError

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, EOFError) as exc:
        raise WeightsError(f"{path} is not a checkpoint of this model ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); save it again with "
                           "save_checkpoint") from exc
    return dict(state.get("meta", {}))
