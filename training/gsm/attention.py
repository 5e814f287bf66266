"""Variable-length causal attention for packed samples, as a transformers attention implementation.

``"vdpm_packed"`` (:func:`register`) is the language model's attention during training: the query, key and value of
one packed row (batch 1) are split at the boundaries ``cu_seq_lens_q`` that the trainer passes through the model's
keyword arguments (transformers forwards ``FlashAttentionKwargs`` to every attention call), and each sample attends
causally to itself only:

* on CUDA, one call of PyTorch's packed flash kernel for the whole row (``torch.nn.attention.varlen.varlen_attn``
  through :func:`vdpm_harness_plugins.models.qwen25vl.attention.varlen`; its backward is PyTorch's too), what the
  original gets from ``flash_attn_varlen_func`` (``TencentARC/DSR_Suite``, ``qwenvl/train/trainer.py``);
* elsewhere, one causal ``scaled_dot_product_attention`` call per sample (the same function, exactly).

The mask function registered with it builds no mask: the boundaries are the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vdpm_harness_plugins.models.qwen25vl.attention import varlen, varlen_available

ATTENTION_NAME = "vdpm_packed"


def packed_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: float | None = None, is_causal: bool | None = None, **kwargs):  # fmt: skip
    """``query`` (1, Hq, T, D), ``key``/``value`` (1, Hkv, T, D) of one packed row, ``cu_seq_lens_q`` (N+1,) int32
    and ``max_length_q`` in ``kwargs``; returns ``((1, T, Hq, D), None)``."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[0] != 1:
        raise ValueError("packed attention needs one packed row and its cu_seq_lens_q")
    if attention_mask is not None:
        raise ValueError("packed attention takes no attention mask: the sample boundaries are the mask")
    groups = query.shape[1] // key.shape[1]
    if query.is_cuda and varlen_available(query.device):
        # key/value heads repeated for their query groups here: the kernel's own grouped-query option is not
        # relied on in the backward pass
        k, v = (x[0].repeat_interleave(groups, dim=0).transpose(0, 1) for x in (key, value))
        out = varlen(query[0].transpose(0, 1), k, v, cu, int(kwargs["max_length_q"]), causal=True, scale=scaling)
        return out[None], None
    parts = []
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
        q = query[:, :, start:end]
        k, v = (x[:, :, start:end].repeat_interleave(groups, dim=1) for x in (key, value))
        parts.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling,
                                                    dropout_p=dropout if module.training else 0.0))  # fmt: skip
    return torch.cat(parts, dim=2).transpose(1, 2), None


def no_mask(*args, **kwargs):
    """The mask function of ``"vdpm_packed"``: none (the boundaries are passed as ``cu_seq_lens_q``)."""
    return None


def register() -> str:
    """Register ``"vdpm_packed"`` with transformers (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, packed_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, no_mask)
    return ATTENTION_NAME
