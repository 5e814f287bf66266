"""Shared prompt prefixes: each video is encoded once for all the questions a batch asks about it.

Benchmarks ask several questions per video (DSR-Bench 1,484 questions over 575 videos, 2.58 a video; VLM4D and
4D-Bench likewise), and every prompt of a video begins with the same tokens up to and including the video's: the chat
template's system turn, the instruction (DSR-Bench's ``PRE_PROMPT``), ``<|vision_start|>``, the video's pads and
``<|vision_end|>``; only the question after it differs. This is what vLLM calls automatic prefix caching
(vllm-project/vllm, ``docs/design/prefix_caching.md``), built here for the transformers model classes the plugin
runs (vLLM cannot run on the project's machines). Prompts whose decoded videos, pixel limits and chat up to the last
video are equal form a *group* (:func:`group_key`); a batch of greedy requests then runs

1. the **prefix** stage: one row per group, holding the group's shared prefix (the longest common token prefix of
   its prompts, ending at least one token before the shortest one) with the group's pixels: the vision tower and the
   language model's prefill run once per video instead of once per question;
2. the **cache expansion**: each prefix row of the key/value cache is copied to the rows of its group's prompts;
3. the **suffix** stage: each prompt's remaining tokens (the question and the assistant header) attend to its
   group's cached prefix; the logits of its last token give the first new token;
4. **greedy decoding**, step by step as transformers' ``generate`` runs it (``GenerationMixin._sample`` in
   ``generation/utils.py``, transformers 5.23): argmax of the float32 logits, a finished row fed the pad token, a row
   finished by an end-of-sequence token, each step one position after the last (``position_ids[..., -1:] + 1`` in
   every M-RoPE dimension, ``_update_model_kwargs_for_generation``), until every row has finished or the new-token
   budget is spent.

Layout: prefixes are left-padded to the longest prefix ``P`` and suffixes to the longest suffix ``S``, so a row of the
cache reads ``[pad, prefix, pad, suffix, new tokens]``, and the attention mask is 0 on both pads. Positions are the
whole prompt's M-RoPE positions from the model's own ``get_rope_index`` (what ``generate`` computes for the unshared
prompt), cut at the prefix, so every real token sits where it would without sharing. The attention implementation
must take a 2D padding mask with zeros anywhere (``sdpa``, ``eager`` and the plugin's ``rowwise`` do).

A model built on this pipeline whose prompts carry more than the processor's tokens, or whose prefix stage computes
more than the plain model's, changes three points of it through a :class:`Sharing` (``Qwen25VL._sharing``): the token
ids of a group's other prompts, where a group's prefix must end, and the prefix stage. The GSM's
(``gsm/sharing.py``) adds its geometry pads, ends the prefix before them and computes each question's geometry tokens
between the two stages.

What is computed is the unshared computation up to floating-point rounding: causal attention makes a prefix token's
keys and values independent of what follows it, masked pads add nothing, positions are equal. On the CPU in float32 the
logits agree within 1e-5 and the greedy tokens are equal (``tests/test_prefix_sharing.py``); on a GPU other kernel
shapes round differently, and ``perf/bench_dsr_gpu.py`` reports how many predictions differ.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vdpm_harness import ImagePart, Request, TextPart, VideoPart, stable_hash

from .inputs import Prompt, context_overflow

if TYPE_CHECKING:
    import torch

#: The processor's placeholder of one video in a rendered chat (expanded to the video's pads when tokenised).
VIDEO_PLACEHOLDER = "<|video_pad|>"


# --- which requests share a prefix ----------------------------------------------------------------------------------


def request_key(request: Request) -> str | None:
    """The planner's grouping key (``Model.prefix_key``): a hash of the request's messages up to and including its
    last video part (roles, texts, video files with their frame policies) and its generation settings; ``None`` for a
    request without a video it looks at, or with images (those are not shared)."""
    parts: list[tuple[str, Any]] = []
    head: list[Any] = []
    for message in request.messages:
        for part in message.content:
            if isinstance(part, ImagePart):
                return None
            if isinstance(part, VideoPart):
                parts.append((message.role, ["video", part.video, part.frames.model_dump(mode="json")]))
                if not part.frames.blind:
                    head = list(parts)
            elif isinstance(part, TextPart):
                parts.append((message.role, ["text", part.text]))
    if not head:
        return None
    return stable_hash([head, request.generation.model_dump(mode="json")])


def group_key(prompt: Prompt) -> str | None:
    """What prompts of one batch must share to share a prefix: their decoded videos (files, frame indices, timing,
    frame sizes), pixel limits and rendered chat up to and including the last video placeholder. ``None`` for a
    prompt without videos or with images: it gets a group of its own."""
    if prompt.images or not prompt.videos:
        return None
    files = [part.video for part in prompt.prepared.request.video_parts() if not part.frames.blind]
    shapes = [list(frames.shape) for frames in prompt.videos]
    head = prompt.text[: prompt.text.rindex(VIDEO_PLACEHOLDER) + len(VIDEO_PLACEHOLDER)]
    return stable_hash([files, prompt.metadata, shapes, prompt.pixels, head])


def has_shared_prefix(prompts: list[Prompt]) -> bool:
    """Whether two of the prompts share their media (then sharing saves work)."""
    keys = [key for key in map(group_key, prompts) if key is not None]
    return len(set(keys)) < len(keys)


def groups_of(prompts: list[Prompt]) -> list[list[Prompt]]:
    """The prompts grouped by :func:`group_key`, groups in the order of their first prompt, prompts in order."""
    groups: dict[Any, list[Prompt]] = {}
    for prompt in prompts:
        key = group_key(prompt)
        groups.setdefault(object() if key is None else key, []).append(prompt)
    return list(groups.values())


# --- staging: token ids, positions and the two stages' inputs -------------------------------------------------------


@dataclass
class SharedRun:
    """A staged batch of shared-prefix generation (:func:`stage_shared`): ``prompts`` are the rows, in order.

    ``prefix``: the prefix stage's inputs of the inner model (one row per group: ``input_ids``, ``attention_mask``,
    ``position_ids`` and the groups' pixels); ``row_groups`` (B,) the group of each row; ``suffix_ids`` (B, S) and
    ``suffix_positions`` (3, B, S) the suffix stage's tokens and positions; ``attention_mask`` (B, P + S) a row's mask
    over its cached prefix and its suffix; ``next_positions`` (3, B) the position of each row's first new token;
    ``lengths`` each prompt's token count and ``prefix_lengths`` the shared tokens of each row."""

    prompts: list[Prompt]
    lengths: list[int]
    prefix_lengths: list[int]
    group_sizes: list[int]
    prefix: dict[str, torch.Tensor]
    row_groups: torch.Tensor
    suffix_ids: torch.Tensor
    suffix_positions: torch.Tensor
    attention_mask: torch.Tensor
    next_positions: torch.Tensor

    def to(self, device) -> SharedRun:
        tensors = ("row_groups", "suffix_ids", "suffix_positions", "attention_mask", "next_positions")
        moved = {name: getattr(self, name).to(device) for name in tensors}
        return replace(self, prefix={k: v.to(device) for k, v in self.prefix.items()}, **moved)


class Sharing:
    """The points where a model on this pipeline changes prefix sharing; these are the plain Qwen2.5-VL's. A
    subclass overrides what its model computes differently (the GSM: ``gsm/sharing.py``)."""

    def complete_ids(self, ids: list[int]) -> list[int]:
        """A group's other prompt's token ids after its video placeholders are expanded (:func:`expand_placeholders`)
        as the model's encoder would give them: the plain model's are complete."""
        return ids

    def prefix_limit(self, ids: list[int]) -> int | None:
        """The most tokens a group's shared prefix may hold, from its first prompt's token ids; ``None``: as many as
        the group's prompts have in common. The prefix must still cover the group's media before the limit."""
        return None

    def prefill(self, model, run: SharedRun):
        """The prefix stage, one row per group: ``(key/value cache, the suffix stage's token inputs)``; the inputs
        are ``{"input_ids": run.suffix_ids}`` or, for a model that fills some suffix tokens itself,
        ``{"inputs_embeds": ...}`` (B, S, hidden). The caller copies the cache's rows to the prompts' afterwards."""
        cache = model.model(**run.prefix, use_cache=True).past_key_values
        return cache, {"input_ids": run.suffix_ids}


PLAIN = Sharing()


def expand_placeholders(ids: list[int], token_id: int, counts: list[int]) -> list[int]:
    """``ids`` with its k-th ``token_id`` repeated ``counts[k]`` times: the processor's expansion of a video
    placeholder to the video's pads (transformers ``ProcessorMixin.get_text_with_replacements``), done on token ids.
    The placeholder is a special token, which the tokenizer never merges with its neighbours, so expanding before or
    after tokenising gives the same ids."""
    out: list[int] = []
    k = 0
    for token in ids:
        if token == token_id:
            if k >= len(counts):
                raise ValueError(f"more video placeholders than the {len(counts)} videos of the prompt's group")
            out.extend([token_id] * counts[k])
            k += 1
        else:
            out.append(token)
    if k != len(counts):
        raise ValueError(f"{k} video placeholders for the {len(counts)} videos of the prompt's group")
    return out


def common_prefix(a: list[int], b: list[int]) -> int:
    """The length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _left_pad(rows: list[list[int]], value: int, width: int | None = None) -> torch.Tensor:
    import torch

    width = max(map(len, rows)) if width is None else width
    return torch.tensor([[value] * (width - len(row)) + row for row in rows], dtype=torch.long)


def _split(tensor: torch.Tensor | None, sizes: list[int]) -> list[torch.Tensor]:
    import torch

    if tensor is None:
        return [torch.zeros(0)] * len(sizes)
    return list(torch.split(tensor, sizes))


def stage_shared(
    processor, prompts: list[Prompt], *, encoder: Callable, rope_index: Callable, max_positions: int,
    device: str | None = None, lock: AbstractContextManager | None = None, sharing: Sharing = PLAIN,
) -> tuple[SharedRun | None, list[tuple[Prompt, str]]]:  # fmt: skip
    """The inputs of both stages for prompts sharing decoding settings and pixel limits, and an error for each
    prompt that fills the context by itself (``context_overflow`` with one new token, as the unshared path with
    ``cap_new_tokens``). ``encoder`` has :func:`.inputs.encode`'s signature and runs once, on the first prompt of
    each group (the group's pixels are processed once); the other prompts are tokenised and their video placeholders
    expanded to the group's pad counts. ``rope_index`` is the model's ``get_rope_index``. ``lock`` guards the
    processor's tokenizer (the calls that use it run inside it). ``sharing`` completes the other prompts' token ids and
    limits each group's prefix (:class:`Sharing`)."""
    import torch

    lock = lock or nullcontext()
    groups = groups_of(prompts)
    sources = [group[0] for group in groups]
    with lock:
        encoded = encoder(processor, sources, device=device)
        tokenizer = processor.tokenizer
        texts = [[tokenizer(p.text)["input_ids"] for p in group[1:]] for group in groups]
    config = _token_ids(processor)
    mask = encoded["attention_mask"].bool()
    source_ids = [row[m].tolist() for row, m in zip(encoded["input_ids"], mask)]
    merge = processor.video_processor.merge_size**2
    grids = _split(encoded.get("video_grid_thw"), [len(p.videos) for p in sources])
    seconds = _split(encoded.get("second_per_grid_ts"), [len(p.videos) for p in sources])
    image_grids = _split(encoded.get("image_grid_thw"), [len(p.images) for p in sources])

    ids: dict[int, list[int]] = {}  # prompt position in ``prompts`` -> its full token ids
    position = {id(p): i for i, p in enumerate(prompts)}
    for g, group in enumerate(groups):
        counts = [int(grid.prod()) // merge for grid in grids[g]]
        ids[position[id(group[0])]] = source_ids[g]
        for prompt, tokens in zip(group[1:], texts[g]):
            ids[position[id(prompt)]] = sharing.complete_ids(expand_placeholders(tokens, config["video"], counts))
    overflow = [(p, error) for i, p in enumerate(prompts)
                if (error := context_overflow(len(ids[i]), 1, max_positions)) is not None]  # fmt: skip
    if overflow:  # stage the others again: a group none of whose prompts fits must not be encoded
        dropped = {id(p) for p, _ in overflow}
        kept = [p for p in prompts if id(p) not in dropped]
        if not kept:
            return None, overflow
        run, more = stage_shared(processor, kept, encoder=encoder, rope_index=rope_index,
                                 max_positions=max_positions, device=device, lock=lock, sharing=sharing)  # fmt: skip
        return run, overflow + more

    # every row's positions over its whole prompt, as the model computes them without sharing
    group_of = {id(p): g for g, group in enumerate(groups) for p in group}
    rows = [group_of[id(p)] for p in prompts]
    full = [ids[i] for i in range(len(prompts))]
    full_ids = _left_pad(full, config["pad"])
    full_mask = _left_pad([[1] * len(row) for row in full], 0)
    types = torch.where(full_ids == config["video"], 2, torch.where(full_ids == config["image"], 1, 0)) * full_mask

    def per_row(parts: list[torch.Tensor]) -> torch.Tensor | None:
        picked = [parts[g] for g in rows if len(parts[g])]
        return torch.cat(picked) if picked else None

    positions, _ = rope_index(
        full_ids, mm_token_type_ids=types, image_grid_thw=per_row(image_grids), video_grid_thw=per_row(grids),
        second_per_grid_ts=per_row(seconds), attention_mask=full_mask,
    )  # fmt: skip
    width = full_ids.shape[1]

    # each group's prefix: common to all its rows, covering its media, leaving every row at least one token (and
    # within the model's limit: the GSM's ends before its geometry pads)
    lengths = [len(row) for row in full]
    prefix_length = []
    for g, group in enumerate(groups):
        members = [ids[position[id(p)]] for p in group]
        shared = min(min(len(m) - 1 for m in members), min(common_prefix(m, source_ids[g]) for m in members))
        media = [i + 1 for i, t in enumerate(source_ids[g]) if t in (config["video"], config["image"])]
        limit = sharing.prefix_limit(source_ids[g])
        if limit is not None:
            shared = min(shared, limit)
            media = [end for end in media if end <= limit]
        if media and shared < media[-1]:
            raise RuntimeError(f"prompts grouped as sharing a video differ before its end (token {shared}); "
                               "group_key must include what precedes the video")  # fmt: skip
        prefix_length.append(shared)
    longest = max(prefix_length)
    prefix_ids = _left_pad([source_ids[g][:n] for g, n in enumerate(prefix_length)], config["pad"], longest)
    prefix_mask = _left_pad([[1] * n for n in prefix_length], 0, longest)
    prefix_positions = torch.ones(3, len(groups), longest, dtype=torch.long)
    for g, group in enumerate(groups):
        i = position[id(group[0])]
        start = width - lengths[i]
        n = prefix_length[g]
        prefix_positions[:, g, longest - n :] = positions[:, i, start : start + n]

    suffixes = [full[i][prefix_length[g] :] for i, g in enumerate(rows)]
    longest_suffix = max(map(len, suffixes))
    suffix_ids = _left_pad(suffixes, config["pad"], longest_suffix)
    suffix_mask = _left_pad([[1] * len(s) for s in suffixes], 0, longest_suffix)
    suffix_positions = torch.ones(3, len(prompts), longest_suffix, dtype=torch.long)
    for i, suffix in enumerate(suffixes):
        suffix_positions[:, i, longest_suffix - len(suffix) :] = positions[:, i, width - len(suffix) :]
    row_groups = torch.tensor(rows, dtype=torch.long)

    prefix = {"input_ids": prefix_ids, "attention_mask": prefix_mask, "position_ids": prefix_positions}
    for name in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "pixel_values", "image_grid_thw"):
        if encoded.get(name) is not None:
            prefix[name] = encoded[name]
    sizes = [len(group) for group in groups]
    return SharedRun(
        prompts=prompts, lengths=lengths, prefix_lengths=[prefix_length[g] for g in rows],
        group_sizes=[sizes[g] for g in rows], prefix=prefix, row_groups=row_groups, suffix_ids=suffix_ids,
        suffix_positions=suffix_positions, attention_mask=torch.cat([prefix_mask[row_groups], suffix_mask], dim=1),
        next_positions=positions[:, :, -1] + 1,
    ), []  # fmt: skip


def _token_ids(processor) -> dict[str, int]:
    tokenizer = processor.tokenizer
    pad = tokenizer.pad_token_id
    return {"video": processor.video_token_id, "image": processor.image_token_id,
            "pad": pad if pad is not None else tokenizer.eos_token_id}  # fmt: skip


# --- running it -----------------------------------------------------------------------------------------------------


def generate_shared(model, run: SharedRun, *, max_new_tokens: int, eos_token_ids: list[int], pad_token_id: int,
                    keep_logits: bool = False,
                    sharing: Sharing = PLAIN) -> tuple[list[list[int]], list[torch.Tensor]]:  # fmt: skip
    """Greedy new tokens of every row of ``run`` (on the model's device): at most ``max_new_tokens`` a row, a
    finished row padded with ``pad_token_id`` as ``generate`` pads it; and, with ``keep_logits``, the float32 logits
    of each step ((B, V) each, what ``generate(output_logits=True)`` returns). ``sharing.prefill`` runs the prefix
    stage (:class:`Sharing`)."""
    import torch

    eos = torch.tensor(eos_token_ids, device=run.suffix_ids.device)
    batch = run.suffix_ids.shape[0]
    with torch.inference_mode():
        cache, suffix = sharing.prefill(model, run)
        cache.batch_select_indices(run.row_groups)
        output = model(**suffix, attention_mask=run.attention_mask,
                       position_ids=run.suffix_positions, past_key_values=cache, use_cache=True,
                       logits_to_keep=1)  # fmt: skip
        mask = run.attention_mask
        unfinished = torch.ones(batch, dtype=torch.bool, device=eos.device)
        tokens: list[torch.Tensor] = []
        kept: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            if step:
                mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
                output = model(input_ids=tokens[-1][:, None], attention_mask=mask,
                               position_ids=(run.next_positions + step - 1)[..., None], past_key_values=cache,
                               use_cache=True)  # fmt: skip
            logits = output.logits[:, -1, :].to(dtype=torch.float32)
            if keep_logits:
                kept.append(logits)
            chosen = torch.where(unfinished, logits.argmax(dim=-1), pad_token_id)
            tokens.append(chosen)
            unfinished &= ~torch.isin(chosen, eos)
            if not bool(unfinished.any()):
                break
        del cache, output
    return torch.stack(tokens, dim=1).tolist(), kept
