"""The ``synth-scenes`` generator: one work item per scene, rendered to an H.264 video and its exact SceneTrack.

``vdpm-harness generate synth-scenes --n-videos N --out DIR --seed S`` writes ``scene_XXXX.mp4`` (H.264 by
:func:`vdpm_harness.video.write_video`, deterministic), ``scene_XXXX.npz`` (a :class:`~vdpm_harness.scene.SceneTrack`)
and ``manifest.json`` (per scene: its seed, frame count, camera motion, objects and the sha256 of its files). Scene
``i`` is drawn from ``SeedSequence([seed, i])`` alone, so the same seed and options give byte-identical tracks and
videos whatever the number of scenes, the number of processes or an interruption (the run resumes, see
:class:`vdpm_harness.ItemGenerator`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from vdpm_harness import ItemFiles, ItemGenerator, ItemResults, Strict, file_digest, write_atomic, write_video

from .rendering import GENERATOR_VERSION, SceneRendering
from .sampling import sample_scene, scene_rng
from .scene import CAMERA_MOTIONS, CATEGORIES, PALETTE, Scene

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
MANIFEST = "manifest.json"


def _names(value: str, known, what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown {what} {unknown or value!r}; known: {', '.join(known)}")
    return names


def stem(index: int) -> str:
    """The file stem (and work item id) of scene ``index``."""
    return f"scene_{index:04d}"


class SynthScenes(ItemGenerator):
    """Renders procedural scenes to H.264 videos with exact ``SceneTrack`` ground truth (the package docstring)."""

    version = GENERATOR_VERSION

    class Options(Strict):
        n_videos: int = Field(10, ge=1, description="Number of scenes (default 10).")
        width: int = Field(320, ge=16, description="Frame width in pixels, even (default 320).")
        height: int = Field(240, ge=16, description="Frame height in pixels, even (default 240).")
        fps: float = Field(15.0, gt=0, description="Frames per second (default 15).")
        duration: float = Field(6.0, gt=0, description="Seconds per video (default 6).")
        min_objects: int = Field(2, ge=1, le=len(PALETTE), description="Fewest objects per scene (default 2).")
        max_objects: int = Field(6, ge=1, le=len(PALETTE), description="Most objects per scene (default 6).")
        camera_motions: str = Field(",".join(CAMERA_MOTIONS), description="Camera motions, comma-separated (all).")
        categories: str = Field(",".join(CATEGORIES), description="Object categories, comma-separated (all).")
        min_visible_pixels: int = Field(1, ge=1, description="Pixels an object must show to be visible (default 1).")
        crf: int = Field(18, ge=0, le=51, description="x264 quality, lower is better (default 18).")
        preset: str = Field("medium", description="x264 preset (default medium).")

        @model_validator(mode="after")
        def _check(self):
            if self.width % 2 or self.height % 2:
                raise ValueError(f"width and height must be even for H.264 (got {self.width}x{self.height})")
            if self.min_objects > self.max_objects:
                raise ValueError(f"min_objects ({self.min_objects}) exceeds max_objects ({self.max_objects})")
            if self.preset not in X264_PRESETS:
                raise ValueError(f"unknown x264 preset {self.preset!r}; known: {', '.join(X264_PRESETS)}")
            _names(self.camera_motions, CAMERA_MOTIONS, "camera motion")
            _names(self.categories, CATEGORIES, "category")
            return self

    def scene(self, seed: int, index: int) -> Scene:
        """Scene ``index`` of a run with ``seed``."""
        o = self.options
        return sample_scene(scene_rng(seed, index), duration=o.duration, aspect=o.width / o.height,
                            min_objects=o.min_objects, max_objects=o.max_objects,
                            camera_motions=_names(o.camera_motions, CAMERA_MOTIONS, "camera motion"),
                            categories=_names(o.categories, CATEGORIES, "category"))  # fmt: skip

    # --- the work items: one scene each ---

    def items(self, seed: int) -> list[str]:
        return [stem(index) for index in range(self.options.n_videos)]

    def produce(self, item: str, seed: int, files: ItemFiles) -> dict[str, Any]:
        """Render scene ``item`` into its video and track; the record is its manifest entry and render time."""
        o = self.options
        index = int(item.removeprefix("scene_"))
        scene = self.scene(seed, index)
        rendering = SceneRendering(scene, o.width, o.height, o.fps, o.duration, min_visible_pixels=o.min_visible_pixels)
        with files.writing(f"{item}.mp4") as path:
            write_video(path, rendering.frames(), o.fps, crf=o.crf, preset=o.preset)
        track = rendering.track(video=f"{item}.mp4")
        track.meta.update(seed=[seed, index], index=index)
        with files.writing(f"{item}.npz") as path:
            track.save(path)
        entry = {
            "index": index, "seed": [seed, index], "frames": track.n_frames, "camera_motion": scene.camera.kind,
            "objects": [{"id": f"o{i}", "category": obj.category, "color": obj.color, "motion": obj.motion.kind}
                        for i, obj in enumerate(scene.objects)],
            "files": {kind: {"path": f"{item}.{ext}", "sha256": file_digest(files.path(f"{item}.{ext}"))}
                      for kind, ext in (("video", "mp4"), ("track", "npz"))},
        }  # fmt: skip
        return {"entry": entry, "render_seconds": rendering.render_seconds}

    def combine(self, out: Path, seed: int, results: ItemResults) -> dict[str, Any]:
        """Write ``manifest.json`` (the finished scenes in order) and return the counts and this run's speed."""
        entries = [record["entry"] for record in results.records.values()]
        counts = {"camera_motions": Counter(), "object_motions": Counter(), "categories": Counter()}
        for entry in entries:
            counts["camera_motions"][entry["camera_motion"]] += 1
            counts["object_motions"].update(obj["motion"] for obj in entry["objects"])
            counts["categories"].update(obj["category"] for obj in entry["objects"])
        manifest = {"generator": "synth-scenes", "version": GENERATOR_VERSION, "seed": seed,
                    "options": self.options.model_dump(mode="json"), "scenes": entries}  # fmt: skip
        write_atomic(Path(out) / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        # speeds are of this run: the scenes it rendered (not those an interrupted run left) over its wall time
        fresh = [record for item, record in results.records.items() if item in results.fresh]
        fresh_frames = sum(record["entry"]["frames"] for record in fresh)
        render_seconds = sum(record["render_seconds"] for record in fresh)
        seconds = max(results.seconds, 1e-9)
        stats = {
            "out": str(out), "videos": len(entries), "frames": sum(entry["frames"] for entry in entries),
            "seconds": round(results.seconds, 3), "render_seconds": round(render_seconds, 3),
            "frames_per_second": round(fresh_frames / seconds, 1),
            "render_frames_per_second": round(fresh_frames / max(render_seconds, 1e-9), 1),
            **{name: dict(sorted(counter.items())) for name, counter in counts.items()},
        }  # fmt: skip
        if results.failures:
            stats["failed"] = dict(results.failures)
        return stats
