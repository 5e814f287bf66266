"""The LLM steps of the DSR data pipeline as generators on any OpenAI-compatible endpoint: ``curate`` and
``freeform-qa``.

* ``curate`` (:mod:`.curation.generator`): the caption motion filter, the agent and object classes, and the
  video-level filter with its category, with the video attached; a manifest of kept videos with their classes and
  category, and the rejected ones with the reason;
* ``freeform-qa`` (:mod:`.freeform.generator`): the free-form ("non-template") question writer over SceneTrack
  trajectories, validated and optionally verified by a second call; DSR-Bench's TSV (category ``non_temp``) and the
  training JSON, as ``dsr-templates`` writes them.

Both follow the DSR Suite (TencentARC/DSR_Suite ``data/deepseek_motion.py``, ``data/deepseek_agent.py``,
``data/gemini_motion.py``, ``data/qa_nontemp.py``; arXiv 2512.20557) with its exact prompts (``prompts.json``) and
fix its defects: bounded re-asks, whole-word yes/no, unparseable replies recorded and never guessed, every input
processed, one record per video. Shared modules: :mod:`.asking` (requests, re-asks, outcomes), :mod:`.replies`
(reading replies), :mod:`.prompts`, :mod:`.batched` (resumable batches, progress, dry run). ``docs/llm_generators.md``
lists every deviation from the original.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_generators(register):
    register(
        "curate",
        "vdpm_harness_plugins.generators.llm.curation.generator:Curate",
        description="DSR video curation by an LLM: caption motion filter, agent/object classes, video-level filter.",
    )
    register(
        "freeform-qa",
        "vdpm_harness_plugins.generators.llm.freeform.generator:FreeformQA",
        description="DSR free-form questions over SceneTrack trajectories by an LLM, validated (DSR-Bench TSV).",
    )
