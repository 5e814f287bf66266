"""Frames in and validity out, as Pi3's own loader and DSR's use of it do.

* size (yyfz/Pi3 ``pi3/utils/basic.py``, ``load_images_as_tensor``): from the first frame, scale the area to
  ``pixel_limit`` (255,000), round both sides to multiples of 14, and shrink the side that is too long for the
  aspect ratio until the area fits (1280x720 -> 672x378); every frame is resized to it with LANCZOS;
* validity (TencentARC/DSR_Suite ``data/qa_temp.py``, ``run_pi3``): ``sigmoid(conf) > 0.1`` and not a depth edge,
  where an edge is a pixel whose 3x3 neighbourhood spans more than ``rtol = 0.03`` of its depth (yyfz/Pi3
  ``pi3/utils/geometry.py``, ``depth_edge``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PIXEL_LIMIT = 255_000


def target_size(width: int, height: int, pixel_limit: int = PIXEL_LIMIT, patch: int = 14) -> tuple[int, int]:
    """``(width, height)``, multiples of ``patch``, at most ``pixel_limit`` pixels, near the frame's aspect."""
    scale = math.sqrt(pixel_limit / (width * height))
    w_target, h_target = width * scale, height * scale
    k, m = round(w_target / patch), round(h_target / patch)
    while (k * patch) * (m * patch) > pixel_limit:
        if k / m > w_target / h_target:
            k -= 1
        else:
            m -= 1
    return max(1, k) * patch, max(1, m) * patch


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(T, 3, h, w)`` float in [0, 1] at ``size = (w, h)`` (LANCZOS; the frames in
    parallel threads, as Pillow releases the GIL while it resizes)."""
    from concurrent.futures import ThreadPoolExecutor

    def resize(frame: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))

    with ThreadPoolExecutor(max_workers=min(8, len(frames) or 1)) as pool:
        out = np.stack(list(pool.map(resize, frames)))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def depth_edge(depth: torch.Tensor, rtol: float, kernel: int = 3) -> torch.Tensor:
    """``(..., H, W)`` depth -> bool edges: (max - min over the ``kernel`` neighbourhood) / depth > ``rtol``."""
    shape = depth.shape
    d = depth.reshape(-1, 1, *shape[-2:])
    span = F.max_pool2d(d, kernel, stride=1, padding=kernel // 2) + F.max_pool2d(
        -d, kernel, stride=1, padding=kernel // 2
    )
    return (span / d).nan_to_num_().gt(rtol).reshape(shape)


def validity(conf: torch.Tensor, depth: torch.Tensor, threshold: float = 0.1, rtol: float = 0.03) -> torch.Tensor:
    """DSR's valid pixels: confident (``sigmoid(conf) > threshold``) and not on a depth edge."""
    return (torch.sigmoid(conf) > threshold) & ~depth_edge(depth, rtol)
