"""The ``oracle`` tracker: each prompt box becomes the truth object it overlaps best, followed exactly."""

from __future__ import annotations

import numpy as np

from vdpm_harness import Clip, Tracker, Tracks

from .truth import TruthOptions, TruthReader, box_masks


class OracleTracker(TruthReader, Tracker):
    """Tracks by the truth: per prompt box, the truth object visible on the prompt frame with the best box IoU (at
    least ``min_iou``); its truth boxes on every frame where it is visible, and filled-box masks (pixels whose centre
    lies in the box). A box that matches no object gets an empty track."""

    class Options(TruthOptions):
        pass

    def track(self, clip: Clip, frame: int, boxes) -> Tracks:
        truth = self.truth(clip)
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        width, height = clip.size
        out = np.full((len(boxes), len(clip), 4), np.nan)
        for i, box in enumerate(boxes):
            match = truth.match(frame, box, self.options.min_iou)
            if match is not None:
                seen = truth.visible[match]
                out[i, seen] = truth.boxes[match, seen]
        return Tracks(masks=box_masks(out, width, height), boxes=out)
