"""Robust decoding: every decodable odd file becomes upright 8-bit RGB, the rest fail clearly."""
import numpy as np
import pytest
from oddimages import make_odd_images

from tplib.errors import ImageError
from tplib.images import is_image_file, load_image, load_rgb
from tplib.preprocess import Preprocess


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return folder, make_odd_images(folder)


def test_every_case_decodes_or_fails_as_expected(odd):
    folder, expected = odd
    assert sum(expected.values()) >= 12 and sum(not v for v in expected.values()) >= 4
    for name, decodable in expected.items():
        path = folder / name
        if decodable:
            img = load_rgb(path)
            assert img.mode == "RGB", name
        else:
            with pytest.raises(ImageError) as err:
                load_rgb(path)
            assert str(path) in str(err.value), name


def test_extraction_decoding_equals_rgb_decoding(odd):
    """load_image keeps plain grayscale as "L"; after preprocessing, the bytes equal load_rgb's."""
    import torch

    folder, expected = odd
    pre = Preprocess(interpolation="bicubic")
    modes = set()
    for name, decodable in expected.items():
        if decodable:
            img = load_image(folder / name)
            modes.add(img.mode)
            assert img.mode in ("L", "RGB"), name
            assert torch.equal(pre.to_uint8(img), pre.to_uint8(load_rgb(folder / name))), name
        else:
            with pytest.raises(ImageError):
                load_image(folder / name)
    assert modes == {"L", "RGB"}


@pytest.mark.parametrize("name,reason", [("empty.jpg", "empty file"),
                                         ("not_an_image.jpg", "not an image"),
                                         ("truncated.jpg", "truncated or corrupt"),
                                         ("garbage.jpg", "truncated or corrupt")])
def test_failure_reasons(odd, name, reason):
    folder, _ = odd
    with pytest.raises(ImageError, match=reason):
        load_rgb(folder / name)


def test_16_bit_is_scaled_not_clipped(odd):
    folder, _ = odd
    arr = np.asarray(load_rgb(folder / "gray16_I16.png"))
    # a 0..65535 gradient must span the 8-bit range, not turn white
    assert arr.min() < 20 and arr.max() > 235 and 80 < arr.mean() < 175


def test_exif_orientation_is_applied(odd):
    folder, _ = odd
    img = load_rgb(folder / "exif_orientation_6.jpg")
    assert img.size == (20, 40)  # stored 40x20, displayed rotated


def test_transparency_is_composited_on_white(odd):
    folder, _ = odd
    arr = np.asarray(load_rgb(folder / "rgba_transparent.png"))
    assert (arr.reshape(-1, 3) == 255).all(axis=1).any()  # transparent pixels show white


def test_extremes_and_names(odd):
    folder, _ = odd
    assert load_rgb(folder / "tiny_1x1.jpg").size == (1, 1)
    assert load_rgb(folder / "huge_10000x300.jpg").size == (10000, 300)
    assert load_rgb(folder / "café au lait ü.jpg").mode == "RGB"
    assert is_image_file("x.JPG") and is_image_file("a.jpeg") and not is_image_file("Thumbs.db")
