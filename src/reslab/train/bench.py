"""`reslab bench train`: the engine's training images/s against a textbook fp32 eager loop, same process.

Textbook loop (torchvision-reference style): a Dataset of JPEG files, per-image PIL transforms
(pad-crop-flip at 32 px; random-resized-crop-flip at 224 px), a DataLoader, fp32 forward,
backward and SGD step. Engine: `fit` with the data pipeline's in-memory batched augmentation, bf16
autocast and channels_last. Both train the same model on the same JPEG files; only steps after a
warm-up are timed, from the end of one optimizer step to the end of the last (data loading included).
"""

from __future__ import annotations

import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


log = logging.getLogger(__name__)
WARMUP_STEPS = 3


def write_bench_images(root: Path, n: int, size: int, num_classes: int = 10, seed: int = 0) -> Path:
    """`n` JPEGs in train/<class>/: a class-coloured disc at a random place on noise (learnable, not trivial)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    colours = rng.integers(40, 255, (num_classes, 3))
    for i in range(n):
        c = i % num_classes
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (size / 4) ** 2
        img = rng.integers(0, 120, (size, size, 3)) * (~disc[..., None]) + colours[c] * disc[..., None]
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def textbook_loop(model_name: str, folder: Path, batch: int, steps: int, size: int, num_classes: int,
                  mean, std, seed: int = 0) -> tuple[float, list[float]]:
    """fp32 eager training as in most tutorials; returns (images/s over timed steps, per-step losses)."""
    from PIL import Image

    from ..models import create_model
    from ..preprocess import normalize, to_tensor

    paths = sorted(folder.glob("train/*/*.jpg"))
    classes = sorted({p.parent.name for p in paths})
    labels = [classes.index(p.parent.name) for p in paths]
    small = size <= 64

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            img = Image.open(paths[i]).convert("RGB")
            g = np.random.default_rng((seed, i, int(torch.randint(0, 2**31, (1,)))))
            if small:  # pad 4, random crop, flip (the paper's CIFAR augmentation)
                padded = Image.new("RGB", (img.width + 8, img.height + 8))
                padded.paste(img, (4, 4))
                x0, y0 = g.integers(0, 9, 2)
                img = padded.crop((x0, y0, x0 + size, y0 + size))
            else:  # random-resized crop
                w, h = img.size
                area = w * h * g.uniform(0.08, 1.0)
                ratio = np.exp(g.uniform(np.log(3 / 4), np.log(4 / 3)))
                cw, ch = min(w, int(round(np.sqrt(area * ratio)))), min(h, int(round(np.sqrt(area / ratio))))
                x0, y0 = g.integers(0, w - cw + 1), g.integers(0, h - ch + 1)
                img = img.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
            if g.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            return normalize(to_tensor(img), mean, std), labels[i]

    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(Files(), batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    model = create_model(model_name, num_classes=num_classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses, times = [], []
    it = iter(loader)
    for _ in range(WARMUP_STEPS + steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter())
    return batch * steps / (times[-1] - times[WARMUP_STEPS - 1]), losses


# The engine's speed-ups, one row each and cumulative: every row adds one to the row above it.
ENGINE_ROWS = [
    ("engine, fp32: in-memory batched augmentation", ("train.amp=off", "train.channels_last=false", "optim.kernel=loop")),
    ("+ channels_last", ("train.amp=off", "train.channels_last=true", "optim.kernel=loop")),
    ("+ bf16 autocast", ("train.amp=bf16", "train.channels_last=true", "optim.kernel=loop")),
    ("+ fused optimizer", ("train.amp=bf16", "train.channels_last=true", "optim.kernel=fused")),
    ("+ torch.compile", ("train.amp=bf16", "train.channels_last=true", "optim.kernel=fused", "train.compile=on")),
]


def engine_run(model_name: str, folder: Path, batch: int, steps: int, size: int, settings: tuple[str, ...],
               runs: Path, seed: int = 0, device: str = "cpu") -> tuple[float, list[float], dict]:
    """The engine (`fit`) on the same files with `settings`; returns (images/s over the timed steps,
    per-step losses, the run's compile record)."""
    from .checkpoint import load_checkpoint
    from .config import load_config
    from .engine import fit

    small = size <= 64
    overrides = [
        f"model.name={model_name}", f'data.path="{folder}"', f"data.image_size={size}", "data.eval_split=none",
        f"data.augment={'cifar_paper' if small else 'rrc'}", "data.in_memory=yes", f"train.device={device}",
        f"train.batch_size={batch}", f"train.steps={WARMUP_STEPS + steps}", "train.compile=off",
        f"train.seed={seed}", "optim.lr=0.05", "schedule.name=constant", "run.tensorboard=false", "run.progress=false",
        f'run.dir="{runs}"', f"run.name={model_name}-{len(list(runs.glob('*'))) if runs.exists() else 0}", *settings,
    ]
    times, losses = [], []
    history = fit(load_config(None, overrides), on_step=lambda step, loss: (times.append(time.perf_counter()), losses.append(loss)))
    compiled = load_checkpoint(history.run_dir)["state"].get("compile", {})
    return batch * steps / (times[-1] - times[WARMUP_STEPS - 1]), losses, compiled


def run_bench(model: str, *, batch: int | None = None, steps: int | None = None, image_size: int = 0,
              data: str | None = None, accuracy_steps: int = 0, out: Path | None = None, device: str = "cpu",
              rows: str = "all") -> dict:
    """Measure, print the table, and save OUT/bench_train_MODEL.json (default: the benchmark results folder).

    rows: "all" (the textbook loop and every engine row) or "fastest" (the last engine row only: GPU runs).
    """
    from ..console import new_table, note, print_table, say
    from ..models import model_entry
    from ..provenance import save_benchmark
    from .peaks import measure_peaks
    from .race import train_flops_per_image

    entry = model_entry(model)
    size = image_size or entry.input_size[1]
    small = size <= 64
    batch = batch or (128 if small else 32)
    steps = steps or (30 if small else 4)
    engine_rows = ENGINE_ROWS if rows == "all" else ENGINE_ROWS[-1:]
    train_flops, _ = train_flops_per_image(model, {}, size, 10)
    note("this machine's peaks (matrix product, 3x3 convolution; fp32 and bf16) ...")
    peaks = measure_peaks(device, small=size < 32 and batch < 32)
    with tempfile.TemporaryDirectory(prefix="reslab-bench-") as tmp:
        tmp = Path(tmp)
        if data:
            folder = Path(data)
        else:
            n = batch * (WARMUP_STEPS + max(steps, accuracy_steps)) + batch
            note(f"writing {n} generated {size if small else 256}px JPEGs ...")
            folder = write_bench_images(tmp / "images", n, size if small else 256)
        mean, std = entry.mean, entry.std
        measured = []
        if rows == "all":
            note(f"textbook fp32 loop: {model}, batch {batch}, {steps} timed steps ...")
            base_speed, _ = textbook_loop(model, folder, batch, steps, size, 10, mean, std)
            measured.append({"row": "textbook fp32 eager (PIL + DataLoader)", "images_per_s": base_speed})
            note(f"  {base_speed:.1f} images/s")
        for label, settings in engine_rows:
            note(f"{label} ...")
            speed, _, compiled = engine_run(model, folder, batch, steps, size, settings, tmp / "runs", device=device)
            row = {"row": label, "settings": list(settings), "images_per_s": speed}
            if compiled.get("compile_s") is not None and compiled.get("compiled"):
                row["compile_s"] = compiled["compile_s"]
            measured.append(row)
            note(f"  {speed:.1f} images/s ({speed / measured[0]['images_per_s']:.2f}x the first row)")  # a long run shows its rows as they come
        base = measured[0]["images_per_s"]
        for previous, row in zip([None] + measured[:-1], measured):
            row["vs_first_row"] = row["images_per_s"] / base
            row["vs_row_above"] = row["images_per_s"] / previous["images_per_s"] if previous else 1.0
            row["gflop_per_s"] = row["images_per_s"] * train_flops / 1e9
        fastest = measured[-1]
        result = {
            "benchmark": "bench_train", "model": model, "batch": batch, "timed_steps": steps, "image_size": size,
            "device": device, "rows": measured, "train_gflop_per_image": train_flops / 1e9, "peaks_gflop_per_s": peaks,
            "textbook_fp32_images_per_s": base if rows == "all" else None,
            "engine_images_per_s": fastest["images_per_s"],
            "speedup": fastest["images_per_s"] / base if rows == "all" else None, "threads": torch.get_num_threads(),
            "command": "reslab bench train " + shlex.join(sys.argv[3:] if sys.argv[1:3] == ["bench", "train"] else [model]),
        }  # fmt: skip
        if accuracy_steps:
            note(f"loss curves, fp32 vs bf16 engine, {accuracy_steps} steps each ...")
            curves = {}
            for amp, settings in (("off", ENGINE_ROWS[0][1]), ("bf16", ENGINE_ROWS[-2][1])):
                _, curves[amp], _ = engine_run(model, folder, batch, accuracy_steps - WARMUP_STEPS, size, settings,
                                               tmp / "runs", device=device)
            window = max(1, len(curves["off"]) // 5)
            fp32_end, bf16_end = float(np.mean(curves["off"][-window:])), float(np.mean(curves["bf16"][-window:]))
            result.update(accuracy_steps=accuracy_steps, fp32_final_loss=fp32_end, bf16_final_loss=bf16_end,
                          loss_curve_fp32=curves["off"], loss_curve_bf16=curves["bf16"])
    table = new_table("loop", "images/s", "x first row", "x row above", "GFLOP/s",
                      right=("images/s", "x first row", "x row above", "GFLOP/s"),
                      title=f"training throughput: {model}, batch {batch}, {size}px, {device}, {torch.get_num_threads()} threads")
    for row in measured:
        extra = f" (+{row['compile_s']:.0f} s to compile)" if "compile_s" in row else ""
        table.add_row(row["row"] + extra, f"{row['images_per_s']:.1f}", f"{row['vs_first_row']:.2f}x",
                      f"{row['vs_row_above']:.2f}x", f"{row['gflop_per_s']:.0f}")
    print_table(table)
    say(f"measured peaks, GFLOP/s: matmul fp32 {peaks['matmul_fp32']:.0f} / bf16 {peaks['matmul_bf16']:.0f}; "
        f"3x3 conv fwd+bwd fp32 {peaks['conv_train_fp32']:.0f} / bf16 {peaks['conv_train_bf16']:.0f}; the fastest row reaches "
        f"{100 * fastest['gflop_per_s'] / peaks['conv_train_bf16']:.0f}% of the bf16 conv's", markup=False)
    if accuracy_steps:
        note(f"mean loss over the last {window} of {accuracy_steps} steps: fp32 {result['fp32_final_loss']:.4f}, "
             f"bf16 {result['bf16_final_loss']:.4f}")
    say(f"reproduce: {result['command']}")
    say(f"saved {save_benchmark(f'bench_train_{model}', result, out)}", markup=False)
    return result
