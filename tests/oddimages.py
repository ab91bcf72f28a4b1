"""Write every awkward image file a student's folder may contain (a test helper).

Not a test module: tests import :func:`make_odd_images` and
:func:`make_stray_files` to build a messy folder in ``tmp_path`` and check that
the loaders decode what can be decoded, reject the rest with a clear error, and
skip files that are not images at all.

Each case records ``decodable_expected``: whether a robust loader should turn
the file into an RGB image. "Robust" means: format sniffed from content (not
the extension), EXIF orientation applied, 16-bit scaled rather than clipped,
transparency composited; but truncated or corrupt data is an error (PIL's
default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``), never silently padded.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

#: EXIF tag number of "Orientation"; value 6 means "rotate 90 degrees clockwise to view".
EXIF_ORIENTATION = 0x0112

#: Stored (not displayed) size of ``exif_orientation_6.jpg``; displayed it is 20x40.
EXIF_STORED_SIZE = (40, 20)


def _rng() -> np.random.Generator:
    # Fixed seed: the same files every run, so a failure reproduces.
    return np.random.default_rng(1234)


def _noise_rgb(width: int, height: int) -> Image.Image:
    """Random RGB pixels: incompressible, so a JPEG of them is long enough to cut."""
    arr = _rng().integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def _gradient_rgb(width: int, height: int) -> Image.Image:
    """A smooth colour image (a gradient), cheap to compress at any size."""
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    r = np.broadcast_to(xs, (height, width))
    g = np.broadcast_to(ys, (height, width))
    b = np.full((height, width), 128, np.float32)
    return Image.fromarray(np.stack([r, g, b], axis=-1).astype(np.uint8))


def _jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Decodable cases: each writer saves one file at ``path``.
# --------------------------------------------------------------------------

def _gray_l(path: Path) -> None:
    _gradient_rgb(64, 48).convert("L").save(path, "JPEG")


def _rgba_transparent(path: Path) -> None:
    img = _gradient_rgb(64, 48).convert("RGBA")
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255  # left half fully transparent: naive convert shows hidden colour
    img.putalpha(Image.fromarray(alpha))
    img.save(path, "PNG")


def _palette(path: Path) -> None:
    _gradient_rgb(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path, "PNG")


def _palette_transparency(path: Path) -> None:
    img = _gradient_rgb(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(path, "PNG", transparency=0)  # palette index 0 is see-through


def _cmyk(path: Path) -> None:
    # Pillow writes CMYK JPEGs Adobe-style (inverted); loaders must convert, not reinterpret.
    _gradient_rgb(64, 48).convert("CMYK").save(path, "JPEG", quality=90)


def _gray16(path: Path) -> None:
    # Full 0..65535 range: Image.convert("RGB") clips every value > 255 to white,
    # so a loader that does only that returns an almost all-white picture.
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).round().astype(np.uint16)
    img = Image.fromarray(ramp)  # uint16 2-D -> mode "I;16"
    assert img.mode == "I;16", img.mode
    img.save(path, "PNG")


def _exif_orientation_6(path: Path) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    # Left half red, right half blue, so a test can also check the rotation direction.
    arr = np.zeros((EXIF_STORED_SIZE[1], EXIF_STORED_SIZE[0], 3), np.uint8)
    arr[:, : EXIF_STORED_SIZE[0] // 2, 0] = 255
    arr[:, EXIF_STORED_SIZE[0] // 2 :, 2] = 255
    Image.fromarray(arr).save(path, "JPEG", quality=95, exif=exif)


def _tiny(path: Path) -> None:
    Image.new("RGB", (1, 1), (200, 30, 30)).save(path, "JPEG")


def _huge_strip(path: Path) -> None:
    # 3 Mpx: far below Pillow's decompression-bomb limit, but an extreme aspect ratio.
    _gradient_rgb(10000, 300).save(path, "JPEG", quality=80)


def _gray_la(path: Path) -> None:
    img = _gradient_rgb(64, 48).convert("LA")
    img.save(path, "PNG")


def _plain_rgb_jpeg(path: Path) -> None:
    _gradient_rgb(64, 48).save(path, "JPEG")


def _png_named_jpg(path: Path) -> None:
    _gradient_rgb(64, 48).save(path, "PNG")  # explicit format: the extension lies


# --------------------------------------------------------------------------
# Undecodable cases
# --------------------------------------------------------------------------

def _truncated(path: Path) -> None:
    data = _jpeg_bytes(_noise_rgb(200, 200))
    # 60% of a noise JPEG cuts deep inside the entropy-coded scan: Image.open
    # still succeeds (the header is intact) but load() raises OSError.
    path.write_bytes(data[: int(len(data) * 0.6)])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("This is not an image, whatever its name says.\n", encoding="utf-8")


def _garbage(path: Path) -> None:
    header = _jpeg_bytes(_noise_rgb(64, 64))[:200]
    # No 0xFF byte in the tail: without one no JPEG marker (SOF, SOS...) can be
    # found after the header, whatever the random draw, so decoding must fail.
    tail = _rng().integers(0, 255, size=4000, dtype=np.uint8).tobytes()
    path.write_bytes(header + tail)


#: file name -> (writer, decodable_expected)
CASES: dict[str, tuple[Callable[[Path], None], bool]] = {
    "gray_L.jpg": (_gray_l, True),
    "rgba_transparent.png": (_rgba_transparent, True),
    "palette_P.png": (_palette, True),
    "palette_P_transparency.png": (_palette_transparency, True),
    "cmyk.jpg": (_cmyk, True),
    "gray16_I16.png": (_gray16, True),
    "exif_orientation_6.jpg": (_exif_orientation_6, True),
    "tiny_1x1.jpg": (_tiny, True),
    "huge_10000x300.jpg": (_huge_strip, True),
    "gray_alpha_LA.png": (_gray_la, True),
    "upper_case_extension.JPG": (_plain_rgb_jpeg, True),
    "café au lait ü.jpg": (_plain_rgb_jpeg, True),
    "png_content_named.jpg": (_png_named_jpg, True),
    "truncated.jpg": (_truncated, False),
    "empty.jpg": (_empty, False),
    "not_an_image.jpg": (_text, False),
    "garbage.jpg": (_garbage, False),
}


def make_odd_images(folder: str | Path) -> dict[str, bool]:
    """Write one file per odd case into ``folder`` (created) and return ``{name: decodable_expected}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (write, _) in CASES.items():
        write(folder / name)
    return {name: expected for name, (_, expected) in CASES.items()}


#: Relative names written by :func:`make_stray_files`.
STRAY_FILES = (".DS_Store", "Thumbs.db", "README.txt", "notes.md", ".ipynb_checkpoints/x.jpg")


def make_stray_files(folder: str | Path) -> list[str]:
    """Write files a loader should ignore (OS droppings, notes, a hidden folder).

    ``.ipynb_checkpoints/x.jpg`` is a *valid* JPEG on purpose: it must be skipped
    because its folder is hidden, not because it fails to decode.
    Returns the relative (POSIX) names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))  # Finder's magic
    (folder / "Thumbs.db").write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(64))  # OLE2 magic
    (folder / "README.txt").write_text("Images of my holidays.\n", encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\n- check the kitchen class\n", encoding="utf-8")
    (folder / ".ipynb_checkpoints").mkdir(exist_ok=True)
    _plain_rgb_jpeg(folder / ".ipynb_checkpoints" / "x.jpg")
    return list(STRAY_FILES)


def pil_can_load(path: str | Path) -> bool:
    """Whether plain PIL (``open`` + ``load``) decodes ``path``, truncated files refused.

    Forces ``LOAD_TRUNCATED_IMAGES = False`` for the call, since another test or
    library may have switched it on globally.
    """
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except (OSError, SyntaxError, ValueError):
        # UnidentifiedImageError and "image file is truncated" are OSErrors;
        # a few plugins raise SyntaxError/ValueError on broken headers.
        return False
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
