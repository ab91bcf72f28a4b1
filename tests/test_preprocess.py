"""Preprocessing equals the weights' own transforms; any image mode becomes 3 channels."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import VGG16_Weights
from torchvision.transforms import functional as TF

from tplib.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

WEIGHTS = VGG16_Weights.IMAGENET1K_V1


def _photo(w, h, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def test_numbers_come_from_the_weights():
    p = Preprocess.from_torchvision(WEIGHTS)
    assert p.mean == pytest.approx(IMAGENET_MEAN) and p.std == pytest.approx(IMAGENET_STD)
    assert (p.size, p.resize_size, p.interpolation) == (224, 256, "bilinear")


@pytest.mark.parametrize("size", [(224, 224), (300, 200), (257, 513)])
def test_crop_policy_equals_weights_transforms(size):
    img = _photo(*size)
    ours = Preprocess.from_torchvision(WEIGHTS, policy="crop")(img)
    theirs = WEIGHTS.transforms()(img)
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_square_policy_on_224_is_plain_normalisation():
    """On a 224x224 image the lab's resize is the identity: only (x/255 - mean)/std."""
    img = _photo(224, 224)
    ours = Preprocess.from_torchvision(WEIGHTS)(img)
    x = TF.to_tensor(img)
    expected = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(ours, expected, atol=1e-6)
    # and it equals the weights' transform's normalisation step on that same tensor
    t = WEIGHTS.transforms()
    assert torch.allclose(ours, TF.normalize(x, t.mean, t.std), atol=1e-6)


def test_square_policy_keeps_the_whole_image():
    p = Preprocess.from_torchvision(WEIGHTS)
    img = Image.new("RGB", (400, 200), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 40, 200))  # a white strip at the far left
    x = p.to_uint8(img)
    assert x.shape == (3, 224, 224)
    assert x[:, :, :10].float().mean() > 200  # still there: nothing cropped away
    assert p.with_policy("crop").to_uint8(img)[:, :, :10].float().mean() < 50


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA", "I;16"])
def test_any_mode_gives_the_rgb_tensor_of_its_composited_image(mode):
    """Each mode equals torchvision's transforms of the RGB image a viewer would show."""
    base = _photo(64, 48, "RGB")
    img = base.convert("L").convert(mode) if mode in ("LA", "I;16") else base.convert(mode)
    if mode == "I;16":  # 8-bit grey scaled to 16 bits: scaling back must give the grey image
        img = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
        reference = base.convert("L").convert("RGB")
    elif mode in ("RGBA", "LA"):  # fully opaque here: compositing changes nothing
        reference = img.convert("RGB")
    else:
        reference = img.convert("RGB")
    p = Preprocess.from_torchvision(WEIGHTS)
    x = p(img)
    expected = TF.normalize(TF.to_tensor(TF.resize(reference, [224, 224], antialias=True)),
                            IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x, expected, atol=1e-6)


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red
    x = Preprocess(mean=(0.0,) * 3, std=(1.0,) * 3).to_uint8(img)
    assert int(x.min()) == 255  # white, not the hidden red


def test_grayscale_gives_three_equal_channels():
    x = Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3).to_uint8(_photo(64, 64, "L"))
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("policy", ["square", "crop"])
@pytest.mark.parametrize("size", [(64, 64), (300, 200), (257, 513)])
def test_grayscale_fast_path_gives_the_same_bytes_as_rgb(interpolation, policy, size):
    """An "L" image is resized as one channel and copied: identical to resizing RGB."""
    gray = _photo(*size, "L", seed=size[0])
    p = Preprocess(interpolation=interpolation, policy=policy)
    fast, slow = p.to_uint8(gray), p.to_uint8(gray.convert("RGB"))
    assert fast.shape == (3, 224, 224) and fast.is_contiguous()
    assert torch.equal(fast, slow)


def test_timm_config_matches_timm_transform(lite0):
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, model=lite0.model)
    ours = lite0.preprocess.with_policy("crop")
    assert ours.interpolation == "bicubic" and ours.mean == (0.5, 0.5, 0.5)
    img = _photo(320, 240)
    theirs = create_transform(**cfg)(img)
    assert torch.allclose(ours(img), theirs, atol=1e-5)


@pytest.mark.parametrize("size", [(3584, 224), (1000, 63)])
def test_crop_policy_equals_weights_transforms_up_to_the_aspect_bound(size):
    """Up to MAX_CROP_ASPECT (16:1) the full resize runs, exactly as torchvision's."""
    from tplib.preprocess import MAX_CROP_ASPECT

    img = _photo(*size)
    assert max(size) / min(size) <= MAX_CROP_ASPECT
    p = Preprocess.from_torchvision(WEIGHTS, policy="crop")
    assert p._crop_box(*size) is None
    assert torch.equal(p(img), WEIGHTS.transforms()(img))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(5000, 60), (60, 5000), (4101, 17), (3000, 7)])
def test_a_very_thin_image_is_cropped_from_the_box_with_the_same_pixels(size, interpolation):
    """The crop resampled from its box in the original equals the crop of the full resize
    up to the rounding between the two passes of the resampling (on random noise, the worst
    case: under half a grey level on average, fewer than 5% of the values off by more than 1)."""
    from torchvision.transforms import InterpolationMode

    img = _photo(*size)
    p = Preprocess(policy="crop", interpolation=interpolation)
    assert p._crop_box(*size) is not None
    ours = np.asarray(p.resize(img), dtype=np.int16)
    mode = InterpolationMode(interpolation)
    full = TF.center_crop(TF.resize(img, 256, interpolation=mode, antialias=True), [224, 224])
    diff = np.abs(ours - np.asarray(full, dtype=np.int16))
    assert ours.shape == (224, 224, 3) and diff.mean() < 0.5 and (diff > 1).mean() < 0.05


def test_a_20000x1_strip_never_makes_the_full_resized_copy(monkeypatch, tmp_path):
    """Before: 20000x1 -> 5,120,000x256 pixels (3.9 GB) before the crop; now only the crop."""
    import tplib.preprocess as pp

    def refuse(img, size, **kw):
        raise AssertionError(f"full resize of a {img.size} image to {size}")

    monkeypatch.setattr(pp.TF, "resize", refuse)
    row = np.linspace(0, 255, 20000).astype(np.uint8)[None, :, None].repeat(3, axis=2)
    path = tmp_path / "strip.png"
    Image.fromarray(row).save(path)
    assert path.stat().st_size < 100_000
    for img in (Image.open(path), Image.open(path).transpose(Image.Transpose.ROTATE_90)):
        x = Preprocess(policy="crop").to_uint8(img.convert("RGB"))
        assert x.shape == (3, 224, 224)
        # the centre of a left-to-right ramp: grey levels around 127, one value per column
        assert 120 <= int(x.float().mean()) <= 135
