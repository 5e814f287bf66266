"""The GSM's inputs: a request becomes Qwen2.5-VL inputs exactly as for ``qwen25vl`` (:mod:`..inputs`, the one place
that decides it), then each request with images or videos gets its geometry pads (:func:`.tokens.insert_geometry_pads`).
A trainer builds its samples with the same two calls."""

from __future__ import annotations

from .. import inputs as qwen_inputs
from .settings import NUM_QUERIES
from .tokens import insert_geometry_pads


def add_geometry_pads(batch, tokenizer, num_queries: int = NUM_QUERIES):
    """A processor ``BatchFeature`` with ``num_queries`` ``<|video_pad|>`` after each request's last image or video
    (``input_ids``, ``attention_mask`` and ``mm_token_type_ids`` rebuilt, padded on the tokenizer's side)."""
    start, image, video = tokenizer.convert_tokens_to_ids(["<|vision_start|>", "<|image_pad|>", "<|video_pad|>"])
    input_ids, attention_mask, types = insert_geometry_pads(
        batch["input_ids"], batch["attention_mask"], batch.get("mm_token_type_ids"), vision_start_token_id=start,
        image_token_id=image, video_token_id=video, pad_token_id=tokenizer.pad_token_id, num_queries=num_queries,
        padding_side=tokenizer.padding_side,
    )  # fmt: skip
    batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"] = input_ids, attention_mask, types
    return batch


def encode(processor, prompts: list[qwen_inputs.Prompt], *, device: str | None = None,
           num_queries: int = NUM_QUERIES):  # fmt: skip
    """:func:`..inputs.encode`, then :func:`add_geometry_pads`."""
    return add_geometry_pads(qwen_inputs.encode(processor, prompts, device=device), processor.tokenizer, num_queries)
