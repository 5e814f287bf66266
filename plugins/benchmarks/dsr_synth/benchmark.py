"""The ``dsr-synth`` benchmark: DSR-Bench's 12 template categories on procedurally rendered scenes.

The data is built on first use from a fixed seed, with no download: ``synth-scenes`` renders ``n_videos`` scenes
(H.264 videos and their exact SceneTracks), then ``dsr-templates`` writes ``qa_per_video`` attempts of the 12 DSR
templates per scene into ``DSRBench.tsv`` (VLMEvalKit's layout). Building the default set (24 videos of 6 s at
320x240) takes about 20 seconds on one core. It lands in a cache folder named after every option that shapes the
data (``$VDPM_CACHE`` or ``~/.cache/vdpm-harness``) with ``dsr_synth.json`` holding the sha256 of every file,
verified on every load and summarised in the run's dataset revision.

The questions are fair by default: their distractors are other true answers of the same template in the same time
window of the video, the correct one drawn uniformly among the four, and speeds are measured per second (the
``dsr-templates`` defaults, ``docs/dsr_templates.md``), so no blind baseline beats chance (``vdpm-harness audit
dsr-synth``); ``templates={"distractors": "original", "speed_unit": "step"}`` builds the original's design.

Evaluation is exactly DSR-Bench's: the ``dsr`` benchmark reads the generated table, so the prompt (``vlmevalkit``
or ``dsr_fork``), the 32 frames, the extractor with its VLMEvalKit and fork cross-checks, and the per-category
accuracy (here over the 12 template types; there is no free-form ``non_temp``) are the same code.

The benchmark is made of three other plugins, created through the host by id (``create_plugin``), never by
importing their classes: the ``dsr`` benchmark, the ``synth-scenes`` and the ``dsr-templates`` generators. The run
record lists them with their versions and options.
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vdpm_harness import (
    Extraction,
    FramePolicy,
    MCQBenchmark,
    Request,
    Sample,
    Score,
    Strict,
    building,
    cache_root,
    checksum_problems,
    file_digest,
    stable_hash,
)

CHECKSUMS = "dsr_synth.json"


class DSRSynth(MCQBenchmark):
    """The synthetic DSR set; see the module docstring. ``inner`` is the ``dsr`` benchmark over the built folder."""

    #: 2: the fair questions of dsr-templates 2 (1: the original's distractor design)
    version = "2"

    class Options(Strict):
        n_videos: int = Field(default=24, ge=1, description="Rendered scenes.")
        qa_per_video: int = Field(default=10, ge=1, description="Template attempts per scene (the original's qa_num).")
        seed: int = Field(default=20251224, description="Seed of the scenes and of the questions.")
        width: int = Field(default=320, ge=16)
        height: int = Field(default=240, ge=16)
        fps: float = Field(default=15.0, gt=0)
        duration: float = Field(default=6.0, gt=0, description="Seconds per video (at least 32 frames are needed).")
        #: x264 preset of the videos: "ultrafast" is the one that encodes the same frames to the same bytes with
        #: PyAV 18 (the slower presets vary from one encoding to the next), so every build has the same checksums.
        video_preset: str = "ultrafast"
        #: Options of the ``dsr-templates`` question writer (its template options; the defaults are its fair design,
        #: ``{"distractors": "original", "speed_unit": "step"}`` the original's). Validated by that generator when
        #: this benchmark is created.
        templates: dict[str, Any] = Field(default_factory=dict)
        trim_future: bool = Field(default=False, description="Prediction questions show the clip up to frame 29.")
        #: Where the data is built (default: a cache folder named after the options above).
        data_dir: str | None = None
        #: As for ``dsr``: the prompt layout, frames and generation cap of the evaluation.
        prompt: Literal["vlmevalkit", "dsr_fork"] = "vlmevalkit"
        frame_preset: Literal["32frame", "64frame", "30frame", "1fps"] | None = None
        frames: FramePolicy | None = None
        max_new_tokens: int = Field(default=2048, ge=1)

    def __init__(self, options=None):
        super().__init__(options)
        o = self.options
        self.scenes = self.create_plugin("generators", "synth-scenes", {
            "n_videos": o.n_videos, "width": o.width, "height": o.height, "fps": o.fps, "duration": o.duration,
            "preset": o.video_preset,
        })  # fmt: skip
        self.writer = self.create_plugin("generators", "dsr-templates", self.writer_options())
        self.inner = self.create_plugin("benchmarks", "dsr", {
            "data_dir": str(self.folder), "layout": "vlmevalkit", "prompt": o.prompt, "frame_preset": o.frame_preset,
            "frames": o.frames, "max_new_tokens": o.max_new_tokens,
        })  # fmt: skip
        # DSR-Bench's categories less the free-form one, which template questions never have
        self.categories = [category for category in self.inner.categories if category != "non_temp"]

    def writer_options(self, tracks: Path | None = None) -> dict[str, Any]:
        o = self.options
        return {**o.templates, "tracks": str(tracks) if tracks else None, "qa_per_video": o.qa_per_video,
                "trim_future": o.trim_future}  # fmt: skip

    # --- data ---

    def build_options(self) -> dict[str, Any]:
        """Everything that shapes the data, with the generators' versions (the cache folder is named after its
        hash, so a new renderer, question writer or new options never reuse an old build)."""
        options = self.options.model_dump(mode="json", exclude={"data_dir", "prompt", "frame_preset", "frames",
                                                                 "max_new_tokens"})  # fmt: skip
        options["templates"] = self.writer.template_options().model_dump(mode="json")
        return {**options, "synth_scenes_version": self.scenes.version, "dsr_templates_version": self.writer.version}

    @property
    def folder(self) -> Path:
        if self.options.data_dir:
            return Path(self.options.data_dir)
        return cache_root() / f"dsr-synth-v{self.version}-{stable_hash(self.build_options(), 10)}"

    def build(self, folder: Path) -> None:
        """Render the scenes and write the questions into ``folder`` (atomically: a staging folder is renamed)."""
        o = self.options
        with building(folder) as staging:
            print(f"dsr-synth: building {o.n_videos} scenes into {folder}", file=sys.stderr)
            scenes = self.scenes.run(staging, seed=o.seed)
            # the same writer, reading the tracks just rendered
            writer = self.plugin_host().create("generators", "dsr-templates", self.writer_options(staging))
            questions = writer.run(staging, seed=o.seed)
            files = sorted(p.name for p in staging.iterdir() if p.is_file())
            record = {"benchmark": "dsr-synth", "version": self.version, "options": self.build_options(),
                      "scenes": {k: v for k, v in scenes.items() if k != "out" and "second" not in k},
                      "questions": {k: v for k, v in questions.items() if k != "out"},
                      "files": {name: file_digest(staging / name) for name in files}}  # fmt: skip
            (staging / CHECKSUMS).write_text(json.dumps(record, indent=1) + "\n")

    def verify(self) -> list[str]:
        """Missing checksum record, missing files or checksum mismatches, each naming the file."""
        record_path = self.folder / CHECKSUMS
        if not record_path.is_file():
            return [f"{record_path}: missing (the data is built on first use)"]
        try:
            files = json.loads(record_path.read_text())["files"]
        except (json.JSONDecodeError, KeyError) as exc:
            return [f"{record_path}: unreadable checksum record ({exc}); delete {self.folder} to rebuild"]
        return checksum_problems(self.folder, files, f"delete {self.folder} to rebuild the dsr-synth data")

    @cached_property
    def record(self) -> dict[str, Any]:
        """Build the data on first use; verify every checksum once per benchmark object."""
        if not (self.folder / CHECKSUMS).is_file():
            self.build(self.folder)
        problems = self.verify()
        if problems:
            raise RuntimeError("\n".join(problems))
        return json.loads((self.folder / CHECKSUMS).read_text())

    def dataset_revision(self) -> str:
        return "sha256:" + stable_hash(self.record["files"])

    def pull(self, to: Path) -> None:
        """``vdpm-harness data pull dsr-synth --to DIR`` builds the set into DIR (nothing is downloaded)."""
        self.build(Path(to))

    # --- evaluation: the dsr benchmark's ---

    def samples(self):
        self.record  # noqa: B018 - builds and verifies the data on first use
        yield from self.inner.samples()

    def build_request(self, sample: Sample) -> Request:
        return self.inner.build_request(sample)

    def extract(self, sample: Sample, response: str) -> Extraction:
        return self.inner.extract(sample, response)

    def score(self, sample: Sample, extraction: Extraction) -> tuple[float | None, dict[str, float]]:
        return self.inner.score(sample, extraction)

    def aggregate(self, scores: list[Score]) -> tuple[dict, dict]:
        return self.inner.aggregate(scores)
