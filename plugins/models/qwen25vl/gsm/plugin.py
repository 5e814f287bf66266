"""The ``qwen25vl-gsm`` model plugin: DSR Suite's GSM model through the ``qwen25vl`` pipeline.

Everything a request goes through is :class:`..model.Qwen25VL`'s (harness-decoded frames with their true timing,
the processor call, the context check, batched greedy generation, the CUDA fast path), with three differences:

* the model is :class:`.model.Qwen25VLGSMForConditionalGeneration`, loaded strictly from a GSM checkpoint
  (:mod:`.checkpoints`: the released ``TencentARC/DSR_Suite-Model``, the default path, any folder in that layout,
  such as ``vdpm-harness models make-tiny DIR --gsm`` or the project's trainer output); offline, a missing
  checkpoint is an error naming the hub id, how to download it and ``vdpm-harness train gsm``;
* each request with images or videos carries 32 geometry pads (:mod:`.inputs`);
* on CUDA the Pi3 encoder's blocks are compiled too (the Q-Formers run in one attention call per batch already);
* shared prompt prefixes (``share_prefix``, on by default as for ``qwen25vl``, a runtime option) go through
  :class:`.sharing.GSMSharing`: a GSM prompt's 32 geometry tokens sit right after its video's pads and are computed
  from the video *and the question's text* (the first Q-Former reads the whole prompt, :mod:`.tokens`), so the
  shared prefix ends at the video's last pad; the vision tower, the Pi3 encoder, the merger and the prefix's prefill
  run once per video, the Q-Formers once per question (under both ``numerics``).

Images are supported: an image is a one-grid input of the GSM (the processor repeats it over the temporal patch, so
the encoder sees it twice); its geometry features join the request's others. The option ``numerics="original"``
reproduces the original's numerics where they differ (:mod:`.model`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .. import checkpoints as qwen_checkpoints
from .. import speed
from ..model import Qwen25VL, QwenOptions
from . import checkpoints, inputs
from .settings import NUM_QUERIES, GSMSettings
from .sharing import GSMSharing

#: The released GSM checkpoint (Hugging Face hub; gated).
RELEASED = "TencentARC/DSR_Suite-Model"


class GSMOptions(QwenOptions):
    """The ``qwen25vl`` options (``share_prefix`` included: :mod:`.sharing`), with the released GSM as the default
    ``path``, and ``numerics``."""

    path: str = Field(default=RELEASED, min_length=1, description="hub id or local GSM checkpoint folder")
    numerics: Literal["fixed", "original"] = Field(
        default="fixed",
        description="original: reproduce the original's numerics where they differ (the first Q-Former also reads "
        "the assistant header at inference, the mistyped CLIP mean, patches and text positions in the model dtype)",
    )


class Qwen25VLGSM(Qwen25VL):
    """Qwen2.5-VL with the Geometry Selection Module: 32 geometry tokens per request with images or videos."""

    Options = GSMOptions

    def _load_config(self, hub: dict[str, Any]):
        config = qwen_checkpoints.load_config(self.options.path, hint=checkpoints.MISSING_HINT, **hub)
        GSMSettings.from_config(config)  # a malformed gsm section fails here, naming the key
        return config

    def _load_model(self, hub: dict[str, Any]):
        model, generation = checkpoints.load_model(
            self.options.path, random_weights=self.options.random_weights, dtype=self.dtype_name, device=self.device,
            attn_implementation=self.attn_implementation, **hub,
        )  # fmt: skip
        model.model.original_numerics = self.options.numerics == "original"
        return model, generation

    def _compile(self, model) -> list[str]:
        compiled = super()._compile(model)
        for layer in model.gsm.spatial_encoder.encoder.layer:
            speed.compile_for_prefill(layer)
        return [*compiled, "geometry encoder blocks"]

    def encode(self, processor, prompts, *, device: str | None = None):
        """:func:`.inputs.encode`: the ``qwen25vl`` inputs plus the geometry pads."""
        queries = self._model.gsm.settings.num_queries if self._model is not None else NUM_QUERIES
        return inputs.encode(processor, prompts, device=device, num_queries=queries)

    def _sharing(self) -> GSMSharing:
        """Prefix sharing with each question's own geometry tokens (:mod:`.sharing`)."""
        return GSMSharing.of(self._model)

    def describe(self) -> dict[str, Any]:
        details = super().describe()
        details["numerics"] = self.options.numerics
        if self._model is None:
            return details
        gsm = self._model.gsm
        settings = gsm.settings
        encoder = gsm.spatial_encoder.config
        clip_mean = "original" if gsm.original_numerics else settings.clip_mean
        details["gsm"] = {
            "num_queries": settings.num_queries, "clip_mean": clip_mean,
            "encoder": {"layers": encoder.num_hidden_layers, "width": encoder.hidden_size,
                        "registers": encoder.num_register_tokens, "patch": encoder.patch_size},
            "parameters": sum(p.numel() for p in gsm.parameters()),
            "encoder_parameters": sum(p.numel() for p in gsm.spatial_encoder.parameters()),
        }  # fmt: skip
        training = getattr(self._model.config, "vdpm_training", None)
        if training:  # the training run that wrote the checkpoint (vdpm-harness train gsm: config.json)
            details["training"] = training
        return details
