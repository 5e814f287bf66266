"""GSM checkpoints: the released key layout, strict loading, saving, and the offline builders.

**Format.** One layout for the released checkpoint, for checkpoints built here and for the project's trainer: the
folder of a Qwen2.5-VL checkpoint (``config.json`` with ``model_type: qwen2_5_vl``, the processor's files,
``generation_config.json``) whose safetensors hold the keys the original wrote (transformers 4.51's
``save_pretrained`` of ``Qwen2_5_VLForConditionalGeneration_Spatial``, ``TencentARC/DSR_Suite``,
``qwenvl/train/qwen_vl_spatial.py``):

==============================================  ==============================================================
checkpoint key                                  model parameter (:class:`~.model.Qwen25VLGSMForConditionalGeneration`)
==============================================  ==============================================================
``visual.spatial_encoder.*`` (Pi3 / DINOv2)     ``model.gsm.spatial_encoder.*`` (transformers names, :mod:`.pi3`)
``visual.spatial_merger.*``, ``visual.q_former_queries``, ``visual.q_former_{1,2}.*``, ``visual.q_former_norm.*``
                                                ``model.gsm.`` + the same name
``visual.*`` (the vision tower)                 ``model.visual.*``
``model.*`` (the language model)                ``model.language_model.*``
``lm_head.weight`` (absent when tied)           ``lm_head.weight``
==============================================  ==============================================================

transformers 5's own layout (``model.visual.*``, ``model.language_model.*``, ``model.gsm.*``) is read as well.
The GSM's configuration is the ``gsm`` section of ``config.json`` (:mod:`.settings`; the paper's when absent).

**Loading is strict** (:func:`load_weights`): before any tensor is read, the checkpoint's keys are mapped and compared
with the model's; a missing or unexpected key, or a tensor of the wrong shape, is a :class:`CheckpointMismatch`
that names them (in the checkpoint's layout), so a checkpoint that does not fit never runs with parameters left at
random values. (The original warned and went on: ``force_load_checkpoint_keep_device_dtype`` prints missing module
paths, and transformers' ``from_pretrained`` logs missing keys.) Only ``embeddings.mask_token`` of the encoder, which
nothing uses, may be absent (:data:`.pi3.UNUSED`).

**Builders**: :func:`make_tiny` (a tiny random-weight GSM on the tiny Qwen2.5-VL of :mod:`..checkpoints`, saved in
this format) and :func:`make_random` (the real 7B configuration plus the Pi3 ViT-L encoder, config only, for
``random_weights=true`` throughput runs).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from vdpm_harness import dinov2

from .. import checkpoints as qwen_checkpoints
from . import pi3
from .settings import GSMSettings, settings_for_tokenizer

#: The class name the original's ``save_pretrained`` writes into ``config.json`` (``architectures``).
ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration_Spatial"
#: The GSM's parameters stored as ``visual.<name>`` by the original, besides the encoder.
GSM_NAMES = ("spatial_merger", "q_former_queries", "q_former_1", "q_former_2", "q_former_norm")
ENCODER_KEY = "visual.spatial_encoder."
ENCODER_PARAM = "model.gsm.spatial_encoder."
#: A tiny Pi3-like encoder for tests: 2 blocks of width 32, 2 heads, 4 registers, patch 14, positions for 56x56.
TINY_ENCODER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 56}
#: Largest safetensors file :func:`save` writes before sharding (the transformers default).
MAX_SHARD_BYTES = 5 * 1024**3
#: Hint appended when the released checkpoint is missing offline.
MISSING_HINT = "(a gated repository: accept its terms on the hub first), or train one: vdpm-harness train gsm"


class CheckpointMismatch(ValueError):
    """A checkpoint's keys or shapes do not fit the GSM model; the message lists them."""


# --- key layout -------------------------------------------------------------------------------------------------------


def parameter_names(key: str) -> list[str] | None:
    """The model parameters one checkpoint key feeds (three for the encoder's fused ``qkv``); ``None`` when it feeds
    none."""
    if key.startswith(ENCODER_KEY):
        names = dinov2.transformers_names(key[len(ENCODER_KEY) :])
        return None if names is None else [ENCODER_PARAM + n for n in names]
    for name in GSM_NAMES:
        if key == f"visual.{name}" or key.startswith(f"visual.{name}."):
            return ["model.gsm." + key[len("visual.") :]]
    if key.startswith("visual."):
        return ["model." + key]
    if key.startswith(("model.visual.", "model.language_model.", "model.gsm.")):
        return [key]
    if key.startswith("model."):
        return ["model.language_model." + key[len("model.") :]]
    if key == "lm_head.weight":
        return [key]
    return None


def checkpoint_name(parameter: str) -> str:
    """The released-layout key of a model parameter (the encoder's ``q/k/v`` as the fused ``qkv``)."""
    if parameter.startswith(ENCODER_PARAM):
        return ENCODER_KEY + dinov2.dinov2_name(parameter[len(ENCODER_PARAM) :])
    if parameter.startswith("model.gsm."):
        return "visual." + parameter[len("model.gsm.") :]
    if parameter.startswith("model.visual."):
        return parameter[len("model.") :]
    if parameter.startswith("model.language_model."):
        return "model." + parameter[len("model.language_model.") :]
    return parameter


def released_state(model) -> dict[str, Any]:
    """The model's parameters under the released checkpoint's keys (the encoder in Pi3's layout, its unused
    ``mask_token`` left out; ``lm_head.weight`` left out when tied to the embeddings)."""
    tied = bool(model.config.tie_word_embeddings)
    out, encoder = {}, {}
    for key, tensor in model.state_dict().items():
        if key.startswith(ENCODER_PARAM):
            encoder[key[len(ENCODER_PARAM) :]] = tensor
        elif key == "lm_head.weight":
            if not tied:
                out[key] = tensor
        else:
            out[checkpoint_name(key)] = tensor
    out.update({ENCODER_KEY + k: v for k, v in dinov2.to_dinov2(encoder).items()})
    return {k: v.detach().contiguous() for k, v in out.items()}


# --- files ------------------------------------------------------------------------------------------------------------


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder (those of ``model.safetensors.index.json`` when it has one)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / name for name in names]
    return sorted(folder.glob("*.safetensors"))


def save(model, folder: str | os.PathLike, *, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[str]:
    """Write the model's weights (:func:`released_state`), ``config.json`` (with its ``gsm`` section and the original's
    ``architectures``) and ``generation_config.json`` into ``folder``; returns the weight files written."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = released_state(model)
    shards: list[dict[str, Any]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
        weight_map = {key: name for name, shard in zip(names, shards) for key in shard}
        total = sum(t.numel() * t.element_size() for t in state.values())
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
        )
    for name, shard in zip(names, shards):
        save_file(shard, str(folder / name), metadata={"format": "pt"})
    config = model.config
    config.gsm = model.gsm.settings.to_config()
    config.architectures = [ARCHITECTURE]
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    return names


# --- loading ----------------------------------------------------------------------------------------------------------


def _expected(model) -> set[str]:
    expected = set(model.state_dict()) - {ENCODER_PARAM + k for k in pi3.UNUSED}
    if model.config.tie_word_embeddings:
        expected.discard("lm_head.weight")
    return expected


def _mismatch(folder, missing: list[str], unexpected: list[str], shapes: list[str] = ()) -> CheckpointMismatch:
    def listed(keys):
        if len(keys) <= 12:
            return ", ".join(keys)
        modules: dict[str, int] = {}
        for key in keys:
            module = ".".join(key.split(" ")[0].split(".")[:2])
            modules[module] = modules.get(module, 0) + 1
        by_module = ", ".join(f"{module} ({n})" for module, n in modules.items())
        return f"{', '.join(keys[:12])}, ... ({len(keys) - 12} more; by module: {by_module})"

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {listed(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {listed(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} tensors of the wrong shape: {listed(list(shapes))}")
    return CheckpointMismatch(f"{folder}: the checkpoint does not fit the GSM model of its config.json; "
                              + "; ".join(parts) + ". Nothing was loaded (a partial load would run with random "
                              "weights); check that this is a GSM checkpoint (keys visual.spatial_encoder.*, "
                              "visual.q_former_*) and that its config.json describes it")  # fmt: skip


def check_keys(folder: Path, model) -> None:
    """Compare the checkpoint's keys (read from the files' headers only) with the model's parameters; raise
    :class:`CheckpointMismatch` naming the missing and unexpected keys (in the checkpoint's layout)."""
    from safetensors import safe_open

    found: dict[str, str] = {}  # model parameter -> the checkpoint key that feeds it
    unexpected = []
    for path in weight_files(folder):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                names = parameter_names(key)
                if names is None:
                    unexpected.append(key)
                else:
                    found.update(dict.fromkeys(names, key))
    expected = _expected(model)
    unused = {ENCODER_PARAM + k for k in pi3.UNUSED}
    unexpected += sorted({found[n] for n in set(found) - expected - unused})
    missing = sorted({checkpoint_name(n) for n in expected - set(found)})
    if missing or unexpected:
        raise _mismatch(folder, missing, sorted(unexpected))


def load_weights(folder: str | os.PathLike, model) -> None:
    """Load a checkpoint folder into ``model`` (built without initialisation), file by file, after
    :func:`check_keys`; a wrong shape is a :class:`CheckpointMismatch` too."""
    from safetensors.torch import load_file

    folder = Path(folder)
    files = weight_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no safetensors weight files (a config-only checkpoint, vdpm-harness models "
                                "make-random --gsm, needs the option random_weights=true)")  # fmt: skip
    check_keys(folder, model)
    device = next(model.parameters()).device
    parameters = model.state_dict()
    for path in files:
        mapped = {}
        for key, tensor in load_file(str(path), device=str(device)).items():
            if key.startswith(ENCODER_KEY):
                converted = dinov2.to_transformers(key[len(ENCODER_KEY) :], tensor)
                mapped.update({ENCODER_PARAM + k: v for k, v in converted.items()})
            else:
                mapped[parameter_names(key)[0]] = tensor
        shapes = [f"{checkpoint_name(k)} {tuple(v.shape)} for {tuple(parameters[k].shape)}"
                  for k, v in mapped.items() if k in parameters and v.shape != parameters[k].shape]  # fmt: skip
        if shapes:
            raise _mismatch(folder, [], [], shapes)
        model.load_state_dict(mapped, strict=False)
    if model.config.tie_word_embeddings:
        model.tie_weights()


def build_model(config, *, dtype: str, device, attn_implementation: str, initialise: bool):
    """:class:`~.model.Qwen25VLGSMForConditionalGeneration` of ``config`` built on ``device`` in ``dtype``: seeded
    random weights when ``initialise``, else uninitialised memory for :func:`load_weights` to fill."""
    import torch
    from transformers.initialization import no_init_weights

    from .model import Qwen25VLGSMForConditionalGeneration

    GSMSettings.from_config(config)  # a malformed gsm section fails before any allocation
    if initialise:
        torch.manual_seed(0)
    with torch.device(device), contextlib.nullcontext() if initialise else no_init_weights():
        model = Qwen25VLGSMForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype),
                                                                  attn_implementation=attn_implementation)  # fmt: skip
    return model.to(getattr(torch, dtype)).eval()


def checkpoint_folder(path: str, *, revision: str | None = None, local_files_only: bool = True) -> Path:
    """A local folder as given, a hub id as its snapshot folder in the local cache (downloaded unless
    ``local_files_only``)."""
    folder = qwen_checkpoints.local_folder(path)
    if folder is not None:
        return folder
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(path, revision=revision, local_files_only=local_files_only))


def load_model(path: str, *, random_weights: bool, dtype: str, device, attn_implementation: str,
               revision: str | None = None, local_files_only: bool = True):  # fmt: skip
    """The GSM model of a checkpoint (folder or hub id) and the checkpoint's generation config:
    ``(model, GenerationConfig)``. ``random_weights`` builds it from ``config.json`` with seeded random weights."""
    from transformers import AutoConfig, GenerationConfig

    folder = checkpoint_folder(path, revision=revision, local_files_only=local_files_only)
    config = AutoConfig.from_pretrained(folder)
    if not random_weights and not weight_files(folder):
        raise FileNotFoundError(f"{folder}: no weight files; a config-only checkpoint (vdpm-harness models "
                                "make-random --gsm) needs the option random_weights=true")  # fmt: skip
    model = build_model(config, dtype=dtype, device=device, attn_implementation=attn_implementation,
                        initialise=random_weights)  # fmt: skip
    if not random_weights:
        load_weights(folder, model)
    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        generation = GenerationConfig.from_model_config(config)
    return model, generation


# --- offline builders -------------------------------------------------------------------------------------------------


def make_tiny(out: str | os.PathLike, seed: int = 0) -> dict[str, Any]:
    """A tiny random-weight GSM (fp32) in ``out``: the tiny Qwen2.5-VL of :func:`..checkpoints.make_tiny` (tokenizer,
    processor, 2-layer model), a :data:`TINY_ENCODER` encoder, Q-Formers of the tiny language model's sizes."""
    import torch

    from .model import Qwen25VLGSMForConditionalGeneration

    out = Path(out)
    tokenizer = qwen_checkpoints.build_tokenizer(seed)
    ids = qwen_checkpoints.special_ids(tokenizer)
    vocab_size = max(tokenizer.get_vocab().values()) + 1
    config = qwen_checkpoints.qwen_config({**qwen_checkpoints.TINY_TEXT, "vocab_size": vocab_size},
                                          qwen_checkpoints.TINY_VISION, ids)  # fmt: skip
    config.gsm = settings_for_tokenizer(tokenizer, encoder=TINY_ENCODER, clip_mean="exact").to_config()
    torch.manual_seed(seed)
    model = Qwen25VLGSMForConditionalGeneration(config).float()
    model.generation_config = qwen_checkpoints.generation_config(ids)
    save(model, out)
    qwen_checkpoints.build_processor(tokenizer, qwen_checkpoints.TINY_PIXELS).save_pretrained(out)
    return {
        "path": str(out), "parameters": sum(p.numel() for p in model.parameters()),
        "gsm_parameters": sum(p.numel() for p in model.gsm.parameters()), "vocab_size": vocab_size, "seed": seed,
        "files": sorted(p.name for p in out.iterdir()),
    }  # fmt: skip


def make_random(out: str | os.PathLike, size: str, seed: int = 0) -> dict[str, Any]:
    """The real ``size`` Qwen2.5-VL configuration (:func:`..checkpoints.make_random`) with the paper's GSM (Pi3
    ViT-L/14 encoder, 32 queries, Q-Formers of the language model's sizes), config only: run it with
    ``random_weights=true``."""
    from transformers import AutoConfig, AutoTokenizer

    summary = qwen_checkpoints.make_random(out, size, seed)
    config = AutoConfig.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    config.gsm = settings_for_tokenizer(tokenizer, clip_mean="exact").to_config()
    config.architectures = [ARCHITECTURE]
    config.save_pretrained(out)
    return {**summary, "gsm": config.gsm, "files": sorted(p.name for p in Path(out).iterdir())}
