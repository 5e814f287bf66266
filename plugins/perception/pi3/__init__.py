"""``pi3``: the Pi3 reconstructor (Wang et al., "π^3: Scalable Permutation-Equivariant Visual Geometry Learning",
arXiv 2507.13347; yyfz/Pi3), rebuilt on transformers.

The encoder is transformers' ``Dinov2WithRegistersModel`` (DINOv2 ViT-L/14 with 4 registers, as Pi3's
``dinov2_vitl14_reg``); the alternating frame/global RoPE decoder, the point, confidence and camera heads are this
package's own code; the official ``model.safetensors`` (``yyfz233/Pi3``) loads through a key map. **The Pi3 weights
are licensed CC BY-NC 4.0 (non-commercial).** Outputs per frame: points in the camera (OpenCV), a confidence,
camera-to-world poses; the scale is normalised, not metric.

Modules: :mod:`.config` (the architecture), :mod:`.rope` (2-D rotary embeddings), :mod:`.layers` (attention
blocks), :mod:`.heads` (point, confidence and camera heads), :mod:`.model` (the network), :mod:`.checkpoint` (the
key map and loading), :mod:`.images` (resizing and the validity mask), :mod:`.reconstructor` (the plugin).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_reconstructors(register):
    register("pi3", "vdpm_harness_plugins.perception.pi3.reconstructor:Pi3Reconstructor",
             description="Pi3 (yyfz233/Pi3, weights CC BY-NC 4.0) on a transformers DINOv2 encoder: points and "
             "camera poses")  # fmt: skip
