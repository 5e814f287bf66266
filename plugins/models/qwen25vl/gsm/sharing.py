"""Shared prompt prefixes for the GSM: each video's vision tower, Pi3 encoder, spatial merger and prompt prefix run once
for all the questions a batch asks about it; each question's 32 geometry tokens stay its own.

The plain model's machinery (:mod:`..prefix`: grouping, staging, the key/value cache copied to each question's row,
greedy decoding) runs unchanged; :class:`GSMSharing` changes its three hook points (:class:`..prefix.Sharing`). A GSM
prompt reads ``... <|vision_start|> [video pads] [32 geometry pads] <|vision_end|> question ...`` (:mod:`.tokens`),
and what its visual pass computes (:meth:`.model.Qwen25VLGSMModel.embed_visual`) splits in two:

* **per video**, from the pixels alone (:meth:`~.model.Qwen25VLGSMModel.encode_visual`): the vision tower's features
  and the geometry features (the Pi3 encoder over the frames, the spatial merger) with their Q-Former positions;
* **per question** (:meth:`~.model.Qwen25VLGSMModel.geometry_tokens`): ``q_former_1`` reads the question's prompt
  text (the raw token embeddings of all its non-special tokens: system turn, instruction and question, and with
  ``numerics="original"`` the assistant header too; :func:`.tokens.text_selection`), ``q_former_2`` the video's
  geometry features, ``q_former_norm`` gives the 32 geometry tokens.

So a group's shared prefix ends at its last image's or video's last pad, right before the geometry slots
(:meth:`GSMSharing.prefix_limit`); the other prompts of a group get their geometry pads as the GSM's encoder adds them
(:meth:`GSMSharing.complete_ids`); and the prefix stage (:meth:`GSMSharing.prefill`) runs, per group, the vision
tower, Pi3 and the merger and the language model over the prefix, then, for all questions in one call, the Q-Formers
over each question's whole prompt (its group's prefix tokens and its own, the ids staged for it) with its video's
geometry. Each question's suffix (the stage after the prefix) then begins with its 32 geometry slots, which get its
geometry tokens; its positions are the whole prompt's (the model's ``get_rope_index``, :mod:`.positions`).

What each question's geometry tokens read is what the unshared pass reads: the same text tokens, selected by the same
rule from the same token ids (with either ``numerics``: the header the original's selection keeps lies in the suffix,
which the selection sees), and the same geometry features of the same pixels; the other original numerics (the
mistyped CLIP mean, patches in the model's dtype, text positions in the model's dtype) are per video or per question
already. Sharing therefore changes rounding only, under both settings of ``numerics`` (``tests/test_gsm_prefix.py``:
logits within 1e-5 in float32 on the CPU).
"""

from __future__ import annotations

import torch

from .. import prefix
from . import tokens


class GSMSharing(prefix.Sharing):
    """:class:`..prefix.Sharing` for the GSM: geometry pads, a prefix ending before them, and the geometry tokens of
    each question computed between the prefix stage and the suffix stage."""

    def __init__(self, *, vision_start_token_id: int, image_token_id: int, video_token_id: int, num_queries: int):
        self.ids = {"vision_start_token_id": vision_start_token_id, "image_token_id": image_token_id,
                    "video_token_id": video_token_id}  # fmt: skip
        self.num_queries = num_queries

    @classmethod
    def of(cls, model) -> GSMSharing:
        """The sharing of a loaded :class:`.model.Qwen25VLGSMForConditionalGeneration`."""
        config = model.config
        return cls(vision_start_token_id=config.vision_start_token_id, image_token_id=config.image_token_id,
                   video_token_id=config.video_token_id, num_queries=model.gsm.settings.num_queries)  # fmt: skip

    def complete_ids(self, ids: list[int]) -> list[int]:
        """The geometry pads after the last image's or video's pads (:func:`.tokens.insert_geometry_pads`, as the
        GSM's encoder adds them to the processor's ids)."""
        row = torch.tensor([ids], dtype=torch.long)
        out, _, _ = tokens.insert_geometry_pads(row, torch.ones_like(row), None, pad_token_id=0,
                                                num_queries=self.num_queries, **self.ids)  # fmt: skip
        return out[0].tolist()

    def prefix_limit(self, ids: list[int]) -> int | None:
        """The index of the first geometry slot (:func:`.tokens.geometry_slots`): what follows depends on the
        question. ``None`` for a prompt without images or videos (it has no geometry tokens)."""
        row = torch.tensor([ids], dtype=torch.long)
        with_vision = tokens.rows_with_vision(row, **self.ids)
        if not bool(with_vision[0]):
            return None
        slots = tokens.geometry_slots(row, with_vision, video_token_id=self.ids["video_token_id"],
                                      num_queries=self.num_queries)[0]  # fmt: skip
        places = slots.nonzero().flatten()
        if len(places) != self.num_queries or int(places[-1]) - int(places[0]) != self.num_queries - 1:
            raise ValueError(f"a GSM prompt with images or videos must carry {self.num_queries} geometry pads after "
                             f"its last one; found {len(places)}")  # fmt: skip
        return int(places[0])

    def prefill(self, model, run: prefix.SharedRun):
        """Per group: the vision tower, Pi3 and the merger over its pixels, the vision features into its prefix's
        pads, the language model over the prefix. Per question: the Q-Formers over its whole prompt's text and its
        group's geometry. Returns the prefix rows' cache and the suffixes' embeddings, geometry tokens in their
        slots."""
        inner = model.model
        staged = run.prefix
        ids, embed = staged["input_ids"], inner.get_input_embeddings()
        features, geometry = inner.encode_visual(
            pixel_values=staged.get("pixel_values"), image_grid_thw=staged.get("image_grid_thw"),
            pixel_values_videos=staged.get("pixel_values_videos"), video_grid_thw=staged.get("video_grid_thw"),
            second_per_grid_ts=staged.get("second_per_grid_ts"),
        )  # fmt: skip
        no_slots = torch.zeros_like(ids, dtype=torch.bool)  # a prefix ends before its geometry slots
        embeds = inner.scatter_visual(ids, embed(ids), features, no_slots)
        cache = inner(input_ids=None, inputs_embeds=embeds, attention_mask=staged["attention_mask"],
                      position_ids=staged["position_ids"], use_cache=True).past_key_values  # fmt: skip

        suffix = embed(run.suffix_ids)
        rows = tokens.rows_with_vision(ids, **self.ids)[run.row_groups]  # questions whose prompt has pixels
        if bool(rows.any()):
            prompts = torch.cat([ids[run.row_groups], run.suffix_ids], dim=1)  # real where run.attention_mask is
            text = inner.gsm_text(prompts, run.attention_mask, embed(prompts), rows)
            per_group = inner.inputs_of_rows(ids, geometry)
            selected = inner.geometry_tokens(text, [per_group[g] for g in run.row_groups[rows].tolist()])
            slots = tokens.geometry_slots(run.suffix_ids, rows, video_token_id=self.ids["video_token_id"],
                                          num_queries=self.num_queries)  # fmt: skip
            suffix = inner.scatter_visual(run.suffix_ids, suffix, {}, slots, selected)
        return cache, {"inputs_embeds": suffix}
