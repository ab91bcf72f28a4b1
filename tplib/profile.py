"""Run profiles: ``full`` (the real lab), ``quick`` (classroom demo), ``ci`` (regression runs).

One environment variable, ``TPLIB_PROFILE``, picks the profile; :func:`tplib.setup`
(every notebook's first cell), ``tplib run`` and :func:`tplib.run_lab` all read it
through :func:`get_profile`. A profile says how much data to use, whether progress
bars show, whether downloads are tried, and the engine defaults (device, precision).

- ``full`` (default): all images; VGG16 if its weights are cached or downloadable.
- ``quick``: the first 5 train and 5 test images of every class: a one-minute demo.
- ``ci``: what CI and nbval use. Real weights, real data, on a fixed subset (the
  first N files of every class, file names sorted: :data:`CI_SUBSETS`), fp32 on the
  CPU (the same numbers on every machine), no downloads, no progress bars.

The profile is explicit and printed by :func:`tplib.setup`; it is never a silent fallback.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .engine import Engine
from .errors import TplibError

PROFILE_ENV = "TPLIB_PROFILE"

#: (train, test) images per class in the ``ci`` profile, by dataset; other folders: DEFAULT.
CI_SUBSETS = {"15scene": (20, 20), "catsdogs": (100, 50)}
CI_DEFAULT_SUBSET = (10, 10)
QUICK_SUBSET = (5, 5)


@dataclass(frozen=True)
class Profile:
    """One run profile (see the module docstring).

    Attributes:
        name: "full", "quick" or "ci".
        summary: one line for the setup block.
        subsets: dataset name -> (train, test) images per class; absent: all images.
        default_subset: for folders not in ``subsets`` (None: all images).
        progress: show progress bars.
        download: try downloads when weights or data are missing.
        engine: defaults for :func:`tplib.extract_features`.
        seed: seeds set by :func:`tplib.setup`.
    """

    name: str
    summary: str
    subsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    default_subset: tuple[int, int] | None = None
    progress: bool = True
    download: bool = True
    engine: Engine = field(default_factory=Engine)
    seed: int = 0

    def subset_for(self, dataset: str) -> tuple[int, int] | None:
        """(train, test) images per class for ``dataset`` (a known name), or None for all."""
        return self.subsets.get(dataset, self.default_subset)


PROFILES: dict[str, Profile] = {
    "full": Profile("full", "the real lab: all images, progress bars"),
    "quick": Profile(
        "quick", f"classroom demo: the first {QUICK_SUBSET[0]} train and {QUICK_SUBSET[1]} test "
                 "images of every class",
        subsets={}, default_subset=QUICK_SUBSET),
    "ci": Profile(
        "ci", "regression runs: real data on a fixed subset, fp32 on the CPU, no downloads, "
              "no progress bars",
        subsets=dict(CI_SUBSETS), default_subset=CI_DEFAULT_SUBSET, progress=False,
        download=False, engine=Engine(device="cpu", precision="fp32")),
}

_active: Profile | None = None


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``, else ``$TPLIB_PROFILE``, else "full"; unknown names are an error."""
    chosen = name if name is not None else (os.environ.get(PROFILE_ENV) or "full")
    key = chosen.strip().lower()
    if key not in PROFILES:
        where = "" if name is not None else f" (from {PROFILE_ENV})"
        raise TplibError(f"unknown profile {chosen!r}{where}. Valid profiles: {', '.join(PROFILES)}")
    return PROFILES[key]


def active_profile() -> Profile:
    """The profile set by :func:`tplib.setup`, else the one the environment names."""
    return _active if _active is not None else get_profile()


def set_active_profile(profile: Profile | None) -> None:
    """Make ``profile`` the default of every tplib call in this process (None: the environment's)."""
    global _active
    _active = profile


def default_progress(progress: bool | None) -> bool:
    """``progress`` if given, else the active profile's choice."""
    return active_profile().progress if progress is None else bool(progress)


def default_engine(engine: Engine | None) -> Engine:
    """``engine`` if given, else the active profile's defaults."""
    return active_profile().engine if engine is None else engine
