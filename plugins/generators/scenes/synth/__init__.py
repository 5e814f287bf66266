"""``synth-scenes``: procedural 4D scenes rendered on the CPU, with exact per-frame ground truth.

Each scene is a textured ground plane (1 m checker tiles) with 2-6 objects of six categories (people, dogs and cars
are agents with a visible front; balls, boxes and cones plain objects) moving on the ground in closed form, seen by
a static or moving camera (pan, dolly, orbit, handheld). ``vdpm-harness generate synth-scenes --n-videos N --out DIR
--seed S`` writes an H.264 video and an exact :class:`~vdpm_harness.scene.SceneTrack` per scene and a manifest.

Modules: :mod:`.scene` (categories, motions, camera paths), :mod:`.sampling` (random scenes and layouts),
:mod:`.render` (the CPU rasteriser), :mod:`.rendering` (a scene rendered frame by frame and its track, with the
ground-truth conventions) and :mod:`.generator` (the plugin: options, work items, files).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_generators(register):
    register(
        "synth-scenes",
        "vdpm_harness_plugins.generators.scenes.synth.generator:SynthScenes",
        description="Procedural 4D scenes rendered on the CPU: H.264 videos with exact SceneTrack ground truth",
    )
