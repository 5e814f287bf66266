"""Pi3's official checkpoint (``yyfz233/Pi3``, ``model.safetensors``, loaded strictly into ``Pi3()`` by the
upstream ``example.py``) mapped onto this package's network.

Outside the encoder the names are the same (this package's modules use the checkpoint's names). The encoder is
DINOv2 code in the checkpoint (``encoder.blocks.i.attn.qkv`` and so on, facebookresearch/dinov2
``dinov2/models/vision_transformer.py``) and transformers' ``Dinov2WithRegistersModel`` here, without its mask token;
the key map between the two is the core's :mod:`vdpm_harness.dinov2` (the GSM of ``models/qwen25vl`` uses it too).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vdpm_harness import dinov2

DEFAULT_FILE = "model.safetensors"


def official_to_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict in the checkpoint's layout -> this package's layout (see the module docstring)."""
    out = {}
    for key, value in state.items():
        if not key.startswith("encoder."):
            out[key] = value
            continue
        converted = dinov2.to_transformers(key.removeprefix("encoder."), value)
        if not converted:
            raise KeyError(f"Pi3 checkpoint: unexpected encoder entry {key}")
        out.update({f"encoder.{name}": tensor for name, tensor in converted.items()})
    return out


def model_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`official_to_model` (the layout a strict ``Pi3().load_state_dict`` accepts)."""
    out = {key: value for key, value in state.items() if not key.startswith("encoder.")}
    encoder = {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}
    try:
        official = dinov2.to_dinov2(encoder)
    except ValueError as exc:
        raise KeyError(f"Pi3 model: {exc}") from exc
    out.update({f"encoder.{name}": tensor for name, tensor in official.items()})
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
