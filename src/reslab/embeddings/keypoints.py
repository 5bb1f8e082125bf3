"""Local keypoints and descriptors (SIFT, ORB) with OpenCV: the words of a bag of visual words,
and the points `reslab.features.matching` matches between two images."""

from __future__ import annotations

import numpy as np

from ..errors import ReslabError

DETECTORS = ("sift", "orb")


def detect_and_describe(gray: np.ndarray, detector: str = "sift", max_keypoints: int = 1000):
    """OpenCV keypoints and descriptors of a uint8 grayscale image (descriptors None when none found)."""
    import cv2

    if detector == "sift":
        algo = cv2.SIFT_create(nfeatures=max_keypoints)
    elif detector == "orb":
        # ORB's FAST needs a border of patchSize pixels; the defaults fit images >= ~64 px.
        algo = cv2.ORB_create(nfeatures=max_keypoints)
        if min(gray.shape[:2]) <= 2 * algo.getEdgeThreshold():
            # no pixel is far enough from the border to be a keypoint (and OpenCV's pyramid
            # fails on a side that rounds to 0 pixels): an answer, not an OpenCV assertion
            return (), None
    else:
        raise ReslabError(f"detector '{detector}' is not supported; use one of {', '.join(DETECTORS)}")
    keypoints, descriptors = algo.detectAndCompute(np.ascontiguousarray(gray, dtype=np.uint8), None)
    return keypoints, descriptors
