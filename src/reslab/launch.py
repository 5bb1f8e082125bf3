"""Where this process stands in a `torchrun` launch, read from the environment in one place.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK for every process it starts; a plain `reslab ...`
has none of them and is rank 0 of 1. Training (DDP) and sharded embedding both read them here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ReslabError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_env() -> DistInfo:
    """This process's rank, world size and local rank (0, 1, 0 outside torchrun)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return DistInfo()
        info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        shown = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        raise ReslabError(f"the torchrun environment {shown} is incomplete or not integers; launch with torchrun, "
                          "or unset WORLD_SIZE to run one process") from None  # fmt: skip
    if not 0 <= info.rank < world_size:
        raise ReslabError(f"RANK={info.rank} is outside WORLD_SIZE={world_size}; launch with torchrun")
    return info
