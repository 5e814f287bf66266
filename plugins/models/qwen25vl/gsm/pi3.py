"""Pi3's encoder in the GSM: where it sits in Pi3's checkpoint, and its keys in transformers' names.

Pi3 (GitHub ``yyfz/Pi3``, ``pi3/models/pi3.py``; weights ``yyfz233/Pi3``) encodes frames with Meta's DINOv2
``dinov2_vitl14_reg`` (``facebookresearch/dinov2``, ``dinov2/models/vision_transformer.py``), its ``mask_token``
deleted; its ``model.safetensors`` stores it under ``encoder.``. The DSR Suite trainer loads that file, keeps the keys
containing ``encoder`` and strips ``encoder.`` (``TencentARC/DSR_Suite``, ``qwenvl/train/train_qwen.py``), and the
GSM checkpoint stores the same layout under ``visual.spatial_encoder.``. The GSM runs it as transformers'
``Dinov2WithRegistersModel``; the key map between the two layouts is the core's :mod:`vdpm_harness.dinov2` (the
``pi3`` perception plugin uses it too).

transformers' model has one parameter more, ``embeddings.mask_token`` (masked-image pre-training only), which no
forward here uses: it is :data:`UNUSED`, left at zero, and never written back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from vdpm_harness import dinov2

#: The key of Pi3's full checkpoint under which the encoder sits.
PI3_ENCODER_PREFIX = "encoder."
#: transformers keys with no counterpart in Pi3's layout (not used by the encoder's forward).
UNUSED = frozenset({dinov2.MASK_TOKEN})


def map_pi3_encoder(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A Pi3-layout encoder state dict (prefix stripped) in transformers' names; returns ``(mapped, unexpected)``
    (the keys that are not the encoder's)."""
    mapped, unexpected = {}, []
    for key, tensor in state.items():
        converted = dinov2.to_transformers(key, tensor)
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
