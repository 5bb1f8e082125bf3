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


def engine_run(model_name: str, folder: Path, batch: int, steps: int, size: int, amp: str, channels_last: bool,
               runs: Path, seed: int = 0) -> tuple[float, list[float]]:
    """The engine (`fit`) on the same files; returns (images/s over timed steps, per-step losses)."""
    from .config import load_config
    from .engine import fit

    small = size <= 64
    overrides = [
        f"model.name={model_name}", f'data.path="{folder}"', f"data.image_size={size}", "data.eval_split=none",
        f"data.augment={'cifar_paper' if small else 'rrc'}", "data.in_memory=yes",
        f"train.batch_size={batch}", f"train.steps={WARMUP_STEPS + steps}", f"train.amp={amp}",
        f"train.channels_last={'true' if channels_last else 'false'}", f"train.seed={seed}", "optim.lr=0.05",
        "schedule.name=constant", "run.tensorboard=false", "run.progress=false", f'run.dir="{runs}"',
        f"run.name={model_name}-{amp}-{len(list(runs.glob('*'))) if runs.exists() else 0}",
    ]
    times, losses = [], []
    fit(load_config(None, overrides), on_step=lambda step, loss: (times.append(time.perf_counter()), losses.append(loss)))
    return batch * steps / (times[-1] - times[WARMUP_STEPS - 1]), losses


def run_bench(model: str, *, batch: int | None = None, steps: int | None = None, image_size: int = 0,
              data: str | None = None, accuracy_steps: int = 0, out: Path | None = None) -> dict:
    """Measure, print the table, and save OUT/bench_train_MODEL.json (default: the benchmark results folder)."""
    from ..console import new_table, note, print_table, say
    from ..models import model_entry
    from ..provenance import save_benchmark

    entry = model_entry(model)
    size = image_size or entry.input_size[1]
    small = size <= 64
    batch = batch or (128 if small else 32)
    steps = steps or (30 if small else 4)
    with tempfile.TemporaryDirectory(prefix="reslab-bench-") as tmp:
        tmp = Path(tmp)
        if data:
            folder = Path(data)
        else:
            n = batch * (WARMUP_STEPS + max(steps, accuracy_steps)) + batch
            note(f"writing {n} generated {size if small else 256}px JPEGs ...")
            folder = write_bench_images(tmp / "images", n, size if small else 256)
        mean, std = entry.mean, entry.std
        note(f"textbook fp32 loop: {model}, batch {batch}, {steps} timed steps ...")
        base_speed, _ = textbook_loop(model, folder, batch, steps, size, 10, mean, std)
        note("engine (in-memory data, bf16, channels_last) ...")
        engine_speed, _ = engine_run(model, folder, batch, steps, size, "bf16", True, tmp / "runs")
        result = {
            "benchmark": "bench_train", "model": model, "batch": batch, "timed_steps": steps, "image_size": size,
            "textbook_fp32_images_per_s": base_speed, "engine_bf16_channels_last_images_per_s": engine_speed,
            "speedup": engine_speed / base_speed, "threads": torch.get_num_threads(),
            "command": "reslab bench train " + shlex.join(sys.argv[3:] if sys.argv[1:3] == ["bench", "train"] else [model]),
        }
        if accuracy_steps:
            note(f"loss curves, fp32 vs bf16 engine, {accuracy_steps} steps each ...")
            curves = {}
            for amp in ("off", "bf16"):
                _, curves[amp] = engine_run(model, folder, batch, accuracy_steps - WARMUP_STEPS, size, amp,
                                            amp == "bf16", tmp / "runs")
            window = max(1, len(curves["off"]) // 5)
            fp32_end, bf16_end = float(np.mean(curves["off"][-window:])), float(np.mean(curves["bf16"][-window:]))
            result.update(accuracy_steps=accuracy_steps, fp32_final_loss=fp32_end, bf16_final_loss=bf16_end,
                          loss_curve_fp32=curves["off"], loss_curve_bf16=curves["bf16"])
    table = new_table("loop", "images/s", "ratio", right=("images/s", "ratio"),
                      title=f"training throughput: {model}, batch {batch}, {size}px, {torch.get_num_threads()} threads")
    table.add_row("textbook fp32 eager (PIL + DataLoader)", f"{base_speed:.1f}", "1.00x")
    table.add_row("engine: in-memory batches, bf16, channels_last", f"{engine_speed:.1f}", f"{result['speedup']:.2f}x")
    print_table(table)
    if accuracy_steps:
        note(f"mean loss over the last {window} of {accuracy_steps} steps: fp32 {result['fp32_final_loss']:.4f}, "
                      f"bf16 {result['bf16_final_loss']:.4f}")
    say(f"reproduce: {result['command']}")
    say(f"saved {save_benchmark(f'bench_train_{model}', result, out)}", markup=False)
    return result
