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

``--train`` takes folders and files, comma-separated: a folder contributes its ``train_qas.json`` when it has one (the
``dsr-templates`` output), else every ``*.json`` / ``*.jsonl`` file in it whose records have ``conversations``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

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


def record_files(paths: list[str]) -> list[Path]:
    """The record files named by ``--train`` (folders expanded as the module docstring says), in order."""
    files: list[Path] = []
    for given in paths:
        path = Path(os.path.expanduser(given))
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            if (path / TRAIN_FILE).is_file():
                files.append(path / TRAIN_FILE)
                continue
            found = [p for p in sorted(path.iterdir()) if p.suffix in (".json", ".jsonl") and _has_records(p)]
            if not found:
                raise DataError(f"{path}: no {TRAIN_FILE} and no JSON file of training conversations")
            files += found
        else:
            raise DataError(f"--train {given}: no such file or folder")
    return files


def _has_records(path: Path) -> bool:
    try:
        records = _read(path)
    except (DataError, OSError):
        return False
    return bool(records) and isinstance(records[0], dict) and "conversations" in records[0]


def _read(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records")
    return data


def _video_path(folder: Path, name: str) -> Path:
    path = Path(os.path.expanduser(name))
    if path.is_absolute():
        return path
    for candidate in (folder / path, folder / "videos" / path):
        if candidate.is_file():
            return candidate
    return folder / path


def parse_record(record, where: str, index: int, folder: Path) -> Example:
    """One record as an :class:`Example`; a :class:`DataError` naming ``where`` when it is malformed."""
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
    video = _video_path(folder, record["video"])
    return Example(index, str(video), before, after, answer, where)


def load_examples(paths: list[str]) -> list[Example]:
    """Every record of the ``--train`` paths, in order; a missing video is a :class:`DataError` naming the first few."""
    examples: list[Example] = []
    for file in record_files(paths):
        for i, record in enumerate(_read(file)):
            examples.append(parse_record(record, f"{file} record {i}", len(examples), file.parent))
    if not examples:
        raise DataError(f"no training records in {', '.join(paths)}")
    missing = sorted({e.video for e in examples if not Path(e.video).is_file()})
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"{len(missing)} training videos are missing: {', '.join(missing[:5])}{more}")
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
