"""Benchmark of CPU video decoding: PyAV (sequential and keyframe seeking), decord2, and the Prefetcher.

One run builds synthetic H.264 test videos with ``write_video`` (a panning texture with moving bands, so motion
compensation and B-frames are exercised), then measures decoding 32 uniformly sampled frames resized to the
Qwen2.5-VL budget (``max_pixels = 768*28*28``, sides multiple of 28):

* in-process time per video (median of ``--repeats``, the file opened each time) for each backend variant;
* throughput of ``Prefetcher(decode_job)`` with 0, 1 and 2 workers over ``--videos`` copies of the first video
  (pool start-up included).

It prints the machine and a markdown table. Usage::

    .venv/bin/python perf/bench_video_decode.py                      # 1280x720, 30 fps, 20 s and 60 s
    .venv/bin/python perf/bench_video_decode.py --durations 60 --gop 60 --videos 0   # short GOPs, no Prefetcher
    .venv/bin/python perf/bench_video_decode.py --size 640x360 --durations 10
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from vdpm_harness import video
from vdpm_harness.prefetch import Prefetcher, decode_job
from vdpm_harness.records import FramePolicy
from vdpm_harness.repro import cpu_model

POLICY = FramePolicy(nframes=32, max_pixels=768 * 28 * 28, size_multiple=28)


def synthetic_frames(width: int, height: int, count: int):
    """A textured background panning 3 px per frame, bright bands sweeping down, and changing grain (so the
    bitrate is that of a camera video, a few Mbit/s at 720p, rather than that of a clean animation)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height // 8 + 1, (width + 3 * count) // 8 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)[:height] // 2 + 64
    grain = rng.integers(0, 16, (5, height, width, 3), dtype=np.uint8)
    rows = np.arange(height)
    for i in range(count):
        frame = texture[:, 3 * i : 3 * i + width] + grain[i % len(grain)]
        frame[(rows + 4 * i) % 180 < 30] = 230
        yield frame


class SequentialPyAV(video._PyAVReader):
    """PyAV without keyframe seeking: decode every frame from the start (the comparison baseline)."""

    def __init__(self, path: str):
        super().__init__(path, seek=False)


def decode_with(variant: str, path: Path) -> video.DecodedVideo:
    if variant == "pyav (sequential)":
        with mock.patch.dict(video._READERS, pyav=SequentialPyAV):
            return video.decode(path, POLICY, "pyav")
    return video.decode(path, POLICY, variant.split()[0])


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    model = cpu_model()
    import av
    import PIL

    versions = [f"Python {platform.python_version()}", f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"]
    if "decord" in video.available_backends():
        versions.append(f"decord {video.backend_version('decord')}")
    versions += [f"numpy {np.__version__}", f"Pillow {PIL.__version__}"]
    return f"{os.cpu_count()} cores, {model}; " + ", ".join(versions)


def build_videos(folder: Path, args, width: int, height: int) -> list[Path]:
    paths = []
    for seconds in args.durations:
        path = folder / f"test_{width}x{height}_{seconds:g}s.mp4"
        count = round(seconds * args.fps)
        start = time.perf_counter()
        video.write_video(path, synthetic_frames(width, height, count), args.fps, preset=args.preset, gop=args.gop)
        mbps = path.stat().st_size * 8 / seconds / 1e6
        print(f"Built {path.name}: {count} frames, {mbps:.1f} Mbit/s, {time.perf_counter() - start:.1f} s to encode")
        paths.append(path)
    return paths


def time_backends(paths: list[Path], repeats: int) -> None:
    """One table row per variant: median seconds per video; checks that all variants give the same pixels."""
    info = video.probe(paths[0], "pyav")
    size = video.target_size(info.width, info.height, POLICY)
    print(
        f"Task: {POLICY.nframes} uniformly sampled frames -> {size[0]}x{size[1]} (Pillow bicubic), "
        f"median of {repeats} runs, file opened each time; default backend: {video.default_backend()}"
    )
    variants = ["pyav (sequential)", "pyav (keyframe seek)"]
    if "decord" in video.available_backends():
        variants.append("decord")
    reference = decode_with(variants[0], paths[0]).frames
    header = " | ".join(path.stem.split("_")[-1] + " video" for path in paths)
    print(f"\n| backend | {header} |\n|---|" + "---|" * len(paths))
    for variant in variants:
        assert np.array_equal(decode_with(variant, paths[0]).frames, reference), f"{variant} differs"
        cells = [f"{median_seconds(lambda v=variant, p=p: decode_with(v, p), repeats):.2f} s" for p in paths]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    native = np.stack(list(synthetic_frames(info.width, info.height, POLICY.nframes)))
    resize = median_seconds(lambda: [video._resize(f, size) for f in native], repeats)
    print(
        f"\nAll variants return identical pixels {reference.shape}; "
        f"the resize alone takes {resize:.2f} s of each figure."
    )


def time_prefetcher(path: Path, folder: Path, count: int, repeats: int) -> None:
    """Throughput of Prefetcher(decode_job) with 0, 1, 2 workers over ``count`` copies of ``path``."""
    jobs = []
    for i in range(count):
        copy = folder / f"copy_{i:02d}.mp4"
        shutil.copyfile(path, copy)
        jobs.append((str(copy), POLICY, None))
    print(
        f"\nPrefetcher over {count} copies of {path.name} "
        f"(default backend, depth 2 x workers, pool start-up included, median of {repeats} runs):\n"
    )
    print("| workers | total | videos/s |\n|---|---|---|")

    def run(workers: int) -> None:
        with Prefetcher(decode_job, workers=workers) as prefetcher:
            for _, result in prefetcher.map(jobs):
                assert not isinstance(result, Exception), result

    for workers in (0, 1, 2):
        total = median_seconds(lambda w=workers: run(w), repeats)
        print(f"| {workers} | {total:.1f} s | {count / total:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the test videos (even)")
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--durations", type=float, nargs="+", default=[20, 60], help="seconds, one video each")
    parser.add_argument("--gop", type=int, default=None, help="keyframe interval (default: libx264's 250)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the test videos")
    parser.add_argument("--repeats", type=int, default=5, help="runs per decoding figure")
    parser.add_argument("--prefetch-repeats", type=int, default=3, help="runs per Prefetcher figure")
    parser.add_argument("--videos", type=int, default=12, help="copies of the first video for the Prefetcher (0: skip)")
    parser.add_argument("--keep", type=Path, default=None, help="write the videos here and keep them")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_video_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    try:
        paths = build_videos(folder, args, width, height)
        time_backends(paths, args.repeats)
        if args.videos:
            time_prefetcher(paths[0], folder, args.videos, args.prefetch_repeats)
    finally:
        if args.keep is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
