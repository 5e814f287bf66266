"""``orient-anything``: Orient Anything (Wang et al., "Orient Anything: Learning Robust Object Orientation
Estimation from Rendering 3D Models", arXiv 2412.18605; SpatialVision/Orient-Anything) on transformers.

The network is transformers' ``Dinov2Model`` (ViT-L/14, the configuration of ``facebook/dinov2-large``) and a
two-layer MLP head on its class token; the checkpoint (``Viglong/Orient-Anything``, ``croplargeEX2/dino_weight.pt``,
the one the DSR Suite uses; repository licence CC BY 4.0) holds both. The output logits are decoded into azimuth,
polar and rotation angles and a confidence, by the layout their number says (722 or 902).

Modules: :mod:`.network` (backbone and head), :mod:`.decoding` (logits to angles), :mod:`.checkpoint` (key renames
and loading), :mod:`.crops` (DSR's crop of a masked object), :mod:`.estimator` (the plugin).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_orientation_estimators(register):
    register("orient-anything", "vdpm_harness_plugins.perception.orient_anything.estimator:OrientAnything",
             description="Orient Anything (Viglong/Orient-Anything croplargeEX2) on a transformers DINOv2: "
             "azimuth, polar, rotation, confidence")  # fmt: skip
