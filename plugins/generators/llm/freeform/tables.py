"""The free-form questions in the layouts the ``dsr-templates`` generator writes, so the same readers take them.

* ``DSRBench.tsv``: VLMEvalKit's DSR-Bench table (``index, video, question, options, answer, task_type``; the
  options a JSON list of ``"A. ..."``), category ``non_temp`` as DSR-Bench files its free-form questions; the ``dsr``
  benchmark reads it with ``--bench-arg data_dir=OUT``;
* ``train_qas.json``: the training conversations of the DSR Suite's ``qa_json_gen.py`` (TencentARC/DSR_Suite,
  ``model/qwen-vl-finetune/qa_json_gen.py``): ``<video>\\n{question}\\nOptions:\\nA {text}...``, the answer a letter;
* ``qa_pairs_nontemp.json``: the original's own records, ``{videoID: [{"Question", "A"-"D", "Correct"}]}``
  (``data/qa_nontemp.py``; a video whose attempts all failed keeps its empty list, as there).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

TSV_NAME = "DSRBench.tsv"
TRAIN_NAME = "train_qas.json"
QA_PAIRS_NAME = "qa_pairs_nontemp.json"
TSV_COLUMNS = ["index", "video", "question", "options", "answer", "task_type"]
CATEGORY = "non_temp"
LETTERS = "ABCD"


def tsv_row(index: int, video: str, qa: dict[str, str]) -> list[str]:
    options = json.dumps([f"{letter}. {qa[letter]}" for letter in LETTERS], ensure_ascii=False)
    return [str(index), video, qa["Question"], options, qa["Correct"], CATEGORY]


def training_record(video: str, qa: dict[str, str]) -> dict[str, Any]:
    options = "\n".join(f"{letter} {qa[letter]}" for letter in LETTERS)
    return {"video": video, "conversations": [
        {"from": "human", "value": f"<video>\n{qa['Question']}\nOptions:\n{options}"},
        {"from": "gpt", "value": qa["Correct"]},
    ]}  # fmt: skip


def tsv_text(rows: list[list[str]]) -> str:
    table = io.StringIO()
    writer = csv.writer(table, delimiter="\t", lineterminator="\n")
    writer.writerow(TSV_COLUMNS)
    writer.writerows(rows)
    return table.getvalue()
