"""The Pi3 encoder's key layout and transformers' ``Dinov2WithRegistersModel``, one onto the other.

Pi3 (GitHub ``yyfz/Pi3``, ``pi3/models/pi3.py``; weights ``yyfz233/Pi3``) encodes frames with Meta's DINOv2
``dinov2_vitl14_reg`` (``facebookresearch/dinov2``, ``dinov2/models/vision_transformer.py``), its ``mask_token``
deleted; its ``model.safetensors`` stores it under ``encoder.``. The DSR Suite trainer loads that file, keeps the keys
containing ``encoder`` and strips ``encoder.`` (``TencentARC/DSR_Suite``, ``qwenvl/train/train_qwen.py``), and the
GSM checkpoint stores the same layout under ``visual.spatial_encoder.``. Meta's names and transformers' differ, and
Meta fuses the attention's query, key and value into one ``qkv`` projection (rows ``[q; k; v]``):

===========================================  ========================================================================
Pi3 / DINOv2 (after the prefix)              ``Dinov2WithRegistersModel``
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

transformers' model has one parameter more, ``embeddings.mask_token`` (masked-image pre-training only), which no
forward here uses: it is :data:`UNUSED`, left at zero, and never written back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

#: The key of Pi3's full checkpoint under which the encoder sits.
PI3_ENCODER_PREFIX = "encoder."
#: transformers keys with no counterpart in Pi3's layout (not used by the encoder's forward).
UNUSED = frozenset({"embeddings.mask_token"})

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


def transformers_names(key: str) -> list[str] | None:
    """The transformers names of one Pi3-layout key (three for a fused ``qkv``), ``None`` for a key that is not one
    of the encoder's."""
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


def to_transformers(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """One Pi3-layout key and tensor as transformers keys and tensors (empty for an unknown key)."""
    names = transformers_names(key)
    if names is None:
        return {}
    if len(names) == 3:
        return dict(zip(names, tensor.chunk(3, dim=0)))
    return {names[0]: tensor}


def map_pi3_encoder(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A Pi3-layout encoder state dict (prefix stripped) in transformers' names; returns ``(mapped, unexpected)``
    (the keys that are not the encoder's)."""
    mapped, unexpected = {}, []
    for key, tensor in state.items():
        converted = to_transformers(key, tensor)
        if not converted:
            unexpected.append(key)
        mapped.update(converted)
    return mapped, unexpected


def encoder_from_pi3_checkpoint(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's part of a full Pi3 state dict (keys under ``encoder.``, prefix stripped), as the DSR Suite trainer
    takes it from Pi3's ``model.safetensors``."""
    return {k[len(PI3_ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(PI3_ENCODER_PREFIX)}


def missing_keys(model_keys: Iterable[str], mapped_keys: Iterable[str]) -> list[str]:
    """The encoder keys (transformers names) a mapped state dict lacks, :data:`UNUSED` ones aside."""
    return sorted(set(model_keys) - set(mapped_keys) - UNUSED)


_REVERSE_FIXED = {v: k for k, v in _FIXED.items()}
_REVERSE_BLOCK = {v: k for k, v in _BLOCK.items()}


def pi3_name(key: str) -> str:
    """The Pi3-layout name of one transformers encoder key (``q/k/v_proj`` all give the fused ``qkv``); a key with
    no Pi3 counterpart (:data:`UNUSED` among them) is a ValueError."""
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
    raise ValueError(f"no Pi3 name for the encoder key {key}")


def to_pi3(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``Dinov2WithRegistersModel`` state dict in Pi3's layout (``q/k/v`` fused into ``qkv``, rows ``[q; k; v]``;
    :data:`UNUSED` dropped). A key with no Pi3 counterpart is a ValueError."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        if key in UNUSED:
            continue
        name = pi3_name(key)
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
