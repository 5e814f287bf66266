"""Two-dimensional rotary position embeddings on a patch grid, as Pi3 uses them (base 100).

A head's channels are split in two halves: the first half is rotated by the token's row ``y``, the second by its
column ``x``. Each half applies the one-dimensional rotary embedding of RoFormer (Su et al., arXiv 2104.09864) in its
"rotate half" form: with ``d`` channels, frequencies ``base ** (-2i / d)`` for ``i < d / 2``, each used by channel
``i`` and channel ``i + d / 2``. The register tokens sit at position (0, 0), the patch ``(row, col)`` at
``(row + 1, col + 1)`` (yyfz/Pi3 ``pi3/models/pi3.py``, ``decode``).
"""

from __future__ import annotations

import torch


def grid_positions(height: int, width: int, registers: int, device=None) -> torch.Tensor:
    """``(registers + height * width, 2)`` integer ``(y, x)`` positions: zeros for the registers, then the patches
    in row-major order, shifted by one."""
    y, x = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    patches = torch.stack([y.reshape(-1), x.reshape(-1)], dim=1) + 1
    return torch.cat([torch.zeros(registers, 2, dtype=patches.dtype, device=device), patches])


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _rope_1d(x: torch.Tensor, position: torch.Tensor, base: float) -> torch.Tensor:
    """``x`` ``(B, H, N, d)`` rotated by ``position`` ``(B, N)``."""
    d = x.shape[-1]
    inverse = 1.0 / base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angle = position.to(torch.float32)[..., None] * inverse  # (B, N, d / 2)
    angle = torch.cat([angle, angle], dim=-1)[:, None]  # (B, 1, N, d)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    return x * cos + _rotate_half(x) * sin


def apply_rope_2d(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """``x`` ``(B, heads, N, D)`` with rows in its first ``D / 2`` channels and columns in the rest;
    ``positions`` ``(B, N, 2)`` as ``(y, x)``."""
    rows, cols = x.chunk(2, dim=-1)
    return torch.cat([_rope_1d(rows, positions[..., 0], base), _rope_1d(cols, positions[..., 1], base)], dim=-1)
