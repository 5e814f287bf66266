"""The ``curate`` generator: the DSR Suite's three curation steps on any OpenAI-compatible endpoint, resumable.

Per video, in order, each step only when the previous one kept it (TencentARC/DSR_Suite; arXiv 2512.20557):

1. **caption motion filter** (``data/deepseek_motion.py``): does the caption describe at least three subjects whose
   world coordinates change substantially? (``caption_motion`` prompt, DeepSeek-R1 in the original);
2. **agent and object classes** (``data/deepseek_agent.py``): the classes of agents and of the other foreground
   objects, the detector phrases of the later perception stage (``caption_classes``). The original asks for every
   caption; here only for the captions the motion filter kept;
3. **video-level filter and category** (``data/gemini_motion.py``, Gemini-2.5-Pro in the original, whose request
   there is a placeholder): the video itself is attached (:mod:`.attachment`) with the classes, and the reply is a
   verdict and one of six categories (``video_filter``). Runs when ``--videos`` is given.

Without captions, ``--videos DIR --classes agent_object.csv`` runs step 3 alone. A video without an agent class is
rejected (``no_agent``), as the original's later steps skip it.

Outputs in ``--out``:

* ``manifest.json``: the kept videos with their file, category, agent and object classes (the detector phrases) and
  caption; the rejected ones with the reason (a code) and its detail; the prompts with their sha256;
* ``curation.jsonl``: one record per video (in place of the original's overlapping part files): every step's
  outcome with each attempt's reply, parse problem, tokens and price, and the request's sha256;
* ``dynamic_videos.json`` (the kept ids, the list the original's QA generators read) and ``agent_object.csv``
  (``videoID, agent, obj``, the class lines as the LLM wrote them, as ``deepseek_agent.py`` writes it);
* ``stats.json``: inputs, kept, rejections by reason, categories, and per step the questions, attempts, re-asks,
  outcomes, tokens and cost.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vdpm_harness import VideoError, write_atomic

from ..asking import Asker, LLMOptions, summed
from ..batched import BatchedLLMGenerator
from ..prompts import prompt, system_message, video_categories
from .attachment import video_parts
from .inputs import Entry, read_entries
from .parsing import class_list, class_text, classes_reply, motion_verdict, video_verdict

MANIFEST = "manifest.json"
RECORDS = "curation.jsonl"
DYNAMIC = "dynamic_videos.json"
CLASSES = "agent_object.csv"
STATS = "stats.json"
STEPS = ("caption_motion", "caption_classes", "video_filter")


class Curate(BatchedLLMGenerator):
    """Caption motion filter, agent/object classes and the video-level filter (see the module docstring)."""

    version = "1"
    unit = "videos"

    class Options(BatchedLLMGenerator.Options):
        captions: str | None = Field(None, description="Koala-36M CSV (columns videoID, caption).")
        videos: str | None = Field(None, description="Folder of videos <videoID>.mp4: runs the video-level filter.")
        classes: str | None = Field(None, description="agent_object.csv (videoID, agent, obj) for videos without "
                                    "captions.")  # fmt: skip
        video_model: str = Field("gemini-2.5-pro", description="Model of the video-level filter (the original's).")
        video_base_url: str | None = Field(None, description="Its endpoint (default: base_url).")
        video_api_key_env: str | None = Field(None, description="Its key's environment variable (default: "
                                              "api_key_env).")  # fmt: skip
        video_api_key: str | None = None
        video_input: Literal["frames", "video"] = Field("frames", description="Attach JPEG frames or the file.")
        frames: int = Field(32, ge=1, description="Frames attached, spread uniformly over the video.")
        max_pixels: int | None = Field(230400, ge=1, description="Pixels per attached frame at most.")
        jpeg_quality: int = Field(90, ge=1, le=100)
        class_text: Literal["clean", "original"] = Field("clean", description="How the video prompt shows the "
                                                         "classes: parsed and comma-joined, or the original's "
                                                         "raw.lower().replace('.', ', ').")  # fmt: skip

    # --- inputs and endpoints ---

    def inputs(self) -> list[tuple[str, Entry]]:
        o = self.options
        return [(entry.video_id, entry) for entry in read_entries(o.captions, o.videos, o.classes)]

    def llm_options(self) -> LLMOptions:
        return LLMOptions(**self.options.model_dump(include=set(LLMOptions.model_fields)))

    def video_options(self) -> LLMOptions:
        """The video filter's endpoint: the ``video_*`` options, each defaulting to the text endpoint's."""
        o = self.options
        key = o.video_api_key
        if key is None and not o.video_api_key_env:
            key = o.api_key
        return self.llm_options().model_copy(update={"model": o.video_model, "base_url": o.video_base_url or o.base_url,
                                                     "api_key_env": o.video_api_key_env or o.api_key_env,
                                                     "api_key": key})  # fmt: skip

    def open_askers(self) -> dict[str, Asker]:
        name = self.id or "curate"
        askers = {}
        if self.options.captions:
            askers["text"] = Asker(name, self.llm_options(), system_message())
        if self.options.videos:
            askers["video"] = Asker(f"{name}-video", self.video_options(), system_message())
        return askers

    # --- one video ---

    def process(self, key: str, entry: Entry, seed: int, files) -> dict[str, Any]:
        record: dict[str, Any] = {"video_id": entry.video_id, "caption": entry.caption, "video": entry.video,
                                  "kept": False, "reason": None, "detail": None, "category": None,
                                  "agents": [], "objects": [], "agent_line": None, "object_line": None,
                                  "steps": {}}  # fmt: skip

        def reject(reason: str, detail: str | None = None) -> dict[str, Any]:
            record.update(reason=reason, detail=detail)
            return record

        if entry.caption is not None:
            text = self.askers["text"]
            motion = text.ask(text.payload(prompt("caption_motion").render(caption=entry.caption)), motion_verdict)
            record["steps"]["caption_motion"] = motion.record()
            if not motion.ok:
                return reject(f"caption_motion_{motion.status}", motion.problem)
            if not motion.value:
                return reject("caption_static")
            classes = text.ask(text.payload(prompt("caption_classes").render(caption=entry.caption)), classes_reply)
            record["steps"]["caption_classes"] = classes.record()
            if not classes.ok:
                return reject(f"caption_classes_{classes.status}", classes.problem)
            parsed = classes.value
        elif entry.classes is None:
            return reject("no_classes", "the --classes file has no row for this video")
        else:
            agent_line, object_line = entry.classes
            parsed = {"agent_line": agent_line, "object_line": object_line, "agents": class_list(agent_line),
                      "objects": class_list(object_line)}  # fmt: skip
        record.update(parsed)
        if not parsed["agents"]:
            return reject("no_agent")
        if "video" not in self.askers:
            record["kept"] = True
            return record
        if entry.video is None:
            return reject("video_missing", f"no <videoID>.* in {self.options.videos}")
        verdict = self.video_filter(entry, parsed)
        record["steps"]["video_filter"] = verdict.pop("record", None)
        if verdict.get("reason"):
            return reject(verdict["reason"], verdict.get("detail"))
        record.update(kept=True, category=verdict["category"])
        return record

    def video_filter(self, entry: Entry, parsed: dict[str, Any]) -> dict[str, Any]:
        """Step 3 for one video: ``{"category"}`` when kept, else ``{"reason", "detail"}``; ``record`` is the
        step's record."""
        o = self.options
        try:
            media, sent = video_parts(Path(o.videos) / entry.video, o.video_input, o.frames, o.max_pixels,
                                      o.jpeg_quality)  # fmt: skip
        except (VideoError, OSError) as exc:
            return {"reason": "video_unreadable", "detail": f"{type(exc).__name__}: {exc}"}
        categories = video_categories()
        question = prompt("video_filter").render(
            classes=",".join(categories),
            agent=class_text(parsed["agents"], parsed["agent_line"], o.class_text),
            obj=class_text(parsed["objects"], parsed["object_line"], o.class_text),
        )
        asker = self.askers["video"]
        outcome = asker.ask(asker.payload([*media, {"type": "text", "text": question}]),
                            lambda text: video_verdict(text, categories))  # fmt: skip
        result: dict[str, Any] = {"record": {**outcome.record(), **sent}}
        if not outcome.ok:
            return {**result, "reason": f"video_filter_{outcome.status}", "detail": outcome.problem}
        if not outcome.value["keep"]:
            return {**result, "reason": "video_static"}
        return {**result, "category": outcome.value["category"]}

    # --- outputs ---

    def prompts_used(self) -> dict[str, dict[str, str]]:
        names = (["caption_motion", "caption_classes"] if self.options.captions else []) + (
            ["video_filter"] if self.options.videos else [])  # fmt: skip
        return {name: prompt(name).record() for name in names}

    def finish(self, out: Path, seed: int, records: list[dict[str, Any]], failed: dict[str, str]) -> dict[str, Any]:
        kept = [r for r in records if r["kept"]]
        rejected = [r for r in records if not r["kept"]]
        manifest = {
            "generator": self.id, "version": self.version, "prompts": self.prompts_used(),
            "categories": video_categories(),
            "kept": [{key: r[key] for key in ("video_id", "video", "category", "agents", "objects", "caption")}
                     for r in kept],
            "rejected": [{key: r[key] for key in ("video_id", "reason", "detail")} for r in rejected],
            "failed_batches": failed,
        }  # fmt: skip
        write_atomic(out / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        write_atomic(out / RECORDS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        write_atomic(out / DYNAMIC, json.dumps([r["video_id"] for r in kept], indent=4, ensure_ascii=False) + "\n")
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["videoID", "agent", "obj"])
        writer.writerows([r["video_id"], r["agent_line"], r["object_line"]] for r in records
                         if r["agent_line"] is not None)  # fmt: skip
        write_atomic(out / CLASSES, table.getvalue())
        stats = self.statistics(records, failed)
        write_atomic(out / STATS, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
        print(self.summary(stats), file=sys.stderr)
        return {**stats, "out": str(out)}

    def statistics(self, records: list[dict[str, Any]], failed: dict[str, str]) -> dict[str, Any]:
        steps = {step: summed([r["steps"][step] for r in records if r["steps"].get(step)]) for step in STEPS}
        return {
            "generator": self.provenance(), "prompts": self.prompts_used(), "videos": len(records),
            "kept": sum(r["kept"] for r in records),
            "rejected": dict(sorted(Counter(r["reason"] for r in records if not r["kept"]).items())),
            "categories": dict(sorted(Counter(r["category"] for r in records if r["category"]).items())),
            "steps": {step: counts for step, counts in steps.items() if counts},
            "failed_batches": len(failed),
        }  # fmt: skip

    @staticmethod
    def summary(stats: dict[str, Any]) -> str:
        lines = [f"curate: {stats['videos']} videos, {stats['kept']} kept"]
        lines += [f"  rejected ({reason}): {n}" for reason, n in stats["rejected"].items()]
        for step, counts in stats["steps"].items():
            cost = f", ${counts['cost_usd']:.4f}" if "cost_usd" in counts else ""
            n = Counter(counts)
            lines.append(f"  {step}: {n['questions']} asked, {n['attempts']} requests ({n['re_asks']} re-asks), "
                         f"{n['ok']} read, {n['unparseable']} unparseable, {n['refused']} refused{cost}")  # fmt: skip
        if stats["failed_batches"]:
            lines.append(f"  failed batches (rerun to retry): {stats['failed_batches']}")
        return "\n".join(lines)

    def empty(self, stats: dict[str, Any]) -> str | None:
        return None if stats["videos"] else "no video was curated"

    # --- dry run ---

    def preview(self, seed: int) -> dict[str, Any]:
        entries = [entry for _, entry in self.inputs()]
        prompts, requests, chars = [], {}, {}
        with_caption = [e for e in entries if e.caption is not None]
        for name in ("caption_motion", "caption_classes") if with_caption else ():
            texts = [prompt(name).render(caption=e.caption) for e in with_caption]
            prompts += texts[: self.options.show_prompts]
            requests[name], chars[name] = len(texts), sum(map(len, texts))
        if self.options.videos:
            shown = [e for e in entries if e.video is not None]
            sample = prompt("video_filter").render(classes=",".join(video_categories()),
                                                   agent="<agent classes>", obj="<object classes>")  # fmt: skip
            prompts.append(sample + f"\n[+ {self.options.frames} frames]" if self.options.video_input == "frames"
                           else sample + "\n[+ the video file]")  # fmt: skip
            requests["video_filter"], chars["video_filter"] = len(shown), len(sample) * len(shown)
        return {"inputs": len(entries), "prompts": prompts, "requests": requests, "prompt_chars": chars}
