"""The GSM's configuration: the ``"gsm"`` section of a checkpoint's ``config.json``, and the constants it rests on.

A checkpoint written here (``vdpm-harness models make-tiny --gsm``, ``make-random --gsm``, the project's trainer)
records its GSM in ``config.json`` under ``"gsm"``::

    "gsm": {"format": 1, "encoder": {...Dinov2WithRegistersConfig fields...}, "num_queries": 32,
            "clip_mean": "exact", "excluded_token_ids": [...], "im_start_token_id": 151644}

The released checkpoint (``TencentARC/DSR_Suite-Model``, saved by the original code with transformers 4.51) has no
such section; it gets the paper's values (:meth:`GSMSettings.paper`), which are those of ``TencentARC/DSR_Suite``
(commit ``1bfe8e3``), ``model/qwen-vl-finetune/qwenvl/train/qwen_vl_spatial.py``:

* the encoder is Pi3's (GitHub ``yyfz/Pi3``, ``pi3/models/pi3.py``, ``Pi3.__init__``: ``dinov2_vitl14_reg``, a
  DINOv2 ViT-L/14 with 4 registers, LayerScale 1.0, image size 518; weights ``yyfz233/Pi3``), as transformers'
  ``Dinov2WithRegistersModel`` (:data:`PI3_ENCODER`);
* 32 learned queries (``q_former_queries = nn.Parameter(torch.randn(32, out_hidden_size))``);
* the tokens the first Q-Former never reads: the original's hard-coded list (``non_text_tokens`` in
  ``Qwen2_5_VLForConditionalGeneration_Spatial.forward``), in the released vocabulary: ``<|vision_start|>``,
  ``<|vision_end|>``, ``<|vision_pad|>``, ``<|image_pad|>``, ``<|video_pad|>``, ``<|endoftext|>``, ``<|im_start|>``,
  ``<|im_end|>``;
* ``clip_mean = "original"``: the frames are un-normalised with the original's ``before_mean``
  ``[0.48145466, 0.4576275, 0.40821073]``, whose green value is a typo for CLIP's 0.4578275 (the processor normalised
  with the real one). The released weights were trained on frames shifted by that typo, so it is kept for them;
  checkpoints built here record ``"exact"`` (the processor's own mean).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: Learned queries = geometry tokens per request (the paper's 32).
NUM_QUERIES = 32
#: Pi3's encoder as a ``Dinov2WithRegistersConfig``: ViT-L/14, 24 blocks of width 1024, 16 heads, MLP ratio 4, 4
#: registers, LayerScale 1.0, LayerNorm eps 1e-6, position embeddings for 518x518 (interpolated bicubically with
#: antialiasing to other sizes, as DINOv2 does with ``interpolate_antialias=True, interpolate_offset=0``).
PI3_ENCODER: dict[str, Any] = {
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4, "patch_size": 14,
    "image_size": 518, "num_register_tokens": 4, "layerscale_value": 1.0, "layer_norm_eps": 1e-6,
}  # fmt: skip
#: The ids the first Q-Former skips in the released vocabulary (the original's list, in its order).
RELEASED_EXCLUDED_IDS = (151652, 151653, 151654, 151655, 151656, 151643, 151644, 151645)
RELEASED_IM_START_ID = 151644
#: The special tokens behind those ids, for a tokenizer with other ids (tiny checkpoints).
EXCLUDED_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
                   "<|endoftext|>", "<|im_start|>", "<|im_end|>")  # fmt: skip

#: ImageNet normalisation, what the Pi3 encoder expects (Pi3 ``image_mean`` / ``image_std``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: CLIP normalisation, what the Qwen2.5-VL processor applies (transformers ``OPENAI_CLIP_MEAN`` / ``_STD``).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: The original's ``before_mean``: CLIP's mean with the green value mistyped (0.4576275 for 0.4578275).
CLIP_MEAN_ORIGINAL = (0.48145466, 0.4576275, 0.40821073)


@dataclass(frozen=True)
class GSMSettings:
    """What a checkpoint's GSM is: encoder configuration, query count, how frames are un-normalised, which token ids
    the first Q-Former skips and which one opens a turn."""

    encoder: dict[str, Any] = field(default_factory=lambda: dict(PI3_ENCODER))
    num_queries: int = NUM_QUERIES
    clip_mean: Literal["exact", "original"] = "original"
    excluded_token_ids: tuple[int, ...] = RELEASED_EXCLUDED_IDS
    im_start_token_id: int = RELEASED_IM_START_ID

    @classmethod
    def paper(cls) -> GSMSettings:
        """The released checkpoint's GSM (it records none)."""
        return cls()

    @classmethod
    def from_config(cls, config) -> GSMSettings:
        """The settings a ``Qwen2_5_VLConfig`` carries under ``gsm`` (the paper's where it carries none)."""
        section = getattr(config, "gsm", None) or {}
        unknown = set(section) - {"format", *cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"config.json: unknown keys in the gsm section: {sorted(unknown)}")
        values = {k: v for k, v in section.items() if k != "format"}
        if "excluded_token_ids" in values:
            values["excluded_token_ids"] = tuple(values["excluded_token_ids"])
        if "encoder" in values:
            values["encoder"] = {**PI3_ENCODER, **values["encoder"]}
        settings = cls(**values)
        if settings.clip_mean not in ("exact", "original"):
            raise ValueError(f"config.json: gsm.clip_mean must be 'exact' or 'original', not {settings.clip_mean!r}")
        return settings

    def to_config(self) -> dict[str, Any]:
        """The ``gsm`` section of ``config.json``."""
        data = asdict(self)
        data["excluded_token_ids"] = list(self.excluded_token_ids)
        return {"format": 1, **data}

    def encoder_config(self):
        """The ``Dinov2WithRegistersConfig`` of the encoder (attention through SDPA: frames have no padding)."""
        from transformers import Dinov2WithRegistersConfig

        config = Dinov2WithRegistersConfig(**self.encoder)
        config._attn_implementation = "sdpa"
        return config


def settings_for_tokenizer(tokenizer, **values) -> GSMSettings:
    """Settings whose token ids are ``tokenizer``'s (a tokenizer with the Qwen2-VL special tokens)."""
    ids = tokenizer.convert_tokens_to_ids(list(EXCLUDED_TOKENS))
    return GSMSettings(excluded_token_ids=tuple(ids), im_start_token_id=ids[EXCLUDED_TOKENS.index("<|im_start|>")],
                       **values)  # fmt: skip
