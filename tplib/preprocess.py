"""Turning an image into the tensor a pretrained network expects.

Two resize policies, both followed by scaling to [0, 1] and per-channel
normalisation with the weights' own mean and std:

- ``"square"`` (the lab's choice, used for feature extraction): resize the whole image
  to ``size x size``, ignoring its aspect ratio, so nothing is cropped away.
- ``"crop"`` (the weights' own evaluation transform, used for ImageNet prediction):
  resize the shorter side to ``resize_size``, then take the central ``size x size``.

The numbers always come from the weights (torchvision's ``weights.transforms()`` or
timm's data config), never hand-copied; with ``policy="crop"`` the output equals
``weights.transforms()`` exactly. Taught in notebook 02 (why normalise?).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .errors import OptionError
from .images import to_rgb

#: Longer side over shorter side beyond which policy "crop" resamples only the crop's box.
MAX_CROP_ASPECT = 16

_PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}

#: ImageNet statistics used by torchvision's weights (and by the lab's handout).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """PIL image -> normalised float32 tensor of shape (3, size, size).

    Attributes:
        size: side of the square network input (224 for VGG16).
        resize_size: shorter side before the centre crop (policy "crop" only).
        mean, std: per-channel normalisation, RGB order.
        interpolation: "bilinear" or "bicubic" (Pillow's, with antialiasing).
        policy: "square" (resize to size x size, the lab) or "crop".
        grayscale: convert every photo to 8-bit grayscale first (Pillow's "L", the
            luma 0.299 R + 0.587 G + 0.114 B); the network still gets 3 (equal)
            channels. For measuring what colour brings (notebook 06).
    """

    size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    policy: str = "square"
    grayscale: bool = False

    def __post_init__(self) -> None:
        if self.policy not in ("square", "crop"):
            raise OptionError(f"policy must be 'square' or 'crop', not {self.policy!r}")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise OptionError(f"unknown interpolation {self.interpolation!r}")

    @classmethod
    def from_torchvision(cls, weights, policy: str = "square") -> "Preprocess":
        """Numbers read from a torchvision ``Weights`` enum's ``transforms()``."""
        t = weights.transforms()
        return cls(
            size=int(t.crop_size[0]),
            resize_size=int(t.resize_size[0]),
            mean=tuple(float(v) for v in t.mean),
            std=tuple(float(v) for v in t.std),
            interpolation=t.interpolation.value,
            policy=policy,
        )

    @classmethod
    def from_timm_config(cls, cfg: dict, policy: str = "square") -> "Preprocess":
        """Numbers from ``timm.data.resolve_data_config({}, model=m)``."""
        size = int(cfg["input_size"][-1])
        return cls(
            size=size,
            resize_size=int(math.floor(size / float(cfg.get("crop_pct", 1.0)))),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            interpolation=str(cfg.get("interpolation", "bilinear")),
            policy=policy,
        )

    def with_policy(self, policy: str) -> "Preprocess":
        """The same numbers with another resize policy."""
        return replace(self, policy=policy)

    def with_grayscale(self, grayscale: bool = True) -> "Preprocess":
        """The same numbers, every photo converted to grayscale first (or not)."""
        return replace(self, grayscale=grayscale)

    def key(self) -> dict:
        """The settings as a plain dict, for cache keys (``grayscale`` only when on,
        so that keys made before it existed stay valid)."""
        d = asdict(self)
        if not d["grayscale"]:
            del d["grayscale"]
        return d

    def resize(self, img: Image.Image) -> Image.Image:
        """Geometric part only: RGB PIL image -> RGB PIL image of size x size.

        With policy "crop", an image so elongated that its resized copy would hold more
        than :data:`MAX_CROP_ASPECT` times the pixels of a square one (a 20000x1 strip
        would become 5,120,000x256 pixels, 3.9 GB) is resampled from the crop's box in
        the original instead: only the size x size output is computed, from the same
        source pixels and filter, so the work is bounded by the output, not the input.
        """
        mode = InterpolationMode(self.interpolation)
        if self.policy == "square":
            return TF.resize(img, [self.size, self.size], interpolation=mode, antialias=True)
        box = self._crop_box(*img.size)
        if box is not None:
            return img.resize((self.size, self.size), _PIL_FILTERS[self.interpolation], box=box)
        img = TF.resize(img, self.resize_size, interpolation=mode, antialias=True)
        return TF.center_crop(img, [self.size, self.size])

    def _crop_box(self, width: int, height: int) -> tuple[float, float, float, float] | None:
        """The centre crop's box in the original's pixels for a very elongated image, else None.

        The same arithmetic as torchvision's resize (shorter side to ``resize_size``, the
        longer one truncated) and centre crop (offsets rounded), mapped back to the original.
        """
        short, long = min(width, height), max(width, height)
        new_long = int(self.resize_size * long / short)
        if new_long <= MAX_CROP_ASPECT * self.resize_size or self.resize_size < self.size:
            return None
        new_w, new_h = (self.resize_size, new_long) if width <= height else (new_long, self.resize_size)
        left, top = int(round((new_w - self.size) / 2.0)), int(round((new_h - self.size) / 2.0))
        sx, sy = width / new_w, height / new_h
        return (left * sx, top * sy, (left + self.size) * sx, (top + self.size) * sy)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 tensor (..., 3, H, W) -> normalised float32 tensor, same shape."""
        x = x.float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return x.sub_(mean).div_(std)

    def to_uint8(self, img: Image.Image) -> torch.Tensor:
        """Any PIL image -> resized uint8 tensor (3, size, size), grayscale copied to 3 channels.

        Batches are kept as uint8 until they reach the model: 4x less to move
        between threads than float32. An 8-bit grayscale ("L") image is resized as one
        channel and then copied: the same bytes as resizing its RGB copy (Pillow
        resamples each channel alike), for a third of the work.
        """
        if self.grayscale and img.mode != "L":
            img = to_rgb(img).convert("L")
        if img.mode == "L":
            return TF.pil_to_tensor(self.resize(img)).expand(3, -1, -1).contiguous()
        return TF.pil_to_tensor(self.resize(to_rgb(img)))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Any PIL image -> float32 tensor (3, size, size), normalised."""
        return self.normalize(self.to_uint8(img))

    def describe(self) -> str:
        """One line for reports and notebooks."""
        geo = (
            f"resize to {self.size}x{self.size}"
            if self.policy == "square"
            else f"resize {self.resize_size} + centre crop {self.size}"
        )
        mean = ", ".join(f"{v:.3f}" for v in self.mean)
        std = ", ".join(f"{v:.3f}" for v in self.std)
        gray = ", converted to grayscale" if self.grayscale else ""
        return f"{geo} ({self.interpolation}){gray}, mean [{mean}], std [{std}]"
