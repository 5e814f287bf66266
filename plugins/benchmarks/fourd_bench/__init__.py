"""``4dbench-qa`` and ``4dbench-caption``: 4D-Bench (Zhu et al., ICCV 2025, arXiv 2503.17827) object question
answering and captioning, evaluated as the official scripts of ``WenxuanZhu1103/4D-Bench`` (commit ``f40f49a``) do.

**Data** (``vdpm-harness data pull 4dbench-qa --to DIR``, the Hugging Face dataset ``vxuanz/4D-Bench``; then
``--bench-arg data_dir=DIR``), relative to ``data_dir`` unless given as absolute paths:

* QA: ``4D_Object_Question_Answering/data/4d_qa.json``, a JSON object ``{"<uid>_<suffix>": {..., "Answer index":
  1-4, "Category": ...}}``, and ``.../4d_object_multi_view_videos/<uid>/view_<k>_rgb_white_bg.mp4``;
* captions: ``4D_Object_Captioning/data/human_annotations.csv`` (``folder_name``, ``caption_1`` ... ``caption_5``)
  and the same video layout under ``4D_Object_Captioning/data/``.

Modules:

* :mod:`.qa`: the ``4dbench-qa`` benchmark and the official answer parser;
* :mod:`.caption`: the ``4dbench-caption`` benchmark and the caption post-processing;
* :mod:`.multiview`: what both share: options, data paths, the 18 frames (views 1, 8, 16 x 6) of a request;
* :mod:`.families`: what each official per-model script does (prompt variant, sampler, token limit, layout);
* :mod:`.prompts`: the official prompt strings;
* :mod:`.frames`: sampler A, frames ``i * (T // 6)`` decoded into a PNG cache;
* :mod:`.data`: the download and the dataset revision;
* :mod:`.metrics`: the offline caption metrics and the human baseline;
* :mod:`.gpt_rubric`: the GPT-Appearance and GPT-Action rubrics.

Both benchmarks are registered as ``"module:attr"`` strings, so listing plugins imports none of these modules, and
both belong to the group ``4dbench``: ``--bench 4dbench`` runs QA and captioning (the two tasks of the paper).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_benchmarks(register):
    register(
        "4dbench-qa",
        "vdpm_harness_plugins.benchmarks.fourd_bench.qa:FourDBenchQA",
        group="4dbench",
        description="4D-Bench object QA: 751 questions on multi-view 4D objects (views 1/8/16 x 6 frames).",
    )
    register(
        "4dbench-caption",
        "vdpm_harness_plugins.benchmarks.fourd_bench.caption:FourDBenchCaption",
        group="4dbench",
        description="4D-Bench object captioning: pycocoevalcap metrics vs 5 human captions; GPT rubrics via --judge.",
    )
