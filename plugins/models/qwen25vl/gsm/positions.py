"""The language model's M-RoPE positions of a GSM prompt, by the rule the checkpoint was trained with.

The released GSM was trained with the positions of Qwen2.5-VL's own fine-tuning code (``rope2d.get_rope_index_25``
in ``TencentARC/DSR_Suite``, ``model/qwen-vl-finetune/qwenvl/data/rope2d.py``) and evaluated with transformers
4.51's ``Qwen2_5_VLForConditionalGeneration.get_rope_index``, which agree:

* text tokens get one position each, the same in all three sections, counting on from the largest position so far
  plus one;
* an image or video (``<|vision_start|>`` then its pads, :func:`.tokens.visual_runs`) gets, for its
  ``t * h/2 * w/2`` merged tokens, ``(t_i, y, x)`` offset by the position where it starts, with
  ``t_i = int(i * second_per_grid * tokens_per_second)`` (0 for an image; ``second_per_grid`` 1.0 when a video has no
  timing);
* the 32 geometry pads after a video's grid are text: they count on from the grid's largest position plus one.

transformers 5.x changed where text resumes after a video: from ``start + max(h, w) / 2`` instead of the grid's
largest position plus one, which ignores the temporal extent (a 16-grid video at 1 s per grid spans temporal
positions 0..30, so the following text would overlap them; see huggingface/transformers issue #45381). The plain
``qwen25vl`` plugin keeps transformers' rule; the GSM uses the rule above, which its weights learnt.
"""

from __future__ import annotations

import torch

from .tokens import visual_runs


def rope_index(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, image_grid_thw: torch.Tensor | None,
               video_grid_thw: torch.Tensor | None, second_per_grid_ts: torch.Tensor | None, *,
               vision_start_token_id: int, image_token_id: int, video_token_id: int, spatial_merge_size: int,
               tokens_per_second: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(position_ids (3, B, L), deltas (B, 1))``: the positions of each row's real tokens (0 at padding), and
    each row's largest position + 1 - its real length (what decoding adds to the next token's plain position)."""
    batch, length = input_ids.shape
    device = input_ids.device
    images = iter(image_grid_thw.tolist() if image_grid_thw is not None else [])
    videos = iter(video_grid_thw.tolist() if video_grid_thw is not None else [])
    seconds = iter(torch.as_tensor(second_per_grid_ts).tolist()) if second_per_grid_ts is not None else None
    position_ids = torch.zeros(3, batch, length, dtype=torch.long, device=device)
    deltas = []
    for b in range(batch):
        real = attention_mask[b].bool() if attention_mask is not None else torch.ones(length, dtype=torch.bool,
                                                                                       device=device)  # fmt: skip
        ids = input_ids[b][real]
        chunks, cursor, next_position = [], 0, 0
        runs = visual_runs(ids, vision_start_token_id=vision_start_token_id, image_token_id=image_token_id,
                           video_token_id=video_token_id)  # fmt: skip
        for start, token in runs:
            if token == image_token_id:
                t, h, w = next(images)
                step = torch.tensor(0.0)
            else:
                t, h, w = next(videos)
                step = torch.tensor(next(seconds) if seconds is not None else 1.0, dtype=torch.float32)
            chunks.append(torch.arange(start - cursor).expand(3, -1) + next_position)
            next_position += start - cursor
            h, w = h // spatial_merge_size, w // spatial_merge_size
            times = ((torch.arange(t, dtype=torch.float32) * step) * tokens_per_second).long()
            grid = torch.stack([times.repeat_interleave(h * w), torch.arange(h).repeat_interleave(w).repeat(t),
                                torch.arange(w).repeat(t * h)]) + next_position  # fmt: skip
            chunks.append(grid)
            next_position = int(grid.max()) + 1
            cursor = start + t * h * w
        chunks.append(torch.arange(len(ids) - cursor).expand(3, -1) + next_position)
        positions = torch.cat(chunks, dim=1).to(device)
        position_ids[:, b, real] = positions
        deltas.append(int(positions.max()) + 1 - len(ids) if positions.numel() else 0)
    return position_ids, torch.tensor(deltas, device=device).unsqueeze(1)
