"""The search page: `reslab serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import SEARCH, app
from .options import IndexPath, Precision, Runtime, Store


@app.command(rich_help_panel=SEARCH)
def serve(
    index: IndexPath,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest accepted upload, in MiB (413 past it).")] = 10.0,
    store: Store = None,
    runtime: Runtime = "auto",
    precision: Precision = None,
) -> None:
    """Serve the similarity-search page for an index: upload or click an image, see its neighbours."""
    import uvicorn

    from ..console import say
    from ..web.app import create_app

    # uploads come one at a time: the runtime is the index's own, or chosen for batch 1
    web_app = create_app(index, max_upload_bytes=int(max_upload_mb * 2**20), store=store,
                         runtime={"runtime": runtime, "precision": precision, "batch_size": 1})
    say(f"serving {index} at http://{host}:{port}/  (API docs at /docs; Ctrl-C stops)", markup=False)
    uvicorn.run(web_app, host=host, port=port, log_level="info")
