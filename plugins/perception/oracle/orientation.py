"""The ``oracle`` orientation estimator: the truth angles of the object a mask covers."""

from __future__ import annotations

import numpy as np

from vdpm_harness import Clip, Orientation, OrientationEstimator, Tracks
from vdpm_harness import geometry as geo

from .truth import TruthOptions, TruthReader


class OracleOrientation(TruthReader, OrientationEstimator):
    """Orient Anything's angles computed from the truth: for a mask on frame ``k``, the oriented truth object whose
    box overlaps the mask's box most (IoU >= ``min_iou``) gives ``angles_from_rotation(R_cam^T R_obj)`` in that
    frame's truth camera, confidence 1; a mask that matches none gets confidence 0 and NaN angles."""

    class Options(TruthOptions):
        pass

    def estimate(self, clip: Clip, requests: list[tuple[int, np.ndarray]]) -> list[Orientation]:
        truth = self.truth(clip)
        out = []
        for k, mask in requests:
            box = Tracks.from_masks(np.asarray(mask, bool)[None, None]).boxes[0, 0]
            match = truth.match(k, box, self.options.min_iou, oriented=True)
            rotation = None if match is None else truth.orientations[match][k]
            if rotation is None or not np.isfinite(rotation).all():
                out.append(Orientation(azimuth=np.nan, polar=np.nan, rotation=np.nan, confidence=0.0))
                continue
            polar, azimuth, roll = geo.angles_from_rotation(truth.poses[k, :3, :3].T @ rotation)
            out.append(Orientation(azimuth=azimuth, polar=polar, rotation=roll, confidence=1.0))
        return out
