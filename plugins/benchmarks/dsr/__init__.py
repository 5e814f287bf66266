"""``dsr``: DSR-Bench, the dynamic spatial reasoning benchmark of the DSR Suite (TencentARC, 1484 four-option
questions on Koala-36M clips), with the two published evaluations side by side.

Data (``data_dir``), in either published layout (``layout="auto"`` picks the first present, the TSV first):

* ``"vlmevalkit"``: ``DSRBench.tsv`` from the Hugging Face dataset ``lmms-lab-si/EASI-Leaderboard-Data`` (columns
  ``index, video, question, options, answer, task_type``; the options a JSON or Python-literal list of ``"A. ..."``
  strings), videos at ``raw_data/dsr-bench/<video>`` (the unpacked ``raw_data/dsr-bench.zip``) or ``<video>``
  directly under ``data_dir``, whichever holds them. ``verify()`` checks the TSV against the MD5 VLMEvalKit checks
  (``9273aeb004e8ca196df5a5e826bdf97d``); a mismatch is reported there (and recorded in the run's dataset
  revision) but does not stop a run, so edited or re-exported tables can still be evaluated.
* ``"parquet"``: ``benchmark.parquet`` from ``TencentARC/DSR_Suite-Data`` (``videoID, options, question, answer``),
  the authors' table; videos are ``<videoID>.mp4``. It has no category column: categories are taken from a
  ``task_type`` column if the parquet has one, else joined from ``DSRBench.tsv`` by (video name without extension,
  question) when the TSV is in ``data_dir`` too, else left unknown. Sample ids are the row numbers, as in the
  authors' evaluation. Reading it needs ``pyarrow``.

Prompts (``prompt``), byte-exact from ``benchmarks.md`` A.3: ``"vlmevalkit"`` (upstream ``DSRBench``: instruction,
video, question) or ``"dsr_fork"`` (the authors' ``VLMEvalKit_mine``: empty text, video, instruction, question).
Frames: 32 uniformly spaced frames by default (the authors' setting); ``frame_preset`` selects VLMEvalKit's named
variants (``32frame``, ``64frame``, ``30frame``, ``1fps``) and ``frames`` any :class:`FramePolicy`
(``frames={"nframes": 0}`` is a blind, text-only run).

Scoring: :func:`extract_dsr`, a rule extractor restricted to the sample's letters in which the last declared answer
wins (after ``</think>``, inside the last ``<answer>`` block). Every extraction also records, in ``detail``, the
decision of upstream VLMEvalKit's rule scorer (``can_match_option``, reimplemented in :func:`vlmevalkit_choice`)
and of the authors' fork (first capital A-D, :func:`fork_choice`), and the results carry their accuracies as
``accuracy_vlmevalkit`` and ``accuracy_fork`` next to the headline ``accuracy``.

Judged scoring (``--judge openai-judge``, or ``rescore RUN --judge openai-judge``): VLMEvalKit's LLM scorer, which
upstream runs by default whenever an OpenAI key is set: :data:`JUDGE_PROMPT` per response (:meth:`judge_prompt`),
the grade read from the first line of the reply (:meth:`parse_judgement`), correct iff the grade is ``A``. Upstream's
default judge model is ``gpt-4o-mini`` at temperature 0: ``--judge-arg model=gpt-4o-mini --judge-arg temperature=0``.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import shutil
import string
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from vdpm_harness import (
    Extraction,
    FramePolicy,
    GenerationSettings,
    JudgePrompt,
    MCQBenchmark,
    Message,
    Request,
    Sample,
    Score,
    Strict,
    TextPart,
    VideoPart,
    file_digest,
    hookimpl,
    option_text,
)

#: VLMEvalKit's ``FRAMES_TMPL_NOSUB``, used by both evaluations (benchmarks.md A.3).
PRE_PROMPT = (
    "\nThese are the frames of a video. Select the best answer to the following multiple-choice question based on "
    "the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
#: The 13 categories in VLMEvalKit's reporting order (``DSRBench._task_category``).
CATEGORIES = [
    "abs_dis", "abs_dir", "abs_ori", "abs_spd", "abs_spd_comp", "abs_dir_pred",
    "rel_dis", "rel_dir", "rel_ori", "rel_spd", "rel_spd_comp", "rel_dir_pred", "non_temp",
]  # fmt: skip
#: VLMEvalKit's named variants (``video_dataset_config.py``); ``32frame`` is what the authors ran. Frame counts are
#: spread with rounded ``linspace`` (qwen-vl-utils, which samples for the Qwen models of both evaluations).
FRAME_PRESETS = {
    "32frame": FramePolicy(nframes=32),
    "64frame": FramePolicy(nframes=64),
    "30frame": FramePolicy(nframes=30),
    "1fps": FramePolicy(fps=1.0),
}
TSV_NAME = "DSRBench.tsv"
TSV_MD5 = "9273aeb004e8ca196df5a5e826bdf97d"
PARQUET_NAME = "benchmark.parquet"
EASI_REPO = "lmms-lab-si/EASI-Leaderboard-Data"
VIDEO_ZIP = "raw_data/dsr-bench.zip"
VIDEO_FOLDER = "raw_data/dsr-bench"
EXTRACTED_SENTINEL = ".dsrbench_extracted"
TENCENT_REPO = "TencentARC/DSR_Suite-Data"
METHOD = "rules:dsr@1"


# --- loading ---------------------------------------------------------------------------------------------------------


#: VLMEvalKit's LLM scorer prompt for DSR-Bench (``GENERIC_EXTRACT_JUDGE_PROMPT`` in
#: ``vlmeval/dataset/utils/spatial_bench/llm_extract.py``, ms-vlmeval 0.0.20; benchmarks.md A.4), character for
#: character: ``tests/test_dsr.py`` compares it, and the prompts built from it, with the wheel's.
JUDGE_PROMPT = (
    "You are an expert grading assistant.\n"
    "Your job has TWO tasks:\n"
    "1) From the candidate's full response, EXTRACT the final answer in a concise, normalized form.\n"
    "2) Compare this extracted answer with the STANDARD ANSWER and grade it as:\n"
    "   - A: CORRECT\n"
    "   - B: INCORRECT\n"
    "   - C: INVALID\n"
    "\n"
    "Here are the detailed evaluation criteria:\n"
    "1. ALWAYS refer to the given STANDARD ANSWER. You do NOT need to re-solve the question; the "
    "standard answer has already been provided and is always correct. Your only job is to judge whether "
    "the candidate's final answer is consistent with the standard answer according to the form of the "
    "question. THE STANDARD ANSWER IS ALWAYS CORRECT AND THE QUESTION IS PERFECTLY VALID. NEVER QUESTION THEM.\n"
    "2. ONLY compare the FINAL ANSWER — COMPLETELY IGNORE any potential errors or issues in the "
    "REASONING PROCESS. Even if the reasoning is wrong, as long as the final answer matches the standard "
    "answer, grade it as CORRECT.\n"
    "3. Answers may be expressed in different ways (e.g., mathematical expressions, textual "
    "descriptions). As long as the meaning is the same as the standard answer, treat them as equivalent. "
    "If the standard answer does not specify a unit but the candidate's answer includes a correct unit "
    "for the given value, consider it CORRECT.\n"
    "4. Some answers may consist of multiple items, such as multiple-choice questions with multiple "
    "correct options, multi-select questions, or multi-blank fill-in-the-blank questions. Regardless of "
    "the question type, the final answer is considered CORRECT only if it matches the standard answer "
    "exactly at the level of all required items. For multi-select or multi-blank questions, ALL parts "
    "must be answered correctly and match the standard answer exactly to be deemed CORRECT.\n"
    "5. If the candidate's answer is wrapped in LaTeX-style markers like \\boxed{{...}}, IGNORE the "
    "\\boxed and only use the inner content as the candidate's final answer when comparing with the "
    "standard answer.\n"
    "6. If the candidate's answer is INVALID — for example, incomplete (cut off mid-response), "
    "containing a large amount of abnormal repetitive content, clearly irrelevant to the question, or "
    "explicitly refusing to answer due to ethical concerns, lack of information, or other external "
    "factors — then you MUST grade it as C: INVALID.\n"
    "7. This instruction applies to all problem types, including single-choice MCQ, multi-select MCQ, "
    "numeric problems, short-answer questions, and general VQA-style questions. In all cases, only the "
    "FINAL ANSWER and its consistency with the standard answer matter.\n"
    "8. The question or options may contain image placeholders such as '<image>', '<image id=1>', or "
    "similar tokens. You CANNOT see these images. Treat these placeholders as unknown content and DO NOT "
    "hallucinate or infer any specific visual details from them. If the standard answer or candidate's "
    "answer refers to an option associated with an image (e.g., 'choose A'), judge correctness only "
    "based on the stated answer, not by imagining the image.\n"
    "\n"
    "IMPORTANT – OUTPUT FORMAT:\n"
    "• You MUST return EXACTLY ONE line in the following format:\n"
    "  <GRADE>\\t<EXTRACTED_ANSWER>\n"
    "  where <GRADE> is one of A, B, or C.\n"
    "• <EXTRACTED_ANSWER> should be the final answer you extracted from the candidate's response, in a "
    "normalized, concise form (e.g., a number, a letter option, or a short phrase).\n"
    "• If you cannot extract any meaningful answer, or the response is INVALID, output:\n"
    "  C\\tN/A\n"
    "• Do NOT add any extra text, explanation, or additional lines.\n"
    "\n"
    "Now, judge the following question.\n"
    "<Original Question Begin>\n"
    "{question}\n"
    "{options_block}<Original Question End>\n"
    "<Standard Answer Begin>\n"
    "{gold_answer}\n"
    "<Standard Answer End>\n"
    "<Candidate's Answer Begin>\n"
    "{llm_response}\n"
    "<Candidate's Answer End>\n"
    "Your output:"
)


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


def question_text(question: str, options: list[str]) -> str:
    """``"Question: {question}\\n{option}\\n...\\nAnswer: "``: the question part of both prompts (A.3)."""
    return f"Question: {question}\n" + "\n".join(options) + "\nAnswer: "


def parse_options(value) -> list[str]:
    """The options cell: a list (parquet) or its serialisation, JSON first, then a Python literal (as VLMEvalKit)."""
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


def _join_key(video: str, question: str) -> tuple[str, str]:
    return Path(video).stem, question.strip()


def safe_unzip(archive: Path, dest: Path) -> int:
    """Extract ``archive`` into ``dest``, refusing (before writing anything) any member that would land outside it.

    Returns the number of files written.
    """
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = [info for info in zf.infolist() if not info.is_dir()]
        for info in members:
            target = (root / info.filename).resolve()
            if not target.is_relative_to(root):
                raise RuntimeError(f"{archive}: unsafe path in the archive, refusing to extract it: {info.filename!r}")
        for info in members:
            target = (root / info.filename).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return len(members)


# --- the upstream VLMEvalKit rule decision -------------------------------------------------------------------------
# ``can_match_option(prediction)`` as ``DSRBench`` calls it (no ``choices``: letters A-F), reimplemented from the
# cascade in benchmarks.md A.4; tests/test_dsr.py checks it against the function in the ms-vlmeval wheel.

_VK_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")
_VK_ANSWER_OPEN = re.compile(r"<\s*answer\b[^>]*>\s*([A-Ja-j])", re.I)
_VK_ANSWER_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.I)
_VK_CLOSERS = "\\)\\]\\}）】"
_VK_BEFORE_TAG = {
    tag: re.compile(rf"(?<![A-Za-z])([A-F])\s*[{_VK_CLOSERS}]?\s*<\s*/\s*{tag}\s*>", re.I)
    for tag in ("answer", "think")
}
_VK_THINK_END = re.compile(r"</\s*think\s*>", re.I)
_VK_THINK_START = re.compile(r"<\s*think\s*>", re.I)
_VK_OPTION_LINE = re.compile(r"^[*_>\-\s]*(?:option|选项)\s+[A-J]\s*[:：]", re.I)
_VK_LONE_LETTER = re.compile(r"[*_`>（）\[\]【】()]*\s*([A-Fa-f])\s*[*_`（）\[\]【】()]*")
_VK_LABELLED_LINE = re.compile(r"\s*([A-F])\s*[.．:：)\]】、-]\s+", re.I)
_VK_TIGHT = ".,:;!?)\\]】》」』，。；、：）"
_VK_INLINE_TOKEN = re.compile(rf"(?<![A-Za-z])([A-F])(?=[*_`）\]}})]*(?:$|[\s{_VK_TIGHT}]))")
_VK_PHRASE = re.compile(
    r"(?:final\s*answer|the\s*answer\s*is|answer\s*is|answer|correct\s*answer|答案|最终答案|结论|所以|因此|我选择|我选|选择|选)"
    r"\s*[:：>＝=]?\s*[(\[{（【]?\s*([A-F])\s*[)\]}）】]?(?:\b|[.)、。])",
    re.I,
)
_VK_STANDALONE = re.compile(r"(?<![A-Za-z])([A-F])(?![A-Za-z])")


def _vk_from_lines(lines: list[str]) -> str | None:
    """Bottom-up over non-empty lines: a lone letter, a line labelled ``X.``, or one distinct inline capital."""
    for line in reversed([line.strip() for line in lines if line.strip()]):
        if _VK_OPTION_LINE.search(line):
            continue
        for pattern, method in ((_VK_LONE_LETTER, "fullmatch"), (_VK_LABELLED_LINE, "match")):
            found = getattr(pattern, method)(line)
            if found:
                return found.group(1).upper()
        tokens = set(_VK_INLINE_TOKEN.findall(line))
        if len(tokens) == 1:
            return tokens.pop()
    return None


def vlmevalkit_choice(response: str | None) -> str | None:
    """The letter upstream VLMEvalKit's DSR-Bench rule scorer reads from ``response`` (A-F), or None (``False``).

    Steps (A.4): ``<answer>`` opened by a letter A-J; a letter right before ``</answer>`` / ``</think>`` in the last
    800 characters; the last 6 lines after ``</think>`` (or the last ``<think>``), then of the last 800 characters;
    the first conclusion phrase ("answer is X", ...) anywhere; one distinct standalone capital in the whole text.
    """
    if not isinstance(response, str):
        return None
    text = _VK_ZERO_WIDTH.sub("", response.strip())
    for opening in _VK_ANSWER_OPEN.finditer(text):
        if _VK_ANSWER_CLOSE.search(text, opening.end()):
            return opening.group(1).upper()
    tail = text[-800:]
    for tag in ("answer", "think"):
        found = _VK_BEFORE_TAG[tag].search(tail)
        if found:
            return found.group(1).upper()
    ends, starts = list(_VK_THINK_END.finditer(text)), list(_VK_THINK_START.finditer(text))
    segment = text[(ends or starts)[-1].end() :].strip() if ends or starts else text
    for lines in (segment.splitlines()[-6:], tail.splitlines()[-6:]):
        letter = _vk_from_lines(lines)
        if letter:
            return letter
    found = _VK_PHRASE.search(text)
    if found:
        return found.group(1).upper()
    kept = "\n".join(line for line in text.splitlines() if not _VK_OPTION_LINE.search(line))
    tokens = set(_VK_STANDALONE.findall(kept))
    return tokens.pop() if len(tokens) == 1 else None


# --- the authors' fork ------------------------------------------------------------------------------------------------

#: The prefixes ``extract_characters_regex`` removes, with the two pairs fused by missing commas in the original
#: (so "The best option is", "The correct option is", "Best answer:" and "Best option:" are never removed).
FORK_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
)  # fmt: skip


def fork_choice(response: str | None) -> str | None:
    """The letter the authors' evaluation reads: the first capital A-D anywhere once the prefixes are removed.

    (Its "more than 10 words and no A-D gives ''" rule returns what the search would return anyway; an empty result
    goes to a fallback that always yields 'Z', i.e. wrong, so None here.)
    """
    text = (response or "").strip()
    for prefix in FORK_PREFIXES:
        text = text.replace(prefix, "")
    found = re.search("[ABCD]", text)
    return found.group() if found else None


# --- the harness's DSR extractor --------------------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff"))
_ANSWER_BLOCK = re.compile(r"<\s*answer\s*>(.*?)<\s*/\s*answer\s*>", re.S | re.I)
_ARTICLE = re.compile(r"[Aa]\s+(?!(?:is|was|would|should|seems|fits|matches|because|since|as|and|or)\b)[a-z]")
_BARE_LETTER = re.compile(r"[\s*_`#>\-]*[(\[]?\s*(?P<x>[A-Za-z])\s*[)\]]?[.:]?[\s*_`]*")
_DECLARATION = (
    r"(?:\banswer\b\s*(?:is|would\s+be|should\s+be|will\s+be)?"
    r"|\b(?:option|choice)\s*(?:is|would\s+be|should\s+be)\b|\b(?:option|choice)(?=\s*[:=])"
    r"|\b(?:choose|select|pick|go\s+with)\b)"
    r"\s*[:=\-]?\s*(?:option\s*|choice\s*)?[(\[*\s]*"
)


def _answer_region(text: str) -> str | None:
    """The last ``<answer>`` block, else the text after the last ``</think>``; None for an unclosed ``<think>``."""
    blocks = _ANSWER_BLOCK.findall(text)
    if blocks:
        return blocks[-1]
    ends = list(_VK_THINK_END.finditer(text))
    if ends:
        return text[ends[-1].end() :]
    return None if _VK_THINK_START.search(text) else text


def _normalise(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def _without_echoed_options(text: str, options: list[str]) -> str:
    """Drop lines that repeat the options verbatim when two or more different ones are repeated (a restated list)."""
    known = {_normalise(o) for o in options}
    lines = text.splitlines()
    if len({_normalise(line) for line in lines} & known) < 2:
        return text
    return "\n".join(line for line in lines if _normalise(line) not in known)


def _extraction(answer: str | None, rule: str) -> Extraction:
    return Extraction(answer=answer, parsed=answer is not None, method=METHOD, detail={"rule": rule})


def extract_dsr(response: str | None, letters: list[str], options: list[str]) -> Extraction:
    """Read an option letter (one of ``letters``) out of a DSR-Bench response; unparsed stays unparsed.

    Evidence, strongest first; within a kind the last occurrence wins:

    1. only the last ``<answer>...</answer>`` block counts, else the text after the last ``</think>`` (an unclosed
       ``<think>`` is unparsed); lines restating two or more options verbatim are dropped;
    2. the whole answer is one letter, any case, optionally bracketed or followed by "." (``b``, ``(C)``, ``d.``);
    3. a declaration: "answer is (B)", "Answer: b", "correct option is C", "I choose D" (the article in
       "the answer is a person ..." is not a letter; a bare mention such as "option A is wrong" is not a declaration);
    4. a line that is just a capital letter or starts with ``B.`` / ``B)`` / ``B:`` / ``(B)``;
    5. exactly one distinct standalone capital among ``letters`` ("A person ..." is an article, not an answer);
    6. the answer equal to exactly one option's text (case and punctuation ignored).
    """
    if not response or not response.strip():
        return _extraction(None, "empty")
    text = _answer_region(response.translate(_ZERO_WIDTH))
    if text is None:
        return _extraction(None, "unclosed_think")
    text = _without_echoed_options(text, options)
    bare = _BARE_LETTER.fullmatch(text)
    if bare:
        letter = bare.group("x").upper()
        return _extraction(letter if letter in letters else None, "bare_letter")
    cls = "[" + "".join(letters) + "]"
    declared = [
        m.group("x").upper()
        for m in re.finditer(_DECLARATION + rf"(?P<x>{cls})(?![A-Za-z])", text, re.I)
        if not _ARTICLE.match(text, m.start("x"))
    ]
    if declared:
        return _extraction(declared[-1], "declared")
    lines = re.findall(rf"^[\s*#>\-]*[(\[]?({cls})[)\]]?(?:[.:)\]]|\s*$)", text, re.M)
    if lines:
        return _extraction(lines[-1], "line")
    tokens = {
        m.group(1)
        for m in re.finditer(rf"(?<![A-Za-z])({cls})(?![A-Za-z])", text)
        if not _ARTICLE.match(text, m.start(1))
    }
    if len(tokens) == 1:
        return _extraction(tokens.pop(), "unique_letter")
    target = _normalise(text)
    hits = [letter for letter, option in zip(letters, options) if _normalise(option_text(option)) == target]
    if len(hits) == 1 and target:
        return _extraction(hits[0], "option_text")
    return _extraction(None, "ambiguous_letters" if tokens else "no_letter")


# --- the benchmark ---------------------------------------------------------------------------------------------------

CROSS_CHECKS = {"vlmevalkit": "accuracy_vlmevalkit", "fork": "accuracy_fork"}


class DSRBench(MCQBenchmark):
    """DSR-Bench from either published table; see the module docstring for layouts, prompts, frames and scoring."""

    version = "1"
    categories = CATEGORIES

    class Options(Strict):
        #: The data folder (``vdpm-harness data pull dsr --to DIR`` fills it); required to run.
        data_dir: str | None = None
        #: Which table to read: the first present (TSV, then parquet), or one explicitly.
        layout: Literal["auto", "vlmevalkit", "parquet"] = "auto"
        #: Folder of the videos; default: ``raw_data/dsr-bench`` under ``data_dir`` or ``data_dir`` itself,
        #: whichever holds the table's videos.
        video_root: str | None = None
        #: Message layout: upstream VLMEvalKit (instruction first) or the authors' fork (video first).
        prompt: Literal["vlmevalkit", "dsr_fork"] = "vlmevalkit"
        #: VLMEvalKit's named frame settings (default ``32frame``); exclusive with ``frames``.
        frame_preset: Literal["32frame", "64frame", "30frame", "1fps"] | None = None
        #: Any frame policy, e.g. ``{"nframes": 0}`` for a blind run; exclusive with ``frame_preset``.
        frames: FramePolicy | None = None
        #: Generation cap; 2048 is ``Qwen2VLChat``'s default in both evaluations.
        max_new_tokens: int = Field(default=2048, ge=1)
        #: What ``data pull`` downloads: the EASI copy (TSV and videos) or the authors' parquet table.
        source: Literal["vlmevalkit", "parquet"] = "vlmevalkit"

        @model_validator(mode="after")
        def _one_frame_setting(self):
            if self.frames is not None and self.frame_preset is not None:
                raise ValueError("set either 'frames' or 'frame_preset', not both")
            return self

    @property
    def frame_policy(self) -> FramePolicy:
        return (self.options.frames or FRAME_PRESETS[self.options.frame_preset or "32frame"]).model_copy()

    # --- data ---

    @property
    def data_dir(self) -> Path:
        if not self.options.data_dir:
            raise DataError(
                "dsr: no data folder; pass --bench-arg data_dir=DIR (fill it with "
                "`vdpm-harness data pull dsr --to DIR`)"
            )
        return Path(self.options.data_dir)

    def tables(self) -> tuple[str, Path]:
        """``(layout, table file)`` chosen by the ``layout`` option."""
        tsv, parquet = self.data_dir / TSV_NAME, self.data_dir / PARQUET_NAME
        wanted = self.options.layout
        if wanted in ("auto", "vlmevalkit") and tsv.is_file():
            return "vlmevalkit", tsv
        if wanted in ("auto", "parquet") and parquet.is_file():
            return "parquet", parquet
        expected = {"auto": f"{tsv} or {parquet}", "vlmevalkit": str(tsv), "parquet": str(parquet)}[wanted]
        raise DataError(f"dsr: no DSR-Bench table: expected {expected}; download it with `vdpm-harness data pull dsr "
                        f"--to {self.data_dir}` (add --bench-arg source=parquet for the authors' table)")  # fmt: skip

    @cached_property
    def loaded(self) -> tuple[list[Row], list[str]]:
        """All readable rows and the problems of the table (malformed rows, duplicate ids), read once."""
        layout, table = self.tables()
        rows, problems = read_tsv(table) if layout == "vlmevalkit" else read_parquet(table)
        tsv = self.data_dir / TSV_NAME
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

    @cached_property
    def video_root(self) -> Path:
        """The explicit ``video_root``, else the first candidate folder that holds any of the table's videos."""
        if self.options.video_root:
            return Path(self.options.video_root)
        candidates = [self.data_dir / VIDEO_FOLDER, self.data_dir]
        videos = {row.video for row in self.loaded[0]}
        for folder in candidates:
            if any((folder / video).is_file() for video in videos):
                return folder
        return next((folder for folder in candidates if folder.is_dir()), self.data_dir)

    def dataset_revision(self) -> str:
        """MD5 of the table read (a TSV that differs from the published one says so)."""
        _, table = self.tables()
        digest = file_digest(table, "md5")
        note = " (differs from the published DSRBench.tsv)" if table.name == TSV_NAME and digest != TSV_MD5 else ""
        return f"{table.name} md5:{digest}{note}"

    def samples(self):
        rows, problems = self.loaded
        if problems:
            shown = "\n  ".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            plural = "s" if len(problems) > 1 else ""
            raise DataError(f"dsr: the DSR-Bench table has {len(problems)} malformed row{plural}:\n  {shown}{more}")
        for row in rows:
            yield Sample(
                sample_id=row.sample_id, video_id=row.video, category=row.category, question=row.question,
                options=row.options, answer=row.answer, media=[str(self.video_root / row.video)],
                meta={"video": row.video},
            )  # fmt: skip

    def verify(self) -> list[str]:
        """Missing or unreadable tables, a TSV checksum that differs from the published one, malformed rows and
        every missing video, each naming its file."""
        try:
            layout, table = self.tables()
            rows, problems = self.loaded
        except DataError as exc:
            return [str(exc)]
        problems = list(problems)
        if layout == "vlmevalkit" and table.name == TSV_NAME:
            digest = file_digest(table, "md5")
            if digest != TSV_MD5:
                problems.insert(0, f"{table}: MD5 {digest} differs from the published {TSV_MD5} (another revision of "
                                   f"the table: results are not comparable with published numbers)")  # fmt: skip
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.video] = counts.get(row.video, 0) + 1
        for video, n in counts.items():
            path = self.video_root / video
            if not path.is_file():
                problems.append(f"{path}: video missing ({n} question{'s' if n > 1 else ''})")
        return problems

    def pull(self, to: Path) -> None:
        """Download the EASI copy (``DSRBench.tsv`` and the unpacked ``raw_data/dsr-bench.zip``) or, with
        ``source=parquet``, the authors' ``benchmark.parquet`` into ``to``."""
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:
            raise RuntimeError("downloading DSR-Bench needs huggingface_hub: pip install 'vdpm-harness[hub]'") from exc
        to = Path(to)
        to.mkdir(parents=True, exist_ok=True)
        easi = self.options.source == "vlmevalkit"
        files = [(EASI_REPO, TSV_NAME), (EASI_REPO, VIDEO_ZIP)] if easi else [(TENCENT_REPO, PARQUET_NAME)]
        for repo, filename in files:
            try:
                hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset", local_dir=to)
            except Exception as exc:  # noqa: BLE001 - any hub or network failure gets the same explanation
                raise RuntimeError(
                    f"could not download {filename} from https://huggingface.co/datasets/{repo} into {to}: "
                    f"{type(exc).__name__}: {exc}\nWithout access to the hub (offline, HF_HUB_OFFLINE=1, a firewall), "
                    f"copy {filename} from a machine that has it to {to / filename}"
                    + (f" and unpack it there (videos under {to / VIDEO_FOLDER})" if filename == VIDEO_ZIP else "")
                    + f", then run `vdpm-harness data verify dsr --data-dir {to}`."
                ) from exc
        archive = to / VIDEO_ZIP
        sentinel = archive.parent / EXTRACTED_SENTINEL
        if easi and not sentinel.is_file():
            safe_unzip(archive, archive.parent)
            sentinel.write_text("done")

    # --- prompts and scoring ---

    def build_request(self, sample: Sample) -> Request:
        video = VideoPart(video=sample.media[0], frames=self.frame_policy)
        question = TextPart(text=question_text(sample.question, sample.options))
        if self.options.prompt == "vlmevalkit":
            content = [TextPart(text=PRE_PROMPT), video, question]
        else:
            content = [TextPart(text=""), video, TextPart(text=PRE_PROMPT), question]
        generation = GenerationSettings(max_new_tokens=self.options.max_new_tokens)
        return self.mcq_request(sample, [Message(content=content)], generation)

    def extract(self, sample: Sample, response: str) -> Extraction:
        """:func:`extract_dsr`, with the upstream VLMEvalKit and fork decisions recorded beside it in ``detail``."""
        extraction = extract_dsr(response, self.letters(sample), sample.options)
        for name, choose in (("vlmevalkit", vlmevalkit_choice), ("fork", fork_choice)):
            letter = choose(response)
            extraction.detail[name] = {"answer": letter, "hit": float(letter == sample.answer)}
        return extraction

    def score(self, sample: Sample, extraction: Extraction) -> tuple[float | None, dict[str, float]]:
        """Correct when the extracted letter is the gold one, or, judged, when the grade is ``A`` (CORRECT); the
        cross-check hits go into the metrics."""
        if "grade" in extraction.detail:
            return float(extraction.detail["grade"] == "A"), {}
        correct, _ = super().score(sample, extraction)
        metrics = {f"hit_{name}": extraction.detail[name]["hit"] for name in CROSS_CHECKS if name in extraction.detail}
        return correct, metrics

    def judge_prompt(self, sample: Sample, response: str) -> JudgePrompt:
        """VLMEvalKit's LLM scorer request for one response (``extract_ans_by_llm``, mode ``mcq``): one user
        message, :data:`JUDGE_PROMPT` filled with the question, an ``Options:`` block and the standard answer.

        Faithful to upstream, quirks included: the options come from the table's ``options`` strings, which already
        carry their letters, and upstream prefixes the letter again (``"A. A. Left"``), in the block and in the
        standard answer; whitespace runs in an option collapse to one space."""
        choices = {letter: re.sub(r"\s+", " ", str(text)).strip() for letter, text in zip(self.letters(sample),
                                                                                         sample.options)}  # fmt: skip
        options = "".join(f"{letter}. {text}\n" for letter, text in choices.items())
        gold = f"{sample.answer}. {choices[sample.answer]}" if sample.answer in choices else str(sample.answer)
        block = f"Options:\n{options}\n" if options else ""
        prompt = JUDGE_PROMPT.format(question=sample.question, options_block=block, gold_answer=gold,
                                     llm_response=response)  # fmt: skip
        return JudgePrompt(messages=[{"role": "user", "content": prompt}])

    def parse_judgement(self, sample: Sample, reply: str) -> Extraction:
        """The judge's reply as upstream reads it (``call_llm_extract``): the first line of the stripped reply must
        start with a grade ``A`` (CORRECT), ``B`` (INCORRECT) or ``C`` (INVALID) as a word, optionally followed by
        the extracted answer (leading whitespace, ``|``, ``,``, ``:`` and literal ``\\t`` removed; ``N/A`` when
        empty). Anything else is unparsed and graded ``C``: upstream asks again up to three times and then gives
        ``C``; here the judge's own retries cover failed calls, and a malformed reply is final.

        ``method`` is a placeholder: the judge plugin sets its own tag."""
        text = (reply or "").strip()
        match = re.match(r"^\s*([ABC])\b(.*)$", text.splitlines()[0].strip()) if text else None
        if match is None:
            return Extraction(answer=None, parsed=False, method="judge:dsr-prompt",
                              detail={"grade": "C", "extracted_answer": "N/A", "malformed": True})  # fmt: skip
        rest = re.sub(r"^(?:\\[tnr])+", "", re.sub(r"^[\s|,:]+", "", match.group(2)))
        extracted = rest.strip() or "N/A"
        letter = re.match(r"\s*[(\[]?([A-F])(?![A-Za-z])", extracted)
        return Extraction(answer=letter.group(1) if letter else None, parsed=True, method="judge:dsr-prompt",
                          detail={"grade": match.group(1), "extracted_answer": extracted})  # fmt: skip

    def aggregate(self, scores: list[Score]) -> tuple[dict, dict]:
        """Accuracy overall and per category (the default), plus ``accuracy_vlmevalkit`` and ``accuracy_fork`` when
        every scored sample carries those decisions (rule scoring); errors count as wrong in all three."""
        from vdpm_harness import UNCATEGORIZED, clustered_mean

        metrics, categories = super().aggregate(scores)
        scored = [s for s in scores if s.status == "ok"]
        for name, metric in CROSS_CHECKS.items():
            key = f"hit_{name}"
            if not scored or any(key not in s.metrics for s in scored):
                continue
            groups: dict[str, list[Score]] = {}
            for s in scores:
                groups.setdefault(s.category if s.category is not None else UNCATEGORIZED, []).append(s)
            for group, members in [(None, scores), *groups.items()]:
                value = clustered_mean([s.metrics.get(key, 0.0) for s in members], [s.video_id for s in members])
                (metrics if group is None else categories[group])[metric] = value
        return metrics, categories


@hookimpl
def register_benchmarks(register):
    register(
        "dsr",
        DSRBench,
        aliases=("dsr-bench",),
        description="DSR-Bench (1484 dynamic spatial reasoning MCQs; VLMEvalKit TSV or authors' parquet); "
        "needs data_dir.",
    )
