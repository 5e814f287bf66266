"""DSR-Bench's question table in its two published layouts, the video archive, and where the videos are.

* VLMEvalKit's copy: ``DSRBench.tsv`` in the Hugging Face dataset ``lmms-lab-si/EASI-Leaderboard-Data`` (columns
  ``index, video, question, options, answer, task_type``; ``options`` a JSON or Python-literal list of ``"A. ..."``
  strings), the videos in ``raw_data/dsr-bench.zip`` of the same dataset, unpacked by VLMEvalKit into
  ``raw_data/dsr-bench/`` next to a ``.dsrbench_extracted`` sentinel (``vlmeval/dataset/dsrbench.py``,
  ``DSRBench.DATASET_URL``, ``DATASET_MD5``, ``download_dsrbench``, ``_task_category``).
* The authors' table: ``benchmark.parquet`` in ``TencentARC/DSR_Suite-Data`` (``videoID, options, question,
  answer``; the videos are ``<videoID>.mp4`` from Koala-36M, which the authors do not redistribute). It has no
  category column; TencentARC/DSR_Suite's evaluation (``VLMEvalKit_mine/vlmeval/dataset/spatial_reasoning.py``)
  numbers the questions by row.
"""

from __future__ import annotations

import ast
import csv
import json
from dataclasses import dataclass
from pathlib import Path

#: The 13 categories (``task_type``) in VLMEvalKit's reporting order (``DSRBench._task_category``).
CATEGORIES = [
    "abs_dis", "abs_dir", "abs_ori", "abs_spd", "abs_spd_comp", "abs_dir_pred",
    "rel_dis", "rel_dir", "rel_ori", "rel_spd", "rel_spd_comp", "rel_dir_pred", "non_temp",
]  # fmt: skip
TSV_NAME = "DSRBench.tsv"
#: ``DSRBench.DATASET_MD5["DSRBench"]`` in VLMEvalKit: the published revision of the TSV
TSV_MD5 = "9273aeb004e8ca196df5a5e826bdf97d"
PARQUET_NAME = "benchmark.parquet"
EASI_REPO = "lmms-lab-si/EASI-Leaderboard-Data"
VIDEO_ZIP = "raw_data/dsr-bench.zip"
VIDEO_FOLDER = "raw_data/dsr-bench"
#: the file VLMEvalKit writes into ``raw_data/`` once the archive is unpacked
EXTRACTED_SENTINEL = ".dsrbench_extracted"
TENCENT_REPO = "TencentARC/DSR_Suite-Data"


@dataclass
class Row:
    """One question as read from either table; ``where`` names the file and row for error messages."""

    sample_id: str
    video: str
    question: str
    options: list[str]
    answer: str
    category: str | None
    where: str


class DataError(ValueError):
    """The benchmark table is missing or malformed; the message names the file (and rows)."""


def parse_options(value) -> list[str]:
    """The options cell: a list (parquet) or its serialisation, JSON first, then a Python literal (as VLMEvalKit's
    ``DSRBench.build_prompt`` reads it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as exc:
                raise ValueError(f"options {value[:80]!r} are neither JSON nor a Python literal") from exc
    if not isinstance(value, (list, tuple)) or len(value) < 2 or not all(isinstance(o, str) for o in value):
        raise ValueError(f"options must be a list of at least 2 strings, got {str(value)[:80]!r}")
    return list(value)


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _row(sample_id, video, question, options, answer, category, where: str) -> Row:
    """Validate one record into a :class:`Row`; a problem raises ``ValueError`` naming ``where``."""
    try:
        if sample_id is None or str(sample_id).strip() == "":
            raise ValueError("empty id")
        if not isinstance(video, str) or not video.strip():
            raise ValueError("empty video")
        if not isinstance(question, str):
            raise ValueError("no question")
        options = parse_options(options)
        letter = str(answer).strip().upper()
        if letter not in _letters(len(options)):
            raise ValueError(f"answer {answer!r} is not one of the option letters {''.join(_letters(len(options)))}")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    category = category.strip() if isinstance(category, str) and category.strip() else None
    return Row(str(sample_id).strip(), video.strip(), question, options, letter, category, where)


def read_tsv(path: Path) -> tuple[list[Row], list[str]]:
    """Rows of VLMEvalKit's ``DSRBench.tsv`` and the problems of the rows that could not be read."""
    required = ["index", "video", "question", "options", "answer"]
    rows, problems = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        try:
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing columns {missing} (found {reader.fieldnames})")
            for record in reader:
                try:
                    where = f"{path} line {reader.line_num}"
                    rows.append(_row(*(record[c] for c in required), record.get("task_type"), where))
                except ValueError as exc:
                    problems.append(str(exc))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable UTF-8 TSV table: {exc}") from exc
    return rows, problems


def read_parquet(path: Path) -> tuple[list[Row], list[str]]:
    """Rows of the authors' ``benchmark.parquet`` (ids are row numbers) and the problems of unreadable rows."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(
            f"{path}: reading the DSR-Bench parquet needs pyarrow, which is not installed: pip install pyarrow "
            f"(or use the VLMEvalKit layout, {TSV_NAME}, which needs nothing)"
        ) from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a corrupt table
        raise DataError(f"{path}: cannot read the parquet table: {type(exc).__name__}: {exc}") from exc
    missing = [c for c in ("videoID", "options", "question", "answer") if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (found {table.column_names})")
    records = table.to_pylist()
    rows, problems = [], []
    for i, record in enumerate(records):
        try:
            video = f"{record['videoID']}.mp4" if isinstance(record["videoID"], str) else None
            rows.append(_row(i, video, record["question"], record["options"], record["answer"],
                             record.get("task_type"), f"{path} row {i}"))  # fmt: skip
        except ValueError as exc:
            problems.append(str(exc))
    return rows, problems


def find_table(data_dir: Path, layout: str) -> tuple[str, Path]:
    """``(layout, table file)`` in ``data_dir``: ``layout`` is ``"vlmevalkit"``, ``"parquet"``, or ``"auto"`` for
    the first present, the TSV first."""
    tsv, parquet = data_dir / TSV_NAME, data_dir / PARQUET_NAME
    if layout in ("auto", "vlmevalkit") and tsv.is_file():
        return "vlmevalkit", tsv
    if layout in ("auto", "parquet") and parquet.is_file():
        return "parquet", parquet
    expected = {"auto": f"{tsv} or {parquet}", "vlmevalkit": str(tsv), "parquet": str(parquet)}[layout]
    raise DataError(f"dsr: no DSR-Bench table: expected {expected}; download it with `vdpm-harness data pull dsr "
                    f"--to {data_dir}` (add --bench-arg source=parquet for the authors' table)")  # fmt: skip


def _join_key(video: str, question: str) -> tuple[str, str]:
    return Path(video).stem, question.strip()


def load(data_dir: Path, layout: str, table: Path) -> tuple[list[Row], list[str]]:
    """All readable rows of ``table`` and the problems of the table (malformed rows, duplicate ids).

    The parquet has no category column: categories come from a ``task_type`` column if it has one, else are joined
    from ``DSRBench.tsv`` by (video name without extension, question) when the TSV is in ``data_dir`` too, else stay
    unknown."""
    rows, problems = read_tsv(table) if layout == "vlmevalkit" else read_parquet(table)
    tsv = data_dir / TSV_NAME
    if layout == "parquet" and all(r.category is None for r in rows) and tsv.is_file():
        tsv_rows, _ = read_tsv(tsv)
        joined = {_join_key(r.video, r.question): r.category for r in tsv_rows}
        for row in rows:
            row.category = joined.get(_join_key(row.video, row.question))
    seen: dict[str, str] = {}
    for row in rows:
        if row.sample_id in seen:
            problems.append(f"{row.where}: id {row.sample_id} repeats {seen[row.sample_id]}")
        seen.setdefault(row.sample_id, row.where)
    return rows, problems


def find_video_root(data_dir: Path, videos: set[str]) -> Path:
    """Where the videos are: ``raw_data/dsr-bench`` under ``data_dir`` (VLMEvalKit's place) or ``data_dir`` itself,
    the first that holds any of ``videos``; else the first that exists."""
    candidates = [data_dir / VIDEO_FOLDER, data_dir]
    for folder in candidates:
        if any((folder / video).is_file() for video in videos):
            return folder
    return next((folder for folder in candidates if folder.is_dir()), data_dir)
