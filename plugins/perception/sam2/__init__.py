"""``sam2``: SAM 2 (Ravi et al., "SAM 2: Segment Anything in Images and Videos", arXiv 2408.00714) on transformers:
``Sam2VideoModel`` tracks boxed objects through a clip, ``Sam2Model`` segments boxes in one image.

The default checkpoint ``facebook/sam2.1-hiera-large`` (Apache-2.0) is the one the DSR Suite uses; the tiny, small
and base-plus ones are faster. Module: :mod:`.tracker` (the plugin).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_trackers(register):
    register("sam2", "vdpm_harness_plugins.perception.sam2.tracker:Sam2Tracker",
             description="SAM 2.1 (facebook/sam2.1-hiera-large) on transformers: box-prompted video tracking and "
             "image segmentation")  # fmt: skip
