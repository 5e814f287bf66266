"""``4dbench-qa``: 4D-Bench object question answering, 751 four-choice questions on multi-view 4D objects.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``, ``4D_Object_Question_Answering/eval_code_example/*_exp.py``
(one inference-and-scoring script per model). ``4d_qa.json`` is a JSON object ``{"<uid>_<suffix>": {...}}``: the
object folder is ``key.split('_')[0]``, and of each record the scripts read only ``"Answer index"`` (1-4 for A-D) and
``"Category"`` (Object Counting, Temporal Relationship, Action, Spatial Relationship, Appearance) by name; the rest of
the dict, whatever its fields, goes into the prompt as its ``repr`` (:mod:`.prompts`).

Parser, as the scripts: the first ``\\(([A-D])\\)``, else the first isolated capital letter A-D; ``gpt-4o_exp.py``
only the latter. The scripts record the codes 1 (correct), 0 (wrong), -1 (no option found) and -2 (no string); they
have no aggregation code, but the README's accuracies are the micro-average over all questions with invalid answers
wrong, per category and overall (every row of its table reproduces so). Here: accuracy with 95% CIs clustered by
object.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vdpm_harness import Extraction, GenerationSettings, MCQBenchmark, Message, Request, Sample, TextPart

from .data import PULL_HINT, short_sha256
from .families import QA_FAMILIES
from .multiview import MultiView, ViewOptions
from .prompts import QA_FORMAT, QA_GPT_PREAMBLE, qa_prompt

LETTERS = "ABCD"
PAREN = re.compile(r"\(([A-D])\)")
BARE = re.compile(r"(?:^|[\s\(\.,;:])([A-D])(?:[\s\)\.,;:]|$)")


def parse_answer(response: str | None, parser: str = "paren_first") -> tuple[str | None, str]:
    """The option letter the official scripts read out of ``response`` and the pass that found it.

    ``"paren_first"``: the first ``(A)``-``(D)``, else the first isolated capital A-D (preceded by the start, a space
    or one of ``(.,;:`` and followed by a space, one of ``).,;:`` or the end); ``"bare"`` (gpt-4o): only the latter.
    Case-sensitive. Returns ``(None, "not_a_string")`` or ``(None, "no_option")`` when there is no letter.
    """
    if not isinstance(response, str):
        return None, "not_a_string"
    text = response.strip()  # the scripts strip the model output before parsing
    passes = [("paren", PAREN), ("bare", BARE)] if parser == "paren_first" else [("bare", BARE)]
    for rule, pattern in passes:
        match = pattern.search(text)
        if match:
            return match.group(1), rule
    return None, "no_option"


def correctness_code(letter: str | None, rule: str, gold: str) -> int:
    """The official ``correctness`` code: 1 correct, 0 wrong, -1 no option found, -2 not a string."""
    if rule == "not_a_string":
        return -2
    if letter is None:
        return -1
    return int(letter == gold)


def qa_record_problem(record) -> str | None:
    """Why a value of ``4d_qa.json`` cannot be a question, or ``None``."""
    if not isinstance(record, dict):
        return "not a JSON object"
    index = record.get("Answer index")
    if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= 4:
        return f"'Answer index' is {index!r}, expected an integer 1-4"
    if not isinstance(record.get("Category"), str):
        return "'Category' is missing or not a string"
    return None


class FourDBenchQA(MultiView, MCQBenchmark):
    """751 four-choice questions on 4D objects in five categories; see the module docstring."""

    version = "1"
    bench_id = "4dbench-qa"
    categories = ["Object Counting", "Temporal Relationship", "Action", "Spatial Relationship", "Appearance"]
    families = QA_FAMILIES

    class Options(ViewOptions):
        qa_file: str = "4D_Object_Question_Answering/data/4d_qa.json"
        video_dir: str = "4D_Object_Question_Answering/data/4d_object_multi_view_videos"

    @property
    def qa_path(self) -> Path:
        return self.resolve(self.options.qa_file)

    def _records(self) -> dict:
        path = self.qa_path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: 4D-Bench QA file not found; " + PULL_HINT.format(bench=self.bench_id))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object keyed by question id, got {type(data).__name__}")
        return data

    def dataset_revision(self) -> str | None:
        return short_sha256(self.qa_path)

    def verify(self) -> list[str]:
        try:
            records = self._records()
        except (FileNotFoundError, ValueError) as exc:
            return [str(exc)]
        problems = [f"{self.qa_path}: question {key!r}: {problem}" for key, record in records.items()
                    if (problem := qa_record_problem(record))]  # fmt: skip
        return problems + self.missing_videos(dict.fromkeys(key.split("_")[0] for key in records))

    def samples(self):
        """One sample per key of ``4d_qa.json``, in file order; the object (cluster) is ``key.split('_')[0]``."""
        for key, record in self._records().items():
            problem = qa_record_problem(record)
            if problem:
                raise ValueError(f"{self.qa_path}: question {key!r}: {problem}")
            uid = key.split("_")[0]
            rest = {k: v for k, v in record.items() if k not in ("Answer index", "Category")}
            question = next((v for k, v in rest.items() if "question" in k.lower() and isinstance(v, str)), "")
            yield Sample(
                sample_id=key, video_id=uid, category=record["Category"], question=question, options=list(LETTERS),
                answer=LETTERS[record["Answer index"] - 1], media=self.view_videos(uid),
                meta={"vqa": repr(rest), "answer_index": record["Answer index"]},
            )  # fmt: skip

    def build_request(self, sample: Sample) -> Request:
        vqa = sample.meta["vqa"]
        generation = GenerationSettings(max_new_tokens=self.family.max_new_tokens)
        if self.family.prompt != "gpt":
            return self.mcq_request(sample, self.messages(sample, qa_prompt(self.family.prompt, vqa)), generation)
        user = [TextPart(text=QA_GPT_PREAMBLE), *self.media_parts(sample),
                TextPart(text=f"Question and choices: {vqa}"), TextPart(text=QA_FORMAT)]  # fmt: skip
        messages = [Message(role="system", content=[TextPart(text=self.family.system)]), Message(content=user)]
        return self.mcq_request(sample, messages, generation)

    def extract(self, sample: Sample, response: str) -> Extraction:
        parser = self.family.parser
        letter, rule = parse_answer(response, parser)
        return Extraction(
            answer=letter, parsed=letter is not None, method=f"rules:4dbench-qa-{parser.replace('_', '-')}@1",
            detail={"rule": rule, "correctness": correctness_code(letter, rule, sample.answer)},
        )  # fmt: skip
