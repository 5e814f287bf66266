"""Meta's DINOv2 ViT key layout and transformers' ``Dinov2WithRegistersModel``, one onto the other.

Models that embed a DINOv2 encoder store it in Meta's names (``facebookresearch/dinov2``,
``dinov2/models/vision_transformer.py``): Pi3 (GitHub ``yyfz/Pi3``, weights ``yyfz233/Pi3``, ``dinov2_vitl14_reg``
under ``encoder.``) and DSR Suite's GSM checkpoint, which stores the same encoder under ``visual.spatial_encoder.``.
Both plugins that load them (``perception/pi3`` and the GSM of ``models/qwen25vl``) run the encoder as transformers'
``Dinov2WithRegistersModel``, so the map is here, once. Meta fuses the attention's query, key and value into one
``qkv`` projection (rows ``[q; k; v]``):

===========================================  ========================================================================
DINOv2 (after the model's own prefix)        ``Dinov2WithRegistersModel``
===========================================  ========================================================================
``cls_token``, ``register_tokens``           ``embeddings.cls_token``, ``embeddings.register_tokens``
``pos_embed``                                ``embeddings.position_embeddings``
``patch_embed.proj.{weight,bias}``           ``embeddings.patch_embeddings.projection.{weight,bias}``
``blocks.i.attn.qkv.{weight,bias}``          three equal chunks along dim 0: ``encoder.layer.i.attention.{q,k,v}_proj``
``blocks.i.attn.proj``                       ``encoder.layer.i.attention.o_proj``
``blocks.i.ls1.gamma``, ``ls2.gamma``        ``encoder.layer.i.layer_scale1.lambda1``, ``layer_scale2.lambda1``
``blocks.i.{norm1,norm2,mlp.fc1,mlp.fc2}``   the same names under ``encoder.layer.i.``
``norm.{weight,bias}``                       ``layernorm.{weight,bias}``
===========================================  ========================================================================

transformers' ``embeddings.mask_token`` (:data:`MASK_TOKEN`, masked-image pre-training only; Pi3 deletes Meta's) is
mapped neither way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: transformers' mask token, which no forward of an encoder here uses and no stored layout here has
MASK_TOKEN = "embeddings.mask_token"

_FIXED = {
    "cls_token": "embeddings.cls_token",
    "register_tokens": "embeddings.register_tokens",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_BLOCK = {
    "attn.proj": "attention.o_proj",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
    "norm1": "norm1",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+?)(?:\.(weight|bias))?$")
_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+?)(?:\.(weight|bias))?$")
_QKV = ("q_proj", "k_proj", "v_proj")
_REVERSE_FIXED = {v: k for k, v in _FIXED.items()}
_REVERSE_BLOCK = {v: k for k, v in _BLOCK.items()}


def transformers_names(key: str) -> list[str] | None:
    """The transformers names of one DINOv2-layout key (three for a fused ``qkv``), ``None`` for a key that is not
    one of the encoder's."""
    if key in _FIXED:
        return [_FIXED[key]]
    match = _BLOCK_KEY.match(key)
    if match is None:
        return None
    index, name, suffix = match.groups()
    tail = f".{suffix}" if suffix else ""
    if name == "attn.qkv" and suffix:
        return [f"encoder.layer.{index}.attention.{p}{tail}" for p in _QKV]
    if name in _BLOCK:
        return [f"encoder.layer.{index}.{_BLOCK[name]}{tail}"]
    return None


def to_transformers(key: str, tensor: Any) -> dict[str, Any]:
    """One DINOv2-layout key and tensor as transformers keys and tensors (empty for a key not of the encoder)."""
    names = transformers_names(key)
    if names is None:
        return {}
    if len(names) == 3:
        return dict(zip(names, tensor.chunk(3, dim=0)))
    return {names[0]: tensor}


def dinov2_name(key: str) -> str:
    """The DINOv2-layout name of one transformers encoder key (``q/k/v_proj`` all give the fused ``qkv``); a key with
    no DINOv2 counterpart (:data:`MASK_TOKEN` among them) is a ValueError."""
    if key in _REVERSE_FIXED:
        return _REVERSE_FIXED[key]
    match = _LAYER_KEY.match(key)
    if match is not None:
        index, name, suffix = match.groups()
        tail = f".{suffix}" if suffix else ""
        if name.removeprefix("attention.") in _QKV and suffix:
            return f"blocks.{index}.attn.qkv{tail}"
        if name in _REVERSE_BLOCK:
            return f"blocks.{index}.{_REVERSE_BLOCK[name]}{tail}"
    raise ValueError(f"no DINOv2 name for the encoder key {key}")


def to_dinov2(state: Mapping[str, Any]) -> dict[str, Any]:
    """A ``Dinov2WithRegistersModel`` state dict in DINOv2's layout (``q/k/v`` fused into ``qkv``, rows
    ``[q; k; v]``; :data:`MASK_TOKEN` dropped). A key with no DINOv2 counterpart is a ValueError."""
    import torch

    out: dict[str, Any] = {}
    fused: dict[str, dict[str, Any]] = {}
    for key, tensor in state.items():
        if key == MASK_TOKEN:
            continue
        name = dinov2_name(key)
        projection = next((p for p in _QKV if f".attention.{p}." in key), None)
        if projection is None:
            out[name] = tensor
        else:
            fused.setdefault(name, {})[projection] = tensor
    for key, parts in fused.items():
        if set(parts) != set(_QKV):
            raise ValueError(f"{key}: the encoder state lacks {sorted(set(_QKV) - set(parts))}")
        out[key] = torch.cat([parts[p] for p in _QKV], dim=0)
    return out
