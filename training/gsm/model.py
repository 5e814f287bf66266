"""The model being trained: a GSM checkpoint to continue from, or a GSM built on a plain Qwen2.5-VL; and the packed
forward pass that gives the loss.

**The base** (:func:`load_base`), chosen by folder or hub id (``--base``) and loaded with the ``qwen25vl-gsm``
plugin's own checkpoint code (:mod:`vdpm_harness_plugins.models.qwen25vl.gsm.checkpoints`):

* a GSM checkpoint (a ``gsm`` section in ``config.json``, the original's architecture name, or the GSM's keys in its
  weights: the released ``TencentARC/DSR_Suite-Model``, one written by this trainer or by ``models make-tiny --gsm``)
  is loaded strictly, every key checked;
* a plain Qwen2.5-VL checkpoint gets a GSM as the original builds one (``TencentARC/DSR_Suite``,
  ``qwenvl/train/train_qwen.py``): the Qwen weights are loaded (strictly: a missing or unexpected key is an error), the
  new modules keep their initialisation (transformers' ``_init_weights``: linear layers N(0, 0.02), norms 1; the
  queries N(0, 1)), and the encoder's weights come from Pi3 (``--pi3``: a ``.safetensors`` file, a folder holding
  ``model.safetensors``, or a hub id, default ``yyfz233/Pi3``): the keys under ``encoder.``, prefix stripped, mapped
  onto the encoder (:mod:`~vdpm_harness_plugins.models.qwen25vl.gsm.pi3`), every one required (the original only
  printed missing module paths, ``force_load_checkpoint_keep_device_dtype``).

The model is built in float32 (the master weights; :mod:`.parallel` computes in bfloat16 under ``precision = "bf16"``).

**The forward pass** (:class:`PackedGSM`): the GSM's inputs embedded row by row (the vision tower, the Pi3 encoder and
the two Q-Formers: :meth:`~vdpm_harness_plugins.models.qwen25vl.gsm.model.Qwen25VLGSMModel.embed_visual`), the rows'
real tokens packed into one row for the language model (:mod:`.packing`, :mod:`.attention`), and the cross-entropy of
the supervised positions only, in float32, summed (``lm_head`` runs on those positions alone: the logits of a whole
8k-token pack would take 2.5 GB in bf16 for a loss over a handful of tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vdpm_harness_plugins.models.qwen25vl import checkpoints as qwen_checkpoints
from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints
from vdpm_harness_plugins.models.qwen25vl.gsm import pi3
from vdpm_harness_plugins.models.qwen25vl.gsm.settings import PI3_ENCODER, settings_for_tokenizer

from .config import ModelSection
from .samples import IGNORE


class BaseError(ValueError):
    """The base checkpoint or the Pi3 weights cannot be used; the message names the file and keys."""


def is_gsm(config, folder: Path | None) -> bool:
    """Whether a checkpoint is a GSM: its ``gsm`` section, the original's architecture name, or GSM keys in its
    weight files' headers."""
    if getattr(config, "gsm", None) is not None:
        return True
    if gsm_checkpoints.ARCHITECTURE in (getattr(config, "architectures", None) or []):
        return True
    if folder is None:
        return False
    from safetensors import safe_open

    for path in gsm_checkpoints.weight_files(folder):
        with safe_open(str(path), framework="pt") as handle:
            if any(k.startswith((gsm_checkpoints.ENCODER_KEY, "model.gsm.")) for k in handle.keys()):
                return True
    return False


def _load_plain_weights(folder: Path, model) -> None:
    """The weights of a plain Qwen2.5-VL checkpoint into the GSM model; every non-GSM parameter must be fed."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    files = gsm_checkpoints.weight_files(folder)
    if not files:
        raise BaseError(f"{folder}: no safetensors weight files")
    parameters = model.state_dict()
    found, unexpected = set(), []
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                names = gsm_checkpoints.parameter_names(key)
                if names is None or names[0] not in parameters:
                    unexpected.append(key)
                else:
                    found.add(names[0])
    expected = {k for k in parameters if not k.startswith("model.gsm.")}
    if model.config.tie_word_embeddings:
        expected.discard("lm_head.weight")
    missing = sorted(expected - found)
    if missing or unexpected:
        raise BaseError(f"{folder}: not a Qwen2.5-VL checkpoint of its config.json: {len(missing)} missing keys "
                        f"({', '.join(missing[:5])}), {len(unexpected)} unexpected "
                        f"({', '.join(unexpected[:5])})")  # fmt: skip
    device = next(model.parameters()).device
    for path in files:
        state = {gsm_checkpoints.parameter_names(k)[0]: v for k, v in load_file(str(path), device=str(device)).items()}
        model.load_state_dict(state, strict=False)
    if model.config.tie_word_embeddings:
        model.tie_weights()


def pi3_file(source: str, *, revision: str | None, local_files_only: bool) -> Path:
    """Pi3's weight file: the file given, ``model.safetensors`` of a folder, or of a hub id's snapshot."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(source, revision=revision, local_files_only=local_files_only))
        except Exception as exc:  # noqa: BLE001 - the hub's errors vary; say what to do
            raise BaseError(f"Pi3 weights {source}: not a file or folder, and not in the local hub cache "
                            f"(hf download {source}; or pass --pi3 FILE): {exc}") from None  # fmt: skip
    found = sorted(path.glob("*.safetensors"))
    if not found:
        raise BaseError(f"{path}: no .safetensors file of Pi3 weights")
    return found[0]


def load_pi3_encoder(model, source: str, *, revision: str | None = None, local_files_only: bool = True) -> str:
    """Pi3's encoder weights into ``model.gsm.spatial_encoder`` (strict); returns the file read."""
    from safetensors.torch import load_file

    path = pi3_file(source, revision=revision, local_files_only=local_files_only)
    state = pi3.encoder_from_pi3_checkpoint(load_file(str(path)))
    if not state:
        raise BaseError(f"{path}: no keys under '{pi3.PI3_ENCODER_PREFIX}' (not Pi3's checkpoint)")
    mapped, unexpected = pi3.map_pi3_encoder(state)
    encoder = model.gsm.spatial_encoder
    missing = pi3.missing_keys(encoder.state_dict(), mapped)
    shapes = [k for k, v in mapped.items() if k in encoder.state_dict() and encoder.state_dict()[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise BaseError(f"{path}: Pi3's encoder does not fit the GSM's ({len(missing)} missing: {missing[:5]}, "
                        f"{len(unexpected)} unexpected: {unexpected[:5]}, wrong shapes: {shapes[:5]})")  # fmt: skip
    encoder.load_state_dict(mapped, strict=False)
    return str(path)


def load_base(section: ModelSection, device) -> tuple[Any, dict[str, Any]]:
    """The GSM model to train (float32 on ``device``) and what was loaded: ``(model, details)``."""
    if not section.base:
        raise BaseError("no base model: pass --base (a Qwen2.5-VL or GSM checkpoint folder or hub id)")
    hub = {"revision": section.revision, "local_files_only": section.local_files_only}
    config = qwen_checkpoints.load_config(section.base, hint=gsm_checkpoints.MISSING_HINT, **hub)
    folder = gsm_checkpoints.checkpoint_folder(section.base, **hub)
    details: dict[str, Any] = {"base": section.base, "folder": str(folder), "random_weights": section.random_weights}
    if is_gsm(config, folder if not section.random_weights else None):
        model, _ = gsm_checkpoints.load_model(section.base, random_weights=section.random_weights, dtype="float32",
                                              device=device, attn_implementation="sdpa", **hub)  # fmt: skip
        details["kind"] = "gsm"
        return model, details
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    settings = settings_for_tokenizer(tokenizer, encoder=section.encoder or dict(PI3_ENCODER),
                                      num_queries=section.num_queries, clip_mean="exact")  # fmt: skip
    config.gsm = settings.to_config()
    model = gsm_checkpoints.build_model(config, dtype="float32", device=device, attn_implementation="sdpa",
                                        initialise=True)  # fmt: skip
    details["kind"] = "qwen2.5-vl + new GSM"
    if not section.random_weights:
        _load_plain_weights(folder, model)
        details["pi3"] = load_pi3_encoder(model, section.pi3, **hub)
    return model, details


def processor_source(section: ModelSection) -> str:
    """Where the processor is read: the base's folder (or hub id)."""
    return section.base


class PackedGSM(nn.Module):
    """The GSM model wrapped so one call computes a pack's summed loss (the root module :mod:`.parallel` shards)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids_rows, attention_mask_rows, pixel_values_videos, video_grid_thw, second_per_grid_ts,
                position_ids, targets, cu_seqlens, max_seqlen: int) -> torch.Tensor:  # fmt: skip
        """The summed float32 cross-entropy of the pack's supervised positions (the inputs arrive as
        :meth:`.packing.Pack.tensors` makes them: pixels and timing in float32, as at evaluation)."""
        inner = self.model.model
        embeds = inner.get_input_embeddings()(input_ids_rows)
        embeds = inner.embed_visual(
            input_ids_rows, attention_mask_rows, embeds, pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw, second_per_grid_ts=second_per_grid_ts,
        )  # fmt: skip
        packed = embeds[attention_mask_rows.bool()][None]
        hidden = inner.language_model(
            inputs_embeds=packed, position_ids=position_ids, attention_mask=None, use_cache=False,
            cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens, max_length_q=max_seqlen, max_length_k=max_seqlen,
        ).last_hidden_state[0]  # fmt: skip
        chosen = targets != IGNORE
        logits = self.model.lm_head(hidden[chosen]).float()
        return F.cross_entropy(logits, targets[chosen], reduction="sum")


def token_layout(model) -> dict[str, Any]:
    """The ids and sizes a worker needs to compute a sample's positions (:class:`.samples.Layout`)."""
    config = model.config
    vision = config.vision_config
    return {
        "token_ids": {"vision_start_token_id": config.vision_start_token_id, "image_token_id": config.image_token_id,
                      "video_token_id": config.video_token_id},
        "spatial_merge_size": vision.spatial_merge_size, "tokens_per_second": vision.tokens_per_second,
        "num_queries": model.gsm.settings.num_queries,
    }  # fmt: skip


def describe_parameters(model) -> dict[str, int]:
    """Parameter counts by part (for the run record)."""
    parts = {"language_model": model.model.language_model, "vision": model.model.visual, "gsm": model.gsm,
             "geometry_encoder": model.gsm.spatial_encoder}  # fmt: skip
    out = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
