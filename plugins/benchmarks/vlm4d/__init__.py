"""``vlm4d``: VLM4D (ICCV 2025, arXiv 2508.02095), spatiotemporal multiple choice on real and synthetic videos.

Protocol facts follow the reference ``benchmarks.md`` Part B (official code ``ShijieZhou-UCLA/VLM4D`` at ``23f2680``).

**Data.** The released question files (``real_mc.json``: 1,371 questions on 600 videos; ``synthetic_mc.json``: 445 on
400) ship with the plugin in ``data/`` (MIT, see ``data/LICENSE.md``) and are verified against their
sha256 when first read. The videos come from the Hugging Face dataset ``shijiezhou/VLM4D``:
``vdpm-harness data pull vlm4d --to DIR`` downloads ``videos_real/`` and ``videos_synthetic/`` into ``DIR``; pass it
as ``--bench-arg data_dir=DIR`` (default ``$VDPM_CACHE/vlm4d``, i.e. ``~/.cache/vdpm-harness/vlm4d``). A record's
video URL ``.../resolve/main/<rel>`` maps to ``data_dir/<rel>``. A missing video does not stop ``samples()``: the
run records an error for that sample naming the file.

**Samples.** Ids restart at 1 in each file, so sample ids carry the split: ``real/validation_12``,
``synthetic/validation_12``. ``video_id`` is the video's relative path (the cluster for confidence intervals).
Categories: ``real_exo`` (id <= 922: DAVIS and YouTube-VOS), ``real_ego`` (Ego4D), ``syn_fp`` (synthetic questions whose
answer is "no ...": the false-positive probes, rule of B.5) and ``syn_directional`` (the rest). ``Sample.answer`` is the
letter whose choice equals the answer text (compared as lower-cased strings, B.10); the answer text, the released
choices and the full set of gold letters are in ``meta``. Real ``validation_633`` has two identical choices
(C and D, "away from the camera"): ``answer`` is the first, ``C``, and rule scoring accepts either letter, since the
model sees the same text for both (the official judge likewise compares option texts).

**Prompts.** ``prompt="cot"`` (default) and ``"direct"`` (the released ``direct-output``) are the official templates,
byte for byte; one user message, the video first, then the text; no system prompt. Frames: the default
``FramePolicy(fps=1, max_frames=64)`` is the paper's setting for open video models (Qwen2/2.5-VL, LLaVA-OneVision:
1 fps capped at 64 frames). The official fps path takes ``min(int(frames / native_fps), 64)`` frames by linspace over
the whole video; the harness's fps rule (frame ``int(i * native_fps)``, spread uniformly when the cap binds) picks
nearly the same frames. Override per model (``frames = {nframes = 32}`` for the gpt-4o setting, ``nframes = 0`` for a
blind run). Generation: at most 1,024 new tokens as in the paper, but greedy by default (the paper samples at
temperature 1.0 for API and vLLM models, which makes runs irreproducible); set ``temperature`` to match it.

**Scoring.** Three paths, always named in the results:

* ``rules:vlm4d@1`` (default): :func:`extract_vlm4d`, a VLM4D-tuned rule extractor (the lenient extractor of B.7 plus
  a few additions). On the paper's judged outputs of 12 models its verdict equals the stored one for 99.95% of the
  direct-output and 99.10% of the CoT records (the core extractor: 99.69% and 94.56%); free-text answers of models
  that ignore the format (InternVideo2-Chat CoT: 97.2%) are what an LLM judge is still needed for.
* an LLM judge through ``--judge openai-judge``: :meth:`VLM4D.judge_prompt` sends the official o4-mini messages with
  the structured-output schema, :meth:`VLM4D.parse_judgement` reads the verdict.
* ``--judge vlm4d-stored``: the verdicts stored with imported official outputs (``vdpm-harness import vlm4d``).

A judge's ``correct`` verdict is used as is (it can differ from letter equality when a model's letter and its
restated option text disagree). :meth:`VLM4D.aggregate` reports the official table: ``overall`` (the pooled
micro-average over every question, primary), ``real_overall``, ``real_ego``, ``real_exo``, ``syn_overall``,
``syn_directional``, ``syn_fp``, in percent with 95% CIs clustered by video; cells whose subset is absent from the
run are omitted. The paper rounds with ``round(x, 2)``; results keep full precision.

**Import.** ``vdpm-harness import vlm4d PATH`` reads official output files: one JSON file or a folder of them
(recursively), raw (the question records plus ``response``) or processed (``id, question, choices, response,
ground_truth_answer, extracted_answer, correct``). The split of a file comes from its folder name
(``real_mc_cot``, ``synthetic_mc_direct-output``, ...), else from its video URLs, else from matching its questions to
the released ones. The real and the synthetic file of one model and prompt become ONE run, labelled
``<file stem>@<prompt>`` with the prompt named as in this benchmark's option (``gpt-4o_32frame@cot``,
``gpt-4o_32frame@direct`` for the ``direct-output`` folders); a file outside such a folder is labelled by its stem.
Processed records keep ``extracted_answer`` and ``correct`` in the prediction's ``meta`` (scored by
``--judge vlm4d-stored``); a list of responses (``n > 1``) keeps the first; records whose question, choices or answer
differ from the released data (the re-uploads of B.6) are imported as they are, flagged in ``meta["drift"]``, and
counted in the run's details and in a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from string import Template
from typing import Any, Literal

from pydantic import Field

from vdpm_harness import (
    Extraction,
    FramePolicy,
    GenerationSettings,
    ImportedResponse,
    ImportedRun,
    Judge,
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
    hookimpl,
    visible_text,
)

log = logging.getLogger(__name__)

DATA_FOLDER = Path(__file__).with_name("data")
#: The released question files and their sha256 (``ShijieZhou-UCLA/VLM4D`` at ``23f2680``, ``data/``).
QUESTION_FILES = {
    "real": ("real_mc.json", "069e14c02998ec9bf3e825b784259d45e0bd0f7273b43a1fe0c12311b286a4e4"),
    "synthetic": ("synthetic_mc.json", "630da16f4b27bfb8281e43f2feb4c7c483cf1e37e15941bb280c3bffe3553700"),
}
SPLITS = ("real", "synthetic")
HF_REPO = "shijiezhou/VLM4D"
VIDEO_PATTERNS = ["videos_real/**", "videos_synthetic/**"]
#: Real ids up to this one are exo-centric (DAVIS, YouTube-VOS); the rest are Ego4D (B.2).
EXO_MAX_ID = 922
LETTERS = ["A", "B", "C", "D"]

# ``utils/constant.py``: string.Template sources (``$$LETTER`` renders as ``$LETTER``), B.3.
COT_TEMPLATE = (
    "\nQuestion: $question\n$optionized_str\n\nAnswer the given multiple-choice question step by step. Begin by "
    "explaining your reasoning process clearly. In the last sentence of your response, you must conclude by stating "
    "the final answer using the following format: 'Therefore, the final answer is: $$LETTER' (without quotes), where "
    "$$LETTER must be only one of the options (A or B or C or D). Think step by step before answering."
)
DIRECT_TEMPLATE = (
    "\nQuestion: $question\n$optionized_str\n\nDo not generate any intermediate reasoning process. Answer directly "
    "with the option letter from the given choices.\n"
)
TEMPLATES = {"cot": COT_TEMPLATE, "direct": DIRECT_TEMPLATE}
#: Official output folder suffix -> this benchmark's ``prompt`` option.
PROMPT_FOLDERS = {"cot": "cot", "direct-output": "direct"}

# ``utils/eval_utils.py``: the o4-mini judge's system message and user message, B.4.
JUDGE_SYSTEM_PROMPT = (
    "Your task is to evaluate whether the model's final answer is correct by comparing it to the ground-truth answer "
    "provided for the given question.\n\nYou should first extract the final answer from the model's response, and "
    "then compare the extracted answer with the choice that matches the ground-truth answer to determine its "
    "correctness.\nOutput your response in the following structured format:\n{\n"
    '    "extracted_answer": // str value "A" "B" "C" "D", followed by a colon and the corresponding answer text, '
    'e.g., "A: Answer A text". If the model\'s response does not contain a valid choice and reasoning, then '
    '"No Valid Answer".\n'
    '    "correct": // boolean value, True if the extracted answer matches the ground-truth answer (correct choice), '
    'False otherwise ("No Valid Answer" is also considered False).\n}\n'
)
JUDGE_USER_TEMPLATE = (
    "Question: {question}\n\nOptions:\n{optionized_str}\n\nGround Truth Answer: {answer}\n\n"
    "Model Response to the Question: {response}"
)
#: The official judge's structured output (pydantic ``EvaluationOutput``) as a JSON schema.
JUDGE_SCHEMA = {
    "title": "EvaluationOutput",
    "type": "object",
    "properties": {"extracted_answer": {"type": "string"}, "correct": {"type": "boolean"}},
    "required": ["extracted_answer", "correct"],
    "additionalProperties": False,
}

#: The official table (B.5): each cell and the categories it pools, in reporting order.
TABLE = {
    "overall": ("real_ego", "real_exo", "syn_directional", "syn_fp"),
    "real_overall": ("real_ego", "real_exo"),
    "real_ego": ("real_ego",),
    "real_exo": ("real_exo",),
    "syn_overall": ("syn_directional", "syn_fp"),
    "syn_directional": ("syn_directional",),
    "syn_fp": ("syn_fp",),
}


# --- the released data ---------------------------------------------------------------------------------------------


def load_questions(split: str, folder: Path = DATA_FOLDER) -> list[dict]:
    """The released question records of ``split``, after checking the file's sha256 against the released one."""
    name, expected = QUESTION_FILES[split]
    path = Path(folder) / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the VLM4D question file ({exc}); reinstall vdpm-harness") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(
            f"{path}: sha256 {digest} differs from the released VLM4D {name} ({expected}): the file is corrupt or "
            "modified; restore it from ShijieZhou-UCLA/VLM4D data/ or reinstall vdpm-harness"
        )
    return json.loads(data)


def is_fp(answer: Any) -> bool:
    """The official false-positive rule (``acc_final_statistics.py``): the answer is "no" or starts with "no "."""
    text = str(answer).strip().lower()
    return text == "no" or text.startswith("no ")


def gold_letters(choices: dict[str, Any], answer: Any) -> list[str]:
    """Letters whose choice equals the answer text, compared as lower-cased strings (B.10)."""
    return [k for k, v in choices.items() if str(v).lower() == str(answer).lower()]


def video_path(url: str) -> str:
    """A record's Hugging Face URL -> the video's path inside the dataset (``videos_real/davis/x.mp4``)."""
    marker = "/resolve/main/"
    if marker not in url:
        raise ValueError(f"unexpected VLM4D video URL {url!r} (no '{marker}')")
    return url.split(marker, 1)[1]


def optionize(letters: list[str], options: list[str]) -> str:
    """The official option block: ``"A: text"`` lines (ints already rendered with ``str``)."""
    return "\n".join(f"{letter}: {text}" for letter, text in zip(letters, options))


def render_prompt(template: str, question: str, letters: list[str], options: list[str]) -> str:
    return Template(template).substitute(question=question, optionized_str=optionize(letters, options))


def category_of(split: str, record: dict) -> str:
    if split == "real":
        return "real_exo" if int(record["id"].split("_")[-1]) <= EXO_MAX_ID else "real_ego"
    return "syn_fp" if is_fp(record["answer"]) else "syn_directional"


# --- the rule extractor ----------------------------------------------------------------------------------------------

RULES_METHOD = "rules:vlm4d@1"
_OPENER = r"""[\s:：]*(?:\$\\boxed\{|\\boxed\{|\*\*|\(|\[|["'“‘`]|\$|_|\s)*"""
# a letter that starts a list of letters ("A or D", "A, B, C", "A(D)") is a hedge, not an answer
_NOT_A_LIST = r"(?![A-Za-z])(?![)\]$]?\s*(?:or\b|and\b|/|,|\()\s*\$?\(?[A-D](?![A-Za-z]))"
_DECLARED = [
    re.compile(r"(?i:final answer)(?:\s+(?:is|must be|would be|will be|should be))?" + _OPENER + r"(?P<x>[A-D])"
               + _NOT_A_LIST),
    re.compile(r"\\boxed\{\s*(?P<x>[A-D])\s*\}"),
    re.compile(r"(?i:answer)(?:\s+is)?:?" + _OPENER + r"(?P<x>[A-D])" + _NOT_A_LIST),
    re.compile(r"(?i:answer)(?:\s+is)?:?\s*\(?(?P<x>[a-d])\)?(?=\.?\s*$|[.)]\s)"),  # "the answer is b."
    re.compile(r"(?<![A-Za-z])(?P<x>[A-D])\)?:? is the (?:correct|best|right) (?:answer|option|choice)"),
    re.compile(r"答案是?[：:]\s*(?P<x>[A-D])(?![A-Za-z])"),
]  # fmt: skip
_LEADING = re.compile(r"^\s*(?:\*\*|\(|\[)*(?P<x>[A-D])(?:[)\].:,*\s]|$)")
_OPTION = re.compile(r"(?i:option|choice)(?:\s+is)?\s*[(\[]?(?P<x>[A-D])(?![A-Za-z])")
_TRAILING = re.compile(r"(?:^|(?<![\s,/]or)(?<![\s,/]and)(?<![,/])\s)[(\[]?(?P<x>[A-D])[)\]]?\.?\s*$")
_TAIL_LETTER = re.compile(r"(?<![A-Za-z])(?P<x>[A-D])[:.)]")
_NUMBER_WORDS = {0: ["zero", "none"], 1: ["one", "once"], 2: ["two", "twice"], 3: ["three", "thrice"], 4: ["four"],
                 5: ["five"], 6: ["six"], 7: ["seven"], 8: ["eight"], 9: ["nine"], 10: ["ten"]}  # fmt: skip


def _option_pattern(option: str) -> str:
    """A regex for an option's text in free prose: a final plural "s" is optional, counts also match number words."""
    text = option.strip().lower()
    alternatives = [re.escape(text[:-1]) + "s?" if text.endswith("s") and len(text) > 3 else re.escape(text)]
    if text.isdigit():
        alternatives += _NUMBER_WORDS.get(int(text), [])
    return r"(?<![a-z0-9-])(?:" + "|".join(alternatives) + r")(?![a-z0-9-])"


def extract_vlm4d(response: str | None, options: list[str]) -> Extraction:
    """Read the option letter (A-D) out of a VLM4D response; ``options`` are the four option texts.

    The lenient extractor of benchmarks.md B.7, in order of evidence:

    1. a declared answer, the last one in the text: "final answer is: X" (with ``**``, brackets, quotes, ``$``,
       ``\\boxed{}`` around X), ``\\boxed{X}``, "answer: X", a lower-case "the answer is b.", "X is the correct
       answer", "答案是：X"; a letter that opens a list ("A or D") is a hedge and does not count;
    2. a response that starts with a letter ("B", "(B)", "**B**", "B. left");
    3. the last "option X" / "choice X";
    4. a response that ends with a lone letter;
    5. the option text that occurs last in the final 300 characters (counts also as number words: "twice" is 2;
       overlapping matches prefer the longer text, so "counter-clockwise" beats "clockwise");
    6. the last "X:" / "X." / "X)" in the final 200 characters.

    An empty response, or one that never closes its ``<think>`` block, is unparsed.
    """
    if not response or not response.strip():
        return Extraction(answer=None, parsed=False, method=RULES_METHOD, detail={"rule": "empty"})
    text = visible_text(response)
    if text is None:
        return Extraction(answer=None, parsed=False, method=RULES_METHOD, detail={"rule": "unclosed_think"})

    def found(letter: str | None, rule: str) -> Extraction:
        return Extraction(answer=letter, parsed=letter is not None, method=RULES_METHOD, detail={"rule": rule})

    declared = [(m.start(), m.group("x").upper()) for pattern in _DECLARED for m in pattern.finditer(text)]
    if declared:
        return found(max(declared)[1], "declared")
    for rule, match in (("leading", _LEADING.match(text)), ("option", _last(_OPTION, text)),
                        ("trailing", _TRAILING.search(text))):  # fmt: skip
        if match:
            return found(match.group("x"), rule)
    tail = text[-300:].lower()
    hits = [
        (m.end(), len(m.group()), letter)
        for letter, option in zip(LETTERS, options)
        for m in re.finditer(_option_pattern(option), tail)
    ]
    if hits:
        return found(max(hits)[2], "option_text")
    match = _last(_TAIL_LETTER, text[-200:])
    return found(match.group("x"), "tail_letter") if match else found(None, "no_letter")


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


# --- judge verdicts --------------------------------------------------------------------------------------------------


def verdict_extraction(extracted_answer: str, correct: bool, method: str) -> Extraction:
    """An official-style verdict as an extraction: the letter that ``extracted_answer`` starts with ("B: left" -> B),
    ``parsed`` when there is a letter or the verdict is correct (a correct free-text answer such as "not moving"),
    and the verdict itself in ``detail``."""
    match = re.match(r"\s*[(\[]?([A-D])(?![A-Za-z])", extracted_answer)
    letter = match.group(1) if match else None
    return Extraction(answer=letter, parsed=letter is not None or correct, method=method,
                      detail={"correct": correct, "extracted_answer": extracted_answer})  # fmt: skip


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
        user = JUDGE_USER_TEMPLATE.format(
            question=sample.question, optionized_str=optionize(self.letters(sample), sample.options),
            answer=sample.meta["answer_text"], response=response,
        )  # fmt: skip
        messages = [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]
        return JudgePrompt(messages=messages, response_schema=JUDGE_SCHEMA)

    def parse_judgement(self, sample: Sample, reply: str) -> Extraction:
        """The judge's JSON reply -> an extraction with the verdict in ``detail``. A malformed reply (not JSON, or
        without a string ``extracted_answer`` and a boolean ``correct``) is unparsed and wrong, as officially.

        ``method`` is a placeholder: the judge plugin sets its own tag."""
        text = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", reply or "")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("extracted_answer"), str)
                and isinstance(data.get("correct"), bool)):  # fmt: skip
            return Extraction(answer=None, parsed=False, method="judge:vlm4d-prompt",
                              detail={"correct": False, "extracted_answer": "", "malformed": True})  # fmt: skip
        return verdict_extraction(data["extracted_answer"], data["correct"], "judge:vlm4d-prompt")

    def aggregate(self, scores: list[Score]) -> tuple[dict, dict]:
        """The official table (``overall`` pooled over every question, then each split and subset) and per-category
        accuracy. Errors and unparsed answers count as wrong. Each category's accuracy is also given under the
        primary metric's name, ``overall``, which is the key the leaderboard reads category columns by."""
        from vdpm_harness import clustered_mean, summarize_accuracy

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
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise RuntimeError("downloading VLM4D needs huggingface_hub: pip install 'vdpm-harness[hub]'") from exc
        try:
            snapshot_download(repo_id=HF_REPO, repo_type="dataset", allow_patterns=VIDEO_PATTERNS, local_dir=to)
        except Exception as exc:  # noqa: BLE001 - any hub or network failure gets the same explanation
            raise RuntimeError(
                f"could not download the VLM4D videos from https://huggingface.co/datasets/{HF_REPO} into {to}: "
                f"{type(exc).__name__}: {exc}\nWithout access to the hub (offline, HF_HUB_OFFLINE=1, a firewall), copy "
                f"videos_real/ and videos_synthetic/ from a machine that has them into {to}, then run "
                f"`vdpm-harness data verify vlm4d --data-dir {to}`."
            ) from exc

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
        path = Path(path)
        released = {split: {r["id"]: r for r in load_questions(split)} for split in SPLITS}
        groups: dict[tuple[str, str | None], dict[str, tuple[Path, list[dict]]]] = defaultdict(dict)
        for file in [path] if path.is_file() else sorted(path.rglob("*.json")):
            records = _read_output_file(file, strict=path.is_file())
            if records is None:
                continue
            split, prompt = _split_and_prompt(file, records, released)
            if split not in self.splits:
                log.info("%s: skipped (%s split; this benchmark evaluates %s)", file, split, self.options.split)
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
    """Fields of an output record that differ from the released question (the data was re-uploaded, B.6)."""
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


class StoredVerdictJudge(Judge):
    """Scores imported official outputs with the verdict stored beside each response (``extracted_answer`` and
    ``correct`` of the paper's processed files: the o4-mini judge plus the authors' manual check)."""

    version = "1"

    def judge(self, benchmark, items):
        out = []
        for sample, prediction in items:
            correct, extracted = prediction.meta.get("correct"), prediction.meta.get("extracted_answer")
            if not isinstance(correct, bool) or not isinstance(extracted, str):
                raise ValueError(
                    f"{sample.sample_id}: no stored verdict ('correct' and 'extracted_answer' in the prediction's "
                    "meta); the vlm4d-stored judge scores only imported processed VLM4D outputs"
                )
            out.append(verdict_extraction(extracted, correct, self.tag))
        return out


@hookimpl
def register_benchmarks(register):
    register(
        "vlm4d",
        VLM4D,
        description="VLM4D (ICCV 2025): 1,816 spatiotemporal MCQs on real and synthetic videos; official table.",
    )


@hookimpl
def register_judges(register):
    register(
        "vlm4d-stored",
        StoredVerdictJudge,
        description="The verdicts stored in imported official VLM4D outputs (paper parity).",
    )
