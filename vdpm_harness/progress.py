"""Progress on the console for work that reports none of its own: a download into a folder (``data pull``), whose
progress is the folder growing, and an import (``import``), one step per imported run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


def activity(console: Console) -> Progress:
    """A progress display for work of unknown length: a spinner, what is being done, a detail, the elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) under ``folder`` (0, 0 when it does not exist); files that vanish while counted are skipped."""
    size = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
            files += 1
    return size, files


def human_bytes(size: float) -> str:
    """``1.2 GB``: a byte count in decimal units, one decimal from kB up."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


@contextmanager
def watching_folder(console: Console, description: str, folder: Path, every: float = 0.5) -> Iterator[None]:
    """Show ``description`` with the size and file count of ``folder``, measured every ``every`` seconds while the
    body runs (a download through a library that shows no progress of its own) and once more at the end."""
    folder = Path(folder)
    stop = threading.Event()
    with activity(console) as progress:
        task = progress.add_task(description, total=None, detail="")

        def show() -> None:
            size, files = folder_size(folder)
            progress.update(task, detail=f"{human_bytes(size)} in {files} files")

        def watch() -> None:
            while not stop.wait(every):
                show()

        watcher = threading.Thread(target=watch, name="vdpm-folder-progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            show()


@contextmanager
def stepping(console: Console, description: str) -> Iterator[Callable[[str], None]]:
    """A display of ``description`` whose detail the body updates by calling the yielded function (e.g. each
    imported run: ``"gpt-4o: 1,816 responses stored, scoring"``)."""
    with activity(console) as progress:
        task = progress.add_task(description, total=None, detail="")
        yield lambda detail: progress.update(task, detail=detail)
