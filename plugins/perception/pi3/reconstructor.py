"""The ``pi3`` reconstructor plugin: Pi3 once on all frames of a clip, as the DSR Suite's generator runs it.

TencentARC/DSR_Suite ``data/qa_temp.py`` (``run_pi3``) runs Pi3 on the 32 sampled frames at once, under bfloat16
autocast (float16 below compute capability 8), and keeps the per-frame camera points, the camera-to-world poses and
the validity mask (:mod:`.images`); the points and the mask are later resampled to the frames' size by nearest
neighbour (:meth:`vdpm_harness.Reconstruction.at_size`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vdpm_harness import Clip, Reconstruction, Reconstructor, local_rank

from .config import Pi3Config
from .images import PIXEL_LIMIT, resize_frames, target_size, validity

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str) -> str:
    """``auto``: this process's GPU under torchrun, ``cuda:<LOCAL_RANK mod GPUs>`` (so several processes can share
    each GPU), when CUDA is available; else the CPU."""
    import torch

    if device != "auto":
        return device
    return f"cuda:{local_rank() % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"


class Pi3Reconstructor(Reconstructor):
    """Pi3 points and camera poses (the package docstring). **The yyfz233/Pi3 weights are CC BY-NC 4.0.**"""

    version = "1"

    class Options(Reconstructor.Options):
        model: str = Field(default="yyfz233/Pi3", description="Hub id, folder with model.safetensors, or the file.")
        revision: str | None = Field(default=None, description="Hub revision of the checkpoint.")
        architecture: dict[str, Any] = Field(default_factory=dict, description="Overrides of the Pi3 architecture "
                                             "(a smaller network for tests).")  # fmt: skip
        random_weights: bool = Field(default=False, description="Random weights instead of the checkpoint (timing "
                                     "and tests only).")  # fmt: skip
        seed: int = Field(default=0, description="Seed of the random weights.")
        device: str = Field(default="auto", description="torch device (auto: cuda:<local rank mod GPUs>, else cpu).")
        dtype: Literal[DTYPES] = Field(
            default="auto",
            description="Autocast type of the trunk (auto: bfloat16 on "
            "GPUs of compute capability >= 8, float16 below, float32 on the CPU).",
        )
        pixel_limit: int = Field(default=PIXEL_LIMIT, ge=196, description="Most pixels per frame (255000).")
        conf_threshold: float = Field(default=0.1, ge=0, le=1, description="Valid where sigmoid(conf) > this.")
        edge_rtol: float = Field(default=0.03, gt=0, description="Relative depth span of a depth edge (0.03).")

    def __init__(self, options=None):
        super().__init__(options)
        self.config = Pi3Config.from_overrides(self.options.architecture)
        self.network = None

    def load(self) -> None:
        import torch

        from .checkpoint import checkpoint_file, load_checkpoint
        from .model import Pi3

        o = self.options
        self.device = resolve_device(o.device)
        if o.random_weights:
            torch.manual_seed(o.seed)
            with torch.device(self.device):  # initialised where it runs: a billion parameters
                network = Pi3(self.config)
        else:
            path = checkpoint_file(o.model, o.revision)
            with torch.device("meta"):
                network = Pi3(self.config)
            load_checkpoint(network, path)
        self.network = network.eval().to(self.device)

    def autocast_dtype(self):
        import torch

        o = self.options
        if o.dtype != "auto":
            return None if o.dtype == "float32" else getattr(torch, o.dtype)
        if not self.device.startswith("cuda"):
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(self.device)[0] >= 8 else torch.float16

    def reconstruct(self, clip: Clip) -> Reconstruction:
        import torch

        if self.network is None:
            self.load()
        width, height = clip.size
        size = target_size(width, height, self.options.pixel_limit, self.config.patch_size)
        images = resize_frames(np.asarray(clip.frames), size).to(self.device)
        with torch.inference_mode():
            out = self.network(images[None], dtype=self.autocast_dtype())
            local = out["local_points"][0]
            valid = validity(out["conf"][0], local[..., 2], self.options.conf_threshold, self.options.edge_rtol)
        return Reconstruction(
            local_points=local.float().cpu().numpy(),
            valid=valid.cpu().numpy(),
            camera_to_world=out["camera_poses"][0].double().cpu().numpy(),
            scale="normalized",
        )

    def describe(self) -> dict[str, Any]:
        return {"model": self.options.model, "architecture": self.config.to_dict(), "licence": "CC BY-NC 4.0"}
