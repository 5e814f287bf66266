"""Packs: several samples in one forward pass, each attending only to itself.

A pack is the samples' tokens laid end to end in one row of ``T`` tokens, with the boundaries ``cu_seqlens``
(``[0, L_1, L_1 + L_2, ...]``, int32): the language model's attention is causal within each sample and never crosses
a boundary (:mod:`.attention`), positions are each sample's own (computed per sample), and each sample's last
target is -100, so no sample sees or predicts another. This is what the original's packed collator and its
FlashAttention patch do (``TencentARC/DSR_Suite``, ``qwenvl/data/data_qwen_packed.py``
``PackedDataCollatorForSupervisedDataset`` with ``attention_mask = cumsum([0] + lengths)``, and
``qwenvl/train/trainer.py`` ``replace_qwen2_vl_attention_class``: ``flash_attn_varlen_func`` with
``cu_seqlens_q = cu_seqlens_k``), which there only ran with one sample a device (the GSM's batch-1 limit); here the
GSM takes any number of samples, so a pack holds as many as ``pack_tokens`` allows.

The GSM itself (visual features, Q-Formers) runs on the samples as rows of a right-padded batch (``input_ids_rows``),
which it handles row by row; only the language model runs on the packed row.

Packing is greedy in the data order (:func:`pack`): the next sample joins the current pack unless it would overflow
it. Deterministic, so a resumed run packs exactly as the interrupted one did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .samples import Sample


@dataclass
class Pack:
    """Samples run in one forward pass. ``weight`` scales its loss (0 for a pass a process runs only to keep step
    with the others, :func:`padding`)."""

    samples: list[Sample]
    weight: float = 1.0

    @property
    def tokens(self) -> int:
        return sum(s.length for s in self.samples)

    @property
    def supervised(self) -> int:
        return sum(s.supervised for s in self.samples)

    def tensors(self, pad_token_id: int, device) -> dict[str, torch.Tensor | int]:
        """The pack's model inputs on ``device``: the rows for the GSM (``input_ids_rows``, ``attention_mask_rows``,
        right-padded), the video inputs, and the packed row's positions (3, 1, T), targets (T,), ``cu_seqlens`` and
        the longest sample ``max_seqlen``."""
        lengths = [s.length for s in self.samples]
        longest = max(lengths)
        rows = torch.full((len(self.samples), longest), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(self.samples), longest), dtype=torch.long)
        for i, s in enumerate(self.samples):
            rows[i, : s.length] = s.input_ids
            mask[i, : s.length] = 1
        cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu[1:] = torch.tensor(lengths).cumsum(0)
        return {
            "input_ids_rows": rows.to(device),
            "attention_mask_rows": mask.to(device),
            "pixel_values_videos": torch.cat([s.pixel_values_videos for s in self.samples]).to(device),
            "video_grid_thw": torch.cat([s.video_grid_thw for s in self.samples]).to(device),
            "second_per_grid_ts": torch.cat([s.second_per_grid_ts for s in self.samples]).to(device),
            "position_ids": torch.cat([s.position_ids for s in self.samples], dim=1)[:, None].to(device),
            "targets": torch.cat([s.targets for s in self.samples]).to(device),
            "cu_seqlens": cu.to(device),
            "max_seqlen": longest,
        }


def pack(samples: list[Sample], capacity: int) -> list[Pack]:
    """Greedy packing in order: a sample joins the current pack unless the pack would exceed ``capacity`` tokens."""
    packs: list[Pack] = []
    for sample in samples:
        if sample.length > capacity:
            raise ValueError(f"sample {sample.index} has {sample.length} tokens, more than a pack's {capacity}")
        if not packs or packs[-1].tokens + sample.length > capacity:
            packs.append(Pack([]))
        packs[-1].samples.append(sample)
    return packs


def padding(packs: list[Pack], count: int, fallback: Sample) -> list[Pack]:
    """``packs`` followed by weight-0 passes up to ``count`` in all: a process with fewer packs than another in a
    step runs these (its last pack again, or ``fallback`` when it has none) so every process makes the same
    collective calls; they add nothing to the gradients."""
    extra = [Pack(list(packs[-1].samples) if packs else [fallback], weight=0.0) for _ in range(count - len(packs))]
    return [*packs, *extra]
