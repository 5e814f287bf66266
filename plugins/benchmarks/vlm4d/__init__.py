"""``vlm4d``: VLM4D (Zhou et al., ICCV 2025, arXiv 2508.02095), spatiotemporal multiple choice on real and synthetic
videos, evaluated as the official code ``ShijieZhou-UCLA/VLM4D`` (commit ``23f2680``) does; and ``vlm4d-stored``, the
judge that scores imported official outputs with their stored verdicts.

Modules:

* :mod:`.benchmark`: the ``VLM4D`` benchmark (samples, requests, scoring, the official table, data pull and verify);
* :mod:`.questions`: the shipped question files (checked against their sha256) and the official categories;
* :mod:`.prompts`: the official question templates and the o4-mini judge's messages;
* :mod:`.extraction`: the rule extractor and judge verdicts as extractions;
* :mod:`.published`: ``vdpm-harness import vlm4d PATH``, reading the official output files;
* :mod:`.stored_judge`: the ``vlm4d-stored`` judge.

Both are registered as ``"module:attr"`` strings, so listing plugins imports none of these modules.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_benchmarks(register):
    register(
        "vlm4d",
        "vdpm_harness_plugins.benchmarks.vlm4d.benchmark:VLM4D",
        description="VLM4D (ICCV 2025): 1,816 spatiotemporal MCQs on real and synthetic videos; official table.",
    )


@hookimpl
def register_judges(register):
    register(
        "vlm4d-stored",
        "vdpm_harness_plugins.benchmarks.vlm4d.stored_judge:StoredVerdictJudge",
        description="The verdicts stored in imported official VLM4D outputs (paper parity).",
    )
