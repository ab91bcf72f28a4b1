"""Image-folder datasets: ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``.

:func:`load_dataset` reads any such folder (the unpacked 15 Scene zip, a student's
own photos, cats vs dogs) and returns file lists and labels; images are decoded
later, during extraction, where undecodable files are skipped and listed. A *flat*
folder (``ROOT/<class>/*``, no ``train/`` and ``test/``, as many copies of 15 Scene
and most hand-made datasets are) is split with ``split=N``: N images per class for
training, the rest for testing (``--split N`` on the command line; N=100 is the 15
Scene protocol).
:func:`tplib.datasets.find_dataset` decides which folder to read (a given folder,
the shared copy, the cache, a download); this module only reads it.

Rules, so that hand-made folders work and nothing is silently wrong:

- class folders are the non-hidden sub-folders of ``train/``; images may sit in
  nested sub-folders;
- symbolic links: a linked *file* is followed wherever it points. A linked
  *sub-folder* inside a class folder is followed only if its real path lies inside
  the class folder's real path; any other (``up -> ..``, a link to ``/``, to
  another class, or to a folder elsewhere) is ignored and listed as "symbolic link
  to a folder outside the class folder", so no image is counted under another
  class's label and no walk leaves the data. A class folder that is itself a link
  is followed, unless it points to a folder holding its split or to another folder
  of the same dataset. Loops are not followed;
- one file (same real file: symbolic links and hard links alike) is counted once
  per split: a second path to it is ignored and listed, as "same file as <path>"
  within a class (the path without links is kept) or "same file already used as
  class <name>" in a later class (in sorted class order), so a label is never
  doubled. The same file in train and in test is a warning (it inflates the test
  accuracy);
- a folder that cannot be read (permissions) is ignored and listed, never a
  traceback; links that leave their class, duplicates and unreadable folders are
  also summed up in :attr:`Dataset.warnings`;
- hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``), ``__MACOSX``
  are ignored silently, files without an image extension are ignored and listed;
- labels are indices into the *train* classes (sorted). Test class folders are
  matched to train ones by name, compared in Unicode NFC form (``café`` composed
  and decomposed are one name, as macOS treats them); a test class unknown to
  train is an error (one that differs only by letter case is named with its near
  match), a train class missing from test a warning;
- a train class without any image is an error that names the folder.

Taught in notebook 04 (loading 15 Scene).
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import DataError, InputError, OptionError
from .images import is_image_file

LAYOUT_HELP = (
    "Expected layout: ROOT/train/<class>/<image files> and ROOT/test/<class>/<image "
    "files> (e.g. the unpacked 15ScenesData.zip: 15SceneData/train/bedroom/image_0001.jpg)."
)
_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
SOURCES = ("folder", "cache", "download", "generated")
SPLIT_SEED = 0

# reasons for ignoring an entry
OUTSIDE_LINK = "symbolic link to a folder outside the class folder"
LOOP_LINK = "symbolic link to a folder already scanned (a loop)"
SPLIT_LINK = "symbolic link to a folder that holds this split (classes would mix)"
DATASET_LINK = "symbolic link to another folder of this dataset (classes or splits would mix)"
BROKEN_LINK = "broken symbolic link"
# ignored entries worth a warning: they change which images a class gets
_NOTABLE = ("symbolic link to a folder", "same file", "cannot read")


@dataclass
class Split:
    """One split of an image-folder dataset.

    Attributes:
        root: the split folder (e.g. ``.../15SceneData/train``; the data folder
            itself for a flat folder split with ``split=N``).
        name: "train" or "test".
        classes: class names (index = label), shared by both splits.
        paths: (n,) image files, sorted by class then relative path.
        labels: (n,) int64 class indices.
        ignored: [(path, reason)] files and folders that were not taken as images.
        source: where the data came from: "folder", "cache", "download" or "generated".
        origin: free text saying where exactly (a path, a URL), "" if not given.
    """

    root: Path
    name: str
    classes: list[str]
    paths: list[Path]
    labels: np.ndarray
    ignored: list[tuple[str, str]] = field(default_factory=list)
    source: str = "folder"
    origin: str = ""

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


@dataclass
class Dataset:
    """Train and test splits of one folder, with what was noticed while reading it.

    Attributes:
        root: the folder holding ``train/`` and ``test/`` (or the class folders).
        train, test: the two :class:`Split`.
        warnings: things noticed that do not stop the run (one line each).
        split_rule: how train and test were formed: "train/ and test/ folders", or
            e.g. "flat folder split: 100 train per class, rest test, seed 0".
        source: "folder" (given or shared folder), "cache", "download" or "generated".
        origin: where exactly, in words (for the setup block and reports).
        name: short name ("15scene", "catsdogs", or the folder's name).
        title: for plot titles and reports ("15 Scene").
        subset_rule: how a subset was chosen (run profiles), or "" for all images.
        notes: loud lines for banners (generated data).
    """

    root: Path
    train: Split
    test: Split
    warnings: list[str] = field(default_factory=list)
    split_rule: str = ""
    source: str = "folder"
    origin: str = ""
    name: str = ""
    title: str = ""
    subset_rule: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_source(self.source)
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
        where = self.origin or str(self.root)
        if self.split_rule.startswith("flat"):
            where += f"; {self.split_rule}"
        return (f"{self.title}: {len(self.classes)} classes, {len(self.train):,} train / "
                f"{len(self.test):,} test images ({where})")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def _inside(path: str, folder: str) -> bool:
    """True if real path ``path`` is ``folder`` or lies below it."""
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def _why(exc: OSError) -> str:
    return f"cannot read ({exc.strerror or exc})"


def _scan_class(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``folder`` (recursively) and the ignored entries.

    Linked sub-folders are followed only within the class folder's real path (see
    the module docstring); unreadable folders become ignored entries.
    """
    images, ignored = [], []
    base = os.path.realpath(folder)
    visited = {base}
    stack = [Path(folder)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            ignored.append((str(current), _why(exc)))
            continue
        subfolders = []
        for e in entries:
            if _hidden(e.name):
                continue
            path = current / e.name
            try:
                link = e.is_symlink()
                is_dir = e.is_dir()
                is_file = not is_dir and e.is_file()
            except OSError as exc:
                ignored.append((str(path), _why(exc)))
                continue
            if is_dir:
                if link:
                    target = os.path.realpath(path)
                    if not _inside(target, base):
                        ignored.append((str(path), OUTSIDE_LINK))
                        continue
                    if target in visited:
                        ignored.append((str(path), LOOP_LINK))
                        continue
                    visited.add(target)
                else:
                    visited.add(os.path.realpath(path))
                subfolders.append(path)
            elif not is_file:
                if link and not os.path.exists(path):
                    ignored.append((str(path), BROKEN_LINK))
                else:
                    ignored.append((str(path), "not a regular file"))
            elif not is_image_file(e.name):
                ignored.append((str(path), f"not an image file name ({path.suffix or 'no extension'})"))
            else:
                images.append(path)
        stack.extend(reversed(subfolders))
    images.sort(key=lambda p: str(p.relative_to(folder)))
    return images, ignored


def _file_id(path: Path):
    """Identity of the file ``path`` leads to: (device, inode), or its real path."""
    st = os.stat(path)
    if st.st_ino:
        return (st.st_dev, st.st_ino)
    return os.path.normcase(os.path.realpath(path))  # file systems without inode numbers


def _direct(path: Path, folder: Path) -> bool:
    """True if ``path`` reaches its file without a symbolic link below ``folder``."""
    rel = os.path.relpath(path, folder)
    return os.path.realpath(path) == os.path.join(os.path.realpath(folder), rel)


def _dedupe(split_dir: Path, per_class: dict[str, list[Path]], ignored: list) -> dict:
    """Drop second paths to one file (see the module docstring); returns {file id: (path, class)}.

    Within a class the path without symbolic links is kept (else the first in
    sorted order); across classes the first class in sorted order keeps the file.
    """
    seen = {}
    for cls in sorted(per_class):
        groups: dict = {}
        for path in per_class[cls]:
            try:
                groups.setdefault(_file_id(path), []).append(path)
            except OSError as exc:
                ignored.append((str(path), _why(exc)))
        keep = set()
        for fid, paths in groups.items():
            if fid in seen:
                ignored.extend((str(p), f"same file already used as class {seen[fid][1]}")
                               for p in paths)
                continue
            first = paths[0]
            if len(paths) > 1:
                first = next((p for p in paths if _direct(p, split_dir / cls)), paths[0])
                ignored.extend((str(p), f"same file as {first}") for p in paths if p is not first)
            seen[fid] = (first, cls)
            keep.add(id(first))
        per_class[cls] = [p for p in per_class[cls] if id(p) in keep]
    return seen


def _scan_split(split_dir: Path, dataset_root: Path | None = None, top: str = "split folder"):
    """{class name: image files} for one split folder, the ignored files and folders, and
    the {file id: (path, class)} of the kept files.

    ``dataset_root``: the folder a linked class folder must not point into (default
    the split folder's parent: the one holding ``train/`` and ``test/``).
    """
    if not split_dir.is_dir():
        parent = split_dir.parent
        found = sorted(c.name for c in parent.iterdir() if c.is_dir()) if parent.is_dir() else []
        near = [n for n in found if n.lower() == split_dir.name.lower()
                or (split_dir.name == "test" and n.lower() in ("val", "valid", "validation"))]
        hint = (f" (found {', '.join(near)}: rename it to {split_dir.name})" if near
                else f" (found: {', '.join(found[:8])})" if found else "")
        raise DataError(f"{split_dir} does not exist or is not a folder{hint}. {LAYOUT_HELP}")
    try:
        entries = sorted(split_dir.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read {split_dir} ({exc.strerror or exc}): check its "
                        "permissions") from None
    split_real = os.path.realpath(split_dir)
    root_real = os.path.realpath(dataset_root if dataset_root is not None else split_dir.parent)
    per_class, ignored = {}, []
    for entry in entries:
        if _hidden(entry.name):
            continue
        try:
            is_dir = entry.is_dir()
            link = entry.is_symlink()
        except OSError as exc:
            ignored.append((str(entry), _why(exc)))
            continue
        if is_dir:
            if link:
                target = os.path.realpath(entry)
                if _inside(split_real, target):
                    ignored.append((str(entry), SPLIT_LINK))
                    continue
                if _inside(target, root_real):
                    ignored.append((str(entry), DATASET_LINK))
                    continue
            per_class[entry.name], more = _scan_class(entry)
            ignored.extend(more)
        elif link and not os.path.exists(entry):
            ignored.append((str(entry), BROKEN_LINK))
        else:
            ignored.append((str(entry), f"file directly in the {top}, not in a class folder"))
    if not per_class:
        raise DataError(f"{split_dir} has no class sub-folders. {LAYOUT_HELP}")
    seen = _dedupe(split_dir, per_class, ignored)
    return per_class, ignored, seen


def _holds_images(folder: Path) -> bool:
    """True if ``folder`` directly holds at least one image file (not hidden)."""
    try:
        with os.scandir(folder) as it:
            return any(not _hidden(e.name) and is_image_file(e.name) and e.is_file() for e in it)
    except OSError:
        return False


def _class_folders(root: Path) -> list[Path]:
    return sorted(c for c in root.iterdir() if not _hidden(c.name) and c.is_dir())


def _find_layout(data: str | os.PathLike) -> tuple[Path, str]:
    """(root, "split") for a folder with ``train/``, or (root, "flat") for a folder
    of class folders directly holding images; else :class:`DataError`."""
    if not str(data).strip():
        raise DataError(f"the data folder is empty text ({str(data)!r}): give the folder that holds "
                        f"train/ and test/. {LAYOUT_HELP}")
    # absolute: the paths a dataset holds stay right after a change of working folder
    root = Path(data).expanduser().absolute()
    try:
        if not root.exists():
            raise DataError(f"{root} does not exist. {LAYOUT_HELP}")
        if not root.is_dir():
            raise DataError(f"{root} is not a folder. {LAYOUT_HELP}")
        if (root / "train").is_dir():
            return root, "split"
        children = _class_folders(root)
        nested = [c for c in children if (c / "train").is_dir()]
        if len(nested) == 1:  # the folder the course zip was unpacked into
            return nested[0], "split"
        if any(_holds_images(c) for c in children):
            return root, "flat"
        if len(children) == 1 and any(_holds_images(c) for c in _class_folders(children[0])):
            return children[0], "flat"  # a flat folder unpacked into a folder of its own
    except PermissionError as exc:
        raise DataError(f"cannot read {exc.filename or root} ({exc.strerror}): check its "
                        "permissions") from None
    found = ", ".join(c.name for c in children[:10]) or "no sub-folders"
    raise DataError(f"{root} has no train/ folder (found: {found}). {LAYOUT_HELP}")


def _flat_help(root: Path) -> str:
    names = [c.name for c in _class_folders(root) if _holds_images(c)]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return (f"{root} holds class folders directly ({len(names)}: {shown}) and no train/ and "
            "test/ folders: say how many images per class to train on, with --split N on "
            "the command line or split=N in Python (N=100 is the 15 Scene protocol)")


def resolve_root(data: str | os.PathLike, *, flat: bool = False) -> Path:
    """The folder holding ``train/`` and ``test/``: ``data`` itself or its only child.

    With ``flat=True`` a folder of class folders (directly holding images, no
    ``train/``) is also returned; otherwise it is a :class:`DataError` naming the
    ``split`` option (see :func:`load_dataset`).
    """
    root, layout = _find_layout(data)
    if layout == "flat" and not flat:
        raise DataError(_flat_help(root))
    return root


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _match_test_classes(root: Path, classes: list[str], test_files: dict) -> dict:
    """Test class folder name -> train class name (names compared in NFC form)."""
    by_nfc = {}
    for c in classes:
        if _nfc(c) in by_nfc:
            raise DataError(f"{root / 'train' / by_nfc[_nfc(c)]} and {root / 'train' / c} have "
                            "the same name in two Unicode forms (composed and decomposed "
                            "accents): rename one of them")
        by_nfc[_nfc(c)] = c
    mapping, used, case_only, unknown = {}, {}, [], []
    for t in sorted(test_files):
        c = by_nfc.get(_nfc(t))
        if c is None:
            near = [c for c in classes if _nfc(c).casefold() == _nfc(t).casefold()]
            (case_only.append((t, near[0])) if near else unknown.append(t))
            continue
        if c in used:
            raise DataError(f"{root / 'test' / used[c]} and {root / 'test' / t} have the same "
                            "name in two Unicode forms (composed and decomposed accents): "
                            "rename one of them")
        used[c] = t
        mapping[t] = c
    if case_only:
        pairs = ", ".join(f"test/{t} vs train/{c}" for t, c in case_only)
        raise DataError(f"in {root}, class folders differ only by letter case: {pairs}; rename "
                        "one of each pair (labels are matched by exact name)")
    if unknown:
        raise DataError(
            f"{root / 'test'} has classes that {root / 'train'} does not: {', '.join(unknown)}. "
            "Both splits must use the same class folder names (labels are matched by name).")
    return mapping


def _empty_class_error(folders: list[Path], ignored: list) -> DataError:
    msg = "no images in " + ", ".join(str(f) for f in folders)
    notes = [(p, r) for p, r in ignored for f in folders if _inside(p, str(f))]
    if notes:
        msg += f" ({len(notes)} entries ignored there, e.g. {notes[0][0]}: {notes[0][1]})"
    return DataError(msg + ": add images to these class folders or remove them.")


def _notable_warnings(name: str, ignored: list) -> list[str]:
    notable = [(p, r) for p, r in ignored if r.startswith(_NOTABLE)]
    if not notable:
        return []
    p, r = notable[0]
    return [f"{len(notable)} files or folders of {name} were ignored (links leaving their class "
            f"folder, files reached twice, unreadable folders); first: {p}: {r}"]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise OptionError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")


def load_dataset(data: str | os.PathLike, *, split: int | None = None, source: str = "folder",
                 origin: str = "") -> Dataset:
    """Read ``data`` (see :func:`resolve_root`) into train and test splits.

    Args:
        data: a folder with ``train/`` and ``test/`` (or its parent), or, with
            ``split``, a folder of class folders.
        split: for a flat folder of class folders: N images per class for training,
            the rest for testing, drawn by ``numpy.random.default_rng(0).permutation``
            over each class's sorted files (the same split on every machine).
            Recorded in :attr:`Dataset.split_rule`; the entries ignored while
            scanning the folder are listed on the train split.
        source, origin: stored on the dataset and both splits (where the data came
            from; ``source`` is one of "folder", "cache", "download", "generated").

    Raises :class:`DataError` for a missing folder, a wrong layout, a train class
    without images, test classes that train does not have, a flat folder without
    ``split`` (or ``split`` with ``train/`` and ``test/``), or a class with at most
    ``split`` images.
    """
    _check_source(source)
    if split is not None and (isinstance(split, bool) or not isinstance(split, (int, np.integer))
                              or split < 1):
        raise OptionError(f"split must be a whole number of images per class (1 or more), "
                         f"not {split!r}")
    root, layout = _find_layout(data)
    if layout == "flat":
        if split is None:
            raise DataError(_flat_help(root))
        return _load_flat(root, int(split), source, origin)
    if split is not None:
        raise DataError(f"{root} already has train/ and test/ folders: leave out split={split} "
                        "(--split), which only splits a folder of class folders")
    train_files, train_ignored, train_ids = _scan_split(root / "train")
    test_files, test_ignored, test_ids = _scan_split(root / "test")
    empty = [c for c, files in train_files.items() if not files]
    if empty:
        raise _empty_class_error([root / "train" / c for c in empty], train_ignored)
    classes = sorted(train_files)
    mapping = _match_test_classes(root, classes, test_files)
    test_files = {mapping[t]: files for t, files in test_files.items()}
    warnings = []
    absent = [c for c in classes if not test_files.get(c)]
    if absent:
        warnings.append(f"no test images for class(es) {', '.join(absent)}: their accuracy "
                        "cannot be measured")
    if not any(test_files.values()):
        raise DataError(f"no images in {root / 'test'}. {LAYOUT_HELP}")
    both = sorted(set(train_ids) & set(test_ids), key=lambda k: str(test_ids[k][0]))
    if both:
        t, tr = test_ids[both[0]][0], train_ids[both[0]][0]
        warnings.append(f"{len(both)} files are in both train and test (e.g. {t} is {tr}): "
                        "the test accuracy is inflated; remove them from one split")
    warnings += _notable_warnings("train", train_ignored) + _notable_warnings("test", test_ignored)
    index = {c: i for i, c in enumerate(classes)}

    def make(name, files, ignored):
        paths = [p for c in classes for p in files.get(c, [])]
        labels = np.array([index[c] for c in classes for _ in files.get(c, [])], dtype=np.int64)
        return Split(root / name, name, classes, paths, labels, ignored, source, origin)

    return Dataset(root, make("train", train_files, train_ignored),
                   make("test", test_files, test_ignored), warnings,
                   "train/ and test/ folders", source, origin)


def _load_flat(root: Path, n_train: int, source: str, origin: str) -> Dataset:
    """A flat folder of class folders split into ``n_train`` per class and the rest."""
    files, ignored, _ = _scan_split(root, dataset_root=root, top="data folder")
    empty = [c for c, f in files.items() if not f]
    if empty:
        raise _empty_class_error([root / c for c in sorted(empty)], ignored)
    classes = sorted(files)
    small = [c for c in classes if len(files[c]) <= n_train]
    if small:
        listed = ", ".join(f"{c} ({len(files[c])} images: {root / c})" for c in small)
        raise DataError(f"split={n_train} keeps {n_train} images per class for training and "
                        f"needs at least one more for testing; too few in {listed}: lower N "
                        "(--split N, split=N) or add images")
    train_paths, train_labels, test_paths, test_labels = [], [], [], []
    for label, c in enumerate(classes):
        order = np.random.default_rng(SPLIT_SEED).permutation(len(files[c]))
        for i in sorted(order[:n_train]):
            train_paths.append(files[c][i])
            train_labels.append(label)
        for i in sorted(order[n_train:]):
            test_paths.append(files[c][i])
            test_labels.append(label)
    rule = f"flat folder split: {n_train} train per class, rest test, seed {SPLIT_SEED}"
    train = Split(root, "train", classes, train_paths, np.array(train_labels, dtype=np.int64),
                  ignored, source, origin)
    test = Split(root, "test", classes, test_paths, np.array(test_labels, dtype=np.int64),
                 [], source, origin)
    return Dataset(root, train, test, _notable_warnings("the data folder", ignored), rule,
                   source, origin)


def validation_split(split, fraction: float = 0.2):
    """(train, val): the last ``fraction`` of every class's files held out for validation.

    Deterministic (the files are sorted; no random draw), every class keeps at least
    one training and one validation file (a class with fewer than two files is an
    :class:`InputError`). Choose epochs and learning rates on ``val``,
    so that the test split is used once, at the end. Both are :class:`tplib.data.Split`
    (``val.name == "val"``).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise OptionError(f"fraction must be in (0, 1), e.g. 0.2 to hold out a fifth, not {fraction!r}")
    labels = np.asarray(split.labels)
    train_rows, val_rows = [], []
    for c in range(len(split.classes)):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            raise InputError(f"class {split.classes[c]!r} has {len(rows)} file(s): "
                             "too few to hold any out")
        n_val = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        train_rows += rows[:-n_val].tolist()
        val_rows += rows[-n_val:].tolist()
    train_rows.sort()
    val_rows.sort()

    def part(rows, name):
        return replace(split, name=name, paths=[split.paths[i] for i in rows], labels=labels[rows])
    return part(train_rows, split.name), part(val_rows, "val")
