"""A training record becomes the GSM's inputs by exactly the calls the ``qwen25vl-gsm`` plugin evaluates with.

For one :class:`~.records.Example` (:func:`prepare`, run in the core's worker processes by
:class:`vdpm_harness.prefetch.Prefetcher`):

1. the video is decoded by the core (:func:`vdpm_harness.video.decode`) under the training frame policy (the recipe's
   32 frames at most 230,400 pixels), so the frames carry their true timing;
2. the request is the record's question as a chat: the human turn with the video at the place of ``<video>``
   (``prompt = "record"``, the original's training text), or the question and options in DSR-Bench's prompt
   (``"vlmevalkit"`` / ``"dsr_fork"``, the ``dsr`` benchmark's :func:`~vdpm_harness_plugins.benchmarks.dsr.prompts.
   prompt_content`);
3. :func:`vdpm_harness_plugins.models.qwen25vl.inputs.build_prompt` renders it with the checkpoint's chat template and
   the processor's pixel limits, as at evaluation; the assistant's answer is appended to the same chat
   (``Prompt.conversation``) and rendered again, and the result must extend the evaluation prompt character for
   character (and token for token), so what the model learns to answer is what it is asked at evaluation;
4. :func:`vdpm_harness_plugins.models.qwen25vl.gsm.inputs.encode` runs the processor and adds the 32 geometry pads;
5. the targets are the answer's tokens: the answer, ``<|im_end|>`` and ``\\n`` (the original's labels: the
   system and user turns and the assistant header ``<|im_start|>assistant\\n`` are -100, ``preprocess_qwen_2_visual``
   in ``TencentARC/DSR_Suite``, ``qwenvl/data/data_qwen_packed.py``); the first Q-Former reads the prompt without the
   header, which the model selects itself (:func:`~vdpm_harness_plugins.models.qwen25vl.gsm.tokens.text_selection`:
   everything from the row's last ``<|im_start|>`` on is left out, the answer with it);
6. the language model's M-RoPE positions are computed per sample by the rule the checkpoint uses
   (:func:`~vdpm_harness_plugins.models.qwen25vl.gsm.positions.rope_index`), so a sample's positions do not depend on
   the pack it lands in.

A sample longer than ``max_seq_length`` is returned as :class:`Skipped` (truncating it would cut its answer and its
video pads; the original never truncated packed samples at all).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from vdpm_harness.interfaces import PreparedRequest
from vdpm_harness.records import FramePolicy, GenerationSettings, Message, Request, TextPart, VideoPart
from vdpm_harness.video import decode
from vdpm_harness_plugins.models.qwen25vl import inputs as qwen_inputs
from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_processor
from vdpm_harness_plugins.models.qwen25vl.gsm import inputs as gsm_inputs
from vdpm_harness_plugins.models.qwen25vl.gsm.positions import rope_index

from .records import Example

IGNORE = -100


@dataclass(frozen=True)
class Layout:
    """What a worker needs to prepare samples, besides the example (picklable)."""

    processor: str
    frames: dict[str, Any]
    prompt: str
    max_seq_length: int
    num_queries: int
    token_ids: dict[str, int]
    spatial_merge_size: int
    tokens_per_second: float
    backend: str | None = None
    local_files_only: bool = True
    revision: str | None = None


@dataclass
class Sample:
    """One prepared training sample: token ids, targets (the next token where supervised, else -100), M-RoPE
    positions (3, L), the video's patches and grid, and its timing."""

    index: int
    input_ids: torch.Tensor
    targets: torch.Tensor
    position_ids: torch.Tensor
    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor
    frame_indices: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def supervised(self) -> int:
        return int((self.targets != IGNORE).sum())


@dataclass
class Skipped:
    """A sample left out of training: why (a kind, counted), and the details."""

    index: int
    reason: str
    detail: str = ""


_processors: OrderedDict = OrderedDict()
_videos: OrderedDict = OrderedDict()


def processor_for(layout: Layout):
    """The checkpoint's processor, loaded once per process (right padding: one sample a row)."""
    key = (layout.processor, layout.revision)
    if key not in _processors:
        processor = load_processor(layout.processor, revision=layout.revision,
                                   local_files_only=layout.local_files_only)  # fmt: skip
        _processors[key] = processor
    return _processors[key]


def decoded(path: str, policy: FramePolicy, backend: str | None):
    """The video decoded under ``policy`` (the last few kept: the questions of one video often come together)."""
    key = (path, policy.model_dump_json(), backend)
    if key in _videos:
        _videos.move_to_end(key)
        return _videos[key]
    video = decode(path, policy, backend)
    _videos[key] = video
    while len(_videos) > 4:
        _videos.popitem(last=False)
    return video


def request_for(example: Example, policy: FramePolicy, prompt: str) -> Request:
    """The example's question as a harness request (one user message), in the configured prompt layout."""
    video = VideoPart(video=example.video, frames=policy)
    if prompt == "record":
        content = [TextPart(text=example.before)] if example.before else []
        content += [video, TextPart(text=example.after)]
    else:
        from vdpm_harness_plugins.benchmarks.dsr.prompts import prompt_content

        question, options = example.question_and_options()
        content = prompt_content(prompt, video, question, options)
    return Request(sample_id=str(example.index), messages=[Message(content=content)],
                   generation=GenerationSettings(max_new_tokens=8))  # fmt: skip


def with_answer(processor, prompt: qwen_inputs.Prompt, answer: str) -> int:
    """Append the assistant's ``answer`` to ``prompt`` (its chat and its text, in place); return the number of tokens
    the answer's turn adds. A ValueError when the chat with the answer does not extend the evaluation prompt."""
    conversation = [*prompt.conversation, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    full = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=False)
    if not full.startswith(prompt.text):
        raise ValueError("the chat template renders the answered chat differently from the evaluation prompt: "
                         f"{prompt.text[-60:]!r} vs {full[len(prompt.text) - 60 : len(prompt.text)]!r}")  # fmt: skip
    tokenizer = processor.tokenizer
    prompt_ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(f"the answer {answer!r} changes how the end of the prompt is tokenized")
    prompt.conversation = conversation
    prompt.text = full
    return len(full_ids) - len(prompt_ids)


def build(example: Example, layout: Layout) -> Sample | Skipped:
    """:class:`Sample` of one example (the module docstring's steps), or :class:`Skipped`."""
    processor = processor_for(layout)
    policy = FramePolicy.model_validate(layout.frames)
    request = request_for(example, policy, layout.prompt)
    video = decoded(example.video, policy, layout.backend)
    prompt = qwen_inputs.build_prompt(processor, PreparedRequest(request, str(example.index), 0, videos=[video]))
    n_answer = with_answer(processor, prompt, example.answer)
    batch = gsm_inputs.encode(processor, [prompt], num_queries=layout.num_queries)
    ids = batch["input_ids"][0]
    if ids.shape[0] > layout.max_seq_length:
        return Skipped(example.index, "longer than max_seq_length", f"{ids.shape[0]} > {layout.max_seq_length} tokens")
    targets = torch.full_like(ids, IGNORE)
    targets[-n_answer - 1 : -1] = ids[-n_answer:]  # position i predicts token i + 1
    grid = batch["video_grid_thw"]
    seconds = torch.as_tensor(batch["second_per_grid_ts"], dtype=torch.float32)
    positions, _ = rope_index(ids[None], None, None, grid, seconds, **layout.token_ids,
                              spatial_merge_size=layout.spatial_merge_size,
                              tokens_per_second=layout.tokens_per_second)  # fmt: skip
    return Sample(example.index, ids, targets, positions[:, 0], batch["pixel_values_videos"], grid, seconds,
                  list(video.indices))  # fmt: skip


def prepare(job: tuple[Example, Layout]) -> Sample | Skipped:
    """The Prefetcher's job: ``(example, layout)`` -> :func:`build` (top level, so worker processes can run it)."""
    example, layout = job
    return build(example, layout)
