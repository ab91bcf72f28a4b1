"""Image-folder datasets: ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``.

:func:`load_dataset` reads any such folder (the unpacked 15 Scene zip, a student's
own photos, cats vs dogs) and returns file lists and labels; images are decoded
later, during extraction, where undecodable files are skipped and listed.
:func:`tplib.datasets.find_dataset` decides which folder to read (a given folder,
the shared copy, the cache, a download); this module only reads it.

Rules, so that hand-made folders work and nothing is silently wrong:

- class folders are the non-hidden sub-folders of ``train/``; images may sit in
  nested sub-folders; symlinks are followed (loops are not);
- hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``), ``__MACOSX``
  and files without an image extension are ignored and listed;
- labels are indices into the *train* classes (sorted); a test class unknown to
  train is an error, a train class missing from test a warning;
- a train class without any image is an error that names the folder.

Taught in notebook 04 (loading 15 Scene).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import DataError
from .images import is_image_file

LAYOUT_HELP = (
    "Expected layout: ROOT/train/<class>/<image files> and ROOT/test/<class>/<image "
    "files> (e.g. the unpacked 15ScenesData.zip: 15SceneData/train/bedroom/image_0001.jpg)."
)
_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


@dataclass
class Split:
    """One split of an image-folder dataset.

    Attributes:
        root: the split folder (e.g. ``.../15SceneData/train``).
        name: "train" or "test".
        classes: class names (index = label), shared by both splits.
        paths: (n,) image files, sorted by class then relative path.
        labels: (n,) int64 class indices.
        ignored: [(path, reason)] files that were not taken as images.
    """

    root: Path
    name: str
    classes: list[str]
    paths: list[Path]
    labels: np.ndarray
    ignored: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Number of files per class, in class order."""
        binc = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, binc)}

    def subset(self, per_class: int) -> "Split":
        """The first ``per_class`` files of every class (deterministic), e.g. for --quick."""
        keep = [i for c in range(len(self.classes))
                for i in np.flatnonzero(self.labels == c)[:per_class]]
        keep.sort()
        return replace(self, paths=[self.paths[i] for i in keep], labels=self.labels[keep])


#: Where a dataset came from (:attr:`Dataset.source`).
SOURCES = ("folder", "cache", "download", "generated")


@dataclass
class Dataset:
    """Train and test splits of one folder, with what was noticed while reading it.

    Attributes:
        root: the folder holding ``train/`` and ``test/``.
        train, test: the two splits.
        warnings: things noticed while reading (e.g. a class without test images).
        source: "folder" (given or shared folder), "cache", "download" or "generated".
        origin: where exactly, in words (for the setup block and reports).
        name: short name ("15scene", "catsdogs", or the folder's name).
        title: for plot titles and reports ("15 Scene").
        subset_rule: how a subset was chosen, or "" for all images.
        notes: loud lines for banners (generated data).
    """

    root: Path
    train: Split
    test: Split
    warnings: list[str] = field(default_factory=list)
    source: str = "folder"
    origin: str = ""
    name: str = ""
    title: str = ""
    subset_rule: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        self.name = self.name or self.root.name
        self.title = self.title or self.root.name

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @property
    def is_real(self) -> bool:
        """False for the generated stand-in: its accuracies say nothing about real images."""
        return self.source != "generated"

    def subset(self, n_train: int, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` train and ``n_test`` (default ``n_train``) test files per class."""
        n_test = n_train if n_test is None else n_test
        return replace(self, train=self.train.subset(n_train), test=self.test.subset(n_test),
                       warnings=list(self.warnings), notes=list(self.notes))

    def describe(self) -> str:
        """One line: what, how many, from where."""
        where = f" ({self.origin})" if self.origin else f" ({self.root})"
        return (f"{self.title}: {len(self.classes)} classes, {len(self.train):,} train / "
                f"{len(self.test):,} test images{where}")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def _scan_class(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``folder`` (recursively, symlinks followed once)."""
    images, ignored, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop: do not walk the same folder twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _hidden(name):
                continue
            if not path.exists():
                ignored.append((str(path), "broken symbolic link"))
            elif not is_image_file(name):
                ignored.append((str(path), f"not an image file name ({path.suffix or 'no extension'})"))
            else:
                images.append(path)
    images.sort(key=lambda p: str(p.relative_to(folder)))
    return images, ignored


def scan_split(split_dir: Path) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    """{class name: image files} for one split folder, plus ignored files."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} does not exist or is not a folder. {LAYOUT_HELP}")
    per_class, ignored = {}, []
    for entry in sorted(split_dir.iterdir()):
        if _hidden(entry.name):
            continue
        if entry.is_dir():
            per_class[entry.name], more = _scan_class(entry)
            ignored.extend(more)
        else:
            ignored.append((str(entry), "file directly in the split folder, not in a class folder"))
    if not per_class:
        raise DataError(f"{split_dir} has no class sub-folders. {LAYOUT_HELP}")
    return per_class, ignored


def resolve_root(data: str | os.PathLike) -> Path:
    """The folder holding ``train/`` and ``test/``: ``data`` itself or its only child."""
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist. {LAYOUT_HELP}")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder. {LAYOUT_HELP}")
    if (root / "train").is_dir():
        return root
    children = [c for c in root.iterdir() if c.is_dir() and not _hidden(c.name)]
    nested = [c for c in children if (c / "train").is_dir()]
    if len(nested) == 1:  # the folder the course zip was unpacked into
        return nested[0]
    found = ", ".join(sorted(c.name for c in children)[:10]) or "no sub-folders"
    raise DataError(f"{root} has no train/ folder (found: {found}). {LAYOUT_HELP}")


def load_dataset(data: str | os.PathLike, *, source: str = "folder", origin: str = "") -> Dataset:
    """Read ``data`` (see :func:`resolve_root`) into train and test splits.

    ``source`` and ``origin`` are stored on the dataset (see :class:`Dataset`).

    Raises :class:`DataError` for a missing folder, a wrong layout, a train class
    without images, or test classes that train does not have.
    """
    root = resolve_root(data)
    train_files, train_ignored = scan_split(root / "train")
    test_files, test_ignored = scan_split(root / "test")
    empty = [c for c, files in train_files.items() if not files]
    if empty:
        raise DataError(
            "no images in " + ", ".join(str(root / "train" / c) for c in empty)
            + ": add images to these class folders or remove them.")
    classes = sorted(train_files)
    unknown = sorted(set(test_files) - set(classes))
    if unknown:
        raise DataError(
            f"{root / 'test'} has classes that {root / 'train'} does not: {', '.join(unknown)}. "
            "Both splits must use the same class folder names (labels are matched by name).")
    warnings = []
    absent = [c for c in classes if not test_files.get(c)]
    if absent:
        warnings.append(f"no test images for class(es) {', '.join(absent)}: their accuracy "
                        "cannot be measured")
    if not any(test_files.values()):
        raise DataError(f"no images in {root / 'test'}. {LAYOUT_HELP}")
    index = {c: i for i, c in enumerate(classes)}

    def make(name, files, ignored):
        paths = [p for c in classes for p in files.get(c, [])]
        labels = np.array([index[c] for c in classes for _ in files.get(c, [])], dtype=np.int64)
        return Split(root / name, name, classes, paths, labels, ignored)

    return Dataset(root, make("train", train_files, train_ignored),
                   make("test", test_files, test_ignored), warnings, source=source, origin=origin)
