"""How a request becomes Qwen2.5-VL inputs: the one place that decides it, for evaluation and for training alike.

Everything here takes the processor (and the pixel options) as arguments and holds no model, so a trainer can build
its samples' inputs with exactly the calls the ``qwen25vl`` plugin evaluates with (the plugin calls nothing else):

1. :func:`build_prompt`: the request's messages are rebuilt in order as a chat: text parts as text, each video part
   as a ``video`` placeholder paired with its :class:`~vdpm_harness.video.DecodedVideo` (``PreparedRequest.videos``,
   in order), image parts as ``image`` placeholders paired with the image file read by Pillow (RGB). A blind video
   part (``nframes = 0``, or decoded to zero frames) is left out, so a blind run is a text-only prompt. The
   checkpoint's own chat template renders the text (the default system turn is added by the template).
2. :func:`encode`: one processor call per group of prompts that share pixel limits: ``text`` (left padded, as the
   processor's tokenizer is set), ``videos`` (uint8 ``(T, H, W, 3)`` frames exactly as decoded), and for videos
   ``video_metadata`` from ``DecodedVideo.metadata()`` (native fps, sampled indices, total frames:
   ``second_per_grid_ts`` becomes ``temporal_patch_size / (len(indices) / total_frames * native_fps)``, not the
   24 fps transformers assumes without metadata), ``do_sample_frames=False`` (the harness already sampled),
   ``cap_pixels_per_frame=True`` (qwen-vl-utils' total-pixel budget) and
   ``size = {shortest_edge: min_pixels, longest_edge: max_pixels}``.
3. :func:`video_pixels`: pixel limits per frame. A frame policy that sets pixel limits is the single source of truth,
   since the decoder already resized the frames under it: the processor gets the policy's ``max_pixels`` (else
   768·28·28) and its ``min_pixels`` (else 28·28, so that frames the decoder kept small are not scaled up a second
   time). A policy without limits hands over native frames, and the processor applies qwen-vl-utils' video defaults,
   128·28·28 and 768·28·28 = 602112 (the official DSR cap). Explicit ``min_pixels`` / ``max_pixels`` override either
   (a second resize, on request). The processor resizes with ``smart_resize`` (sides multiples of 28, area within
   the limits); frames the decoder sized under the same limits with ``size_multiple = 28`` come out of it at their
   own size, and torchvision skips a resize to the same size, so their pixels are not touched twice.
4. :func:`encode_within_context`: the context-length check: a prompt whose tokens plus the new tokens exceed the
   model's positions gets an error message instead of inputs, and the rest are encoded again without it. The plugin
   caps the new tokens instead (``cap_new_tokens``, :func:`new_token_budget`): a prompt fails only when it fills
   the context by itself, so a small model (the tiny checkpoint's 4096 positions) answers a benchmark that asks for
   2048 new tokens after a 2,600-token video prompt, with fewer new tokens, as transformers' ``generate`` would
   not do by itself.

The pixel defaults are qwen-vl-utils' ``VIDEO_MIN_PIXELS`` / ``VIDEO_MAX_PIXELS`` (QwenLM/Qwen2.5-VL,
``qwen-vl-utils/src/qwen_vl_utils/vision_process.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vdpm_harness import FramePolicy, ImagePart, PreparedRequest, TextPart, VideoPart

#: qwen-vl-utils' per-frame pixel limits for videos (VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS).
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 768 * 28 * 28
#: The smallest frame the model takes (one 2x2 group of 14-pixel patches): the floor under a policy's max_pixels.
MIN_FRAME_PIXELS = 28 * 28


@dataclass
class Prompt:
    """One request turned into processor inputs (before batching): the chat (``conversation``, processor message
    format), its rendered ``text``, and the media in the order of their placeholders."""

    index: int
    prepared: PreparedRequest
    text: str
    conversation: list[dict] = field(default_factory=list)
    videos: list = field(default_factory=list)
    metadata: list[dict] = field(default_factory=list)
    images: list = field(default_factory=list)
    pixels: tuple[int, int] | None = None  # (min, max) per video frame

    @property
    def sampled(self) -> bool:
        return self.prepared.request.generation.temperature > 0


@dataclass
class Encoded:
    """:func:`encode_within_context`'s result: the prompts that fit, their processor inputs (``None`` when none fit)
    and prompt lengths, and an error message for each prompt that does not fit."""

    prompts: list[Prompt]
    inputs: Any
    lengths: list[int]
    overflow: list[tuple[Prompt, str]] = field(default_factory=list)


def video_pixels(
    policy: FramePolicy, *, min_pixels: int | None = None, max_pixels: int | None = None
) -> tuple[int, int]:
    """Per-frame (min, max) pixels for the processor: ``min_pixels`` / ``max_pixels`` when given, else the frame
    policy's limits (it sized the frames), else qwen-vl-utils' video defaults for native frames. The max wins over
    the min."""
    if policy.min_pixels or policy.max_pixels:
        low, high = policy.min_pixels or MIN_FRAME_PIXELS, policy.max_pixels or VIDEO_MAX_PIXELS
    else:
        low, high = VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS
    high = max_pixels or high
    return min(min_pixels or low, high), high


def build_prompt(processor, prepared: PreparedRequest, index: int = 0, *, min_pixels: int | None = None,
                 max_pixels: int | None = None) -> Prompt:  # fmt: skip
    """Rebuild the request's chat with its media and render it with the processor's chat template, ending with the
    assistant's turn (raises ValueError/OSError naming the problem). ``index`` is the request's place in its batch.
    The processor's tokenizer is not safe to share between threads: the caller serialises calls that use it."""
    from PIL import Image

    prompt = Prompt(index, prepared, "")
    limits = set()
    video_index = 0
    for message in prepared.request.messages:
        content = []
        for part in message.content:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                with Image.open(part.image) as image:
                    prompt.images.append(image.convert("RGB"))
                content.append({"type": "image"})
            elif isinstance(part, VideoPart):
                position, video_index = video_index, video_index + 1
                if part.frames.blind:
                    continue
                if position >= len(prepared.videos):
                    raise ValueError(f"no decoded frames for video part {position} ({part.video})")
                video = prepared.videos[position]
                if len(video.frames) == 0:
                    continue
                prompt.videos.append(video.frames)
                prompt.metadata.append(video.metadata())
                limits.add(video_pixels(part.frames, min_pixels=min_pixels, max_pixels=max_pixels))
                content.append({"type": "video"})
        prompt.conversation.append({"role": message.role, "content": content})
    if len(limits) > 1:
        raise ValueError(f"the videos of one request have different pixel limits {sorted(limits)}")
    prompt.pixels = limits.pop() if limits else None
    prompt.text = processor.apply_chat_template(prompt.conversation, tokenize=False, add_generation_prompt=True)
    return prompt


def encode(processor, prompts: list[Prompt], *, device: str | None = None):
    """One processor call for prompts that share pixel limits; returns the ``BatchFeature`` for ``generate``.
    ``device``: where the video processor resizes and normalises (its own default when ``None``)."""
    videos = [v for p in prompts for v in p.videos]
    images = [i for p in prompts for i in p.images]
    kwargs: dict[str, Any] = {}
    if videos:
        low, high = prompts[0].pixels
        kwargs["videos_kwargs"] = {
            "video_metadata": [m for p in prompts for m in p.metadata],
            "do_sample_frames": False,
            "size": {"shortest_edge": low, "longest_edge": high},
            "cap_pixels_per_frame": True,
        }
        if device is not None:
            kwargs["videos_kwargs"]["device"] = device
    return processor(
        text=[p.text for p in prompts], videos=videos or None, images=images or None, padding=True,
        return_tensors="pt", **kwargs,
    )  # fmt: skip


def context_overflow(prompt_tokens: int, max_new_tokens: int, max_positions: int) -> str | None:
    """The error of a prompt whose tokens and new tokens do not fit the model's positions, else ``None``."""
    if prompt_tokens + max_new_tokens <= max_positions:
        return None
    return (f"context overflow: {prompt_tokens} prompt tokens + {max_new_tokens} new tokens exceed the model's "
            f"{max_positions} positions")  # fmt: skip


def new_token_budget(prompt_tokens: int, max_new_tokens: int, max_positions: int) -> int:
    """How many new tokens a prompt may generate: ``max_new_tokens``, capped to the positions the prompt leaves free
    (0 when it leaves none)."""
    return max(0, min(max_new_tokens, max_positions - prompt_tokens))


def encode_within_context(processor, prompts: list[Prompt], *, max_new_tokens: int, max_positions: int,
                          device: str | None = None, encoder=None,
                          cap_new_tokens: bool = False) -> Encoded:  # fmt: skip
    """:func:`encode` the prompts (or ``encoder``, a function with :func:`encode`'s signature that adds to what it
    returns: the GSM's geometry pads), leaving out (with their error) those over the context length: those whose
    tokens plus ``max_new_tokens`` exceed ``max_positions``, or with ``cap_new_tokens`` only those that leave no
    position for a single new token (the others then generate at most :func:`new_token_budget` tokens)."""
    encoder = encoder or encode
    inputs = encoder(processor, prompts, device=device)
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    errors = [context_overflow(n, 1 if cap_new_tokens else max_new_tokens, max_positions) for n in lengths]
    overflow = [(p, error) for p, error in zip(prompts, errors) if error is not None]
    if not overflow:
        return Encoded(prompts, inputs, lengths)
    prompts = [p for p, error in zip(prompts, errors) if error is None]
    if not prompts:
        return Encoded([], None, [], overflow)
    inputs = encoder(processor, prompts, device=device)
    return Encoded(prompts, inputs, inputs["attention_mask"].sum(dim=1).tolist(), overflow)
