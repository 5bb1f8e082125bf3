"""`reslab compare`, `reslab faces`, `reslab serve`: pairwise similarity, face boxes, the search page."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ReslabError
from .app import app, bench_app

COMPARE_METHODS = ("cnn", "sift", "orb", "hog", "hist")


@app.command()
def compare(
    image_a: Path = typer.Argument(..., help="First image."),
    image_b: Path = typer.Argument(..., help="Second image."),
    method: str = typer.Option("cnn", "--method", "-m", help=f"One of {', '.join(COMPARE_METHODS)}."),
    out: Path = typer.Option(None, "--out", "-o", help="PNG of the RANSAC inlier matches (sift and orb)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    model: str = typer.Option("efficientnet_lite0", help="Zoo model for --method cnn."),
    weights: str = typer.Option("imagenet", help="Weights for --method cnn: a tag such as imagenet, or a file."),
) -> None:
    """How similar are two images? cosine of embeddings (cnn, hog, hist) or RANSAC-verified keypoint matches (sift, orb)."""
    from ..features.compare import compare_images, save_match_image
    from ..imageio import load_image

    if method not in COMPARE_METHODS:
        raise ReslabError(f"unknown method '{method}'; use one of {', '.join(COMPARE_METHODS)}")
    if out is not None and method not in ("sift", "orb"):
        raise ReslabError("--out draws keypoint matches, which only sift and orb have; drop --out or use --method sift")
    a, b = load_image(image_a), load_image(image_b)
    result = compare_images(a, b, method=method, model=model, weights=weights)
    if out is not None:
        save_match_image(a, b, result, out)
    summary = {"a": str(image_a), "b": str(image_b), **result.as_dict()}
    if out is not None:
        summary["matches_png"] = str(out)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{method} similarity of {image_a.name} and {image_b.name}: {result.score:.4f}")
    if result.matches is not None:
        s = result.matches.summary()
        typer.echo(
            f"  keypoints {s['keypoints_a']} / {s['keypoints_b']}, ratio-test matches {s['matches']}, "
            f"RANSAC inliers {s['inliers']} (score = inliers / min keypoints)"
        )
    if out is not None:
        typer.echo(f"  matches drawn in {out}")


@app.command()
def faces(
    image: Path = typer.Argument(..., help="A photo."),
    out: Path = typer.Option(None, "--out", "-o", help="PNG of the photo with the faces boxed."),
    as_json: bool = typer.Option(False, "--json", help="Print the boxes as JSON."),
    scale_factor: float = typer.Option(1.2, min=1.01, help="Pyramid step: smaller finds more faces, slower."),
    min_neighbors: int = typer.Option(6, min=1, help="Overlapping detections a face needs: higher, fewer false alarms."),
    min_size: int = typer.Option(None, min=8, help="Smallest face side in pixels (default: 1/20 of the shorter side)."),
) -> None:
    """Find frontal faces with a boosted cascade classifier; print or draw the boxes."""
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
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"{len(found)} face{'s' if len(found) != 1 else ''} in {image.name}")
    for f in found:
        typer.echo(f"  x={f.x} y={f.y} width={f.width} height={f.height}")
    if out is not None:
        typer.echo(f"boxes drawn in {out}")


@app.command()
def serve(
    index: Path = typer.Argument(..., help="An index folder made by `reslab embed`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest accepted upload, in MiB (413 past it)."),
) -> None:
    """Serve the similarity-search page for an index: upload or click an image, see its neighbours."""
    import uvicorn

    from ..web.app import create_app

    web_app = create_app(index, max_upload_bytes=int(max_upload_mb * 2**20))
    typer.echo(f"serving {index} at http://{host}:{port}/  (API docs at /docs; Ctrl-C stops)")
    uvicorn.run(web_app, host=host, port=port, log_level="info")


@bench_app.command("features")
def bench_features(
    images: int = typer.Option(64, min=4, help="Photos to embed per method (skimage sample photos, cycled and varied)."),
    out: Path = typer.Option(Path("benchmarks/results/features.json"), help="Where to save the measurements (JSON)."),
) -> None:
    """Throughput of the classical embedders, pair matching and face detection, as ratios to the CNN embedder."""
    from ..features.bench import run_features_benchmark

    run_features_benchmark(images, out)
