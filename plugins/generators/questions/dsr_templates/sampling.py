"""A SceneTrack seen through the 32 frames the original samples: :class:`SampledScene`.

The original samples ``round(linspace(0, N - 1, 32))`` frames of a video and shows the times ``round(t, 1)``
(TencentARC/DSR_Suite ``data/qa_temp.py``): frames 0-29 carry the questions' time windows, frames 29 -> 31 are the
"future" of the two prediction templates. Its perception (Pi3 points, Grounding DINO and SAM 2 masks, Orient Anything
angles) becomes exact geometry here: an object is detected on a frame when it is visible there, its centroid is the
track's centroid in that frame's camera, and the Orient Anything angles of an agent are derived exactly from its
rotation, ``angles_from_rotation(R_cam^T @ R_obj)`` (the core's ``SampledFrames``, shared with the free-form writer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vdpm_harness import SampledFrames, SceneTrack, TooFewFrames
from vdpm_harness import geometry as geo

from .failures import VIDEO_TOO_SHORT, Failure

N_SAMPLED = 32
N_QUESTION_FRAMES = 30  # frames 0..29; 30 and 31 are the future
PRED_FROM, PRED_TO = 29, 31
CAMERA = "camera"


class SampledScene(SampledFrames):
    """A track at its 32 sampled frames (the core's :class:`SampledFrames`: camera poses, object centroids in each
    frame's camera (OpenCV), visibility, integer boxes and the Orient Anything angles ``(polar, azimuth, rotation)``
    of every oriented object), optionally scaled, and the entities' views the templates ask about. A track with fewer
    frames fails with ``VIDEO_TOO_SHORT`` (the original's "repeat frame")."""

    def __init__(self, track: SceneTrack, scale: str = "none"):
        try:
            super().__init__(track, N_SAMPLED)
        except TooFewFrames:
            raise Failure(VIDEO_TOO_SHORT, f"{track.n_frames} frames") from None
        # a tiny negative azimuth % 360 is 360.0: keep [0, 360)
        self.angles = [[a if a is None or a[1] < 360.0 else (a[0], 0.0, a[2]) for a in row] for row in self.angles]
        self.scale = self._scale() if scale == "median_depth" else 1.0
        self.pos /= self.scale
        self.poses[:, :3, 3] /= self.scale

    def _scale(self) -> float:
        depths = self.pos[..., 2][self.seen]
        depths = depths[depths > 0]
        return float(np.median(depths)) if len(depths) else 1.0

    # --- entities: CAMERA or an object index ---

    def point(self, entity, k: int) -> np.ndarray:
        """The entity's position in camera ``k`` (the camera itself is the origin)."""
        return np.zeros(3) if entity == CAMERA else self.pos[entity, k]

    def facing_points(self, entity, k: int) -> np.ndarray:
        """Two points in camera ``k``: the entity's position and one unit ahead along its facing direction."""
        if entity == CAMERA:
            return np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        return geo.agent_to_camera(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), *self.angles[entity][k],
                                   self.pos[entity, k])  # fmt: skip

    def move(self, points: np.ndarray, k: int, s: int) -> np.ndarray:
        """Points of camera ``k`` in camera ``s``."""
        return geo.camera_to_camera(points, self.poses[k], self.poses[s])

    def view(self, observer, k: int, points: np.ndarray) -> np.ndarray:
        """Points of camera ``k`` in the observer's frame at ``k``: the camera's self frame or the agent's frame."""
        if observer == CAMERA:
            return geo.camera_to_self(points)
        return geo.camera_to_agent(points, *self.angles[observer][k], self.pos[observer, k])

    def frozen(self, observer, k_obs: int, points: np.ndarray, k: int) -> np.ndarray:
        """``abs`` view: points of camera ``k`` in the observer's frame frozen at ``k_obs``."""
        return self.view(observer, k_obs, self.move(points, k, k_obs))

    def descriptor(self, entity, k: int, kind: str) -> str:
        """``camera`` or ``{label} with [initial |final ]bounding box coordinates [x1,y1,x2,y2]`` (box of frame k)."""
        if entity == CAMERA:
            return CAMERA
        b = self.boxes[entity][k]
        words = {"initial": "initial bounding box", "plain": "bounding box", "final": "final bounding box"}[kind]
        return f"{self.objects[entity].label} with {words} coordinates [{b[0]},{b[1]},{b[2]},{b[3]}]"

    def entity_record(self, entity, k: int | None = None) -> dict[str, Any]:
        if entity == CAMERA:
            return {"entity": CAMERA}
        obj = self.objects[entity]
        record = {"entity": obj.object_id, "label": obj.label, "is_agent": obj.is_agent}
        if k is not None:
            record.update(box=self.boxes[entity][k], box_frame=k)
        return record
