"""The model families of the official 4D-Bench scripts: what each script does differently.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``, one script per model under
``4D_Object_Question_Answering/eval_code_example/`` (QA) and ``4D_Object_Captioning/code/mllm_gen_caption/``
(captions). They differ in the prompt variant (:mod:`.prompts`), the frame sampler (:mod:`.frames`: ``"stride"`` for
the API models, Qwen2-VL, VideoChat2 and MiniGPT4-Video, ``"linspace"`` for InternVL2, LLaVA-Video and
LLaVA-OneVision), ``max_new_tokens`` (Qwen2-VL and InternVL2 128, VideoChat2 and MiniGPT4-Video 512, LLaVA 4096; the
API scripts set none), whether the text comes before the frames (Gemini; GPT captioning), the GPT system message, and
the answer parser (``gpt-4o_exp.py`` has no parenthesis pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .prompts import CAPTION_GPT_SYSTEM, QA_GPT_SYSTEM


@dataclass(frozen=True)
class Family:
    """What one official script does: prompt variant, frame sampler, generation length, message layout, parser.

    ``text_first``: the prompt before the frames (Gemini, GPT captioning); ``system``: a system message (GPT);
    ``parser``: ``"paren_first"`` or ``"bare"`` (the gpt-4o QA script skips the parenthesis pass).
    """

    prompt: str
    sampler: Literal["stride", "linspace"]
    max_new_tokens: int
    text_first: bool = False
    system: str | None = None
    parser: Literal["paren_first", "bare"] = "paren_first"


#: The API scripts set no output limit; the harness needs one.
API_TOKENS = 1024
FamilyName = Literal["qwen2-vl", "gemini-1.5", "internvl2", "videochat2", "llava-video", "llava-onevision",
                     "minigpt4-video", "gpt-4o", "gpt-4o-mini"]  # fmt: skip

QA_FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family("qa13", "stride", 128),
    "gemini-1.5": Family("qa13", "stride", API_TOKENS, text_first=True),
    "internvl2": Family("qa13", "linspace", 128),
    "videochat2": Family("qa13", "stride", 512),
    "llava-video": Family("qa21", "linspace", 4096),
    "llava-onevision": Family("qa25", "linspace", 4096),
    "minigpt4-video": Family("qa25", "stride", 512),
    "gpt-4o": Family("gpt", "stride", API_TOKENS, system=QA_GPT_SYSTEM, parser="bare"),
    "gpt-4o-mini": Family("gpt", "stride", API_TOKENS, system=QA_GPT_SYSTEM),
}
CAPTION_FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family("cap9", "stride", 128),
    "gemini-1.5": Family("cap17", "stride", API_TOKENS, text_first=True),
    "internvl2": Family("cap5", "linspace", 128),
    "videochat2": Family("cap17", "stride", 512),
    "llava-video": Family("cap9", "linspace", 4096),
    "llava-onevision": Family("cap17", "linspace", 4096),
    "minigpt4-video": Family("cap17", "stride", 512),
    "gpt-4o": Family("cap17", "stride", API_TOKENS, text_first=True, system=CAPTION_GPT_SYSTEM),
    "gpt-4o-mini": Family("cap17", "stride", API_TOKENS, text_first=True, system=CAPTION_GPT_SYSTEM),
}
