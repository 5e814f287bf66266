"""DSR-Train, the DSR Suite's released training questions: ``vdpm-harness data pull dsr-train`` downloads it, and
``vdpm-harness train gsm --train DIR`` reads the downloaded folder as it is.

What is known of the release, and from where (the hub itself could not be reached from the machine this was written
on, so none of it was checked against the files):

* It is the Hugging Face dataset ``TencentARC/DSR_Suite-Data``: the DSR Suite's README (``TencentARC/DSR_Suite``,
  ``README.md``) links it for DSR-Train ("a training dataset with 50K QAs") and for DSR-Bench, whose table is the
  dataset's ``benchmark.parquet``.
* The training questions: ``train_qa_pairs.parquet``, one question a row with the columns ``videoID``, ``type``,
  ``question``, ``options`` and ``answer`` (the same as ``benchmark.parquet``'s). This is reported by a third party
  that trains on the release (``KindofCrazy/GenDSR``: ``README.md`` names the file, ``src/gendsr/data.py`` reads those
  columns and says the "official JSON annotation file" also exists), not by the authors; the file's name, its
  columns and the options' form (``"A. text"`` strings, as in DSR-Bench's tables, or bare texts) are unconfirmed.
* The videos: not known to be in the release. The questions are about Koala-36M clips, and Koala-36M publishes only
  the clips' URLs, to be downloaded with Panda-70M's tools (``TencentARC/DSR_Suite``, ``data/README.md``); GenDSR
  obtains the videos separately and matches a row's ``videoID`` to a file ``<videoID>.<ext>``.
* Unconfirmed: whether the dataset also holds the training conversations ``train_qas.json`` as the original's
  ``model/qwen-vl-finetune/qa_json_gen.py`` writes them, or the generator's raw ``qa_pairs.json``
  (``{videoID: [{"Type", "Question", "A".."D", "Correct"}]}``, ``data/qa_temp.py``; ``qa_pairs_nontemp.json`` from
  ``data/qa_nontemp.py``), and whether any file is an archive.

So the pull takes the whole dataset as it is (``huggingface_hub.snapshot_download``), unpacks every ``.zip`` and
``.tar``/``.tar.gz``/``.tgz`` archive in it where it lies (refusing members that would land outside, then removing
the archive), and writes ``dsr-train.json`` (what was downloaded and found). The reader then finds the training
annotations by name anywhere in the folder (hidden folders and any path with "bench" in a name are left out, so
DSR-Bench is never trained on), the first kind present of:

1. ``train_qas.json``: the conversations of ``qa_json_gen.py``;
2. tables and JSON files with "train" in the name (``*train*.parquet``, ``*train*.jsonl``, ``*train*.json``; of files
   that differ only by suffix, the first of parquet, JSON lines, JSON is read): conversations as they are, or one
   question a row (the columns above; also ``video``, ``Question``, ``Correct`` and option columns ``A``.. ``D``);
3. ``qa_pairs.json`` and ``qa_pairs_nontemp.json``.

A question becomes the conversation ``qa_json_gen.py`` writes (``training/gsm/records.py``): ``<video>\\n{question}
\\nOptions:\\nA {A}\\nB {B}...``, the answer the bare letter, the video ``<videoID>.mp4``. When the layout turns out
otherwise, name the file in ``--train`` (``--train DIR/FILE`` or a pattern, ``--train 'DIR/**/*.parquet'``). A
record's video is looked for beside its file, in ``videos/`` there, at the top of the pulled folder and in its
``videos/``, then anywhere in the folder by file name (a name found twice is an error naming both).
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from vdpm_harness import hub, safe_unzip

#: The hub dataset (``repo_type="dataset"``).
HUB_ID = "TencentARC/DSR_Suite-Data"
HUB_URL = f"https://huggingface.co/datasets/{HUB_ID}"
#: What ``data pull dsr-train`` writes into the folder: the hub id, when, what was unpacked, what was found.
MANIFEST = "dsr-train.json"
#: ``data pull dsr-train`` without ``--to``.
DEFAULT_FOLDER = "data/dsr-train"
TRAIN_QAS = "train_qas.json"
QA_PAIRS = ("qa_pairs.json", "qa_pairs_nontemp.json")
TABLE_SUFFIXES = (".parquet", ".jsonl", ".json")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")
EXPECTED = (
    f"{TRAIN_QAS}, a *train*.parquet/.jsonl/.json file (e.g. train_qa_pairs.parquet) or {' or '.join(QA_PAIRS)}, "
    "in any folder but hidden ones and those named *bench*"
)
LETTERS = "ABCDEFGHIJ"
_LABEL = re.compile(r"^\s*([A-J])\s*[.):]\s*")


# --- download -------------------------------------------------------------------------------------------------------


def pull(to: Path) -> None:
    """Download the whole dataset into the (empty) folder ``to``, unpack its archives and write :data:`MANIFEST`.
    Any hub or network failure raises a RuntimeError naming the hub id and what to do offline."""
    to = Path(to)
    hub.download_dataset(
        HUB_ID, to, what=f"the dataset {HUB_ID}", quiet=True,  # the harness shows the folder growing instead
        offline_hint=f"download it where the hub is reachable (`hf download {HUB_ID} --repo-type dataset --local-dir "
        f"DIR`), copy DIR here and train on it as it is (`vdpm-harness train gsm --train DIR`); `vdpm-harness data "
        f"verify dsr-train --data-dir DIR` checks it.",
    )  # fmt: skip
    unpacked = unpack_archives(to)
    found = find_annotations(to)
    manifest = {
        "dataset": HUB_ID, "url": HUB_URL, "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unpacked": unpacked, "annotations": [f.relative_to(to).as_posix() for f in found],
    }  # fmt: skip
    (to / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    return None


def unpack_archives(folder: Path) -> list[str]:
    """Unpack every archive under ``folder`` (outside hidden folders) where it lies, then remove it; members that
    would land outside that place are refused (a RuntimeError naming the archive) before anything is written.
    Returns the archives' paths relative to ``folder``."""
    folder = Path(folder)
    archives = [path for path in files_under(folder) if _archive_kind(path)]
    for archive in archives:
        dest = archive.parent.resolve()
        if _archive_kind(archive) == "zip":
            safe_unzip(archive, dest)
        else:
            with tarfile.open(archive) as tf:
                try:
                    tf.extractall(dest, filter="data")  # refuses absolute paths, '..', links leaving dest
                except tarfile.FilterError as exc:
                    raise RuntimeError(f"{archive}: unsafe member in the archive: {exc}") from exc
        archive.unlink()
    return [archive.relative_to(folder).as_posix() for archive in archives]


# --- finding the annotations ------------------------------------------------------------------------------------------


def files_under(folder: Path):
    """Every file under ``folder``, in sorted order, outside hidden folders (``.cache/huggingface`` of a download)."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def _is_bench(path: Path, folder: Path) -> bool:
    return any("bench" in part.lower() for part in path.relative_to(folder).parts)


def find_annotations(folder: Path) -> list[Path]:
    """The training annotation files under ``folder`` by the rules of the module docstring; [] when none."""
    folder = Path(folder)
    files = [path for path in files_under(folder) if not _is_bench(path, folder) and path.name != MANIFEST]
    found = [path for path in files if path.name == TRAIN_QAS]
    if found:
        return found
    tables: dict[Path, Path] = {}
    for path in files:
        if "train" in path.name.lower() and path.suffix.lower() in TABLE_SUFFIXES:
            stem = path.with_suffix("")
            kept = tables.get(stem)
            if kept is None or TABLE_SUFFIXES.index(path.suffix.lower()) < TABLE_SUFFIXES.index(kept.suffix.lower()):
                tables[stem] = path
    if tables:
        return sorted(tables.values())
    return [path for path in files if path.name in QA_PAIRS]


def pulled_root(path: Path) -> Path | None:
    """The folder ``data pull dsr-train`` made that holds ``path`` (the nearest with :data:`MANIFEST`), if any."""
    path = Path(path).absolute()
    for folder in [path, *path.parents] if path.is_dir() else path.parents:
        if (folder / MANIFEST).is_file():
            return folder
    return None


# --- questions as conversations ---------------------------------------------------------------------------------------


def is_table(path: Path) -> bool:
    return Path(path).suffix.lower() == ".parquet"


def is_qa_pairs(data) -> bool:
    """Whether parsed JSON is the generator's ``{videoID: [{"Question", "A".., "Correct"}]}``."""
    if not isinstance(data, dict) or not data or not all(isinstance(v, list) for v in data.values()):
        return False
    first = next((qas[0] for qas in data.values() if qas), None)
    return isinstance(first, dict) and "Question" in first


def conversation(video: str, question: str, options: list[str], answer: str) -> dict:
    """One record as ``qa_json_gen.py`` writes it: ``<video>\\n{question}\\nOptions:\\nA {A}...``, the answer the
    letter; ``options`` are the texts without their letters."""
    lines = "\n".join(f"{LETTERS[i]} {text}" for i, text in enumerate(options))
    return {"video": video, "conversations": [
        {"from": "human", "value": f"<video>\n{question}\nOptions:\n{lines}"},
        {"from": "gpt", "value": answer},
    ]}  # fmt: skip


def _video_name(video_id, where: str) -> str:
    if not isinstance(video_id, str) or not video_id.strip():
        raise ValueError(f"{where}: no video id")
    video_id = video_id.strip()
    return video_id if video_id.lower().endswith(VIDEO_SUFFIXES) else f"{video_id}.mp4"


def option_texts(options, where: str) -> list[str]:
    """The options' texts: a list (or its JSON text) of 2 to 10 strings, each without a leading ``A.``/``A)``/``A:``
    label of its own letter; bare ``A text`` labels are removed only when every option has its own."""
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: options {options[:80]!r} are not a list") from None
    if not isinstance(options, (list, tuple)) or not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"{where}: options must be a list of 2 to {len(LETTERS)} texts, got {str(options)[:80]!r}")
    if not all(isinstance(o, str) and o.strip() for o in options):
        raise ValueError(f"{where}: every option must be a non-empty text")
    texts = []
    for letter, option in zip(LETTERS, options):
        match = _LABEL.match(option)
        texts.append(option[match.end() :].strip() if match and match.group(1) == letter else option.strip())
    if all(re.match(rf"{letter} \S", o.strip()) for letter, o in zip(LETTERS, options)) and texts == [
        o.strip() for o in options
    ]:
        texts = [o.strip()[2:].strip() for o in options]
    return texts


def _answer(value, n: int, where: str) -> str:
    letter = str(value).strip().upper() if value is not None else ""
    if len(letter) != 1 or letter not in LETTERS[:n]:
        raise ValueError(f"{where}: answer {value!r} is not one of the option letters {LETTERS[:n]}")
    return letter


def question_record(row: dict, where: str) -> dict:
    """One question (a table row or a ``qa_pairs.json`` entry with its video id under ``videoID``) as a record."""
    video = _video_name(row.get("videoID", row.get("video")), where)
    question = row.get("question", row.get("Question"))
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: no question")
    if row.get("options") is not None:
        options = option_texts(row["options"], where)
    else:
        options = option_texts([row.get(letter) for letter in LETTERS if row.get(letter) is not None], where)
    answer = _answer(row.get("answer", row.get("Correct")), len(options), where)
    return conversation(video, question.strip(), options, answer)


def _check_columns(columns: list[str], path: Path) -> None:
    wanted = {"video": ("videoID", "video"), "question": ("question", "Question"), "answer": ("answer", "Correct")}
    missing = [" or ".join(names) for names in wanted.values() if not any(n in columns for n in names)]
    if "options" not in columns and not {"A", "B"} <= set(columns):
        missing.append("options (or A, B, ...)")
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (found {', '.join(columns)}); expected a table of "
                         "conversations or of questions (videoID, question, options, answer)")  # fmt: skip


def table_records(path: Path) -> list[dict]:
    """The records of a parquet table: its rows as they are when it has ``conversations``, else each row a question
    (``videoID, question, options, answer``) made a conversation."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError(f"{path}: reading a parquet table needs pyarrow: pip install 'vdpm-harness[hub]'") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a corrupt table
        raise ValueError(f"{path}: cannot read the parquet table: {type(exc).__name__}: {exc}") from exc
    rows = table.to_pylist()
    if "conversations" in table.column_names:
        return rows
    _check_columns(table.column_names, path)
    return [question_record(row, f"{path} row {i}") for i, row in enumerate(rows)]


def question_rows_records(rows: list, path: Path) -> list[dict]:
    """Records of JSON rows: conversations as they are, questions (as in a table) made conversations."""
    first = rows[0] if rows else None
    if isinstance(first, dict) and "conversations" not in first and ("question" in first or "Question" in first):
        _check_columns(list(rows[0]), path)
        return [question_record(row, f"{path} record {i}") for i, row in enumerate(rows)]
    return rows


def qa_pairs_records(data: dict, path: Path) -> list[dict]:
    """Records of the generator's ``qa_pairs.json``: every video's questions in the file's order."""
    records = []
    for video_id, qas in data.items():
        for i, qa in enumerate(qas):
            where = f"{path} video {video_id} question {i}"
            if not isinstance(qa, dict):
                raise ValueError(f"{where}: not an object")
            records.append(question_record({**qa, "videoID": video_id}, where))
    return records


# --- videos -----------------------------------------------------------------------------------------------------------


class VideoLookup:
    """Finds a record's video under a DSR-Train folder by file name, indexing the folder on first use."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._index: dict[str, list[Path]] | None = None

    def candidates(self, name: Path) -> list[Path]:
        return [self.root / name, self.root / "videos" / name]

    def find(self, name: Path) -> Path | None:
        """The only file under the folder whose path ends with ``name``; None if none; a ValueError naming both
        when two do."""
        if self._index is None:
            self._index = {}
            for path in files_under(self.root):
                if path.suffix.lower() in VIDEO_SUFFIXES:
                    self._index.setdefault(path.name, []).append(path)
        found = [p for p in self._index.get(name.name, []) if p.parts[-len(name.parts) :] == name.parts]
        if len(found) > 1:
            raise ValueError(f"video {name} is in {self.root} twice: {found[0]} and {found[1]}; keep one")
        return found[0] if found else None


def missing_videos_hint(roots: list[Path]) -> str:
    """What to do about missing videos of DSR-Train folders."""
    where = ", ".join(str(root / "videos") for root in roots)
    return (
        f"DSR-Train's questions are about Koala-36M clips, which the release is not known to include (Koala-36M "
        f"publishes only their URLs; TencentARC/DSR_Suite's data/README.md downloads them with Panda-70M's tools): "
        f"put each <videoID>.mp4 in {where} (a symbolic link to a folder elsewhere works)"
    )


def verify(folder: Path) -> list[str]:
    """Problems of a DSR-Train folder, each naming the file: no annotations (naming what was expected and the files
    found), malformed records, missing videos; [] when ``train gsm --train FOLDER`` can read it."""
    from .records import DataError, load_examples

    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: no such folder; fill it with `vdpm-harness data pull dsr-train --to {folder}`"]
    try:
        load_examples([str(folder)])
    except DataError as exc:
        return [str(exc)]
    return []
