"""Sampler A of the official 4D-Bench scripts: frames ``i * (T // 6)`` of each view, decoded into a PNG cache.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``, ``4D_Object_Question_Answering/eval_code_example/myutils/
utils.py``, ``get_video_uniform_frames``: ``T`` is OpenCV's ``CAP_PROP_FRAME_COUNT``, the step ``T // 6``, frames
``i * step`` for ``i`` in 0..5 (so the last frame is never taken), read by seeking ``CAP_PROP_POS_FRAMES``; a video
with fewer than 6 frames gives none. The GPT, Gemini, Qwen2-VL, VideoChat2 and MiniGPT4-Video scripts use it. The
harness's ``FramePolicy`` has no such rule, so the frames are decoded here (PyAV, counting frames in presentation
order, where OpenCV seeking may be off by some frames for some codecs) into lossless PNGs and sent as image parts.

Sampler B (decord ``np.linspace(0, T - 1, 6, dtype=int)``; InternVL2, LLaVA-Video, LLaVA-OneVision) is the core's
``FramePolicy(nframes=6, sampler="floor")``.
"""

from __future__ import annotations

import os
from pathlib import Path

from vdpm_harness import stable_hash


def stride_indices(total: int, count: int) -> list[int]:
    """Sampler A (``myutils.get_video_uniform_frames``): frames ``i * (total // count)``, none if ``total < count``."""
    if total < count:
        return []
    step = total // count
    return [i * step for i in range(count)]


def stride_frames(video: Path, count: int, cache: Path) -> list[Path]:
    """Sampler A's frames of ``video`` as PNG files under ``cache`` (decoded once; reused while the file is unchanged).

    The frame count is the container's (what OpenCV's ``CAP_PROP_FRAME_COUNT`` reads); frames are counted in
    presentation order. Raises :class:`vdpm_harness.video.VideoError` naming the file when it cannot be read.
    """
    from vdpm_harness import VideoError, probe

    info = probe(video)
    indices = stride_indices(info.num_frames, count)
    stat = video.stat()
    folder = cache / video.parent.name / stable_hash([str(video.resolve()), stat.st_size, stat.st_mtime_ns], 12)
    paths = {index: folder / f"{video.stem}_frame_{index:05d}.png" for index in indices}
    wanted = {index for index, path in paths.items() if not path.is_file()}
    if wanted:
        import av

        folder.mkdir(parents=True, exist_ok=True)
        try:
            with av.open(str(video)) as container:
                for position, frame in enumerate(container.decode(video=0)):
                    if position in wanted:
                        partial = folder / f".{paths[position].name}.{os.getpid()}"
                        frame.to_image().save(partial, format="PNG")
                        os.replace(partial, paths[position])
                        wanted.discard(position)
                    if not wanted:
                        break
        except av.FFmpegError as exc:
            raise VideoError(video, f"cannot decode ({type(exc).__name__}: {exc})") from exc
        if wanted:
            raise VideoError(video, f"decoding ended before frame {min(wanted)} ({info.num_frames} frames announced)")
    return [paths[index] for index in indices]
