"""Pi3's official checkpoint (``yyfz233/Pi3``, ``model.safetensors``, loaded strictly into ``Pi3()`` by the
upstream ``example.py``) mapped onto this package's network.

Outside the encoder the names are the same (this package's modules use the checkpoint's names). The encoder is
DINOv2 code in the checkpoint (``encoder.blocks.i.attn.qkv`` and so on, facebookresearch/dinov2
``dinov2/models/vision_transformer.py``) and transformers' ``Dinov2WithRegistersModel`` here:

=====================================  =========================================================================
checkpoint (``encoder.`` + ...)        here (``encoder.`` + ...)
=====================================  =========================================================================
``cls_token``                          ``embeddings.cls_token``
``register_tokens``                    ``embeddings.register_tokens``
``pos_embed``                          ``embeddings.position_embeddings``
``patch_embed.proj.{weight,bias}``     ``embeddings.patch_embeddings.projection.{weight,bias}``
``norm.{weight,bias}``                 ``layernorm.{weight,bias}``
``blocks.i.attn.qkv.{weight,bias}``    thirds along dim 0: ``encoder.layer.i.attention.{q,k,v}_proj.{weight,bias}``
``blocks.i.attn.proj.*``               ``encoder.layer.i.attention.o_proj.*``
``blocks.i.ls1.gamma`` / ``ls2``       ``encoder.layer.i.layer_scale1.lambda1`` / ``layer_scale2``
``blocks.i.{norm1,norm2,mlp.fc1,mlp.fc2}.*``  the same names under ``encoder.layer.i.``
=====================================  =========================================================================
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

#: checkpoint name (after ``encoder.``) -> name in transformers' model, for the parameters outside the blocks
_ENCODER_TOP = {
    "cls_token": "embeddings.cls_token",
    "register_tokens": "embeddings.register_tokens",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
_BLOCK_RENAMES = {"attn.proj.": "attention.o_proj.", "ls1.gamma": "layer_scale1.lambda1",
                  "ls2.gamma": "layer_scale2.lambda1"}  # fmt: skip
DEFAULT_FILE = "model.safetensors"


def official_to_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict in the checkpoint's layout -> this package's layout (see the module docstring)."""
    out = {}
    for key, value in state.items():
        if not key.startswith("encoder."):
            out[key] = value
            continue
        name = key.removeprefix("encoder.")
        if name in _ENCODER_TOP:
            out[f"encoder.{_ENCODER_TOP[name]}"] = value
            continue
        match = _BLOCK.fullmatch(name)
        if match is None:
            raise KeyError(f"Pi3 checkpoint: unexpected encoder entry {key}")
        layer, rest = match.groups()
        prefix = f"encoder.encoder.layer.{layer}."
        if rest.startswith("attn.qkv."):
            kind = rest.removeprefix("attn.qkv.")
            for part, chunk in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                out[f"{prefix}attention.{part}_proj.{kind}"] = chunk
            continue
        for old, new in _BLOCK_RENAMES.items():
            if rest.startswith(old):
                rest = new + rest.removeprefix(old)
                break
        out[prefix + rest] = value
    return out


def model_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`official_to_model` (the layout a strict ``Pi3().load_state_dict`` accepts)."""
    top = {new: old for old, new in _ENCODER_TOP.items()}
    blocks = {new: old for old, new in _BLOCK_RENAMES.items()}
    out, qkv = {}, {}
    for key, value in state.items():
        if not key.startswith("encoder."):
            out[key] = value
            continue
        name = key.removeprefix("encoder.")
        if name in top:
            out[f"encoder.{top[name]}"] = value
            continue
        match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", name)
        if match is None:
            raise KeyError(f"Pi3 model: unexpected encoder entry {key}")
        layer, rest = match.groups()
        part = re.fullmatch(r"attention\.([qkv])_proj\.(weight|bias)", rest)
        if part:
            qkv.setdefault((layer, part.group(2)), {})[part.group(1)] = value
            continue
        for new, old in blocks.items():
            if rest.startswith(new):
                rest = old + rest.removeprefix(new)
                break
        out[f"encoder.blocks.{layer}.{rest}"] = value
    for (layer, kind), parts in qkv.items():
        out[f"encoder.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def checkpoint_file(model: str, revision: str | None = None) -> Path:
    """The checkpoint of ``model``: a ``.safetensors`` file, a folder holding ``model.safetensors``, or a Hugging
    Face repository id (downloaded, or found in the cache when ``HF_HUB_OFFLINE=1``)."""
    path = Path(model)
    if path.is_file():
        return path
    if path.is_dir():
        if not (path / DEFAULT_FILE).is_file():
            raise FileNotFoundError(f"Pi3: no {DEFAULT_FILE} in {path}")
        return path / DEFAULT_FILE
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=model, filename=DEFAULT_FILE, revision=revision))


def load_checkpoint(network: torch.nn.Module, path: Path) -> None:
    """Load the checkpoint at ``path`` into ``network`` strictly (every entry mapped, none missing)."""
    from safetensors.torch import load_file

    state = official_to_model(load_file(str(path)))
    missing, unexpected = network.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"Pi3 checkpoint {path} does not fit the network: missing {sorted(missing)[:8]}, "
                         f"unexpected {sorted(unexpected)[:8]}")  # fmt: skip
