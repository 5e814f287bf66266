"""The Geometry Selection Module's layers (arXiv 2512.20557; ``TencentARC/DSR_Suite``, commit ``1bfe8e3``,
``model/qwen-vl-finetune/qwenvl/train/qwen_vl_spatial.py``: ``Qwen2_5_QFormer``, ``Qwen2_5_VLCrossAttention``,
``Qwen2_5_VisionTransformerPretrainedModel_Spatial``), batched.

What a request's 32 geometry tokens are (:class:`GeometrySelection`):

1. its frames (every image and video of the request, recovered from the processor's patches, :mod:`.patches`) go
   through the frozen Pi3 encoder, a DINOv2 ViT-L/14 with registers (:mod:`.pi3`); its final patch tokens (CLS and
   registers dropped), regrouped like Qwen's merged tokens (2 frames x 2x2 patches = 8 x 1024 values), go through
   ``spatial_merger`` (RMSNorm, Linear, GELU, Linear to the language model's width): one geometry feature per merged
   visual token;
2. ``q_former_1``: the 32 learned queries attend to the request's text (raw token embeddings, :mod:`.tokens`);
3. ``q_former_2``: its output attends to the request's geometry features;
4. ``q_former_norm`` (RMSNorm): the 32 geometry tokens.

A Q-Former layer (:class:`QFormerLayer`) is pre-norm, with **one** RMSNorm for queries and keys/values alike::

    q = q + CrossAttention(norm1(q), norm1(kv));   q = q + MLP(norm2(q))

built with the language model's configuration: query projection to all heads (bias), key and value projections to the
key/value heads (bias; grouped-query attention), output projection without bias, M-RoPE applied to queries and keys
with their own positions (the language model's rotary table and sections), softmax scaled by 1/sqrt(head_dim); a
SwiGLU MLP of the language model's sizes, **with** biases. Positions, as in the original: queries ``0..31``; text
``0..L-1``; geometry ``(t, y, x)`` of each merged token, ``t = int(i * second_per_grid * tokens_per_second)``
(each image or video from 0).

Batching, which the original cannot do (its queries, masks and rotary tables assume one request): each request's
queries are its own copy, its text and geometry are padded into one batch with a key mask, so each attends only to
its own tokens, in one attention call per Q-Former for the whole batch. Frames of one size from every request go
through the encoder together (:meth:`GeometrySelection.encode`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .patches import renormalise, split_frames
from .settings import CLIP_MEAN, CLIP_MEAN_ORIGINAL, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, GSMSettings

#: Frames per encoder call (bounds the encoder's activations): a batch of 8 DSR videos (32 frames at 560x1008) is one.
ENCODER_FRAMES_PER_CALL = 256


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half convention) of ``x`` (B, H, N, D) with ``cos``/``sin`` (B, N, D)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class QFormerAttention(nn.Module):
    """Cross-attention of queries to a target sequence, with M-RoPE on both and a key mask."""

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.num_heads
        self.dropout = config.attention_dropout
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(hidden, self.num_key_value_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(hidden, self.num_key_value_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, hidden, bias=False)

    def forward(self, query, target, key_mask, query_rope, key_rope):
        """``query`` (B, Q, C), ``target`` (B, K, C), ``key_mask`` (B, K) bool (True: attend), ropes ``(cos, sin)``
        of shapes (B, Q, D) and (B, K, D); returns (B, Q, C)."""
        batch, n_query, _ = query.shape
        n_key = target.shape[1]
        q = self.q_proj(query).view(batch, n_query, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(target).view(batch, n_key, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(target).view(batch, n_key, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, *query_rope), rotate(k, *key_rope)
        groups = self.num_heads // self.num_key_value_heads
        if groups > 1:  # key/value head j serves query heads j*groups ... (j+1)*groups-1
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0,
            scale=self.head_dim**-0.5,
        )  # fmt: skip
        return self.o_proj(out.transpose(1, 2).reshape(batch, n_query, -1))


class QFormerLayer(nn.Module):
    """One pre-norm Q-Former layer: ``norm1`` shared by queries and target, cross-attention, ``norm2``, MLP."""

    def __init__(self, config):
        super().__init__()
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLMLP, Qwen2_5_VLRMSNorm

        self.norm1 = Qwen2_5_VLRMSNorm(config.hidden_size, eps=1e-6)
        self.norm2 = Qwen2_5_VLRMSNorm(config.hidden_size, eps=1e-6)
        self.attn = QFormerAttention(config)
        self.mlp = Qwen2_5_VLMLP(config, bias=True)

    def forward(self, query, target, key_mask, query_rope, key_rope):
        query = query + self.attn(self.norm1(query), self.norm1(target), key_mask, query_rope, key_rope)
        return query + self.mlp(self.norm2(query))


def pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences (N_i, ...) as one zero-padded batch (B, max N, ...) and its mask (B, max N), True where real."""
    longest = max(s.shape[0] for s in sequences)
    out = sequences[0].new_zeros(len(sequences), longest, *sequences[0].shape[1:])
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool, device=sequences[0].device)
    for i, s in enumerate(sequences):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return out, mask


class GeometrySelection(nn.Module):
    """Pi3 encoder, spatial merger, learned queries, two Q-Former layers and the final norm (the parameter names are
    the original's, so the released keys map onto them by prefix alone; the encoder's by :mod:`.pi3`)."""

    def __init__(self, config, settings: GSMSettings):
        super().__init__()
        from transformers import Dinov2WithRegistersModel
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
            Qwen2_5_VLPatchMerger,
            Qwen2_5_VLRMSNorm,
            Qwen2_5_VLRotaryEmbedding,
        )

        text, vision = config.text_config, config.vision_config
        encoder = settings.encoder_config()
        if encoder.patch_size != vision.patch_size:
            raise ValueError(f"the geometry encoder's patch ({encoder.patch_size}) must be the vision tower's "
                             f"({vision.patch_size}): its patch grid is Qwen's")  # fmt: skip
        self.settings = settings
        self.patch_size, self.merge_size = vision.patch_size, vision.spatial_merge_size
        self.temporal_patch_size, self.tokens_per_second = vision.temporal_patch_size, vision.tokens_per_second
        self.num_prefix_tokens = 1 + encoder.num_register_tokens  # CLS and registers, dropped from the features
        units = self.temporal_patch_size * self.merge_size**2  # 2 frames x 2x2 patches per merged token
        self.spatial_encoder = Dinov2WithRegistersModel(encoder)
        self.spatial_merger = Qwen2_5_VLPatchMerger(dim=text.hidden_size, context_dim=encoder.hidden_size * units,
                                                    spatial_merge_size=1)  # fmt: skip
        self.q_former_queries = nn.Parameter(torch.randn(settings.num_queries, text.hidden_size))
        self.q_former_1 = QFormerLayer(text)
        self.q_former_2 = QFormerLayer(text)
        self.q_former_norm = Qwen2_5_VLRMSNorm(text.hidden_size, eps=1e-6)
        self.rotary_emb = Qwen2_5_VLRotaryEmbedding(text)
        #: reproduce the original's numerics (:mod:`.model` says which); set by the plugin's ``numerics`` option
        self.original_numerics = False

    # --- geometry features ---------------------------------------------------------------------------------------

    def frames(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """Each image's or video's frames, ImageNet-normalised (float32), from the processor's patches."""
        mean = CLIP_MEAN_ORIGINAL if self.original_numerics or self.settings.clip_mean == "original" else CLIP_MEAN
        if self.original_numerics:  # the original reads the patches after casting them to the model's dtype
            pixel_values = pixel_values.to(self.q_former_queries.dtype)
        sizes = {"temporal_patch_size": self.temporal_patch_size, "patch_size": self.patch_size,
                 "merge_size": self.merge_size}  # fmt: skip
        return [renormalise(f, mean, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD)
                for f in split_frames(pixel_values, grid_thw, **sizes)]  # fmt: skip

    def encode(self, frames: list[torch.Tensor]) -> list[torch.Tensor]:
        """Final patch tokens (F, h*w, C) of each frame stack: frames of one size from all stacks in shared calls."""
        dtype = self.spatial_encoder.embeddings.patch_embeddings.projection.weight.dtype
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, stack in enumerate(frames):
            by_size.setdefault(tuple(stack.shape[-2:]), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(frames)
        for indices in by_size.values():
            stacked = torch.cat([frames[i] for i in indices]).to(dtype)
            features = torch.cat([
                self.spatial_encoder(pixel_values=chunk).last_hidden_state[:, self.num_prefix_tokens :]
                for chunk in stacked.split(ENCODER_FRAMES_PER_CALL)
            ])  # fmt: skip
            for i, part in zip(indices, features.split([frames[i].shape[0] for i in indices])):
                out[i] = part
        return out

    def regroup(self, features: list[torch.Tensor], grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """Each input's patch features (tp*t, h*w, C) as Qwen's merged tokens (t * h/m * w/m, tp*m*m*C): token
        ``(t, y, x)`` holds frames ``tp*t ...``, patches ``(m*y + i, m*x + j)``, in the order (frame, i, j, C)."""
        merged = []
        m, tp = self.merge_size, self.temporal_patch_size
        for stack, (t, h, w) in zip(features, grid_thw.tolist()):
            x = stack.view(t, tp, h // m, m, w // m, m, -1).permute(0, 2, 4, 1, 3, 5, 6)
            merged.append(x.reshape(t * (h // m) * (w // m), -1))
        return merged

    def geometry(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """One geometry feature per merged visual token, (t * h/2 * w/2, hidden), for each image or video (the
        merger runs once over all of them)."""
        merged = self.regroup(self.encode(self.frames(pixel_values, grid_thw)), grid_thw)
        out = self.spatial_merger(torch.cat(merged))
        return list(out.split([x.shape[0] for x in merged]))

    def positions(self, grid, second_per_grid: float) -> torch.Tensor:
        """``(t, y, x)`` of an image's or video's merged tokens (3, N), ``t = int(i * second_per_grid *
        tokens_per_second)`` (0 for an image: pass 0)."""
        t, h, w = (int(v) for v in grid)
        h, w = h // self.merge_size, w // self.merge_size
        device = self.q_former_queries.device
        step = torch.tensor(float(second_per_grid), dtype=torch.float32)
        times = ((torch.arange(t, dtype=torch.float32) * step) * self.tokens_per_second).long()
        grid_t = times.repeat_interleave(h * w)
        grid_y = torch.arange(h).repeat_interleave(w).repeat(t)
        grid_x = torch.arange(w).repeat(t * h)
        return torch.stack([grid_t, grid_y, grid_x]).to(device)

    # --- selection ---------------------------------------------------------------------------------------------------

    def forward(self, text: list[torch.Tensor], geometry: list[torch.Tensor],
                geometry_positions: list[torch.Tensor]) -> torch.Tensor:  # fmt: skip
        """The geometry tokens (R, num_queries, hidden) of R requests, from each request's text (L_i, hidden), its
        geometry features (G_i, hidden) and their positions (3, G_i)."""
        if any(t.shape[0] == 0 for t in text):
            raise ValueError("a request with images or videos has no text for the GSM's first Q-Former to read")
        rows = len(text)
        text_states, text_mask = pad(text)
        geometry_states, geometry_mask = pad(geometry)
        geometry_ids, _ = pad([p.T for p in geometry_positions])  # (R, G, 3)
        queries = self.q_former_queries[None].expand(rows, -1, -1)
        device = queries.device

        def rope(states, ids):  # ids (R, N, 3) -> cos, sin (R, N, head_dim) in the states' dtype
            return self.rotary_emb(states, ids.permute(2, 0, 1))

        text_ids = torch.arange(text_states.shape[1], device=device)[None, :, None].expand(rows, -1, 3)
        if self.original_numerics:  # the original stores the text positions in the model's dtype
            text_ids = text_ids.to(text_states.dtype)
        query_ids = torch.arange(queries.shape[1], device=device)[None, :, None].expand(rows, -1, 3)
        query_rope = rope(queries, query_ids)
        out = self.q_former_1(queries, text_states, text_mask, query_rope, rope(text_states, text_ids))
        out = self.q_former_2(out, geometry_states, geometry_mask, query_rope, rope(geometry_states, geometry_ids))
        return self.q_former_norm(out)
