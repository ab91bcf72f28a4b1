"""One record per data set the lab knows: its folder, classes, download and ``ci`` subset.

Every fact about a known data set is written here once (:data:`KNOWN_DATASETS`), and
read by :mod:`tplib.datasets` (where to look for it, its title), :mod:`tplib.download`
(the archive's URL, size and checksum, through :class:`Resource`), :mod:`tplib.profile`
(the ``ci`` profile's subset), :mod:`tplib.synthetic` (the stand-in's classes and
counts) and ``tplib fetch`` (what can be downloaded).

Standard library only, importing nothing else of tplib but :mod:`tplib.errors`: the
command line reads it for its choices without loading torch.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

#: The checks a :class:`Resource` may carry (see :func:`tplib.download.fetch`).
CHECK_KINDS = ("sha256-prefix", "sha256", "git-blob-sha1")


@dataclass(frozen=True)
class Resource:
    """A file we know how to download and how to recognise.

    ``check`` is ``None`` (size only) or a pair ``(kind, hex)`` where ``kind`` is
    ``"sha256-prefix"`` (the first hex digits of the SHA-256, as in PyTorch's
    weight file names), ``"sha256"`` (the full digest) or ``"git-blob-sha1"``
    (the blob id GitHub shows for a file, i.e. what ``git hash-object`` prints).
    """

    name: str
    url: str
    filename: str
    size: int | None
    check: tuple[str, str] | None

    def __post_init__(self) -> None:
        # Fail when the record is written, not when a student downloads.
        if self.check is not None:
            kind, value = self.check
            if kind not in CHECK_KINDS:
                raise ValueError(f"unknown check kind {kind!r} for {self.name!r}; use one of {CHECK_KINDS}")
            if not re.fullmatch(r"[0-9a-fA-F]+", value):
                raise ValueError(f"check value for {self.name!r} is not hexadecimal: {value!r}")
        if self.size is not None and self.size < 0:
            raise ValueError(f"negative size for {self.name!r}")
        if Path(self.filename).name != self.filename or self.filename in ("", ".", ".."):
            raise ValueError(f"filename for {self.name!r} must be a plain file name: {self.filename!r}")

    def describe(self, dest_dir: str | os.PathLike | None = None) -> str:
        """Human text: ``file NAME (N bytes) from URL[, to be placed in DIR]``."""
        size = f"{self.size:,} bytes" if self.size is not None else "size unknown"
        text = f"file {self.filename} ({size}) from {self.url}"
        if dest_dir is not None:
            text += f", to be placed in {Path(dest_dir)}"
        return text


@dataclass(frozen=True)
class DatasetRecord:
    """A data set the lab knows by name.

    Attributes:
        name: short name ("15scene"): ``data=`` in :func:`tplib.setup`, ``tplib fetch``'s argument.
        title: for titles and reports ("15 Scene").
        folder: the folder holding ``train/`` and ``test/`` (its archive unpacks to it;
            it is looked for under the shared data folder and the cache).
        classes: the class folder names, sorted (K names).
        resource: the archive to download (URL, size, checksum), or None.
        ci_subset: (train, test) images per class in the ``ci`` profile; None: the
            profile's default for other folders.
        train_per_class: the protocol's training images per class (the rest are test
            images), or None when the split is given by other means.
        can_generate: a generated stand-in exists for offline demos (:mod:`tplib.synthetic`).
        builder: key of :data:`tplib.datasets.BUILDERS`, a function that builds the
            folder in the cache from raw files (placed there, or downloaded), or None.
    """

    name: str
    title: str
    folder: str
    classes: tuple[str, ...]
    resource: Resource | None = None
    ci_subset: tuple[int, int] | None = None
    train_per_class: int | None = None
    can_generate: bool = False
    builder: str | None = None


#: The data set the lab is about (``tplib run`` without ``--data``).
DEFAULT_DATASET = "15scene"

KNOWN_DATASETS: dict[str, DatasetRecord] = {record.name: record for record in (
    DatasetRecord(
        "15scene", "15 Scene", "15SceneData",
        classes=("bedroom", "coast", "forest", "highway", "industrial", "insidecity", "kitchen",
                 "livingroom", "mountain", "office", "opencountry", "store", "street", "suburb",
                 "tallbuilding"),
        # the course's zip; its git blob id is what GitHub shows for the file
        resource=Resource(
            "15scene", "https://github.com/rdfia/rdfia.github.io/raw/master/data/3-a/15ScenesData.zip",
            "15ScenesData.zip", 86_520_868,
            ("git-blob-sha1", "2d560c33ccbddb036071cae557d89229d744cc1c")),
        ci_subset=(20, 20), train_per_class=100, can_generate=True,
    ),
    DatasetRecord("catsdogs", "cats vs dogs", "catsdogs", classes=("cat", "dog"), ci_subset=(100, 50)),
    DatasetRecord("pets", "Oxford-IIIT Pet, cats vs dogs", "oxford-pets-catsdogs",
                  classes=("cat", "dog"), builder="oxford_pets"),
)}


def get_record(name: str) -> DatasetRecord:
    """The record of the known data set ``name``; an unknown name lists the known ones."""
    try:
        return KNOWN_DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown data set {name!r}. Known names: {', '.join(KNOWN_DATASETS)} "
                        "(or give a folder)") from None


def downloadable() -> tuple[str, ...]:
    """Names of the data sets with an archive to download (``tplib fetch``'s data choices)."""
    return tuple(name for name, record in KNOWN_DATASETS.items() if record.resource is not None)
