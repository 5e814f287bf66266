"""Benchmark of the ``synth-scenes`` CPU renderer: frames per second on one core, with and without encoding.

The same scenes (the generator's scenes ``0 .. --scenes - 1`` of ``--seed``) are rendered by:

* the batched z-buffer of ``render.rasterize`` (the renderer the generator uses);
* a naive baseline that rasterises one triangle at a time (numpy over the triangle's bounding box, a float32
  z-buffer updated per triangle), with the same inside and depth arithmetic, so its frames must be identical;
* the background alone (ground plane, fog and sky, no triangles), to show what the triangles cost.

Then the generator's full path: rendering streamed into the core's ``write_video`` (libx264, the ``--preset``),
and the whole ``SynthScenes.run`` (rendering, encoding, ``.npz`` tracks, checksums). The process is pinned to one
core and BLAS to one thread, so every figure is per core. Prints the machine and a markdown table, then how many
distinct files repeated encodes of the same frames give (1: encoding is deterministic). Usage::

    .venv/bin/python perf/bench_synth_render.py                       # 320x240, 15 fps, 3 scenes of 6 s
    .venv/bin/python perf/bench_synth_render.py --size 640x480 --scenes 2
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one core means one thread

import argparse  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from vdpm_harness.repro import cpu_model  # noqa: E402
from vdpm_harness.video import write_video  # noqa: E402
from vdpm_harness_plugins.generators.scenes.synth import render as sr  # noqa: E402
from vdpm_harness_plugins.generators.scenes.synth.generator import SynthScenes  # noqa: E402
from vdpm_harness_plugins.generators.scenes.synth.rendering import SceneRendering, render_frames  # noqa: E402


def rasterize_loop(xy: np.ndarray, inv_depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Baseline: one triangle at a time over its pixel bounding box; a pixel takes the triangle when it is inside
    and strictly nearer (float32 ``1/z``) than what the z-buffer holds, so ties keep the lower index, as in
    ``sr.rasterize``."""
    owner = np.full((height, width), -1, dtype=np.int64)
    nearest = np.zeros((height, width), dtype=np.float32)  # 1/z; 0 = nothing drawn
    for t in range(len(xy)):
        x, y = xy[t, :, 0], xy[t, :, 1]
        x0, x1 = max(math.ceil(x.min() - 0.5), 0), min(math.floor(x.max() - 0.5), width - 1)
        y0, y1 = max(math.ceil(y.min() - 0.5), 0), min(math.floor(y.max() - 0.5), height - 1)
        area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
        if x0 > x1 or y0 > y1 or abs(area) <= 1e-12:
            continue
        u, v = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        w0 = (y[1] - y[2]) / area * u + (x[2] - x[1]) / area * v + (x[1] * y[2] - x[2] * y[1]) / area
        w1 = (y[2] - y[0]) / area * u + (x[0] - x[2]) / area * v + (x[2] * y[0] - x[0] * y[2]) / area
        inside = (w0 >= -sr._EDGE_EPS) & (w1 >= -sr._EDGE_EPS) & (w0 + w1 <= 1 + sr._EDGE_EPS)
        iz = inv_depth[t]
        inv_z = np.maximum(iz[2] + w0 * (iz[0] - iz[2]) + w1 * (iz[1] - iz[2]), 1e-12).astype(np.float32)
        window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        take = inside & (inv_z > nearest[window])
        nearest[window][take] = inv_z[take]
        owner[window][take] = t
    return owner.ravel()


def machine() -> str:
    model = cpu_model()
    import av

    return (f"{os.cpu_count()} cores, {model}; Python {platform.python_version()}, numpy {np.__version__}, "
            f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")  # fmt: skip


def render_all(scenes, args, **kwargs) -> tuple[float, list[np.ndarray]]:
    """Seconds spent rendering every frame of ``scenes`` (as ``SceneRendering`` measures it) and the frames."""
    seconds, frames = 0.0, []
    for scene in scenes:
        rendering = SceneRendering(scene, args.width, args.height, args.fps, args.duration, **kwargs)
        frames += list(rendering.frames())
        seconds += rendering.render_seconds
    return seconds, frames


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT (even)")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per scene")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="medium", help="x264 preset (the generator's default)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median); the baseline runs once")
    args = parser.parse_args()
    args.width, args.height = (int(v) for v in args.size.split("x"))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    options = {"width": args.width, "height": args.height, "fps": args.fps, "duration": args.duration,
               "n_videos": args.scenes, "preset": args.preset}  # fmt: skip
    generator = SynthScenes(options)
    scenes = [generator.scene(args.seed, i) for i in range(args.scenes)]
    n_frames = args.scenes * max(2, round(args.duration * args.fps))
    n_triangles = [len(SceneRendering(s, 16, 16, 1, 1).local) for s in scenes]
    print(f"Machine: {machine()}; pinned to one core")
    print(
        f"Scenes: {args.scenes} of seed {args.seed} ({', '.join(s.camera.kind for s in scenes)} camera; "
        f"{sum(len(s.objects) for s in scenes)} objects, {min(n_triangles)}-{max(n_triangles)} triangles per "
        f"scene), {args.width}x{args.height}, {n_frames} frames; median of {args.repeats} runs\n"
    )

    rows = []
    batched = median(lambda: render_all(scenes, args)[0], args.repeats)
    rows.append(("render, batched z-buffer (`rasterize`, the generator's)", batched))
    loop_seconds, loop_frames = render_all(scenes, args, rasterizer=rasterize_loop)
    identical = all(np.array_equal(a, b) for a, b in zip(render_all(scenes, args)[1], loop_frames))
    rows.append((f"render, per-triangle loop baseline (frames identical: {'yes' if identical else 'NO'})",
                 loop_seconds))  # fmt: skip

    def background_only() -> float:
        start = time.perf_counter()
        for scene in scenes:
            rendering = SceneRendering(scene, args.width, args.height, args.fps, args.duration)
            for pose in rendering.poses:
                rendering.renderer.background(pose)
        return time.perf_counter() - start

    rows.append(("background only (ground, fog, sky)", median(background_only, args.repeats)))

    with tempfile.TemporaryDirectory() as folder:

        def whole_run() -> float:
            start = time.perf_counter()
            generator.run(Path(folder) / "run", seed=args.seed)
            return time.perf_counter() - start

        def render_and_encode() -> float:
            start = time.perf_counter()
            for i, scene in enumerate(scenes):
                rendering = SceneRendering(scene, args.width, args.height, args.fps, args.duration)
                write_video(Path(folder) / f"{i}.mp4", rendering.frames(), args.fps, preset=args.preset)
            return time.perf_counter() - start

        rows.append((f"render + encode (`write_video`, x264 {args.preset})", median(render_and_encode, args.repeats)))
        rows.append(("`SynthScenes.run` (render, encode, tracks, manifest)", median(whole_run, args.repeats)))

    print("| variant | ms per frame | frames/s per core | vs. batched render |\n|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {1000 * seconds / n_frames:.2f} | {n_frames / seconds:.0f} | {seconds / batched:.2f}x |")
    check_determinism(scenes, args, encodes=5)


def check_determinism(scenes, args, encodes: int) -> None:
    """Encode each scene's frames ``encodes`` times in this process with ``write_video``; print how many distinct
    files that gives (1 means deterministic) and their size."""
    print(f"\nDeterminism: each scene's frames encoded {encodes} times in one process (distinct files, size):\n")
    print("| scene | `write_video` |\n|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for i, scene in enumerate(scenes):
            frames, _ = render_frames(scene, args.width, args.height, args.fps, args.duration)
            digests = set()
            for _ in range(encodes):
                path = Path(folder) / "v.mp4"
                write_video(path, frames, args.fps, preset=args.preset)
                digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
            print(f"| {i} ({scene.camera.kind}) | {len(digests)} of {encodes}, {path.stat().st_size / 1000:.0f} kB |")


if __name__ == "__main__":
    main()
