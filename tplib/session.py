"""``tplib.setup()``: the first cell of every notebook, one call that sets up a run.

It reads the run profile (``TPLIB_PROFILE``: full, quick or ci; see
:mod:`tplib.profile`), seeds Python, NumPy and torch, picks the device, turns progress
bars on or off for every tplib call, selects matplotlib's inline backend inside
Jupyter, loads the network and finds the data the notebook asks for (with the one
fallback policy: :func:`tplib.resolve_backbone`, :func:`tplib.find_dataset`), and
prints one short block saying what is active and where it came from::

    lab = tplib.setup(data="15scene")
    lab.backbone, lab.dataset

Unlike the rest of tplib, this call changes process-wide state on purpose (seeds,
the active profile, the plotting backend): it is what a notebook's setup cell is for.
"""
from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass, field

from .profile import Profile, get_profile, set_active_profile
from .registry import DEFAULT_NETWORK, DEFAULT_WEIGHTS

BLOCK_WIDTH = 88


@dataclass
class Session:
    """What :func:`setup` made active.

    Attributes:
        profile: the run profile.
        device: "cpu" or "cuda" (the engine's device after "auto" is resolved).
        backbone: the network (None when the notebook asked for none).
        dataset: the data (None when the notebook asked for none).
        notes: every loud line (substitute network, random weights, generated data).
    """

    profile: Profile
    device: str
    backbone: object = None
    dataset: object = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The printed block: profile, device, network and weights, data (wrapped lines)."""
        rows = [("profile", f"{self.profile.name}: {self.profile.summary}"),
                ("device", self.device)]
        if self.backbone is not None:
            rows.append(("network", self.backbone.describe()))
        else:
            rows.append(("network", "none requested (network=None)"))
        if self.dataset is not None:
            rows.append(("data", self.dataset.describe()))
            if self.dataset.subset_rule:
                rows.append(("subset", self.dataset.subset_rule))
        lines = []
        for key, text in rows:
            lines += textwrap.wrap(text, BLOCK_WIDTH, initial_indent=f"{key:<8} ",
                                   subsequent_indent=" " * 9, break_on_hyphens=False)
        for note in self.notes:
            lines += [""] + textwrap.wrap(note, BLOCK_WIDTH, initial_indent="!!! ",
                                          subsequent_indent="    ", break_on_hyphens=False)
        return "\n".join(lines)


def _in_jupyter():
    """The running IPython kernel's shell, or None outside Jupyter."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (notebooks want repeatable cells)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(network: str | None = DEFAULT_NETWORK, data: str | None = None, *, weights: str = DEFAULT_WEIGHTS,
          profile: str | None = None, strict: bool = False, split: int | None = None,
          quiet: bool = False) -> Session:
    """Set up a notebook (or a script) for the lab and say what is active.

    Args:
        network: the network the notebook uses ("vgg16", "resnet18", ...); missing
            weights give a labelled real substitute (EfficientNet-Lite0). None: no network.
        data: "15scene", "catsdogs", "pets" (Oxford-IIIT Pet, cat or dog), a folder, or None.
        weights: "imagenet", or "random" for architecture-only notebooks (said loudly).
        profile: "full", "quick" or "ci"; default ``$TPLIB_PROFILE``, else "full".
        strict: stop instead of using a substitute network or generated data.
        split: see :func:`tplib.find_dataset` (folders without train/ and test/).
        quiet: do not print the block (``session.summary()`` returns it).

    Returns:
        A :class:`Session`; ``session.backbone`` and ``session.dataset`` are ready to use.
    """
    from .datasets import find_dataset
    from .models import resolve_backbone

    prof = get_profile(profile)
    set_active_profile(prof)
    device = prof.engine.check_device().type
    shell = _in_jupyter()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
    session = Session(profile=prof, device=device)
    if network is not None:
        session.backbone = resolve_backbone(network, weights=weights, download=prof.download,
                                            strict=strict, progress=prof.progress)
        session.notes += session.backbone.notes
    if data is not None:
        session.dataset = find_dataset(data, profile=prof, strict=strict, split=split)
        session.notes += session.dataset.notes
    seed_everything(prof.seed)  # last: loading the network and data draws no numbers after it
    if not quiet:
        print(session.summary())
    return session
