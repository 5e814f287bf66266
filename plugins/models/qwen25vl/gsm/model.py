"""The GSM as a transformers model: Qwen2.5-VL whose visual inputs also yield 32 geometry tokens per request.

:class:`Qwen25VLGSMForConditionalGeneration` is transformers' ``Qwen2_5_VLForConditionalGeneration`` (same vision
tower, language model, ``generate``, KV cache) whose inner model, :class:`Qwen25VLGSMModel`, adds
:class:`~.modules.GeometrySelection` as ``model.gsm`` and changes two things of the forward pass, as the original
``Qwen2_5_VLForConditionalGeneration_Spatial.forward`` does (``TencentARC/DSR_Suite``, commit ``1bfe8e3``,
``model/qwen-vl-finetune/qwenvl/train/qwen_vl_spatial.py``):

* **Embeddings** (:meth:`Qwen25VLGSMModel.embed_visual`): the token embeddings are taken *before* the visual features
  are scattered in; each request's text for the first Q-Former is read from them (:func:`.tokens.text_selection`, or
  a ``gsm_text_mask`` the caller passes, e.g. a trainer's prompt mask). Image and video pads get the vision tower's
  features as usual; each request's geometry slots (:func:`.tokens.geometry_slots`) get its 32 geometry tokens,
  computed from all of its images and videos. The pass is three parts, which shared prompt prefixes (:mod:`.sharing`)
  run at different times: :meth:`~Qwen25VLGSMModel.encode_visual` (per image or video, from its pixels alone: the
  vision tower, the Pi3 encoder, the spatial merger), :meth:`~Qwen25VLGSMModel.geometry_tokens` (per request: the
  Q-Formers over its text and its inputs' geometry) and :meth:`~Qwen25VLGSMModel.scatter_visual`.
* **Positions** (:meth:`Qwen25VLGSMModel.get_rope_index`): :func:`.positions.rope_index`, the rule the checkpoint
  was trained with; the geometry pads are text.

Numerics: ``model.model.original_numerics = True`` (the plugin's ``numerics="original"``) reproduces the original's
where this implementation fixes them: the first Q-Former also reads the assistant header at inference; frames are
un-normalised with the original's mistyped CLIP mean; patches are read after the cast to the model's dtype; the
Q-Former's text positions are stored in the model's dtype (bf16 rounds positions above 256). Attention runs through
SDPA instead of the original's eager softmax (the same function up to rounding).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
    Qwen2_5_VLPreTrainedModel,
)

from . import positions, tokens
from .modules import GeometrySelection
from .settings import GSMSettings


class Qwen25VLGSMModel(Qwen2_5_VLModel):
    """Qwen2.5-VL's inner model with the Geometry Selection Module (``self.gsm``)."""

    def __init__(self, config):
        super().__init__(config)
        self.gsm = GeometrySelection(config, GSMSettings.from_config(config))
        self.post_init()

    @property
    def original_numerics(self) -> bool:
        return self.gsm.original_numerics

    @original_numerics.setter
    def original_numerics(self, value: bool) -> None:
        self.gsm.original_numerics = bool(value)

    def _token_ids(self) -> dict[str, int]:
        config = self.config
        return {"vision_start_token_id": config.vision_start_token_id, "image_token_id": config.image_token_id,
                "video_token_id": config.video_token_id}  # fmt: skip

    def get_rope_index(self, input_ids, mm_token_type_ids=None, image_grid_thw=None, video_grid_thw=None,
                       second_per_grid_ts=None, attention_mask=None, **kwargs):  # fmt: skip
        """:func:`.positions.rope_index` (``mm_token_type_ids`` is not needed: the pads say what is visual)."""
        vision = self.config.vision_config
        return positions.rope_index(
            input_ids, attention_mask, image_grid_thw, video_grid_thw, second_per_grid_ts, **self._token_ids(),
            spatial_merge_size=vision.spatial_merge_size, tokens_per_second=vision.tokens_per_second,
        )  # fmt: skip

    def embed_visual(self, input_ids, attention_mask, inputs_embeds, *, pixel_values=None, image_grid_thw=None,
                     pixel_values_videos=None, video_grid_thw=None, second_per_grid_ts=None,
                     gsm_text_mask=None):  # fmt: skip
        """``inputs_embeds`` with the vision tower's features in the image and video pads and each request's geometry
        tokens in its geometry slots: :meth:`encode_visual` (per image or video), then :meth:`geometry_tokens` (per
        request), then :meth:`scatter_visual`."""
        rows = tokens.rows_with_vision(input_ids, **self._token_ids())
        text = self.gsm_text(input_ids, attention_mask, inputs_embeds, rows, gsm_text_mask)  # before the scatter
        features, geometry = self.encode_visual(
            pixel_values=pixel_values, image_grid_thw=image_grid_thw, pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw, second_per_grid_ts=second_per_grid_ts,
        )  # fmt: skip
        selected = self.geometry_tokens(text, self.inputs_of_rows(input_ids[rows], geometry))
        slots = tokens.geometry_slots(input_ids, rows, video_token_id=self.config.video_token_id,
                                      num_queries=self.gsm.settings.num_queries)  # fmt: skip
        return self.scatter_visual(input_ids, inputs_embeds, features, slots, selected)

    # --- the parts of embed_visual: per image or video (pixels only), per request (its text), the scatter -----------

    def gsm_text(self, input_ids, attention_mask, inputs_embeds, rows, gsm_text_mask=None) -> list[torch.Tensor]:
        """The raw token embeddings (``inputs_embeds`` before any visual feature is scattered in) each row in
        ``rows`` ((B,) bool) gives the first Q-Former: :func:`.tokens.text_selection` of its real tokens (padding
        anywhere in the row, as ``attention_mask`` says), or the caller's ``gsm_text_mask``."""
        if gsm_text_mask is None:
            settings = self.gsm.settings
            gsm_text_mask = tokens.text_selection(
                input_ids, attention_mask, excluded_token_ids=settings.excluded_token_ids,
                im_start_token_id=settings.im_start_token_id, with_generation_prompt=self.original_numerics,
            )  # fmt: skip
        return [inputs_embeds[b][gsm_text_mask[b]] for b in rows.nonzero().flatten().tolist()]

    def encode_visual(self, *, pixel_values=None, image_grid_thw=None, pixel_values_videos=None, video_grid_thw=None,
                      second_per_grid_ts=None):  # fmt: skip
        """What depends on the pixels alone, for each image and video: ``(features, geometry)``, both keyed by the
        pad token id, in the order of the grids: the vision tower's features, and the GSM's geometry features (Pi3
        encoder, spatial merger) with their Q-Former positions ``(geometry (G, hidden), positions (3, G))``."""
        ids = self._token_ids()
        features: dict[int, list[torch.Tensor]] = {}
        geometry: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        if pixel_values is not None:
            features[ids["image_token_id"]] = list(self.get_image_features(pixel_values, image_grid_thw,
                                                                           return_dict=True).pooler_output)  # fmt: skip
            found = self.gsm.geometry(pixel_values, image_grid_thw)
            geometry[ids["image_token_id"]] = [(g, self.gsm.positions(grid, 0.0))
                                               for g, grid in zip(found, image_grid_thw.tolist())]  # fmt: skip
        if pixel_values_videos is not None:
            features[ids["video_token_id"]] = list(self.get_video_features(pixel_values_videos, video_grid_thw,
                                                                           return_dict=True).pooler_output)  # fmt: skip
            found = self.gsm.geometry(pixel_values_videos, video_grid_thw)
            seconds = (torch.as_tensor(second_per_grid_ts).tolist() if second_per_grid_ts is not None
                       else [1.0] * len(found))  # fmt: skip
            grids = video_grid_thw.tolist()
            geometry[ids["video_token_id"]] = [(g, self.gsm.positions(grid, s))
                                               for g, grid, s in zip(found, grids, seconds)]  # fmt: skip
        return features, geometry

    def inputs_of_rows(self, input_ids, geometry) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each row's entries of ``geometry`` (:meth:`encode_visual`) in the order of its images and videos: the
        inputs are handed out in the processor's order, row by row, so every one must be taken exactly once."""
        ids = self._token_ids()
        taken = dict.fromkeys(geometry, 0)
        per_row = []
        for row in input_ids:
            items = []
            for _, token in tokens.visual_runs(row, **ids):
                if token not in geometry or taken[token] >= len(geometry[token]):
                    raise ValueError("the prompt has more images or videos than pixel inputs were given")
                items.append(geometry[token][taken[token]])
                taken[token] += 1
            per_row.append(items)
        if any(taken[t] != len(geometry[t]) for t in geometry):
            raise ValueError("more images or videos were given than the prompt has places for")
        return per_row

    def geometry_tokens(self, text: list[torch.Tensor], inputs: list[list[tuple[torch.Tensor, torch.Tensor]]]):
        """The geometry tokens (R, num_queries, hidden) of R requests from each one's text (:meth:`gsm_text`) and its
        images' and videos' geometry (:meth:`inputs_of_rows`): the two Q-Formers, one call for all of them."""
        return self.gsm(text, [torch.cat([g for g, _ in items]) for items in inputs],
                        [torch.cat([p for _, p in items], dim=1) for items in inputs])  # fmt: skip

    def scatter_visual(self, input_ids, inputs_embeds, features, slots, selected=None):
        """``inputs_embeds`` with ``features`` (:meth:`encode_visual`) in the image and video pads outside ``slots``
        ((B, L) bool) and ``selected`` (:meth:`geometry_tokens`) in ``slots``; a count that does not match its places
        is an error."""
        ids = self._token_ids()
        dtype, width = inputs_embeds.dtype, inputs_embeds.shape[-1]
        scatter = [((input_ids == token) & ~slots, torch.cat(found).to(inputs_embeds.device, dtype), token)
                   for token, found in features.items()]  # fmt: skip
        if selected is not None:
            scatter.append((slots, selected.reshape(-1, width).to(inputs_embeds.device, dtype), "geometry"))
        for mask, values, what in scatter:
            if int(mask.sum()) != values.shape[0]:
                name = what if isinstance(what, str) else ("image" if what == ids["image_token_id"] else "video")
                raise ValueError(
                    f"{name} features and their places in the prompt do not match: {int(mask.sum())} places, "
                    f"{values.shape[0]} features (a GSM prompt carries {self.gsm.settings.num_queries} extra "
                    "<|video_pad|> after its last image or video)"
                )
            inputs_embeds = inputs_embeds.masked_scatter(mask[..., None].expand(-1, -1, width), values)
        return inputs_embeds

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, pixel_values=None, pixel_values_videos=None, image_grid_thw=None,
                video_grid_thw=None, mm_token_type_ids=None, second_per_grid_ts=None, mm_encoder_outputs=None,
                gsm_text_mask=None, **kwargs):  # fmt: skip
        if mm_encoder_outputs is not None:
            raise ValueError("the GSM computes its encoders' outputs itself; pass pixel values, not mm_encoder_outputs")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is not None or pixel_values_videos is not None:
            if input_ids is None:
                raise ValueError("the GSM needs input_ids with its images and videos (to find each request's text)")
            inputs_embeds = self.embed_visual(
                input_ids, attention_mask, inputs_embeds, pixel_values=pixel_values, image_grid_thw=image_grid_thw,
                pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw,
                second_per_grid_ts=second_per_grid_ts, gsm_text_mask=gsm_text_mask,
            )  # fmt: skip
        if position_ids is None:
            if mm_token_type_ids is None and input_ids is not None:  # not needed here, but transformers asks for it
                mm_token_type_ids = torch.zeros_like(input_ids)
            position_ids = self.compute_3d_position_ids(
                input_ids=input_ids, image_grid_thw=image_grid_thw, video_grid_thw=video_grid_thw,
                second_per_grid_ts=second_per_grid_ts, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                past_key_values=past_key_values, mm_token_type_ids=mm_token_type_ids,
            )  # fmt: skip
        return self.language_model(input_ids=None, position_ids=position_ids, attention_mask=attention_mask,
                                   past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                                   **kwargs)  # fmt: skip


class Qwen25VLGSMForConditionalGeneration(Qwen2_5_VLForConditionalGeneration):
    """``Qwen2_5_VLForConditionalGeneration`` whose ``model`` is :class:`Qwen25VLGSMModel`."""

    def __init__(self, config):
        Qwen2_5_VLPreTrainedModel.__init__(self, config)  # not the parent's: it would build a plain model first
        self.model = Qwen25VLGSMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @property
    def gsm(self) -> GeometrySelection:
        return self.model.gsm

    def _supports_mm_encoder_outputs(self) -> bool:
        """No: ``generate`` must hand the pixels to the prefill (the geometry tokens need each request's text), not
        encode them beforehand as transformers 5 does for Qwen2.5-VL."""
        return False
