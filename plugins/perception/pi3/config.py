"""The architecture of Pi3 (yyfz/Pi3 ``pi3/models/pi3.py`` at 9fa3ddb): the sizes of the checkpoint ``yyfz233/Pi3``.

* encoder: DINOv2 ViT-L/14 with 4 registers (24 blocks, width 1024, 16 heads, LayerScale), as transformers'
  ``Dinov2WithRegistersConfig``; its patch tokens after the final LayerNorm are the decoder's input;
* decoder: 36 blocks of width 1024 (16 heads, MLP x4, QK-LayerNorm, LayerScale), even blocks attending within a
  frame and odd blocks across all frames, with 5 learned register tokens per frame and 2-D RoPE (base 100) on the
  patch grid; its output is the concatenation of the last two blocks (width 2048);
* heads: a point and a confidence decoder (5 frame-wise RoPE blocks of width 1024, 16 heads) with linear heads to
  14x14 pixels, and a camera decoder (out 512) with a residual MLP head to a rotation and a translation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: ``Dinov2WithRegistersConfig`` of Pi3's encoder (``dinov2_vitl14_reg``: img_size 518, patch 14, 4 registers,
#: LayerScale 1.0, LayerNorm eps 1e-6).
ENCODER_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4,
                 "patch_size": 14, "image_size": 518, "num_register_tokens": 4, "layerscale_value": 1.0,
                 "layer_norm_eps": 1e-6}  # fmt: skip


@dataclass
class Pi3Config:
    encoder: dict[str, Any] = field(default_factory=lambda: dict(ENCODER_LARGE))
    decoder_dim: int = 1024
    decoder_depth: int = 36
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    registers: int = 5
    head_dim: int = 1024
    head_depth: int = 5
    head_heads: int = 16
    camera_dim: int = 512
    rope_base: float = 100.0
    layer_scale: float = 0.01

    @property
    def patch_size(self) -> int:
        return int(self.encoder.get("patch_size", 14))

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> Pi3Config:
        """The large configuration with ``overrides`` (``encoder`` entries are merged into the encoder's)."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown Pi3 architecture fields {unknown}; known: {sorted(known)}")
        encoder = {**ENCODER_LARGE, **overrides.pop("encoder", {})}
        config = cls(encoder=encoder, **overrides)
        if config.decoder_depth < 2 or config.decoder_depth % 2:
            raise ValueError(f"decoder_depth must be even and at least 2 (frame and global blocks alternate), got "
                             f"{config.decoder_depth}")  # fmt: skip
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
