"""Classify images with any model: decode, preprocess, batch, softmax, top-k.

    from reslab.inference import load, open_session
    from reslab.predict import predict

    m = load("efficientnet_lite0", weights="imagenet")     # or a run folder, or an exported .onnx
    top5 = predict(open_session(m, "auto"), ["cat.jpg"], m.preprocess, m.classes)
    # [[("Egyptian cat", 0.38), ("tiger cat", 0.33), ...]]

`model` may also be a plain nn.Module (run eagerly on its own device).
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch
from PIL import Image
from torch import nn

from .errors import ReslabError
from .imageio import BadImageError, load_image
from .inference.runtimes import Session
from .preprocess import EvalPreprocess

ImageLike = Image.Image | str | os.PathLike


def iter_predictions(
    model: nn.Module | Session,
    images: Sequence[ImageLike],
    preprocess: EvalPreprocess,
    labels: Sequence[str],
    top_k: int = 5,
    batch_size: int = 32,
    bad_files: list | None = None,
) -> Iterator[list[list[tuple[str, float]] | None]]:
    """Like `predict`, but yields the results one batch at a time (for progress bars and long lists).

    Images are decoded batch by batch, so memory stays bounded however many paths are given.
    bad_files: a list to collect (path, reason) of files that cannot be decoded, whose results are
    then None, and the others go on; without it such a file raises `BadImageError`.
    """
    if top_k < 1:
        raise ReslabError(f"top_k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise ReslabError(f"batch_size must be at least 1, got {batch_size}")
    logits_of = _logits_function(model)
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        decoded = _decode(chunk, preprocess, bad_files)
        if not decoded:
            yield [None] * len(chunk)
            continue
        logits = logits_of(torch.stack(list(decoded.values())))
        if logits.shape[1] != len(labels):
            raise ReslabError(
                f"the model has {logits.shape[1]} outputs but {len(labels)} labels were given; "
                f"pass one label per class"
            )
        probs = logits.float().softmax(dim=1)
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
        top = [
            [(labels[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
            for row_p, row_i in zip(values.cpu(), indices.cpu())
        ]
        by_position = dict(zip(decoded, top))
        yield [by_position.get(i) for i in range(len(chunk))]


def _logits_function(model):
    """batch (B, C, H, W) on the CPU -> logits tensor, for a runtime session or an nn.Module."""
    if isinstance(model, Session):
        return lambda batch: torch.from_numpy(model.run(batch.numpy())[1])
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")

    def forward(batch):
        if device.type == "cuda":
            batch = batch.pin_memory()  # lets the copy overlap with the previous batch's compute
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                return model(batch.to(device, non_blocking=True))
        finally:
            model.train(was_training)  # leave the model as we found it

    return forward


def predict(
    model: nn.Module | Session,
    images: Sequence[ImageLike],
    preprocess: EvalPreprocess,
    labels: Sequence[str],
    top_k: int = 5,
    batch_size: int = 32,
) -> list[list[tuple[str, float]]]:
    """Top-k (label, probability) per image, most probable first.

    images: PIL images or paths (decoded with `load_image`; a bad file raises `BadImageError`).
    preprocess: the model's evaluation preprocessing, e.g. `EvalPreprocess.for_model(name)`.
    labels: one name per model output. Runs in eval mode without gradients on the model's device,
    then restores the model's previous mode.
    """
    results: list[list[tuple[str, float]]] = []
    for batch in iter_predictions(model, images, preprocess, labels, top_k, batch_size):
        results.extend(batch)
    return results


def _decode(images: Sequence[ImageLike], preprocess: EvalPreprocess, bad_files: list | None) -> dict[int, torch.Tensor]:
    """Position in `images` -> preprocessed tensor; a bad file is collected in `bad_files` (or raises)."""
    out = {}
    for i, image in enumerate(images):
        try:
            out[i] = preprocess(_as_pil(image, preprocess))
        except BadImageError as e:
            if bad_files is None:
                raise
            bad_files.append((str(image), e.reason))
    return out


def _as_pil(image: ImageLike, preprocess: EvalPreprocess) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    # min_size lets big JPEGs decode at a reduced scale: the preprocessing shrinks them anyway
    return load_image(image, mode="RGB" if preprocess.channels == 3 else "L", min_size=preprocess.resize)
