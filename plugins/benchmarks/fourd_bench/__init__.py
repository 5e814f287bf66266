"""``4dbench-qa`` and ``4dbench-caption``: 4D-Bench (Zhu et al., ICCV 2025) object question answering and captioning.

The protocol follows ``WenxuanZhu1103/4D-Bench`` (commit f40f49a) as fixed in ``/work/shared/specs/benchmarks.md``
Part C; prompts are the official strings (checked by length and SHA-256 in the tests).

**Data** (``vdpm-harness data pull 4dbench-qa --to DIR``, the Hugging Face dataset ``vxuanz/4D-Bench``; then
``--bench-arg data_dir=DIR``), relative to ``data_dir`` unless given as absolute paths:

* QA: ``4D_Object_Question_Answering/data/4d_qa.json``, a JSON object ``{"<uid>_<suffix>": {..., "Answer index":
  1-4, "Category": ...}}``, and ``.../4d_object_multi_view_videos/<uid>/view_<k>_rgb_white_bg.mp4``;
* captions: ``4D_Object_Captioning/data/human_annotations.csv`` (``folder_name``, ``caption_1`` ... ``caption_5``)
  and the same video layout under ``4D_Object_Captioning/data/``.

**Input**: views 1, 8 and 16, 6 frames each, in view-major order (18 frames). The official scripts use two samplers,
chosen per model family (option ``family``, which also picks the prompt variant, the message layout and
``max_new_tokens`` of the official script; ``sampler`` overrides):

* ``"stride"`` (sampler A: OpenCV, frame ``i * (T // 6)``, none when ``T < 6``; GPT, Gemini, Qwen2-VL, VideoChat2,
  MiniGPT4-Video). The core's ``FramePolicy`` has no such rule, so these frames are decoded here (PyAV, exact frame
  indices, where OpenCV seeking may be off by some frames) into lossless PNGs under ``frames_cache`` and sent as 18
  image parts. A view that cannot be read is sent as its video part instead, so the harness records the sample as
  an error naming the file, exactly as for the other sampler.
* ``"linspace"`` (sampler B: decord ``np.linspace(0, T - 1, 6, dtype=int)``; InternVL2, LLaVA-Video,
  LLaVA-OneVision): three video parts with ``FramePolicy(nframes=6, sampler="floor")``, decoded by the harness.

``frames_per_view=0`` gives the blind (text-only) run of Part D.

**QA scoring**: the official parser (first ``\\(([A-D])\\)``, else the first isolated letter; the ``gpt-4o`` script
only the latter), codes 1/0/-1/-2 in the extraction detail, accuracy micro-averaged over all questions (invalid
answers wrong) and per category, with 95% CIs clustered by object.

**Caption scoring**: see :mod:`.fourd_bench_metrics`. The primary metric is ``cider_pycocoevalcap``, CIDEr being the
first column of the paper's caption table that can be computed offline (the GPT columns need an API judge).
Per sample, ``score()`` returns the official per-object BLEU-1..4 and ROUGE-L (untokenised); ``aggregate()``
computes everything over the whole set, errors scored as empty captions. BERTScore and SBERT are computed only with
``bertscore_model`` / ``sbert_model`` (local folders); results record those options (``null``: not computed) and each
extraction lists the metrics left out. GPT-Appearance or GPT-Action (option ``gpt_aspect``) is scored with
``--judge``: the judge sends :meth:`FourDBenchCaption.judge_prompt` and reads the reply with ``parse_judgement``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from vdpm_harness import (
    Benchmark,
    Extraction,
    FramePolicy,
    GenerationSettings,
    ImagePart,
    JudgePrompt,
    MCQBenchmark,
    Message,
    Request,
    Sample,
    Strict,
    TextPart,
    VideoPart,
    cache_root,
    clustered_mean,
    hookimpl,
    stable_hash,
)

from .metrics import (
    GPT_ASPECTS,
    caption_from_response,
    caption_metrics,
    check_local_model,
    gpt_judge_messages,
    official_sentence_scores,
    parse_gpt_score,
    require_coco_tools,
)

log = logging.getLogger(__name__)

HF_DATASET = "vxuanz/4D-Bench"
LETTERS = "ABCD"
PULL_HINT = "download it with `vdpm-harness data pull {bench} --to DIR` and pass --bench-arg data_dir=DIR"

# --- prompts (C.3, C.4) -----------------------------------------------------------------------------------------------

QA_INTRO = (
    "You are a excellent video analyst. I provide you 18 frames with every six images uniformly sampled from one "
    "video, each video captured from a different angle and a question and four choices."
)
QA_TASK = (
    "Carefully watch the provided videos and pay attention to every detail. Based on your observations, select the "
    "best option that accurately addresses the question."
)
QA_FORMAT = (
    "You must return only the option identifier (e.g., '(A)') without any additional text, do not add any additional "
    "analysis, just return the correct option identifier."
)
#: GPT-4o and GPT-4o-mini: the first two sentences ("I will provide you") as the system message.
QA_GPT_SYSTEM = QA_INTRO.replace("I provide you", "I will provide you") + " " * 25 + QA_TASK
QA_GPT_PREAMBLE = "Here are the multi-view videos: "

CAPTION_INTRO = ("I have multiple videos of the object captured from different angles.",
                 "I provide you 18 images, with every six images uniformly sampled from one video, each video captured "
                 "from a different angle.")  # fmt: skip
CAPTION_TASK = (
    "Your job is to generate one fluent caption for this multi-view video in English,",
    "provide a detailed description of the object's or character's appearance, including shape, color, texture, and "
    "any notable features.",
    "Additionally, describe the actions taking place, focusing on how the object or character moves and behaves "
    "throughout the scene.",
    "The caption should not describe the background.",
    "You must strictly return in the following format: caption: caption content.",
    "Here are some examples: \n",
)
CAPTION_EXAMPLES = (
    "Example 1: caption: A young woman with black hair wearing silver jumpsuit is lying on the floor and then gently "
    "rises.",
    "Example 2: caption: A military infantryman in green and brown camouflage gear holds a black pistol in his left "
    "hand and dances with his arms and legs moving first to the left then to the right.",
    "Example 3: caption: A 3D model of a fish pond with blue walls, and brown ground, a fish swims next to a creature "
    "that looks like an animal that is lying down.",
    "Example 4: caption: 3D model of a yellow emoji with closed eyes that sticks out its red tongue and moves from "
    "right to left.",
    "Example 5: caption: A man with brown hair, a moustache and sunglasses wears a green coat, black pants, a white "
    "shirt and a black tie walks straight then turns raising his right hand up.",
)
CAPTION_GPT_SYSTEM = "You are an AI assistant that generates descriptive captions for multi-view videos."


def qa_prompt(variant: str, vqa: str) -> str:
    """The QA prompt variant ``qa13``, ``qa21`` or ``qa25`` (C.3) around ``vqa``, the repr of the question dict."""
    pad, after = {"qa13": (13, ""), "qa21": (21, ""), "qa25": (25, " ")}[variant]
    gap = " " * pad
    return f"{QA_INTRO}{gap}{QA_TASK} Here is the question and choices: \n {vqa}.{after}\n{gap}{QA_FORMAT}"


def caption_prompt(variant: str) -> str:
    """The caption prompt variant ``cap9``, ``cap17`` or ``cap5`` (C.4)."""
    gap = " " * {"cap9": 9, "cap17": 17, "cap5": 5}[variant]
    intro = (gap if variant == "cap5" else " ").join(CAPTION_INTRO)
    return gap.join((intro, *CAPTION_TASK)) + "\n".join(f"{gap}{example} " for example in CAPTION_EXAMPLES)


# --- model families ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """What one official script does: prompt variant, frame sampler, generation length, message layout, parser.

    ``text_first``: the prompt before the frames (Gemini, GPT captioning); ``system``: a system message (GPT);
    ``parser``: ``"paren_first"`` or ``"bare"`` (the gpt-4o QA script skips the parenthesis pass).
    """

    prompt: str
    sampler: Literal["stride", "linspace"]
    max_new_tokens: int
    text_first: bool = False
    system: str | None = None
    parser: Literal["paren_first", "bare"] = "paren_first"


#: The API scripts set no output limit; the harness needs one.
API_TOKENS = 1024
FamilyName = Literal["qwen2-vl", "gemini-1.5", "internvl2", "videochat2", "llava-video", "llava-onevision",
                     "minigpt4-video", "gpt-4o", "gpt-4o-mini"]  # fmt: skip

QA_FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family("qa13", "stride", 128),
    "gemini-1.5": Family("qa13", "stride", API_TOKENS, text_first=True),
    "internvl2": Family("qa13", "linspace", 128),
    "videochat2": Family("qa13", "stride", 512),
    "llava-video": Family("qa21", "linspace", 4096),
    "llava-onevision": Family("qa25", "linspace", 4096),
    "minigpt4-video": Family("qa25", "stride", 512),
    "gpt-4o": Family("gpt", "stride", API_TOKENS, system=QA_GPT_SYSTEM, parser="bare"),
    "gpt-4o-mini": Family("gpt", "stride", API_TOKENS, system=QA_GPT_SYSTEM),
}
CAPTION_FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family("cap9", "stride", 128),
    "gemini-1.5": Family("cap17", "stride", API_TOKENS, text_first=True),
    "internvl2": Family("cap5", "linspace", 128),
    "videochat2": Family("cap17", "stride", 512),
    "llava-video": Family("cap9", "linspace", 4096),
    "llava-onevision": Family("cap17", "linspace", 4096),
    "minigpt4-video": Family("cap17", "stride", 512),
    "gpt-4o": Family("cap17", "stride", API_TOKENS, text_first=True, system=CAPTION_GPT_SYSTEM),
    "gpt-4o-mini": Family("cap17", "stride", API_TOKENS, text_first=True, system=CAPTION_GPT_SYSTEM),
}

# --- the QA answer parser (C.3) ---------------------------------------------------------------------------------------

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


# --- frames for sampler A ---------------------------------------------------------------------------------------------


def stride_indices(total: int, count: int) -> list[int]:
    """Sampler A (``myutils.get_video_uniform_frames``): frames ``i * (total // count)``, none if ``total < count``."""
    if total < count:
        return []
    step = total // count
    return [i * step for i in range(count)]


def stride_frames(video: Path, count: int, cache: Path) -> list[Path]:
    """Sampler A's frames of ``video`` as PNG files under ``cache`` (decoded once; reused while the file is unchanged).

    The frame count is the container's (what OpenCV's ``CAP_PROP_FRAME_COUNT`` reads); frames are counted in
    presentation order. Raises :class:`vdpm_harness.video.VideoError` naming the file when it cannot be read.
    """
    from vdpm_harness import VideoError, probe

    info = probe(video)
    indices = stride_indices(info.num_frames, count)
    stat = video.stat()
    folder = cache / video.parent.name / stable_hash([str(video.resolve()), stat.st_size, stat.st_mtime_ns], 12)
    paths = {index: folder / f"{video.stem}_frame_{index:05d}.png" for index in indices}
    wanted = {index for index, path in paths.items() if not path.is_file()}
    if wanted:
        import av

        folder.mkdir(parents=True, exist_ok=True)
        try:
            with av.open(str(video)) as container:
                for position, frame in enumerate(container.decode(video=0)):
                    if position in wanted:
                        partial = folder / f".{paths[position].name}.{os.getpid()}"
                        frame.to_image().save(partial, format="PNG")
                        os.replace(partial, paths[position])
                        wanted.discard(position)
                    if not wanted:
                        break
        except av.FFmpegError as exc:
            raise VideoError(video, f"cannot decode ({type(exc).__name__}: {exc})") from exc
        if wanted:
            raise VideoError(video, f"decoding ended before frame {min(wanted)} ({info.num_frames} frames announced)")
    return [paths[index] for index in indices]


# --- data download ----------------------------------------------------------------------------------------------------


def pull_dataset(to: Path) -> None:
    """Download the Hugging Face dataset ``vxuanz/4D-Bench`` into ``to`` and unpack its zip archives in place."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise RuntimeError("downloading 4D-Bench needs huggingface_hub: pip install 'vdpm-harness[hub]'") from exc
    to.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id=HF_DATASET, repo_type="dataset", local_dir=to)
    except Exception as exc:  # noqa: BLE001 - offline, refused, not found: one clear message, the cause attached
        raise RuntimeError(
            f"cannot download the Hugging Face dataset {HF_DATASET} into {to}: {type(exc).__name__}: {exc}\n"
            "The Hugging Face hub must be reachable for `data pull` (runs never need it); alternatively copy the "
            "dataset there by other means and check it with `vdpm-harness data verify`."
        ) from exc
    for archive in sorted(to.rglob("*.zip")):
        marker = archive.with_name(f".{archive.name}.extracted")
        if not marker.exists():
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(archive.parent)
            marker.touch()


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


# --- shared: options, views, requests ---------------------------------------------------------------------------------


class ViewOptions(Strict):
    """Options both benchmarks share. ``sampler=None`` takes the family's sampler."""

    data_dir: str | None = None
    family: FamilyName = "qwen2-vl"
    sampler: Literal["stride", "linspace"] | None = None
    views: list[int] = Field(default_factory=lambda: [1, 8, 16], min_length=1)
    frames_per_view: int = Field(default=6, ge=0)
    frames_cache: str | None = None


class MultiView:
    """Data paths, the family table and the 18-frame media parts of a 4D-Bench request."""

    families: ClassVar[dict[str, Family]]
    bench_id: ClassVar[str]

    @property
    def root(self) -> Path:
        return Path(self.options.data_dir) if self.options.data_dir else cache_root() / "4d-bench"

    def resolve(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.root / path

    @property
    def family(self) -> Family:
        return self.families[self.options.family]

    @property
    def sampler(self) -> str:
        return self.options.sampler or self.family.sampler

    @property
    def frames_cache(self) -> Path:
        return Path(self.options.frames_cache) if self.options.frames_cache else cache_root() / "4d-bench-frames"

    def view_videos(self, uid: str) -> list[str]:
        folder = self.resolve(self.options.video_dir) / uid
        return [str(folder / f"view_{view}_rgb_white_bg.mp4") for view in self.options.views]

    def media_parts(self, sample: Sample) -> list[ImagePart | VideoPart]:
        """The frames of every view, view-major: image parts (sampler A) or video parts (sampler B)."""
        count = self.options.frames_per_view
        if count == 0:
            return []
        from vdpm_harness import VideoError

        policy = FramePolicy(nframes=count, sampler="floor")  # sampler B: np.linspace(0, T - 1, count, dtype=int)
        parts: list[ImagePart | VideoPart] = []
        for video in sample.media:
            if self.sampler == "linspace":
                parts.append(VideoPart(video=video, frames=policy))
                continue
            try:
                parts += [ImagePart(image=str(p)) for p in stride_frames(Path(video), count, self.frames_cache)]
            except VideoError:
                # Handed to the harness as a video: it probes it and records the sample as an error naming the file
                # (sampler B asks for the last announced frame, so a truncated file fails there as well).
                parts.append(VideoPart(video=video, frames=policy))
        return parts

    def messages(self, sample: Sample, text: str) -> list[Message]:
        """``text`` with the frames, in the family's order, after its system message if it has one."""
        media = self.media_parts(sample)
        prompt = TextPart(text=text)
        user = [prompt, *media] if self.family.text_first else [*media, prompt]
        system = [Message(role="system", content=[TextPart(text=self.family.system)])] if self.family.system else []
        return [*system, Message(content=user)]

    def missing_videos(self, uids) -> list[str]:
        return [f"{video}: missing" for uid in uids for video in self.view_videos(uid) if not Path(video).is_file()]

    def pull(self, to: Path) -> None:
        pull_dataset(to)


# --- 4dbench-qa -------------------------------------------------------------------------------------------------------


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
    """751 four-choice questions on 4D objects in five categories (C.2, C.3)."""

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
        return _sha256(self.qa_path)

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


# --- 4dbench-caption --------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("folder_name", *(f"caption_{k}" for k in range(1, 6)))
RULES_METHOD = "rules:4dbench-caption@1"


class FourDBenchCaption(MultiView, Benchmark):
    """Captions of 4D objects scored against 5 human captions each (C.4, C.5)."""

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
        """``{uid: human captions}``: the input of :func:`.fourd_bench_metrics.human_baseline`."""
        return {uid: [text for _, text in captions] for uid, captions in self.annotations()[0].items()}

    def dataset_revision(self) -> str | None:
        return _sha256(self.annotations_path)

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
        """All caption metrics over the whole set (:func:`.fourd_bench_metrics.caption_metrics`; a failed sample is
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


@hookimpl
def register_benchmarks(register):
    register(
        "4dbench-qa",
        FourDBenchQA,
        aliases=("4dbench",),
        description="4D-Bench object QA: 751 questions on multi-view 4D objects (views 1/8/16 x 6 frames).",
    )
    register(
        "4dbench-caption",
        FourDBenchCaption,
        description="4D-Bench object captioning: pycocoevalcap metrics vs 5 human captions; GPT rubrics via --judge.",
    )
