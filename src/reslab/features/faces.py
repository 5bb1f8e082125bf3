"""Frontal face detection with a boosted cascade (Viola & Jones 2001).

OpenCV's `cv2.CascadeClassifier` with its bundled Haar cascade is used when this OpenCV has it;
OpenCV 5 (the one installed here) dropped both, so the fallback is scikit-image's `Cascade` with
the LBP frontal-face cascade that scikit-image ships (trained by OpenCV; Liao et al. 2007). Either
way nothing is downloaded. Cascades find upright, roughly frontal faces of at least `min_size`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MAX_DETECTION_SIDE = 1024  # big photos are searched at this size; boxes are mapped back


@dataclass(frozen=True)
class Face:
    """A face box in the image's pixels: left x, top y, width, height."""

    x: int
    y: int
    width: int
    height: int

    def as_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def _opencv_haar():
    import cv2

    data = getattr(cv2, "data", None)
    path = os.path.join(getattr(data, "haarcascades", ""), "haarcascade_frontalface_default.xml")
    if not hasattr(cv2, "CascadeClassifier") or not os.path.isfile(path):
        return None
    cascade = cv2.CascadeClassifier(path)
    return None if cascade.empty() else cascade


@functools.lru_cache(maxsize=1)
def _skimage_lbp():
    from skimage import data
    from skimage.feature import Cascade

    return Cascade(data.lbp_frontal_face_cascade_filename())


def detector_name() -> str:
    return "opencv-haar-frontalface-default" if _opencv_haar() is not None else "skimage-lbp-frontalface"


def detect_faces(
    image: Image.Image | np.ndarray,
    scale_factor: float = 1.2,  # image pyramid step; smaller finds more faces, slower
    min_neighbors: int = 6,  # overlapping detections a face needs; higher means fewer false alarms
    min_size: int | None = None,  # smallest face side in pixels; default 1/20 of the shorter side, >= 24
) -> list[Face]:
    """Faces in an RGB/grayscale image, largest first."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    gray = image.convert("L")
    w, h = gray.size
    scale = min(1.0, MAX_DETECTION_SIDE / max(w, h))
    if scale < 1:
        gray = gray.resize((round(w * scale), round(h * scale)), Image.BILINEAR, reducing_gap=3.0)
    array = np.asarray(gray)
    shorter = min(array.shape)
    smallest = max(24, round((min_size * scale) if min_size else shorter / 20))
    haar = _opencv_haar()
    if haar is not None:
        import cv2

        found = haar.detectMultiScale(
            cv2.equalizeHist(array), scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(smallest, smallest)
        )
        boxes = [tuple(map(int, b)) for b in found]
    else:
        found = _skimage_lbp().detect_multi_scale(
            img=array.astype(np.float32) / 255.0,
            scale_factor=scale_factor,
            step_ratio=1,
            min_size=(smallest, smallest),
            max_size=(shorter, shorter),
            min_neighbor_number=min_neighbors,
        )
        boxes = [(d["c"], d["r"], d["width"], d["height"]) for d in found]
    faces = [Face(round(x / scale), round(y / scale), round(bw / scale), round(bh / scale)) for x, y, bw, bh in boxes]
    return merge_overlapping(sorted(faces, key=lambda f: f.width * f.height, reverse=True))


def overlap(a: Face, b: Face) -> float:
    """Intersection over the smaller box: 1 when one box lies inside the other."""
    ix = max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    return ix * iy / min(a.width * a.height, b.width * b.height)


def merge_overlapping(faces: list[Face], threshold: float = 0.5) -> list[Face]:
    """Drop a box mostly inside a larger one: the cascade can report one face at two scales."""
    kept: list[Face] = []
    for f in faces:  # largest first
        if all(overlap(f, k) < threshold for k in kept):
            kept.append(f)
    return kept


def draw_faces(image: Image.Image, faces: list[Face], color=(255, 40, 40)) -> Image.Image:
    """A copy of `image` with each face boxed."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    line = max(2, round(min(out.size) / 200))
    for f in faces:
        draw.rectangle((f.x, f.y, f.x + f.width - 1, f.y + f.height - 1), outline=color, width=line)
    return out


def save_faces_image(image: Image.Image, faces: list[Face], out: str | Path) -> Path:
    import io

    from ..fileio import atomic_write_bytes

    buf = io.BytesIO()
    draw_faces(image, faces).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
