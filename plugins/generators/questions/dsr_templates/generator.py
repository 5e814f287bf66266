"""The ``dsr-templates`` generator: one work item per SceneTrack file; the output files and the yield statistics.

Every video draws from its own generator seeded by ``(seed, video id)``, so the same tracks and seed give identical
files whatever the order or subset of videos, the number of processes, or an interruption (the run resumes, see
:class:`vdpm_harness.ItemGenerator`).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from vdpm_harness import ItemFiles, ItemGenerator, ItemResults, SceneTrack, SceneTrackError, stable_hash, write_atomic

from .options import TemplateOptions
from .qa import VideoResult, generate_video
from .sampling import PRED_FROM
from .templates import QA, QUESTION_TYPES

#: The question table, in the layout of VLMEvalKit's DSR-Bench (``index, video, question, options, answer,
#: task_type``), so the ``dsr`` benchmark reads it with ``layout=vlmevalkit``.
TSV_NAME = "DSRBench.tsv"
TRAIN_NAME = "train_qas.json"
QA_PAIRS_NAME = "qa_pairs.json"
PROVENANCE_NAME = "provenance.jsonl"
STATS_NAME = "stats.json"
TSV_COLUMNS = ["index", "video", "question", "options", "answer", "task_type"]


def video_seed(seed: int, video_id: str) -> np.random.Generator:
    """The generator of one video: independent of the other videos and of their order."""
    return np.random.default_rng([seed, int(stable_hash(video_id), 16)])


def training_record(video: str, qa: QA) -> dict[str, Any]:
    """One conversation of ``train_qas.json`` (the DSR Suite's ``qa_json_gen.py``): options as ``A <text>``, the
    answer a letter."""
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


# --- the records of one video (what a work item leaves for the final files) -----------------------------------------


def video_record(video_id: str, result: VideoResult, shown: dict[bool, str], provenance: list[dict]) -> dict:
    """The JSON record of one video: its yield, and per question the QA, the video file shown and the provenance."""
    return {
        "video_id": video_id, "skipped": result.skipped, "attempted": dict(result.attempted),
        "failures": [[qtype, reason, n] for (qtype, reason), n in result.failures.items()],
        "questions": [{"qa": {"qtype": qa.qtype, "question": qa.question, "answer": qa.answer, "options": qa.options,
                              "correct": qa.correct},
                       "video": shown[qa.qtype.endswith("_pred")], "provenance": record}
                      for qa, record in zip(result.qas, provenance)],
    }  # fmt: skip


def read_video_record(record: dict) -> tuple[VideoResult, list[tuple[QA, str, dict]]]:
    """The yield and the questions (QA, video shown, provenance without its index) of a :func:`video_record`."""
    questions = [(QA(**q["qa"]), q["video"], q["provenance"]) for q in record["questions"]]
    result = VideoResult(qas=[qa for qa, _, _ in questions], attempted=Counter(record["attempted"]),
                         failures=Counter({(qtype, reason): n for qtype, reason, n in record["failures"]}),
                         skipped=record["skipped"])  # fmt: skip
    return result, questions


class DSRTemplates(ItemGenerator):
    """Writes the 12 DSR template questions over a folder of SceneTracks (see the package docstring); the options
    of :class:`~.options.TemplateOptions` change the questions."""

    #: 2: matched distractors and speeds per second by default (1: the original's random distractors, per step)
    version = "2"

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

    # --- the work items: one track file each ---

    def items(self, seed: int) -> list[str]:
        """The track files' names, sorted."""
        files = self.track_files()
        self._owners = self.video_owners(files)
        return [path.name for path in files]

    @staticmethod
    def video_owners(files: list[Path]) -> dict[str, str]:
        """Video id -> the first track file (in order) that shows it, of the readable tracks whose video exists; a
        later track that shows the same video fails (as a repeated video id)."""
        owners: dict[str, str] = {}
        for path in files:
            try:
                video = resolve_video(SceneTrack.load(path), path)
            except SceneTrackError:
                continue
            if video.is_file():
                owners.setdefault(video.stem, path.name)
        return owners

    def produce(self, item: str, seed: int, files: ItemFiles) -> dict[str, Any]:
        """Write the questions of one track: read it, draw its questions, place its video (and trimmed clip)."""
        path = Path(self.options.tracks) / item
        track = SceneTrack.load(path)
        video = resolve_video(track, path)
        video_id = video.stem
        if not video.is_file():
            raise FileNotFoundError(f"{video}: video missing (track {path}); its questions are skipped")
        owners = self.__dict__.get("_owners") or self.video_owners(self.track_files())
        if owners.get(video_id, item) != item:
            raise ValueError(f"{path}: video id '{video_id}' repeats an earlier track ({owners[video_id]}); skipped")
        result = generate_video(track, video_seed(seed, video_id), self.options.qa_per_video, self.template_options())
        shown = {False: video.name, True: video.name}
        if not result.skipped and result.qas:
            shown = self.place_videos(video, files, result)
        provenance = [self.question_provenance(shown[qa.qtype.endswith("_pred")], video_id, path, track, qa)
                      for qa in result.qas]  # fmt: skip
        return video_record(video_id, result, shown, provenance)

    def place_videos(self, video: Path, files: ItemFiles, result: VideoResult) -> dict[bool, str]:
        """Copy the video into ``out`` (unless it is there) and, with ``trim_future``, cut the prediction clip.

        Returns the file name shown with non-prediction (False) and prediction (True) questions.
        """
        files.copy(video, video.name)
        names = {False: video.name, True: video.name}
        if self.options.trim_future and any(qa.qtype.endswith("_pred") for qa in result.qas):
            last = result.qas[0].provenance["sampled_frames"][PRED_FROM]
            trimmed = f"{video.stem}_until_f{last}{video.suffix}"
            with files.writing(trimmed) as path:
                trim_video(video, path, last)
            names[True] = trimmed
        return names

    @staticmethod
    def question_provenance(video: str, video_id: str, path: Path, track: SceneTrack, qa: QA) -> dict[str, Any]:
        """One line of ``provenance.jsonl`` without its TSV index (given when the tables are combined)."""
        record = {"video": video, "video_id": video_id, "track": path.name, "scene_seed": track.meta.get("seed"),
                  "source": track.source}  # fmt: skip
        record.update(qa.provenance)
        if qa.qtype.endswith("_pred"):
            record["video_end_s"] = float(track.timestamps[qa.provenance["sampled_frames"][PRED_FROM]])
        return record

    def combine(self, out: Path, seed: int, results: ItemResults) -> dict[str, Any]:
        """The tables from the videos' records in track order; failed tracks become ``errors`` of the statistics."""
        stats = YieldStats()
        rows, training, originals, provenance = [], [], {}, []
        for item in results.items:
            if item in results.failures:
                stats.errors.append(results.failures[item])
                continue
            if item not in results.records:
                continue
            record = results.records[item]
            result, questions = read_video_record(record)
            stats.add(result)
            if result.skipped:  # as the original, which never wrote a record for a video it could not process
                continue
            originals[record["video_id"]] = [qa.record() for qa, _, _ in questions]  # [] when every attempt failed
            for qa, name, prov in questions:
                index = len(rows)
                rows.append(tsv_row(index, name, qa))
                training.append(training_record(name, qa))
                provenance.append({"index": index, **prov})
        self.write(Path(out), rows, training, originals, provenance, stats)
        print(f"dsr-templates: {stats.videos} videos, {len(rows)} questions\n{stats.table()}", file=sys.stderr)
        return {**stats.as_dict(), "out": str(out)}

    def empty(self, stats: dict[str, Any]) -> str | None:
        if stats["questions"]:
            return None
        return (f"no question could be written from {stats['videos']} videos (skipped: {stats['videos_skipped']}); "
                f"the yield is in {Path(stats['out']) / STATS_NAME}")  # fmt: skip

    @staticmethod
    def write(out: Path, rows, training, originals, provenance, stats: YieldStats) -> None:
        table = io.StringIO()
        writer = csv.writer(table, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        writer.writerows(rows)
        write_atomic(out / TSV_NAME, table.getvalue())
        write_atomic(out / TRAIN_NAME, json.dumps(training, indent=1, ensure_ascii=False) + "\n")
        write_atomic(out / QA_PAIRS_NAME, json.dumps(originals, indent=4, ensure_ascii=False) + "\n")
        write_atomic(out / PROVENANCE_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in provenance))
        write_atomic(out / STATS_NAME, json.dumps(stats.as_dict(), indent=2) + "\n")
