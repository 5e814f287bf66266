"""``dsr-templates``: the 12 template questions of DSR-Bench written over a folder of SceneTracks.

The questions are those of the DSR Suite's template generator (TencentARC/DSR_Suite, ``data/qa_temp.py`` with the
question strings of ``data/template.py``; the paper, arXiv 2512.20557), with the perception of the original (Pi3,
Grounding DINO, SAM 2, Orient Anything) replaced by the exact geometry of the tracks. Two defaults differ from the
original, whose questions are partly answerable without the video: the distractors are other true answers of the
same template in the same window of the video, the correct one drawn uniformly among the four
(``distractors="matched"``), and speeds are measured per second of the track's timestamps (``speed_unit="second"``);
``--distractors original --speed-unit step`` restores the original's design.

``vdpm-harness generate dsr-templates --tracks DIR --qa-per-video K --out OUT --seed S`` reads every ``*.npz``
SceneTrack of ``DIR`` (its video is the track's ``video`` field, relative to ``DIR``, or ``<track name>.mp4``), makes
``K`` attempts per video and writes into ``OUT``:

* ``DSRBench.tsv``: the DSR-Bench layout of VLMEvalKit (``index, video, question, options, answer, task_type``, the
  options a JSON list of ``"A. ..."`` strings), so ``--bench dsr --bench-arg data_dir=OUT`` evaluates it;
* ``train_qas.json``: the training conversations of the DSR Suite's ``qa_json_gen.py``;
* ``qa_pairs.json``: the original's records, ``{videoID: [{"Type", "Question", A-D, "Correct"}, ...]}``;
* ``provenance.jsonl``: per question, its TSV index, scene seed, sampled frame indices and timestamps, window,
  observer, targets and the underlying numbers (distances, vectors, positions, speeds) with the thresholds;
* ``stats.json``: the yield per template (attempted, produced, failures by reason), also printed;
* the videos, copied beside the tables (and, with ``trim_future``, the clips cut after frame 29 that the prediction
  questions then refer to).

Modules: :mod:`.generator` (the plugin: work items, output files, yield statistics), :mod:`.qa` (the questions of
one video), :mod:`.templates` (the 12 templates), :mod:`.sampling` (a track at its 32 sampled frames),
:mod:`.describers` (answer texts and distractors), :mod:`.options` and :mod:`.failures`. ``docs/dsr_templates.md``
maps the original's perception to the geometry used here and lists every deviation.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_generators(register):
    register(
        "dsr-templates",
        "vdpm_harness_plugins.generators.questions.dsr_templates.generator:DSRTemplates",
        description="The 12 DSR template questions over SceneTracks: DSR-Bench TSV, training JSON, provenance.",
    )
