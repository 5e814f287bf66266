"""``dsr``: DSR-Bench, the dynamic spatial reasoning benchmark of the DSR Suite (TencentARC/DSR_Suite, arXiv
2512.20557; 1484 four-option questions on Koala-36M clips), with the two published evaluations side by side.

Modules:

* :mod:`.benchmark`: the ``DSRBench`` benchmark (options, samples, requests, extraction, scoring, aggregation,
  judge glue, data pull and verify);
* :mod:`.table`: the question table in VLMEvalKit's TSV and the authors' parquet layouts, the categories, the video
  archive and where the videos are;
* :mod:`.prompts`: the two official prompt layouts and the frame presets;
* :mod:`.extraction`: the harness's rule extractor, the core's ladder under DSR-Bench's settings;
* :mod:`.parity`: replicas of VLMEvalKit's and the authors' upstream rule decisions, reported beside it;
* :mod:`.judge`: VLMEvalKit's LLM scorer prompt and reply parsing.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_benchmarks(register):
    register(
        "dsr",
        "vdpm_harness_plugins.benchmarks.dsr.benchmark:DSRBench",
        aliases=("dsr-bench",),
        description="DSR-Bench (1484 dynamic spatial reasoning MCQs; VLMEvalKit TSV or authors' parquet); "
        "needs data_dir.",
    )
