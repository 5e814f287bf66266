"""The ``video-tracks`` generator: one work item per video, perceived into a SceneTrack by four composed stages.

``vdpm-harness generate video-tracks --videos DIR --out OUT [--detector ID] [--tracker ID] [--reconstructor ID]
[--orientation ID] [--stage-arg STAGE:key=value]...`` writes ``OUT/<stem>.npz`` per video (a validated
:class:`~vdpm_harness.SceneTrack` whose ``video`` is the source, relative to ``OUT``; ``dsr-templates --tracks OUT``
reads it unchanged), the intermediate outputs under ``OUT/perception/``, ``video_tracks.json`` (per video: frames,
objects, seconds per stage and, on synthetic videos, each stage's error) and ``failures.json`` (per failed video:
the stage and the error). Resumable per video and shared between the processes of a ``torchrun`` launch
(:class:`vdpm_harness.ItemGenerator`); every stage is created once per process and keeps its model loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from vdpm_harness import (
    CommandLineOptions,
    GenerationError,
    ItemFiles,
    ItemGenerator,
    ItemResults,
    SceneTrack,
    SceneTrackError,
    Strict,
    VideoError,
    write_atomic,
)

from . import intermediates
from .agreement import COPY, agreement, exact_twin, read_questions, write_copies
from .assemble import build_track
from .evaluate import pair_objects, stage_errors, truth_at
from .perceive import Runner, StageFailure
from .sampling import Phrases, read_classes, sample_clip, split_classes

VERSION = "1"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
#: stage -> the plugin kind that provides it
STAGE_KINDS = {"detector": "detectors", "tracker": "trackers", "reconstructor": "reconstructors",
               "orientation": "orientation_estimators"}  # fmt: skip
MANIFEST = "video_tracks.json"
FAILURES = "failures.json"
QUESTIONS = "questions"


def parse_stage_args(values: list[str]) -> dict[str, CommandLineOptions]:
    """``["detector:box_threshold=0.3", ...]`` -> ``{"detector": {"box_threshold": "0.3"}}``: texts, which each
    stage plugin reads into its options' types as it reads ``--model-arg`` (``true``, numbers, JSON objects)."""
    parsed: dict[str, CommandLineOptions] = defaultdict(CommandLineOptions)
    for value in values:
        stage, sep, rest = value.partition(":")
        key, eq, text = rest.partition("=")
        if not sep or not eq or not key.strip():
            raise ValueError(f"stage argument {value!r} is not STAGE:key=value")
        if stage.strip() not in STAGE_KINDS:
            raise ValueError(f"stage argument {value!r}: unknown stage {stage!r}; stages: {', '.join(STAGE_KINDS)}")
        parsed[stage.strip()].set_text(key.strip(), text.strip())
    return dict(parsed)


class VideoTracks(ItemGenerator):
    """Perceives videos into SceneTracks (the module docstring); the stages are plugins created by id."""

    version = VERSION

    class Options(Strict):
        videos: str | None = Field(default=None, description="Folder of videos (or one video file).")
        detector: str = Field(default="grounding-dino", description="Detector plugin id (grounding-dino).")
        tracker: str = Field(default="sam2", description="Tracker plugin id (sam2).")
        reconstructor: str = Field(default="pi3", description="Reconstructor plugin id (pi3).")
        orientation: str = Field(default="orient-anything", description="Orientation estimator id (orient-anything).")
        stage_arg: list[str] = Field(
            default_factory=list,
            description="Options of the stages, STAGE:key=value, e.g. 'tracker:model=facebook/sam2.1-hiera-tiny'; "
            "one text may also hold several, separated by ';'.",
        )
        classes: str | None = Field(default=None, description="Curation table agent_object.csv (videoID, agent, "
                                    "obj): the phrases of each video.")  # fmt: skip
        agents: str | None = Field(default=None, description="Agent classes for videos not in --classes, "
                                   "dot-separated ('person. dog').")  # fmt: skip
        objects: str | None = Field(default=None, description="Object classes for videos not in --classes, "
                                    "dot-separated ('ball. box').")  # fmt: skip
        num_frames: int = Field(default=32, ge=2, description="Frames sampled per video (32, as the original).")
        detect_every: int = Field(default=0, ge=0, description="Also detect on every n-th frame and track what is "
                                  "new (0: the first frame only, as the original).")  # fmt: skip
        max_objects: int = Field(default=0, ge=0, description="Track at most this many objects per video, the "
                                 "highest-scoring detections (0: every detection).")  # fmt: skip
        same_object_iou: float = Field(default=0.5, gt=0, le=1, description="Box IoU at which a later detection is "
                                       "an object already tracked.")  # fmt: skip
        min_orientation_confidence: float = Field(default=0.6, ge=0, le=1, description="Orientations below this "
                                                  "confidence are dropped (0.6, as the original).")  # fmt: skip
        intermediates: Literal["none", "light", "full"] = Field(default="light", description="Per-stage outputs "
                                                                "under perception/: none, light, or full (with the "
                                                                "point maps).")  # fmt: skip
        truth: str | None = Field(
            default=None,
            description="Folder of truth SceneTracks '<stem>.npz' to measure "
            "each stage's error against (default: the videos' folder, when they exist).",
        )
        compare: bool = Field(default=True, description="Measure each stage's error where a truth exists.")
        match_iou: float = Field(default=0.5, gt=0, le=1, description="Mean box IoU to match an object to the truth.")
        questions: int = Field(default=0, ge=0, description="Per video with a truth: questions drawn on perceived "
                               "and on exact geometry, to measure answer agreement (0: off).")  # fmt: skip
        question_scale: Literal["none", "median_depth"] = Field(default="median_depth", description="dsr-templates' "
                                                                "scale for the agreement questions.")  # fmt: skip

        @field_validator("stage_arg", mode="before")
        @classmethod
        def _split(cls, value):
            """A text may hold several arguments separated by ';' (``--stage-arg "A;B"``, one ``--stage-arg`` with
            each argument is the same)."""
            texts = [value] if isinstance(value, str) else value
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return value
            return [part.strip() for text in texts for part in text.split(";") if part.strip()]

    def __init__(self, options=None):
        super().__init__(options)
        o = self.options
        args = parse_stage_args(o.stage_arg)
        ids = {"detector": o.detector, "tracker": o.tracker, "reconstructor": o.reconstructor,
               "orientation": o.orientation}  # fmt: skip
        self.stages = {stage: self.create_plugin(STAGE_KINDS[stage], ids[stage], args.get(stage, {}))
                       for stage in STAGE_KINDS}  # fmt: skip
        self._classes: dict[str, Phrases] | None = None

    # --- inputs ---

    def video_folder(self) -> Path:
        if not self.options.videos:
            raise ValueError("video-tracks: no videos; pass --videos DIR (a folder of videos, or one video)")
        path = Path(self.options.videos)
        if not path.exists():
            raise ValueError(f"video-tracks: {path} does not exist")
        return path if path.is_dir() else path.parent

    def items(self, seed: int) -> list[str]:
        """The video files' names, sorted (one video when ``--videos`` is a file)."""
        path = Path(self.options.videos or "")
        folder = self.video_folder()
        names = (
            [path.name]
            if path.is_file()
            else sorted(
                p.name for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
            )
        )
        if not names:
            raise ValueError(f"video-tracks: no videos ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
        stems = Counter(Path(name).stem for name in names)
        repeated = sorted(stem for stem, n in stems.items() if n > 1)
        if repeated:
            raise ValueError(f"video-tracks: several videos share the stem of {repeated[:3]} (one SceneTrack each)")
        return names

    def phrases(self, stem: str) -> Phrases:
        o = self.options
        if o.classes and self._classes is None:
            self._classes = read_classes(o.classes)
        if self._classes and stem in self._classes:
            return self._classes[stem]
        return Phrases(split_classes(o.agents), split_classes(o.objects))

    def truth_path(self, stem: str) -> Path | None:
        if not self.options.compare:
            return None
        path = Path(self.options.truth or self.video_folder()) / f"{stem}.npz"
        return path if path.is_file() else None

    # --- one video ---

    def produce(self, item: str, seed: int, files: ItemFiles) -> dict[str, Any]:
        o = self.options
        video = self.video_folder() / item
        stem = video.stem
        if files.out.resolve() == self.video_folder().resolve():
            raise ValueError("video-tracks: --out must not be the videos' folder (its SceneTracks would be replaced)")
        start = time.perf_counter()
        try:
            clip = sample_clip(video, o.num_frames)
        except (VideoError, OSError, ValueError) as exc:
            raise StageFailure(item, "frames", "", str(exc)) from exc
        decoding = time.perf_counter() - start
        phrases = self.phrases(stem)
        if not phrases.all:
            raise StageFailure(item, "phrases", "", f"no classes for video '{stem}' (give --classes, or --agents "
                               "and --objects)")  # fmt: skip
        agents = set(phrases.agents)
        runner = Runner(self.stages, detect_every=o.detect_every, same_object_iou=o.same_object_iou,
                        max_objects=o.max_objects, agents=agents.__contains__)  # fmt: skip
        perception = runner.run(clip, phrases.all)
        stage_ids = {stage: plugin.id for stage, plugin in self.stages.items()}
        meta = {"generator": "video-tracks", "generator_version": VERSION, "stages": stage_ids,
                "phrases": {"agents": phrases.agents, "objects": phrases.objects}}  # fmt: skip
        try:
            track = build_track(
                perception,
                is_agent=agents.__contains__,
                min_confidence=o.min_orientation_confidence,
                video=os.path.relpath(video.resolve(), files.out.resolve()),
                meta=meta,
            )
        except SceneTrackError as exc:
            raise StageFailure(item, "reconstructor", stage_ids["reconstructor"], str(exc)) from exc
        with files.writing(f"{stem}.npz") as path:
            track.save(path)
        record: dict[str, Any] = {
            "video": item, "track": f"{stem}.npz", "frames": np.asarray(clip.indices).tolist(),
            "size": list(clip.size), "phrases": {"agents": phrases.agents, "objects": phrases.objects},
            "objects": [{"id": obj.object_id, "label": obj.label, "agent": obj.is_agent,
                         "visible_frames": int(np.sum(obj.visible))} for obj in track.objects],
            "seconds": {stage: round(s, 4) for stage, s in {"frames": decoding, **perception.seconds}.items()},
        }  # fmt: skip
        if o.intermediates != "none":
            record["intermediates"] = intermediates.save(files, stem, perception, {"video": item, **meta},
                                                         full=o.intermediates == "full")  # fmt: skip
        truth = self.truth_path(stem)
        if truth is not None:
            exact = truth_at(SceneTrack.load(truth), clip.indices)
            record["truth"] = str(truth)
            first = [{"box": d.box, "phrase": d.phrase} for d in perception.detections.get(0, [])]
            record["errors"] = stage_errors(track, exact, phrases.all, first, perception.tracks.boxes, o.match_iou)
        return record

    # --- the output files ---

    def combine(self, out: Path, seed: int, results: ItemResults) -> dict[str, Any]:
        out = Path(out)
        records = [results.records[item] for item in results.items if item in results.records]
        failures = []
        for item, error in results.failures.items():
            stage = re.search(r"stage '(\w+)'", error)
            failures.append({"video": item, "stage": stage.group(1) if stage else None, "error": error})
        stages = {stage: plugin.provenance() for stage, plugin in self.stages.items()}
        write_atomic(out / MANIFEST, json.dumps({"generator": "video-tracks", "version": VERSION, "seed": seed,
                                                 "options": self.options.model_dump(mode="json"), "stages": stages,
                                                 "videos": records}, indent=1) + "\n")  # fmt: skip
        write_atomic(out / FAILURES, json.dumps(failures, indent=1) + "\n")
        fresh = [results.records[item] for item in results.items if item in results.fresh and item in
                 results.records]  # fmt: skip
        seconds = {stage: round(float(np.mean([r["seconds"].get(stage, 0.0) for r in fresh])), 4)
                   for stage in ("frames", *STAGE_KINDS)} if fresh else {}  # fmt: skip
        stats: dict[str, Any] = {
            "out": str(out), "videos": len(results.items), "tracks": len(records), "failed": len(failures),
            "failed_by_stage": dict(Counter(f["stage"] for f in failures)),
            "objects": sum(len(r["objects"]) for r in records),
            "agents": sum(o["agent"] for r in records for o in r["objects"]),
            "seconds_per_video": {**seconds, "total": round(sum(seconds.values()), 4)} if seconds else {},
            "stages": {stage: plugin.id for stage, plugin in self.stages.items()},
        }  # fmt: skip
        compared = [r for r in records if "errors" in r]
        if compared:
            stats["errors"] = mean_errors([r["errors"] for r in compared])
            if self.options.questions:
                stats["answers"] = self.answer_agreement(out, seed, compared)
        if failures:
            stats["failures"] = failures
        return stats

    def empty(self, stats: dict[str, Any]) -> str | None:
        return None if stats["tracks"] else "no video could be perceived (see failures.json)"

    def answer_agreement(self, out: Path, seed: int, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Questions on the perceived tracks and their exact twins (:mod:`.agreement`), by ``dsr-templates``."""
        root = out / QUESTIONS
        shutil.rmtree(root, ignore_errors=True)  # this generator's own scratch folder, rebuilt from the tracks
        unmatched: dict[str, set[str]] = {}
        for record in records:
            stem = Path(record["video"]).stem
            perceived = SceneTrack.load(out / record["track"])
            exact = truth_at(SceneTrack.load(record["truth"]), perceived.meta["frame_indices"])
            boxes = np.array([o.boxes for o in perceived.objects]).reshape(-1, perceived.n_frames, 4)
            ids = [o.meta.get("truth_id") for o in perceived.objects]
            twin = exact_twin(perceived, exact, pair_objects(boxes, ids, exact, self.options.match_iou))
            video = (out / perceived.video).resolve()
            write_copies(root / "perceived", stem, perceived, video, self.options.questions)
            write_copies(root / "exact", stem, twin, video, self.options.questions)
            for index in range(self.options.questions):
                unmatched[COPY.format(stem=stem, index=index)] = set(twin.meta["unmatched"])
        questions = {}
        for side in ("perceived", "exact"):
            folder = root / side
            writer = self.create_plugin(
                "generators",
                "dsr-templates",
                {"tracks": str(folder), "qa_per_video": 1, "scale": self.options.question_scale},
            )
            try:
                writer.run(folder, seed)
            except GenerationError as exc:
                print(f"video-tracks: dsr-templates on the {side} tracks: {exc}", file=sys.stderr)
            questions[side] = read_questions(folder)
        return agreement(questions["perceived"], questions["exact"], unmatched)


def mean_errors(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of every numeric error over the videos where it is defined (counts are summed)."""
    summary: dict[str, Any] = {}
    for stage in errors[0]:
        values: dict[str, list] = defaultdict(list)
        for e in errors:
            for key, value in e[stage].items():
                if value is not None:
                    values[key].append(value)
        if stage == "objects":
            summary[stage] = {key: int(sum(v)) for key, v in values.items()}
        else:
            summary[stage] = {key: round(float(np.mean(v)), 4) if v else None for key in e[stage]
                              for v in [values.get(key, [])]}  # fmt: skip
    return summary
