"""The append-only prediction store of one (model, benchmark) pair, and atomic writes for derived files.

Each response becomes one JSON line, appended and fsync'ed as soon as its batch is done, keyed by a content hash
of everything that determines it (:func:`result_key`). Nothing in the key depends on the process or GPU count, so a
run resumed with another world size reuses every finished sample; shards written by several processes at once
(``predictions.<shard>.jsonl``) are read together.

A run killed at any moment (``kill -9`` included) leaves at most one torn last line per file; reading ignores it and
the next append cuts it off first, so nothing is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .records import GenerationSettings, Prediction, stable_hash

log = logging.getLogger(__name__)


def result_key(
    model_fingerprint: str,
    benchmark: str,
    benchmark_version: str,
    sample_id: str,
    prompt_hash: str,
    frame_indices: list[list[int]] | None,
    generation: GenerationSettings,
) -> str:
    """The content hash that identifies one response."""
    return stable_hash(
        {
            "model": model_fingerprint,
            "benchmark": benchmark,
            "benchmark_version": benchmark_version,
            "sample": sample_id,
            "prompt": prompt_hash,
            "frames": frame_indices,
            "generation": generation.model_dump(mode="json"),
        },
        length=32,
    )


class PredictionStore:
    """Append-only JSONL records in ``folder``; ``shard`` names this process's file."""

    def __init__(self, folder: str | Path, shard: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / (f"predictions.{shard}.jsonl" if shard else "predictions.jsonl")

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("predictions*.jsonl"))

    def records(self) -> Iterable[Prediction]:
        """Every well-formed record of every shard, in file order. Malformed lines are skipped with a warning."""
        for path in self.files():
            with path.open("rb") as handle:
                lines = handle.read().split(b"\n")
            complete = lines[:-1]  # the last element is b"" after a final newline, or a torn line
            if lines[-1].strip():
                log.warning("%s: ignoring an incomplete last line (an interrupted write)", path)
            for number, line in enumerate(complete, start=1):
                if not line.strip():
                    continue
                try:
                    yield Prediction.model_validate_json(line)
                except ValidationError as exc:
                    log.warning("%s:%d: skipping a malformed record: %s", path, number, exc.errors()[0]["msg"])

    def load(self) -> dict[str, Prediction]:
        """The current record per key: the latest one, except that an ``ok`` record is never replaced by an error."""
        current: dict[str, Prediction] = {}
        for record in self.records():
            previous = current.get(record.key)
            if previous is None or record.status == "ok" or previous.status == "error":
                current[record.key] = record
        return current

    def append(self, predictions: list[Prediction]) -> None:
        """Append records and make them durable before returning."""
        if not predictions:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._cut_torn_tail()
        payload = "".join(p.model_dump_json() + "\n" for p in predictions).encode("utf-8")
        with self.path.open("ab") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    def _cut_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            handle.truncate(keep)
            log.warning("%s: cut an incomplete last line left by an interrupted run", self.path)


def cache_root() -> Path:
    """The harness's cache folder: ``$VDPM_CACHE``, else ``~/.cache/vdpm-harness`` (data built on first use, API
    reply caches, extracted frames)."""
    return Path(os.environ.get("VDPM_CACHE", Path.home() / ".cache" / "vdpm-harness"))


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's content, read in 1 MiB blocks (checksums of benchmark data and outputs)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write a file so that readers see the old or the new content, never a mix (temp file + rename).

    ``data`` is the content, or a function that writes the file at the path it is given (e.g. ``workbook.save``).
    On failure the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if callable(data):
            os.close(fd)
            data(Path(tmp))
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def building(folder: str | Path) -> Iterator[Path]:
    """Build a data folder atomically: yields an empty staging folder beside ``folder``, which replaces ``folder``
    in one rename when the block ends normally and is removed when it raises (``folder`` is then untouched)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        yield staging
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def checksum_problems(folder: str | Path, files: dict[str, str], hint: str) -> list[str]:
    """One message per file of ``files`` (name -> :func:`file_digest`) missing from ``folder`` or changed there,
    each ending with ``hint`` (what to do about it)."""
    folder = Path(folder)
    return [
        f"{folder / name}: missing or checksum mismatch; {hint}"
        for name, digest in files.items()
        if not (folder / name).is_file() or file_digest(folder / name) != digest
    ]


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> None:
    """Write records as JSON lines, atomically (for derived files such as ``scores.jsonl``)."""
    write_atomic(path, "".join(r.model_dump_json() + "\n" for r in records))
