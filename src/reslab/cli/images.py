"""Two images, one photo: `reslab compare-images` (`reslab compare` is its old name) and `reslab faces`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import IMAGES, alias, app
from .options import JsonOutput


class CompareMethod(StrEnum):  # reslab.features.compare.COMPARE_METHODS
    cnn = "cnn"
    sift = "sift"
    orb = "orb"
    hog = "hog"
    hist = "hist"


@app.command("compare-images", rich_help_panel=IMAGES)
def compare_images(
    image_a: Annotated[Path, typer.Argument(help="First image.")],
    image_b: Annotated[Path, typer.Argument(help="Second image.")],
    method: Annotated[CompareMethod, typer.Option("--method", "-m", help="Embedding cosine (cnn, hog, hist) or keypoint matches (sift, orb).")] = CompareMethod.cnn,
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG of the RANSAC inlier matches (sift and orb).")] = None,
    as_json: JsonOutput = False,
    model: Annotated[str, typer.Option(help="Zoo model for --method cnn.")] = "efficientnet_lite0",
    weights: Annotated[str, typer.Option("--weights", "-w", help="Weights for --method cnn: a tag such as imagenet, or a file.")] = "imagenet",
) -> None:
    """How similar are two images? Cosine of embeddings (cnn, hog, hist) or RANSAC-verified keypoint matches (sift, orb).

    (Overlaying the curves of training runs is `reslab compare-runs`.)
    """
    from ..console import print_json, printable, say
    from ..features.compare import compare_images as compare, save_match_image
    from ..imageio import load_image

    if out is not None and method not in ("sift", "orb"):
        raise ReslabError("--out draws keypoint matches, which only sift and orb have; drop --out or use --method sift")
    a, b = load_image(image_a), load_image(image_b)
    result = compare(a, b, method=method.value, model=model, weights=weights)
    if out is not None:
        save_match_image(a, b, result, out)
    summary = {"a": str(image_a), "b": str(image_b), **result.as_dict()}
    if out is not None:
        summary["matches_png"] = str(out)
    if as_json:
        print_json(summary)
        return
    say(f"{method} similarity of {printable(image_a.name)} and {printable(image_b.name)}: {result.score:.4f}", markup=False)
    if result.matches is not None:
        s = result.matches.summary()
        say(f"  keypoints {s['keypoints_a']} / {s['keypoints_b']}, ratio-test matches {s['matches']}, "
            f"RANSAC inliers {s['inliers']} (score = inliers / min keypoints)")  # fmt: skip
    if out is not None:
        say(f"  matches drawn in {out}", markup=False)


alias(app, "compare", compare_images, "compare-images")


@app.command(rich_help_panel=IMAGES)
def faces(
    image: Annotated[Path, typer.Argument(help="A photo.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG of the photo with the faces boxed.")] = None,
    as_json: JsonOutput = False,
    scale_factor: Annotated[float, typer.Option(min=1.01, help="Pyramid step: smaller finds more faces, slower.")] = 1.2,
    min_neighbors: Annotated[int, typer.Option(min=1, help="Overlapping detections a face needs: higher, fewer false alarms.")] = 6,
    min_size: Annotated[Optional[int], typer.Option(min=8, help="Smallest face side in pixels (default: 1/20 of the shorter side).")] = None,
) -> None:
    """Find frontal faces with a boosted cascade classifier; print or draw the boxes."""
    from ..console import print_json, printable, say
    from ..features.faces import detect_faces, detector_name, save_faces_image
    from ..imageio import load_image

    picture = load_image(image)
    found = detect_faces(picture, scale_factor=scale_factor, min_neighbors=min_neighbors, min_size=min_size)
    if out is not None:
        save_faces_image(picture, found, out)
    if as_json:
        payload = {"image": str(image), "width": picture.width, "height": picture.height, "detector": detector_name(),
                   "faces": [f.as_dict() for f in found]}  # fmt: skip
        if out is not None:
            payload["boxed_png"] = str(out)
        print_json(payload)
        return
    say(f"{len(found)} face{'s' if len(found) != 1 else ''} in {printable(image.name)}", markup=False)
    for f in found:
        say(f"  x={f.x} y={f.y} width={f.width} height={f.height}")
    if out is not None:
        say(f"boxes drawn in {out}", markup=False)
