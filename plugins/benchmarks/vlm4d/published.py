"""Reading the official VLM4D output files (``vdpm-harness import vlm4d PATH``): the paper's judged outputs or
the raw outputs of the official inference code, as runs of this benchmark.

Formats, from ``ShijieZhou-UCLA/VLM4D`` at commit ``23f2680``: ``main.py`` writes *raw* outputs, the question records
with an added ``response`` (a string, or a list of strings for API models run with ``--n`` > 1), to
``outputs/<split>_mc_<prompt>/<model>_<N>frame.json`` (or ``..._1fps.json``), ``<prompt>`` being ``cot`` or
``direct-output``; ``acc_evaluation.py`` writes *processed* outputs, records of exactly ``id, question, choices,
response, ground_truth_answer, extracted_answer, correct``. The repository ships the paper's processed outputs in
``processed_outputs_paper_results/{real,synthetic}_mc_{cot,direct-output}/``, and ``acc_final_statistics.py`` pools
the real and the synthetic file of a model into one table row.

Import rules: ``PATH`` is one JSON file or a folder of them (searched recursively; JSON files of another kind are
skipped with a warning). The split of a file comes from its folder name, else from its video URLs, else from
matching its questions to the released ones. The real and the synthetic file of one model and prompt become ONE run,
labelled ``<file stem>@<prompt>`` with the prompt named as in the benchmark's option (``gpt-4o_32frame@cot``,
``gpt-4o_32frame@direct`` for the ``direct-output`` folders); a file outside such a folder is labelled by its stem.
Processed records keep ``extracted_answer`` and ``correct`` in the prediction's ``meta`` (scored by ``--judge
vlm4d-stored``); of a list of responses the first is kept. The data was re-uploaded several times, and some published
files hold older versions of a few questions (gpt-4o's real files carry the typo "truning" in ids 94, 95 and 148):
records whose question, choices or answer differ from the released data are imported as they are, flagged in
``meta["drift"]``, and counted in the run's details and in a warning.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vdpm_harness import ImportedResponse, ImportedRun

from .questions import SPLITS, load_questions

log = logging.getLogger(__name__)

#: Official output folder suffix -> the benchmark's ``prompt`` option.
PROMPT_FOLDERS = {"cot": "cot", "direct-output": "direct"}


def import_outputs(path: Path, splits: Sequence[str]) -> Iterable[ImportedRun]:
    """Official VLM4D output files under ``path`` as runs: one per (file stem, prompt), real and synthetic pooled;
    files of a split outside ``splits`` are skipped."""
    path = Path(path)
    released = {split: {r["id"]: r for r in load_questions(split)} for split in SPLITS}
    groups: dict[tuple[str, str | None], dict[str, tuple[Path, list[dict]]]] = defaultdict(dict)
    for file in [path] if path.is_file() else sorted(path.rglob("*.json")):
        records = _read_output_file(file, strict=path.is_file())
        if records is None:
            continue
        split, prompt = _split_and_prompt(file, records, released)
        if split not in splits:
            log.info("%s: skipped (%s split; this benchmark evaluates %s)", file, split, "/".join(splits))
            continue
        key = (file.stem, prompt)
        if split in groups[key]:
            raise ValueError(f"two {split} files for {_label(*key)}: {groups[key][split][0]} and {file}")
        groups[key][split] = (file, records)
    if not groups:
        raise ValueError(f"{path}: no VLM4D output files (JSON lists of records with a 'response') found")
    for key in sorted(groups, key=lambda k: (k[0], k[1] or "")):
        yield _imported_run(_label(*key), key[1], groups[key], released)


def _label(stem: str, prompt: str | None) -> str:
    return f"{stem}@{prompt}" if prompt else stem


def _read_output_file(file: Path, strict: bool) -> list[dict] | None:
    """The records of an output file. A JSON file of another kind is an error when named explicitly (``strict``),
    else skipped with a warning (a folder may hold other JSON files)."""
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: not a readable JSON file ({exc})") from exc
    if isinstance(records, list) and records and all(isinstance(r, dict) and "id" in r and "response" in r
                                                     for r in records):  # fmt: skip
        return records
    if strict:
        raise ValueError(f"{file}: not a VLM4D output file (a JSON list of records with 'id' and 'response')")
    log.warning("%s: skipped, not a VLM4D output file (a JSON list of records with 'id' and 'response')", file)
    return None


def _split_and_prompt(file: Path, records: list[dict], released: dict) -> tuple[str, str | None]:
    """Split and prompt from the nearest ``<split>_mc_<prompt>`` folder; else the split from the video URLs or by
    matching the questions to the released ones (the prompt is then unknown)."""
    for part in reversed(file.parent.parts):
        match = re.fullmatch(r"(real|synthetic)_mc_(cot|direct-output)", part)
        if match:
            return match.group(1), PROMPT_FOLDERS[match.group(2)]
    videos = {str(r.get("video", "")).split("/resolve/main/videos_")[-1].split("/")[0] for r in records}
    if videos == {"real"} or videos == {"synthetic"}:
        return videos.pop(), None
    matches = {
        split: sum(r.get("question") == released[split].get(r["id"], {}).get("question") for r in records)
        for split in SPLITS
    }
    best = max(matches, key=matches.get)
    if matches[best] == 0 or matches["real"] == matches["synthetic"]:
        raise ValueError(f"{file}: cannot tell whether it holds real or synthetic questions; put it in a folder named "
                         "like the official ones (real_mc_cot, synthetic_mc_direct-output, ...)")  # fmt: skip
    return best, None


def _drift(record: dict, reference: dict) -> list[str]:
    """Fields of an output record that differ from the released question (the data was re-uploaded several times)."""
    fields = []
    if "question" in record and record["question"] != reference["question"]:
        fields.append("question")
    choices = record.get("choices")
    if isinstance(choices, dict) and {k: str(v) for k, v in choices.items()} != {
        k: str(v) for k, v in reference["choices"].items()
    }:
        fields.append("choices")
    answer = record.get("ground_truth_answer", record.get("answer"))
    if answer is not None and str(answer) != str(reference["answer"]):
        fields.append("answer")
    return fields


def _imported_run(label: str, prompt: str | None, files: dict[str, tuple[Path, list[dict]]], released) -> ImportedRun:
    responses, drifted, multiple = [], [], 0
    for split in SPLITS:
        if split not in files:
            continue
        file, records = files[split]
        seen = set()
        for record in records:
            source_id = record["id"]
            if source_id in seen:
                raise ValueError(f"{file}: id {source_id} occurs twice")
            seen.add(source_id)
            sample_id = f"{split}/{source_id}"
            response = record["response"]
            meta: dict[str, Any] = {"split": split, "source_id": source_id, "source_file": str(file)}
            if isinstance(response, list):
                multiple += 1
                meta["n_responses"] = len(response)
                response = response[0] if response else None
            if response is not None and not isinstance(response, str):
                raise ValueError(f"{file}: {source_id}: 'response' is neither a string nor a list of strings")
            if "correct" in record:
                if not isinstance(record["correct"], bool) or not isinstance(record.get("extracted_answer"), str):
                    raise ValueError(f"{file}: {source_id}: 'correct' must be a bool and 'extracted_answer' a string")
                meta["correct"] = record["correct"]
                meta["extracted_answer"] = record["extracted_answer"]
            reference = released[split].get(source_id)
            if reference is not None:  # an unknown id is reported by the importer with the other unknown ids
                fields = _drift(record, reference)
                if fields:
                    meta["drift"] = fields
                    drifted.append(sample_id)
            responses.append(ImportedResponse(sample_id=sample_id, response=response, meta=meta))
    if drifted:
        log.warning(
            "%s: %d records differ from the released questions (%s); imported with their stored responses and "
            "verdicts, flagged in meta['drift']", label, len(drifted), ", ".join(drifted[:10]),
        )  # fmt: skip
    if multiple:
        log.warning("%s: %d records hold several responses; the first of each is scored", label, multiple)
    sources = {split: str(file) for split, (file, _) in files.items()}
    return ImportedRun(
        label=label, source=", ".join(sources.values()), responses=responses,
        details={"files": sources, "prompt": prompt, "drifted_records": len(drifted), "drifted_ids": drifted,
                 "multiple_responses": multiple},
        benchmark_options={"prompt": prompt} if prompt else {},
    )  # fmt: skip
