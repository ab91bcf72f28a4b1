"""Run profiles: ``full`` (the real lab), ``quick`` (classroom demo), ``ci`` (regression runs).

One environment variable, ``TPLIB_PROFILE``, picks the profile; :func:`tplib.setup`
(every notebook's first cell), ``tplib run`` and :func:`tplib.run_lab` all read it
through :func:`get_profile`. A profile says how much data to use, whether progress
bars show, whether downloads are tried, and the engine defaults (device, precision).

- ``full`` (default): all images; VGG16 if its weights are cached or downloadable.
- ``quick``: the first 5 train and 5 test images of every class: a one-minute demo.
- ``ci``: what CI and nbval use. Real weights, real data, on a fixed subset (the
  first N files of every class, file names sorted: each data set's ``ci_subset`` in
  :data:`tplib.catalog.KNOWN_DATASETS`), fp32 on the CPU (the same numbers on every
  machine), no downloads, no progress bars.

A setting left as None in a call means the active profile's: :func:`profile_defaults`
is that rule, written once.

The profile is explicit and printed by :func:`tplib.setup`; it is never a silent fallback.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .catalog import KNOWN_DATASETS
from .engine import Engine
from .errors import OptionError, TplibError

PROFILE_ENV = "TPLIB_PROFILE"

#: (train, test) images per class in the ``ci`` profile for folders without a record's ``ci_subset``.
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
        subsets={record.name: record.ci_subset for record in KNOWN_DATASETS.values()
                 if record.ci_subset is not None},
        default_subset=CI_DEFAULT_SUBSET, progress=False,
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


#: The settings a call may leave as None to get the profile's.
SETTINGS = ("download", "progress", "engine")


def profile_defaults(profile: Profile | None = None, **given) -> tuple:
    """The ``given`` settings in order, each None replaced by ``profile``'s (default: the active one).

    ``download, progress = profile_defaults(profile, download=download, progress=progress)``:
    the one place where "None means the profile's default" is decided. Keys are
    :data:`SETTINGS`; an unknown key is an :class:`OptionError`.
    """
    unknown = [key for key in given if key not in SETTINGS]
    if unknown:
        raise OptionError(f"no profile setting {unknown[0]!r}; profiles set {', '.join(SETTINGS)}")
    chosen = profile if profile is not None else active_profile()
    return tuple(getattr(chosen, key) if value is None else value for key, value in given.items())


def default_progress(progress: bool | None) -> bool:
    """``progress`` if given, else the active profile's choice; off by default while
    nbgrader executes a notebook (``NBGRADER_EXECUTION`` set): nbgrader gives no points to
    a test cell that writes to stderr, where the bars go, even when its check passes."""
    if progress is None and os.environ.get("NBGRADER_EXECUTION"):
        return False
    return bool(profile_defaults(progress=progress)[0])


def default_engine(engine: Engine | None) -> Engine:
    """``engine`` if given, else the active profile's defaults."""
    return profile_defaults(engine=engine)[0]
