"""Attention kernels for models run through transformers when flash-attn is not installed (it cannot be, here).

Two problems of transformers' ``sdpa`` path on long video prompts, measured on an H100 (``perf/profile_qwen_gpu.py``):

* a left-padded batch gets a dense (batch, 1, q, k) boolean mask, which rules out SDPA's fused causal kernels: four
  11.7k-token prompts then run the memory-efficient kernel (166 TFLOP/s) over a materialised 550 MB mask per layer;
* without a mask PyTorch picks its FlashAttention-2 kernel (319 TFLOP/s for one 11.6k-token prompt with 28 heads),
  while cuDNN's attention runs the same causal prefill at 575 TFLOP/s.

This module provides

* :func:`varlen`: PyTorch's packed variable-length flash kernel (``torch.nn.attention.varlen.varlen_attn``, CUDA
  only), its signature adapted across releases (``is_causal`` in 2.10, ``window_size`` later; ``enable_gqa`` from
  2.12, key/value heads repeated before that). The vision tower's windowed attention uses it
  (:mod:`.vision_attention`);
* ``"vdpm_rowwise"``, a transformers attention implementation (``AttentionInterface``, with the flash convention of
  ``AttentionMaskInterface``: the 2D padding mask, or ``None`` when nothing is padded). A prefill attends each row's
  real tokens in its own causal SDPA call (no mask, no padding computed), preferring cuDNN on CUDA; decoding steps
  go to transformers' own SDPA function with the equivalent padding mask. On the CPU an unpadded batch computes
  exactly what ``attn_implementation="sdpa"`` computes.
"""

from __future__ import annotations

import contextlib
import inspect
from functools import cache

import torch
import torch.nn.functional as F

ATTENTION_NAME = "vdpm_rowwise"


@cache
def _varlen_parameters() -> frozenset[str]:
    from torch.nn.attention.varlen import varlen_attn

    return frozenset(inspect.signature(varlen_attn).parameters)


def varlen_available(device: torch.device | str) -> bool:
    """Whether :func:`varlen` can run on ``device`` (CUDA with a PyTorch that has ``varlen_attn``)."""
    if torch.device(device).type != "cuda":
        return False
    try:
        _varlen_parameters()
    except ImportError:
        return False
    return True


def varlen(q, k, v, cu_seqlens: torch.Tensor, max_seqlen: int, *, causal: bool, scale: float | None) -> torch.Tensor:
    """Attention within each packed sequence: ``q`` (T, Hq, D), ``k``/``v`` (T, Hkv, D), boundaries ``cu_seqlens``
    (N+1, int32); returns (T, Hq, D). Grouped-query heads (Hkv < Hq) are shared as in SDPA's ``enable_gqa``."""
    from torch.nn.attention.varlen import varlen_attn

    parameters = _varlen_parameters()
    kwargs = {}
    if scale is not None:
        if "scale" not in parameters:  # 2.10 has no scale argument: fold it into q (1/sqrt(D) is its default)
            q = q * (scale * q.shape[-1] ** 0.5)
        else:
            kwargs["scale"] = scale
    if causal:
        if "window_size" in parameters:
            kwargs["window_size"] = (-1, 0)
        else:
            kwargs["is_causal"] = True
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in parameters:
            kwargs["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    cu = cu_seqlens.to(torch.int32)
    return varlen_attn(q.contiguous(), k.contiguous(), v.contiguous(), cu, cu, max_seqlen, max_seqlen, **kwargs)


def _row_lengths(mask: torch.Tensor) -> list[int]:
    """Real tokens per row of a 2D padding mask, read from the device once per mask (all layers share it)."""
    if _last_mask[0] is not mask:
        _last_mask[:] = [mask, mask.sum(dim=1).tolist()]
    return _last_mask[1]


_last_mask: list = [None, []]


def _prefill_backends(device: torch.device):
    """SDPA backends in order of preference for a causal prefill: cuDNN first on CUDA (see the module docstring)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda":
        return contextlib.nullcontext()
    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    if "set_priority" in inspect.signature(sdpa_kernel).parameters:
        return sdpa_kernel(order, set_priority=True)
    return sdpa_kernel(order[:1] + order[2:])  # no priorities (PyTorch < 2.6): cuDNN, else the unfused kernels


def rowwise_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                              scaling: float | None = None, is_causal: bool | None = None, **kwargs):  # fmt: skip
    """A transformers attention function (``AttentionInterface``): ``query`` (B, Hq, Q, D), ``key``/``value``
    (B, Hkv, K, D), ``attention_mask`` the 2D (B, K) padding mask of the flash convention (left padding) or
    ``None``; returns ``((B, Q, Hq, D), None)``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    k_len = key.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    prefill = q_len == k_len and q_len > 1 and dropout == 0.0
    if prefill and (attention_mask is not None or query.is_cuda):
        lengths = _row_lengths(attention_mask) if attention_mask is not None else [q_len] * batch
        groups = heads // key.shape[1]
        out = query.new_zeros(batch, q_len, heads, dim) if min(lengths) < q_len else None
        rows = []
        with _prefill_backends(query.device):
            for row, n in enumerate(lengths):
                if n == 0:
                    continue
                # contiguous rows with every key/value head repeated for its query group: cuDNN's attention takes no
                # grouped heads and is particular about strides (whether it is the kernel chosen inside the model
                # is not confirmed yet: docs/PERFORMANCE.md)
                q = query[row : row + 1, :, q_len - n :].contiguous()
                k, v = (x[row : row + 1, :, q_len - n :].repeat_interleave(groups, dim=1) for x in (key, value))
                result = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scaling).transpose(1, 2)
                if out is None:
                    rows.append(result)
                else:
                    out[row, q_len - n :] = result[0]
        return (torch.cat(rows) if out is None else out), None
    if attention_mask is not None:  # the flash convention's 2D mask as SDPA's (B, 1, Q, K) boolean mask
        mask = attention_mask[:, None, None, :].bool()
        if causal and q_len > 1:
            mask = mask & torch.ones(q_len, k_len, dtype=torch.bool, device=mask.device).tril(k_len - q_len)
        attention_mask = mask
    elif causal and 1 < q_len < k_len:
        # new tokens after cached ones (a prompt's suffix after its shared prefix, prefix.py), nothing padded: SDPA's
        # is_causal aligns the causal triangle to the top left, so the bottom-right one is spelled out
        attention_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)  # fmt: skip


def register() -> str:
    """Register ``"vdpm_rowwise"`` with transformers (idempotent); returns the name to pass as
    ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(ATTENTION_NAME, rowwise_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, flash_attention_mask)
    return ATTENTION_NAME
