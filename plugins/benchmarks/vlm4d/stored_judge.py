"""``vlm4d-stored``: scores imported official VLM4D outputs with the verdicts stored in them.

The processed files of ``acc_evaluation.py`` (``ShijieZhou-UCLA/VLM4D`` at ``23f2680``), among them the paper's
``processed_outputs_paper_results/``, hold beside each response the judge's ``extracted_answer`` and ``correct``. The
paper's files were, by the README, "manually verified" by cross-checking the outputs of two LLM judges (o3 and
o4-mini), so re-judging cannot reproduce them exactly; scoring the stored verdicts reproduces the paper's tables.
``vdpm-harness import vlm4d PATH --judge vlm4d-stored`` keeps them in each prediction's ``meta`` (see
:mod:`.published`).
"""

from __future__ import annotations

from vdpm_harness import Judge

from .extraction import verdict_extraction


class StoredVerdictJudge(Judge):
    """Scores imported official outputs with the verdict stored beside each response (``extracted_answer`` and
    ``correct`` of the paper's processed files: the o4-mini judge plus the authors' manual check)."""

    version = "1"

    def judge(self, benchmark, items):
        out = []
        for sample, prediction in items:
            correct, extracted = prediction.meta.get("correct"), prediction.meta.get("extracted_answer")
            if not isinstance(correct, bool) or not isinstance(extracted, str):
                raise ValueError(
                    f"{sample.sample_id}: no stored verdict ('correct' and 'extracted_answer' in the prediction's "
                    "meta); the vlm4d-stored judge scores only imported processed VLM4D outputs"
                )
            out.append(verdict_extraction(extracted, correct, self.tag))
        return out
