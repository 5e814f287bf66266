"""A :class:`~vdpm_harness.SceneTrack` from the stages' outputs, in the reconstruction's world frame.

* camera poses: the reconstruction's camera-to-world poses (OpenCV), in its scale (normalised for Pi3);
* object centroids: the position of each object in each frame's camera (``Reconstructor.locate``), mapped to the
  world with that frame's pose (:func:`vdpm_harness.geometry.camera_to_world`); NaN where the object is not tracked
  or its mask holds no valid point, which also makes it not visible there (DSR counts an empty
  ``mask & valid`` as a tracking failure);
* agent orientations: object-to-world rotations ``R_c2w @ R^T``, where ``R`` is DSR's camera-to-agent rotation of
  the Orient Anything angles (:func:`vdpm_harness.geometry.agent_rotation`; its rows are the agent's forward, left
  and up axes in the camera), kept where the confidence reaches ``min_confidence`` (0.6 in the original); NaN
  elsewhere;
* boxes: the tracker's boxes where the object is visible;
* intrinsics: the reconstruction's, else estimated from its point map (principal point at the image centre, focal
  lengths by least squares on ``u - c_x = f_x x / z``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vdpm_harness import ObjectTrack, Reconstruction, SceneTrack
from vdpm_harness import geometry as geo

from .perceive import Perception


def estimate_intrinsics(reconstruction: Reconstruction, width: int, height: int) -> tuple[np.ndarray, str]:
    """Pinhole intrinsics for ``width x height`` frames from a point map, and how they were found: ``"fitted"``, or
    ``"assumed"`` (a 60-degree horizontal field of view) when the points do not determine them."""
    points = np.asarray(reconstruction.local_points, float)
    valid = np.asarray(reconstruction.valid, bool) & (points[..., 2] > 1e-6)
    _, h, w = valid.shape
    u = (np.arange(w) + 0.5) * width / w - width / 2
    v = (np.arange(h) + 0.5) * height / h - height / 2
    du = np.broadcast_to(u[None, None, :], valid.shape)[valid]
    dv = np.broadcast_to(v[None, :, None], valid.shape)[valid]
    x, y = points[valid][:, 0] / points[valid][:, 2], points[valid][:, 1] / points[valid][:, 2]
    fx = float(du @ du / (du @ x)) if len(du) and abs(du @ x) > 1e-9 else np.nan
    fy = float(dv @ dv / (dv @ y)) if len(dv) and abs(dv @ y) > 1e-9 else np.nan
    how = "fitted"
    if not (np.isfinite(fx) and np.isfinite(fy) and fx > 0 and fy > 0):
        fx = fy = width / 2 / np.tan(np.deg2rad(30.0))
        how = "assumed"
    return np.array([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]]), how


def object_rotation(c2w: np.ndarray, polar: float, azimuth: float, rotation: float) -> np.ndarray:
    """Object-to-world rotation (columns forward, left, up) of an agent seen with these angles by camera ``c2w``."""
    return np.asarray(c2w, float)[:3, :3] @ geo.agent_rotation(polar, azimuth, rotation).T


def build_track(perception: Perception, *, is_agent, min_confidence: float, video: str | None,
                meta: dict[str, Any]) -> SceneTrack:  # fmt: skip
    """The validated SceneTrack of a perceived clip (see the module docstring)."""
    clip, recon, tracks = perception.clip, perception.reconstruction, perception.tracks
    width, height = clip.size
    poses = np.asarray(recon.camera_to_world, float)
    if recon.intrinsics is not None:
        intrinsics, how = np.asarray(recon.intrinsics, float), "reconstructor"
    else:
        intrinsics, how = estimate_intrinsics(recon, width, height)
    objects = []
    for i, obj in enumerate(perception.objects):
        cam = perception.positions[i]
        visible = tracks.seen[i] & np.isfinite(cam).all(axis=1)
        centroids = np.full((len(clip), 3), np.nan)
        for k in np.flatnonzero(visible):
            centroids[k] = geo.camera_to_world(cam[k], poses[k])
        boxes = np.where(visible[:, None], tracks.boxes[i], np.nan)
        agent = is_agent(obj["phrase"])
        orientations = np.full((len(clip), 3, 3), np.nan) if agent else None
        angles = []
        for k, o in enumerate(perception.orientations[i]):
            angles.append(None if o is None else [o.azimuth, o.polar, o.rotation, o.confidence])
            if (
                agent
                and visible[k]
                and o is not None
                and o.confidence >= min_confidence
                and np.isfinite([o.azimuth, o.polar, o.rotation]).all()
            ):
                orientations[k] = object_rotation(poses[k], o.polar, o.azimuth, o.rotation)
        object_meta = {key: value for key, value in obj.items() if value is not None}
        object_meta["orientation_angles"] = angles if agent else None
        objects.append(ObjectTrack(label=obj["phrase"], is_agent=agent, object_id=f"o{i}", centroids=centroids,
                                   boxes=boxes, visible=visible, orientations=orientations,
                                   meta=object_meta))  # fmt: skip
    track = SceneTrack(timestamps=np.asarray(clip.timestamps, float), camera_to_world=poses, intrinsics=intrinsics,
                       image_size=(width, height), objects=objects, video=video, fps=clip.fps, source="video-tracks",
                       meta={**meta, "frame_indices": np.asarray(clip.indices).tolist(), "intrinsics": how,
                             "scale": recon.scale})  # fmt: skip
    return track.validate()
