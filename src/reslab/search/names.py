"""File names as stores keep them: losslessly, including names that are not valid UTF-8.

Python hands a name that is not valid UTF-8 to us as a `str` with lone surrogates (PEP 383,
`os.fsdecode`); that is the form the API uses (`Item.path`), because it opens the file again.
A store whose text must be valid UTF-8 (Milvus VARCHAR) keeps such a name as a NUL followed by
the base64 of its bytes: a POSIX name never contains NUL, so the marker cannot be mistaken for a
real name, and every ordinary name is stored as it is. (The local store's SQLite keeps such a
name as a BLOB of its bytes instead: `store.to_db`; both give back the same `str`.)
"""

from __future__ import annotations

import base64
import hashlib
import os

RAW_MARKER = "\0"


def name_bytes(name: str) -> bytes:
    """The bytes of a file name as the OS has them (the inverse of `os.fsdecode`)."""
    return os.fsencode(name)


def to_text(name: str) -> str:
    """A valid UTF-8 string that `from_text` turns back into exactly `name`."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return RAW_MARKER + base64.b64encode(name_bytes(name)).decode("ascii")


def from_text(text: str) -> str:
    if text.startswith(RAW_MARKER):
        return os.fsdecode(base64.b64decode(text[1:]))
    return text


def name_key(name: str) -> int:
    """A stable signed 64-bit hash of a name's bytes: an integer to look names up by (no string escaping)."""
    return int.from_bytes(hashlib.blake2b(name_bytes(name), digest_size=8).digest(), "little", signed=True)
