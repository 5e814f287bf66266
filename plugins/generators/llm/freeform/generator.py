"""The ``freeform-qa`` generator: the DSR Suite's free-form ("non-template") questions over SceneTracks.

Per track (TencentARC/DSR_Suite, ``data/qa_nontemp.py``; arXiv 2512.20557): ``qa_per_video`` attempts (the original's
``--qa_num``, default 2), each drawing a trajectory window (:mod:`.trajectories`, at most 50 trials) and asking the
LLM, with the original's exact prompt (``freeform``), for one question that needs 3D knowledge, four answers and the
correct letter. The reply is validated (:mod:`.validation`); the record is the original's: the question line lower-cased
after ``"Following the perspective of {observer}, between {t_s:.1f}s and {t_e:.1f}s, "`` (``rel``) or ``"From the
perspective of {observer}, ..."`` (``abs``), the four options and the letter.

With ``--verify``, a second call answers each question from the trajectories alone (``freeform_verify``); a question
is kept only when that answer is its letter, and the agreement rate is reported. The original has no such pass.

Outputs in ``--out`` (:mod:`.tables`): ``DSRBench.tsv`` (category ``non_temp``), ``train_qas.json``,
``qa_pairs_nontemp.json``, the videos of the questions copied beside them, ``provenance.jsonl`` (per question: the
window, observer, targets and their coordinates, the prompt's and request's sha256, the reply and the verification),
``rejected.jsonl`` (every attempt that gave no question, with its reason and replies) and ``stats.json``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from vdpm_harness import SceneTrack, SceneTrackError, TooFewFrames, stable_hash, write_atomic

from ..asking import Asker, LLMOptions, summed
from ..batched import BatchedLLMGenerator
from ..prompts import prompt, system_message
from ..replies import reason
from .tables import QA_PAIRS_NAME, TRAIN_NAME, TSV_NAME, training_record, tsv_row, tsv_text
from .trajectories import SampledTrack, Trial, TrialDrawer
from .validation import LETTERS, box_key, read_letter, read_question

PROVENANCE_NAME = "provenance.jsonl"
REJECTED_NAME = "rejected.jsonl"
STATS_NAME = "stats.json"
PREFIX = {"rel": "Following the perspective of", "abs": "From the perspective of"}


def resolve_video(track: SceneTrack, track_path: Path) -> Path:
    """The track's video: its ``video`` field (relative to the track's folder), else ``<track stem>.mp4``."""
    if track.video:
        video = Path(track.video)
        return video if video.is_absolute() else track_path.parent / video
    return track_path.with_suffix(".mp4")


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(stable_hash(video_id), 16)])


def full_question(trial: Trial, times: list[float], question: str) -> str:
    """The record's question: the observer and the window, then the LLM's question line lower-cased (as the
    original does, object names included)."""
    start, end = times[trial.start], times[trial.end]
    return f"{PREFIX[trial.qa_type]} {trial.observer}, between {start:.1f}s and {end:.1f}s, {question.lower()}"


class FreeformQA(BatchedLLMGenerator):
    """Free-form questions over SceneTracks by an LLM, validated and optionally verified (the module docstring)."""

    version = "1"
    unit = "tracks"

    class Options(BatchedLLMGenerator.Options):
        tracks: str | None = Field(None, description="Folder of SceneTrack files (*.npz) and their videos.")
        qa_per_video: int = Field(2, ge=1, description="Attempts per video (the original's --qa_num).")
        exclude_observer: bool = Field(True, description="The abs observer is not also a target (the original may "
                                       "pick it as both).")  # fmt: skip
        decimals: int | None = Field(None, ge=0, description="Round the coordinates (default: full precision, as "
                                     "the original).")  # fmt: skip
        verify: bool = Field(False, description="A second call answers each question from the trajectories; keep "
                             "only the confirmed ones.")  # fmt: skip
        verify_model: str | None = Field(None, description="Model of the verification (default: model).")

    # --- inputs and endpoints ---

    def inputs(self) -> list[tuple[str, Path]]:
        if not self.options.tracks:
            raise ValueError("freeform-qa: no track folder; pass --tracks DIR (a folder of SceneTrack *.npz files)")
        folder = Path(self.options.tracks)
        if not folder.is_dir():
            raise ValueError(f"freeform-qa: track folder not found: {folder}")
        files = sorted(folder.glob("*.npz"))
        if not files:
            raise ValueError(f"freeform-qa: {folder} holds no SceneTrack files (*.npz)")
        return [(path.name, path) for path in files]

    def llm_options(self) -> LLMOptions:
        return LLMOptions(**self.options.model_dump(include=set(LLMOptions.model_fields)))

    def open_askers(self) -> dict[str, Asker]:
        name = self.id or "freeform-qa"
        askers = {"writer": Asker(name, self.llm_options(), system_message())}
        if self.options.verify:
            model = self.options.verify_model or self.options.model
            askers["verifier"] = Asker(f"{name}-verify", self.llm_options().model_copy(update={"model": model}),
                                       system_message())  # fmt: skip
        return askers

    # --- one track ---

    def scene(self, path: Path) -> tuple[dict[str, Any], SampledTrack | None, Path | None]:
        """The track's record header, its sampled scene and video, or the reason it is skipped."""
        record: dict[str, Any] = {"track": path.name, "video_id": None, "video": None, "scene_seed": None,
                                  "skipped": None, "detail": None, "attempts": []}  # fmt: skip
        try:
            track = SceneTrack.load(path)
        except SceneTrackError as exc:
            record.update(skipped="unreadable_track", detail=str(exc))
            return record, None, None
        video = resolve_video(track, path)
        record.update(video_id=video.stem, video=video.name, scene_seed=track.meta.get("seed"))
        if not video.is_file():
            record.update(skipped="video_missing", detail=f"{video} not found")
            return record, None, None
        try:
            scene = SampledTrack(track)
        except TooFewFrames as exc:
            record.update(skipped="video_too_short", detail=str(exc))
            return record, None, None
        if not scene.agent_labels:  # the original skips a video without agent classes
            record.update(skipped="no_agent")
            return record, None, None
        return record, scene, video

    def trials(self, scene: SampledTrack, video_id: str, seed: int) -> list[tuple[Trial | None, Counter]]:
        """Every attempt's draw, all before any request, so the draws never depend on the replies."""
        drawer = TrialDrawer(scene, video_rng(seed, video_id), self.options.exclude_observer, self.options.decimals)
        return [drawer.draw() for _ in range(self.options.qa_per_video)]

    def process(self, key: str, path: Path, seed: int, files) -> dict[str, Any]:
        record, scene, video = self.scene(path)
        if scene is None:
            return record
        for trial, failures in self.trials(scene, record["video_id"], seed):
            attempt: dict[str, Any] = {"trial_failures": dict(sorted(failures.items()))}
            record["attempts"].append(attempt)
            if trial is None:
                attempt["status"] = "no_trajectory"
                continue
            attempt.update(trial.record(scene.times))
            self.ask(trial, scene.times, attempt)
        if any(attempt["status"] == "question" for attempt in record["attempts"]):
            files.copy(video, video.name)
        return record

    def ask(self, trial: Trial, times: list[float], attempt: dict[str, Any]) -> None:
        """Write, validate and (with ``verify``) verify one question into ``attempt``."""
        fields = trial.prompt_fields(times)
        named = [*trial.targets, trial.observer_entity]
        boxes = {box_key(entity["box"]) for entity in named if entity.get("box")}
        labels = {entity["label"] for entity in named if entity.get("label")}
        writer = self.askers["writer"]
        outcome = writer.ask(writer.payload(prompt("freeform").render(**fields)),
                             lambda text: read_question(text, boxes, labels))  # fmt: skip
        attempt["writer"] = outcome.record(value=asdict(outcome.value) if outcome.ok else None)
        if not outcome.ok:
            attempt["status"] = f"writer_{outcome.status}"
            return
        written = outcome.value
        qa = {"Question": full_question(trial, times, written.question), **written.options, "Correct": written.correct}
        attempt["question"] = qa
        if "verifier" in self.askers:
            verifier = self.askers["verifier"]
            options = "\n".join(f"{letter}. {qa[letter]}" for letter in LETTERS)
            text = prompt("freeform_verify").render(**fields, question=qa["Question"], options=options)
            check = verifier.ask(verifier.payload(text), read_letter)
            attempt["verification"] = check.record()
            if not check.ok:
                attempt["status"] = f"verify_{check.status}"
                return
            if check.value != qa["Correct"]:
                attempt["status"] = "verify_disagrees"
                return
        attempt["status"] = "question"

    # --- outputs ---

    def prompts_used(self) -> dict[str, dict[str, str]]:
        names = ["freeform", "freeform_verify"] if self.options.verify else ["freeform"]
        return {name: prompt(name).record() for name in names}

    def finish(self, out: Path, seed: int, records: list[dict[str, Any]], failed: dict[str, str]) -> dict[str, Any]:
        rows, training, originals, provenance, rejected = [], [], {}, [], []
        for record in records:
            if record["skipped"]:
                continue
            originals.setdefault(record["video_id"], [])  # two tracks of one video share its entry
            for number, attempt in enumerate(record["attempts"]):
                where = {"video": record["video"], "video_id": record["video_id"], "track": record["track"],
                         "attempt": number}  # fmt: skip
                if attempt["status"] != "question":
                    rejected.append({**where, "status": attempt["status"], **self.rejection(attempt)})
                    continue
                qa = attempt["question"]
                index = len(rows)
                rows.append(tsv_row(index, record["video"], qa))
                training.append(training_record(record["video"], qa))
                originals[record["video_id"]].append(qa)
                provenance.append({"index": index, **where, "scene_seed": record["scene_seed"],
                                   **{k: attempt[k] for k in ("qa_type", "observer", "observer_entity", "t_obs",
                                                              "window", "targets", "coordinates")},
                                   "prompt": prompt("freeform").sha256,
                                   "request_sha256": attempt["writer"]["request_sha256"],
                                   "reply": attempt["writer"]["attempts"][-1]["reply"],
                                   "verification": attempt.get("verification")})  # fmt: skip
        write_atomic(out / TSV_NAME, tsv_text(rows))
        write_atomic(out / TRAIN_NAME, json.dumps(training, indent=1, ensure_ascii=False) + "\n")
        write_atomic(out / QA_PAIRS_NAME, json.dumps(originals, indent=4, ensure_ascii=False) + "\n")
        write_atomic(out / PROVENANCE_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in provenance))
        write_atomic(out / REJECTED_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected))
        stats = self.statistics(records, len(rows), failed)
        write_atomic(out / STATS_NAME, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
        print(self.summary(stats), file=sys.stderr)
        return {**stats, "out": str(out)}

    @staticmethod
    def rejection(attempt: dict[str, Any]) -> dict[str, Any]:
        """Why an attempt gave no question: the trial failures, or the outcome with every reply."""
        if attempt["status"] == "no_trajectory":
            return {"trial_failures": attempt["trial_failures"]}
        step = attempt.get("verification") if attempt["status"].startswith("verify") else attempt["writer"]
        return {"qa_type": attempt["qa_type"], "question": attempt.get("question"), "problem": step["problem"],
                "replies": [a["reply"] for a in step["attempts"]],
                "verified_letter": step["value"] if attempt["status"] == "verify_disagrees" else None}  # fmt: skip

    def statistics(self, records: list[dict[str, Any]], questions: int, failed: dict[str, str]) -> dict[str, Any]:
        attempts = [a for r in records for a in r["attempts"]]
        trial_failures: Counter = Counter()
        problems: Counter = Counter()
        for attempt in attempts:
            trial_failures.update(attempt["trial_failures"])
            for step in ("writer", "verification"):
                for reply in (attempt.get(step) or {}).get("attempts", []):
                    if reply["problem"]:
                        problems[f"{step}:{reason(reply['problem'])}"] += 1
        statuses = Counter(a["status"] for a in attempts)
        verified = statuses["question"] + statuses["verify_disagrees"] if self.options.verify else 0
        stats = {
            "generator": self.provenance(), "prompts": self.prompts_used(), "videos": len(records),
            "videos_skipped": dict(sorted(Counter(r["skipped"] for r in records if r["skipped"]).items())),
            "attempts": len(attempts), "outcomes": dict(sorted(statuses.items())), "questions": questions,
            "trial_failures": dict(sorted(trial_failures.items())), "reply_problems": dict(sorted(problems.items())),
            "writer": summed([a["writer"] for a in attempts if a.get("writer")]),
            "failed_batches": len(failed),
        }  # fmt: skip
        if self.options.verify:
            stats["verification"] = summed([a["verification"] for a in attempts if a.get("verification")])
            stats["agreement"] = {"answered": verified, "confirmed": statuses["question"],
                                  "rate": round(statuses["question"] / verified, 4) if verified else None}  # fmt: skip
        return stats

    @staticmethod
    def summary(stats: dict[str, Any]) -> str:
        lines = [f"freeform-qa: {stats['videos']} videos, {stats['attempts']} attempts, {stats['questions']} questions"]
        lines += [f"  videos skipped ({reason}): {n}" for reason, n in stats["videos_skipped"].items()]
        lines += [f"  {status}: {n}" for status, n in stats["outcomes"].items()]
        lines += [f"  reply problem {problem}: {n}" for problem, n in stats["reply_problems"].items()]
        if "agreement" in stats:
            a = stats["agreement"]
            lines.append(f"  verification: {a['confirmed']} of {a['answered']} answered questions confirmed "
                         f"(agreement {a['rate']})")  # fmt: skip
        writer = stats["writer"]
        if "cost_usd" in writer:
            lines.append(f"  writer cost: ${writer['cost_usd']:.4f}")
        if stats["failed_batches"]:
            lines.append(f"  failed batches (rerun to retry): {stats['failed_batches']}")
        return "\n".join(lines)

    def empty(self, stats: dict[str, Any]) -> str | None:
        if stats["questions"]:
            return None
        return (f"no question could be written from {stats['videos']} videos (skipped: {stats['videos_skipped']}, "
                f"outcomes: {stats['outcomes']}); see {Path(stats['out']) / REJECTED_NAME}")  # fmt: skip

    # --- dry run ---

    def preview(self, seed: int) -> dict[str, Any]:
        prompts, count, chars = [], 0, 0
        inputs = self.inputs()
        for _, path in inputs:
            record, scene, _ = self.scene(path)
            if scene is None:
                continue
            for trial, _ in self.trials(scene, record["video_id"], seed):
                if trial is not None:
                    text = prompt("freeform").render(**trial.prompt_fields(scene.times))
                    if len(prompts) < self.options.show_prompts:
                        prompts.append(text)
                    count, chars = count + 1, chars + len(text)
        requests = {"freeform": count}
        if self.options.verify:
            requests["freeform_verify"] = count
        chars_by_step = {"freeform": chars, "freeform_verify": chars if self.options.verify else 0}
        return {"inputs": len(inputs), "prompts": prompts, "requests": requests, "prompt_chars": chars_by_step}
