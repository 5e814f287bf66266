"""The ``vlm4d`` benchmark: VLM4D (Zhou et al., ICCV 2025, arXiv 2508.02095), spatiotemporal multiple choice on
real and synthetic videos, evaluated as the official code ``ShijieZhou-UCLA/VLM4D`` (commit ``23f2680``) does.

**Data.** The question files ship with the plugin (:mod:`.questions`). The videos come from the Hugging Face dataset
``shijiezhou/VLM4D``: ``vdpm-harness data pull vlm4d --to DIR`` downloads ``videos_real/`` and ``videos_synthetic/``
into ``DIR``; pass it as ``--bench-arg data_dir=DIR`` (default ``$VDPM_CACHE/vlm4d``, i.e.
``~/.cache/vdpm-harness/vlm4d``). A record's video URL ``.../resolve/main/<rel>`` maps to ``data_dir/<rel>``. A missing
video does not stop ``samples()``: the run records an error for that sample naming the file.

**Samples.** Ids restart at 1 in each file, so sample ids carry the split: ``real/validation_12``,
``synthetic/validation_12``. ``video_id`` is the video's relative path (the cluster for confidence intervals).
Categories: ``real_exo``, ``real_ego``, ``syn_fp`` and ``syn_directional`` (:func:`.questions.category_of`).
``Sample.answer`` is the letter whose choice equals the answer text (compared as lower-cased strings, as the official
judge compares option texts); the answer text, the released choices and the full set of gold letters are in
``meta``. Real ``validation_633`` has two identical choices (C and D, "away from the camera"): ``answer`` is the
first, ``C``, and rule scoring accepts either letter, since the model sees the same text for both.

**Prompts** (:mod:`.prompts`). ``prompt="cot"`` (default) and ``"direct"`` (the official ``direct-output``); one user
message, the video first, then the text; no system prompt. Frames: the default ``FramePolicy(fps=1, max_frames=64)``
is the paper's setting for open video models (Qwen2/2.5-VL, LLaVA-OneVision: 1 fps capped at 64 frames). The official
fps path (``utils/vlm_prepare_input.py``) takes ``min(int(frames / native_fps), 64)`` frames by linspace over the
whole video; the harness's fps rule (frame ``int(i * native_fps)``, spread uniformly when the cap binds) picks nearly
the same frames. Override per model (``frames = {nframes = 32}`` for the paper's gpt-4o setting, ``nframes = 0`` for
a blind run). Generation: at most 1,024 new tokens as in the paper (``MAX_TOKENS`` of ``utils/constant.py``), but
greedy by default (the paper samples at temperature 1.0 for API and vLLM models, which makes runs irreproducible); set
``temperature`` to match it.

**Scoring.** Three paths, always named in the results:

* ``rules:vlm4d@1`` (default): :func:`.extraction.extract_vlm4d`, a rule extractor tuned on the paper's judged
  outputs; free-text answers of models that ignore the format are what an LLM judge is still needed for.
* an LLM judge through ``--judge openai-judge``: :meth:`VLM4D.judge_prompt` sends the official o4-mini messages with
  the structured-output schema, :meth:`VLM4D.parse_judgement` reads the verdict.
* ``--judge vlm4d-stored``: the verdicts stored with imported official outputs (:mod:`.stored_judge`).

A judge's ``correct`` verdict is used as is (it can differ from letter equality when a model's letter and its
restated option text disagree). :meth:`VLM4D.aggregate` reports the table of ``acc_final_statistics.py``: ``overall``
(the pooled micro-average over every question, primary), ``real_overall``, ``real_ego``, ``real_exo``,
``syn_overall``, ``syn_directional``, ``syn_fp``, in percent with 95% CIs clustered by video; cells whose subset is
absent from the run are omitted. The official script rounds with ``round(x, 2)``; results keep full precision.

**Import.** ``vdpm-harness import vlm4d PATH`` reads official output files (:mod:`.published`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field

from vdpm_harness import (
    Extraction,
    FramePolicy,
    GenerationSettings,
    ImportedRun,
    JudgePrompt,
    MCQBenchmark,
    Message,
    Request,
    Sample,
    Score,
    Strict,
    TextPart,
    VideoPart,
    cache_root,
    clustered_mean,
    hub,
    summarize_accuracy,
)

from .extraction import extract_vlm4d, parse_verdict
from .prompts import JUDGE_SCHEMA, TEMPLATES, judge_messages, render_prompt
from .published import import_outputs
from .questions import QUESTION_FILES, SPLITS, category_of, gold_letters, load_questions, video_path

HF_REPO = "shijiezhou/VLM4D"
VIDEO_PATTERNS = ["videos_real/**", "videos_synthetic/**"]

#: The official table (``acc_final_statistics.py``): each cell and the categories it pools, in reporting order.
TABLE = {
    "overall": ("real_ego", "real_exo", "syn_directional", "syn_fp"),
    "real_overall": ("real_ego", "real_exo"),
    "real_ego": ("real_ego",),
    "real_exo": ("real_exo",),
    "syn_overall": ("syn_directional", "syn_fp"),
    "syn_directional": ("syn_directional",),
    "syn_fp": ("syn_fp",),
}


class VLM4D(MCQBenchmark):
    """VLM4D multiple choice, real and synthetic splits; see the module docstring."""

    version = "1"
    categories = ["real_ego", "real_exo", "syn_directional", "syn_fp"]
    primary_metric = "overall"

    class Options(Strict):
        split: Literal["real", "synthetic", "both"] = "both"
        prompt: Literal["cot", "direct"] = "cot"
        frames: FramePolicy = FramePolicy(fps=1.0, max_frames=64)
        data_dir: str | None = None
        ids: list[str] | None = Field(default=None, description="Only these sample ids (e.g. real/validation_3).")
        max_new_tokens: int = Field(default=1024, ge=1)
        temperature: float = Field(default=0.0, ge=0.0)

    @property
    def splits(self) -> list[str]:
        return list(SPLITS) if self.options.split == "both" else [self.options.split]

    @property
    def data_dir(self) -> Path:
        return Path(self.options.data_dir) if self.options.data_dir else cache_root() / "vlm4d"

    @cached_property
    def questions(self) -> dict[str, list[dict]]:
        """The released records of the selected splits (checksums verified once per benchmark object)."""
        return {split: load_questions(split) for split in self.splits}

    def dataset_revision(self) -> str:
        return ",".join(f"{split}:{QUESTION_FILES[split][1][:16]}" for split in self.splits)

    def samples(self) -> Iterable[Sample]:
        wanted = set(self.options.ids) if self.options.ids is not None else None
        samples = [self._sample(split, record) for split in self.splits for record in self.questions[split]]
        if wanted is not None:
            unknown = wanted - {s.sample_id for s in samples}
            if unknown:
                raise ValueError(f"vlm4d: unknown sample ids in 'ids' (split {self.options.split}): {sorted(unknown)}")
            samples = [s for s in samples if s.sample_id in wanted]
        return samples

    def _sample(self, split: str, record: dict) -> Sample:
        rel = video_path(record["video"])
        choices = record["choices"]
        gold = gold_letters(choices, record["answer"])
        if not gold:
            raise ValueError(f"vlm4d {split}/{record['id']}: the answer {record['answer']!r} is none of the choices")
        return Sample(
            sample_id=f"{split}/{record['id']}", video_id=rel, category=category_of(split, record),
            question=record["question"], options=[str(v) for v in choices.values()], answer=gold[0],
            media=[str(self.data_dir / rel)],
            meta={"split": split, "id": record["id"], "answer_text": record["answer"], "choices": choices,
                  "gold_letters": gold},
        )  # fmt: skip

    def build_request(self, sample: Sample) -> Request:
        text = render_prompt(TEMPLATES[self.options.prompt], sample.question, self.letters(sample), sample.options)
        content = [VideoPart(video=sample.media[0], frames=self.options.frames), TextPart(text=text)]
        options = self.options
        generation = GenerationSettings(max_new_tokens=options.max_new_tokens, temperature=options.temperature)
        return self.mcq_request(sample, [Message(role="user", content=content)], generation)

    # --- scoring ---

    def extract(self, sample: Sample, response: str) -> Extraction:
        return extract_vlm4d(response, sample.options)

    def score(self, sample: Sample, extraction: Extraction) -> tuple[float | None, dict[str, float]]:
        """A judge's ``correct`` verdict when the extraction carries one, else the letter among the gold letters."""
        verdict = extraction.detail.get("correct")
        if isinstance(verdict, bool):
            return float(verdict), {}
        gold = sample.meta.get("gold_letters", [sample.answer])
        return (1.0 if extraction.parsed and extraction.answer in gold else 0.0), {}

    def judge_prompt(self, sample: Sample, response: str) -> JudgePrompt:
        """The official o4-mini judge request: system and user message, structured output ``EvaluationOutput``."""
        messages = judge_messages(sample.question, self.letters(sample), sample.options, sample.meta["answer_text"],
                                  response)  # fmt: skip
        return JudgePrompt(messages=messages, response_schema=JUDGE_SCHEMA)

    def parse_judgement(self, sample: Sample, reply: str) -> Extraction:
        """The judge's JSON reply -> an extraction with the verdict in ``detail``. A malformed reply (not JSON, or
        without a string ``extracted_answer`` and a boolean ``correct``) is unparsed and wrong, as officially.

        ``method`` is a placeholder: the judge plugin sets its own tag."""
        return parse_verdict(reply, "judge:vlm4d-prompt")

    def aggregate(self, scores: list[Score]) -> tuple[dict, dict]:
        """The official table (``overall`` pooled over every question, then each split and subset) and per-category
        accuracy. Errors and unparsed answers count as wrong. Each category's accuracy is also given under the
        primary metric's name, ``overall``, which is the key the leaderboard reads category columns by."""
        metrics = {}
        for cell, members in TABLE.items():
            chosen = [s for s in scores if s.category in members]
            if chosen:
                values = [s.correct if s.status == "ok" and s.correct is not None else 0.0 for s in chosen]
                metrics[cell] = clustered_mean(values, [s.video_id for s in chosen])
        _, categories = summarize_accuracy(scores, self.categories)
        return metrics, categories

    # --- data management ---

    def pull(self, to: Path) -> None:
        """Download ``videos_real/`` and ``videos_synthetic/`` of the Hugging Face dataset into ``to``."""
        hub.download_dataset(
            HF_REPO, to, what="the VLM4D videos", allow_patterns=VIDEO_PATTERNS,
            offline_hint=f"copy videos_real/ and videos_synthetic/ from a machine that has them into {to}, then run "
            f"`vdpm-harness data verify vlm4d --data-dir {to}`.",
        )  # fmt: skip

    def verify(self) -> list[str]:
        """Checksum problems of the question files, then every missing video (its path under ``data_dir``)."""
        problems = []
        for split in self.splits:
            try:
                load_questions(split)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            return problems
        root = self.data_dir
        if not root.is_dir():
            return [f"{root}: VLM4D video folder not found; run `vdpm-harness data pull vlm4d --to {root}`"]
        videos = sorted({s.video_id for s in self.samples()})
        return [f"missing video {rel} (under {root})" for rel in videos if not (root / rel).is_file()]

    # --- import of official outputs ---

    def import_predictions(self, path: Path) -> Iterable[ImportedRun]:
        """Read official VLM4D output files as runs: one per (file stem, prompt), real and synthetic pooled."""
        return import_outputs(path, self.splits)
