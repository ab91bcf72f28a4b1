"""Decoding image files into RGB images, robustly.

Users point the lab at folders they made by hand: grayscale scans, PNGs with alpha,
palette GIFs, CMYK JPEGs from print workflows, 16-bit PNGs from cameras, phone photos
whose orientation lives in EXIF, truncated downloads. :func:`load_rgb` turns every
decodable file into an 8-bit RGB ``PIL.Image`` and raises :class:`ImageError` with a
one-line reason for the rest, so callers can skip and list them instead of crashing.

:func:`load_image_from` takes a file path or a URL (notebook 02's "your own photo"),
:func:`image_from_bytes` an upload.

Taught in notebook 02 (ImageNet prediction) and 04 (grayscale -> 3 channels).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

#: File extensions treated as images (compared lower-case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

# Checked before decoding (Pillow's own limit, ~179 Mpx, is left as the caller set it);
# anything this big is not a photo for this lab.
MAX_PIXELS = 60_000_000


def is_image_file(path: str | os.PathLike) -> bool:
    """True if the file name has an image extension (the content is checked on load)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth modes (I;16, I, F) scaled to 8-bit 'L' by their value range.

    ``convert("RGB")`` would clip a 16-bit image to white: 0..65535 must map to 0..255.
    """
    arr = np.asarray(img)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
        top = 65535.0
    elif img.mode == "F":
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        arr = arr - lo
        top = (hi - lo) or 1.0
    else:
        top = 255.0
    scaled = np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled)  # 2-D uint8 -> mode "L"


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow image -> 8-bit RGB, with transparency composited on ``background``.

    Grayscale becomes three equal channels (what VGG16 expects; notebook 04, Q9).
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_8bit(img).convert("RGB")
    if img.mode == "P":
        # Palette images with a transparency entry become RGBA first so the
        # transparent colour is composited instead of showing its stored value.
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` into an upright 8-bit RGB image.

    Returns a fully loaded ``PIL.Image`` in mode RGB, EXIF orientation applied.
    Raises :class:`ImageError` naming the file and the reason (empty, truncated, not
    an image, too large) for anything that cannot be used.
    """
    return to_rgb(load_image(path))


def load_image(path: str | os.PathLike) -> Image.Image:
    """Like :func:`load_rgb`, but plain 8-bit grayscale stays one channel (mode "L").

    Every other mode becomes RGB exactly as in :func:`load_rgb`. Feature extraction uses
    this: resizing one channel and copying it three times gives the same bytes as
    resizing the RGB copy, at a third of the cost (15 Scene is all grayscale).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return _decode(path, path, size)


def _decode(source, label, size: int) -> Image.Image:
    """Open a path or a binary file object; RGB or 8-bit "L" image, or :class:`ImageError`."""
    path = label
    # Pillow's global settings are left alone: its pixel limit (MAX_IMAGE_PIXELS) is
    # checked here per image, and LOAD_TRUNCATED_IMAGES keeps the caller's choice
    # (False by default, so truncated files fail and are skipped).
    try:
        with Image.open(source) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: {img.width}x{img.height} pixels is too large "
                    f"(limit {MAX_PIXELS:,}); downscale it first"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            return img if img.mode == "L" else to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not an image Pillow can read ({size:,} bytes)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: truncated or corrupt image data ({exc})") from exc


# ------------------------------------------------------------------ notebook 02
#: Largest download accepted by :func:`load_image_from` (a photo, not a data set).
MAX_DOWNLOAD_BYTES = 40 * 1024 * 1024


def image_from_bytes(data: bytes, name: str = "uploaded image") -> Image.Image:
    """Decode the bytes of an image file (an upload, a download) into an RGB image.

    ``name`` only labels error messages. Same rules as :func:`load_rgb`; raises
    :class:`ImageError` with a one-line reason.
    """
    import io

    data = bytes(data)  # ipywidgets 8 hands uploads over as memoryview
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    return to_rgb(_decode(io.BytesIO(data), name, len(data)))


def load_image_from(source: str | os.PathLike, *, timeout: float = 15.0) -> Image.Image:
    """A photo of the student's choice: a file path or an http(s) URL -> RGB image.

    A URL is downloaded into memory (at most :data:`MAX_DOWNLOAD_BYTES`); ``timeout``
    bounds each network wait. Every failure raises a :class:`TplibError` whose message
    is one line saying what went wrong and what to do (notebook 02): no network, an
    HTTP error, a file that is missing or not an image.
    """
    from .errors import DownloadError

    text = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if not text or not str(text).strip():
        raise ImageError(f"give a file path or a URL, not {source!r}")
    text = str(text).strip()
    if not text.lower().startswith(("http://", "https://")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ImageError(f"{path}: no such file (give a path to an image file, or an http(s) URL)")
        return load_rgb(path)
    import urllib.error
    import urllib.request

    from .download import USER_AGENT, network_reason

    request = urllib.request.Request(text, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = network_reason(exc, timeout)
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the error page's socket
            hint = "Check the URL, or save the image and give its file path instead."
        else:
            hint = "No network here? Save the image and give its file path instead."
        raise DownloadError(f"could not download {text} ({reason}). {hint}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise DownloadError(f"{text} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB: not a photo "
                            "for this lab (download and shrink it first)")
    return image_from_bytes(data, text)
