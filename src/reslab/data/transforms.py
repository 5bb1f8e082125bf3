"""Per-image transforms for photos decoded on the fly (Pillow geometry, PyTorch arithmetic).

Every random transform takes a NumPy `Generator`: the loaders seed one per sample from
(seed, epoch, position), which makes every augmented image reproducible. The photometric
transforms (`color_jitter`, `pca_lighting`) take their factors explicitly and work on one image
(C, H, W) or a batch (B, C, H, W), so the batched in-memory path (`batch_augment`) shares them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..imageio import check_regular_file, draft_scale, load_image, reading_image, upright_size
from ..preprocess import center_crop, normalize, resize_center_crop, resize_shorter, to_tensor
from .config import DataConfig

# AlexNet's PCA colour augmentation: eigen-decomposition of ImageNet's RGB pixel covariance on a
# [0, 1] scale (the values of fb.resnet.torch, which the ResNet paper's training followed).
IMAGENET_PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
IMAGENET_PCA_EIGVEC = torch.tensor(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's convert("L")


# ------------------------------------------------------------------------------------- geometry


def random_crop(img: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return img.crop((left, top, left + size, top + size))


def random_hflip(img: Image.Image, rng: np.random.Generator, p: float = 0.5) -> Image.Image:
    return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < p else img


def scale_augment(img: Image.Image, rng: np.random.Generator, min_size: int = 256, max_size: int = 480, crop: int = 224) -> Image.Image:
    """The ResNet paper's ImageNet augmentation (geometry): shorter side drawn uniformly in
    [min_size, max_size], a random `crop` x `crop` crop, a horizontal flip half of the time."""
    side = int(rng.integers(min_size, max_size + 1))
    img = resize_shorter(img, side)
    return random_hflip(random_crop(img, crop, rng), rng)


def random_resized_crop_box(
    width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (left, top, w, h): 10 tries of an area fraction in
    `scale` and a log-uniform aspect ratio in `ratio`, then a centre crop with the ratio clamped."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(img: Image.Image, rng: np.random.Generator, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> Image.Image:
    left, top, w, h = random_resized_crop_box(*img.size, rng, scale, ratio)
    return img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h), reducing_gap=3.0)


def pad_crop_flip_reference(img: np.ndarray, pad: int, dy: int, dx: int, flip: bool, mode: str = "zeros") -> np.ndarray:
    """The paper's CIFAR augmentation on one (C, H, W) array, written plainly: pad `pad` pixels on
    each side (zeros, or mode="reflect"), take the H x W window at (dy, dx), mirror if `flip`."""
    c, h, w = img.shape
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="reflect" if mode == "reflect" else "constant")
    out = padded[:, dy : dy + h, dx : dx + w]
    return np.ascontiguousarray(out[:, :, ::-1] if flip else out)


# test-time views whose probabilities are not averaged uniformly (the others: uniform)
VIEW_WEIGHTS = {"flip_shift": (0.25, 0.25, 0.125, 0.125, 0.125, 0.125)}


def flip_shift_views(x: torch.Tensor) -> list[torch.Tensor]:
    """airbench's test-time views of a (B, C, H, W) batch: the image and its mirror, then both of the
    image moved one pixel up-left and one pixel down-right (reflected border); weights VIEW_WEIGHTS."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., 0:h, 0:w], padded[..., 2 : h + 2, 2 : w + 2]
    return [x, x.flip(-1), up_left, up_left.flip(-1), down_right, down_right.flip(-1)]


def ten_crop(img: Image.Image, size: int) -> list[Image.Image]:
    """torchvision's TenCrop order: four corners and the centre, then the same of the mirror image."""
    w, h = img.size
    boxes = [(0, 0), (w - size, 0), (0, h - size), (w - size, h - size)]
    crops = [img.crop((x, y, x + size, y + size)) for x, y in boxes] + [center_crop(img, size)]
    mirror = img.transpose(Image.FLIP_LEFT_RIGHT)
    crops += [mirror.crop((x, y, x + size, y + size)) for x, y in boxes] + [center_crop(mirror, size)]
    return crops


# ----------------------------------------------------------------------------------- photometric


def _per_sample(v, x: torch.Tensor) -> torch.Tensor:
    # a factor per image: a scalar for one image (C, H, W), (B,) for a batch (B, C, H, W)
    v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return v.reshape(-1, 1, 1, 1) if x.dim() == 4 else v.reshape(1, 1, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-3] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


def color_jitter(x: torch.Tensor, brightness, contrast, saturation) -> torch.Tensor:
    """Brightness, contrast, saturation (in that order) with the given factors (1 = unchanged),
    as torchvision's adjust_* functions; x on [0, 1], one image (C,H,W) or a batch with (B,) factors."""
    x = (x * _per_sample(brightness, x)).clamp_(0, 1)
    mean = _grey(x).mean(dim=(-3, -2, -1), keepdim=True)
    c = _per_sample(contrast, x)
    x = (x * c + mean * (1 - c)).clamp_(0, 1)
    if x.shape[-3] == 3:
        s = _per_sample(saturation, x)
        x = (x * s + _grey(x) * (1 - s)).clamp_(0, 1)
    return x


def adjust_hue(x: torch.Tensor, shift) -> torch.Tensor:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5]) through HSV, as torchvision's adjust_hue.

    x: RGB on [0, 1], (3, H, W) or (B, 3, H, W) with a (B,) shift.
    """
    r, g, b = x.unbind(dim=-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    v = maxc
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    shift = torch.as_tensor(shift, dtype=x.dtype, device=x.device)
    h = (h + (shift.reshape(-1, 1, 1) if x.dim() == 4 else shift)) % 1.0
    # HSV -> RGB: the six sectors of the colour wheel
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = [torch.zeros_like(v) for _ in range(3)]
    for sector, rgb in enumerate(choices):
        mask = i == sector
        for c in range(3):
            out[c] = torch.where(mask, rgb[c], out[c])
    return torch.stack(out, dim=-3)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma replicated over the channels (torchvision's RandomGrayscale keeps 3 channels)."""
    return _grey(x).expand_as(x).contiguous()


def solarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the pixels at or above `threshold` (x on [0, 1]), as BYOL's augmentation."""
    return torch.where(x >= threshold, 1.0 - x, x)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image of a batch (B, C, H, W) with its own sigma (B,): a separable grouped
    convolution with reflected borders, as torchvision's GaussianBlur."""
    b, c, h, w = x.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma.to(x.device, x.dtype)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k)
    flat = x.reshape(1, b * c, h, w)
    flat = torch.nn.functional.pad(flat, (radius, radius, 0, 0), mode="reflect")
    flat = torch.nn.functional.conv2d(flat, kernel[:, None, None, :], groups=b * c)
    flat = torch.nn.functional.pad(flat, (0, 0, radius, radius), mode="reflect")
    flat = torch.nn.functional.conv2d(flat, kernel[:, None, :, None], groups=b * c)
    return flat.view(b, c, h, w)


def pca_lighting(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """AlexNet's PCA colour augmentation: add eigvec @ (alpha * eigval) to every pixel.

    x: RGB on [0, 1], (3, H, W) or (B, 3, H, W); alpha: (3,) or (B, 3), drawn from N(0, std^2).
    """
    eigval = IMAGENET_PCA_EIGVAL.to(x.device, x.dtype)
    eigvec = IMAGENET_PCA_EIGVEC.to(x.device, x.dtype)
    rgb = (alpha.to(x.device, x.dtype) * eigval) @ eigvec.T  # rgb[i] = sum_j eigvec[i, j] alpha[j] eigval[j]
    return x + rgb[..., :, None, None]


# ---------------------------------------------------------------------------- occlusion

ERASE_SCALE = (0.02, 1 / 3)  # erased area as a fraction of the image (Zhong et al. 2017, timm, DeiT)
ERASE_RATIO = (0.3, 1 / 0.3)  # its aspect ratio h / w, drawn log-uniformly


def random_erasing(x: torch.Tensor, draws: torch.Tensor, p: float) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability p per image, one rectangle set to 0, the
    dataset mean once normalised ("const" mode). x: normalised (B, C, H, W) or (C, H, W);
    draws: (B, 5) or (5,) uniforms on [0, 1): apply, area, ratio, top, left."""
    single = x.dim() == 3
    xb, u = (x[None], draws.reshape(1, 5)) if single else (x, draws)
    _, _, height, width = xb.shape
    u = u.to(xb.device, torch.float32)
    area = height * width * (ERASE_SCALE[0] + (ERASE_SCALE[1] - ERASE_SCALE[0]) * u[:, 1])
    log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 2])
    h = torch.sqrt(area * aspect).round().clamp(1, height)
    w = torch.sqrt(area / aspect).round().clamp(1, width)
    top = torch.floor(u[:, 3] * (height - h + 1))
    left = torch.floor(u[:, 4] * (width - w + 1))
    rows = torch.arange(height, device=xb.device)[None, :]
    cols = torch.arange(width, device=xb.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & (u[:, 0] < p)[:, None, None])[:, None]  # (B, 1, H, W)
    out = xb.masked_fill(mask, 0.0)
    return out[0] if single else out


# ---------------------------------------------------------------------------- file pipelines


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) of the upright picture (as `load_image` returns it) from the header only;
    a file Pillow cannot identify is a BadImageError."""
    with reading_image(path):
        check_regular_file(path)
        with Image.open(path) as im:
            return upright_size(im)


# Random augmentations decode a big JPEG at any reduced scale that still holds the pixels the crop
# needs (evaluation keeps imageio.DRAFT_MARGIN, for fidelity to the full decode).
AUGMENT_DRAFT_MARGIN = 1.0


class FileTrainTransform:
    """Decode one file and augment it as `cfg.augment` says; returns a normalised (C, H, W) tensor.

    Decoding is told the size the augmentation needs, so big JPEGs decode at 1/2, 1/4 or 1/8 scale
    (Pillow `draft`) whenever the crop still gets full resolution.
    """

    def __init__(self, cfg: DataConfig, mean, std):
        self.cfg, self.mean, self.std = cfg, tuple(mean), tuple(std)
        self.mode = "L" if cfg.channels == 1 else "RGB"

    def __call__(self, path: Path, rng: np.random.Generator) -> torch.Tensor:
        """(C, H, W); with `views = 2`, (2, C, H, W): two independent augmentations of the file."""
        if self.cfg.views == 1:
            return self._view(path, rng, 0)
        return torch.stack([self._view(path, rng, view) for view in range(self.cfg.views)])

    def _view(self, path: Path, rng: np.random.Generator, view: int) -> torch.Tensor:
        cfg, size = self.cfg, self.cfg.image_size
        if cfg.augment == "imagenet_paper":
            side = int(rng.integers(cfg.scale_min, cfg.scale_max + 1))
            img = resize_shorter(load_image(path, self.mode, min_size=side, margin=AUGMENT_DRAFT_MARGIN), side)
            img = random_crop(img, size, rng)
        elif cfg.augment == "rrc":
            width, height = image_size_of(path)
            left, top, w, h = random_resized_crop_box(width, height, rng, cfg.rrc_scale, cfg.rrc_ratio)
            # decode just large enough that the crop box still holds `size` pixels on its short side
            img = load_image(path, self.mode, min_size=math.ceil(min(width, height) * size / max(1, min(w, h))), margin=AUGMENT_DRAFT_MARGIN)
            sx = sy = 1 / draft_scale(img)  # a reduced decode: the box in its pixels
            box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
            img = img.resize((size, size), Image.BILINEAR, box=box, reducing_gap=3.0)
        elif cfg.augment == "cifar_paper":
            img = resize_center_crop(load_image(path, self.mode, min_size=size, margin=AUGMENT_DRAFT_MARGIN), size, size)
            a = np.asarray(img)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            pad = cfg.cifar_pad
            dy, dx = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
            a = pad_crop_flip_reference(a, pad, dy, dx, False, cfg.pad_mode)
            img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        else:  # none: the evaluation geometry
            resize = cfg.resolved_eval_resize
            img = resize_center_crop(load_image(path, self.mode, min_size=resize), resize, size)
        if cfg.hflip and cfg.augment != "none":
            img = random_hflip(img, rng)
        x = to_tensor(img)
        if cfg.color_jitter > 0 or cfg.hue > 0:
            jittered = x
            if cfg.color_jitter > 0:
                lo, hi = max(0.0, 1 - cfg.color_jitter), 1 + cfg.color_jitter
                jittered = color_jitter(jittered, *rng.uniform(lo, hi, size=3))
            if cfg.hue > 0 and x.shape[0] == 3:
                jittered = adjust_hue(jittered, rng.uniform(-cfg.hue, cfg.hue))
            x = jittered if cfg.jitter_p >= 1 or rng.random() < cfg.jitter_p else x
        if cfg.pca_lighting > 0 and x.shape[0] == 3:
            x = pca_lighting(x, torch.from_numpy(rng.normal(0.0, cfg.pca_lighting, size=3)))
        if cfg.grayscale_p > 0 or max(cfg.blur_p) > 0 or max(cfg.solarize_p) > 0:
            from .batch_augment import photometric_extras  # the batched path's code, on a batch of one

            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            x = photometric_extras(x[None], cfg, generator, view)[0]
        x = normalize(x, self.mean, self.std)
        if cfg.random_erasing > 0:
            x = random_erasing(x, torch.from_numpy(rng.random(5)), cfg.random_erasing)
        return x


class FileEvalTransform:
    """Resize the shorter side to eval_resize, centre-crop image_size, normalise; `views` adds TTA:
    "flip" -> (2, C, H, W), "ten_crop" -> (10, C, H, W) (crops of the resized image),
    "flip_shift" -> (6, C, H, W) (`flip_shift_views`)."""

    def __init__(self, cfg: DataConfig, mean, std, views: str | None = None):
        self.cfg, self.mean, self.std, self.views = cfg, tuple(mean), tuple(std), views
        self.mode = "L" if cfg.channels == 1 else "RGB"

    def __call__(self, path: Path, rng=None) -> torch.Tensor:
        resize, size = self.cfg.resolved_eval_resize, self.cfg.image_size
        img = load_image(path, self.mode, min_size=resize)
        if self.views == "ten_crop":
            img = resize_shorter(img, resize)
            return torch.stack([self._tensor(c) for c in ten_crop(img, size)])
        img = resize_center_crop(img, resize, size)
        if self.views == "flip":
            return torch.stack([self._tensor(img), self._tensor(img.transpose(Image.FLIP_LEFT_RIGHT))])
        if self.views == "flip_shift":
            return torch.stack(flip_shift_views(self._tensor(img)))
        return self._tensor(img)

    def _tensor(self, img: Image.Image) -> torch.Tensor:
        return normalize(to_tensor(img), self.mean, self.std)
