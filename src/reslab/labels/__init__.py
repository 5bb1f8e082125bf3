"""Class names shipped with the package: the 1000 ImageNet-1k classes in the standard index order."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    assert len(names) == 1000, f"imagenet_classes.txt holds {len(names)} names, expected 1000"
    return names


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names; index i is the name of logit i of an ImageNet model."""
    # a fresh list each call, so a caller that edits it cannot corrupt the cache
    return list(_imagenet_classes())


__all__ = ["imagenet_classes"]
