"""Tests of vdpm_harness.video on small synthetic H.264 videos written with write_video."""

from __future__ import annotations

import hashlib
import math
import pickle
import wave

import av
import numpy as np
import pytest

from vdpm_harness import video
from vdpm_harness.records import FramePolicy
from vdpm_harness.video import (
    DecodedVideo,
    VideoError,
    VideoInfo,
    decode,
    frame_indices,
    probe,
    target_size,
    write_video,
)

BITS = 8  # frames carry their index as 8 black/white vertical stripes in the top half
W, H = 128, 64  # decord2 3.4 mis-sizes some small widths (96 gives 4 channels); real sizes are fine

needs_decord = pytest.mark.skipif("decord" not in video.available_backends(), reason="decord2 is not installed")
backends = pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])


def coded_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """A frame whose top half spells ``i`` in binary stripes; the bottom half is a moving gradient (motion)."""
    frame = np.zeros((height, width, 3), np.uint8)
    stripe = width // BITS
    for b in range(BITS):
        if i >> b & 1:
            frame[: height // 2, b * stripe : (b + 1) * stripe] = 255
    yy, xx = np.mgrid[0 : height - height // 2, 0:width]
    frame[height // 2 :] = ((xx * 3 + yy + 5 * i) % 256)[..., None].astype(np.uint8)
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index spelled by a (possibly resized) coded frame: the mean of the centre of each stripe."""
    height, width = frame.shape[:2]
    rows = frame[height // 8 : height * 3 // 8].mean(axis=(0, 2))
    centres = [int((b + 0.5) * width / BITS) for b in range(BITS)]
    return sum(1 << b for b, c in enumerate(centres) if rows[c] > 127)


def info(num_frames: int, fps: float = 30.0) -> VideoInfo:
    return VideoInfo("x.mp4", num_frames, fps, num_frames / fps, 640, 360)


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> str:
    """40 coded frames at 10 fps with a keyframe every 8 frames (so PyAV really seeks)."""
    path = tmp_path_factory.mktemp("video") / "coded.mp4"
    write_video(path, (coded_frame(i) for i in range(40)), 10, gop=8)
    return str(path)


# --- indices --------------------------------------------------------------------------------------------------------


def test_nframes_round_and_floor():
    assert frame_indices(FramePolicy(nframes=8, sampler="round"), info(100)) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert frame_indices(FramePolicy(nframes=8, sampler="floor"), info(100)) == [0, 14, 28, 42, 56, 70, 84, 99]
    assert frame_indices(FramePolicy(nframes=1), info(100)) == [0]


def test_nframes_short_video_repeats():
    assert frame_indices(FramePolicy(nframes=8), info(5)) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert frame_indices(FramePolicy(nframes=8, sampler="floor"), info(5)) == [0, 0, 1, 1, 2, 2, 3, 4]


def test_blind_policy_has_no_indices():
    assert frame_indices(FramePolicy(nframes=0), info(100)) == []


def test_fps_mode_vlmevalkit_rule():
    assert frame_indices(FramePolicy(fps=1), info(300)) == list(range(0, 300, 30))
    # 29.97 fps: int(i * 29.97) for i < int(300 / 29.97) = 10
    assert frame_indices(FramePolicy(fps=1), info(300, 30000 / 1001)) == [0, 29, 59, 89, 119, 149, 179, 209, 239, 269]
    assert frame_indices(FramePolicy(fps=2), info(45)) == [0, 15, 30]


def test_fps_mode_caps():
    # 20 frames at 2 fps exceed max_frames=8: 8 frames over the whole video instead
    assert frame_indices(FramePolicy(fps=2, max_frames=8), info(300)) == [0, 43, 85, 128, 171, 214, 256, 299]
    assert frame_indices(FramePolicy(fps=2, max_frames=20), info(300)) == list(range(0, 300, 15))
    # a 0.5 s clip at 1 fps gives int(0.5) = 0 frames: min_frames takes over
    assert frame_indices(FramePolicy(fps=1), info(15)) == [0]
    assert frame_indices(FramePolicy(fps=1, min_frames=4), info(15)) == [0, 5, 9, 14]


# --- sizes ----------------------------------------------------------------------------------------------------------


def test_target_size_hand_computed():
    qwen = FramePolicy(nframes=1, max_pixels=768 * 28 * 28, size_multiple=28)
    # 1280x720 * sqrt(602112 / 921600) = 1034.6 x 582.0 -> rounds to 1036 x 588 (too many pixels) -> floors
    assert target_size(1280, 720, qwen) == (1008, 560)
    assert target_size(1920, 1080, qwen) == (1008, 560)
    assert target_size(640, 360, qwen) == (644, 364)  # under the cap: only rounded to multiples of 28
    assert target_size(1280, 720, FramePolicy(nframes=1)) == (1280, 720)
    assert target_size(641, 361, FramePolicy(nframes=1)) == (641, 361)
    assert target_size(100, 50, FramePolicy(nframes=1, min_pixels=20000)) == (200, 100)
    assert target_size(10, 10, FramePolicy(nframes=1, size_multiple=28)) == (28, 28)


@pytest.mark.parametrize("multiple", [1, 2, 14, 28])
@pytest.mark.parametrize("max_pixels", [128 * 28 * 28, 768 * 28 * 28, 100_000])
def test_target_size_invariants(multiple, max_pixels):
    rng = np.random.default_rng(multiple * max_pixels)
    policy = FramePolicy(nframes=1, max_pixels=max_pixels, size_multiple=multiple)
    for width, height in rng.integers(64, 4000, size=(200, 2)):
        w, h = target_size(int(width), int(height), policy)
        assert w * h <= max_pixels
        assert w % multiple == 0 and h % multiple == 0
        scale = min(1.0, math.sqrt(max_pixels / (width * height)))
        ideal_w, ideal_h = width * scale, height * scale
        if min(ideal_w, ideal_h) >= multiple:  # otherwise the one-multiple minimum applies
            assert abs(w - ideal_w) <= multiple and abs(h - ideal_h) <= multiple
            assert abs(math.log((w / h) / (width / height))) < 2 * multiple / min(ideal_w, ideal_h)


# --- decoding -------------------------------------------------------------------------------------------------------


@backends
def test_probe(coded, backend):
    assert probe(coded, backend) == VideoInfo(coded, 40, 10.0, 4.0, W, H)


@backends
def test_every_frame_is_the_right_one(coded, backend):
    decoded = decode(coded, FramePolicy(nframes=40), backend)
    assert decoded.indices == list(range(40))
    assert [read_index(f) for f in decoded.frames] == list(range(40))
    # the moving half matches what was encoded, within codec tolerance
    for i, frame in enumerate(decoded.frames):
        assert np.abs(frame[H // 2 :].astype(int) - coded_frame(i)[H // 2 :]).mean() < 4


@backends
def test_sparse_and_repeated_indices(coded, backend):
    sparse = decode(coded, FramePolicy(nframes=5, sampler="floor"), backend)
    assert sparse.indices == [0, 9, 19, 29, 39]
    assert [read_index(f) for f in sparse.frames] == sparse.indices
    repeated = decode(coded, FramePolicy(nframes=60), backend)
    assert len(repeated.frames) == 60 and repeated.indices[:3] == [0, 1, 1]
    assert [read_index(f) for f in repeated.frames] == repeated.indices


@backends
def test_fps_policy_timestamps_and_metadata(coded, backend):
    decoded = decode(coded, FramePolicy(fps=2.5), backend)
    assert decoded.indices == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]
    assert [read_index(f) for f in decoded.frames] == decoded.indices
    assert decoded.timestamps == pytest.approx([i / 10 for i in decoded.indices])
    assert decoded.metadata() == {
        "total_num_frames": 40,
        "fps": 10.0,
        "frames_indices": decoded.indices,
        "duration": 4.0,
    }
    assert decoded.backend == f"{backend} {video.backend_version(backend)}"
    assert (decoded.width, decoded.height, decoded.native_fps, decoded.total_frames) == (W, H, 10.0, 40)


@backends
def test_resize_to_target_size(coded, backend):
    policy = FramePolicy(nframes=4, max_pixels=3000, size_multiple=14)
    decoded = decode(coded, policy, backend)
    w, h = target_size(W, H, policy)
    assert decoded.frames.shape == (4, h, w, 3) and decoded.frames.dtype == np.uint8
    assert [read_index(f) for f in decoded.frames] == decoded.indices


@backends
def test_blind_decode_has_no_frames(coded, backend, monkeypatch):
    def no_pixels(self, indices):
        raise AssertionError("a blind policy must not decode pixels")

    monkeypatch.setattr(video._READERS[backend], "read", no_pixels)
    policy = FramePolicy(nframes=0, max_pixels=3000, size_multiple=14)
    decoded = decode(coded, policy, backend)
    w, h = target_size(W, H, policy)
    assert decoded.frames.shape == (0, h, w, 3)
    assert decoded.indices == [] and decoded.timestamps == []


@needs_decord
def test_pyav_equals_decord_pixels(coded):
    resized = FramePolicy(nframes=5, max_pixels=2000, size_multiple=2)
    for policy in (FramePolicy(nframes=40), FramePolicy(nframes=7), resized):
        a, b = decode(coded, policy, "pyav"), decode(coded, policy, "decord")
        assert a.indices == b.indices
        assert np.array_equal(a.frames, b.frames)


def test_pyav_seeking_equals_sequential(coded):
    wanted = [1, 2, 17, 30, 39]
    readers = [video._PyAVReader(coded, seek=True), video._PyAVReader(coded, seek=False)]
    seeking, sequential = (np.stack(list(r.read(wanted))) for r in readers)
    for r in readers:
        r.close()
    assert np.array_equal(seeking, sequential)
    assert [read_index(f) for f in seeking] == wanted


def test_decoded_video_pickles(coded):
    decoded = decode(coded, FramePolicy(nframes=3), "pyav")
    again = pickle.loads(pickle.dumps(decoded))
    assert isinstance(again, DecodedVideo) and np.array_equal(again.frames, decoded.frames)
    assert again.indices == decoded.indices


def test_matroska_without_frame_count(tmp_path):
    path = tmp_path / "coded.mkv"
    write_video(path, (coded_frame(i) for i in range(25)), 25)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the fallback duration * fps is what is tested
    assert probe(path, "pyav").num_frames == 25
    decoded = decode(path, FramePolicy(nframes=25), "pyav")
    assert [read_index(f) for f in decoded.frames] == list(range(25))


# --- errors ---------------------------------------------------------------------------------------------------------


def expect_video_error(path, backend, words):
    with pytest.raises(VideoError) as caught:
        decode(path, FramePolicy(nframes=4), backend)
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert words in str(caught.value)


@backends
def test_missing_file(tmp_path, backend):
    expect_video_error(tmp_path / "nope.mp4", backend, "file not found")


@backends
def test_corrupt_files(tmp_path, coded, backend):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(50_000))
    expect_video_error(noise, backend, "cannot open")
    truncated = tmp_path / "truncated.mp4"
    data = open(coded, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    expect_video_error(truncated, backend, "cannot open")


def test_no_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(1600))
    expect_video_error(path, "pyav", "no video stream")


@backends
def test_video_without_frames(tmp_path, backend):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    # FFmpeg drops an mp4 track without samples, so this file has no video stream at all
    expect_video_error(path, backend, "no video stream" if backend == "pyav" else "cannot open")


@backends
def test_index_beyond_the_end(coded, backend):
    with video._open(coded, backend) as reader:
        with pytest.raises(VideoError, match="beyond the end"):
            list(reader.read([3, 40]))


def test_video_error_pickles():
    error = pickle.loads(pickle.dumps(VideoError("/data/a.mp4", "file not found")))
    assert error.path == "/data/a.mp4" and str(error) == "/data/a.mp4: file not found"


# --- backends -------------------------------------------------------------------------------------------------------


def test_backend_selection(monkeypatch):
    assert "pyav" in video.available_backends()
    monkeypatch.setenv("VDPM_VIDEO_BACKEND", "pyav")
    assert video.default_backend() == "pyav"
    monkeypatch.setenv("VDPM_VIDEO_BACKEND", "opencv")
    with pytest.raises(ValueError, match="unknown video backend"):
        video.default_backend()
    monkeypatch.delenv("VDPM_VIDEO_BACKEND")
    assert video.default_backend() == video.available_backends()[0]
    assert video.backend_version("pyav") == av.__version__


# --- writing --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["medium", "veryfast", "ultrafast"])
def test_write_video_is_deterministic(tmp_path, preset):
    """Same frames, same bytes: a panning texture (real motion search, B-frames) encoded four times."""
    grain = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
    texture = np.repeat(np.repeat(grain, 8, 0), 8, 1)  # 160 x 240
    frames = np.stack([np.roll(texture, 3 * t, axis=1) for t in range(40)])
    digests = set()
    for i in range(4):
        write_video(tmp_path / f"{i}.mp4", frames, 24, preset=preset)
        digests.add(hashlib.sha256((tmp_path / f"{i}.mp4").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", [np.zeros((63, 128, 3), np.uint8)], 10)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "none.mp4", [], 10)
    with pytest.raises(ValueError, match="frame 1"):
        write_video(tmp_path / "mixed.mp4", [coded_frame(0), coded_frame(1, 48, 32)], 10)
