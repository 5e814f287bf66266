"""Fast windowed attention for the Qwen2.5-VL vision tower.

Outside flash-attn, transformers runs the vision tower's attention one window at a time: for a 32-frame 560x1008
video that is about 720 windows of 64 patches in 28 of the 32 blocks, i.e. some 20,000 tiny attention calls (and a
GPU-to-CPU sync per block for the window lengths). Measured on an H100, the tower took 1.0 s of a 1.35 s prefill
because of it (the part profile in ``docs/PERFORMANCE.md`` has the later numbers). This module replaces the attention
of each vision block with one call over all windows:

* ``"varlen"``: PyTorch's variable-length flash attention (``torch.nn.attention.varlen.varlen_attn`` through
  :func:`.attention.varlen`, CUDA only), the same packed-sequence kernel that flash-attn's
  ``flash_attn_varlen_func`` provides;
* ``"padded"``: the windows gathered into one zero-padded batch with a key-padding mask and one
  ``scaled_dot_product_attention`` call (any device; the CPU fallback).

Both compute exactly the block-diagonal attention of the original; ``tests/test_qwen_vision_attention.py`` checks
that against the transformers implementation. The longest window and the longest frame are computed from the grid
once per forward (a pre-hook hands them to transformers as ``max_window_seqlen`` / ``max_seqlen``), not read back
from the GPU in every block: each such read stalls the CPU until the GPU has caught up (and breaks a compiled graph).
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from .attention import varlen, varlen_available

MODES = ("varlen", "padded", "transformers")


def _padded_attention(q, k, v, cu_seqlens: torch.Tensor, max_len: int, scale: float) -> torch.Tensor:
    """Block-diagonal attention of packed (T, H, D) tensors through one masked SDPA call over padded windows."""
    total, heads, dim = q.shape
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    window = torch.repeat_interleave(torch.arange(len(lengths), device=q.device), lengths, output_size=total)
    position = torch.arange(total, device=q.device) - cu_seqlens[:-1][window]

    def pad(x):
        out = x.new_zeros(len(lengths), max_len, heads, dim)
        out[window, position] = x
        return out.transpose(1, 2)  # (windows, heads, max_len, dim)

    valid = torch.arange(max_len, device=q.device)[None, :] < lengths[:, None]
    mask = valid[:, None, None, :]  # keys beyond a window's length are masked out
    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=mask, scale=scale)
    return out.transpose(1, 2)[window, position]


def _longest_segments(module, args, kwargs):
    """Forward pre-hook of the vision tower: the longest attention segment of full and windowed blocks, from
    ``grid_thw`` (frames of h x w patches; windows of at most ``window`` x ``window`` merged patches)."""
    grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
    if grid is None or "max_seqlen" in kwargs:
        return None
    merge = module.spatial_merge_size
    window = module.window_size // merge // module.patch_size
    rows = grid.tolist()
    kwargs["max_seqlen"] = max(h * w for _, h, w in rows)
    kwargs["max_window_seqlen"] = max(min(window, h // merge) * min(window, w // merge) for _, h, w in rows) * merge**2
    return args, kwargs


_last_boundaries: list = [None, 0]  # (cu_seqlens tensor, its longest segment): the tower reuses one tensor


def _longest(cu_seqlens: torch.Tensor) -> int:
    if _last_boundaries[0] is not cu_seqlens:
        _last_boundaries[:] = [cu_seqlens, int((cu_seqlens[1:] - cu_seqlens[:-1]).max())]
    return _last_boundaries[1]


def _forward(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
    """Drop-in ``forward`` of ``Qwen2_5_VLVisionAttention`` (same arguments, same result)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    seq_length = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(seq_length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    if max_seqlen is None:
        max_seqlen = _longest(cu_seqlens)
    max_seqlen = int(max_seqlen)
    if self._vdpm_attention == "varlen":
        out = varlen(q, k, v, cu_seqlens, max_seqlen, causal=False, scale=self.scaling)
    else:
        out = _padded_attention(q, k, v, cu_seqlens.to(torch.long), max_seqlen, self.scaling)
    return self.proj(out.reshape(seq_length, -1))


def patch_vision_attention(model, mode: str = "auto") -> str:
    """Replace the attention of every vision block of a Qwen2.5-VL model; return the mode used.

    ``"auto"`` picks ``"varlen"`` on CUDA when PyTorch has it, else ``"padded"``; ``"transformers"`` restores
    transformers' own attention (so one loaded model can be measured both ways).
    """
    if mode not in (*MODES, "auto"):
        raise ValueError(f"vision attention must be one of auto, {', '.join(MODES)}; got '{mode}'")
    visual = model.model.visual if hasattr(model, "model") and hasattr(model.model, "visual") else model.visual
    if mode == "auto":
        mode = "varlen" if varlen_available(next(visual.parameters()).device) else "padded"
    hook = visual.__dict__.pop("_vdpm_hook", None)
    if hook is not None:
        hook.remove()
    if mode != "transformers":
        visual._vdpm_hook = visual.register_forward_pre_hook(_longest_segments, with_kwargs=True)
    for block in visual.blocks:
        if mode == "transformers":
            block.attn.__dict__.pop("forward", None)
            continue
        block.attn._vdpm_attention = mode
        block.attn.forward = types.MethodType(_forward, block.attn)
    return mode
