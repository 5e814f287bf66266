"""What 4D-Bench QA and captioning share: the options, the data paths and the 18 frames of a request.

Every official script (``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``) shows a model views 1, 8 and 16 of the
object, 6 frames each, in view-major order (view 1's frames, then view 8's, then view 16's). The family (option
``family``, :mod:`.families`) picks the frame sampler, the prompt variant, the message layout and ``max_new_tokens``
of its script; ``sampler`` overrides the sampler:

* ``"stride"`` (sampler A, :mod:`.frames`): the frames are decoded here into PNGs under ``frames_cache`` and sent as
  18 image parts. A view that cannot be read is sent as its video part instead, so the harness records the sample as
  an error naming the file, exactly as for the other sampler.
* ``"linspace"`` (sampler B): three video parts with ``FramePolicy(nframes=6, sampler="floor")``, decoded by the
  harness.

``frames_per_view=0`` gives a blind (text-only) run.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from vdpm_harness import FramePolicy, ImagePart, Message, Sample, Strict, TextPart, VideoPart, cache_root

from .data import pull_dataset
from .families import Family, FamilyName
from .frames import stride_frames


class ViewOptions(Strict):
    """Options both benchmarks share. ``sampler=None`` takes the family's sampler."""

    data_dir: str | None = None
    family: FamilyName = "qwen2-vl"
    sampler: Literal["stride", "linspace"] | None = None
    views: list[int] = Field(default_factory=lambda: [1, 8, 16], min_length=1)
    frames_per_view: int = Field(default=6, ge=0)
    frames_cache: str | None = None


class MultiView:
    """Data paths, the family table and the 18-frame media parts of a 4D-Bench request."""

    families: ClassVar[dict[str, Family]]
    bench_id: ClassVar[str]

    @property
    def root(self) -> Path:
        return Path(self.options.data_dir) if self.options.data_dir else cache_root() / "4d-bench"

    def resolve(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.root / path

    @property
    def family(self) -> Family:
        return self.families[self.options.family]

    @property
    def sampler(self) -> str:
        return self.options.sampler or self.family.sampler

    @property
    def frames_cache(self) -> Path:
        return Path(self.options.frames_cache) if self.options.frames_cache else cache_root() / "4d-bench-frames"

    def view_videos(self, uid: str) -> list[str]:
        folder = self.resolve(self.options.video_dir) / uid
        return [str(folder / f"view_{view}_rgb_white_bg.mp4") for view in self.options.views]

    def media_parts(self, sample: Sample) -> list[ImagePart | VideoPart]:
        """The frames of every view, view-major: image parts (sampler A) or video parts (sampler B)."""
        count = self.options.frames_per_view
        if count == 0:
            return []
        from vdpm_harness import VideoError

        policy = FramePolicy(nframes=count, sampler="floor")  # sampler B: np.linspace(0, T - 1, count, dtype=int)
        parts: list[ImagePart | VideoPart] = []
        for video in sample.media:
            if self.sampler == "linspace":
                parts.append(VideoPart(video=video, frames=policy))
                continue
            try:
                parts += [ImagePart(image=str(p)) for p in stride_frames(Path(video), count, self.frames_cache)]
            except VideoError:
                # Handed to the harness as a video: it probes it and records the sample as an error naming the file
                # (sampler B asks for the last announced frame, so a truncated file fails there as well).
                parts.append(VideoPart(video=video, frames=policy))
        return parts

    def messages(self, sample: Sample, text: str) -> list[Message]:
        """``text`` with the frames, in the family's order, after its system message if it has one."""
        media = self.media_parts(sample)
        prompt = TextPart(text=text)
        user = [prompt, *media] if self.family.text_first else [*media, prompt]
        system = [Message(role="system", content=[TextPart(text=self.family.system)])] if self.family.system else []
        return [*system, Message(content=user)]

    def missing_videos(self, uids) -> list[str]:
        return [f"{video}: missing" for uid in uids for video in self.view_videos(uid) if not Path(video).is_file()]

    def pull(self, to: Path) -> None:
        pull_dataset(to)
