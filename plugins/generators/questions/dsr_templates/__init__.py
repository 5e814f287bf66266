"""``dsr-templates``: the 12 DSR template questions (``dsr_suite.md`` §2) written over a folder of SceneTracks.

``vdpm-harness generate dsr-templates --tracks DIR --qa-per-video K --out OUT --seed S`` reads every ``*.npz``
SceneTrack of ``DIR`` (its video is the track's ``video`` field, relative to ``DIR``, or ``<track name>.mp4``), makes
``K`` attempts per video (:func:`~.dsr_qa.generate_video`) and writes into ``OUT``:

* ``DSRBench.tsv``: the DSR-Bench layout of VLMEvalKit (``index, video, question, options, answer, task_type``, the
  options a JSON list of ``"A. ..."`` strings), so ``--bench dsr --bench-arg data_dir=OUT`` evaluates it;
* ``train_qas.json``: the training conversations of ``qa_json_gen.py`` (§4.7);
* ``qa_pairs.json``: the original's records, ``{videoID: [{"Type", "Question", A-D, "Correct"}, ...]}`` (§2.3.8);
* ``provenance.jsonl``: per question, its TSV index, scene seed, sampled frame indices and timestamps, window,
  observer, targets and the underlying numbers (distances, vectors, positions, speeds) with the thresholds;
* ``stats.json``: the yield per template (attempted, produced, failures by reason), also printed;
* the videos, copied beside the tables (and, with ``trim_future``, the clips cut after frame 29 that the prediction
  questions then refer to).

Every video draws from its own generator seeded by ``(seed, video id)``, so the same tracks and seed give identical
files whatever the order or subset of videos.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from vdpm_harness import Generator, SceneTrack, SceneTrackError, hookimpl, stable_hash
from vdpm_harness_plugins.benchmarks.dsr import TSV_NAME

from .qa import PRED_FROM, QA, QUESTION_TYPES, TemplateOptions, VideoResult, generate_video

TRAIN_NAME = "train_qas.json"
QA_PAIRS_NAME = "qa_pairs.json"
PROVENANCE_NAME = "provenance.jsonl"
STATS_NAME = "stats.json"
TSV_COLUMNS = ["index", "video", "question", "options", "answer", "task_type"]


def video_seed(seed: int, video_id: str) -> np.random.Generator:
    """The generator of one video: independent of the other videos and of their order."""
    return np.random.default_rng([seed, int(stable_hash(video_id), 16)])


def training_record(video: str, qa: QA) -> dict[str, Any]:
    """One conversation of ``train_qas.json`` (``qa_json_gen.py``): options as ``A <text>``, the answer a letter."""
    options = "\n".join(f"{letter} {qa.options[letter]}" for letter in "ABCD")
    return {"video": video, "conversations": [
        {"from": "human", "value": f"<video>\n{qa.question}\nOptions:\n{options}"},
        {"from": "gpt", "value": qa.correct},
    ]}  # fmt: skip


def tsv_row(index: int, video: str, qa: QA) -> list[str]:
    options = json.dumps([f"{letter}. {qa.options[letter]}" for letter in "ABCD"], ensure_ascii=False)
    return [str(index), video, qa.question, options, qa.correct, qa.qtype]


def resolve_video(track: SceneTrack, track_path: Path) -> Path:
    """The track's video: its ``video`` field (relative to the track's folder), else ``<track stem>.mp4``."""
    if track.video:
        video = Path(track.video)
        return video if video.is_absolute() else track_path.parent / video
    return track_path.with_suffix(".mp4")


def trim_video(source: Path, target: Path, last_frame: int) -> None:
    """Write frames ``0..last_frame`` of ``source`` to ``target`` (the clip a prediction question may show)."""
    from vdpm_harness import FramePolicy, decode, probe, write_video

    info = probe(source)
    decoded = decode(source, FramePolicy(nframes=info.num_frames))
    # "ultrafast": the x264 preset that encodes the same frames to the same bytes (see docs/dsr_templates.md)
    write_video(target, decoded.frames[: last_frame + 1], decoded.native_fps, preset="ultrafast")


class YieldStats:
    """Attempts, questions and failures by reason, per template, summed over videos."""

    def __init__(self):
        self.attempted: Counter = Counter()
        self.produced: Counter = Counter()
        self.failures: Counter = Counter()
        self.skipped: Counter = Counter()
        self.errors: list[str] = []
        self.videos = 0

    def add(self, result: VideoResult) -> None:
        self.videos += 1
        if result.skipped:
            self.skipped[result.skipped] += 1
        self.attempted.update(result.attempted)
        self.produced.update(qa.qtype for qa in result.qas)
        self.failures.update(result.failures)

    def as_dict(self) -> dict[str, Any]:
        per_template = {}
        for qtype in QUESTION_TYPES:
            reasons = {reason: n for (t, reason), n in sorted(self.failures.items()) if t == qtype}
            per_template[qtype] = {"attempted": self.attempted[qtype], "produced": self.produced[qtype],
                                   "failures": reasons}  # fmt: skip
        return {
            "videos": self.videos, "videos_skipped": dict(sorted(self.skipped.items())), "errors": self.errors,
            "questions": sum(self.produced.values()), "attempted": sum(self.attempted.values()),
            "per_template": per_template,
        }  # fmt: skip

    def table(self) -> str:
        """The yield as a plain-text table: one line per template, then skipped videos and errors."""
        lines = [f"{'template':<13} {'attempted':>9} {'produced':>8}  failures by reason"]
        for qtype, row in self.as_dict()["per_template"].items():
            reasons = ", ".join(f"{reason}: {n}" for reason, n in row["failures"].items()) or "-"
            lines.append(f"{qtype:<13} {row['attempted']:>9} {row['produced']:>8}  {reasons}")
        lines.append(f"{'total':<13} {sum(self.attempted.values()):>9} {sum(self.produced.values()):>8}")
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"videos skipped ({reason}): {n}")
        lines += [f"error: {error}" for error in self.errors]
        return "\n".join(lines)


class DSRTemplates(Generator):
    """See the module docstring; the options of :class:`~.dsr_qa.TemplateOptions` change the questions."""

    class Options(TemplateOptions):
        tracks: str | None = Field(default=None, description="Folder of SceneTrack files (*.npz) and their videos.")
        qa_per_video: int = Field(default=10, ge=1, description="Attempts per video (the original's --qa_num).")
        trim_future: bool = Field(default=False, description="Prediction questions show a clip cut after frame 29 "
                                  "(the original shows the whole video, frames 30-31 included).")  # fmt: skip

    def template_options(self) -> TemplateOptions:
        return TemplateOptions(**self.options.model_dump(include=set(TemplateOptions.model_fields)))

    def track_files(self) -> list[Path]:
        if not self.options.tracks:
            raise ValueError("dsr-templates: no track folder; pass --tracks DIR (a folder of SceneTrack *.npz files)")
        folder = Path(self.options.tracks)
        if not folder.is_dir():
            raise ValueError(f"dsr-templates: track folder not found: {folder}")
        files = sorted(folder.glob("*.npz"))
        if not files:
            raise ValueError(f"dsr-templates: {folder} holds no SceneTrack files (*.npz)")
        return files

    def run(self, out: Path, seed: int = 0) -> dict[str, Any]:
        out = Path(out)
        files = self.track_files()
        out.mkdir(parents=True, exist_ok=True)
        options = self.template_options()
        stats = YieldStats()
        rows, training, originals, provenance, seen = [], [], {}, [], set()
        for path in files:
            try:
                track = SceneTrack.load(path)
            except SceneTrackError as exc:
                stats.errors.append(str(exc))
                continue
            video = resolve_video(track, path)
            video_id = video.stem
            if not video.is_file():
                stats.errors.append(f"{video}: video missing (track {path}); its questions are skipped")
                continue
            if video_id in seen:
                stats.errors.append(f"{path}: video id '{video_id}' repeats an earlier track; skipped")
                continue
            seen.add(video_id)
            result = generate_video(track, video_seed(seed, video_id), self.options.qa_per_video, options)
            stats.add(result)
            if result.skipped:  # as the original, which never wrote a record for a video it could not process
                continue
            originals[video_id] = [qa.record() for qa in result.qas]  # an empty list when every attempt failed
            if not result.qas:
                continue
            shown = self.place_videos(video, out, result)
            for qa in result.qas:
                name = shown[qa.qtype.endswith("_pred")]
                index = len(rows)
                rows.append(tsv_row(index, name, qa))
                training.append(training_record(name, qa))
                provenance.append(self.provenance(index, name, video_id, path, track, qa))
        self.write(out, rows, training, originals, provenance, stats)
        print(f"dsr-templates: {stats.videos} videos, {len(rows)} questions\n{stats.table()}", file=sys.stderr)
        return {**stats.as_dict(), "out": str(out)}

    def place_videos(self, video: Path, out: Path, result: VideoResult) -> dict[bool, str]:
        """Copy the video into ``out`` (unless it is there) and, with ``trim_future``, cut the prediction clip.

        Returns the file name shown with non-prediction (False) and prediction (True) questions.
        """
        target = out / video.name
        if not target.exists() or not target.samefile(video):
            shutil.copyfile(video, target)
        names = {False: video.name, True: video.name}
        if self.options.trim_future and any(qa.qtype.endswith("_pred") for qa in result.qas):
            last = result.qas[0].provenance["sampled_frames"][PRED_FROM]
            trimmed = f"{video.stem}_until_f{last}{video.suffix}"
            trim_video(video, out / trimmed, last)
            names[True] = trimmed
        return names

    @staticmethod
    def provenance(index: int, video: str, video_id: str, path: Path, track: SceneTrack, qa: QA) -> dict[str, Any]:
        record = {"index": index, "video": video, "video_id": video_id, "track": path.name,
                  "scene_seed": track.meta.get("seed"), "source": track.source}  # fmt: skip
        record.update(qa.provenance)
        if qa.qtype.endswith("_pred"):
            record["video_end_s"] = float(track.timestamps[qa.provenance["sampled_frames"][PRED_FROM]])
        return record

    @staticmethod
    def write(out: Path, rows, training, originals, provenance, stats: YieldStats) -> None:
        with open(out / TSV_NAME, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(TSV_COLUMNS)
            writer.writerows(rows)
        (out / TRAIN_NAME).write_text(json.dumps(training, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / QA_PAIRS_NAME).write_text(json.dumps(originals, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
        with open(out / PROVENANCE_NAME, "w", encoding="utf-8") as handle:
            for record in provenance:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        (out / STATS_NAME).write_text(json.dumps(stats.as_dict(), indent=2) + "\n", encoding="utf-8")


@hookimpl
def register_generators(register):
    register(
        "dsr-templates",
        DSRTemplates,
        description="The 12 DSR template questions over SceneTracks: DSR-Bench TSV, training JSON, provenance.",
    )
