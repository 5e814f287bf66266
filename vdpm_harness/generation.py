"""Resumable data generation: the driver of :class:`~vdpm_harness.interfaces.ItemGenerator`.

An item generator cuts its work into items (stable ids, in output order), produces one item at a time and finally
combines the finished items into its output files. :func:`generate` drives it:

* every finished item leaves a JSON record in a work folder inside ``out``, written atomically (complete or absent),
  and the item's own files are written under temporary names and renamed into ``out`` (:class:`ItemFiles`), so a
  run killed at any moment (``kill -9`` included) leaves only complete files; rerunning the same command skips the
  items whose record exists and produces the rest;
* the final files are combined from the records read back from disk, in item order, so a resumed run writes exactly
  the bytes of an uninterrupted one;
* an item that raises is reported with its id and the run goes on; a rerun retries it. When no item could be
  produced (or the generator finds its combined output empty) the run raises :class:`GenerationError`;
* under ``torchrun`` (``dist`` from :meth:`Distributed.from_env`) the processes share the items exactly as
  ``vdpm-harness run`` shares samples: each claims the next unclaimed item with an exclusive file
  (:class:`~vdpm_harness.distributed.WorkClaims`), then one barrier, then rank 0 combines. Records do not depend on
  the process, so a run resumed with another process count reuses every finished item.

The work folder is ``out/.vdpm-generate/<generator id>-<hash of its id, version, options and seed>``: other options
or another seed never reuse its records. It holds ``items/`` (the records), ``tmp/`` (files being written) and
``claims/``; it is removed when every item is done, and kept while some failed, so that the rerun retries only them.
Nothing else in ``out`` is deleted.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .distributed import Distributed, WorkClaims
from .records import stable_hash
from .store import default_mode, write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .interfaces import ItemGenerator

#: The folder in ``out`` that holds the work folders of interrupted or partly failed generations.
WORK_ROOT = ".vdpm-generate"
#: How many failures the message of a run that produced nothing quotes.
QUOTED_FAILURES = 3


class GenerationError(RuntimeError):
    """Nothing could be generated; the message says why (the failed items with their errors, or the empty output)."""


class ItemFiles:
    """Where one item writes its files: into ``out``, each under a temporary name first and renamed when complete.

    Temporary files live in the work folder (on the same file system as ``out``, so the rename is atomic); their
    names end with the target's name, so writers that choose the format by extension (``.mp4``, ``.npz``) work.
    """

    def __init__(self, out: Path, tmp: Path):
        self.out = Path(out)
        self.tmp = Path(tmp)

    def path(self, name: str) -> Path:
        """The final path of the output file ``name`` (relative to ``out``)."""
        return self.out / name

    @contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """Yield a temporary path to write ``name`` to; on normal exit it is synced and renamed to ``out / name``,
        when the block raises it is removed and ``out / name`` is untouched."""
        target = self.path(name)
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix=".", suffix=f"-{target.name}")
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, default_mode())  # mkstemp's 0600 would make outputs private to their writer
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def copy(self, source: str | Path, name: str) -> Path:
        """Copy ``source`` to ``out / name`` (atomically); nothing is written when that file already is ``source``
        or has its content (e.g. copied by an interrupted run)."""
        target = self.path(name)
        if target.exists() and (target.samefile(source) or filecmp.cmp(source, target, shallow=False)):
            return target
        with self.writing(name) as tmp:
            shutil.copyfile(source, tmp)
        return target


@dataclass
class ItemResults:
    """What :meth:`ItemGenerator.combine` gets: every item in order, the records of the finished ones (read back
    from disk, in item order), the items that failed in this run with their error, the items this run produced
    (the others were finished by an interrupted run) and this run's wall time in seconds."""

    items: list[str]
    records: dict[str, dict[str, Any]]
    failures: dict[str, str] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)
    seconds: float = 0.0


def work_folder(generator: ItemGenerator, out: Path, seed: int) -> Path:
    """The work folder of ``generator`` with its options and ``seed`` in ``out``."""
    key = {"generator": generator.id, "version": generator.version, "seed": seed,
           "options": generator.options.model_dump(mode="json")}  # fmt: skip
    return Path(out) / WORK_ROOT / f"{generator.id or type(generator).__name__}-{stable_hash(key, 12)}"


def record_path(work: Path, item: str) -> Path:
    return work / "items" / f"{quote(item, safe='')}.json"


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False)  # fmt: skip


def generate(generator: ItemGenerator, out: str | Path, seed: int = 0, *, dist: Distributed | None = None,
             console: Console | None = None) -> dict[str, Any]:  # fmt: skip
    """Produce every item of ``generator`` not finished yet, then (rank 0) combine them; return the generator's
    statistics (on the other ranks of a ``torchrun`` launch: this rank's counts)."""
    start = time.perf_counter()
    out = Path(out)
    dist = dist or Distributed()
    console = console or Console(stderr=True)
    name = generator.id or type(generator).__name__
    items = [str(item) for item in generator.items(seed)]
    if not items:
        raise GenerationError(f"{name}: nothing to generate (no work items)")
    repeated = sorted(item for item, n in Counter(items).items() if n > 1)
    if repeated:
        raise ValueError(f"{name}: work item ids must be unique; repeated: {', '.join(repeated[:5])}")
    work = work_folder(generator, out, seed)
    (work / "items").mkdir(parents=True, exist_ok=True)
    files = ItemFiles(out, work / "tmp" / f"{dist.launch_id}-{dist.rank}")
    claims = WorkClaims(work, dist.launch_id, chunk_size=1) if dist.active else None
    failures: dict[str, str] = {}
    fresh: list[str] = []

    def done() -> int:  # finished items, of every process (write_atomic's temporary files end with .tmp)
        return sum(1 for entry in os.scandir(work / "items") if entry.name.endswith(".json"))

    shown = 0.0  # when the progress bar last counted the records (at most twice a second: a folder listing)

    with _progress(console) if dist.is_main else nullcontext() as progress:
        title = name + (" (all ranks)" if dist.active else "")
        task = progress.add_task(title, total=len(items), completed=done()) if progress is not None else None
        for index, item in enumerate(items):
            path = record_path(work, item)
            if path.exists() or (claims is not None and not claims.claim(index)):
                continue
            try:
                record = generator.produce(item, seed, files)
                write_atomic(path, json.dumps(record, ensure_ascii=False))
                fresh.append(item)
            except Exception as exc:  # noqa: BLE001 - one failing item must not lose the others
                failures[item] = f"{type(exc).__name__}: {exc}"
                console.print(f"[red]{escape(name)}: item {escape(item)} failed:[/red] {escape(failures[item])}",
                              soft_wrap=True, highlight=False)  # fmt: skip
            if task is not None and time.monotonic() - shown > 0.5:
                progress.update(task, completed=done())
                shown = time.monotonic()
        if task is not None:
            progress.update(task, completed=done())
    shutil.rmtree(files.tmp, ignore_errors=True)
    dist.barrier()  # every rank's items are finished (or failed) past this point
    finished = done()  # counted by every rank before rank 0 may remove the work folder (after the gather)
    gathered = dist.gather((failures, fresh))
    errors = {item: error for part, _ in gathered for item, error in part.items()}
    failed = {item: errors[item] for item in items if item in errors}  # in item order
    if finished == 0:
        if dist.is_main:
            _clean(work, claims, remove=True)  # no record to resume from
        raise GenerationError(_nothing_produced(name, items, failed))
    if not dist.is_main:
        return {"rank": dist.rank, "produced": len(fresh), "failed": len(failures)}
    produced = {item for _, part in gathered for item in part}
    records = {}
    for item in items:
        path = record_path(work, item)
        if path.exists():
            records[item] = json.loads(path.read_text(encoding="utf-8"))
    results = ItemResults(items=items, records=records, failures=failed, fresh=produced,
                          seconds=time.perf_counter() - start)  # fmt: skip
    stats = generator.combine(out, seed, results)
    missing = len(items) - len(records)
    _clean(work, claims, remove=missing == 0)
    by_rank = f" (by rank: {', '.join(str(len(part)) for _, part in gathered)})" if dist.active else ""
    console.print(f"{escape(name)}: {len(items)} items: {len(produced)} produced by this run{by_rank}, "
                  f"{len(records) - len(produced)} by an earlier one, {missing} failed"
                  + (" (rerun the same command to retry them)" if missing else ""), highlight=False,
                  soft_wrap=True)  # fmt: skip
    empty = generator.empty(stats)
    if empty:
        raise GenerationError(f"{name}: {empty}")
    return stats


def _nothing_produced(name: str, items: list[str], failed: dict[str, str]) -> str:
    if not failed:
        return f"{name}: nothing was produced ({len(items)} items, none finished)"
    quoted = "; ".join(f"{item}: {error}" for item, error in list(failed.items())[:QUOTED_FAILURES])
    more = f"; and {len(failed) - QUOTED_FAILURES} more" if len(failed) > QUOTED_FAILURES else ""
    return f"{name}: nothing was produced: all {len(items)} items failed: {quoted}{more}"


def _clean(work: Path, claims: WorkClaims | None, remove: bool) -> None:
    """Remove the claims of this launch; and, when ``remove`` (every item is done), the whole work folder."""
    if claims is not None:
        claims.clear()
    if not remove:
        return
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.parent.rmdir()  # only if no other generator's work folder is left
    except OSError:
        pass
