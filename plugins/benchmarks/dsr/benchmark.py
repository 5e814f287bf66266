"""The ``dsr`` benchmark: DSR-Bench from either published table, with the two published evaluations side by side.

DSR-Bench is the dynamic spatial reasoning benchmark of the DSR Suite (TencentARC/DSR_Suite, arXiv 2512.20557):
1484 four-option questions on Koala-36M clips in 13 categories.

* Data (``data_dir``): VLMEvalKit's ``DSRBench.tsv`` or the authors' ``benchmark.parquet`` (``layout="auto"``
  picks the first present, the TSV first); :mod:`.table` reads both. ``verify()`` checks the TSV against the MD5
  VLMEvalKit checks; a mismatch is reported there (and recorded in the run's dataset revision) but does not stop a
  run, so edited or re-exported tables can still be evaluated. ``data pull dsr`` downloads either.
* Prompts (``prompt``): ``"vlmevalkit"`` or ``"dsr_fork"``, byte-exact (:mod:`.prompts`). Frames: 32 uniformly
  spaced frames by default (the authors' setting); ``frame_preset`` selects VLMEvalKit's named variants
  (``32frame``, ``64frame``, ``30frame``, ``1fps``) and ``frames`` any :class:`FramePolicy` (``frames={"nframes":
  0}`` is a blind, text-only run).
* Scoring: :func:`.extraction.extract_dsr`, the core's rule ladder under DSR-Bench's settings, restricted to the
  sample's letters, the last declared answer winning. Every extraction also records, in ``detail``, the decisions
  of upstream VLMEvalKit's rule scorer and of the authors' fork (:mod:`.parity`), and the results carry their
  accuracies as ``accuracy_vlmevalkit`` and ``accuracy_fork`` next to the headline ``accuracy``.
* Judged scoring (``--judge openai-judge``, or ``rescore RUN --judge openai-judge``): VLMEvalKit's LLM scorer
  (:mod:`.judge`); for upstream's default judge add ``--judge-arg model=gpt-4o-mini --judge-arg temperature=0``.
"""

from __future__ import annotations

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
    VideoPart,
    file_digest,
    safe_unzip,
)

from .extraction import extract_dsr
from .judge import judge_request, read_judgement
from .parity import fork_choice, vlmevalkit_choice
from .prompts import DEFAULT_PRESET, FRAME_PRESETS, prompt_content
from .table import (
    CATEGORIES,
    EASI_REPO,
    EXTRACTED_SENTINEL,
    PARQUET_NAME,
    TENCENT_REPO,
    TSV_MD5,
    TSV_NAME,
    VIDEO_FOLDER,
    VIDEO_ZIP,
    DataError,
    Row,
    find_table,
    find_video_root,
    load,
)

#: the upstream decisions recorded beside the harness's (``detail[name]``): name -> (decision, accuracy metric)
CROSS_CHECKS = {"vlmevalkit": (vlmevalkit_choice, "accuracy_vlmevalkit"), "fork": (fork_choice, "accuracy_fork")}


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
        return (self.options.frames or FRAME_PRESETS[self.options.frame_preset or DEFAULT_PRESET]).model_copy()

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
        return find_table(self.data_dir, self.options.layout)

    @cached_property
    def loaded(self) -> tuple[list[Row], list[str]]:
        """All readable rows and the problems of the table (malformed rows, duplicate ids), read once."""
        layout, table = self.tables()
        return load(self.data_dir, layout, table)

    @cached_property
    def video_root(self) -> Path:
        """The explicit ``video_root``, else the first candidate folder that holds any of the table's videos."""
        if self.options.video_root:
            return Path(self.options.video_root)
        return find_video_root(self.data_dir, {row.video for row in self.loaded[0]})

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
        content = prompt_content(self.options.prompt, video, sample.question, sample.options)
        generation = GenerationSettings(max_new_tokens=self.options.max_new_tokens)
        return self.mcq_request(sample, [Message(content=content)], generation)

    def extract(self, sample: Sample, response: str) -> Extraction:
        """:func:`extract_dsr`, with the upstream VLMEvalKit and fork decisions recorded beside it in ``detail``."""
        extraction = extract_dsr(response, self.letters(sample), sample.options)
        for name, (choose, _) in CROSS_CHECKS.items():
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
        """VLMEvalKit's LLM scorer request for one response: one user message (:func:`.judge.judge_request`)."""
        text = judge_request(sample.question, sample.options, self.letters(sample), sample.answer, response)
        return JudgePrompt(messages=[{"role": "user", "content": text}])

    def parse_judgement(self, sample: Sample, reply: str) -> Extraction:
        """The judge's reply read as upstream reads it (:func:`.judge.read_judgement`)."""
        return read_judgement(reply)

    def aggregate(self, scores: list[Score]) -> tuple[dict, dict]:
        """Accuracy overall and per category (the default), plus ``accuracy_vlmevalkit`` and ``accuracy_fork`` when
        every scored sample carries those decisions (rule scoring); errors count as wrong in all three."""
        from vdpm_harness import UNCATEGORIZED, clustered_mean

        metrics, categories = super().aggregate(scores)
        scored = [s for s in scores if s.status == "ok"]
        for name, (_, metric) in CROSS_CHECKS.items():
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
