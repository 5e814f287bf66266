"""The DSR Suite's use of Grounding DINO's outputs (TencentARC/DSR_Suite ``data/qa_utils.py``:
``get_grounding_output`` with ``token_spans``, ``extract_token``, ``nms``).

* caption: the classes joined by ``". "`` with a final ``"."``, lower-case (``"ball. person."``);
* phrase spans: each class's characters in that caption (the original counts them assuming exact ``". "``
  separators; here they are found in the final caption, so classes with spaces stay aligned);
* phrase score of a query: the mean over the phrase's tokens of ``sigmoid(logit)`` (Grounding DINO's
  ``create_positive_map_from_span``, rows normalised to sum 1, times the token probabilities); a query is kept when
  its best phrase scores above ``box_threshold`` (0.35) and is labelled with that phrase;
* boxes: ``(cx, cy, w, h)`` normalised -> pixels; non-maximum suppression over all phrases, by score, dropping boxes
  whose IoU with a kept one exceeds 0.6, areas counted with the ``+1`` pixel convention.
"""

from __future__ import annotations

import numpy as np


def caption(phrases: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The caption of ``phrases`` and each phrase's ``(start, end)`` characters in it."""
    names = [" ".join(p.lower().split()) for p in phrases]
    spans, position = [], 0
    for name in names:
        spans.append((position, position + len(name)))
        position += len(name) + 2
    return ". ".join(names) + ".", spans


def positive_map(offsets: list[tuple[int, int]], spans: list[tuple[int, int]], length: int) -> np.ndarray:
    """``(n_phrases, length)``: per phrase, equal weights summing to 1 on the tokens whose characters
    (``offsets``, from the tokenizer; ``(0, 0)`` for special tokens) overlap its span."""
    out = np.zeros((len(spans), length))
    for i, (start, end) in enumerate(spans):
        tokens = [t for t, (a, b) in enumerate(offsets[:length]) if b > a and a < end and b > start]
        if tokens:
            out[i, tokens] = 1.0 / len(tokens)
    return out


def phrase_scores(probabilities: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token probabilities ``(queries, length)`` -> each query's best phrase score and that phrase's index."""
    scores = probabilities[:, : positive.shape[1]] @ positive.T  # (queries, phrases)
    return scores.max(axis=1), scores.argmax(axis=1)


def to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised ``(cx, cy, w, h)`` -> pixel ``(x0, y0, x1, y1)``."""
    b = np.asarray(boxes, float) * [width, height, width, height]
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.6) -> list[int]:
    """Indices kept, by decreasing score: a box is dropped when its IoU (areas ``(x1 - x0 + 1) (y1 - y0 + 1)``)
    with a kept box exceeds ``iou``."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = list(np.argsort(-np.asarray(scores, float), kind="stable"))
    keep = []
    while order:
        current, rest = order[0], np.array(order[1:], int)
        keep.append(int(current))
        if not len(rest):
            break
        w = np.maximum(
            0.0, np.minimum(boxes[current, 2], boxes[rest, 2]) - np.maximum(boxes[current, 0], boxes[rest, 0]) + 1
        )
        h = np.maximum(
            0.0, np.minimum(boxes[current, 3], boxes[rest, 3]) - np.maximum(boxes[current, 1], boxes[rest, 1]) + 1
        )
        inter = w * h
        overlap = inter / (areas[current] + areas[rest] - inter)
        order = list(rest[overlap <= iou])
    return keep
