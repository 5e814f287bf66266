"""The embedded motion-basics benchmark: answers checked against the rendered pixels, determinism, checksums,
and a snapshot of the prompt (a changed prompt must come with a version bump)."""

import json

import numpy as np
import pytest

from vdpm_harness.records import FramePolicy
from vdpm_harness.video import decode
from vdpm_harness_plugins.benchmarks.motion_basics import DIRECTIONS, MotionBasics, build_dataset


def centroid(frame: np.ndarray, color: str) -> np.ndarray:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    mask = (r > 170) & (g < 90) & (b < 90) if color == "red" else (b > 170) & (r < 90) & (g < 110)
    ys, xs = np.nonzero(mask)
    assert len(xs) > 20, f"no {color} disc found"
    return np.array([xs.mean(), ys.mean()])


@pytest.fixture(scope="module")
def bench():
    return MotionBasics({"n_videos": 6, "seed": 3})


def test_answers_match_the_pixels(bench):
    """Measure the discs in the decoded first and last frames and derive every answer independently."""
    by_video = {}
    for sample in bench.samples():
        by_video.setdefault(sample.media[0], []).append(sample)
    assert len(by_video) == 6
    for path, samples in by_video.items():
        video = decode(path, FramePolicy(nframes=2))
        (red0, red1), (blue0, blue1) = [
            (centroid(video.frames[0], c), centroid(video.frames[1], c)) for c in ("red", "blue")
        ]
        move = red1 - red0
        measured = {
            "direction": max(DIRECTIONS, key=lambda name: float(np.dot(DIRECTIONS[name], move))),
            "speed_comparison": "The red disc"
            if np.linalg.norm(move) > np.linalg.norm(blue1 - blue0)
            else "The blue disc",
            "distance_change": "Closer together"
            if np.linalg.norm(red1 - blue1) < np.linalg.norm(red0 - blue0)
            else "Farther apart",
        }
        for sample in samples:
            gold = next(o for o in sample.options if o.startswith(sample.answer + ". "))
            assert gold[3:] == measured[sample.category], (path, sample.category)


def test_same_seed_same_bytes(tmp_path):
    build_dataset(tmp_path / "a", n_videos=2, seed=11)
    build_dataset(tmp_path / "b", n_videos=2, seed=11)
    build_dataset(tmp_path / "c", n_videos=2, seed=12)
    manifest = lambda d: json.loads((tmp_path / d / "manifest.json").read_text())["files"]
    assert manifest("a") == manifest("b") and manifest("a") != manifest("c")


def test_checksums_are_verified(tmp_path):
    bench = MotionBasics({"n_videos": 1, "data_dir": str(tmp_path / "d")})
    assert len(list(bench.samples())) == 3
    (tmp_path / "d" / "clip_000.mp4").write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match="clip_000.mp4: missing or checksum mismatch"):
        list(MotionBasics({"n_videos": 1, "data_dir": str(tmp_path / "d")}).samples())


def test_prompt_snapshot(bench):
    sample = next(iter(bench.samples()))
    request = bench.build_request(sample)
    text = request.text()
    assert text.startswith(
        "These are the frames of a video. Select the best answer to the following multiple-choice question based on "
        "the video. Respond with only the letter (A, B, C, or D) of the correct option.\nQuestion: "
    )
    assert text.endswith("\nAnswer: ") and all(f"\n{o}\n" in text for o in sample.options)
    assert request.choices == ["A", "B", "C", "D"] and request.video_parts()[0].frames == FramePolicy(nframes=16)
    # bump MotionBasics.version whenever this changes
    assert MotionBasics.version == "1" and request.prompt_hash() == "9beb0c4eefddb554"
