"""What ``curate`` reads: Koala-36M captions, a folder of videos, and agent/object classes from an earlier run.

* ``--captions FILE.csv``: Koala-36M's CSV; the columns used are ``videoID`` and ``caption`` (as the DSR Suite's
  ``data/deepseek_motion.py`` and ``data/deepseek_agent.py`` read them, TencentARC/DSR_Suite).
* ``--videos DIR``: the videos, ``<videoID>.<ext>``; the video-level filter (``data/gemini_motion.py``) sees them.
* ``--classes FILE.csv``: ``agent_object.csv`` (``videoID, agent, obj``, the classes as the LLM wrote them, as
  ``deepseek_agent.py`` and this generator write it), for a run over videos without captions.

With captions, the inputs are the caption rows in file order; without, the video files sorted by name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclass(frozen=True)
class Entry:
    """One video to curate: its caption (None without captions), its file (None when absent or not asked for) and,
    without captions, its class lines from ``--classes`` (None when the file has no row for it)."""

    video_id: str
    caption: str | None = None
    video: str | None = None
    classes: tuple[str, str] | None = None


def read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file that has ``columns`` (a clear error naming the file otherwise)."""
    if not path.is_file():
        raise ValueError(f"curate: file not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"curate: {path} lacks the columns {missing} (found {reader.fieldnames})")
        return [row for row in reader if (row.get("videoID") or "").strip()]


def video_files(folder: Path) -> dict[str, str]:
    """Video id (file stem) -> file name, for the videos of ``folder``."""
    if not folder.is_dir():
        raise ValueError(f"curate: video folder not found: {folder}")
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            files.setdefault(path.stem, path.name)
    return files


def read_entries(captions: str | None, videos: str | None, classes: str | None) -> list[Entry]:
    """The inputs of a ``curate`` run (see the module docstring)."""
    if not captions and not videos:
        raise ValueError("curate: nothing to curate: pass --captions FILE.csv (Koala-36M's videoID and caption "
                         "columns) and/or --videos DIR")  # fmt: skip
    files = video_files(Path(videos)) if videos else {}
    if captions:
        if classes:
            raise ValueError("curate: --classes is for a run without captions (the captions' classes are asked for)")
        rows = read_rows(Path(captions), ("videoID", "caption"))
        return [Entry(row["videoID"].strip(), row["caption"] or "", files.get(row["videoID"].strip())) for row in rows]
    if not classes:
        raise ValueError(
            "curate: a run over videos without captions needs their classes: pass --classes agent_object.csv "
            "(from an earlier curate run, or the original's deepseek_agent.py)"
        )
    lines = {row["videoID"].strip(): (row["agent"] or "", row["obj"] or "")
             for row in read_rows(Path(classes), ("videoID", "agent", "obj"))}  # fmt: skip
    return [Entry(video_id, None, name, lines.get(video_id)) for video_id, name in files.items()]
