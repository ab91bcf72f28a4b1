"""Finding the lab's data: a given folder, the shared copy, the cache, a download, a stand-in.

:func:`find_dataset` is the data step of a run profile (``tplib.setup``, ``tplib run``
and :func:`tplib.run_lab` share it); :mod:`tplib.data` then only reads image folders.
For a known dataset (a record of :data:`tplib.catalog.KNOWN_DATASETS`: its folder,
archive, classes and ``ci`` subset) it looks, in this order:

1. a folder or zip given by the caller (``source="folder"``);
2. the shared data folder: ``$TPLIB_REAL_DATA/<folder>``, or ``../shared/data/<folder>``
   beside the checkout (how classrooms and CI provide the real images; ``"folder"``);
3. the cache ``$TPLIB_CACHE/data``: the unpacked folder, or the course zip placed there
   by hand (verified, then unpacked safely; ``"cache"``); for Oxford-IIIT Pet, its
   folder built from the raw files placed there (``"cache"``);
4. the download, when the profile allows it (15 Scene: the course zip, size and git
   blob id checked; Oxford-IIIT Pet: through torchvision, MD5 checked; ``"download"``);
5. 15 Scene only, and never with ``strict``: a generated stand-in with its layout,
   labelled in ``dataset.notes`` (``"generated"``). Its accuracies say nothing about
   scenes; :attr:`tplib.data.Dataset.is_real` lets a notebook refuse to show them as real.

The profile's subset (``ci``: the first N files of every class) is applied last and
recorded in ``dataset.subset_rule``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .catalog import DEFAULT_DATASET, KNOWN_DATASETS, DatasetRecord, get_record
from .data import Dataset, load_dataset, resolve_root
from .errors import DataError, DownloadError, IntegrityError
from .profile import Profile, active_profile, profile_defaults

REAL_DATA_ENV = "TPLIB_REAL_DATA"
CHECKOUT = Path(__file__).resolve().parents[1]


def shared_data_dirs() -> list[Path]:
    """Folders that may hold the real data sets: ``$TPLIB_REAL_DATA``, else ``../shared/data``."""
    env = os.environ.get(REAL_DATA_ENV)
    if env:
        return [Path(env).expanduser()]
    return [CHECKOUT.parent / "shared" / "data"]


def _display(path: Path) -> str:
    """A data folder as the setup block prints it, the same on every machine.

    ``$TPLIB_REAL_DATA/<folder>`` when that variable chose it, ``../shared/data/<folder>``
    beside the checkout; never resolved through symbolic links (a linked ``../shared`` is
    a common way to place course data) and never the checkout's absolute location: nbval
    compares this text with the stored notebooks.
    """
    env = os.environ.get(REAL_DATA_ENV)
    path = Path(path)
    if env:
        try:
            return f"${REAL_DATA_ENV}/{path.relative_to(Path(env).expanduser()).as_posix()}"
        except ValueError:
            pass
    try:
        return "../" + path.relative_to(CHECKOUT.parent).as_posix()
    except ValueError:
        return str(path)


def _from_cache(info: DatasetRecord, download: bool, progress: bool) -> tuple[Path, str] | None:
    """(root, "cache" | "download") from the data cache, or None when nothing is there."""
    from .download import fetch, safe_extract_zip
    from .paths import data_cache_dir

    cache = data_cache_dir()
    unpacked = cache / info.folder
    if info.resource is None:
        if (unpacked / "train").is_dir():
            return unpacked, "cache"
        if info.builder is not None:
            return BUILDERS[info.builder](cache, unpacked, download=download, progress=progress)
        return None
    resource = info.resource
    placed = (cache / resource.filename).exists()
    marker = cache / f".{resource.filename}.unpacked"
    if (unpacked / "train").is_dir() and (marker.exists() or not placed):
        return unpacked, "cache"
    if not (placed or download):
        return None
    zip_path = fetch(resource, cache, progress=progress)  # verifies a placed file too
    safe_extract_zip(zip_path, cache)
    return resolve_root(unpacked), "cache" if placed else "download"


def _missing_help(info: DatasetRecord) -> str:
    from .paths import data_cache_dir

    where = [f"{_display(d / info.folder)}" for d in shared_data_dirs()]
    env = os.environ.get(REAL_DATA_ENV)
    pointer = (f" ({REAL_DATA_ENV} is set to {env}, which does not exist)"
               if env and not Path(env).expanduser().is_dir() else "")
    text = (f"{info.title} was not found{pointer}. Point at a copy (data=... in Python, --data on the "
            f"command line), set {REAL_DATA_ENV} to a folder holding {info.folder}/, or place "
            f"{info.folder}/ at {where[0]} or {data_cache_dir() / info.folder}")
    if info.resource is not None:
        text += f", or place the {info.resource.describe(data_cache_dir())}"
    if info.builder == "oxford_pets":
        text += (f", or place Oxford-IIIT Pet's images/ and annotations/ folders (from "
                 f"{PETS_URL}: images.tar.gz and annotations.tar.gz, unpacked) in "
                 f"{data_cache_dir() / PETS_RAW}, or run where there is network (torchvision "
                 "downloads them, about 800 MB)")
    return text + "."


def locate(name: str, *, download: bool = True, strict: bool = False,
           progress: bool = True) -> tuple[Path, str, str]:
    """(root, source, origin text) of the known dataset ``name`` (see the module docstring).

    Raises :class:`DataError` (or :class:`DownloadError`) saying what to place where
    when nothing is found and no stand-in is allowed.
    """
    info = get_record(name)
    for shared in shared_data_dirs():
        candidate = shared / info.folder
        if (candidate / "train").is_dir():
            return candidate, "folder", f"shared data folder {_display(candidate)}"
    try:
        found = _from_cache(info, download, progress)
    except IntegrityError:
        raise  # a damaged file placed in the cache must be fixed, not worked around
    except DownloadError as exc:
        if strict or not info.can_generate:
            raise DownloadError(f"{exc} {_missing_help(info)}") from exc
        found = None
    if found is not None:
        root, source = found
        # the cache's location differs between machines (TPLIB_CACHE, HOME): name it, not its path
        where = f"tplib's data cache ({info.folder})"
        return root, source, f"downloaded to {where}" if source == "download" else where
    if strict or not info.can_generate:
        raise DataError(_missing_help(info))
    return None, "generated", ""


def find_dataset(data: str | os.PathLike = DEFAULT_DATASET, *, profile: Profile | None = None,
                 download: bool | None = None, strict: bool = False, progress: bool | None = None,
                 split: int | None = None) -> Dataset:
    """The dataset to work on, found as the module docstring says, with the profile's subset.

    Args:
        data: a known name ("15scene", "catsdogs", "pets") or a folder / course zip.
        profile: default the active one (:func:`tplib.setup`, ``TPLIB_PROFILE``).
        download: try the course download; default the profile's choice.
        strict: never fall back to a generated stand-in.
        split: for a folder of class folders without train/ and test/: N images per
            class for training, the rest for testing (see :func:`tplib.data.load_dataset`).

    Returns:
        A :class:`tplib.data.Dataset` whose ``source``, ``origin``, ``title`` and
        ``subset_rule`` say what it is; ``notes`` holds a loud line for generated data.
    """
    profile = profile or active_profile()
    download, progress = profile_defaults(profile, download=download, progress=progress)
    name = str(data)
    if name in KNOWN_DATASETS:
        info = KNOWN_DATASETS[name]
        root, source, origin = locate(name, download=download, strict=strict, progress=progress)
        if source == "generated":
            dataset = _generated(profile, progress)
        else:
            dataset = load_dataset(root, source=source, origin=origin)
        dataset.name, dataset.title = info.name, info.title
    else:
        dataset = _from_path(Path(data).expanduser(), split)
    subset = profile.subset_for(dataset.name)
    if subset is not None and dataset.source != "generated":
        n_train, n_test = subset
        dataset = dataset.subset(n_train, n_test)
        dataset.subset_rule = (f"{profile.name} profile: the first {n_train} train and {n_test} test "
                               "images of every class (file names sorted)")
    return dataset


def _from_path(path: Path, split: int | None) -> Dataset:
    if path.is_file() and path.suffix.lower() == ".zip":
        from .download import safe_extract_zip
        from .paths import data_cache_dir

        target = data_cache_dir() / "unpacked" / path.stem
        dataset = load_dataset(safe_extract_zip(path, target), source="folder",
                               origin=f"zip {path}, unpacked to {target}")
    else:
        dataset = load_dataset(path, split=split, source="folder", origin=f"folder {path}")
    # a copy of a known data set, given by its folder (--data .../15SceneData), is that
    # data set: same title, and the same profile subset as find_dataset("15scene")
    known = next((info for info in KNOWN_DATASETS.values() if info.folder == dataset.root.name), None)
    dataset.name = known.name if known else dataset.root.name
    dataset.title = known.title if known else dataset.root.name
    return dataset


def _generated(profile: Profile, progress: bool) -> Dataset:
    """The generated stand-in, as many images per class as the profile would use."""
    from .paths import data_cache_dir
    from .synthetic import FULL_TEST_PER_CLASS, SCENE, generate_scene_standin

    n_train, n_test = (profile.subset_for(SCENE.name)
                       or (SCENE.train_per_class, FULL_TEST_PER_CLASS))
    root = data_cache_dir() / f"generated-{SCENE.name}-{n_train}-{n_test}-seed0"
    generate_scene_standin(root, n_train=n_train, n_test=n_test, seed=0, progress=progress)
    dataset = load_dataset(root, source="generated", origin=f"generated stand-in {root}")
    dataset.notes.append(
        "GENERATED DATA: the real 15 Scene images were not found and could not be downloaded. "
        f"These are synthetic stand-in images ({root}); an accuracy measured on them says "
        "nothing about scene recognition. " + _missing_help(SCENE))
    return dataset


# ------------------------------------------------------------------ Oxford-IIIT Pet
PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
#: the folder torchvision's OxfordIIITPet downloads to, under its root
PETS_RAW = "oxford-iiit-pet"


def build_oxford_pets(cache: Path, target: Path, *, download: bool = True,
                      progress: bool = True) -> tuple[Path, str] | None:
    """Oxford-IIIT Pet's cat-or-dog task as a plain folder: ``target/{train,test}/{cat,dog}/``.

    The raw files come from ``cache/oxford-iiit-pet/`` (``images/`` and ``annotations/``,
    placed there by hand, or downloaded by ``torchvision.datasets.OxfordIIITPet`` with
    its MD5 checks when ``download``). The split is the dataset's own: ``trainval.txt``
    -> train (3680 photos), ``test.txt`` -> test (3669); the label is its binary
    category, the SPECIES column (1 cat, 2 dog), as ``target_types="binary-category"``
    gives it. Photos are hard-linked (copied where links are impossible) into a
    temporary folder renamed into place at the end, so an interrupted build leaves
    nothing half-made. Returns (target, "cache" | "download"), or None when the raw
    files are missing and ``download`` is off.
    """
    import shutil

    raw = cache / PETS_RAW
    placed = (raw / "images").is_dir() and (raw / "annotations").is_dir()
    if not placed and not download:
        return None
    try:
        from torchvision.datasets import OxfordIIITPet

        for split in ("trainval", "test"):  # downloads (once) and checks the layout
            OxfordIIITPet(cache, split=split, target_types="binary-category",
                          download=download and not placed)
    except RuntimeError as exc:  # "Dataset not found", or a download's "corrupted" (MD5)
        if download and not placed:
            raise DownloadError(f"Oxford-IIIT Pet could not be downloaded: {exc}") from exc
        raise DataError(f"{raw}: {exc}") from exc
    except (OSError, ValueError) as exc:  # no network, HTTP error, bad archive
        raise DownloadError(f"Oxford-IIIT Pet could not be downloaded ({type(exc).__name__}: "
                            f"{exc})") from exc
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for split, listing in (("train", "trainval.txt"), ("test", "test.txt")):
        for line in (raw / "annotations" / listing).read_text().splitlines():
            fields = line.split()
            if len(fields) != 4 or line.startswith("#") or fields[2] not in ("1", "2"):
                continue
            source = raw / "images" / f"{fields[0]}.jpg"
            if not source.is_file():
                continue
            dest = partial / split / ("cat" if fields[2] == "1" else "dog") / source.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, dest)
            except OSError:
                shutil.copy2(source, dest)
    if not (partial / "train").is_dir():
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"{raw / 'annotations'} lists no photo found in {raw / 'images'}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target, "cache" if placed else "download"


#: builders of dataset folders from raw files (:attr:`tplib.catalog.DatasetRecord.builder`)
BUILDERS = {"oxford_pets": build_oxford_pets}
