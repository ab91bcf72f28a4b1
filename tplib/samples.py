"""Freely licensed sample photos for predictions and activation maps (notebooks 02, 03).

The photos live in the checkout's ``assets/`` folder (attribution in
``assets/README.md``). Outside a checkout (a plain ``pip install``) they are
written once from scikit-image's sample data into tplib's cache.
"""
from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .paths import cache_dir

SAMPLE_NAMES = ("chelsea", "coffee", "rocket", "astronaut")
CHECKOUT_ASSETS = Path(__file__).resolve().parents[1] / "assets"


def sample_photos() -> dict[str, Path]:
    """{name: path to a JPEG} for chelsea (cat), coffee, rocket and astronaut."""
    if all((CHECKOUT_ASSETS / f"{n}.jpg").is_file() for n in SAMPLE_NAMES):
        return {n: CHECKOUT_ASSETS / f"{n}.jpg" for n in SAMPLE_NAMES}
    folder = cache_dir() / "samples"
    paths = {n: folder / f"{n}.jpg" for n in SAMPLE_NAMES}
    if all(p.is_file() for p in paths.values()):
        return paths
    try:
        from PIL import Image
        from skimage import data
    except ImportError as exc:
        raise DataError("sample photos need the checkout's assets/ folder or scikit-image "
                        "(pip install scikit-image)") from exc
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in paths.items():
        tmp = path.with_suffix(".tmp.jpg")
        Image.fromarray(getattr(data, name)()).save(tmp, quality=92)
        tmp.replace(path)
    return paths
