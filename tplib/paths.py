"""Where tplib keeps its caches (no path depends on the working directory).

- ``TPLIB_CACHE`` (default ``$XDG_CACHE_HOME/tplib`` or ``~/.cache/tplib``): datasets
  (``data/``) and extracted features (``features/``).
- ``TORCH_HOME`` (default ``~/.cache/torch``): pretrained weights, in
  ``hub/checkpoints/`` exactly as torchvision expects them.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of tplib's own cache; override with ``TPLIB_CACHE``."""
    env = os.environ.get("TPLIB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tplib"


def data_cache_dir() -> Path:
    """Folder holding downloaded / unpacked / generated data sets."""
    return cache_dir() / "data"


def feature_cache_dir() -> Path:
    """Folder holding cached feature matrices (safe to delete at any time)."""
    return cache_dir() / "features"


def torch_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints``: where torchvision looks for weights files."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


SHARED_CACHE_ENV = "TPLIB_SHARED_CACHE"


def shared_feature_dirs() -> list[Path]:
    """Read-only class caches of features, consulted after the user's own.

    ``$TPLIB_SHARED_CACHE`` names one or more folders (separated by ``os.pathsep``),
    each laid out like ``$TPLIB_CACHE`` (an instructor warms one with
    ``tools/warm_class_cache.py``); their ``features/`` subfolders are returned. tplib
    never writes there: what is missing is computed into the user's own cache.
    """
    env = os.environ.get(SHARED_CACHE_ENV, "")
    return [Path(p).expanduser() / "features" for p in env.split(os.pathsep) if p.strip()]
