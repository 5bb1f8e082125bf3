"""User-facing errors.

A `ReslabError` is a mistake the user can fix (a bad path, a corrupt image, a config typo, a
checkpoint for another network). The CLI prints its message as one line and exits non-zero,
never a traceback; the message names the thing and the fix.
"""


class ReslabError(Exception):
    """An error caused by the user's input, with a message that says how to fix it."""


class InputSizeError(ReslabError, ValueError):
    """An input of a size the network cannot take (a ValueError too, as PyTorch's own shape errors
    are RuntimeErrors and ValueErrors that callers probing for a working size already catch)."""
