"""Checkpoints: a model's state dict (and JSON-able meta) saved and loaded safely.

A checkpoint is a dict ``{"state_dict": {name: tensor}, "meta": {...}}`` written by
:func:`save_checkpoint`. :func:`load_checkpoint` reads it with
``torch.load(weights_only=True)``: a file that holds anything else than tensors and
plain containers (a pickled model, or a pickle built to run code) is refused before
any of its code can run. Every failure is one :class:`~tplib.errors.TplibError` line
naming the file, never an error from inside torch or pickle.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import OptionError, WeightsError


def save_checkpoint(model: nn.Module, path, **meta) -> Path:
    """Save ``model.state_dict()`` (plus JSON-able ``meta``) to ``path``, atomically.

    A state dict, not a pickled model: it loads with ``torch.load(weights_only=True)``
    into the same architecture, on any machine (:func:`load_checkpoint`). ``path`` is
    a file name (its folder is created); a folder, or a folder that cannot be written,
    is an :class:`OptionError` naming ``path``.
    """
    from ..fsutil import atomic_write

    path = Path(path).expanduser()
    if path.is_dir():
        raise OptionError(f"{path} is a folder: give a file name for the checkpoint, "
                          f"e.g. {path / 'model.pt'}")
    state = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "meta": dict(meta)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(state, f))
    except OSError as exc:
        # The raw error names atomic_write's temporary file; say which file was asked for.
        reason = exc.strerror or type(exc).__name__
        raise OptionError(f"cannot write the checkpoint {path} ({reason}): choose a file in a "
                          "folder you can write to") from None
    return path


def load_checkpoint(model: nn.Module, path) -> dict:
    """Load a :func:`save_checkpoint` file into ``model`` (same architecture); returns its meta.

    Raises :class:`WeightsError` for a missing file, a folder, a file that is not a
    checkpoint (an image, a bare tensor, a pickled object: refused unread), or one
    whose tensors do not fit ``model``.
    """
    path = Path(path).expanduser()
    again = "save the model again with save_checkpoint(model, path)"
    if path.is_dir():
        raise WeightsError(f"{path} is a folder: give the checkpoint file inside it")
    if not path.is_file():
        raise WeightsError(f"no checkpoint file {path}: check the path, or {again}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not _looks_like_torch_file(path):
            raise WeightsError(f"{path} is not a checkpoint file (not a file torch.save wrote: an "
                               f"image or another format?): {again}") from None
        # weights_only refused an object that is not a tensor (the file's code did not
        # run). torch's own message suggests loading it unsafely: we never do.
        raise WeightsError(f"{path} holds objects other than tensors, so it was not loaded "
                           f"(a checkpoint holds a state dict only): {again}") from None
    except (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{path} is not a checkpoint file ({_first_line(exc)}): {again}") from None
    if not (isinstance(state, dict) and isinstance(state.get("state_dict"), dict)):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a checkpoint written by "
                           f"save_checkpoint (a dict with a 'state_dict'): {again}")
    try:
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path} is not a checkpoint of this model ({_mismatch(exc)}): load it "
                           f"into the architecture it was saved from, or {again}") from None
    meta = state.get("meta", {})
    return dict(meta) if isinstance(meta, dict) else {}


def _first_line(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (torch's messages run to many lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _mismatch(exc: BaseException) -> str:
    """The first detail of a ``load_state_dict`` error (its first line is only a header)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else \
        (lines[0] if lines else type(exc).__name__)
    return detail if len(detail) <= 160 else detail[:157] + "..."


def _looks_like_torch_file(path: Path) -> bool:
    """A zip archive (torch.save's format) or a pickle stream (its legacy format)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return zipfile.is_zipfile(path) or head[:1] == b"\x80"
