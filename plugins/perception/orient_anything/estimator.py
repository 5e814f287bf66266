"""The ``orient-anything`` plugin: crops of masked objects -> Orient Anything's angles and confidence, batched.

Preprocessing is the one of ``facebook/dinov2-large`` that the upstream code loads with ``AutoImageProcessor``:
transformers' ``BitImageProcessor`` resizing the shortest edge to 256 (bicubic), centre-cropping 224x224, scaling to
[0, 1] and normalising with the ImageNet mean and deviation; it is built here (no download), or loaded from
``processor`` when given.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vdpm_harness import Clip, Orientation, OrientationEstimator, local_rank

from .checkpoint import DEFAULT_FILE, DEFAULT_REPO
from .crops import crop
from .network import DINOV2_LARGE

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def dinov2_processor():
    """``facebook/dinov2-large``'s image processor settings, built locally."""
    from transformers import BitImageProcessor
    from transformers.image_utils import PILImageResampling

    return BitImageProcessor(do_resize=True, size={"shortest_edge": 256}, resample=PILImageResampling.BICUBIC,
                             do_center_crop=True, crop_size={"height": 224, "width": 224}, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True, image_mean=IMAGENET_MEAN,
                             image_std=IMAGENET_STD, do_convert_rgb=True)  # fmt: skip


class OrientAnything(OrientationEstimator):
    """Orient Anything on the DSR crop of every (frame, mask) request (the package docstring)."""

    version = "1"

    class Options(OrientationEstimator.Options):
        model: str = Field(default=DEFAULT_REPO, description="Hub id or folder holding the checkpoint, or the file.")
        checkpoint: str = Field(default=DEFAULT_FILE, description="The checkpoint's path inside 'model'.")
        revision: str | None = Field(default=None, description="Hub revision.")
        backbone: dict[str, Any] = Field(default_factory=dict, description="Overrides of the DINOv2 configuration "
                                         "(dinov2-large's; a smaller one for tests).")  # fmt: skip
        processor: str | None = Field(default=None, description="Image processor to load (default: "
                                      "dinov2-large's settings, built locally).")  # fmt: skip
        background: Literal["keep", "black"] = Field(
            default="keep", description="keep: as the original (its masking is a no-op); black: blank outside the mask."
        )
        random_weights: bool = Field(default=False, description="Random weights (timing and tests only).")
        out_dim: int = Field(default=722, description="Logits of the random-weights network (722 or 902).")
        seed: int = Field(default=0, description="Seed of the random weights.")
        batch_size: int = Field(default=64, ge=1, description="Crops per forward pass.")
        device: str = Field(default="auto", description="torch device (auto: cuda:<local rank mod GPUs>, else cpu).")
        dtype: Literal["float32", "bfloat16", "float16"] = Field(default="float32", description="Weights' type.")

    def __init__(self, options=None):
        super().__init__(options)
        self.network = None

    def load(self) -> None:
        import torch

        from .checkpoint import checkpoint_file, out_dim_of, read_state
        from .network import OrientNet

        o = self.options
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        device = o.device if o.device != "auto" else (f"cuda:{local_rank() % gpus}" if gpus else "cpu")
        backbone = {**DINOV2_LARGE, **o.backbone}
        if o.random_weights:
            torch.manual_seed(o.seed)
            with torch.device(device):
                network = OrientNet(backbone, o.out_dim)
        else:
            state = read_state(checkpoint_file(o.model, o.checkpoint, o.revision))
            with torch.device("meta"):
                network = OrientNet(backbone, out_dim_of(state))
            missing, unexpected = network.load_state_dict(state, strict=False, assign=True)
            if missing or unexpected:
                raise ValueError(f"Orient Anything checkpoint does not fit the network: missing "
                                 f"{sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}")  # fmt: skip
        self.device = device
        self.network = network.eval().to(device=device, dtype=getattr(torch, o.dtype))
        if o.processor:
            from transformers import AutoImageProcessor

            self.processor = AutoImageProcessor.from_pretrained(o.processor)
        else:
            self.processor = dinov2_processor()

    def logits(self, crops: list[np.ndarray]):
        """The network's logits ``(len(crops), out_dim)`` for RGB crops."""
        import torch

        if self.network is None:
            self.load()
        try:  # transformers' torchvision-backed processors resize on the model's device
            pixels = self.processor(images=crops, return_tensors="pt", device=self.device)["pixel_values"]
        except TypeError:
            pixels = self.processor(images=crops, return_tensors="pt")["pixel_values"]
        dtype = next(self.network.parameters()).dtype
        with torch.inference_mode():
            return self.network(pixels.to(self.device, dtype)).float().cpu()

    def estimate(self, clip: Clip, requests: list[tuple[int, Any]]) -> list[Orientation]:
        from .decoding import decode

        if not requests:
            return []
        crops = [crop(clip.frames[k], mask, self.options.background) for k, mask in requests]
        out: list[Orientation] = []
        size = self.options.batch_size
        for start in range(0, len(crops), size):
            for az, pol, rot, conf in decode(self.logits(crops[start : start + size])).tolist():
                out.append(Orientation(azimuth=az, polar=pol, rotation=rot, confidence=conf))
        return out
