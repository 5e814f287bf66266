"""The official 4D-Bench prompts, byte for byte, for question answering and captioning.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``. The scripts write each prompt as one string continued over
several source lines with backslashes, so the indentation of the continuation lines ends up inside the string: the
same text exists in variants that differ only in those runs of spaces, and each script uses one of them.

* QA (``4D_Object_Question_Answering/eval_code_example/*_exp.py``): ``qa13`` (Qwen2-VL, Gemini 1.5, InternVL2,
  VideoChat2; 585 characters with the literal placeholder ``{vqa}``), ``qa21`` (LLaVA-Video; 601) and ``qa25``
  (LLaVA-OneVision, MiniGPT4-Video; 610, with a space before the second newline). ``{vqa}`` is the Python ``repr`` of
  the question's dict in ``4d_qa.json`` after the scripts pop ``"Answer index"`` and ``"Category"``. ``gpt-4o_exp.py``
  and ``gpt-4o-mini_exp.py`` split the text: the first two sentences (with "I *will* provide you") are the system
  message; the user content is the preamble "Here are the multi-view videos: ", the 18 images, ``"Question and
  choices: {vqa}"`` and the format sentence, as separate parts.
* Captioning (``4D_Object_Captioning/code/mllm_gen_caption/*_caption_exp.py``): ``cap9`` (Qwen2-VL, LLaVA-Video;
  1,566 characters), ``cap17`` (GPT-4o(-mini), Gemini 1.5, LLaVA-OneVision, MiniGPT4-Video, VideoChat2; 1,654) and
  ``cap5`` (InternVL2; 1,526, with the run of spaces also between its first two sentences). The GPT scripts add the
  system message :data:`CAPTION_GPT_SYSTEM`.
"""

from __future__ import annotations

QA_INTRO = (
    "You are a excellent video analyst. I provide you 18 frames with every six images uniformly sampled from one "
    "video, each video captured from a different angle and a question and four choices."
)
QA_TASK = (
    "Carefully watch the provided videos and pay attention to every detail. Based on your observations, select the "
    "best option that accurately addresses the question."
)
QA_FORMAT = (
    "You must return only the option identifier (e.g., '(A)') without any additional text, do not add any additional "
    "analysis, just return the correct option identifier."
)
#: GPT-4o and GPT-4o-mini: the first two sentences ("I will provide you") as the system message.
QA_GPT_SYSTEM = QA_INTRO.replace("I provide you", "I will provide you") + " " * 25 + QA_TASK
QA_GPT_PREAMBLE = "Here are the multi-view videos: "

CAPTION_INTRO = ("I have multiple videos of the object captured from different angles.",
                 "I provide you 18 images, with every six images uniformly sampled from one video, each video captured "
                 "from a different angle.")  # fmt: skip
CAPTION_TASK = (
    "Your job is to generate one fluent caption for this multi-view video in English,",
    "provide a detailed description of the object's or character's appearance, including shape, color, texture, and "
    "any notable features.",
    "Additionally, describe the actions taking place, focusing on how the object or character moves and behaves "
    "throughout the scene.",
    "The caption should not describe the background.",
    "You must strictly return in the following format: caption: caption content.",
    "Here are some examples: \n",
)
CAPTION_EXAMPLES = (
    "Example 1: caption: A young woman with black hair wearing silver jumpsuit is lying on the floor and then gently "
    "rises.",
    "Example 2: caption: A military infantryman in green and brown camouflage gear holds a black pistol in his left "
    "hand and dances with his arms and legs moving first to the left then to the right.",
    "Example 3: caption: A 3D model of a fish pond with blue walls, and brown ground, a fish swims next to a creature "
    "that looks like an animal that is lying down.",
    "Example 4: caption: 3D model of a yellow emoji with closed eyes that sticks out its red tongue and moves from "
    "right to left.",
    "Example 5: caption: A man with brown hair, a moustache and sunglasses wears a green coat, black pants, a white "
    "shirt and a black tie walks straight then turns raising his right hand up.",
)
CAPTION_GPT_SYSTEM = "You are an AI assistant that generates descriptive captions for multi-view videos."


def qa_prompt(variant: str, vqa: str) -> str:
    """The QA prompt variant ``qa13``, ``qa21`` or ``qa25`` around ``vqa``, the repr of the question dict."""
    pad, after = {"qa13": (13, ""), "qa21": (21, ""), "qa25": (25, " ")}[variant]
    gap = " " * pad
    return f"{QA_INTRO}{gap}{QA_TASK} Here is the question and choices: \n {vqa}.{after}\n{gap}{QA_FORMAT}"


def caption_prompt(variant: str) -> str:
    """The caption prompt variant ``cap9``, ``cap17`` or ``cap5``."""
    gap = " " * {"cap9": 9, "cap17": 17, "cap5": 5}[variant]
    intro = (gap if variant == "cap5" else " ").join(CAPTION_INTRO)
    return gap.join((intro, *CAPTION_TASK)) + "\n".join(f"{gap}{example} " for example in CAPTION_EXAMPLES)
