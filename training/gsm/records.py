"""Training records: the conversations the DSR Suite trains on, read from the folders and files given to ``--train``.

The format is the one ``qa_json_gen.py`` writes (``TencentARC/DSR_Suite``, ``model/qwen-vl-finetune/qa_json_gen.py``;
the released DSR-Train, hub dataset ``TencentARC/DSR_Suite-Data``, and the ``dsr-templates`` generator's
``train_qas.json`` use it), a JSON list (or JSON lines) of::

    {"video": "<videoID>.mp4",
     "conversations": [{"from": "human", "value": "<video>\\n{Question}\\nOptions:\\nA {A}\\nB {B}\\nC {C}\\nD {D}"},
                       {"from": "gpt", "value": "{Correct}"}]}

Options are ``A <text>`` (letter, space, no period); the answer is the bare letter. The free-form questions of the
original's ``qa_nontemp.py`` have the same keys. A video path is relative to the file's folder (or its ``videos/``
sub-folder); an absolute path is taken as it is.

``--train`` takes folders, files and glob patterns (``**`` too), comma-separated: a folder contributes its
``train_qas.json`` when it has one (the ``dsr-templates`` output), else every ``*.json`` / ``*.jsonl`` file in it
whose records have ``conversations``, else the DSR-Train annotations found anywhere in it (a folder of ``vdpm-harness
data pull dsr-train`` or a copy of the hub dataset: :mod:`.dsr_train` says which files and why). A file is read by its
form: a JSON list or JSON lines of conversations, or of questions (``videoID, question, options, answer``), a parquet
table of either, or the original generator's ``qa_pairs.json``; questions become the conversations above. The videos
of a file under a DSR-Train folder are also looked for there (:class:`.dsr_train.VideoLookup`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import dsr_train

#: The file ``dsr-templates`` (and ``qa_json_gen.py``) writes.
TRAIN_FILE = "train_qas.json"
#: An option line of the record layout: ``A <text>``.
_OPTION = re.compile(r"^([A-Z])[ .]\s*(.*)$")


class DataError(ValueError):
    """Training records are missing or malformed; the message names the file and record."""


@dataclass(frozen=True)
class Example:
    """One training conversation: the video file, the human turn's text around ``<video>``, the answer."""

    index: int
    video: str
    before: str
    after: str
    answer: str
    source: str

    @property
    def prompt_text(self) -> str:
        return self.before + "<video>" + self.after

    def question_and_options(self) -> tuple[str, list[str]]:
        """The question and its options (``A. text``, as DSR-Bench's table writes them), parsed from the record layout
        ``{question}\\nOptions:\\nA {A}\\n...``; a ValueError when the text is not in that layout."""
        text = (self.before + self.after).strip("\n")
        question, sep, options = text.rpartition("\nOptions:\n")
        if not sep:
            raise ValueError(f"{self.source}: no 'Options:' block in the question (prompt 'record' takes any text)")
        parsed = []
        for line in options.split("\n"):
            match = _OPTION.match(line.strip())
            if match is None:
                raise ValueError(f"{self.source}: option line {line!r} is not 'A <text>'")
            parsed.append(f"{match.group(1)}. {match.group(2)}")
        return question.strip(), parsed


@dataclass(frozen=True)
class Source:
    """A file of records and, when it lies in a DSR-Train folder, that folder (where its videos are looked for too)."""

    file: Path
    root: Path | None = None


def record_sources(paths: list[str]) -> list[Source]:
    """The record files named by ``--train`` (folders and patterns expanded as the module docstring says), in order."""
    sources: list[Source] = []
    for given in paths:
        path = Path(os.path.expanduser(given))
        if not path.exists() and glob.has_magic(given):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(given), recursive=True) if Path(p).is_file())
            if not matches:
                raise DataError(f"--train {given}: no file matches")
            sources += [Source(file, dsr_train.pulled_root(file)) for file in matches]
        elif path.is_file():
            sources.append(Source(path, dsr_train.pulled_root(path)))
        elif path.is_dir():
            root = dsr_train.pulled_root(path)
            if (path / TRAIN_FILE).is_file():
                sources.append(Source(path / TRAIN_FILE, root))
                continue
            found = [p for p in sorted(path.iterdir()) if p.suffix in (".json", ".jsonl") and _has_records(p)]
            if found:
                sources += [Source(file, root) for file in found]
                continue
            annotations = dsr_train.find_annotations(path)
            if not annotations:
                present = [p.relative_to(path).as_posix() for p in dsr_train.files_under(path)]
                shown = ", ".join(present[:10]) + (f" and {len(present) - 10} more" if len(present) > 10 else "")
                raise DataError(f"{path}: no {TRAIN_FILE}, no JSON file of training conversations and no DSR-Train "
                                f"annotations (expected {dsr_train.EXPECTED}); found: {shown or 'nothing'}. Name the "
                                "annotation file in --train (a path or a glob pattern)")  # fmt: skip
            sources += [Source(file, root or path) for file in annotations]
        else:
            raise DataError(f"--train {given}: no such file or folder")
    return sources


def record_files(paths: list[str]) -> list[Path]:
    """The record files named by ``--train``, in order (:func:`record_sources` without the folders)."""
    return [source.file for source in record_sources(paths)]


def _has_records(path: Path) -> bool:
    """Whether ``path`` is a JSON list (or JSON lines) of conversations as they are."""
    try:
        records = _load_json(path)
    except (DataError, OSError):
        return False
    return (
        isinstance(records, list) and bool(records) and isinstance(records[0], dict) and "conversations" in records[0]
    )


def _load_json(path: Path):
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _read(path: Path) -> list:
    """The records of one file, questions made conversations (:mod:`.dsr_train`)."""
    try:
        if dsr_train.is_table(path):
            return dsr_train.table_records(path)
        data = _load_json(path)
        if dsr_train.is_qa_pairs(data):
            return dsr_train.qa_pairs_records(data, path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of records")
        return dsr_train.question_rows_records(data, path)
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _video_path(folder: Path, name: str, videos: dsr_train.VideoLookup | None = None) -> Path:
    path = Path(os.path.expanduser(name))
    if path.is_absolute():
        return path
    candidates = [folder / path, folder / "videos" / path, *(videos.candidates(path) if videos else [])]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if videos is not None:
        try:
            found = videos.find(path)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        if found is not None:
            return found
    return folder / path


def parse_record(record, where: str, index: int, folder: Path, videos: dsr_train.VideoLookup | None = None) -> Example:
    """One record as an :class:`Example`; a :class:`DataError` naming ``where`` when it is malformed. Its video is
    looked for beside ``folder``'s files, then through ``videos`` (a DSR-Train folder)."""
    if not isinstance(record, dict) or not isinstance(record.get("video"), str):
        raise DataError(f"{where}: a record needs a 'video' file name")
    turns = record.get("conversations")
    if not isinstance(turns, list) or len(turns) != 2:
        raise DataError(f"{where}: 'conversations' must hold one human turn and one gpt turn")
    human, gpt = turns
    if not (isinstance(human, dict) and human.get("from") == "human" and isinstance(human.get("value"), str)):
        raise DataError(f"{where}: the first turn must be {{'from': 'human', 'value': ...}}")
    if not (isinstance(gpt, dict) and gpt.get("from") == "gpt" and isinstance(gpt.get("value"), str)):
        raise DataError(f"{where}: the second turn must be {{'from': 'gpt', 'value': ...}}")
    value = human["value"]
    if value.count("<video>") != 1:
        raise DataError(f"{where}: the human turn must hold exactly one <video> placeholder")
    before, after = value.split("<video>")
    answer = gpt["value"].strip()
    if not answer:
        raise DataError(f"{where}: empty answer")
    video = _video_path(folder, record["video"], videos)
    return Example(index, str(video), before, after, answer, where)


def load_examples(paths: list[str]) -> list[Example]:
    """Every record of the ``--train`` paths, in order; a missing video is a :class:`DataError` naming the first few."""
    examples: list[Example] = []
    lookups: dict[Path, dsr_train.VideoLookup] = {}
    for source in record_sources(paths):
        videos = lookups.setdefault(source.root, dsr_train.VideoLookup(source.root)) if source.root else None
        for i, record in enumerate(_read(source.file)):
            examples.append(
                parse_record(record, f"{source.file} record {i}", len(examples), source.file.parent, videos)
            )
    if not examples:
        raise DataError(f"no training records in {', '.join(paths)}")
    missing = sorted({e.video for e in examples if not Path(e.video).is_file()})
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        hint = f". {dsr_train.missing_videos_hint(sorted(lookups))}" if lookups else ""
        raise DataError(f"{len(missing)} training videos are missing: {', '.join(missing[:5])}{more}{hint}")
    return examples


def data_digest(examples: list[Example]) -> str:
    """What identifies the training data and its order: every record's text and answer, and its video's name and
    size (a resumed run refuses other data)."""
    digest = hashlib.sha256()
    sizes: dict[str, int] = {}
    for e in examples:
        size = sizes.setdefault(e.video, os.stat(e.video).st_size)
        digest.update(json.dumps([Path(e.video).name, size, e.before, e.after, e.answer]).encode() + b"\n")
    return digest.hexdigest()[:16]
