"""Batched augmentation of decoded uint8 images, on the training device.

Small datasets (CIFAR, MNIST, 32x32 folders) live as one uint8 tensor (N, C, H, W). A per-image
Python loop of PIL transforms spends more time than a ResNet-20 step on a CPU; here a batch is
augmented with a handful of tensor ops. All random draws come from a CPU `torch.Generator` (the
same numbers on every device) and are then moved to the device.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..errors import ReslabError
from .config import DataConfig
from .transforms import adjust_hue, color_jitter, gaussian_blur, pca_lighting, random_erasing, solarize, to_grayscale


def draw_pad_crop_flip(n: int, pad: int, generator: torch.Generator, hflip: bool = True):
    """Per-image window offsets dy, dx in [0, 2*pad] and flips, each (n,) on the CPU."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5 if hflip else torch.zeros(n, dtype=torch.bool)
    return dy, dx, flip


def pad_crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int,
                  mode: str = "zeros") -> torch.Tensor:
    """The paper's CIFAR augmentation on a batch: pad (zeros, or a mirror of the border with
    mode="reflect"), crop the H x W window at (dy, dx), mirror where `flip`; one gather (crop and
    flip fused into the column index)."""
    b, c, h, w = x.shape
    if mode == "reflect" and pad >= min(h, w):
        raise ValueError(f"reflect padding of {pad} needs images larger than {pad} pixels, got {h}x{w}")
    dev = x.device
    dy, dx, flip = dy.to(dev, non_blocking=True), dx.to(dev, non_blocking=True), flip.to(dev, non_blocking=True)
    rows = dy[:, None] + torch.arange(h, device=dev)  # (B, H), in padded coordinates
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (B, W)
    if mode == "reflect":  # map padded coordinates back into the image: no padded copy at all
        rows, cols = _reflect(rows - pad, h), _reflect(cols - pad, w)
        plane, width = x, w
    else:
        plane, width = F.pad(x, (pad, pad, pad, pad)), w + 2 * pad
    # one flat gather over the plane: ~7x faster on a CPU than 4-tensor advanced indexing
    index = (rows[:, :, None] * width + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return plane.reshape(b, c, -1).gather(2, index).view(b, c, h, w)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Coordinates outside [0, n) mirrored about the border pixel (numpy's and torch's 'reflect')."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def alternating_flips(n: int, seed: int) -> torch.Tensor:
    """airbench's flip: a fixed random half of the images is mirrored in even epochs; XOR with
    (epoch odd) mirrors the other half in odd epochs. Every image is seen both ways every 2 epochs."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5


def draw_rrc_boxes(n: int, height: int, width: int, generator: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """RandomResizedCrop boxes for n images, vectorised: 10 tries each, the first that fits, else
    the whole image (the images here are already square crops). Returns (top, left, h, w) float (n,)."""
    tries = 10
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, generator=generator))
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(n, tries, generator=generator)
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).round()
    h = torch.sqrt(area / aspect).round()
    ok = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)[:, None]
    w = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.full((n,), float(width)))
    h = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.full((n,), float(height)))
    u = torch.rand(n, 2, generator=generator)
    top = torch.floor(u[:, 0] * (height - h + 1))
    left = torch.floor(u[:, 1] * (width - w + 1))
    return top, left, h, w


def resized_crop(x: torch.Tensor, top, left, h, w, flip, size: int) -> torch.Tensor:
    """Crop each box of a float batch and resize it to size x size (bilinear), mirrored where `flip`."""
    b, _, height, width = x.shape
    dev, dt = x.device, x.dtype
    top, left, h, w = (t.to(dev, dt) for t in (top, left, h, w))
    sign = 1.0 - 2.0 * flip.to(dev, dt)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=dt)
    theta[:, 0, 0] = w / width * sign
    theta[:, 0, 2] = (2 * left + w) / width - 1  # box centre in [-1, 1] (align_corners=False)
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, (b, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchTrainAugment:
    """uint8 (B, C, H, W) on the device -> augmented, normalised float (B, out_channels, size, size)."""

    def __init__(self, cfg: DataConfig, mean, std, out_channels: int):
        if cfg.augment == "imagenet_paper":
            raise ReslabError(
                "augment 'imagenet_paper' rescales photos to 256-480 pixels, which in-memory (small) images are not; "
                "use augment='cifar_paper' or 'rrc' for them, or in_memory='no' for photos"
            )
        self.cfg, self.out_channels = cfg, out_channels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, flip: torch.Tensor | None = None) -> torch.Tensor:
        """One augmented view of each image, (B, ...); with `views = 2`, two independent views of
        each as one batch (2B, ...): the first views of the B images, then their second views.
        flip: (B,) bool on the CPU to use instead of random flips (data.alternate_flip)."""
        with single_thread_on_cpu(x.device):
            if self.cfg.views == 1:
                return self._augment(x, generator, given_flip=flip)
            return torch.cat([self._augment(x, generator, view, flip) for view in range(self.cfg.views)])

    def _augment(self, x: torch.Tensor, generator: torch.Generator, view: int = 0,
                 given_flip: torch.Tensor | None = None) -> torch.Tensor:
        cfg, n = self.cfg, x.shape[0]
        if cfg.augment == "cifar_paper":
            dy, dx, flip = draw_pad_crop_flip(n, cfg.cifar_pad, generator, cfg.hflip)
            flip = flip if given_flip is None else given_flip
            x = pad_crop_flip(x, dy, dx, flip, pad=cfg.cifar_pad, mode=cfg.pad_mode)
            x = x.float().div_(255)
        elif cfg.augment == "rrc":
            top, left, h, w = draw_rrc_boxes(n, x.shape[2], x.shape[3], generator, cfg.rrc_scale, cfg.rrc_ratio)
            flip = torch.rand(n, generator=generator) < 0.5 if cfg.hflip else torch.zeros(n, dtype=torch.bool)
            flip = flip if given_flip is None else given_flip
            x = resized_crop(x.float().div_(255), top, left, h, w, flip, cfg.image_size)
        else:
            x = x.float().div_(255)
        if cfg.color_jitter > 0 or cfg.hue > 0:
            x = self._jitter(x, generator)
        if cfg.pca_lighting > 0 and x.shape[1] == 3:
            x = pca_lighting(x, torch.randn(n, 3, generator=generator) * cfg.pca_lighting)
        x = photometric_extras(x, cfg, generator, view)
        x = finish(x, self.mean, self.std, self.out_channels)
        if cfg.random_erasing > 0:
            x = random_erasing(x, torch.rand(n, 5, generator=generator), cfg.random_erasing)
        return x

    def _jitter(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Brightness, contrast, saturation and hue, applied to each image with probability jitter_p.

        Draws nothing extra for the paper's recipes (jitter_p = 1, hue = 0), so their random
        streams, and the runs seeded with them, stay as they were.
        """
        cfg, n = self.cfg, x.shape[0]
        jittered = x
        if cfg.color_jitter > 0:
            lo, hi = max(0.0, 1 - cfg.color_jitter), 1 + cfg.color_jitter
            f = lo + (hi - lo) * torch.rand(3, n, generator=generator)
            jittered = color_jitter(jittered, *f.to(x.device))
        if cfg.hue > 0 and x.shape[1] == 3:
            shift = (torch.rand(n, generator=generator) * 2 - 1) * cfg.hue
            jittered = adjust_hue(jittered, shift.to(x.device))
        if cfg.jitter_p >= 1:
            return jittered
        apply = (torch.rand(n, generator=generator) < cfg.jitter_p).to(x.device)
        return torch.where(apply[:, None, None, None], jittered, x)


def photometric_extras(x: torch.Tensor, cfg: DataConfig, generator: torch.Generator, view: int = 0) -> torch.Tensor:
    """Random greyscale, Gaussian blur and solarization of a float batch on [0, 1] (SimCLR, BYOL).

    Each is drawn (and costs anything) only when its probability is above zero; blur and
    solarization take the probability of `view`, as BYOL's asymmetric views do.
    """
    n = x.shape[0]
    if cfg.grayscale_p > 0 and x.shape[1] == 3:
        grey = (torch.rand(n, generator=generator) < cfg.grayscale_p).to(x.device)
        x = torch.where(grey[:, None, None, None], to_grayscale(x), x)
    blur_p = cfg.view_p("blur_p", view)
    if blur_p > 0:
        chosen = torch.rand(n, generator=generator) < blur_p
        sigma = 0.1 + 1.9 * torch.rand(n, generator=generator)  # SimCLR: sigma in [0.1, 2.0]
        index = chosen.nonzero()[:, 0]
        if len(index):
            # kernel: about 10% of the image side and odd, as SimCLR's; at least 3 taps
            kernel = max(3, int(0.1 * min(x.shape[2:])) // 2 * 2 + 1)
            x = x.clone()
            x[index.to(x.device)] = gaussian_blur(x[index.to(x.device)], sigma[index], kernel)
    solarize_p = cfg.view_p("solarize_p", view)
    if solarize_p > 0:
        flip = (torch.rand(n, generator=generator) < solarize_p).to(x.device)
        x = torch.where(flip[:, None, None, None], solarize(x), x)
    return x


def finish(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Normalise a float batch on [0, 1] and replicate grey to 3 channels when the model wants them."""
    x = (x - mean.to(x.device)) / std.to(x.device)
    if x.shape[1] == 1 and out_channels == 3:
        x = x.expand(-1, 3, -1, -1)
    return x


@contextlib.contextmanager
def single_thread_on_cpu(device: torch.device):
    """Run the batch's tensor ops on one thread when on the CPU. They are small and memory-bound:
    split over intra-op threads they gain nothing, and when the cores are busy (the model's own
    threads, other processes) the threads' synchronisation made them 3-30x slower in our runs."""
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
