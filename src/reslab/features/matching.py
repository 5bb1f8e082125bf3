"""Keypoint matching between two images: detect, describe, Lowe's ratio test, RANSAC homography.

Score of a pair = RANSAC inliers / min(keypoints in A, keypoints in B): the fraction of the
poorer image's keypoints that a single plane-to-plane mapping explains. 0 when fewer than four
matches survive the ratio test or RANSAC finds no homography. It is high for two views of the
same flat-ish object (a photo and its crop, rotation, rescale or recompression) and near 0 for
unrelated images; it says little about non-planar scenes seen from far-apart viewpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..embeddings.keypoints import DETECTORS, detect_and_describe  # noqa: F401  (part of this module's API)
from ..errors import ReslabError
MIN_MATCHES_FOR_HOMOGRAPHY = 4  # a homography has 8 degrees of freedom: 4 point pairs


@dataclass(frozen=True)
class MatchResult:
    """Keypoints (x, y) in each image's original pixels, and the matches between them."""

    detector: str
    points_a: np.ndarray  # (Na, 2) float32
    points_b: np.ndarray  # (Nb, 2) float32
    matches: np.ndarray  # (M, 2) int: index into points_a, index into points_b; after the ratio test
    inliers: np.ndarray  # (M,) bool: RANSAC inliers among `matches`
    homography: np.ndarray | None  # 3x3, maps A's pixels to B's; None when not found
    extra: dict = field(default_factory=dict)

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    @property
    def score(self) -> float:
        fewest = min(len(self.points_a), len(self.points_b))
        return self.num_inliers / fewest if fewest and self.homography is not None else 0.0

    def summary(self) -> dict:
        return {
            "detector": self.detector,
            "keypoints_a": len(self.points_a),
            "keypoints_b": len(self.points_b),
            "matches": len(self.matches),
            "inliers": self.num_inliers,
            "score": round(self.score, 6),
            "homography": None if self.homography is None else np.round(self.homography, 6).tolist(),
        }


def ratio_test(desc_a: np.ndarray | None, desc_b: np.ndarray | None, detector: str, ratio: float = 0.75) -> np.ndarray:
    """Lowe's ratio test (Lowe 2004): keep A's descriptor when its nearest neighbour in B is
    clearly nearer than the second nearest. Returns (M, 2) index pairs."""
    import cv2

    if desc_a is None or desc_b is None or len(desc_a) == 0 or len(desc_b) < 2:
        return np.zeros((0, 2), np.int64)
    norm = cv2.NORM_L2 if detector == "sift" else cv2.NORM_HAMMING
    pairs = cv2.BFMatcher(norm).knnMatch(desc_a, desc_b, k=2)
    good = [(m.queryIdx, m.trainIdx) for m, n in (p for p in pairs if len(p) == 2) if m.distance < ratio * n.distance]
    return np.array(good, np.int64).reshape(-1, 2)


def ransac_homography(
    points_a: np.ndarray, points_b: np.ndarray, matches: np.ndarray, reprojection_threshold: float = 5.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC homography from the matched points (cv2.findHomography); (H or None, inlier mask)."""
    import cv2

    if len(matches) < MIN_MATCHES_FOR_HOMOGRAPHY:
        return None, np.zeros(len(matches), bool)
    src = points_a[matches[:, 0]].reshape(-1, 1, 2)
    dst = points_b[matches[:, 1]].reshape(-1, 1, 2)
    H, mask = cv2.findHomography(src, dst, cv2.RANSAC, reprojection_threshold, maxIters=2000, confidence=0.995)
    if H is None or mask is None:
        return None, np.zeros(len(matches), bool)
    return H, mask.ravel().astype(bool)


def _gray_for_matching(image: Image.Image, max_side: int) -> tuple[np.ndarray, float]:
    """Grayscale array with the longer side at most `max_side`; and the scale applied."""
    w, h = image.size
    scale = min(1.0, max_side / max(w, h))
    gray = image.convert("L")
    if scale < 1:
        gray = gray.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(gray), scale


def match_images(
    image_a: Image.Image,
    image_b: Image.Image,
    detector: str = "sift",
    ratio: float = 0.75,
    max_keypoints: int = 2000,
    max_side: int = 1024,  # big photos are matched at this size; results are mapped back to full size
    reprojection_threshold: float = 5.0,  # pixels, at the matching size
) -> MatchResult:
    """Match two images: keypoints, Lowe's ratio test, RANSAC homography (see the module doc)."""
    gray_a, scale_a = _gray_for_matching(image_a, max_side)
    gray_b, scale_b = _gray_for_matching(image_b, max_side)
    kp_a, desc_a = detect_and_describe(gray_a, detector, max_keypoints)
    kp_b, desc_b = detect_and_describe(gray_b, detector, max_keypoints)
    # keypoints back in each image's original pixel coordinates
    points_a = np.array([k.pt for k in kp_a], np.float32).reshape(-1, 2) / scale_a
    points_b = np.array([k.pt for k in kp_b], np.float32).reshape(-1, 2) / scale_b
    matches = ratio_test(desc_a, desc_b, detector, ratio)
    H, inliers = ransac_homography(points_a, points_b, matches, reprojection_threshold / min(scale_a, scale_b))
    return MatchResult(detector, points_a, points_b, matches, inliers, H)


def draw_matches(
    image_a: Image.Image, image_b: Image.Image, result: MatchResult, max_height: int = 600, max_lines: int = 150
) -> Image.Image:
    """The two images side by side with the RANSAC inlier matches drawn as lines (cv2.drawMatches).

    At most `max_lines` inliers, evenly picked, are drawn: hundreds of lines hide the images.
    """
    import cv2

    def prepared(image: Image.Image, points: np.ndarray):
        scale = min(1.0, max_height / image.size[1])
        if scale < 1:
            image = image.resize((max(1, round(image.size[0] * scale)), max_height), Image.BILINEAR, reducing_gap=3.0)
        bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        return bgr, [cv2.KeyPoint(float(x * scale), float(y * scale), 4) for x, y in points]

    bgr_a, kp_a = prepared(image_a, result.points_a)
    bgr_b, kp_b = prepared(image_b, result.points_b)
    inlier_pairs = result.matches[result.inliers]
    if len(inlier_pairs) > max_lines:
        inlier_pairs = inlier_pairs[np.linspace(0, len(inlier_pairs) - 1, max_lines).round().astype(int)]
    dmatches = [cv2.DMatch(int(a), int(b), 0.0) for a, b in inlier_pairs]
    canvas = cv2.drawMatches(
        bgr_a, kp_a, bgr_b, kp_b, dmatches, None,
        matchColor=(0, 220, 0), flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS,
    )  # fmt: skip
    return Image.fromarray(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
