"""``SceneTrack``: the contract between perception (or the synthetic scene generator) and question writing.

A track holds, for one video, the per-frame timestamps and camera poses and, per object, its label, whether it is an
agent (it has a front: people, animals, vehicles), its 3D centroid, orientation, 2D box and visibility per frame.

Conventions (see :mod:`vdpm_harness.geometry`):

* ``camera_to_world``: ``(T, 4, 4)`` camera-to-world poses of an OpenCV camera (x right, y down, z forward);
* ``intrinsics``: ``(3, 3)`` pinhole matrix for ``image_size = (width, height)`` pixels;
* object ``centroids``: ``(T, 3)`` in world coordinates; NaN rows where unknown;
* object ``orientations``: ``(T, 3, 3)`` object-to-world rotations whose columns are the object's forward, left and
  up axes (x forward, y left, z up), or ``None`` for objects without a front; NaN where unknown;
* object ``boxes``: ``(T, 4)`` pixel boxes ``x0, y0, x1, y1``; NaN where not visible;
* object ``visible``: ``(T,)`` booleans.

Saved as one ``.npz`` (arrays) holding a JSON header (``version``, labels, flags, metadata), so a track is one file
beside its video. ``SCHEMA_VERSION`` is bumped on any incompatible change; loading another version is an error.

:class:`SampledFrames` is a track seen at the frames the DSR Suite's question writers sample, in each frame's camera:
the part the template and the free-form question generators share.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import geometry as geo

SCHEMA_VERSION = 1


class SceneTrackError(ValueError):
    """A track is malformed; the message names the file (when loading) and the field."""


@dataclass
class ObjectTrack:
    label: str
    is_agent: bool
    centroids: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray
    orientations: np.ndarray | None = None
    object_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def facing(self, frame: int) -> np.ndarray | None:
        """The object's forward axis in world coordinates at ``frame`` (None for objects without a front)."""
        if self.orientations is None:
            return None
        return self.orientations[frame][:, 0]


@dataclass
class SceneTrack:
    timestamps: np.ndarray
    camera_to_world: np.ndarray
    intrinsics: np.ndarray
    image_size: tuple[int, int]
    objects: list[ObjectTrack]
    video: str | None = None
    fps: float | None = None
    source: str = "synthetic"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    def validate(self, where: str = "SceneTrack") -> SceneTrack:
        """Check shapes and values; raise :class:`SceneTrackError` naming the field."""
        t = self.n_frames

        def check(name: str, array, shape: tuple):
            if array is None or np.shape(array) != shape:
                raise SceneTrackError(f"{where}: {name} has shape {np.shape(array)}, expected {shape}")

        check("timestamps", self.timestamps, (t,))
        if t and np.any(np.diff(self.timestamps) <= 0):
            raise SceneTrackError(f"{where}: timestamps must increase strictly")
        check("camera_to_world", self.camera_to_world, (t, 4, 4))
        rotations = self.camera_to_world[:, :3, :3]
        if not np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5):
            raise SceneTrackError(f"{where}: camera_to_world rotations are not orthonormal")
        check("intrinsics", self.intrinsics, (3, 3))
        ids = set()
        for i, obj in enumerate(self.objects):
            name = f"objects[{i}] ({obj.label})"
            check(f"{name}.centroids", obj.centroids, (t, 3))
            check(f"{name}.boxes", obj.boxes, (t, 4))
            check(f"{name}.visible", obj.visible, (t,))
            if obj.orientations is not None:
                check(f"{name}.orientations", obj.orientations, (t, 3, 3))
            if obj.is_agent and obj.orientations is None:
                raise SceneTrackError(f"{where}: {name} is an agent but has no orientations")
            if obj.object_id in ids:
                raise SceneTrackError(f"{where}: duplicate object_id '{obj.object_id}'")
            ids.add(obj.object_id)
        return self

    # --- serialization ------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        self.validate()
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "timestamps": np.asarray(self.timestamps, float),
            "camera_to_world": np.asarray(self.camera_to_world, float),
            "intrinsics": np.asarray(self.intrinsics, float),
        }
        objects = []
        for i, obj in enumerate(self.objects):
            arrays[f"o{i}_centroids"] = np.asarray(obj.centroids, float)
            arrays[f"o{i}_boxes"] = np.asarray(obj.boxes, float)
            arrays[f"o{i}_visible"] = np.asarray(obj.visible, bool)
            if obj.orientations is not None:
                arrays[f"o{i}_orientations"] = np.asarray(obj.orientations, float)
            objects.append({"label": obj.label, "is_agent": obj.is_agent, "object_id": obj.object_id,
                            "has_orientations": obj.orientations is not None, "meta": obj.meta})  # fmt: skip
        header = {"version": SCHEMA_VERSION, "image_size": list(self.image_size), "video": self.video,
                  "fps": self.fps, "source": self.source, "meta": self.meta, "objects": objects}  # fmt: skip
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        # an .npz written entry by entry with a fixed timestamp: the same track gives the same bytes
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SceneTrack:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise SceneTrackError(f"{path}: not a readable SceneTrack file ({exc})") from exc
        if "header" not in arrays:
            raise SceneTrackError(f"{path}: no header: not a SceneTrack file")
        header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        if header.get("version") != SCHEMA_VERSION:
            raise SceneTrackError(f"{path}: SceneTrack version {header.get('version')}, expected {SCHEMA_VERSION}")
        try:
            objects = [
                ObjectTrack(
                    label=o["label"],
                    is_agent=o["is_agent"],
                    object_id=o["object_id"],
                    meta=o.get("meta", {}),
                    centroids=arrays[f"o{i}_centroids"],
                    boxes=arrays[f"o{i}_boxes"],
                    visible=arrays[f"o{i}_visible"],
                    orientations=arrays[f"o{i}_orientations"] if o["has_orientations"] else None,
                )  # fmt: skip
                for i, o in enumerate(header["objects"])
            ]
            track = cls(
                timestamps=arrays["timestamps"], camera_to_world=arrays["camera_to_world"],
                intrinsics=arrays["intrinsics"], image_size=tuple(header["image_size"]), objects=objects,
                video=header.get("video"), fps=header.get("fps"), source=header.get("source", "synthetic"),
                meta=header.get("meta", {}),
            )  # fmt: skip
        except KeyError as exc:
            raise SceneTrackError(f"{path}: missing field {exc}") from exc
        return track.validate(str(path))


# --- a track at sampled frames ----------------------------------------------------------------------------------------


class TooFewFrames(ValueError):
    """A track has too few frames for the sampler: a sampled frame index would repeat."""


class SampledFrames:
    """A track at ``count`` sampled frames, as the DSR Suite's question writers see a video (TencentARC/DSR_Suite
    ``data/qa_temp.py`` and ``data/qa_nontemp.py``), their perception (Pi3 point maps, Grounding DINO and SAM 2
    masks, Orient Anything angles) replaced by the track's exact geometry:

    * ``frames``: the source frame indices ``round(linspace(0, N - 1, count))``; a track where one would repeat (the
      original's sampler raises "repeat frame") raises :class:`TooFewFrames`;
    * ``times``: their timestamps as the original shows them, ``round(t, 1)``; ``seconds``: the exact timestamps;
    * ``poses``: ``(count, 4, 4)`` camera-to-world poses of the sampled frames (a copy);
    * ``pos``: ``(objects, count, 3)`` every object's centroid in that frame's camera (OpenCV);
    * ``seen``: ``(objects, count)`` whether the object is visible there with a finite centroid and box;
    * ``boxes``: per object and frame its integer box, clamped to the image first (the original casts boxes to
      uint32, where a negative coordinate wraps around), or None where the box or centroid is not finite;
    * ``angles``: per object and frame the Orient Anything angles ``(polar, azimuth, rotation)`` of an object with a
      front, derived exactly from its rotation as :func:`.geometry.angles_from_rotation` of ``R_cam^T @ R_obj``
      (the azimuth as it returns it, in ``[0, 360]``), or None where the object has no front or its rotation is not
      finite;
    * ``agent_labels``: the labels of the agents, each once, in the order of the objects.
    """

    def __init__(self, track: SceneTrack, count: int):
        n = track.n_frames
        self.frames = np.round(np.linspace(0, n - 1, count)).astype(int)
        if n < count or np.any(np.diff(self.frames) == 0):
            raise TooFewFrames(f"{n} frames, at least {count} are sampled")
        self.times = [round(float(track.timestamps[i]), 1) for i in self.frames]
        self.seconds = [float(track.timestamps[i]) for i in self.frames]
        self.poses = np.asarray(track.camera_to_world, float)[self.frames]
        self.objects = track.objects
        width, height = track.image_size
        limits = np.array([width, height, width, height], float)
        self.pos = np.full((len(self.objects), count, 3), np.nan)
        self.seen = np.zeros((len(self.objects), count), bool)
        self.boxes: list[list[list[int] | None]] = []
        self.angles: list[list[tuple[float, float, float] | None]] = []
        for o, obj in enumerate(self.objects):
            centroids = np.asarray(obj.centroids, float)[self.frames]
            boxes = np.asarray(obj.boxes, float)[self.frames]
            finite = np.isfinite(centroids).all(axis=1) & np.isfinite(boxes).all(axis=1)
            self.seen[o] = np.asarray(obj.visible, bool)[self.frames] & finite
            for k in range(count):
                self.pos[o, k] = geo.world_to_camera(centroids[k], self.poses[k])
            self.boxes.append([np.clip(b, 0, limits).astype(int).tolist() if ok else None
                               for b, ok in zip(boxes, finite)])  # fmt: skip
            self.angles.append([self._angles(obj.orientations, k) for k in range(count)])
        self.agent_labels = list(dict.fromkeys(obj.label for obj in self.objects if obj.is_agent))

    def _angles(self, orientations: np.ndarray | None, k: int) -> tuple[float, float, float] | None:
        if orientations is None:
            return None
        rotation = np.asarray(orientations[self.frames[k]], float)
        if not np.isfinite(rotation).all():
            return None
        return geo.angles_from_rotation(self.poses[k, :3, :3].T @ rotation)
