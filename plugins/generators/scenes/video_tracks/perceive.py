"""The stages run on one clip: detection, tracking, reconstruction, object positions and orientations.

Detection runs on the first frame (DSR's rule: ``extract_obj_video_mask`` of TencentARC/DSR_Suite
``data/qa_utils.py`` detects on the first frame of the clip only) and, with ``detect_every = n``, again on every
n-th frame, where a detection that overlaps no tracked object (box IoU below ``same_object_iou``) starts a new object
tracked from that frame, forwards and backwards (Grounded-SAM-2's continuous-id scheme,
IDEA-Research/Grounded-SAM-2 ``grounded_sam2_tracking_demo_with_continuous_id.py``, matches masks by IoU 0.8).
Every stage failure becomes a :class:`StageFailure` naming the stage and the plugin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vdpm_harness import Clip, Detection, Orientation, Reconstruction, Tracks

#: The stages in the order they run (``frames`` and ``phrases`` are the generator's own steps).
STAGES = ("frames", "phrases", "detector", "tracker", "reconstructor", "orientation")


class StageFailure(RuntimeError):
    """A stage failed on a video; the message names the video, the stage and the plugin."""

    def __init__(self, video: str, stage: str, plugin: str, error: str):
        super().__init__(f"{video}: stage '{stage}'{f' ({plugin})' if plugin else ''} failed: {error}")
        self.video, self.stage, self.plugin, self.error = video, stage, plugin, error


@dataclass
class Perception:
    """Everything the stages said about one clip: detections per detection frame, the objects (their phrase,
    score, prompt frame and box, truth id when an oracle knows it), their tracks, the reconstruction, positions
    ``(N, T, 3)`` in each frame's camera, orientations per object and frame (None where not estimated) and the
    seconds each stage took."""

    clip: Clip
    detections: dict[int, list[Detection]] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    tracks: Tracks | None = None
    reconstruction: Reconstruction | None = None
    positions: np.ndarray | None = None
    orientations: list[list[Orientation | None]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def box_iou(a, b) -> float:
    """IoU of two ``x0, y0, x1, y1`` boxes (0 when either is NaN)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class Runner:
    """Runs the stage plugins on clips; ``stages`` maps a stage name to its plugin, ``names`` to its id."""

    def __init__(self, stages: dict[str, Any], *, detect_every: int = 0, same_object_iou: float = 0.5,
                 max_objects: int = 0, agents: Callable[[str], bool] = lambda phrase: False):  # fmt: skip
        self.stages = stages
        self.detect_every = detect_every
        self.max_objects = max_objects
        self.same_object_iou = same_object_iou
        self.is_agent = agents

    @contextmanager
    def stage(self, result: Perception, name: str):
        """Time stage ``name`` into ``result.seconds``; turn its exceptions into a :class:`StageFailure`."""
        start = time.perf_counter()
        try:
            yield
        except StageFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - a stage's failure is reported with the stage and the video
            plugin = getattr(self.stages.get(name), "id", "")
            raise StageFailure(str(result.clip.video), name, plugin, f"{type(exc).__name__}: {exc}") from exc
        finally:
            result.seconds[name] = result.seconds.get(name, 0.0) + time.perf_counter() - start

    def run(self, clip: Clip, phrases: list[str]) -> Perception:
        result = Perception(clip=clip)
        frames = [0] + (list(range(self.detect_every, len(clip), self.detect_every)) if self.detect_every else [])
        with self.stage(result, "detector"):
            found = self.stages["detector"].detect(clip, frames, phrases)
            if len(found) != len(frames):
                raise ValueError(f"returned detections for {len(found)} frames, asked for {len(frames)}")
            result.detections = dict(zip(frames, found))
        if not any(result.detections.values()):
            raise StageFailure(str(clip.video), "detector", self.stages["detector"].id,
                               f"no object detected for the phrases {phrases}")  # fmt: skip
        tracked: list[Tracks] = []
        for frame in frames:
            new = [d for d in result.detections[frame] if not self._known(tracked, frame, d)]
            if self.max_objects:  # the strongest detections, while there is room
                room = self.max_objects - len(result.objects)
                new = sorted(new, key=lambda d: -d.score)[: max(room, 0)]
            if not new:
                continue
            with self.stage(result, "tracker"):
                tracks = self.stages["tracker"].track(clip, frame, np.array([d.box for d in new], float))
                self._check_tracks(tracks, len(new), clip)
            tracked.append(tracks)
            result.objects += [{"phrase": d.phrase, "score": float(d.score), "frame": frame,
                                "box": [float(x) for x in d.box], "truth_id": d.truth_id} for d in new]  # fmt: skip
        result.tracks = Tracks(masks=np.concatenate([t.masks for t in tracked]),
                               boxes=np.concatenate([t.boxes for t in tracked]))  # fmt: skip
        with self.stage(result, "reconstructor"):
            reconstruction = self.stages["reconstructor"].reconstruct(clip)
            self._check_reconstruction(reconstruction, len(clip))
            result.reconstruction = reconstruction
            result.positions = np.asarray(self.stages["reconstructor"].locate(clip, reconstruction, result.tracks),
                                          float)  # fmt: skip
        result.orientations = [[None] * len(clip) for _ in result.objects]
        requests = [(i, k) for i, obj in enumerate(result.objects) if self.is_agent(obj["phrase"])
                    for k in np.flatnonzero(result.tracks.seen[i])]  # fmt: skip
        if requests:
            with self.stage(result, "orientation"):
                answers = self.stages["orientation"].estimate(
                    clip, [(int(k), result.tracks.masks[i, k]) for i, k in requests]
                )
                if len(answers) != len(requests):
                    raise ValueError(f"returned {len(answers)} orientations for {len(requests)} requests")
            for (i, k), answer in zip(requests, answers):
                result.orientations[i][k] = answer
        return result

    def _known(self, tracked: list[Tracks], frame: int, detection: Detection) -> bool:
        """Whether a detection on ``frame`` is an object already tracked there (box IoU >= ``same_object_iou``)."""
        return any(box_iou(box, detection.box) >= self.same_object_iou
                   for tracks in tracked for box in tracks.boxes[:, frame])  # fmt: skip

    @staticmethod
    def _check_tracks(tracks: Tracks, n: int, clip: Clip) -> None:
        width, height = clip.size
        if tuple(np.shape(tracks.masks)) != (n, len(clip), height, width):
            raise ValueError(f"masks of shape {np.shape(tracks.masks)}, expected {(n, len(clip), height, width)}")
        if tuple(np.shape(tracks.boxes)) != (n, len(clip), 4):
            raise ValueError(f"boxes of shape {np.shape(tracks.boxes)}, expected {(n, len(clip), 4)}")

    @staticmethod
    def _check_reconstruction(reconstruction: Reconstruction, t: int) -> None:
        if np.shape(reconstruction.camera_to_world) != (t, 4, 4):
            raise ValueError(f"camera_to_world of shape {np.shape(reconstruction.camera_to_world)}, expected "
                             f"{(t, 4, 4)}")  # fmt: skip
        points, valid = np.shape(reconstruction.local_points), np.shape(reconstruction.valid)
        if len(points) != 4 or points[0] != t or points[3] != 3 or valid != points[:3]:
            raise ValueError(f"local_points {points} and valid {valid} do not match (T, h, w, 3) and (T, h, w)")
