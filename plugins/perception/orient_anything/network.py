"""Orient Anything's network (SpatialVision/Orient-Anything ``vision_tower.py``, ``DINOv2_MLP`` at d4ede77):
``dinov2``, a DINOv2 backbone, and ``down_sampler``, an MLP on the class token of its last hidden state:
``net1`` = Linear(width, out) + BatchNorm1d + ReLU, ``net2`` = Linear(out, out) + BatchNorm1d. The upstream backbone
is a subclass of transformers' ``Dinov2Model`` that only adds token dropping for training; here it is
``Dinov2Model`` itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: ``Dinov2Config`` of ``facebook/dinov2-large`` (the backbone of Orient Anything Large).
DINOV2_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4,
                "patch_size": 14, "image_size": 518, "layerscale_value": 1.0, "layer_norm_eps": 1e-6}  # fmt: skip


class Head(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net1 = nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU())
        self.net2 = nn.Sequential(nn.Linear(out_dim, out_dim), nn.BatchNorm1d(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net2(self.net1(x))


class OrientNet(nn.Module):
    def __init__(self, backbone: dict[str, Any], out_dim: int):
        super().__init__()
        from transformers import Dinov2Config, Dinov2Model

        self.dinov2 = Dinov2Model(Dinov2Config(**backbone))
        self.down_sampler = Head(int(backbone["hidden_size"]), out_dim)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 224, 224)`` normalised pixels -> ``(B, out_dim)`` logits."""
        return self.down_sampler(self.dinov2(pixel_values=pixel_values).last_hidden_state[:, 0])
