"""Which evaluation preprocessing do the EfficientNet-Lite0 ImageNet weights want? Measured, not guessed.

Scores the real weights on the ants/bees photos of ../shared/data/hymenoptera.tar.gz (both are
ImageNet classes: "ant" 310, "bee" 309) with 1000-way top-1 and the mean negative log-likelihood
of the true class, for each candidate preprocessing, and prints the top-5 of scikit-image's test
photos with the registered one. Writes lite0_preprocessing.json to the benchmark results folder
($RESLAB_BENCH_RESULTS, else benchmarks/results).

    .venv/bin/python benchmarks/lite0_preprocessing.py
"""

from __future__ import annotations

import contextlib
import io
import sys
import tarfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from reslab.provenance import save_benchmark
from reslab.labels import imagenet_classes
from reslab.models import create_model, model_entry
from reslab.models import efficientnet
from reslab.predict import predict
from reslab.preprocess import EvalPreprocess

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "hymenoptera.tar.gz"
TF_NORM = ((127 / 255,) * 3, (128 / 255,) * 3)  # (x - 127) / 128 on 0..255 pixels
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# name: (TF "SAME" padding?, interpolation, resize before the 224 crop, normalisation)
VARIANTS = {
    "registered: SAME, bicubic, 256->224, (x-127)/128": (True, "bicubic", 256, TF_NORM),
    "SAME, bilinear, 256->224, (x-127)/128": (True, "bilinear", 256, TF_NORM),
    "SAME, bicubic, 224->224 (whole square), (x-127)/128": (True, "bicubic", 224, TF_NORM),
    "SAME, bicubic, 256->224, ImageNet mean/std": (True, "bicubic", 256, IMAGENET_NORM),
    "symmetric padding, bicubic, 256->224, (x-127)/128": (False, "bicubic", 256, TF_NORM),
}
PHOTOS = ["chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry"]


@contextlib.contextmanager
def symmetric_padding(enabled: bool):
    """Temporarily make every SAME conv pad symmetrically (PyTorch style), to measure what SAME is worth."""
    if not enabled:
        yield
        return
    same = efficientnet.SameConv2d.forward

    def forward(self, x):
        return F.conv2d(x, self.weight, None, self.stride, self.kernel_size[0] // 2, self.dilation, self.groups)

    efficientnet.SameConv2d.forward = forward
    try:
        yield
    finally:
        efficientnet.SameConv2d.forward = same


def hymenoptera_val() -> list[tuple[Image.Image, int]]:
    labels = imagenet_classes()
    ant, bee = labels.index("ant"), labels.index("bee")
    out = []
    with tarfile.open(ARCHIVE) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile() and "/val/" in f"/{member.name}" and member.name.lower().endswith(".jpg"):
                image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                out.append((image, ant if "/ants/" in member.name else bee))
    return out


def score(model, data, pre: EvalPreprocess) -> dict:
    x = torch.stack([pre(im) for im, _ in data])
    y = torch.tensor([label for _, label in data])
    with torch.inference_mode():
        p = torch.cat([model(chunk).softmax(1) for chunk in x.split(32)])
    return {
        "top1": round((p.argmax(1) == y).float().mean().item(), 4),
        "nll": round(-p[torch.arange(len(y)), y].log().mean().item(), 4),
    }


def main() -> int:
    if not ARCHIVE.exists():
        print(f"{ARCHIVE} is absent; this benchmark needs the shared data", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", weights="imagenet").eval()
    data = hymenoptera_val()
    results = {}
    for name, (same, interpolation, resize, (mean, std)) in VARIANTS.items():
        pre = EvalPreprocess(crop=224, resize=resize, mean=mean, std=std, interpolation=interpolation)
        t0 = time.perf_counter()
        with symmetric_padding(not same):
            results[name] = score(model, data, pre)
        print(f"{name:55s} top-1 {results[name]['top1']:.3f}  NLL {results[name]['nll']:.3f}  ({time.perf_counter() - t0:.0f} s)")

    import skimage.data

    photos = {n: Image.fromarray(getattr(skimage.data, n)()) for n in PHOTOS}
    top5 = predict(model, list(photos.values()), EvalPreprocess.for_model("efficientnet_lite0"), imagenet_classes())
    print("\ntop-5 with the registered preprocessing:")
    for n, preds in zip(photos, top5):
        print(f"  {n:22s} " + ", ".join(f"{label} {p:.3f}" for label, p in preds))

    entry = model_entry("efficientnet_lite0")
    report = {
        "benchmark": "lite0_preprocessing",
        "command": ".venv/bin/python benchmarks/lite0_preprocessing.py",
        "data": f"{ARCHIVE.name} val split, {len(data)} photos, 1000-way top-1 on the ImageNet classes ant/bee",
        "registered_preprocessing": {"resize": entry.resize, "crop": 224, "interpolation": entry.interpolation, "mean": entry.mean, "std": entry.std},
        "variants": results,
        "skimage_top5": {n: [[label, round(p, 4)] for label, p in preds] for n, preds in zip(photos, top5)},
    }
    print(f"\nwrote {save_benchmark('lite0_preprocessing', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
