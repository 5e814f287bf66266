"""``video-tracks``: real videos perceived into SceneTracks by a detector, a tracker, a 3D reconstructor and an
orientation estimator, each a plugin chosen by id.

The pipeline is the geometry extraction of the DSR Suite's data generator (TencentARC/DSR_Suite ``data/qa_temp.py``
and ``data/qa_utils.py``; arXiv 2512.20557): 32 frames sampled uniformly, Grounding DINO on the first frame with the
video's agent and object classes, SAM 2 tracking every detection, Pi3 once on the 32 frames (points and camera
poses), each object's 3D position the mean of its masked points, and Orient Anything's angles for the agents. The
result is one :class:`~vdpm_harness.SceneTrack` per video, which ``dsr-templates`` turns into questions unchanged.
On synthetic videos (``synth-scenes``) the ``oracle`` stages read the exact truth, and every run measures each
stage's error and, with ``--questions``, how often it changes the answers (``docs/perception.md``).

Modules: :mod:`.generator` (the plugin: options, work items, files), :mod:`.sampling` (frames and phrases),
:mod:`.perceive` (the stages on one clip), :mod:`.assemble` (the SceneTrack), :mod:`.intermediates` (per-stage
outputs), :mod:`.evaluate` (errors against the truth), :mod:`.agreement` (answers on perceived and exact geometry).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_generators(register):
    register(
        "video-tracks",
        "vdpm_harness_plugins.generators.scenes.video_tracks.generator:VideoTracks",
        description="Videos perceived into SceneTracks by detector, tracker, reconstructor and orientation plugins",
    )
