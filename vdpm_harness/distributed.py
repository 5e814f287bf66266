"""Data-parallel evaluation: one process per GPU (``torchrun``), work claimed chunk by chunk, results merged.

Under ``torchrun --nproc_per_node=N -m vdpm_harness run ...`` every process plans the same items in the same order.
Instead of striding samples statically over ranks (long-tailed video workloads then finish hours apart), the items are
cut into chunks and each process *claims* the next unclaimed chunk by creating a file with ``O_CREAT | O_EXCL`` in
the pair's folder, so ranks that get short videos simply take more chunks and all finish together. No collective runs
during inference; each rank appends to its own store shard (``predictions.rank<R>.jsonl``). At the end one barrier,
then rank 0 reads every shard (the result keys do not depend on the rank or the world size), scores and reports.

Claims belong to one launch (an id broadcast by rank 0), so a run killed at any moment and relaunched with any
number of processes re-claims every chunk and skips the samples already stored.

The process group uses gloo (CPU) for this coordination whatever the model runs on, so it works the same on CPUs in
tests and on GPUs.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any


def local_rank() -> int:
    """This process's GPU index under torchrun (0 otherwise): model plugins put their replica on ``cuda:<this>``."""
    return int(os.environ.get("LOCAL_RANK", "0"))


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    launch_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, timeout_minutes: float = 24 * 60) -> Distributed:
        """Read torchrun's ``RANK`` / ``WORLD_SIZE``; join the process group and agree on a launch id."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=timedelta(minutes=timeout_minutes))
        launch = [uuid.uuid4().hex[:12]]
        dist.broadcast_object_list(launch, src=0)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), launch_id=launch[0])

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group after a last barrier. A rank that exits while gloo's threads still run can abort
        (``terminate called without an active exception``, SIGABRT), which fails the launch."""
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()

    def sum_counts(self, counts: Counter) -> Counter:
        """The element-wise sum of every rank's counter (for the run's summary)."""
        if not self.active:
            return counts
        import torch.distributed as dist

        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, dict(counts))
        return sum((Counter(c) for c in gathered), Counter())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank (``[value]`` in a single process)."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def shard(self) -> str | None:
        """The store shard this process appends to (None: the plain ``predictions.jsonl`` of a single process)."""
        return f"rank{self.rank}" if self.active else None


class WorkClaims:
    """Exclusive claims on chunk indices of one launch, as files under ``<folder>/claims/<launch id>/``."""

    def __init__(self, folder: Path, launch_id: str, chunk_size: int):
        self.root = Path(folder) / "claims"
        self.folder = self.root / launch_id
        self.chunk_size = chunk_size
        self.folder.mkdir(parents=True, exist_ok=True)

    def claim(self, index: int) -> bool:
        """True if this process now owns chunk ``index``; False if another process claimed it first."""
        try:
            fd = os.open(self.folder / f"{index:07d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return True

    def clear(self) -> None:
        """Remove this launch's claims (called by rank 0 once all its ranks are done). Other launches' claims stay:
        processes of an earlier launch that outlived their launcher may still be using theirs."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.root.rmdir()  # only if no other launch is active
        except OSError:
            pass
