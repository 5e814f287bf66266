"""The ``grounding-dino`` plugin: transformers' ``GroundingDinoForObjectDetection`` on batches of frames."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from vdpm_harness import Clip, Detection, Detector, local_rank

from .phrases import caption, nms, phrase_scores, positive_map, to_pixels


class GroundingDino(Detector):
    """Grounding DINO with the DSR Suite's phrase scoring and NMS (``scoring="phrase_span"``, default) or
    transformers' ``post_process_grounded_object_detection`` (``"transformers"``: ``box_threshold`` and
    ``text_threshold``, then the same NMS)."""

    version = "1"

    class Options(Detector.Options):
        model: str = Field(default="IDEA-Research/grounding-dino-tiny", description="Hub id or local folder.")
        revision: str | None = Field(default=None, description="Hub revision.")
        box_threshold: float = Field(default=0.35, ge=0, le=1, description="Least phrase score of a box (0.35).")
        text_threshold: float = Field(default=0.25, ge=0, le=1, description="Token threshold of the transformers "
                                      "scoring (unused by phrase_span, as in the original).")  # fmt: skip
        nms_iou: float = Field(default=0.6, gt=0, le=1, description="IoU above which the weaker box is dropped.")
        scoring: Literal["phrase_span", "transformers"] = Field(
            default="phrase_span", description="phrase_span: the DSR Suite's; transformers: its post-processing."
        )
        batch_size: int = Field(default=8, ge=1, description="Frames per forward pass.")
        device: str = Field(default="auto", description="torch device (auto: cuda:<local rank mod GPUs>, else cpu).")

    def __init__(self, options=None):
        super().__init__(options)
        self.model = None

    def load(self) -> None:
        import torch
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        o = self.options
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.device = o.device if o.device != "auto" else (f"cuda:{local_rank() % gpus}" if gpus else "cpu")
        self.processor = AutoProcessor.from_pretrained(o.model, revision=o.revision)
        self.model = GroundingDinoForObjectDetection.from_pretrained(o.model, revision=o.revision)
        self.model.eval().to(self.device)

    def detect(self, clip: Clip, frames: list[int], phrases: list[str]) -> list[list[Detection]]:
        import torch

        if self.model is None:
            self.load()
        text, spans = caption(phrases)
        names = [text[a:b] for a, b in spans]
        width, height = clip.size
        out = []
        for start in range(0, len(frames), self.options.batch_size):
            chunk = frames[start : start + self.options.batch_size]
            images = [np.asarray(clip.frames[k]) for k in chunk]
            inputs = self.processor(images=images, text=[text] * len(images), return_tensors="pt")
            with torch.inference_mode():
                outputs = self.model(**inputs.to(self.device))
            if self.options.scoring == "phrase_span":
                offsets = self.processor.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
                out += [self.phrase_span(outputs.logits[i], outputs.pred_boxes[i], offsets, spans, names, width,
                                         height) for i in range(len(chunk))]  # fmt: skip
            else:
                out += self.transformers_scoring(outputs, inputs, names, width, height)
        return out

    def phrase_span(self, logits, boxes, offsets, spans, names, width, height) -> list[Detection]:
        probabilities = logits.sigmoid().float().cpu().numpy()
        positive = positive_map(offsets, spans, probabilities.shape[1])
        score, best = phrase_scores(probabilities, positive)
        keep = np.flatnonzero(score > self.options.box_threshold)
        pixels = to_pixels(boxes.float().cpu().numpy()[keep], width, height)
        chosen = nms(pixels, score[keep], self.options.nms_iou)
        return [Detection(box=tuple(float(x) for x in pixels[j]), score=float(score[keep][j]),
                          phrase=names[int(best[keep][j])]) for j in chosen]  # fmt: skip

    def transformers_scoring(self, outputs, inputs, names, width, height) -> list[list[Detection]]:
        o = self.options
        results = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=o.box_threshold,
            text_threshold=o.text_threshold,
            target_sizes=[(height, width)] * len(outputs.logits),
        )
        found = []
        for result in results:
            boxes = result["boxes"].float().cpu().numpy().reshape(-1, 4)
            scores = result["scores"].float().cpu().numpy()
            labels = result["text_labels"] if "text_labels" in result else result["labels"]
            chosen = nms(boxes, scores, o.nms_iou)
            found.append([Detection(box=tuple(float(x) for x in boxes[j]), score=float(scores[j]),
                                    phrase=_closest(str(labels[j]), names)) for j in chosen])  # fmt: skip
        return found


def _closest(label: str, names: list[str]) -> str:
    """The asked phrase a transformers label (the words of the tokens above the text threshold) belongs to: the
    phrase sharing most words with it, the first on a tie."""
    words = set(label.lower().replace(".", " ").split())
    overlap = [len(words & set(name.split())) for name in names]
    return names[int(np.argmax(overlap))] if max(overlap, default=0) else " ".join(sorted(words))
