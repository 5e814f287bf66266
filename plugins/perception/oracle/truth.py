"""The truth of a clip: the SceneTrack of its video sampled at the clip's frames, and boxes matched to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from vdpm_harness import Clip, SceneTrack, Strict


class TruthOptions(Strict):
    """Where the truth is, and how close a box must be to a truth box to be that object."""

    truth: str | None = Field(default=None, description="Folder of the truth SceneTracks '<video stem>.npz' "
                              "(default: the video's own folder).")  # fmt: skip
    min_iou: float = Field(default=0.5, gt=0, le=1, description="Least box IoU for a box to be a truth object.")


def box_iou(box, boxes) -> np.ndarray:
    """IoU of one ``(4,)`` box ``x0, y0, x1, y1`` with ``(M, 4)`` boxes (continuous areas; NaN boxes give 0)."""
    box, boxes = np.asarray(box, float), np.asarray(boxes, float).reshape(-1, 4)
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.nan_to_num(iou, nan=0.0)


def box_masks(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Masks ``(..., height, width)`` of boxes ``(..., 4)``: the pixels whose centre ``(u + 0.5, v + 0.5)`` lies in
    the box (none for a NaN box)."""
    boxes = np.asarray(boxes, float)
    u, v = np.arange(width) + 0.5, np.arange(height) + 0.5
    with np.errstate(invalid="ignore"):
        cols = (u >= boxes[..., 0:1]) & (u <= boxes[..., 2:3])  # (..., W)
        rows = (v >= boxes[..., 1:2]) & (v <= boxes[..., 3:4])  # (..., H)
    return rows[..., :, None] & cols[..., None, :]


class Truth:
    """A SceneTrack at the frames of a clip: ``poses (T, 4, 4)``, per object ``boxes (M, T, 4)``, ``visible
    (M, T)``, ``centroids (M, T, 3)`` (world) and ``orientations`` (``(T, 3, 3)`` object-to-world, or None)."""

    def __init__(self, track: SceneTrack, indices, path: Path):
        indices = np.asarray(indices, int)
        if len(indices) and indices.max() >= track.n_frames:
            raise ValueError(f"{path}: the truth has {track.n_frames} frames; the clip needs frame {indices.max()}")
        self.track, self.path, self.indices = track, path, indices
        self.poses = np.asarray(track.camera_to_world, float)[indices]
        self.objects = track.objects
        n = len(indices)
        self.boxes = np.array([np.asarray(o.boxes, float)[indices] for o in track.objects]).reshape(-1, n, 4)
        self.centroids = np.array([np.asarray(o.centroids, float)[indices] for o in track.objects]).reshape(-1, n, 3)
        self.visible = np.array([np.asarray(o.visible, bool)[indices] for o in track.objects]).reshape(-1, n)
        self.visible &= np.isfinite(self.boxes).all(axis=2)
        self.orientations = [None if o.orientations is None else np.asarray(o.orientations, float)[indices]
                             for o in track.objects]  # fmt: skip

    def match(self, k: int, box, min_iou: float, oriented: bool = False) -> int | None:
        """The object visible on clip frame ``k`` whose truth box overlaps ``box`` most (IoU >= ``min_iou``);
        with ``oriented``, only objects that have orientations."""
        if box is None or not np.isfinite(box).all() or not len(self.objects):
            return None
        iou = box_iou(box, self.boxes[:, k])
        iou[~self.visible[:, k]] = 0
        if oriented:
            iou[[o is None for o in self.orientations]] = 0
        best = int(np.argmax(iou))
        return best if iou[best] >= min_iou else None


class TruthReader:
    """For the oracle plugins: the :class:`Truth` of a clip (the last one read is kept)."""

    options: TruthOptions

    def truth(self, clip: Clip) -> Truth:
        if clip.video is None:
            raise ValueError("oracle: the clip names no video, so its truth cannot be found")
        video = Path(clip.video)
        folder = Path(self.options.truth) if self.options.truth else video.parent
        path = folder / f"{video.stem}.npz"
        key = (str(path), tuple(np.asarray(clip.indices).tolist()))
        cached = self.__dict__.get("_truth")
        if cached is not None and cached[0] == key:
            return cached[1]
        if not path.is_file():
            raise FileNotFoundError(f"oracle: no truth SceneTrack {path} for video {video.name}")
        truth = Truth(SceneTrack.load(path), clip.indices, path)
        self.__dict__["_truth"] = (key, truth)
        return truth
