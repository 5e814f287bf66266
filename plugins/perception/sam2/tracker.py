"""The ``sam2`` tracker: one transformers video session per prompt frame, all its objects at once.

As the DSR Suite tracks (TencentARC/DSR_Suite ``data/qa_utils.py``, ``extract_obj_video_mask``): every box is added
on its frame as one object, the session propagates forward through the clip (and here also backward when the
prompt frame is not the first), and a mask is ``logits > 0`` upsampled to the frame's size (transformers'
``Sam2VideoProcessor.post_process_masks`` with ``mask_threshold=0``). The single-image segmenter is the DSR Suite's
``SAM2ImagePredictor.predict(box=..., multimask_output=False)``, here ``Sam2Model`` with ``multimask_output=False``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from vdpm_harness import Clip, Tracker, Tracks, local_rank


class Sam2Tracker(Tracker):
    """SAM 2 video tracking and image segmentation (the module docstring)."""

    version = "1"

    class Options(Tracker.Options):
        model: str = Field(default="facebook/sam2.1-hiera-large", description="Hub id or local folder.")
        revision: str | None = Field(default=None, description="Hub revision.")
        mask_threshold: float = Field(default=0.0, description="Mask logit threshold (0, as the original).")
        device: str = Field(default="auto", description="torch device (auto: cuda:<local rank mod GPUs>, else cpu).")
        dtype: Literal["float32", "bfloat16", "float16"] = Field(default="float32", description="Model type.")

    def __init__(self, options=None):
        super().__init__(options)
        self.video_model = None
        self.image_model = None

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.options.dtype)

    def _device(self) -> str:
        import torch

        o = self.options
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return o.device if o.device != "auto" else (f"cuda:{local_rank() % gpus}" if gpus else "cpu")

    def load(self) -> None:
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        o = self.options
        self.device = self._device()
        self.video_processor = Sam2VideoProcessor.from_pretrained(o.model, revision=o.revision)
        self.video_model = Sam2VideoModel.from_pretrained(o.model, revision=o.revision)
        self.video_model.eval().to(self.device, self.torch_dtype)

    def track(self, clip: Clip, frame: int, boxes) -> Tracks:
        import torch

        if self.video_model is None:
            self.load()
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        width, height = clip.size
        masks = np.zeros((len(boxes), len(clip), height, width), bool)
        if not len(boxes):
            return Tracks.from_masks(masks)
        processor, model = self.video_processor, self.video_model
        session = processor.init_video_session(video=list(np.asarray(clip.frames)), inference_device=self.device,
                                               processing_device=self.device, video_storage_device=self.device,
                                               dtype=self.torch_dtype)  # fmt: skip
        ids = list(range(1, len(boxes) + 1))
        # a copy: transformers 5.23 empties the list it is given
        processor.add_inputs_to_inference_session(session, frame_idx=int(frame), obj_ids=list(ids),
                                                  input_boxes=[boxes.tolist()])  # fmt: skip
        order = [list(session.obj_ids).index(i) for i in ids]
        with torch.inference_mode():
            model(inference_session=session, frame_idx=int(frame))
            directions = [False] + ([True] if frame > 0 else [])
            for reverse in directions:
                for output in model.propagate_in_video_iterator(session, start_frame_idx=int(frame), reverse=reverse):
                    k = int(output.frame_idx)
                    upsampled = processor.post_process_masks(
                        [output.pred_masks],
                        original_sizes=[[height, width]],
                        binarize=True,
                        mask_threshold=self.options.mask_threshold,
                    )[0]
                    masks[:, k] = upsampled[order, 0].cpu().numpy()
        return Tracks.from_masks(masks)

    def segment(self, image, boxes) -> np.ndarray:
        import torch
        from transformers import Sam2Model, Sam2Processor

        o = self.options
        if self.image_model is None:
            self.image_processor = Sam2Processor.from_pretrained(o.model, revision=o.revision)
            self.image_model = Sam2Model.from_pretrained(o.model, revision=o.revision)
            self.image_model.eval().to(self._device(), self.torch_dtype)
        image = np.asarray(image)
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, *image.shape[:2]), bool)
        inputs = self.image_processor(images=image, input_boxes=[boxes.tolist()], return_tensors="pt")
        device = next(self.image_model.parameters()).device
        with torch.inference_mode():
            outputs = self.image_model(pixel_values=inputs["pixel_values"].to(device, self.torch_dtype),
                                       input_boxes=inputs["input_boxes"].to(device, self.torch_dtype),
                                       multimask_output=False)  # fmt: skip
        masks = self.image_processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"], mask_threshold=o.mask_threshold
        )[0]
        return masks[:, 0].numpy().astype(bool)
