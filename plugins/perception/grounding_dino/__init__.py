"""``grounding-dino``: Grounding DINO (Liu et al., "Grounding DINO: Marrying DINO with Grounded Pre-Training for
Open-Set Object Detection", arXiv 2303.05499) on transformers, with the DSR Suite's phrase scoring.

``IDEA-Research/grounding-dino-tiny`` is the Swin-T OGC checkpoint the DSR Suite uses (``groundingdino_swint_ogc``),
converted for transformers (Apache-2.0). Each phrase is scored on each query by its mean token probability, boxes
above 0.35 are kept and overlapping ones removed at IoU 0.6, as TencentARC/DSR_Suite ``data/qa_utils.py`` does;
transformers' own post-processing is the other choice.

Modules: :mod:`.phrases` (caption, phrase spans, phrase scores, NMS), :mod:`.detector` (the plugin).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_detectors(register):
    register("grounding-dino", "vdpm_harness_plugins.perception.grounding_dino.detector:GroundingDino",
             description="Grounding DINO (IDEA-Research/grounding-dino-tiny) on transformers, DSR phrase scoring "
             "and NMS")  # fmt: skip
