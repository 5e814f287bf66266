"""The questions of one video: ``attempts`` draws of a question type, each written by a TemplateWriter.

Each attempt draws its type with the original's inverse-frequency weights (``prob_cal`` of TencentARC/DSR_Suite
``data/qa_temp.py``) and is not retried when it fails, as in the original. A video with fewer than 32 frames, or
without an agent, is skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vdpm_harness import SceneTrack

from .failures import NO_AGENT_CLASSES, Failure
from .options import TemplateOptions
from .sampling import SampledScene
from .templates import QA, QUESTION_TYPES, TemplateWriter


@dataclass
class VideoResult:
    """The questions of one video and its yield: attempts per type and failures per (type, reason)."""

    qas: list[QA] = field(default_factory=list)
    attempted: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    skipped: str | None = None


def type_weights(counts: dict[str, int]) -> np.ndarray:
    """``prob_cal``: weight ``(sum of counts + 12) / (count + 1)`` per type, normalised."""
    total = sum(counts.values()) + len(counts)
    weights = np.array([total / (counts[t] + 1) for t in QUESTION_TYPES])
    return weights / weights.sum()


def generate_video(track: SceneTrack, rng: np.random.Generator, attempts: int, options: TemplateOptions) -> VideoResult:
    """``attempts`` draws of a question type on one track (a failed attempt is not retried, as in the original).

    A video with fewer than 32 frames, or without an agent (as in the original), is skipped.
    """
    result = VideoResult()
    try:
        scene = SampledScene(track, options.scale)
    except Failure as failure:
        result.skipped = failure.reason
        return result
    if not scene.agent_labels:
        result.skipped = NO_AGENT_CLASSES
        return result
    writer = TemplateWriter(scene, rng, options)
    counts = dict.fromkeys(QUESTION_TYPES, 0)
    for _ in range(attempts):
        qtype = QUESTION_TYPES[int(rng.choice(len(QUESTION_TYPES), p=type_weights(counts)))]
        result.attempted[qtype] += 1
        try:
            qa = writer.write(qtype)
        except Failure as failure:
            result.failures[(qtype, failure.reason)] += 1
            continue
        qa.provenance["sampled_frames"] = scene.frames.tolist()
        qa.provenance["sampled_times"] = scene.times
        counts[qtype] += 1
        result.qas.append(qa)
    return result
