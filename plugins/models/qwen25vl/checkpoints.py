"""Qwen2.5-VL checkpoints: building offline ones (a tiny random-weight model for tests, config-only real sizes),
and resolving and loading any checkpoint (hub id or local folder) for the ``qwen25vl`` plugin.

Building needs no model hub (verified with transformers 5.23):

* :func:`make_tiny` trains a small byte-level BPE tokenizer on seeded synthetic sentences, adds the Qwen2-VL special
  tokens right after its vocabulary (in the released order), sets the Qwen2-VL chat template, builds the processor and
  a 2-layer model (about 0.39 M parameters) with seeded random weights, and saves everything with ``save_pretrained``.
  The plugin then loads it through the same ``from_pretrained`` paths as a hub checkpoint.
* :func:`make_random` writes a real configuration (:data:`REAL_CONFIGS`) with the same kind of tokenizer, but with the
  special tokens at their released ids (``<|endoftext|>`` = 151643 ... ``<|video_pad|>`` = 151656), so every id the
  tokenizer emits is valid for the real vocabulary. No weights are written: the ``qwen25vl`` plugin instantiates it
  with ``random_weights=true`` (for GPU throughput measurements without downloads).

Command line: ``vdpm-harness models make-tiny DIR [--seed S] [--gsm]`` and ``vdpm-harness models make-random DIR
--config 7b [--gsm]`` (``--gsm``: the GSM checkpoints of :mod:`.gsm.checkpoints`, built on these).

Loading: :func:`load_config` reads a folder or a hub id (offline by default, with an error that names the hub id and
how to download it), :func:`load_processor` the processor, :func:`load_weights` the model from its weight files, and
:func:`load_random_model` a config-only checkpoint with seeded random weights. :func:`revision_of` identifies the
weights for the result store.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

#: The Qwen2-VL special tokens in the released order; ``<|endoftext|>`` comes first (id 151643 in the real vocab).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
#: Id of ``<|endoftext|>`` in the released Qwen2/Qwen2.5 vocabularies; the other specials follow it in order.
RELEASED_SPECIAL_BASE = 151643
CHAT_TEMPLATE_FILE = Path(__file__).with_name("chat_template.jinja")
#: Suffixes of weight files: a folder without any is a config-only checkpoint (random weights only).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

#: Real Qwen2.5-VL configurations. 7B: the values of the released ``Qwen/Qwen2.5-VL-7B-Instruct`` config.json (Hugging
#: Face hub); ``max_position_embeddings`` and ``rms_norm_eps`` as released for the family (128000 and 1e-6). Other
#: sizes are not included: their values could not be checked offline.
REAL_CONFIGS: dict[str, dict[str, Any]] = {
    "7b": {
        "hub_id": "Qwen/Qwen2.5-VL-7B-Instruct",
        "text": {
            "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
            "num_attention_heads": 28, "num_key_value_heads": 4, "hidden_act": "silu",
            "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "use_sliding_window": False,
            "sliding_window": 32768, "max_window_layers": 28, "attention_dropout": 0.0,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        },
        "vision": {
            "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
            "patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "spatial_merge_size": 2,
            "temporal_patch_size": 2, "tokens_per_second": 2, "hidden_act": "silu", "in_channels": 3,
        },
        "tie_word_embeddings": False,
    },
}  # fmt: skip

#: The tiny model: 385,856 parameters with the 552-token vocabulary of seed 0.
TINY_TEXT = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 4096,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
}  # fmt: skip
TINY_VISION = {
    "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4, "out_hidden_size": 64, "patch_size": 14,
    "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [1],
    "tokens_per_second": 2,
}  # fmt: skip
#: Per-frame pixel limits of the tiny processor; the plugin passes explicit limits for videos.
TINY_PIXELS = (28 * 28 * 4, 112 * 112)

_WORDS = (
    "the a red blue green disc ball car person camera moves left right up down toward away from faster slower "
    "closer farther video frame question answer option which where when how far near object scene behind front "
    "above below rotates turns stops starts speed distance direction orientation relative absolute first last "
    "time second meter during end start is are was does do in on of to with and or"
).split()


def _corpus(seed: int, n: int = 160) -> list[str]:
    """Seeded synthetic sentences (words, numbers, option letters, punctuation) to train the tiny tokenizer on."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        words = [str(w) for w in rng.choice(_WORDS, size=int(rng.integers(6, 16)))]
        words.insert(int(rng.integers(len(words))), str(int(rng.integers(0, 1000))))
        letter = "ABCD"[int(rng.integers(4))]
        lines.append(" ".join(words).capitalize() + f"? Answer: {letter}. ({letter}) {letter}:\n")
    return lines


def build_tokenizer(seed: int = 0, special_base: int | None = None, vocab_size: int = 600):
    """A Qwen2 byte-level BPE tokenizer trained on :func:`_corpus`, with the Qwen2-VL special tokens.

    The specials take ids ``special_base, special_base + 1, ...`` in :data:`SPECIAL_TOKENS` order: right after the
    trained vocabulary when ``special_base`` is None, else at the given base (151643 for the released layout).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[]
    )
    bpe.train_from_iterator(_corpus(seed), trainer)
    vocab = bpe.get_vocab()
    # merges must be tuples: with transformers 5.23, "a b" strings make the BPE model raise "failed to extract enum
    # PyMerges"
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in json.loads(bpe.to_str())["model"]["merges"]
    ]
    base = len(vocab) if special_base is None else special_base
    if base < len(vocab):
        raise ValueError(f"special tokens at {base} would collide with the {len(vocab)} trained tokens")
    vocab.update({token: base + i for i, token in enumerate(SPECIAL_TOKENS)})
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, errors="replace", unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE_FILE.read_text(encoding="utf-8")
    return tokenizer


def special_ids(tokenizer) -> dict[str, int]:
    """The config fields that name special tokens, read from ``tokenizer``."""
    ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)))
    return {
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
    }  # fmt: skip


def build_processor(tokenizer, pixels: tuple[int, int] | None = None):
    """``Qwen2_5_VLProcessor`` with the released defaults (patch 14, merge 2, temporal patch 2, CLIP mean/std);
    ``pixels = (min, max)`` sets the image and video processors' default per-frame limits."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    limits = {"min_pixels": pixels[0], "max_pixels": pixels[1]} if pixels else {}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**limits),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**limits),
        chat_template=tokenizer.chat_template,
    )


def qwen_config(text: dict, vision: dict, ids: dict[str, int], **extra):
    """A ``Qwen2_5_VLConfig`` of ``text`` and ``vision`` sizes with the special token ids ``ids``."""
    from transformers import Qwen2_5_VLConfig

    token_ids = {k: ids[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    media_ids = {
        k: ids[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    }
    return Qwen2_5_VLConfig(text_config={**text, **token_ids}, vision_config=dict(vision), **media_ids, **extra)


def generation_config(ids: dict[str, int]):
    """The generation config naming the checkpoint's special tokens (no sampling defaults)."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"],
                            pad_token_id=ids["pad_token_id"])  # fmt: skip


def make_tiny(out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Build and save the tiny random-weight Qwen2.5-VL (fp32) into ``out``; return a summary."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = Path(out)
    tokenizer = build_tokenizer(seed)
    ids = special_ids(tokenizer)
    vocab_size = max(tokenizer.get_vocab().values()) + 1
    config = qwen_config({**TINY_TEXT, "vocab_size": vocab_size}, TINY_VISION, ids)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).float()  # every parameter in float32, none in another dtype
    model.generation_config = generation_config(ids)
    model.save_pretrained(out)
    build_processor(tokenizer, TINY_PIXELS).save_pretrained(out)
    return {
        "path": str(out), "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": vocab_size,
        "seed": seed, "files": sorted(p.name for p in out.iterdir()),
    }  # fmt: skip


def make_random(out: str | Path, size: str, seed: int = 0) -> dict[str, Any]:
    """Write the real ``size`` configuration, generation config and an offline processor into ``out``, no weights."""
    try:
        spec = REAL_CONFIGS[size.lower()]
    except KeyError:
        raise ValueError(f"unknown configuration {size!r}; known: {', '.join(REAL_CONFIGS)}") from None
    out = Path(out)
    tokenizer = build_tokenizer(seed, special_base=RELEASED_SPECIAL_BASE)
    ids = special_ids(tokenizer)
    config = qwen_config(spec["text"], spec["vision"], ids, tie_word_embeddings=spec["tie_word_embeddings"])
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    config.dtype = "bfloat16"  # as released; the plugin builds random weights in the dtype it is asked for
    config.save_pretrained(out)
    generation_config(ids).save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    return {
        "path": str(out),
        "config": size.lower(),
        "like": spec["hub_id"],
        "files": sorted(p.name for p in out.iterdir()),
    }


# --- resolving and loading a checkpoint -------------------------------------------------------------------------------


def local_folder(path: str) -> Path | None:
    """``path`` as a local checkpoint folder (``~`` expanded), or ``None`` when it is not one (a hub id)."""
    folder = Path(os.path.expanduser(path))
    return folder if folder.is_dir() else None


def _source(path: str) -> str:
    return str(local_folder(path) or path)


def folder_digest(folder: Path) -> str:
    """Hash of a checkpoint folder: contents of its small files, names/sizes/mtimes of its weight files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(path.name.encode() + b"\0")
        if path.suffix in WEIGHT_SUFFIXES:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def config_file(path: str, revision: str | None = None) -> Path | None:
    """The ``config.json`` of a folder, or of the hub snapshot in the local cache (``.../snapshots/<commit>/``);
    ``None`` when there is none. Never touches the network."""
    folder = local_folder(path)
    if folder is not None:
        found = folder / "config.json"
        return found if found.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(path, "config.json", revision=revision)
    return Path(found) if isinstance(found, str) else None


def revision_of(path: str, *, revision: str | None = None, random_weights: bool = False, config=None) -> str:
    """What identifies the weights: ``random:<config hash>`` for random weights, ``local:<hash>`` for a folder
    (:func:`folder_digest`), ``<hub id>@<commit>`` for a hub checkpoint: the commit of the loaded ``config`` when
    given, else of the snapshot in the local cache, else the requested ``revision`` (or ``unresolved``)."""
    if random_weights:
        found = config_file(path, revision)
        digest = hashlib.sha256(found.read_bytes()).hexdigest()[:16] if found else path
        return f"random:{digest}"
    folder = local_folder(path)
    if folder is not None:
        return f"local:{folder_digest(folder)}"
    commit = getattr(config, "_commit_hash", None)
    if not commit:
        found = config_file(path, revision)
        commit = found.parent.name if found is not None else None
    return f"{path}@{commit or revision or 'unresolved'}"


def load_config(path: str, *, revision: str | None = None, local_files_only: bool = True, hint: str = ""):
    """The Qwen2.5-VL configuration of a folder or hub id. A hub id missing from the local cache while
    ``local_files_only`` is an ``OSError`` that names it and how to download it (then ``hint``); another model type
    a ValueError."""
    from transformers import AutoConfig

    source = _source(path)
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, local_files_only=local_files_only)
    except OSError as exc:
        if local_folder(path) is None and local_files_only:
            raise OSError(
                f"{source} is not in the local Hugging Face cache and local_files_only is true: "
                f"download it first (hf download {source}) or pass local_files_only=false{f' {hint}' if hint else ''}"
            ) from exc
        raise
    if config.model_type != "qwen2_5_vl":
        raise ValueError(f"{source}: model_type is {config.model_type!r}, not a Qwen2.5-VL checkpoint")
    return config


def load_processor(path: str, *, revision: str | None = None, local_files_only: bool = True):
    """The checkpoint's processor, its tokenizer padding on the left (batched generation continues every row from
    its last token)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(_source(path), revision=revision, local_files_only=local_files_only)
    processor.tokenizer.padding_side = "left"
    return processor


def load_weights(path: str, *, dtype: str, device, attn_implementation: str, revision: str | None = None,
                 local_files_only: bool = True):  # fmt: skip
    """The model from the checkpoint's weight files, in ``dtype`` on ``device``, in eval mode. A folder without
    weight files (``vdpm-harness models make-random``) is a FileNotFoundError that names the option it needs."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = local_folder(path)
    if folder is not None and not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise FileNotFoundError(f"{folder}: no weight files; a config-only checkpoint (vdpm-harness models "
                                "make-random) needs the option random_weights=true")  # fmt: skip
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(
        _source(path), dtype=getattr(torch, dtype), device_map=str(device), attn_implementation=attn_implementation,
        revision=revision, local_files_only=local_files_only,
    ).eval()  # fmt: skip


def load_random_model(path: str | os.PathLike, *, dtype: str = "bfloat16", device="cuda",
                      attn_implementation: str = "sdpa", vision_attention: str = "transformers",
                      revision: str | None = None, local_files_only: bool = True):  # fmt: skip
    """The Qwen2.5-VL of the configuration in ``path`` with seeded random weights, built directly on ``device`` and
    then cast as a whole to ``dtype``, so no parameter is left in another dtype than the rest; returns
    ``(model, config)``. ``attn_implementation="rowwise"`` registers
    :mod:`.attention`; ``vision_attention`` is :func:`.speed.patch_vision`'s mode. A random model of the real size
    costs the same time as a trained one, so this measures throughput without downloading weights."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from .speed import patch_vision

    if attn_implementation == "rowwise":
        from .attention import register

        attn_implementation = register()
    config = AutoConfig.from_pretrained(path, revision=revision, local_files_only=local_files_only)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=getattr(torch, dtype), attn_implementation=attn_implementation
        )
    model = model.to(getattr(torch, dtype)).eval()
    patch_vision(model, vision_attention)
    return model, config


def load_model(path: str, *, random_weights: bool, dtype: str, device, attn_implementation: str,
               revision: str | None = None, local_files_only: bool = True):  # fmt: skip
    """The model of a checkpoint (:func:`load_weights`, or :func:`load_random_model` with ``random_weights``) and the
    checkpoint's own generation config: ``(model, GenerationConfig)``."""
    from transformers import GenerationConfig

    hub = {"revision": revision, "local_files_only": local_files_only}
    if not random_weights:
        model = load_weights(path, dtype=dtype, device=device, attn_implementation=attn_implementation, **hub)
        return model, model.generation_config
    model, config = load_random_model(_source(path), dtype=dtype, device=device,
                                      attn_implementation=attn_implementation, **hub)  # fmt: skip
    try:
        return model, GenerationConfig.from_pretrained(_source(path), **hub)
    except OSError:
        return model, GenerationConfig.from_model_config(config)
