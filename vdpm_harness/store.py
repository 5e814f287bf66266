"""The append-only prediction store of one (model, benchmark) pair, folder locks, and safe writes of derived files.

Each response becomes one JSON line, appended and fsync'ed as soon as its batch is done, keyed by a content hash
of everything that determines it (:func:`result_key`). Nothing in the key depends on the process or GPU count, so a
run resumed with another world size reuses every finished sample; shards written by several processes at once
(``predictions.<shard>.jsonl``) are read together.

Writers never lose each other's records: every append holds an exclusive ``flock`` on its file while it cuts a torn
last line and writes, so two processes appending to the same file (two runs on one ``--out``) interleave whole
batches. A run killed at any moment (``kill -9`` included) leaves at most one torn last line per file; reading
ignores it and the next append cuts it off, under that lock, so nothing is lost or duplicated. A whole pair folder is
owned by one run at a time through :class:`FolderLock`.

Files the harness did not create are never deleted or overwritten: :func:`building` refuses a non-empty folder that
lacks its marker. Temporary files carry the writer's host and pid in their names, so a later process removes those of
a dead writer (:func:`clean_stale_temporaries`). Atomically written files get the permissions of a plain ``open``
(``0o666`` less the umask), and a full disk or a read-only folder ends in an :class:`OutputError` that names it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .records import GenerationSettings, Prediction, read_record, stable_hash

log = logging.getLogger(__name__)

#: Marker file of a folder built by :func:`building`: what the harness created there (and may thus replace).
BUILT_MARKER = ".vdpm-harness-built.json"
#: Lock file of a folder owned by one process at a time (:class:`FolderLock`).
LOCK_NAME = ".vdpm-harness.lock"


class StoreError(RuntimeError):
    """A folder the harness may not use as asked; the message says which and what to do."""


class ForeignFolderError(StoreError):
    """A non-empty folder that the harness did not create (or cannot tell that it did), so it is left alone."""


class FolderBusy(StoreError):
    """Another process holds the folder's :class:`FolderLock`; the message names it (pid, host, start time)."""


class OutputError(OSError):
    """Writing failed because the disk is full, the file system is read-only or permission is denied; the message
    names the file and what to do. An ``OSError`` (with the original ``errno``), so existing handlers still apply."""

    def __init__(self, path: str | Path, cause: OSError):
        self.message = _describe_output_error(Path(path), cause)
        super().__init__(cause.errno, self.message, str(path))

    def __str__(self) -> str:
        return self.message


# errno values that mean "this output location cannot take the write", as opposed to a bug
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _describe_output_error(path: Path, cause: OSError) -> str:
    folder = path if path.is_dir() else path.parent
    if cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason = f"the disk (or quota) holding {folder} is full"
        advice = "free some space there, or write to another folder (--out)"
    elif cause.errno == errno.EROFS:
        reason = f"{folder} is on a read-only file system"
        advice = "write to another folder (--out)"
    else:
        reason = f"no permission to write in {folder}"
        advice = "fix its permissions, or write to another folder (--out)"
    return f"cannot write {path}: {reason} ({os.strerror(cause.errno or 0)}); {advice}"


def output_error(exc: OSError) -> OutputError | None:
    """``exc`` as an :class:`OutputError` naming its file, if it means that an output location cannot be written
    (a full disk, a read-only file system, no permission), else ``None``: for errors raised by code that writes
    without this module (a reporter plugin's own ``open``)."""
    if isinstance(exc, OutputError):
        return exc
    if exc.errno in _OUTPUT_ERRNOS:
        return OutputError(exc.filename or "a file", exc)
    return None


@contextmanager
def _output(path: Path) -> Iterator[None]:
    """Turn an OSError that means "this location cannot be written" into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        if exc.errno in _OUTPUT_ERRNOS:
            raise OutputError(path, exc) from exc
        raise


# --- permissions and temporary names -----------------------------------------------------------------------------

_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``, Linux >= 4.7);
    elsewhere set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode a plain ``open`` (``0o666``) or ``mkdir`` (``0o777``) would give under the current umask; ``mkstemp``
    and ``mkdtemp`` create ``0o600`` / ``0o700``, which would leave results readable by their owner only."""
    return (0o777 if directory else 0o666) & ~_umask()


_HOST = stable_hash(socket.gethostname(), 6)
# .<target>.vdpm-<kind>-<host hash>-<pid>-<random>[.tmp]: what this module names its temporary files and folders
_TEMPORARY = re.compile(
    r"^\.(?P<target>.+)\.vdpm-(?P<kind>tmp|build|old)-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[^.]+(\.tmp)?$"
)


def _temporary_prefix(target: str, kind: str) -> str:
    return f".{target}.vdpm-{kind}-{_HOST}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_temporaries(folder: str | Path, target: str | None = None) -> list[Path]:
    """Remove the temporary files and staging folders this module left in ``folder`` (of ``target`` only, when given)
    whose writer is dead: a process of this host whose pid no longer exists. Others' files, and temporaries of
    live processes or of other hosts, are left alone. Returns what was removed."""
    folder = Path(folder)
    prefix = f".{target}.vdpm-" if target else "."
    removed = []
    try:
        names = [name for name in os.listdir(folder) if name.startswith(prefix) and ".vdpm-" in name]
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if match is None or match["host"] != _HOST or _pid_alive(int(match["pid"])):
            continue
        path = folder / name
        try:
            if path.is_dir() and not path.is_symlink():
                if match["kind"] == "old" and _foreign_entries(path):
                    continue  # an aside-moved folder that someone has put files into since: keep it
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            log.debug("could not remove %s: %s", path, exc)
            continue
        log.info("removed %s, left by an interrupted process", path)
        removed.append(path)
    return removed


# --- the prediction store -----------------------------------------------------------------------------------------


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class PredictionStore:
    """Append-only JSONL records in ``folder``; ``shard`` names this process's file."""

    def __init__(self, folder: str | Path, shard: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / (f"predictions.{shard}.jsonl" if shard else "predictions.jsonl")

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("predictions*.jsonl"))

    def records(self) -> Iterable[Prediction]:
        """Every well-formed record of every shard, in file order. Malformed lines are skipped with a warning; a
        record of a schema version this release does not know raises :class:`SchemaVersionError` naming its line."""
        for path in self.files():
            with path.open("rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # no append is half-way through while we read
                lines = handle.read().split(b"\n")
            complete = lines[:-1]  # the last element is b"" after a final newline, or a torn line
            if lines[-1].strip():
                log.warning("%s: ignoring an incomplete last line (left by an interrupted write)", path)
            for number, line in enumerate(complete, start=1):
                if not line.strip():
                    continue
                try:  # a record of an unknown schema version raises SchemaVersionError naming path:line
                    record = read_record(Prediction, line, f"{path}:{number}")
                except ValidationError as exc:
                    log.warning("%s:%d: skipping a malformed record: %s", path, number, exc.errors()[0]["msg"])
                    continue
                yield record

    def load(self) -> dict[str, Prediction]:
        """The current record per key: the latest one, except that an ``ok`` record is never replaced by an error."""
        current: dict[str, Prediction] = {}
        for record in self.records():
            previous = current.get(record.key)
            if previous is None or record.status == "ok" or previous.status == "error":
                current[record.key] = record
        return current

    def append(self, predictions: list[Prediction]) -> None:
        """Append records and make them durable before returning. Holds the file's exclusive lock throughout, so
        concurrent writers of one file never cut or interleave each other's lines. A write that fails (disk full)
        is rolled back to the records before it and raises :class:`OutputError`."""
        if not predictions:
            return
        payload = "".join(p.model_dump_json() + "\n" for p in predictions).encode("utf-8")
        with _output(self.path):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._cut_torn_tail(fd)
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, payload)
                    os.fsync(fd)
                except BaseException:
                    try:  # leave no part of this batch behind
                        os.ftruncate(fd, size)
                    except OSError:
                        pass
                    raise
            finally:
                os.close(fd)  # releases the lock

    def _cut_torn_tail(self, fd: int) -> None:
        """Cut a last line without its newline (a writer killed mid-write). Called with the exclusive lock held, so
        no live writer can be half-way through that line."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        end, keep = size, 0
        while end > 0:  # find the last newline, reading backwards in blocks
            start = max(0, end - (1 << 16))
            position = os.pread(fd, end - start, start).rfind(b"\n")
            if position >= 0:
                keep = start + position + 1
                break
            end = start
        os.ftruncate(fd, keep)
        log.warning("%s: cut an incomplete last line left by an interrupted run", self.path)


# --- folder locks ----------------------------------------------------------------------------------------------------


class FolderLock:
    """Exclusive ownership of a folder by one process: an ``flock`` on ``<folder>/.vdpm-harness.lock``, which
    holds the owner's pid, host, start time and purpose so that another process can say who has it.

    The kernel releases the lock when its process ends, however it ends (``kill -9`` included), so a lock is never
    stale. ``flock`` locks work across hosts on NFS (Linux emulates them with byte-range locks there: flock(2),
    NOTES). The owner also removes the temporaries that dead writers left in the folder
    (:func:`clean_stale_temporaries`).
    """

    def __init__(self, folder: str | Path, purpose: str = "run"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise :class:`FolderBusy` naming its holder (never waits)."""
        with _output(self.path):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderBusy(
                f"{self.folder} is in use by another vdpm-harness process ({holder}); wait for it to finish and run "
                "again (finished samples are reused), or write to another results folder (--out)"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its holder cannot be named
            pass
        self._fd = fd
        clean_stale_temporaries(self.folder)
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # a process that takes it next writes its own details
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder not yet recorded: it has just started"
    purpose, host, started = info.get("purpose", "run"), info.get("host", "?"), info.get("started", "?")
    return f"{purpose}, pid {info['pid']} on host {host}, since {started}"


# --- files and folders ---------------------------------------------------------------------------------------------


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


def _chmod(target: int | Path, mode: int) -> None:
    """Best effort: some file systems (FAT, SMB mounts) refuse any mode change, which must not fail the write."""
    try:
        os.chmod(target, mode)
    except OSError as exc:
        log.debug("could not set the mode of %s: %s", target, exc)


def _write_temporary(path: Path, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` (named after this process) and return it."""
    with _output(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name, "tmp"), suffix=".tmp")
    tmp = Path(name)
    try:
        with _output(path):
            if callable(data):
                os.close(fd)
                data(tmp)
                _chmod(tmp, default_mode())
            else:
                try:
                    _chmod(fd, default_mode())
                    _write_all(fd, data.encode("utf-8") if isinstance(data, str) else data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | Path, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write a file so that readers see the old or the new content, never a mix (temp file + rename).

    ``data`` is the content, or a function that writes the file at the path it is given (e.g. ``workbook.save``).
    On failure the temporary file is removed and ``path`` is untouched. The file gets the mode a plain ``open``
    would give it.
    """
    path = Path(path)
    tmp = _write_temporary(path, data)
    try:
        with _output(path):
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_atomic_files(files: dict[Path, str | bytes]) -> None:
    """Write several files together: every one is written in full to a temporary file first, and only then are they
    renamed into place, so a failure while writing (a full disk, an interrupt) changes none of them."""
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            written.append((_write_temporary(Path(path), data), Path(path)))
        for tmp, path in written:
            with _output(path):
                os.replace(tmp, path)
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> None:
    """Write records as JSON lines, atomically (for derived files such as ``scores.jsonl``)."""
    write_atomic(path, jsonl(records))


def jsonl(records: Iterable[BaseModel]) -> str:
    """Records as JSON lines."""
    return "".join(r.model_dump_json() + "\n" for r in records)


def _inventory(root: Path) -> set[str]:
    """Every file, link and folder under ``root``, as a relative POSIX path (folders end with ``/``)."""
    entries = set()
    for directory, folders, names in os.walk(root):
        relative = Path(directory).relative_to(root)
        entries.update(f"{(relative / name).as_posix()}/" for name in folders)
        entries.update((relative / name).as_posix() for name in names)
    return entries


def _foreign_entries(folder: Path) -> list[str]:
    """What in ``folder`` the harness cannot tell it created: everything when the marker is missing or unreadable,
    else what the marker does not list. Empty for an empty folder."""
    present = _inventory(folder)
    if not present:
        return []
    try:
        made = json.loads((folder / BUILT_MARKER).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return sorted(present)
    return sorted(present - set(made) - {BUILT_MARKER})


def _check_replaceable(folder: Path) -> None:
    if not (folder.exists() or folder.is_symlink()):
        return
    if not folder.is_dir():
        raise ForeignFolderError(f"{folder} exists and is not a folder; nothing was changed: choose another folder")
    foreign = _foreign_entries(folder)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ForeignFolderError(
            f"{folder} already exists and holds files that vdpm-harness did not create ({shown}); nothing in it was "
            f"changed. Build the data into a new or empty folder, or move those files out of {folder} first."
        )


@contextmanager
def building(folder: str | Path) -> Iterator[Path]:
    """Build a data folder atomically, never deleting what the harness did not make.

    Yields an empty staging folder beside ``folder``. When the block ends normally, a marker listing everything in
    the staging folder (``.vdpm-harness-built.json``) is added and the staging folder takes the place of ``folder``
    by renames; when the block raises, the staging folder is removed and ``folder`` is untouched.

    ``folder`` may be missing, empty, or a folder that this function built (its marker lists everything in it). A
    folder with anything else in it, or without the marker, raises :class:`ForeignFolderError` before any work and
    is left exactly as it was. A symbolic link is followed: the data is built where it points.
    """
    folder = Path(folder)
    if folder.is_symlink():
        folder = folder.resolve()
    _check_replaceable(folder)
    with _output(folder.parent):
        folder.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(folder.parent, target=folder.name)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_temporary_prefix(folder.name, "build")))
        _chmod(staging, default_mode(directory=True))
    try:
        yield staging
        with _output(staging):
            marker = {"created_by": "vdpm-harness", "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "files": sorted(_inventory(staging))}  # fmt: skip
            (staging / BUILT_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            _install(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(staging: Path, folder: Path) -> None:
    """Put ``staging`` in the place of ``folder``: a missing or empty ``folder`` is replaced by one rename (which
    the kernel refuses for a non-empty folder); a folder built here before is first renamed aside, then removed."""
    aside = None
    if folder.exists() and any(folder.iterdir()):
        _check_replaceable(folder)  # again: something may have appeared there during the build
        aside = folder.parent / f"{_temporary_prefix(folder.name, 'old')}{secrets.token_hex(4)}"
        os.rename(folder, aside)
    try:
        os.rename(staging, folder)
    except BaseException:
        if aside is not None:
            os.rename(aside, folder)
        raise
    if aside is not None:
        foreign = _foreign_entries(aside)
        if foreign:  # put there between the check and the rename: keep it where it is now
            log.warning("%s: kept %s (the replaced build), which holds files added to it: %s", folder, aside, foreign)
        else:
            shutil.rmtree(aside, ignore_errors=True)


def checksum_problems(folder: str | Path, files: dict[str, str], hint: str) -> list[str]:
    """One message per file of ``files`` (name -> :func:`file_digest`) missing from ``folder`` or changed there,
    each ending with ``hint`` (what to do about it)."""
    folder = Path(folder)
    return [
        f"{folder / name}: missing or checksum mismatch; {hint}"
        for name, digest in files.items()
        if not (folder / name).is_file() or file_digest(folder / name) != digest
    ]


def safe_unzip(archive: Path, dest: Path) -> int:
    """Extract the zip ``archive`` into ``dest``, refusing (before writing anything) any member that would land
    outside it (a RuntimeError naming the archive and the member). Returns the number of files written. (``tarfile``
    has ``extractall(filter="data")`` for this; ``zipfile`` has no such filter.)"""
    import zipfile

    root = Path(dest).resolve()
    with zipfile.ZipFile(archive) as zf:
        members = [info for info in zf.infolist() if not info.is_dir()]
        for info in members:
            if not (root / info.filename).resolve().is_relative_to(root):
                raise RuntimeError(f"{archive}: unsafe path in the archive, refusing to extract it: {info.filename!r}")
        for info in members:
            target = (root / info.filename).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return len(members)
