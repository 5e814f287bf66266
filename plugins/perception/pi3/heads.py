"""Pi3's output heads (yyfz/Pi3 ``pi3/models/layers/transformer_head.py`` and ``camera_head.py``), in the parameter
layout of its checkpoint.

* :class:`HeadDecoder`: ``projects`` (a linear map from the decoder's 2048 channels), frame-wise RoPE blocks without
  QK-norm or LayerScale, ``linear_out``;
* :class:`PixelHead`: a linear map of each patch token to ``channels x 14 x 14`` values, laid out on the image by a
  pixel shuffle;
* :class:`CameraHead`: two residual MLP blocks (three linear layers with ReLU each, added to the input), the mean
  over the frame's patches, a two-layer MLP, then ``fc_t`` (translation) and ``fc_rot`` (nine numbers, rows
  normalised and projected to the nearest rotation by SVD, determinant +1): a camera-to-world pose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import RopeBlock


class HeadDecoder(nn.Module):
    def __init__(self, in_dim: int, dim: int, out_dim: int, depth: int, heads: int, mlp_ratio: float,
                 rope_base: float):  # fmt: skip
        super().__init__()
        self.projects = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList([RopeBlock(dim, heads, mlp_ratio, qk_norm=False, layer_scale=None,
                                               rope_base=rope_base) for _ in range(depth)])  # fmt: skip
        self.linear_out = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.projects(x)
        for block in self.blocks:
            x = block(x, positions)
        return self.linear_out(x)


class PixelHead(nn.Module):
    def __init__(self, dim: int, channels: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(dim, channels * patch * patch)

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``tokens`` ``(B, h * w, dim)`` -> ``(B, height, width, channels)``."""
        b = tokens.shape[0]
        grid = self.proj(tokens).transpose(1, 2).reshape(b, -1, height // self.patch, width // self.patch)
        return F.pixel_shuffle(grid, self.patch).permute(0, 2, 3, 1)


class ResidualMlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.res_conv1, self.res_conv2, self.res_conv3 = (nn.Linear(dim, dim) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.res_conv3(F.relu(self.res_conv2(F.relu(self.res_conv1(x))))))


def nearest_rotation(m: torch.Tensor) -> torch.Tensor:
    """``(B, 9)`` -> ``(B, 3, 3)`` rotations: rows normalised, then the orthogonal polar factor with det +1."""
    m = F.normalize(m.reshape(-1, 3, 3), dim=-1)
    u, _, vh = torch.linalg.svd(m)
    sign = torch.ones_like(m[:, 0])
    sign[:, 2] = torch.det(u @ vh)
    return u @ torch.diag_embed(sign) @ vh


class CameraHead(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.res_conv = nn.ModuleList([ResidualMlp(dim) for _ in range(2)])
        self.more_mlps = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.fc_t = nn.Linear(dim, 3)
        self.fc_rot = nn.Linear(dim, 9)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``(B, h * w, dim)`` -> camera-to-world ``(B, 4, 4)``."""
        for block in self.res_conv:
            tokens = block(tokens)
        feature = self.more_mlps(tokens.mean(dim=1)).float()
        pose = torch.zeros(len(feature), 4, 4, device=feature.device)
        pose[:, :3, :3] = nearest_rotation(self.fc_rot(feature))
        pose[:, :3, 3] = self.fc_t(feature)
        pose[:, 3, 3] = 1.0
        return pose
