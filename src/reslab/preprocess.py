"""Evaluation preprocessing shared by predict, eval and embedding: resize, centre crop, normalise.

Pillow for the geometry, NumPy/PyTorch for the arithmetic. The training-time augmentations live in
`reslab.data.transforms`; they reuse these primitives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is imported where tensors are made: loading a config or a manifest needs none
    import torch

INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def resize_shorter(img: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        new = (size, max(1, round(h * size / w)))
    else:
        new = (max(1, round(w * size / h)), size)
    # reducing_gap: Pillow first shrinks by an integer factor (cheap box filter), then resamples
    # the rest; faithful to a direct resize to within a grey level, and much faster on big photos.
    return img.resize(new, INTERPOLATIONS[interpolation], reducing_gap=3.0)


def resize_center_crop(img: Image.Image, resize: int, crop: int, interpolation: str = "bilinear") -> Image.Image:
    """`center_crop(resize_shorter(img, resize), crop)`, framed on the picture `img` was decoded from.

    An image that `load_image` decoded at a reduced scale (a large JPEG) is cropped exactly where
    the full decode would be: the geometry (resized size, crop offsets) comes from the full size and
    the crop's box is mapped onto the reduced pixels, so the reduced decode changes pixel values,
    never the framing. Framing it by its own rounded size instead shifts the crop by up to a pixel,
    which moved EfficientNet-Lite0 embeddings of detailed photos to cosine 0.98 (docs/inference.md).
    Any other image takes the plain path, bit for bit.
    """
    from .imageio import draft_scale, full_size

    scale = draft_scale(img)
    if scale == 1 or resize < crop:
        return center_crop(resize_shorter(img, resize, interpolation), crop)
    w, h = full_size(img)
    if w <= h:
        new_w, new_h = resize, max(1, round(h * resize / w))
    else:
        new_w, new_h = max(1, round(w * resize / h)), resize
    sx, sy = w / new_w / scale, h / new_h / scale  # reduced pixels per resized pixel
    left, top = round((new_w - crop) / 2), round((new_h - crop) / 2)  # center_crop's offsets
    box = (left * sx, top * sy, min(img.width, (left + crop) * sx), min(img.height, (top + crop) * sy))
    return img.resize((crop, crop), INTERPOLATIONS[interpolation], box=box, reducing_gap=3.0)


def normalize_pixels(pixels: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (B, H, W, C) pixels -> normalised float32 (B, C, H, W), in one pass per channel.

    Equal to `(pixels / 255 - mean) / std` to float32 rounding; about 7x faster than the NumPy
    expression (which allocates five full-size float arrays), which matters when the network
    itself runs at hundreds of images/s.
    """
    b, h, w, c = pixels.shape
    scale = (1.0 / (255.0 * np.asarray(std[:c], np.float64))).astype(np.float32)
    shift = (-np.asarray(mean[:c], np.float64) / np.asarray(std[:c], np.float64)).astype(np.float32)
    out = np.empty((b, c, h, w), np.float32)
    for channel in range(c):
        plane = out[:, channel]
        np.multiply(pixels[..., channel], scale[channel], out=plane, casting="unsafe")
        plane += shift[channel]
    return out


def center_crop(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    th, tw = (size, size) if isinstance(size, int) else size
    w, h = img.size
    left, top = round((w - tw) / 2), round((h - th) / 2)
    return img.crop((left, top, left + tw, top + th))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL -> float tensor (C, H, W) on [0, 1]."""
    import torch

    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.transpose(2, 0, 1).copy()).float().div_(255.0)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    import torch

    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


@dataclass(frozen=True)
class EvalPreprocess:
    """Resize the shorter side to `resize`, centre-crop `crop`, scale to [0, 1], normalise."""

    crop: int = 224
    resize: int = 256
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    channels: int = 3

    @classmethod
    def for_model(cls, name: str, crop: int | None = None) -> "EvalPreprocess":
        from .models import model_entry

        e = model_entry(name)
        c = crop or e.input_size[1]
        # keep the model's crop ratio when another crop size is asked for
        resize = round(e.resize * c / e.input_size[1])
        return cls(crop=c, resize=resize, mean=e.mean, std=e.std, interpolation=e.interpolation, channels=e.input_size[0])

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = img.convert("RGB" if self.channels == 3 else "L")
        img = resize_center_crop(img, self.resize, self.crop, self.interpolation)
        return normalize(to_tensor(img), self.mean[: self.channels], self.std[: self.channels])

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
