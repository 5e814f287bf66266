"""``motion-basics``: a small procedurally rendered video benchmark with exact answers, built on first use.

Each clip shows a red and a blue disc moving in straight lines at constant speeds over a textured background. Three
multiple-choice questions per clip, whose answers follow from the rendered geometry exactly:

* ``direction``: where does the red disc move (left, right, up, down)?
* ``speed_comparison``: which disc moves faster (the speeds differ by a factor of at least 2)?
* ``distance_change``: do the discs end closer together or farther apart than they start (by at least 30%)?

It needs no download: the videos are rendered from a fixed seed (a few seconds on one core) into a cache folder
(``$VDPM_CACHE`` or ``~/.cache/vdpm-harness``), with a manifest of sha256 checksums verified on every load. It is
the project's smoke test for models and pipeline alike: a real video model should be far above the 25% chance level.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import Field

from vdpm_harness import (
    FramePolicy,
    GenerationSettings,
    MCQBenchmark,
    Message,
    Request,
    Sample,
    Strict,
    TextPart,
    VideoPart,
    building,
    cache_root,
    checksum_problems,
    file_digest,
    hookimpl,
)

PROMPT = (
    "These are the frames of a video. Select the best answer to the following multiple-choice question based on "
    "the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
DIRECTIONS = {"Left": (-1.0, 0.0), "Right": (1.0, 0.0), "Up": (0.0, -1.0), "Down": (0.0, 1.0)}
SPEED_OPTIONS = ["The red disc", "The blue disc", "Both move at the same speed", "Neither disc moves"]
DISTANCE_OPTIONS = ["Closer together", "Farther apart", "The distance stays the same", "They overlap throughout"]
RED, BLUE = (220, 40, 40), (40, 70, 220)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random texture, so the scene is not trivially flat."""
    coarse = rng.integers(90, 170, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    return np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, :width]


def _draw_disc(frame: np.ndarray, center: np.ndarray, radius: float, color) -> None:
    h, w = frame.shape[:2]
    x0, x1 = int(max(center[0] - radius - 1, 0)), int(min(center[0] + radius + 2, w))
    y0, y1 = int(max(center[1] - radius - 1, 0)), int(min(center[1] + radius + 2, h))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    mask = (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius**2
    frame[y0:y1, x0:x1][mask] = color


def _clip(rng: np.random.Generator, width: int, height: int, n_frames: int):
    """Draw a clip's parameters until every answer is unambiguous; return trajectories and answers."""
    duration = n_frames - 1
    radius = min(width, height) * 0.07
    margin = radius + 2
    while True:
        direction = rng.choice(list(DIRECTIONS))
        fast, slow = rng.uniform(0.35, 0.6), rng.uniform(0.05, 0.15)
        red_faster = bool(rng.integers(2))
        red_speed, blue_speed = (fast, slow) if red_faster else (slow, fast)
        red_v = np.array(DIRECTIONS[direction]) * red_speed * min(width, height) / duration
        angle = rng.uniform(0, 2 * np.pi)
        blue_v = np.array([np.cos(angle), np.sin(angle)]) * blue_speed * min(width, height) / duration
        red_0 = rng.uniform([margin, margin], [width - margin, height - margin])
        blue_0 = rng.uniform([margin, margin], [width - margin, height - margin])
        red_1, blue_1 = red_0 + red_v * duration, blue_0 + blue_v * duration
        inside = all(margin <= p[0] <= width - margin and margin <= p[1] <= height - margin for p in (red_1, blue_1))
        d0, d1 = np.linalg.norm(red_0 - blue_0), np.linalg.norm(red_1 - blue_1)
        separated = min(d0, d1) > 2.5 * radius
        if inside and separated and max(d0, d1) / min(d0, d1) >= 1.3:
            answers = {
                "direction": direction,
                "speed_comparison": SPEED_OPTIONS[0] if red_faster else SPEED_OPTIONS[1],
                "distance_change": DISTANCE_OPTIONS[0] if d1 < d0 else DISTANCE_OPTIONS[1],
            }
            return (red_0, red_v), (blue_0, blue_v), radius, answers


def build_dataset(folder: Path, n_videos: int, seed: int, width: int = 192, height: int = 144, n_frames: int = 32,
                  fps: float = 8.0) -> None:  # fmt: skip
    """Render the clips and write ``samples.json`` and ``manifest.json`` into ``folder`` (atomically)."""
    from vdpm_harness import write_video

    with building(folder) as staging:
        rng = np.random.default_rng(seed)
        samples = []
        for v in range(n_videos):
            (r0, rv), (b0, bv), radius, answers = _clip(rng, width, height, n_frames)
            background = _background(rng, width, height)
            frames = np.empty((n_frames, height, width, 3), np.uint8)
            for t in range(n_frames):
                frames[t] = background
                _draw_disc(frames[t], b0 + bv * t, radius, BLUE)
                _draw_disc(frames[t], r0 + rv * t, radius, RED)
            name = f"clip_{v:03d}.mp4"
            write_video(staging / name, frames, fps)
            samples += _questions(rng, v, name, answers)
        (staging / "samples.json").write_text(json.dumps(samples, indent=1))
        files = sorted(p.name for p in staging.iterdir())
        manifest = {"seed": seed, "n_videos": n_videos, "files": {f: file_digest(staging / f) for f in files}}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _questions(rng: np.random.Generator, v: int, video: str, answers: dict) -> list[dict]:
    asked = {
        "direction": ("In which direction does the red disc move during the video?", list(DIRECTIONS)),
        "speed_comparison": ("Which disc moves faster during the video?", SPEED_OPTIONS),
        "distance_change": ("By the end of the video, compared with the start, how are the two discs placed?",
                            DISTANCE_OPTIONS),
    }  # fmt: skip
    out = []
    for category, (question, options) in asked.items():
        order = [options[i] for i in rng.permutation(len(options))]
        letter = chr(ord("A") + order.index(answers[category]))
        out.append({"sample_id": f"{v:03d}-{category}", "video_id": f"clip_{v:03d}", "category": category,
                    "question": question, "options": [f"{chr(65 + i)}. {o}" for i, o in enumerate(order)],
                    "answer": letter, "video": video})  # fmt: skip
    return out


class MotionBasics(MCQBenchmark):
    version = "1"
    categories = ["direction", "speed_comparison", "distance_change"]

    class Options(Strict):
        n_videos: int = Field(default=12, ge=1)
        seed: int = 20261124
        data_dir: str | None = None
        frames: FramePolicy = FramePolicy(nframes=16)

    @property
    def folder(self) -> Path:
        if self.options.data_dir:
            return Path(self.options.data_dir)
        return cache_root() / f"motion-basics-v{self.version}-n{self.options.n_videos}-s{self.options.seed}"

    def verify(self) -> list[str]:
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.is_file():
            return [f"{manifest_path}: missing (the data is built on first use)"]
        files = json.loads(manifest_path.read_text())["files"]
        return checksum_problems(self.folder, files, f"delete {self.folder} to rebuild the motion-basics data")

    @cached_property
    def manifest(self) -> dict:
        """Build the data on first use; verify every checksum once per benchmark object."""
        if not (self.folder / "manifest.json").is_file():
            build_dataset(self.folder, self.options.n_videos, self.options.seed)
        problems = self.verify()
        if problems:
            raise RuntimeError("\n".join(problems))
        return json.loads((self.folder / "manifest.json").read_text())

    def dataset_revision(self) -> str:
        return hashlib.sha256(json.dumps(self.manifest["files"], sort_keys=True).encode()).hexdigest()[:16]

    def samples(self):
        self.manifest  # noqa: B018 - builds and verifies the data on first use
        for row in json.loads((self.folder / "samples.json").read_text()):
            yield Sample(
                sample_id=row["sample_id"], video_id=row["video_id"], category=row["category"],
                question=row["question"], options=row["options"], answer=row["answer"],
                media=[str(self.folder / row["video"])],
            )  # fmt: skip

    def build_request(self, sample: Sample) -> Request:
        question = f"Question: {sample.question}\n" + "\n".join(sample.options) + "\nAnswer: "
        content = [VideoPart(video=sample.media[0], frames=self.options.frames), TextPart(text=PROMPT + question)]
        return self.mcq_request(sample, [Message(content=content)], GenerationSettings(max_new_tokens=16))


@hookimpl
def register_benchmarks(register):
    register(
        "motion-basics",
        MotionBasics,
        description="36 rendered questions on 2D disc motion with exact answers; built locally on first use.",
    )
