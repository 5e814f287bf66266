"""Orient Anything's logits to angles, chosen by the number of logits.

Each angle is a distribution over 1-degree bins, decoded by its argmax; the last two logits give the probability
that the object has a meaningful front (the first of their softmax). Layouts:

* 722 = 360 + 180 + 180 + 2 (``croplargeEX2``, the checkpoint of the DSR Suite; TencentARC/DSR_Suite
  ``data/inference.py``, ``get_3angle``): azimuth ``argmax[0:360]`` in [0, 360), polar ``argmax[360:540] - 90`` in
  [-90, 90), rotation ``argmax[540:720] - 90`` in [-90, 90);
* 902 = 360 + 180 + 360 + 2 (the newer checkpoints; SpatialVision/Orient-Anything ``inference.py``): rotation
  ``argmax[540:900] - 180`` in [-180, 180).

The upstream ``inference.py`` always slices the 902 layout, which on a 722 checkpoint would read the confidence
logits into the rotation; here the layout follows the checkpoint.
"""

from __future__ import annotations

import torch

#: out_dim -> rotation bins and offset
LAYOUTS = {722: (180, 90), 902: (360, 180)}


def decode(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 722 | 902)`` logits -> ``(B, 4)``: azimuth, polar, rotation (degrees), confidence."""
    out_dim = logits.shape[-1]
    if out_dim not in LAYOUTS:
        raise ValueError(f"Orient Anything: {out_dim} logits; known layouts {sorted(LAYOUTS)}")
    bins, offset = LAYOUTS[out_dim]
    logits = logits.float()
    azimuth = logits[:, 0:360].argmax(dim=-1).float()
    polar = logits[:, 360:540].argmax(dim=-1).float() - 90
    rotation = logits[:, 540 : 540 + bins].argmax(dim=-1).float() - offset
    confidence = torch.softmax(logits[:, -2:], dim=-1)[:, 0]
    return torch.stack([azimuth, polar, rotation, confidence], dim=1)
