"""Frames from Qwen2.5-VL's flattened patches: what the Pi3 encoder of the GSM sees.

The Qwen2-VL image and video processors (transformers ``Qwen2VLVideoProcessor.patchify`` /
``Qwen2VLImageProcessor.patchify``) cut each group of ``temporal_patch_size`` frames of a video (an image: the image
repeated ``temporal_patch_size`` times) into rows of ``C * temporal_patch_size * patch_size**2`` values, ordered
``(grid_t, grid_h / merge, grid_w / merge, merge, merge)`` over rows and ``(C, temporal, patch_y, patch_x)`` within a
row. :func:`unflatten` undoes exactly that (a view and a permutation, no arithmetic), so the frames the processor
was given come back bit for bit before normalisation.

The GSM then swaps the processor's CLIP normalisation for the ImageNet one the Pi3 encoder was trained with
(:func:`renormalise`), as the original does in ``Qwen2_5_VisionTransformerPretrainedModel_Spatial.forward``
(``TencentARC/DSR_Suite``, ``model/qwen-vl-finetune/qwenvl/train/qwen_vl_spatial.py``): every DINOv2 patch of 14
pixels is then exactly one Qwen patch, so the encoder's patch grid is Qwen's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def unflatten(patches: torch.Tensor, grid: Sequence[int], *, temporal_patch_size: int = 2, patch_size: int = 14,
              merge_size: int = 2, channels: int = 3) -> torch.Tensor:  # fmt: skip
    """The frames ``(grid_t * temporal_patch_size, C, grid_h * patch_size, grid_w * patch_size)`` of one image or
    video from its rows of processor patches, ``grid = (grid_t, grid_h, grid_w)``."""
    t, h, w = (int(v) for v in grid)
    if patches.shape != (t * h * w, channels * temporal_patch_size * patch_size**2):
        raise ValueError(f"{tuple(patches.shape)} patches do not fit the grid {t}x{h}x{w}")
    m = merge_size
    x = patches.view(t, h // m, w // m, m, m, channels, temporal_patch_size, patch_size, patch_size)
    # (t, h/m, w/m, mh, mw, C, tp, py, px) -> (t, tp, C, h/m, mh, py, w/m, mw, px)
    x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8)
    return x.reshape(t * temporal_patch_size, channels, h * patch_size, w * patch_size)


def split_frames(pixel_values: torch.Tensor, grid_thw: torch.Tensor, **sizes) -> list[torch.Tensor]:
    """:func:`unflatten` for each image or video of a processor batch (rows concatenated in ``grid_thw`` order)."""
    counts = grid_thw.prod(-1).tolist()
    return [unflatten(rows, grid, **sizes) for rows, grid in zip(pixel_values.split(counts), grid_thw.tolist())]


def renormalise(frames: torch.Tensor, source_mean: Sequence[float], source_std: Sequence[float],
                target_mean: Sequence[float], target_std: Sequence[float]) -> torch.Tensor:  # fmt: skip
    """Frames normalised with ``source`` mean and std, normalised with ``target`` instead (in float32):
    ``(x * source_std + source_mean - target_mean) / target_std`` per channel."""

    def column(values):
        return torch.tensor(values, dtype=torch.float32, device=frames.device).view(1, -1, 1, 1)

    x = frames.float() * column(source_std) + column(source_mean)
    return (x - column(target_mean)) / column(target_std)
