"""Video decoding in the core: probe a file, choose frame indices, decode and resize them, write test videos.

The harness decodes videos itself and hands models frames plus metadata (``DecodedVideo.metadata()``), never a path,
so every model sees exactly the frames that were logged. Two backends sit behind one interface:

* ``"pyav"`` (PyAV, a hard dependency): demuxes the packet table, then decodes forward from the keyframe before each
  wanted frame, seeking only when a keyframe lies between the last decoded frame and the next wanted one. It never
  decodes more frames than plain sequential decoding and skips whole GOPs that hold no wanted frame.
* ``"decord"`` (decord2, optional): ``VideoReader.get_batch`` in chunks.

Both convert YUV to RGB with FFmpeg's defaults and resize with the same Pillow bicubic filter, so for the same file
and indices they return identical pixels (tested on H.264). ``default_backend()`` is PyAV: with keyframe seeking it
measured as fast as decord2 or slightly faster (``docs/PERFORMANCE.md``) and it is always installed;
``VDPM_VIDEO_BACKEND`` overrides it.

Frame indices always refer to frames in presentation order, counted from 0.
"""

from __future__ import annotations

import bisect
import importlib.util
import itertools
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np

from .records import FramePolicy

#: Backends in order of preference for ``default_backend`` (PyAV measured at least as fast; docs/PERFORMANCE.md).
BACKENDS = ("pyav", "decord")
_MODULES = {"pyav": "av", "decord": "decord"}
#: Frames fetched per ``get_batch`` call with decord, to bound memory when many frames are sampled.
_DECORD_CHUNK = 16


class VideoError(Exception):
    """A video could not be read: ``path`` names the file, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(os.fspath(path), reason)  # both in args, so the error pickles across processes
        self.path = os.fspath(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class VideoInfo:
    """Metadata of a video stream: frame count, native frame rate, duration in seconds and frame size."""

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int


@dataclass
class DecodedVideo:
    """Frames decoded from one video, with what a processor needs to place them in time.

    ``frames`` is uint8 ``(T, H, W, 3)`` RGB after resizing; ``indices`` are the source frame indices (they may
    repeat when a video has fewer frames than asked); ``timestamps`` are ``index / native_fps`` in seconds;
    ``width``/``height`` are the source size; ``backend`` is the decoder and its version, e.g. ``"pyav 18.1.0"``.
    """

    frames: np.ndarray
    indices: list[int]
    timestamps: list[float]
    native_fps: float
    total_frames: int
    width: int
    height: int
    backend: str

    def metadata(self) -> dict:
        """The ``video_metadata`` dict transformers' video processors accept for pre-sampled frames.

        Passing the true native fps and the sampled indices matters: without them Qwen2.5-VL assumes 24 fps and
        computes wrong temporal position ids (measured with transformers 5.x: ``second_per_grid_ts`` comes from the
        ``fps`` entry of this metadata, default 24).
        """
        return {
            "total_num_frames": self.total_frames,
            "fps": self.native_fps,
            "frames_indices": list(self.indices),
            "duration": self.total_frames / self.native_fps,
        }


# --- frame indices and sizes -------------------------------------------------------------------------------------


def _uniform(total: int, count: int, sampler: str) -> list[int]:
    """``count`` indices spread over ``[0, total - 1]``: ``linspace`` rounded (half to even) or floored."""
    points = np.linspace(0, total - 1, count)
    points = np.round(points) if sampler == "round" else np.floor(points)
    return [int(i) for i in points]


def frame_indices(policy: FramePolicy, info: VideoInfo) -> list[int]:
    """The source frame indices ``policy`` samples from a video described by ``info``, in ascending order.

    * ``nframes``: ``linspace(0, N - 1, nframes)``, rounded (``sampler="round"``, qwen-vl-utils) or floored
      (``sampler="floor"``, VLMEvalKit's ``np.linspace(..., dtype=int)``); ``nframes = 0`` gives ``[]`` (blind).
    * ``fps``: VLMEvalKit's rule ``int(i * native_fps / fps)`` for ``i < int(N / native_fps * fps)``; more than
      ``max_frames`` of them are replaced by ``max_frames`` spread over the whole video, fewer than ``min_frames`` by
      ``min_frames`` spread over it (both rounded ``linspace``).

    Indices repeat when a video has fewer frames than asked (e.g. 8 frames from a 5-frame clip); this is not an
    error, so every sample of a benchmark gets the same number of frames.
    """
    total = info.num_frames
    if policy.nframes is not None:
        return _uniform(total, policy.nframes, policy.sampler) if policy.nframes else []
    count = int(total / info.fps * policy.fps)
    indices = [int(i * info.fps / policy.fps) for i in range(count)]
    if policy.max_frames and len(indices) > policy.max_frames:
        return _uniform(total, policy.max_frames, "round")
    if len(indices) < policy.min_frames:
        return _uniform(total, policy.min_frames, "round")
    return indices


def target_size(width: int, height: int, policy: FramePolicy) -> tuple[int, int]:
    """The ``(width, height)`` frames are resized to under ``policy``'s pixel limits.

    The aspect ratio is kept: a frame larger than ``max_pixels`` is scaled down, one smaller than ``min_pixels`` up.
    Each side is then rounded to the nearest multiple of ``size_multiple`` (at least one multiple). As in Qwen's
    ``smart_resize``, when rounding pushed the area over ``max_pixels`` the sides are floored instead (and ceiled
    when it fell under ``min_pixels``); ``max_pixels`` wins, unless even one multiple per side exceeds it. With no
    limits and ``size_multiple = 1`` the native size is kept.
    """
    m = policy.size_multiple
    area = width * height
    scale = 1.0
    if policy.max_pixels and area > policy.max_pixels:
        scale = math.sqrt(policy.max_pixels / area)
    elif policy.min_pixels and area < policy.min_pixels:
        scale = math.sqrt(policy.min_pixels / area)
    w, h = width * scale, height * scale

    def snap(rounding) -> tuple[int, int]:
        return max(m, rounding(w / m) * m), max(m, rounding(h / m) * m)

    size = snap(round)
    if policy.min_pixels and size[0] * size[1] < policy.min_pixels:
        size = snap(math.ceil)
    if policy.max_pixels and size[0] * size[1] > policy.max_pixels:
        size = snap(math.floor)
    return size


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB frame to ``size = (width, height)`` with Pillow's bicubic filter; unchanged if already there."""
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


# --- backends ------------------------------------------------------------------------------------------------------


def available_backends() -> list[str]:
    """Installed backends, in order of preference (found without importing them)."""
    return [name for name in BACKENDS if importlib.util.find_spec(_MODULES[name]) is not None]


def default_backend() -> str:
    """``VDPM_VIDEO_BACKEND`` if set, else the first installed backend of ``BACKENDS`` (PyAV, then decord2)."""
    chosen = os.environ.get("VDPM_VIDEO_BACKEND")
    if chosen:
        return _check_backend(chosen)
    available = available_backends()
    if not available:
        raise RuntimeError("no video backend is installed: install 'av' (PyAV) or 'decord2'")
    return available[0]


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown video backend {name!r}; known: {', '.join(BACKENDS)}")
    if name not in available_backends():
        raise ValueError(f"video backend {name!r} is not installed (module {_MODULES[name]!r} not found)")
    return name


@cache
def backend_version(name: str) -> str:
    """The version of a backend's package, e.g. ``"18.1.0"`` for PyAV 18.1 or ``"3.4.0"`` for decord2 3.4."""
    module = __import__(_MODULES[_check_backend(name)])
    return str(module.__version__)


class _PyAVReader:
    """Reads frames with PyAV.

    ``seek=True`` (the default) seeks to the keyframe before a wanted frame whenever that keyframe lies beyond the
    last decoded frame, so GOPs without wanted frames are skipped; ``seek=False`` decodes sequentially from the
    start (kept for the benchmark's comparison). Frames are identified by their presentation timestamp in the
    demuxed packet table, so both modes return the same frames.
    """

    name = "pyav"

    @staticmethod
    def errors() -> tuple[type[Exception], ...]:
        import av

        return (av.FFmpegError,)

    def __init__(self, path: str, seek: bool = True):
        import av

        self.path = path
        self.seek = seek
        self.container = av.open(path)
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(path, "no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"

    def close(self) -> None:
        self.container.close()

    def info(self) -> VideoInfo:
        """Container metadata, without decoding. When the container stores no frame count (Matroska, WebM),
        the count is ``round(duration * fps)``, which may be off by one for streams of irregular timing."""
        stream = self.stream
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise VideoError(self.path, "unknown frame rate")
        fps = float(rate)
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif self.container.duration is not None:
            duration = self.container.duration / 1_000_000  # AV_TIME_BASE: microseconds
        else:
            duration = stream.frames / fps
        num_frames = stream.frames or round(duration * fps)
        if num_frames <= 0:
            raise VideoError(self.path, "the video stream has zero frames")
        ctx = stream.codec_context
        return VideoInfo(self.path, num_frames, fps, duration, ctx.width, ctx.height)

    def _packet_table(self) -> tuple[list[int], list[int]]:
        """Presentation timestamps of all frames in presentation order, and those of the keyframes."""
        pts, keys = [], []
        for packet in self.container.demux(self.stream):
            if packet.pts is not None:
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        pts.sort()
        keys.sort()
        return pts, keys or pts[:1]

    def read(self, indices: list[int]) -> Iterator[np.ndarray]:
        """Yield the RGB frames at ``indices`` (ascending, unique)."""
        pts, keys = self._packet_table()
        decoded = None  # iterator over decoded frames, positioned after the last one taken
        last_pts = None
        for index in indices:
            if index >= len(pts):
                raise VideoError(self.path, f"frame index {index} is beyond the end ({len(pts)} frames)")
            target = pts[index]
            keyframe = keys[max(bisect.bisect_right(keys, target) - 1, 0)]
            if decoded is None or (self.seek and keyframe > last_pts):
                start = keyframe if self.seek else keys[0]
                self.container.seek(start, stream=self.stream, backward=True)
                decoded = self.container.decode(self.stream)
            for frame in decoded:
                last_pts = frame.pts
                if frame.pts == target:
                    yield frame.to_ndarray(format="rgb24")
                    break
                if frame.pts > target:
                    raise VideoError(self.path, f"frame {index} (pts {target}) was not produced by the decoder")
            else:
                raise VideoError(self.path, f"decoding ended before frame index {index}")


class _DecordReader:
    """Reads frames with decord2's ``VideoReader`` (its automatic thread count), ``get_batch`` in chunks.

    decord2 3.4 fails on some small frame widths (16, 32, 48, 96, 144 pixels: it takes the padded line size for 4
    channels); such files raise :class:`VideoError`, and PyAV reads them.
    """

    name = "decord"

    @staticmethod
    def errors() -> tuple[type[Exception], ...]:
        from decord._ffi.base import DECORDError, DECORDLimitReachedError

        return (RuntimeError, DECORDError, DECORDLimitReachedError)  # RuntimeError: files it cannot open

    def __init__(self, path: str):
        import decord

        self.path = path
        self.reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=0)

    def close(self) -> None:
        del self.reader

    def info(self) -> VideoInfo:
        """Frame count and fps from decord's index; the size from the first decoded frame (decord exposes no
        other way to get it)."""
        num_frames = len(self.reader)
        if num_frames <= 0:
            raise VideoError(self.path, "the video stream has zero frames")
        fps = float(self.reader.get_avg_fps())
        height, width = self.reader.next().shape[:2]
        self.reader.seek(0)
        return VideoInfo(self.path, num_frames, fps, num_frames / fps, width, height)

    def read(self, indices: list[int]) -> Iterator[np.ndarray]:
        """Yield the RGB frames at ``indices`` (ascending, unique)."""
        if indices and indices[-1] >= len(self.reader):
            raise VideoError(self.path, f"frame index {indices[-1]} is beyond the end ({len(self.reader)} frames)")
        for start in range(0, len(indices), _DECORD_CHUNK):
            yield from self.reader.get_batch(indices[start : start + _DECORD_CHUNK]).asnumpy()


_READERS = {"pyav": _PyAVReader, "decord": _DecordReader}


@contextmanager
def _open(path, backend: str | None):
    """Open ``path`` with a backend's reader; backend errors become :class:`VideoError` naming the file."""
    path = os.fspath(path)
    cls = _READERS[_check_backend(backend) if backend else default_backend()]
    if not os.path.isfile(path):
        raise VideoError(path, "file not found")
    reader = None
    try:
        reader = cls(path)
        yield reader
    except cls.errors() as exc:
        raise VideoError(path, f"cannot open or decode ({type(exc).__name__}: {exc})") from exc
    finally:
        if reader is not None:
            reader.close()


def probe(path, backend: str | None = None) -> VideoInfo:
    """Read a video's metadata cheaply (see the readers' ``info`` for how each backend gets it).

    Raises :class:`VideoError` for a missing, unreadable or empty file, or one without a video stream.
    """
    with _open(path, backend) as reader:
        return reader.info()


def decode(path, policy: FramePolicy, backend: str | None = None) -> DecodedVideo:
    """Probe ``path``, sample ``frame_indices(policy, ...)``, decode them and resize to ``target_size``.

    A blind policy (``nframes = 0``) returns an empty ``(0, h, w, 3)`` array without decoding pixels. Raises
    :class:`VideoError` when the file cannot be read.
    """
    with _open(path, backend) as reader:
        info = reader.info()
        indices = frame_indices(policy, info)
        size = target_size(info.width, info.height, policy)
        frames = np.empty((len(indices), size[1], size[0], 3), dtype=np.uint8)
        slots = defaultdict(list)  # source index -> positions in the output (several when indices repeat)
        for position, index in enumerate(indices):
            slots[index].append(position)
        if slots:
            wanted = sorted(slots)
            for index, rgb in zip(wanted, reader.read(wanted), strict=True):
                frames[slots[index]] = _resize(rgb, size)
        name = reader.name
    return DecodedVideo(
        frames=frames,
        indices=indices,
        timestamps=[index / info.fps for index in indices],
        native_fps=info.fps,
        total_frames=info.num_frames,
        width=info.width,
        height=info.height,
        backend=f"{name} {backend_version(name)}",
    )


# --- writing -------------------------------------------------------------------------------------------------------


def write_video(
    path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 18,
    preset: str = "medium",
    gop: int | None = None,
) -> None:
    """Encode RGB uint8 frames (an array ``(T, H, W, 3)`` or an iterable of ``(H, W, 3)``) as H.264 with PyAV.

    Uses the libx264 bundled in PyAV's wheel, ``yuv420p`` (so width and height must be even), quality ``crf``,
    x264 ``preset``, and ``gop`` frames between keyframes (``None``: libx264's default, 250). The container format
    follows the file extension (``.mp4``, ``.mkv``, ...). Encoding is deterministic: one encoder thread and
    FFmpeg's bitexact flag, so the same frames give a byte-identical file with the same PyAV build.
    """
    import av

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"write_video({os.fspath(path)!r}): no frames")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"write_video: frames must be (H, W, 3) RGB, got shape {first.shape}")
    height, width = first.shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"write_video: H.264 yuv420p needs even width and height, got {width}x{height}")
    rate = Fraction(fps).limit_denominator(100_000)
    with av.open(os.fspath(path), "w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        # mbtree=0: x264's macroblock-tree rate control made the output differ from run to run on AVX-512 machines
        stream.codec_context.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        if gop:
            stream.codec_context.gop_size = gop
        for i, frame in enumerate(itertools.chain([first], frames)):
            frame = np.asarray(frame)
            if frame.shape != first.shape or frame.dtype != np.uint8:
                raise ValueError(f"write_video: frame {i} is {frame.dtype} {frame.shape}, expected uint8 {first.shape}")
            # convert to the encoder's format here: left to the encoder, the conversion made x264's output vary
            # from run to run (seen with PyAV 18.1 and presets other than ultrafast)
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
                format="yuv420p"
            )
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
