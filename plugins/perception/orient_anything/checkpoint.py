"""Orient Anything checkpoints: where they are, and their keys for transformers 5.

The released ``dino_weight.pt`` files are ``DINOv2_MLP`` state dicts saved with transformers 4.x, whose DINOv2
attention was ``attention.attention.{query,key,value}`` and ``attention.output.dense``; transformers 5's
``Dinov2Model`` names them ``attention.{q,k,v}_proj`` and ``attention.o_proj``. ``from_pretrained`` would convert
them, a plain ``load_state_dict`` does not: :func:`rename_keys` does.
"""

from __future__ import annotations

from pathlib import Path

import torch

DEFAULT_REPO = "Viglong/Orient-Anything"
DEFAULT_FILE = "croplargeEX2/dino_weight.pt"
#: transformers 4.x name -> transformers 5 name, inside ``dinov2.``
RENAMES = {
    "attention.attention.query.": "attention.q_proj.",
    "attention.attention.key.": "attention.k_proj.",
    "attention.attention.value.": "attention.v_proj.",
    "attention.output.dense.": "attention.o_proj.",
}


def rename_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with transformers 4.x DINOv2 keys -> transformers 5 keys (other keys unchanged)."""
    out = {}
    for key, value in state.items():
        if key.startswith("dinov2."):
            for old, new in RENAMES.items():
                key = key.replace(old, new)
        out[key] = value
    return out


def checkpoint_file(model: str, filename: str, revision: str | None = None) -> Path:
    """``filename`` inside ``model``: a local folder, or a Hugging Face repository (downloaded, or found in the
    cache when ``HF_HUB_OFFLINE=1``); ``model`` may also be the file itself."""
    path = Path(model)
    if path.is_file():
        return path
    if path.is_dir():
        if not (path / filename).is_file():
            raise FileNotFoundError(f"Orient Anything: no {filename} in {path}")
        return path / filename
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=model, filename=filename, revision=revision))


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors (``weights_only``: no code runs), keys renamed for transformers 5."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return rename_keys(state)


def out_dim_of(state: dict[str, torch.Tensor]) -> int:
    """The number of logits of a checkpoint (the rows of its last linear layer)."""
    key = "down_sampler.net2.0.weight"
    if key not in state:
        raise KeyError(f"Orient Anything checkpoint: no {key}")
    return int(state[key].shape[0])
