"""The shared vocabulary of the command line: one name, one meaning, in every command.

A command takes these as `Annotated` aliases with its own default, e.g.

    def predict(..., batch_size: BatchSize = 32, device: Device = "auto", as_json: JsonOutput = False):

so that `--batch-size`, `--device`, `--json`, `-k/--top-k`, `--workers`, `--weights`, `--set`,
`--seed` read and behave the same wherever they appear. `tests/cli/test_vocabulary.py` walks every
command's options and fails when a command spells one of these differently (`--batch`, a `-k` that
is not an integer, a `--json` that writes anything but one JSON document to stdout).

Nothing here imports torch: `reslab --help` must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, Sequence

import typer

# --- the one default policy for devices: `auto` is CUDA when a GPU is there, else the CPU
DEVICE_HELP = "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N."
Device = Annotated[str, typer.Option("--device", help=DEVICE_HELP)]

# --- one JSON document on stdout (logs, progress and "wrote ..." lines go to stderr)
JsonOutput = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout instead of tables.")]

BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")]

# -k is always one integer; several cut-offs are --cutoffs 1,5,10
TopK = Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many results.")]

WORKERS_HELP = "Decode processes: N, 0 = in this process, -1 = one per core (at most 8)."
Workers = Annotated[int, typer.Option("--workers", min=-1, help=WORKERS_HELP)]
# embedding: the default follows the machine (reslab.inference.threads.decode_workers)
DecodeWorkers = Annotated[
    Optional[int],
    typer.Option("--workers", min=-1, help=WORKERS_HELP + " Default: 0 on up to 2 cores, else one per 4 cores (docs/inference.md, Threads)."),
]

Weights = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="A weights tag such as imagenet, or a .pth/.safetensors file."),
]

Overrides = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config key, e.g. --set optim.lr=0.05 (repeatable)."),
]

Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]

# --- where an index lives; recorded when `embed` creates it, so other commands need it only
# where the index's folder is absent (a search server on another machine)
STORE_HELP = (
    "Where the index lives: local (a folder, the default), milvus:///path/photos.db (Milvus Lite, one machine) or "
    "milvus://host:19530 (a Milvus server or cluster; http(s):// too); the collection is named after the index."
)
Store = Annotated[Optional[str], typer.Option("--store", help=STORE_HELP)]

# --- how a network runs (reslab.inference): predict, eval, embed, search, serve, bench embed
RUNTIME_HELP = ("How the network runs: auto (an index's own runtime when it has one; else each runtime is measured "
                "here once, those matching fp32 kept, the fastest used; cached), torch, torch-compile, onnxruntime or openvino.")
Runtime = Annotated[str, typer.Option("--runtime", help=RUNTIME_HELP)]
Precision = Annotated[
    Optional[str],
    typer.Option("--precision", help="fp32 or bf16. With --runtime auto it narrows the candidates; with a named runtime it defaults to fp32."),
]

# --- arguments
ModelName = Annotated[str, typer.Argument(help="A zoo model name (see `reslab models`).")]
ModelOrRun = Annotated[
    str, typer.Argument(help="A zoo model name (see `reslab models`), or a run folder / checkpoint from `reslab train`.")
]
IndexPath = Annotated[Path, typer.Argument(help="An index made by `reslab embed`: its folder (or, with --store, its name).")]
RunPath = Annotated[Path, typer.Argument(help="A run folder, a .pt checkpoint or a model.safetensors.")]

def comma_choices(text: str, option: str, choices: Sequence[str]) -> list[str]:
    """'flat, ivf' -> ['flat', 'ivf'] for a comma-separated list option; anything outside `choices`
    (or nothing at all) is one clear error naming the option and the choices."""
    from ..errors import ReslabError

    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in choices]
    if unknown or not chosen:
        got = f"unknown {', '.join(map(repr, unknown))}" if unknown else "nothing given"
        raise ReslabError(f"{option} {text!r}: {got}; give some of {', '.join(choices)}, separated by commas")
    return chosen


# The option names above, for the vocabulary test and for readers: a new command reuses them.
SHARED_OPTIONS = {
    "--device": "str: auto | cpu | cuda | cuda:N",
    "--json": "flag: one JSON document on stdout",
    "--batch-size": "int >= 1",
    "--top-k/-k": "int >= 1",
    "--workers": "int: N, 0 in-process, -1 one per core",
    "--weights/-w": "tag or file",
    "--set": "key=value, repeatable",
    "--seed": "int",
    "--store": "local | milvus:///file.db | milvus://host:port",
    "--runtime": "auto | torch | torch-compile | onnxruntime | openvino",
    "--precision": "fp32 | bf16",
}
