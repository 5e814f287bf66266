"""The Pi3 network: a transformers DINOv2-with-registers encoder, the alternating RoPE decoder and the heads.

Forward pass (yyfz/Pi3 ``pi3/models/pi3.py``, ``Pi3.forward``), for ``images`` ``(B, N, 3, H, W)`` in [0, 1] with
H and W multiples of 14:

1. ImageNet normalisation (buffers ``image_mean``, ``image_std``), then the encoder on all ``B * N`` frames; its
   patch tokens (``last_hidden_state`` without the class token and the 4 registers) are the decoder's input;
2. 5 learned register tokens are put before each frame's patches; decoder block ``i`` attends within each frame
   when ``i`` is even and across all ``N`` frames of a sample when ``i`` is odd (no frame is a reference, so the
   model is equivariant to the order of the frames); the last two blocks' outputs are concatenated;
3. the heads, in float32: local points ``(x z, y z, z)`` with ``z = exp(.)`` from the point head's ``(x, y, log z)``
   per pixel, a confidence logit per pixel, a camera-to-world pose per frame (OpenCV), and world points.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import Pi3Config
from .heads import CameraHead, HeadDecoder, PixelHead
from .layers import RopeBlock
from .rope import grid_positions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_encoder(config: Pi3Config) -> nn.Module:
    """transformers' ``Dinov2WithRegistersModel`` with Pi3's encoder configuration, without the mask token (Pi3
    deletes it: its checkpoint has none, and no input is masked)."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    encoder = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**config.encoder))
    del encoder.embeddings.mask_token
    return encoder


class Pi3(nn.Module):
    def __init__(self, config: Pi3Config):
        super().__init__()
        self.config = config
        c = config
        self.encoder = build_encoder(c)
        enc_dim = int(c.encoder["hidden_size"])
        if enc_dim != c.decoder_dim:
            raise ValueError(f"the encoder width ({enc_dim}) must equal the decoder width ({c.decoder_dim})")
        self.decoder = nn.ModuleList([RopeBlock(c.decoder_dim, c.decoder_heads, c.mlp_ratio, qk_norm=True,
                                                layer_scale=c.layer_scale, rope_base=c.rope_base)
                                      for _ in range(c.decoder_depth)])  # fmt: skip
        self.register_token = nn.Parameter(torch.randn(1, 1, c.registers, c.decoder_dim) * 1e-6)
        head = dict(in_dim=2 * c.decoder_dim, dim=c.head_dim, depth=c.head_depth, heads=c.head_heads,
                    mlp_ratio=c.mlp_ratio, rope_base=c.rope_base)  # fmt: skip
        self.point_decoder = HeadDecoder(out_dim=c.head_dim, **head)
        self.point_head = PixelHead(c.head_dim, 3, c.patch_size)
        self.conf_decoder = HeadDecoder(out_dim=c.head_dim, **head)
        self.conf_head = PixelHead(c.head_dim, 1, c.patch_size)
        self.camera_decoder = HeadDecoder(out_dim=c.camera_dim, **head)
        self.camera_head = CameraHead(c.camera_dim)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(B * N, 3, H, W)`` in [0, 1] -> patch tokens ``(B * N, h * w, C)``."""
        pixels = (images - self.image_mean) / self.image_std
        hidden = self.encoder(pixel_values=pixels).last_hidden_state
        return hidden[:, 1 + int(self.config.encoder.get("num_register_tokens", 4)) :]

    def decode(self, tokens: torch.Tensor, b: int, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens ``(B * N, h * w, C)`` -> ``(B * N, R + h * w, 2C)`` and the positions ``(B * N, R + h * w,
        2)``."""
        r = self.config.registers
        x = torch.cat([self.register_token.expand(b, n, -1, -1).reshape(b * n, r, -1).to(tokens.dtype), tokens], 1)
        length = x.shape[1]
        positions = grid_positions(h, w, r, tokens.device)
        frame_positions = positions.expand(b * n, -1, -1)
        global_positions = positions.repeat(n, 1).expand(b, -1, -1)
        outputs = []
        for i, block in enumerate(self.decoder):
            if i % 2 == 0:
                x = block(x.reshape(b * n, length, -1), frame_positions)
            else:
                x = block(x.reshape(b, n * length, -1), global_positions)
            if i >= len(self.decoder) - 2:
                outputs.append(x.reshape(b * n, length, -1))
        return torch.cat(outputs, dim=-1), frame_positions

    def forward(self, images: torch.Tensor, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``images`` ``(B, N, 3, H, W)`` in [0, 1]; ``dtype`` the autocast type of the encoder and decoder (None:
        float32). Returns ``local_points`` ``(B, N, H, W, 3)``, ``conf`` ``(B, N, H, W)`` logits, ``camera_poses``
        ``(B, N, 4, 4)`` camera-to-world, ``points`` ``(B, N, H, W, 3)`` in the world."""
        b, n, _, height, width = images.shape
        p = self.config.patch_size
        if height % p or width % p:
            raise ValueError(f"Pi3 needs frame sides that are multiples of {p}, got {width}x{height}")
        h, w = height // p, width // p
        device_type = images.device.type
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            tokens = self.encode(images.reshape(b * n, 3, height, width))
            hidden, positions = self.decode(tokens, b, n, h, w)
            point_hidden = self.point_decoder(hidden, positions)
            conf_hidden = self.conf_decoder(hidden, positions)
            camera_hidden = self.camera_decoder(hidden, positions)
        r = self.config.registers
        with torch.autocast(device_type, enabled=False):
            xyz = self.point_head(point_hidden[:, r:].float(), height, width)
            z = torch.exp(xyz[..., 2:])
            local = torch.cat([xyz[..., :2] * z, z], dim=-1).reshape(b, n, height, width, 3)
            conf = self.conf_head(conf_hidden[:, r:].float(), height, width).reshape(b, n, height, width)
            poses = self.camera_head(camera_hidden[:, r:].float()).reshape(b, n, 4, 4)
            world = torch.einsum("bnij,bnhwj->bnhwi", poses[..., :3, :3], local) + poses[:, :, None, None, :3, 3]
        return {"local_points": local, "conf": conf, "camera_poses": poses, "points": world}
