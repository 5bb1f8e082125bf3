"""Connecting to Milvus: a Milvus Lite file in this process, or a server; clear errors when it fails.

Milvus Lite runs inside the process that opens the file (threads, no child process: a kill leaves
nothing behind) and serves one process at a time (a lock on the file). Every store opened on a
Lite file shares one engine; the last to close stops it and frees the file for other processes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import ReslabError
from .stores import IndexMissing, MilvusAddress


def _quiet_pymilvus() -> None:
    # pymilvus logs every failed call with a traceback at ERROR (we turn failures into one-line
    # messages) and warns about client-side timestamps on Milvus Lite; its import configures its
    # loggers, so this runs after the import. Milvus Lite reports each engine start at INFO.
    for name in ("pymilvus", "pymilvus.milvus_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("milvus_lite").setLevel(logging.WARNING)
    # Milvus Lite's in-process gRPC server logs a traceback for each call it does not implement
    # (pymilvus's query iterator asks it for a timestamp, then falls back to the client's clock)
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)


_clients: dict[str, int] = {}  # open stores per Milvus Lite file in this process: the engine stops with the last


def connect(address: MilvusAddress, create: bool = False):
    """A MilvusClient for the address, or a clear error (a missing file, a locked file, no server)."""
    # gRPC's C core prints an INFO line to stderr at every fork while its threads run (embed's decode
    # workers fork): "Other threads are currently calling into gRPC, skipping fork() handlers".
    # Read once, when grpc is first imported; a user's own setting wins.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ReslabError("the Milvus store needs pymilvus (and milvus-lite for milvus:///file.db): pip install 'reslab[milvus]'") from None
    _quiet_pymilvus()
    if address.is_lite:
        path = Path(address.uri)
        if not create and not path.exists():
            raise IndexMissing(f"there is no Milvus Lite file {path}; build an index there with `reslab embed SRC --out NAME --store milvus://{path}`")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        client = MilvusClient(uri=address.uri, token=address.token, timeout=30)
        _clients[address.uri] = _clients.get(address.uri, 0) + 1
        return client
    except Exception as e:
        if address.is_lite and _lite_locked(Path(address.uri)):
            raise ReslabError(
                f"the Milvus Lite file {address.uri} is open in another process (Milvus Lite serves one process at a time); "
                "stop that process, or put the index on a Milvus server to share it"
            ) from None
        raise ReslabError(f"cannot connect to Milvus at {address.public_uri()} ({first_line(e)}); check the address and that the server runs") from None


def release(address: MilvusAddress) -> None:
    """Done with a client: the last one of a Milvus Lite file stops this process's engine (and frees the file for others)."""
    _clients[address.uri] = _clients.get(address.uri, 1) - 1
    if address.is_lite and _clients[address.uri] <= 0:
        try:
            from milvus_lite.server_manager import server_manager_instance
        except ImportError:
            return
        server_manager_instance.release_server(address.uri)


def _lite_locked(path: Path) -> bool:
    lock = path / "LOCK"
    if not lock.exists():
        return False
    import fcntl

    with open(lock, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def first_line(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(e).__name__
