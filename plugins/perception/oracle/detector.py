"""The ``oracle`` detector: the truth boxes of the visible objects whose label is one of the phrases."""

from __future__ import annotations

from vdpm_harness import Clip, Detection, Detector

from .truth import TruthOptions, TruthReader


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class OracleDetector(TruthReader, Detector):
    """Detects exactly the truth: on each frame, every visible object labelled with a phrase, score 1, in the order
    of the truth's objects; ``truth_id`` names the object."""

    class Options(TruthOptions):
        pass

    def detect(self, clip: Clip, frames: list[int], phrases: list[str]) -> list[list[Detection]]:
        truth = self.truth(clip)
        wanted = {_norm(p): p for p in phrases}
        found = []
        for k in frames:
            found.append([
                Detection(box=tuple(float(x) for x in truth.boxes[i, k]), score=1.0, phrase=wanted[_norm(obj.label)],
                          truth_id=obj.object_id)
                for i, obj in enumerate(truth.objects) if truth.visible[i, k] and _norm(obj.label) in wanted
            ])  # fmt: skip
        return found
