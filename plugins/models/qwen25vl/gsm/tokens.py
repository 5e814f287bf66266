"""Which tokens of a GSM prompt are what.

* **Visual runs**: an image or video is ``<|vision_start|>`` followed by a run of ``<|image_pad|>`` or
  ``<|video_pad|>`` tokens (:func:`visual_runs`), in the order of the processor's ``image_grid_thw`` /
  ``video_grid_thw`` rows.
* **Geometry slots**: a request with images or videos carries :data:`~.settings.NUM_QUERIES` extra
  ``<|video_pad|>`` tokens right after the pads of its last image or video (before its ``<|vision_end|>``), which the
  request's geometry tokens fill (:func:`insert_geometry_pads` adds them, :func:`geometry_slots` finds them: the
  row's last 32 ``<|video_pad|>``). With one video this is the original's layout (``add_after_consecutive`` in the
  evaluation of ``TencentARC/DSR_Suite``, ``VLMEvalKit_mine/vlmeval/vlm/qwen2_vl/model.py``; the ``+ 32`` pads of
  ``qwenvl/data/data_qwen_packed.py`` in training); after the *last* input, a request with several images or videos
  gets one set of geometry tokens that no earlier visual token precedes.
* **The first Q-Former's text** (:func:`text_selection`): the request's prompt tokens except the special ones
  (``<|vision_*|>``, ``<|image_pad|>``, ``<|video_pad|>``, ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``). The
  original trains on the prompt *without* the assistant turn's header (its labels mark it as the last three prompt
  tokens, ``<|im_start|>assistant\\n``) but evaluates with every prompt token, so the header's ``assistant\\n`` is read
  at evaluation only. Here the header is left out in both (``with_generation_prompt=False``); ``True`` reproduces the
  original's evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def visual_runs(row: torch.Tensor, *, vision_start_token_id: int, image_token_id: int,
                video_token_id: int) -> list[tuple[int, int]]:  # fmt: skip
    """``(index of the first pad, pad token id)`` of each image or video in a row of token ids, in order."""
    if row.numel() < 2:
        return []
    pads = (row[1:] == image_token_id) | (row[1:] == video_token_id)
    starts = (pads & (row[:-1] == vision_start_token_id)).nonzero().flatten() + 1
    return [(int(i), int(row[i])) for i in starts.tolist()]


def rows_with_vision(input_ids: torch.Tensor, *, vision_start_token_id: int, image_token_id: int,
                     video_token_id: int) -> torch.Tensor:  # fmt: skip
    """(B,) bool: which rows hold at least one image or video."""
    pads = (input_ids[:, 1:] == image_token_id) | (input_ids[:, 1:] == video_token_id)
    return (pads & (input_ids[:, :-1] == vision_start_token_id)).any(dim=1)


def geometry_slots(input_ids: torch.Tensor, rows: torch.Tensor, *, video_token_id: int,
                   num_queries: int) -> torch.Tensor:  # fmt: skip
    """(B, L) bool: the last ``num_queries`` ``<|video_pad|>`` tokens of each row in ``rows`` ((B,) bool)."""
    pads = input_ids == video_token_id
    at_or_after = pads.flip(-1).cumsum(-1).flip(-1)  # pads from each position to the row's end
    return pads & (at_or_after <= num_queries) & rows[:, None]


def text_selection(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, *, excluded_token_ids: Sequence[int],
                   im_start_token_id: int, with_generation_prompt: bool) -> torch.Tensor:  # fmt: skip
    """(B, L) bool: the tokens the first Q-Former reads. Real tokens (``attention_mask``) that are not special;
    unless ``with_generation_prompt``, none from the row's last ``<|im_start|>`` on (the assistant turn's header)."""
    excluded = torch.tensor(list(excluded_token_ids), device=input_ids.device)
    keep = ~torch.isin(input_ids, excluded)
    real = attention_mask.bool() if attention_mask is not None else torch.ones_like(keep)
    keep &= real
    if not with_generation_prompt:
        index = torch.arange(input_ids.shape[1], device=input_ids.device)
        starts = (input_ids == im_start_token_id) & real
        last = torch.where(starts, index, -1).max(dim=1).values  # -1: no turn header in the row
        keep &= ~((last[:, None] >= 0) & (index[None, :] >= last[:, None]))
    return keep


def insert_geometry_pads(input_ids: torch.Tensor, attention_mask: torch.Tensor, mm_token_type_ids: torch.Tensor | None,
                         *, vision_start_token_id: int, image_token_id: int, video_token_id: int, pad_token_id: int,
                         num_queries: int, padding_side: str = "left"):  # fmt: skip
    """Processor outputs with ``num_queries`` ``<|video_pad|>`` tokens inserted after the pads of each row's last
    image or video (typed as text in ``mm_token_type_ids``: their positions continue the text, as in training), the
    rows padded again on ``padding_side``; returns ``(input_ids, attention_mask, mm_token_type_ids)``."""
    ids_rows, type_rows = [], []
    for b in range(input_ids.shape[0]):
        real = attention_mask[b].bool()
        ids = input_ids[b][real]
        types = mm_token_type_ids[b][real] if mm_token_type_ids is not None else torch.zeros_like(ids)
        runs = visual_runs(ids, vision_start_token_id=vision_start_token_id, image_token_id=image_token_id,
                           video_token_id=video_token_id)  # fmt: skip
        if runs:
            start, token = runs[-1]
            others = (ids[start:] != token).nonzero()
            end = start + (int(others[0]) if len(others) else len(ids) - start)
            ids = torch.cat([ids[:end], ids.new_full((num_queries,), video_token_id), ids[end:]])
            types = torch.cat([types[:end], types.new_zeros(num_queries), types[end:]])
        ids_rows.append(ids)
        type_rows.append(types)
    length = max(len(r) for r in ids_rows)
    out_ids = input_ids.new_full((len(ids_rows), length), pad_token_id)
    out_mask = attention_mask.new_zeros((len(ids_rows), length))
    out_types = (mm_token_type_ids if mm_token_type_ids is not None else input_ids).new_zeros((len(ids_rows), length))
    for b, (ids, types) in enumerate(zip(ids_rows, type_rows)):
        span = slice(length - len(ids), length) if padding_side == "left" else slice(0, len(ids))
        out_ids[b, span], out_mask[b, span], out_types[b, span] = ids, 1, types
    return out_ids, out_mask, out_types
