"""Demo stage "search": find the originals of edited copies, then group near-duplicates.

The photos bundled with scikit-image and scikit-learn are indexed with EfficientNet-Lite0 ImageNet
features; each flipped, halved, recompressed (JPEG q=40) or cropped copy is used as a query and
must find its original first. Then the whole collection is indexed and `reslab duplicates` groups
every photo with its copies. Budget: about two minutes on two cores.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from ..console import new_table, print_table

# one copy per kind of edit, from different photos, for the figure
FIGURE_EXAMPLES = {"astronaut__flipped", "coffee__resized", "rocket__jpeg40", "flower__cropped"}


def run(out: Path, console: Console) -> None:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from ..search.duplicates import find_duplicates
    from ..search.embed import EmbedOptions, build_index
    from ..embeddings import make_embedder
    from ..search.index import SearchIndex
    from ..search.samples import write_photo_collection

    originals, copies = write_photo_collection(out / "photos")
    embedder = make_embedder("cnn", model="efficientnet_lite0", weights="imagenet")
    console.print(f"indexing the bundled photos in {originals} with {embedder.model_name} (ImageNet weights)")
    build_index(originals, out / "index-originals", embedder, EmbedOptions(workers=1))

    table = new_table("copy", "top-1", "score", "runner-up", "OK", right=("score",),
                      title="Each edited copy, used as a query, finds its original first")
    found = 0
    examples = []
    with SearchIndex.open(out / "index-originals") as index:
        copy_paths = sorted(copies.glob("*.jpg"))
        for path in copy_paths:
            hits = index.search_image(path, k=2)
            ok = Path(hits[0].path).stem == path.stem.split("__")[0]
            found += ok
            runner = f"{Path(hits[1].path).stem} {hits[1].score:.3f}" if len(hits) > 1 else ""
            table.add_row(path.name, Path(hits[0].path).name, f"{hits[0].score:.3f}", runner, "[green]yes[/]" if ok else "[red]NO[/]")
            if path.stem in FIGURE_EXAMPLES:
                examples.append((path, hits))
    print_table(table, console=console)
    console.print(f"[bold]{found}/{len(copy_paths)}[/] copies found their original as the top hit")
    _plot_examples(examples, out / "copies_and_originals.png")
    console.print(f"wrote {out / 'copies_and_originals.png'}")

    index_dir = out / "index"
    report = build_index(out / "photos", index_dir, embedder, EmbedOptions(workers=1))
    console.print(f"indexed all {report.count} photos and copies into {index_dir} ({report.seconds:.1f} s)")
    with SearchIndex.open(index_dir) as index:
        groups = find_duplicates(index, threshold=0.85)
    console.print(f"`reslab duplicates {index_dir} --threshold 0.85`: {len(groups)} groups")
    for g in groups:
        names = ", ".join(Path(h.path).name for h in g.items)
        console.print(f"  {len(g.items)} images (weakest link {g.min_score:.3f}): {names}", highlight=False)
    console.print(f"search them in a browser: [bold]reslab serve {index_dir}[/]")


def _plot_examples(examples, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_open
    from ..imageio import load_image

    if not examples:
        return
    fig, axes = plt.subplots(len(examples), 3, figsize=(7.5, 2.4 * len(examples)), squeeze=False)
    for row, (query, hits) in zip(axes, examples):
        row[0].imshow(load_image(query))
        row[0].set_title(f"query: {query.stem}", fontsize=8)
        for ax, h in zip(row[1:], hits):
            ax.imshow(load_image(h.path))
            ax.set_title(f"{Path(h.path).stem}  {h.score:.3f}", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
