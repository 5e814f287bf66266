"""The ``solid-color`` benchmark: one colour per clip, rendered on first use."""

import json
import os
from pathlib import Path

import numpy as np

from vdpm_harness import FramePolicy, MCQBenchmark, Message, Request, Sample, Strict, TextPart, VideoPart

COLORS = {"Red": (220, 30, 30), "Green": (30, 180, 60), "Blue": (30, 60, 220), "Yellow": (230, 220, 40)}


class SolidColor(MCQBenchmark):
    version = "1"
    categories = list(COLORS)

    class Options(Strict):
        data_dir: str | None = None

    @property
    def folder(self) -> Path:
        default = Path(os.environ.get("VDPM_CACHE", Path.home() / ".cache" / "vdpm-harness")) / "solid-color-v1"
        return Path(self.options.data_dir) if self.options.data_dir else default

    def _build(self) -> None:
        from vdpm_harness import write_video

        self.folder.mkdir(parents=True, exist_ok=True)
        rows = []
        names = list(COLORS)
        for i in range(6):
            color = names[i % len(names)]
            frames = np.broadcast_to(np.array(COLORS[color], np.uint8), (8, 64, 64, 3))
            write_video(self.folder / f"color_{i}.mp4", frames, fps=4)
            options = names[i % 2 :] + names[: i % 2]  # vary the answer's position
            rows.append(
                {
                    "id": str(i),
                    "video": f"color_{i}.mp4",
                    "options": options,
                    "answer": "ABCD"[options.index(color)],
                    "color": color,
                }
            )
        (self.folder / "samples.json").write_text(json.dumps(rows))

    def samples(self):
        if not (self.folder / "samples.json").is_file():
            self._build()
        for row in json.loads((self.folder / "samples.json").read_text()):
            yield Sample(
                sample_id=row["id"],
                video_id=row["video"],
                category=row["color"],
                question="Which colour fills the video?",
                options=[f"{'ABCD'[i]}. {o}" for i, o in enumerate(row["options"])],
                answer=row["answer"],
                media=[str(self.folder / row["video"])],
            )

    def build_request(self, sample: Sample) -> Request:
        text = f"Question: {sample.question}\n" + "\n".join(sample.options) + "\nAnswer with the letter only."
        content = [VideoPart(video=sample.media[0], frames=FramePolicy(nframes=4)), TextPart(text=text)]
        return self.mcq_request(sample, [Message(content=content)])
