"""Why an attempt at a question yields none: :class:`Failure` with one of the typed reasons below.

The original (the template generator of the DSR Suite, TencentARC/DSR_Suite ``data/qa_temp.py``) wraps every attempt
in ``except Exception: pass``; here each attempt that yields no question raises :class:`Failure`, and its reason is
counted per template in the generator's yield statistics.
"""

from __future__ import annotations

VIDEO_TOO_SHORT = "video has fewer than 32 frames"
NO_AGENT_CLASSES = "no agent in the video"
NO_OBSERVER = "no agent visible at the observer time"
OBSERVER_ORIENTATION = "observer orientation unknown"
TOO_FEW = "too few objects visible at the detection frame"
NOT_AGENT = "observer detection is not an agent"
LOST = "object not visible in window"
NOT_IN_FUTURE = "object not visible at frames 29 and 31"
SAME_ENTITY = "observer and target are the same entity"
TOO_LONG = "answer has more than 15 items"
DEGENERATE = "zero-length vector (no direction)"
AMBIGUOUS = "answer ambiguous under threshold"
NO_MOTION = "motion below min_pred_motion"
EXHAUSTED = "distractors exhausted"
NOT_DISTINCT = "fewer than four distinct answers"


class Failure(Exception):
    """One attempt produced no question; ``reason`` is one of this module's reason strings."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
