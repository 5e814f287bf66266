"""The image Orient Anything sees for a masked object, as the DSR Suite cuts it (TencentARC/DSR_Suite
``data/qa_utils.py``, ``extract_orient`` with ``mask2bbox``).

The crop is the mask's bounding box (inclusive pixel indices ``x0..x1``, ``y0..y1``) widened by the same margin
on both sides of each axis, ``min(10, x0, W - x1)`` horizontally and ``min(10, y0, H - y1)`` vertically, and cut as
``[y0 - my, y1 + my)`` by ``[x0 - mx, x1 + mx)`` (so with no margin the last row and column are left out, as in the
original). The original means to blank the background but its line (``img[mask == 0][:, -1] = 0``) writes into a
copy, so the background stays: ``background="keep"`` reproduces that; ``"black"`` sets the pixels outside the mask
to black, as a cut-out's transparent background becomes when converted to RGB.
"""

from __future__ import annotations

import numpy as np


def crop(image: np.ndarray, mask: np.ndarray, background: str = "keep") -> np.ndarray:
    """``(H, W, 3)`` image and ``(H, W)`` non-empty mask -> the object's crop (see the module docstring)."""
    mask = np.asarray(mask, bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        raise ValueError("empty mask")
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    height, width = mask.shape
    my, mx = min(10, y0, height - y1), min(10, x0, width - x1)
    image = np.asarray(image)
    if background == "black":
        image = np.where(mask[..., None], image, 0).astype(image.dtype)
    elif background != "keep":
        raise ValueError(f"unknown background {background!r}; known: keep, black")
    out = image[y0 - my : y1 + my, x0 - mx : x1 + mx]
    if out.size == 0:  # a one-pixel-wide mask on the border: the original's slice is empty; keep the pixel
        out = image[y0 : y1 + 1, x0 : x1 + 1]
    return out
