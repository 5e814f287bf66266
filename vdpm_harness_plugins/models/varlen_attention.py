"""Packed (variable-length) flash attention from PyTorch itself, for models run through transformers.

flash-attn cannot be installed on our machines, and transformers' ``sdpa`` path handles a left-padded batch with a
dense (batch, 1, q, k) boolean mask, which rules out SDPA's flash kernel: a batch of four 11.7k-token video prompts
then runs the memory-efficient kernel over a materialised 550 MB mask in each of the 28 layers. PyTorch ships the
flash kernel's variable-length entry point (``torch.nn.attention.varlen.varlen_attn``, CUDA only), which takes the
real tokens of every row packed end to end and needs no mask.

This module

* adapts ``varlen_attn``'s signature across PyTorch releases (``is_causal`` in 2.10, ``window_size`` later;
  ``enable_gqa`` from 2.12, key/value heads repeated before that) in :func:`varlen`;
* registers ``"vdpm_varlen"`` as a transformers attention implementation (``AttentionInterface`` plus the flash
  mask convention of ``AttentionMaskInterface``: the 2D padding mask, or ``None`` when nothing is padded). A padded
  prefill on CUDA runs packed through :func:`varlen`; everything else (an unpadded batch, every decoding step, the
  CPU) goes to transformers' own SDPA function with the equivalent mask, so an unpadded batch computes exactly what
  ``attn_implementation="sdpa"`` computes.
"""

from __future__ import annotations

import inspect
from functools import cache

import torch

ATTENTION_NAME = "vdpm_varlen"


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


class _Packing:
    """Where the real tokens of a left-padded batch are, computed once per mask (one GPU sync) for all layers."""

    def __init__(self):
        self._mask = None
        self.index = self.cu_seqlens = None
        self.max_seqlen = 0

    def of(self, mask: torch.Tensor) -> _Packing:
        if self._mask is not mask:
            lengths = mask.sum(dim=1, dtype=torch.int32)
            self.index = mask.flatten().nonzero().squeeze(1)
            self.cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
            self.max_seqlen = int(lengths.max())
            self._mask = mask
        return self


_packing = _Packing()
#: The packed kernel; tests swap in a per-sequence reference to check the packing on the CPU.
kernel = varlen


def varlen_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: float | None = None, is_causal: bool | None = None, **kwargs):  # fmt: skip
    """A transformers attention function (``AttentionInterface``): ``query`` (B, Hq, Q, D), ``key``/``value``
    (B, Hkv, K, D), ``attention_mask`` the 2D (B, K) padding mask of the flash convention or ``None``; returns
    ``((B, Q, Hq, D), None)``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    k_len = key.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    packed = attention_mask is not None and q_len == k_len and q_len > 1 and dropout == 0.0
    if packed and (query.is_cuda or kernel is not varlen):
        pack = _packing.of(attention_mask)

        def flat(x):  # (B, H, L, D) -> (real tokens, H, D)
            return x.transpose(1, 2).reshape(batch * q_len, x.shape[1], dim)[pack.index]

        out = kernel(flat(query), flat(key), flat(value), pack.cu_seqlens, pack.max_seqlen, causal=causal,
                     scale=scaling)  # fmt: skip
        full = out.new_zeros(batch * q_len, heads, dim)
        full[pack.index] = out
        return full.view(batch, q_len, heads, dim), None
    if attention_mask is not None:  # the flash convention's 2D mask as SDPA's (B, 1, Q, K) boolean mask
        mask = attention_mask[:, None, None, :].bool()
        if causal and q_len > 1:
            mask = mask & torch.ones(q_len, k_len, dtype=torch.bool, device=mask.device).tril(k_len - q_len)
        attention_mask = mask
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)  # fmt: skip


def register() -> str:
    """Register ``"vdpm_varlen"`` with transformers (idempotent); returns the name to pass as
    ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(ATTENTION_NAME, varlen_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, flash_attention_mask)
    return ATTENTION_NAME
