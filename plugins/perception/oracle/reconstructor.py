"""The ``oracle`` reconstructor: truth camera poses and intrinsics, truth centroids for tracked masks."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from vdpm_harness import Clip, Reconstruction, Reconstructor, Tracks
from vdpm_harness import geometry as geo

from .truth import TruthOptions, TruthReader, box_masks


class OracleReconstructor(TruthReader, Reconstructor):
    """The truth's geometry. :meth:`reconstruct` gives the truth camera-to-world poses and intrinsics, and a proxy
    point map (a SceneTrack holds no depth): inside each visible object's truth box, the pixel's ray at the depth of
    the object's centroid (nearer objects in front), invalid elsewhere. :meth:`locate` gives, for each tracked mask,
    the exact centroid of the truth object whose box overlaps the mask's box most (IoU >= ``min_iou``), in that
    frame's camera: so a perfect reconstruction is measured apart from the tracker that found the object."""

    class Options(TruthOptions):
        stride: int = Field(default=4, ge=1, description="Point map at 1/stride of the frame size (the map is a "
                            "proxy for learned stages; locate() does not read it).")  # fmt: skip

    def reconstruct(self, clip: Clip) -> Reconstruction:
        truth = self.truth(clip)
        width, height = clip.size
        k_full = self.intrinsics(truth, width, height)
        stride = self.options.stride
        w, h = -(-width // stride), -(-height // stride)
        u, v = np.meshgrid((np.arange(w) + 0.5) * width / w, (np.arange(h) + 0.5) * height / h)
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(k_full).T  # (h, w, 3), z = 1
        points = np.zeros((len(clip), h, w, 3), np.float32)
        valid = np.zeros((len(clip), h, w), bool)
        for k in range(len(clip)):
            depth = np.full((h, w), np.inf)
            for i in np.flatnonzero(truth.visible[:, k]):
                z = geo.world_to_camera(truth.centroids[i, k], truth.poses[k])[2]
                inside = (
                    box_masks(truth.boxes[i, k] * np.array([w / width, h / height] * 2), w, h) & (z > 0) & (z < depth)
                )
                depth[inside] = z
            valid[k] = np.isfinite(depth)
            points[k][valid[k]] = rays[valid[k]] * depth[valid[k], None]
        return Reconstruction(local_points=points, valid=valid, camera_to_world=truth.poses.copy(),
                              intrinsics=k_full, scale="metric")  # fmt: skip

    @staticmethod
    def intrinsics(truth, width: int, height: int) -> np.ndarray:
        """The truth intrinsics, rescaled when the clip's frames are not at the truth's image size."""
        k = np.asarray(truth.track.intrinsics, float).copy()
        tw, th = truth.track.image_size
        k[0] *= width / tw
        k[1] *= height / th
        return k

    def locate(self, clip: Clip, reconstruction: Reconstruction, tracks: Tracks) -> np.ndarray:
        truth = self.truth(clip)
        n, t = tracks.boxes.shape[:2]
        positions = np.full((n, t, 3), np.nan)
        for i in range(n):
            for k in range(t):
                match = truth.match(k, tracks.boxes[i, k], self.options.min_iou)
                if match is not None:
                    positions[i, k] = geo.world_to_camera(truth.centroids[match, k], truth.poses[k])
        return positions
