"""Each stage's error on a synthetic video: the perceived SceneTrack against the scene's exact one.

Objects are paired with the truth by the truth id a ground-truth detector gave them (so a learned tracker is judged
on the object it was asked to follow), otherwise matched one to one on the tracker's boxes, greedily by mean box
IoU over the frames where either is seen (at least ``match_iou``). Reconstructions are compared without their
gauge: camera rotations relative to the first frame, and object positions in each frame's own camera after one
least-squares scale per video (Pi3's scale is arbitrary).

* ``detector``: on the first frame, recall (truth objects visible there whose label was asked for, found at box
  IoU >= 0.5) and precision (detections that are such an object);
* ``tracker``: per matched object, the mean IoU of the tracker's box over the frames where the truth object is
  visible (0 where it is lost), and the share of those frames where it is tracked;
* ``reconstructor``: mean angle between the perceived and the true camera rotations relative to frame 0 (degrees),
  and the median distance between scaled perceived and true object positions in the camera, relative to the median
  true distance from the camera;
* ``orientation``: median angle between the perceived and the true facing directions (degrees), over agent frames
  where both are known, and the share of the truth's visible agent frames with an accepted orientation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vdpm_harness import SceneTrack
from vdpm_harness import geometry as geo

from .perceive import box_iou


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def truth_at(truth: SceneTrack, indices) -> SceneTrack:
    """The truth restricted to the perceived frames (``indices`` of the video)."""
    indices = np.asarray(indices, int)
    objects = [type(o)(label=o.label, is_agent=o.is_agent, object_id=o.object_id, meta=o.meta,
                       centroids=np.asarray(o.centroids)[indices], boxes=np.asarray(o.boxes)[indices],
                       visible=np.asarray(o.visible)[indices],
                       orientations=None if o.orientations is None else np.asarray(o.orientations)[indices])
               for o in truth.objects]  # fmt: skip
    return SceneTrack(timestamps=np.asarray(truth.timestamps)[indices], camera_to_world=truth.camera_to_world[indices],
                      intrinsics=truth.intrinsics, image_size=truth.image_size, objects=objects, video=truth.video,
                      fps=truth.fps, source=truth.source, meta=truth.meta)  # fmt: skip


def match_objects(boxes: np.ndarray, truth: SceneTrack, min_iou: float) -> dict[int, int]:
    """Perceived object index -> truth object index, one to one, greedily by mean box IoU (at least ``min_iou``)
    over the frames where either is seen; ``boxes`` ``(N, T, 4)`` are the perceived boxes (NaN where not seen)."""
    scores = []
    for i, perceived in enumerate(np.asarray(boxes, float)):
        seen = np.isfinite(perceived).all(axis=1)
        for j, t in enumerate(truth.objects):
            either = seen | np.asarray(t.visible, bool)
            if not either.any():
                continue
            iou = np.mean([box_iou(perceived[k], t.boxes[k]) if seen[k] and t.visible[k] else 0.0
                           for k in np.flatnonzero(either)])  # fmt: skip
            if iou >= min_iou:
                scores.append((iou, i, j))
    pairs: dict[int, int] = {}
    for _, i, j in sorted(scores, reverse=True):
        if i not in pairs and j not in pairs.values():
            pairs[i] = j
    return pairs


def pair_objects(boxes: np.ndarray, truth_ids: list[str | None], truth: SceneTrack, min_iou: float) -> dict[int, int]:
    """Perceived object index -> truth object index: by the truth id a ground-truth detector gave the object (so a
    learned tracker is judged on the object it was asked to follow), the others by :func:`match_objects` among the
    truth objects left."""
    ids = {obj.object_id: j for j, obj in enumerate(truth.objects)}
    pairs = {i: ids[t] for i, t in enumerate(truth_ids) if t is not None and t in ids}
    rest = [i for i in range(len(boxes)) if i not in pairs]
    if rest:
        left = [j for j in range(len(truth.objects)) if j not in pairs.values()]
        sub = SceneTrack(timestamps=truth.timestamps, camera_to_world=truth.camera_to_world,
                         intrinsics=truth.intrinsics, image_size=truth.image_size,
                         objects=[truth.objects[j] for j in left])  # fmt: skip
        found = match_objects(np.asarray(boxes)[rest], sub, min_iou)
        pairs.update({rest[a]: left[b] for a, b in found.items()})
    return pairs


def stage_errors(perceived: SceneTrack, truth: SceneTrack, phrases: list[str], first_detections: list[dict],
                 tracked: np.ndarray, min_iou: float = 0.5) -> dict[str, Any]:  # fmt: skip
    """The per-stage errors of one video (see the module docstring): ``truth`` is already at the perceived frames,
    ``first_detections`` are the detections (``box``, ``phrase``) of the first frame, ``tracked`` the tracker's boxes
    ``(N, T, 4)`` (the objects are matched on them, so that a reconstruction that cannot place an object does not
    hide the tracker's work)."""
    pairs = pair_objects(tracked, [o.meta.get("truth_id") for o in perceived.objects], truth, min_iou)
    asked = {p.lower() for p in phrases}
    wanted = [j for j, t in enumerate(truth.objects) if t.visible[0] and t.label.lower() in asked]
    found = {j for j in wanted if any(box_iou(d["box"], truth.objects[j].boxes[0]) >= 0.5 for d in first_detections)}
    correct = sum(any(box_iou(d["box"], truth.objects[j].boxes[0]) >= 0.5 for j in wanted) for d in first_detections)
    errors: dict[str, Any] = {
        "objects": {"perceived": len(perceived.objects), "truth": len(truth.objects), "matched": len(pairs)},
        "detector": {"recall": len(found) / len(wanted) if wanted else None,
                     "precision": correct / len(first_detections) if first_detections else None},
    }  # fmt: skip
    ious, share = [], []
    for i, j in pairs.items():
        t = truth.objects[j]
        frames = np.flatnonzero(t.visible)
        if len(frames):
            ious.append(np.mean([box_iou(tracked[i, k], t.boxes[k]) for k in frames]))
            share.append(float(np.mean(np.isfinite(tracked[i, frames]).all(axis=1))))
    errors["tracker"] = {"box_iou": float(np.mean(ious)) if ious else None,
                         "tracked": float(np.mean(share)) if share else None}  # fmt: skip
    errors["reconstructor"] = reconstruction_errors(perceived, truth, pairs)
    errors["orientation"] = orientation_errors(perceived, truth, pairs)
    return errors


def reconstruction_errors(perceived: SceneTrack, truth: SceneTrack, pairs: dict[int, int]) -> dict[str, Any]:
    rp, rt = perceived.camera_to_world[:, :3, :3], truth.camera_to_world[:, :3, :3]
    relative = [rp[0].T @ rp[k] @ (rt[0].T @ rt[k]).T for k in range(len(rp))]
    rotation = float(np.mean([np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))) for r in relative]))
    est, true = [], []
    for i, j in pairs.items():
        p, t = perceived.objects[i], truth.objects[j]
        for k in np.flatnonzero(np.asarray(p.visible) & np.asarray(t.visible)):
            if np.isfinite(p.centroids[k]).all() and np.isfinite(t.centroids[k]).all():
                est.append(geo.world_to_camera(p.centroids[k], perceived.camera_to_world[k]))
                true.append(geo.world_to_camera(t.centroids[k], truth.camera_to_world[k]))
    position = scale = None
    if est:
        est, true = np.array(est), np.array(true)
        denominator = float(np.sum(est * est))
        scale = float(np.sum(est * true) / denominator) if denominator > 0 else 0.0
        position = float(np.median(np.linalg.norm(scale * est - true, axis=1)) /
                         max(np.median(np.linalg.norm(true, axis=1)), 1e-12))  # fmt: skip
    return {"rotation_deg": rotation, "position_rel": position, "scale": scale}


def orientation_errors(perceived: SceneTrack, truth: SceneTrack, pairs: dict[int, int]) -> dict[str, Any]:
    angles, accepted, total = [], 0, 0
    for i, j in pairs.items():
        p, t = perceived.objects[i], truth.objects[j]
        if not (p.is_agent and t.orientations is not None):
            continue
        for k in np.flatnonzero(t.visible):
            total += 1
            if p.orientations is None or not np.isfinite(p.orientations[k]).all():
                continue
            accepted += 1
            # facing directions in each frame's own camera: free of the reconstruction's world frame
            facing_p = perceived.camera_to_world[k, :3, :3].T @ p.orientations[k][:, 0]
            facing_t = truth.camera_to_world[k, :3, :3].T @ t.orientations[k][:, 0]
            angles.append(_angle(facing_p, facing_t))
    return {"facing_deg": float(np.median(angles)) if angles else None,
            "accepted": accepted / total if total else None}  # fmt: skip
