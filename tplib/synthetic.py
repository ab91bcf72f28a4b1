"""A generated stand-in for the 15 Scene dataset, for offline use only.

When the real 15 Scene archive cannot be downloaded (no network in the exam
room, CI, a laptop on a train), the lab can still be run end to end on these
images. They are **generated**, not photographs: every folder carries a
``GENERATED.txt`` saying so, and results obtained on them say nothing about the
real data set.

The layout and file formats copy the real set so that the same loading code
runs unchanged::

    root/train/<class>/image_0001.jpg ... image_<n_train>.jpg
    root/test/<class>/image_<n_train+1>.jpg ... image_<n_train+n_test>.jpg

Each image is a single-channel (PIL mode ``"L"``) JPEG whose shorter side is
200-256 px and longer side 220-552 px, landscape or portrait, like the real
images. Each class ``k`` has a characteristic oriented sinusoidal grating and a
brightness gradient; every image jitters them and buries them in smooth random
noise of random contrast, so a classifier can learn something, but not
trivially.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .catalog import KNOWN_DATASETS
from .errors import DataError

#: The record the stand-in copies: its class names and its 100 train images per class.
SCENE = KNOWN_DATASETS["15scene"]

#: Test images per class of a full-size stand-in (the real set has 110-310; 20 keep it quick).
FULL_TEST_PER_CLASS = 20

#: Bumped whenever the drawing code changes, so an old cache is not mistaken
#: for the current output of the same parameters.
GENERATOR_VERSION = 1

#: Fixed JPEG settings: with the same libjpeg, same parameters give same bytes.
JPEG_QUALITY = 90

MARKER_NAME = "GENERATED.txt"
_PARAMS_PREFIX = "parameters: "

SHORT_SIDE = (200, 256)
LONG_SIDE = (220, 552)


class StandinMismatchError(DataError, ValueError):
    """The target folder exists but holds something other than what was asked.

    A ``ValueError`` (wrong argument for this folder) and a ``DataError`` (so the
    command line prints the message without a traceback).
    """


# --------------------------------------------------------------------------
# Drawing one image
# --------------------------------------------------------------------------

def class_signature(k: int) -> dict[str, float]:
    """The fixed visual signature of class index ``k`` (no randomness).

    Orientation and period are decorrelated (``7*k mod 15`` against ``k mod 5``)
    so classes that share an orientation differ in frequency and vice versa.
    """
    return {
        "angle": np.pi * ((7 * k) % 15) / 15.0,          # grating orientation, radians
        "period": 7.0 + 4.0 * (k % 5) + 1.5 * (k // 5),  # grating period, pixels
        "grad_angle": 2.0 * np.pi * k / 15.0,            # direction of brightening
        "level": 100.0 + 55.0 * ((k * 4) % 15) / 14.0,   # mean grey level
    }


def draw_size(rng: np.random.Generator) -> tuple[int, int]:
    """A random ``(width, height)`` with the real set's side-length ranges."""
    short = int(rng.integers(SHORT_SIDE[0], SHORT_SIDE[1] + 1))
    long = int(rng.integers(max(short, LONG_SIDE[0]), LONG_SIDE[1] + 1))
    # Most scene photographs are landscape; keep some portrait ones to exercise
    # resizing code on both orientations.
    return (long, short) if rng.random() < 0.75 else (short, long)


def _blob_basis(n: int, cells: int) -> np.ndarray:
    """``(n, cells)`` weights of ``cells`` evenly spaced Gaussian bumps over ``n`` pixels.

    Rows sum to one, so multiplying a coarse grid by these interpolates it smoothly.
    """
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    centres = np.linspace(0.0, 1.0, cells, dtype=np.float32)[None, :]
    weights = np.exp(-0.5 * ((t - centres) * np.float32((cells - 1) / 0.7)) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def add_smooth_noise(img: np.ndarray, rng: np.random.Generator, amplitude: float) -> None:
    """Add to ``img`` (in place) zero-mean noise of std ``amplitude`` that varies smoothly.

    The field is a coarse Gaussian grid interpolated with smooth bumps along
    each axis, i.e. a sum of ``cells`` row-times-column outer products. Its
    blobs survive downsampling, so it hides the class signal at every scale,
    not only at full resolution where pixel noise alone would average away.

    Why it is built this way:
    - mean and std are computed from the small factors (Gram matrices), not from
      the full image, saving three full-size passes per image; as the bump
      weights sum to one, the mean is removed by shifting ``cols`` alone;
    - the outer products are added one by one in plain numpy rather than as one
      full-size matrix product, which BLAS would spread over its own threads,
      fighting the writer's threads.
    """
    height, width = img.shape
    cells = int(rng.integers(3, 7))
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    rows = _blob_basis(height, cells)                                            # (height, cells)
    cols = (_blob_basis(width, cells)[:, :, None] * coarse.T[None]).sum(axis=1)  # (width, cells)
    # field[y, x] = sum_j rows[y, j] * cols[x, j]; its moments over the image:
    mean = float(rows.mean(axis=0) @ cols.mean(axis=0))
    mean_sq = float(((rows.T @ rows) * (cols.T @ cols)).sum()) / (height * width)
    std = np.sqrt(max(mean_sq - mean * mean, 1e-12))
    cols -= np.float32(mean)
    cols *= np.float32(amplitude / std)
    for j in range(cells):
        img += rows[:, j:j + 1] * cols[:, j]


def render_image(k: int, rng: np.random.Generator) -> Image.Image:
    """One mode-``"L"`` image of class ``k``, drawn with ``rng``.

    Every term is built from a row vector and a column vector combined by
    broadcasting (the grating via sin(a+b) = sin a cos b + cos a sin b), so only
    a handful of full-size float32 passes are made per image.
    """
    width, height = draw_size(rng)
    sig = class_signature(k)
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]

    # Grating: class orientation/period, jittered so no two images are alike.
    angle = sig["angle"] + rng.normal(0.0, np.deg2rad(6.0))
    period = sig["period"] * rng.uniform(0.9, 1.1)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    wx = np.float32(2.0 * np.pi * np.cos(angle) / period)
    wy = np.float32(2.0 * np.pi * np.sin(angle) / period)
    ax, by = wx * x, wy * y + np.float32(phase)
    amp = np.float32(35.0 * rng.uniform(0.25, 1.0))  # random contrast
    grating = (amp * np.sin(ax)) * np.cos(by) + (amp * np.cos(ax)) * np.sin(by)

    # Gradient in normalised coordinates, so it means the same after resizing.
    ga = sig["grad_angle"] + rng.normal(0.0, np.deg2rad(15.0))
    u = x / np.float32(max(width - 1, 1)) * 2 - 1
    v = y / np.float32(max(height - 1, 1)) * 2 - 1
    # -7.5 centres the grain added below.
    level = sig["level"] + rng.normal(0.0, 8.0) - 7.5
    base = np.float32(level) + np.float32(40.0 * np.cos(ga)) * u + np.float32(40.0 * np.sin(ga)) * v

    img = grating + base  # broadcasts to (height, width)
    add_smooth_noise(img, rng, rng.uniform(12.0, 35.0))
    # A little pixel noise, like sensor grain: uniform in 0..15 from raw random
    # bytes (several times cheaper than standard_normal), centred via ``level``.
    # Kept small because grain bloats JPEG files.
    img += np.frombuffer(rng.bytes(height * width), dtype=np.uint8).reshape(height, width) & 15
    np.clip(img, 0, 255, out=img)
    return Image.fromarray(img.astype(np.uint8))  # 2-D uint8 -> mode "L"


def image_seed(seed: int, k: int, number: int) -> list[int]:
    """Entropy for image ``number`` of class ``k``.

    Derived from the indices rather than drawn from one shared stream, so an
    image does not change when other classes or counts are added.
    """
    return [seed, k, number]


# --------------------------------------------------------------------------
# The data set on disk
# --------------------------------------------------------------------------

def _params(seed: int, n_train: int, n_test: int, classes: Sequence[str]) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "n_train": int(n_train),
        "n_test": int(n_test),
        "classes": list(classes),
    }


def _marker_text(params: dict) -> str:
    """Contents of ``GENERATED.txt``: loud for humans, one JSON line for us."""
    total = len(params["classes"]) * (params["n_train"] + params["n_test"])
    return (
        "GENERATED IMAGES -- NOT THE REAL 15 SCENE DATASET\n"
        "=================================================\n"
        "\n"
        "Every image below this folder was drawn by tplib.synthetic\n"
        "(sinusoidal gratings + brightness gradients + random noise). They are an\n"
        "offline stand-in that only lets the lab code run end to end. Accuracies\n"
        "measured on them say NOTHING about the real 15 Scene images.\n"
        "\n"
        f"seed: {params['seed']}\n"
        f"per class: {params['n_train']} train + {params['n_test']} test\n"
        f"classes: {len(params['classes'])}, images in all: {total}\n"
        "\n"
        f"{_PARAMS_PREFIX}{json.dumps(params, sort_keys=True)}\n"
    )


def read_marker(root: Path) -> dict | None:
    """The parameters recorded in ``root/GENERATED.txt``, or None if absent/unreadable."""
    try:
        text = (Path(root) / MARKER_NAME).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(_PARAMS_PREFIX):
            try:
                return json.loads(line[len(_PARAMS_PREFIX):])
            except ValueError:
                return None
    return None


def _jobs(n_train: int, n_test: int, classes: Sequence[str]) -> Iterator[tuple[str, int, str, int]]:
    """``(split, class index, class name, image number)`` for every image.

    Numbering continues from train into test within a class, as in the real set.
    """
    for k, name in enumerate(classes):
        for number in range(1, n_train + n_test + 1):
            yield ("train" if number <= n_train else "test"), k, name, number


def _progress(iterable, total: int, enabled: bool):
    """Wrap in a tqdm bar when asked and available; a missing tqdm is not an error."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc="generating stand-in images", unit="img")


def _write_one(tmp: Path, params: dict, job: tuple[str, int, str, int]) -> None:
    """Draw and save one image; its seed depends only on (seed, class, number)."""
    split, k, name, number = job
    rng = np.random.default_rng(image_seed(params["seed"], k, number))
    path = tmp / split / name / f"image_{number:04d}.jpg"
    # Plain baseline encoding at a fixed quality: no option whose output depends
    # on anything but the pixels, so re-runs give the same bytes.
    render_image(k, rng).save(path, "JPEG", quality=JPEG_QUALITY)


def _write_all(tmp: Path, params: dict, progress: bool) -> None:
    """Draw every image into ``tmp`` and write the marker last.

    A few threads overlap file creation and JPEG encoding (both release the
    GIL); results do not depend on scheduling since every image has its own seed.
    """
    classes = params["classes"]
    for split in ("train", "test"):
        for name in classes:
            (tmp / split / name).mkdir(parents=True, exist_ok=True)
    total = len(classes) * (params["n_train"] + params["n_test"])
    jobs = _jobs(params["n_train"], params["n_test"], classes)
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(lambda job: _write_one(tmp, params, job), jobs)
        for _ in _progress(done, total, progress):
            pass  # consuming the iterator also re-raises any worker's exception
    (tmp / MARKER_NAME).write_text(_marker_text(params), encoding="utf-8")


def _check_existing(root: Path, params: dict) -> bool:
    """True if ``root`` already holds this exact stand-in; raise if it holds anything else.

    An empty folder is accepted (and removed) so a pre-created target works.
    """
    if not root.exists():
        return False
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
        return False
    found = read_marker(root)
    if found == params:
        return True
    if found is None:
        why = f"it exists and has no readable {MARKER_NAME} (real data?); not overwriting it"
    else:
        why = f"it holds a generated stand-in with other parameters {found}"
    raise StandinMismatchError(
        f"Cannot generate the 15 Scene stand-in in {root}: {why}. "
        f"Asked for {params}. Pick another folder or delete this one."
    )


def generate_scene_standin(
    root: str | os.PathLike,
    *,
    n_train: int = SCENE.train_per_class,
    n_test: int = FULL_TEST_PER_CLASS,
    seed: int = 0,
    classes: Sequence[str] = SCENE.classes,
    progress: bool = False,
) -> Path:
    """Write a generated stand-in for 15 Scene under ``root`` and return ``root``.

    Layout: ``root/{train,test}/<class>/image_NNNN.jpg`` plus ``root/GENERATED.txt``.
    Deterministic: the same arguments give byte-identical files with the same
    numpy, Pillow/libjpeg and CPU family (numpy's vectorised sin/exp may round
    differently on another instruction set, so do not pin checksums in tests
    across machines; compare two runs instead). Idempotent: if ``root`` already holds the same stand-in it is
    returned untouched. Atomic: images are drawn into ``<root>.tmp-<pid>`` and
    renamed into place only once complete, so an interrupted run leaves no
    half-filled ``root``.

    Raises ``ValueError`` (:class:`StandinMismatchError`) if ``root`` exists with
    different content.
    """
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"need n_train, n_test >= 0 and at least one image, got {n_train}, {n_test}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (numpy seeding), got {seed}")
    if n_train + n_test > 9999:
        raise ValueError("at most 9999 images per class (file names have 4 digits)")
    if isinstance(classes, str) or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct and non-empty, got {classes!r}")
    root = Path(root)
    params = _params(seed, n_train, n_test, classes)
    if _check_existing(root, params):
        return root

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # leftover of a crashed run with our pid
    try:
        _write_all(tmp, params, progress)
        try:
            os.replace(tmp, root)
        except OSError:
            # Another process finished first: fine if it made the same thing.
            if not _check_existing(root, params):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
