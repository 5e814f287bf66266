"""``4dbench-caption``: 4D-Bench object captioning, scored against the 5 human captions of each object.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``: ``4D_Object_Captioning/code/mllm_gen_caption/
*_caption_exp.py`` (generation: the prompt variants of :mod:`.prompts`, the frames of :mod:`.multiview`) and
``4D_Object_Captioning/code/eval_metrics/`` (scoring, :mod:`.metrics` and :mod:`.gpt_rubric`). The references are the
non-empty ``caption_1`` ... ``caption_5`` of the object's row (``folder_name`` = uid) in ``human_annotations.csv``; a
model's caption is post-processed as ``handle_llm_caption_no_index`` does (:func:`caption_from_response`).

The primary metric is ``cider_pycocoevalcap``, CIDEr being the first column of the paper's caption table that can be
computed offline (the GPT columns need an API judge). Per sample, ``score()`` returns the official per-object
BLEU-1..4 and ROUGE-L (untokenised); ``aggregate()`` computes everything over the whole set, errors scored as empty
captions. BERTScore and SBERT are computed only with ``bertscore_model`` / ``sbert_model`` (local folders); results
record those options (``null``: not computed) and each extraction lists the metrics left out. GPT-Appearance or
GPT-Action (option ``gpt_aspect``) is scored with ``--judge``: the judge sends :meth:`FourDBenchCaption.judge_prompt`
and reads the reply with ``parse_judgement``.
"""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path
from typing import Literal

from vdpm_harness import (
    Benchmark,
    Extraction,
    GenerationSettings,
    JudgePrompt,
    Request,
    Sample,
    clustered_mean,
)

from .data import PULL_HINT, short_sha256
from .families import CAPTION_FAMILIES
from .gpt_rubric import GPT_ASPECTS, gpt_judge_messages, parse_gpt_score
from .metrics import caption_metrics, check_local_model, official_sentence_scores, require_coco_tools
from .multiview import MultiView, ViewOptions
from .prompts import caption_prompt

log = logging.getLogger(__name__)

CSV_COLUMNS = ("folder_name", *(f"caption_{k}" for k in range(1, 6)))
RULES_METHOD = "rules:4dbench-caption@1"


def caption_from_response(text: str | None) -> str:
    """The official post-processing (``handle_llm_caption_no_index``): the text after the first ``caption:``
    (case-insensitive), stripped; the whole response when there is none. A missing response is the empty caption."""
    if text is None:
        return ""
    start = text.lower().find("caption:")
    return text[start + len("caption:") :].strip() if start != -1 else text


class FourDBenchCaption(MultiView, Benchmark):
    """Captions of 4D objects scored against 5 human captions each; see the module docstring."""

    version = "1"
    bench_id = "4dbench-caption"
    primary_metric = "cider_pycocoevalcap"
    families = CAPTION_FAMILIES

    class Options(ViewOptions):
        annotations_file: str = "4D_Object_Captioning/data/human_annotations.csv"
        video_dir: str = "4D_Object_Captioning/data/4d_object_multi_view_videos"
        gpt_aspect: Literal["appearance", "action"] = "appearance"
        gpt_seed: int = 42
        bertscore_model: str | None = None
        sbert_model: str | None = None

    def __init__(self, options=None):
        super().__init__(options)
        if self.options.bertscore_model:
            check_local_model("bertscore_model", self.options.bertscore_model, "bert_score", "bert-score",
                              "bert-base-uncased")  # fmt: skip
        if self.options.sbert_model:
            check_local_model("sbert_model", self.options.sbert_model, "sentence_transformers",
                              "sentence-transformers", "sentence-transformers/all-MiniLM-L6-v2")  # fmt: skip

    @property
    def annotations_path(self) -> Path:
        return self.resolve(self.options.annotations_file)

    @property
    def not_computed(self) -> list[str]:
        """Metrics of the paper's table this configuration leaves out (recorded in every extraction)."""
        names = [] if self.options.bertscore_model else ["bertscore_f1"]
        names += [] if self.options.sbert_model else ["sbert_cosine"]
        return names + [f"gpt_{aspect}" for aspect in GPT_ASPECTS] + ["spice"]

    def annotations(self) -> tuple[dict[str, list[tuple[int, str]]], list[str]]:
        """``{uid: [(column k, caption_k), ...]}`` of the non-empty captions, in file order, and the problems of
        rows that give no object (no uid, no caption, a repeated uid: the first row wins, as in the official
        ``selected_row.values[0]``)."""
        path = self.annotations_path
        if not path.is_file():
            hint = PULL_HINT.format(bench=self.bench_id)
            raise FileNotFoundError(f"{path}: 4D-Bench human captions not found; {hint}")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(reader)
        objects: dict[str, list[tuple[int, str]]] = {}
        problems = []
        for line, row in enumerate(rows, start=2):
            uid = row["folder_name"] or ""
            captions = [(k, row[f"caption_{k}"]) for k in range(1, 6) if (row[f"caption_{k}"] or "").strip()]
            if not uid.strip() or not captions:
                problems.append(f"{path}: line {line}: " + ("no folder_name" if not uid.strip() else "no caption"))
            elif uid in objects:
                problems.append(f"{path}: line {line}: folder_name {uid!r} repeated (the first row is used)")
            else:
                objects[uid] = captions
        return objects, problems

    def references(self) -> dict[str, list[str]]:
        """``{uid: human captions}``: the input of :func:`.metrics.human_baseline`."""
        return {uid: [text for _, text in captions] for uid, captions in self.annotations()[0].items()}

    def dataset_revision(self) -> str | None:
        return short_sha256(self.annotations_path)

    def verify(self) -> list[str]:
        try:
            objects, problems = self.annotations()
        except (FileNotFoundError, ValueError) as exc:
            return [str(exc)]
        return problems + self.missing_videos(objects)

    def samples(self):
        """One sample per object of the annotation file. ``meta["gpt_reference"]`` is the caption column the GPT
        rubric compares with: drawn like the official ``random.randint(1, 5)`` after ``random.seed(42)``, but in
        sorted uid order, one draw per object (the official order follows ``os.listdir`` and the caption keys)."""
        require_coco_tools()
        objects, problems = self.annotations()
        for problem in problems:
            log.warning("%s", problem)
        rng = random.Random(self.options.gpt_seed)
        draws = {uid: rng.choice([k for k, _ in objects[uid]]) for uid in sorted(objects)}
        for uid, captions in objects.items():
            yield Sample(
                sample_id=uid, video_id=uid, answer=[text for _, text in captions], media=self.view_videos(uid),
                meta={"reference_columns": [k for k, _ in captions], "gpt_reference": draws[uid]},
            )  # fmt: skip

    def build_request(self, sample: Sample) -> Request:
        messages = self.messages(sample, caption_prompt(self.family.prompt))
        return Request(sample_id=sample.sample_id, messages=messages,
                       generation=GenerationSettings(max_new_tokens=self.family.max_new_tokens))  # fmt: skip

    def extract(self, sample: Sample, response: str) -> Extraction:
        """The official ``caption:`` post-processing; an empty caption is unparsed (and scores as empty)."""
        caption = caption_from_response(response)
        return Extraction(answer=caption, parsed=bool(caption.strip()), method=RULES_METHOD,
                          detail={"not_computed": self.not_computed})  # fmt: skip

    def score(self, sample: Sample, extraction: Extraction) -> tuple[float | None, dict[str, float]]:
        """The official per-object BLEU-1..4 and ROUGE-L of the caption (0-1), or a judge's GPT score (none when
        the judge's reply was unusable)."""
        if extraction.method == RULES_METHOD:
            return None, official_sentence_scores(extraction.answer, sample.answer)
        if extraction.parsed and extraction.answer is not None:
            return None, {f"gpt_{self.options.gpt_aspect}": float(extraction.answer)}
        return None, {}

    def aggregate(self, scores):
        """All caption metrics over the whole set (:func:`.metrics.caption_metrics`; a failed sample is
        the empty caption), plus the mean GPT score of the samples a judge scored (failed replies are left out of
        the mean, as officially, and counted in ``unparsed_rate``)."""
        metrics = caption_metrics(
            [caption_from_response(s.response) for s in scores], [s.gold for s in scores],
            [s.video_id for s in scores], self.options.bertscore_model, self.options.sbert_model,
        )  # fmt: skip
        for aspect in GPT_ASPECTS:
            judged = [s for s in scores if f"gpt_{aspect}" in s.metrics]
            if judged:
                metrics[f"gpt_{aspect}"] = clustered_mean(
                    [s.metrics[f"gpt_{aspect}"] for s in judged],
                    [s.video_id for s in judged],
                    scale=1.0,
                    bounds=(0.0, 5.0),
                )
        return metrics, {}

    def gpt_reference(self, sample: Sample) -> str:
        return sample.answer[sample.meta["reference_columns"].index(sample.meta["gpt_reference"])]

    def judge_prompt(self, sample: Sample, response: str) -> JudgePrompt:
        """The official GPT-Appearance or GPT-Action request (``gpt_aspect``) for the post-processed caption."""
        caption = caption_from_response(response)
        return JudgePrompt(messages=gpt_judge_messages(self.options.gpt_aspect, self.gpt_reference(sample), caption))

    def parse_judgement(self, sample: Sample, reply: str) -> Extraction:
        aspect = self.options.gpt_aspect
        value, why = parse_gpt_score(aspect, reply)
        detail = {"gpt_aspect": aspect, "reference_column": sample.meta["gpt_reference"]}
        if why:
            detail["error"] = why
        return Extraction(answer=value, parsed=value is not None, method=f"judge-reply:4dbench-gpt-{aspect}@1",
                          detail=detail)  # fmt: skip
