"""What each stage said about a video, written beside its SceneTrack to debug it: ``perception/<stem>.json`` and
``perception/<stem>.npz``.

The JSON holds the phrases, the detections of every detection frame, the objects (phrase, score, prompt frame and
box), the stage plugins and the seconds per stage. The arrays: ``frame_indices``, ``timestamps``, ``boxes`` ``(N, T,
4)`` and ``masks`` (``np.packbits`` of the ``(N, T, H, W)`` masks, shape in ``masks_shape``) of the tracker,
``camera_to_world`` ``(T, 4, 4)``, ``positions`` ``(N, T, 3)`` in each frame's camera, ``orientations`` ``(N, T, 4)``
(azimuth, polar, rotation, confidence; NaN where not estimated); with ``full`` also the reconstruction's
``local_points`` (float16) and ``valid``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vdpm_harness import ItemFiles

from .perceive import Perception

FOLDER = "perception"


def save(files: ItemFiles, stem: str, perception: Perception, info: dict[str, Any], full: bool) -> list[str]:
    """Write both files of ``stem``; return their names (relative to the output folder)."""
    tracks, recon = perception.tracks, perception.reconstruction
    n, t = tracks.boxes.shape[:2]
    orientations = np.full((n, t, 4), np.nan)
    for i, row in enumerate(perception.orientations):
        for k, o in enumerate(row):
            if o is not None:
                orientations[i, k] = [o.azimuth, o.polar, o.rotation, o.confidence]
    arrays = {
        "frame_indices": np.asarray(perception.clip.indices, int),
        "timestamps": np.asarray(perception.clip.timestamps, float),
        "boxes": np.asarray(tracks.boxes, float),
        "masks": np.packbits(np.asarray(tracks.masks, bool).ravel()),
        "masks_shape": np.asarray(np.shape(tracks.masks), int),
        "camera_to_world": np.asarray(recon.camera_to_world, float),
        "positions": np.asarray(perception.positions, float),
        "orientations": orientations,
    }
    if full:
        arrays["local_points"] = np.asarray(recon.local_points, np.float16)
        arrays["valid"] = np.asarray(recon.valid, bool)
    names = [f"{FOLDER}/{stem}.npz", f"{FOLDER}/{stem}.json"]
    with files.writing(names[0]) as path, open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    detections = {str(frame): [{"box": list(d.box), "score": d.score, "phrase": d.phrase, "truth_id": d.truth_id}
                               for d in found] for frame, found in perception.detections.items()}  # fmt: skip
    record = {**info, "detections": detections, "objects": perception.objects,
              "seconds": {k: round(v, 4) for k, v in perception.seconds.items()}}  # fmt: skip
    with files.writing(names[1]) as path:
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return names


def load_masks(arrays) -> np.ndarray:
    """The ``(N, T, H, W)`` masks of a ``perception/<stem>.npz``."""
    shape = tuple(int(x) for x in arrays["masks_shape"])
    return np.unpackbits(arrays["masks"], count=int(np.prod(shape))).astype(bool).reshape(shape)
