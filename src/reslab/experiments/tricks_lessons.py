"""One function per training lesson: its table, its figure and its verdict, from the trained runs."""

from __future__ import annotations

from pathlib import Path

from .common import fmt_mean_std
from .tricks import BASE_LR, DROPOUT, SMOOTHING
from .tricks_report import _axes, _finish, curve, differs, error_curves, m, mean_last, save, seeds_note


def dropout_lesson(out: Path, runs, preset, evaluate) -> dict:
    plain, drop = runs["fmnist-plain"], runs["fmnist-dropout"]
    rows, nums = [], {}
    for label, rs in (("no dropout", plain), (f"dropout {DROPOUT}", drop)):
        train_err = [100 - v for v in evaluate.mean(rs, "top1", split="train")]
        test_err = mean_last(rs, "val_top1", error=True)
        losses = [[row["val_loss"] for row in r.rows if "val_loss" in row] for r in rs]
        lowest = [min(v) for v in losses]
        best_epoch = [v.index(min(v)) + 1 for v in losses]
        final = [v[-1] for v in losses]
        gap = [t - tr for t, tr in zip(test_err, train_err)]
        nums[label] = {"train_error": train_err, "test_error": test_err, "gap": gap, "lowest_test_loss": lowest,
                       "lowest_test_loss_epoch": best_epoch, "final_test_loss": final}  # fmt: skip
        rows.append(f"| {label} | {fmt_mean_std(train_err)} | {fmt_mean_std(test_err)} | {fmt_mean_std(gap)} | "
                    f"{fmt_mean_std(lowest, 3)} (epoch {best_epoch[0]}) -> {fmt_mean_std(final, 3)} |")
    table = ["| network | training error (%) | test error (%) | gap (points) | test loss: lowest -> final |",
             "|---|---|---|---|---|", *rows]
    p, d = nums["no dropout"], nums[f"dropout {DROPOUT}"]
    n_train = evaluate(plain[0], split="train")["count"]
    memorises = m(p["train_error"]) < 2.0 and m(p["final_test_loss"]) > 1.1 * m(p["lowest_test_loss"])
    first = (f"Without dropout the network {'memorises' if memorises else 'fits'} its training images "
             f"({m(p['train_error']):.1f}% training error against {m(p['test_error']):.1f}% test error, a gap of "
             f"{m(p['gap']):.1f} points; test loss lowest at epoch {p['lowest_test_loss_epoch'][0]} "
             f"({m(p['lowest_test_loss']):.3f}), then rising to {m(p['final_test_loss']):.3f})"
             + (": a high score with low ability." if memorises else "."))
    change = m(d["test_error"]) - m(p["test_error"])
    word = "lowers" if change < 0 else "raises"
    second = (f"Dropout {DROPOUT} on the fully connected layers narrows the gap to {m(d['gap']):.1f} points "
              f"(training error {m(d['train_error']):.1f}%) and {word} the test error by {abs(change):.1f} points "
              f"to {m(d['test_error']):.1f}%{seeds_note(plain)}.")
    if not differs(p["test_error"], d["test_error"]):
        second = (f"Dropout {DROPOUT} narrows the gap to {m(d['gap']):.1f} points, but its test error "
                  f"({m(d['test_error']):.1f}%) is within seed noise of the plain network's.")
    plt, fig, (ax1, ax2) = _axes(2)
    error_curves(ax1, {"no dropout": plain, f"dropout {DROPOUT}": drop}, "test")
    _finish(ax1, "epoch", "error (%)", "error: training (dashed, with dropout active) and test")
    for i, (label, rs) in enumerate((("no dropout", plain), (f"dropout {DROPOUT}", drop))):
        x, y = curve(rs, "val_loss")
        ax2.plot(x, y, color=f"C{i}", lw=2, label=label)
    _finish(ax2, "epoch", "test loss", "test loss (rises when the network memorises)")
    figure = save(fig, out / "dropout.png", f"Dropout on Fashion-MNIST ({n_train:,} training images, "
                                            f"{plain[0].config['model']['name']})")
    return {"title": "Dropout (Fashion-MNIST)", "table": table, "verdict": [first, second], "numbers": nums, "figure": figure}


def early_stopping_lesson(out: Path, runs, preset, evaluate) -> dict:
    stop_runs, plain = runs["fmnist-early-stop"], runs["fmnist-plain"]
    run = stop_runs[0]
    losses = [row["val_loss"] for row in run.rows if "val_loss" in row]
    best_epoch = losses.index(min(losses)) + 1
    stop_epoch = int(run.rows[-1]["epoch"])
    planned = int(run.config["train"]["epochs"])
    kept = [100 - v for v in evaluate.mean(stop_runs, "top1", which="best")]
    at_stop = [100 - v for v in evaluate.mean(stop_runs, "top1")]
    to_end = [100 - v for v in evaluate.mean(plain, "top1")]
    nums = {"best_epoch": best_epoch, "stop_epoch": stop_epoch, "planned_epochs": planned, "patience": preset.patience,
            "kept_test_error": kept, "stop_test_error": at_stop, "full_training_test_error": to_end}  # fmt: skip
    table = ["| weights | epoch | test error (%) |", "|---|---|---|",
             f"| kept by early stopping (lowest validation loss) | {best_epoch} | {fmt_mean_std(kept)} |",
             f"| at the stop (patience {preset.patience}) | {stop_epoch} | {fmt_mean_std(at_stop)} |",
             f"| trained to the end, no stopping | {planned} | {fmt_mean_std(to_end)} |"]
    diff = m(to_end) - m(kept)
    stopped = stop_epoch < planned
    verdict = [
        (f"The validation loss (a 10% hold-out of the training set) is lowest at epoch {best_epoch}; "
         + (f"with patience {preset.patience} training stops at epoch {stop_epoch} of {planned}, "
            if stopped else f"it never stalls for {preset.patience} evaluation{'s' * (preset.patience != 1)}, so training runs all {planned} epochs, ")
         + f"and the weights it keeps score {m(kept):.2f}% test error against {m(to_end):.2f}% after all {planned} epochs: "
         + (f"{abs(diff):.2f} points {'better' if diff > 0 else 'worse'}" if abs(diff) >= 0.05 else "the same")
         + (f" for {100 * (planned - stop_epoch) / planned:.0f}% less training" if stopped else "")
         + f"{seeds_note(stop_runs)}.")
    ]
    plt, fig, (ax1, ax2) = _axes(2)
    x, y = curve(stop_runs, "val_loss")
    ax1.plot(x, y, color="C0", lw=2, label="validation loss")
    ax1.axvline(best_epoch, color="C2", ls="--", label=f"lowest (epoch {best_epoch}): weights kept")
    if stopped:
        ax1.axvline(stop_epoch, color="C3", ls=":", label=f"stopped (epoch {stop_epoch}, patience {preset.patience})")
    _finish(ax1, "epoch", "loss", "validation loss of the early-stopped run")
    x, y = curve(stop_runs, "val_top1", error=True)
    ax2.plot(x, y, color="C0", lw=2, label="validation error (early-stopped run)")
    x, y = curve(plain, "val_top1", error=True)
    ax2.plot(x, y, color="0.5", lw=1.5, label="test error, training on")
    ax2.axvline(best_epoch, color="C2", ls="--")
    _finish(ax2, "epoch", "error (%)", "errors: where it stops, and what training on gives")
    figure = save(fig, out / "early_stopping.png", "Early stopping on Fashion-MNIST")
    return {"title": "Early stopping (Fashion-MNIST)", "table": table, "verdict": verdict, "numbers": nums, "figure": figure}


def augmentation_lesson(out: Path, runs, preset, evaluate) -> dict:
    on, off = runs["base"], runs["no-augment"]
    nums = {}
    for label, rs in (("off", off), ("on (pad, crop, flip)", on)):
        nums[label] = {"train_error": mean_last(rs, "train_top1", error=True),
                       "test_error": [100 - v for v in evaluate.mean(rs, "top1")]}  # fmt: skip
    table = ["| augmentation | final training error (%) | test error (%) |", "|---|---|---|"]
    table += [f"| {k} | {fmt_mean_std(v['train_error'])} | {fmt_mean_std(v['test_error'])} |" for k, v in nums.items()]
    a, b = nums["off"], nums["on (pad, crop, flip)"]
    change = m(b["test_error"]) - m(a["test_error"])
    pad = on[0].config["data"]["cifar_pad"]
    if change == 0:
        effect = f"leaves the test error at {m(a['test_error']):.2f}%"
    else:
        effect = f"{'lowers' if change < 0 else 'raises'} the test error from {m(a['test_error']):.2f}% to {m(b['test_error']):.2f}%"
    regularises = change < 0 and m(b["train_error"]) > m(a["train_error"])
    verdict = [f"The paper's augmentation (zero-pad {pad} pixel{'s' * (pad != 1)}, random crop, flip) {effect} while the "
               f"training error goes from {m(a['train_error']):.2f}% to {m(b['train_error']):.2f}%: "
               + ("it gives up fit on the training images for generalisation" if regularises else "at this budget it does not pay")
               + f"{seeds_note(on)}."]
    plt, fig, (ax,) = _axes(1, width=6.5)
    error_curves(ax, {"off": off, "on": on}, "held-out")
    _finish(ax, "epoch", "error (%)", "training (dashed) and held-out (bold) error")
    figure = save(fig, out / "augmentation.png", "Data augmentation on CIFAR-10")
    return {"title": "Data augmentation (CIFAR-10)", "table": table, "verdict": verdict, "numbers": nums, "figure": figure}


def label_smoothing_lesson(out: Path, runs, preset, evaluate) -> dict:
    base, smooth = runs["base"], runs["smoothing"]
    nums = {}
    for label, rs in (("0", base), (f"{SMOOTHING}", smooth)):
        nums[label] = {"test_error": [100 - v for v in evaluate.mean(rs, "top1")], "ece": evaluate.mean(rs, "ece"),
                       "confidence": evaluate.mean(rs, "confidence"), "accuracy": evaluate.mean(rs, "top1")}  # fmt: skip
    table = ["| label smoothing | test error (%) | ECE (%) | mean confidence (%) |", "|---|---|---|---|"]
    table += [f"| {k} | {fmt_mean_std(v['test_error'])} | {fmt_mean_std(v['ece'])} | {fmt_mean_std(v['confidence'])} |"
              for k, v in nums.items()]  # fmt: skip
    a, b = nums["0"], nums[f"{SMOOTHING}"]

    def confidence_word(v):
        gap = m(v["confidence"]) - m(v["accuracy"])
        return f"{'over' if gap > 0 else 'under'}-confident by {abs(gap):.1f} points"

    acc_change = m(a["test_error"]) - m(b["test_error"])
    verdict = [f"Label smoothing {SMOOTHING} {'raises' if acc_change > 0 else 'lowers'} test accuracy by "
               f"{abs(acc_change):.2f} points and moves the calibration error from {m(a['ece']):.2f}% to {m(b['ece']):.2f}%: "
               f"without it the network is {confidence_word(a)}, with it {confidence_word(b)}{seeds_note(base)}."]
    plt, fig, (ax,) = _axes(1, width=5.5)
    ax.plot([0, 100], [0, 100], color="0.6", ls="--", lw=1, label="perfect calibration")
    for i, (label, rs) in enumerate((("no smoothing", base), (f"smoothing {SMOOTHING}", smooth))):
        result = evaluate(rs[0])
        # bins of a handful of images are noise: show those with at least 0.5% of the test set
        bins = [bn for bn in result["bins"] if bn["count"] >= max(1, 0.005 * result["count"])]
        ax.plot([100 * bn["confidence"] for bn in bins], [100 * bn["accuracy"] for bn in bins], "o-", color=f"C{i}",
                label=f"{label} (ECE {m(nums['0' if i == 0 else f'{SMOOTHING}']['ece']):.1f}%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    _finish(ax, "confidence (%)", "accuracy (%)", "reliability: test images binned by confidence")
    figure = save(fig, out / "label_smoothing.png", "Label smoothing and calibration on CIFAR-10")
    return {"title": "Label smoothing and calibration (CIFAR-10)", "table": table, "verdict": verdict, "numbers": nums,
            "figure": figure}


def warmup_lesson(out: Path, runs, preset, evaluate) -> dict:
    b, big = preset.batch, preset.large_batch
    lr = BASE_LR * big / b
    named = {f"batch {b}, lr {BASE_LR:g}": runs["base"], f"batch {big}, lr {lr:g}, no warm-up": runs["large-batch"],
             f"batch {big}, lr {lr:g}, warm-up {preset.warmup_epochs:g} epoch{'s' * (preset.warmup_epochs != 1)}": runs["large-batch-warmup"]}
    nums = {}
    for label, rs in named.items():
        first = [r.rows[0]["train_loss"] for r in rs]
        nums[label] = {"test_error": [100 - v for v in evaluate.mean(rs, "top1")], "first_epoch_loss": first,
                       "steps": [r.rows[-1]["step"] for r in rs]}  # fmt: skip
    table = ["| run | optimizer steps | first-epoch training loss | test error (%) |", "|---|---|---|---|"]
    table += [f"| {k} | {v['steps'][0]} | {fmt_mean_std(v['first_epoch_loss'], 3)} | {fmt_mean_std(v['test_error'])} |"
              for k, v in nums.items()]  # fmt: skip
    small, cold, warm = (nums[k] for k in named)
    lost = m(cold["test_error"]) - m(small["test_error"])
    recovered = m(cold["test_error"]) - m(warm["test_error"])
    verdict = [f"Scaling the batch from {b} to {big} with the learning rate x{big / b:g} (the linear scaling rule) ends at "
               f"{m(cold['test_error']):.2f}% test error without warm-up and {m(warm['test_error']):.2f}% with "
               f"{preset.warmup_epochs:g} epoch{'s' * (preset.warmup_epochs != 1)} of warm-up, against {m(small['test_error']):.2f}% at batch {b}. "
               + (f"Warm-up recovers {recovered:.2f} of the {lost:.2f} points lost" if lost > 0 and recovered > 0
                  else "Warm-up does not help here" if recovered <= 0 else "The cold start loses nothing here")
               + f"; the large batch makes only {cold['steps'][0]} steps against {small['steps'][0]}, so the rule's "
               "promise of equal accuracy needs more epochs than this budget gives" + f"{seeds_note(runs['base'])}."]
    plt, fig, (ax1, ax2) = _axes(2)
    for i, (label, rs) in enumerate(named.items()):
        x, y = curve(rs, "val_top1", error=True)
        ax1.plot(x, y, color=f"C{i}", lw=2, label=label)
        x, y = curve(rs, "train_loss")
        ax2.plot(x, y, color=f"C{i}", lw=2, label=label)
    _finish(ax1, "epoch", "held-out error (%)", "held-out error")
    _finish(ax2, "epoch", "training loss", "training loss", log=True)
    figure = save(fig, out / "warmup.png", "Warm-up and the linear scaling rule on CIFAR-10")
    return {"title": "Warm-up and the linear scaling rule (CIFAR-10)", "table": table, "verdict": verdict, "numbers": nums,
            "figure": figure}


def optimisers_lesson(out: Path, runs, preset, evaluate) -> dict:
    named = {"SGD (lr 0.1)": runs["sgd"], "SGD + momentum 0.9 (lr 0.1)": runs["base"],
             "AdamW (lr 0.002, weight decay 0.05)": runs["adamw"]}
    nums = {}
    for label, rs in named.items():
        nums[label] = {"final_train_loss": mean_last(rs, "train_loss"), "test_error": [100 - v for v in evaluate.mean(rs, "top1")],
                       "epoch2_heldout_error": [100 - r.rows[min(1, len(r.rows) - 1)]["val_top1"] for r in rs]}  # fmt: skip
    table = ["| optimiser | final training loss | held-out error after 2 epochs (%) | test error (%) |", "|---|---|---|---|"]
    table += [f"| {k} | {fmt_mean_std(v['final_train_loss'], 3)} | {fmt_mean_std(v['epoch2_heldout_error'])} | "
              f"{fmt_mean_std(v['test_error'])} |" for k, v in nums.items()]  # fmt: skip
    best = min(nums, key=lambda k: m(nums[k]["test_error"]))
    fastest = min(nums, key=lambda k: m(nums[k]["epoch2_heldout_error"]))
    epochs = runs["base"][0].config["train"]["epochs"]
    verdict = [f"On the same {epochs:g} epochs, {best} ends best ({m(nums[best]['test_error']):.2f}% test error; "
               + ", ".join(f"{k} {m(v['test_error']):.2f}%" for k, v in nums.items() if k != best)
               + f"); {fastest} makes the fastest start (held-out error after 2 epochs "
               f"{m(nums[fastest]['epoch2_heldout_error']):.2f}%){seeds_note(runs['base'])}."]
    plt, fig, (ax1, ax2) = _axes(2)
    for i, (label, rs) in enumerate(named.items()):
        x, y = curve(rs, "train_loss")
        ax1.plot(x, y, color=f"C{i}", lw=2, label=label)
        x, y = curve(rs, "val_top1", error=True)
        ax2.plot(x, y, color=f"C{i}", lw=2, label=label)
    _finish(ax1, "epoch", "training loss", "training loss", log=True)
    _finish(ax2, "epoch", "held-out error (%)", "held-out error")
    figure = save(fig, out / "optimisers.png", "Optimisers on CIFAR-10, same budget")
    return {"title": "Optimisers (CIFAR-10)", "table": table, "verdict": verdict, "numbers": nums, "figure": figure}


LESSON_SUMMARIES = {
    "dropout": dropout_lesson,
    "early_stopping": early_stopping_lesson,
    "augmentation": augmentation_lesson,
    "label_smoothing": label_smoothing_lesson,
    "warmup": warmup_lesson,
    "optimisers": optimisers_lesson,
}
