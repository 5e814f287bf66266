"""GPT-Appearance and GPT-Action: the official 0-5 rubrics for 4D-Bench captions, sent by a judge plugin.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``, ``4D_Object_Captioning/code/eval_metrics/llm_score/
score_appearance.py`` and ``score_action.py``: gpt-4o gets a system message (the rubric with six rated examples,
3,848 and 4,472 characters) and a user message with one human caption and the predicted caption, and answers a
dictionary string ``{'appearance_score': n}`` or ``{'action_score': n}``, read with ``ast.literal_eval``. The scripts
draw the human caption with ``random.randint(1, 5)`` after ``random.seed(42)`` (see ``FourDBenchCaption.samples``),
and a reply that cannot be parsed is silently left out of the mean; here it is counted (``unparsed_rate``). GPT-Eval,
in the paper's table, is the mean of the two.

The system prompts are transcribed below with ``⟨n⟩`` standing for a run of n spaces: the scripts continue the string
over several source lines with backslashes, so the lines' indentation is part of the text.
"""

from __future__ import annotations

import ast
import re

GPT_ASPECTS = ("appearance", "action")


def _spaced(text: str) -> str:
    """Expand the ``⟨n⟩`` notation (n space characters) used to transcribe the official prompts."""
    return re.sub(r"⟨(\d+)⟩", lambda m: " " * int(m.group(1)), text)


APPEARANCE_SYSTEM = _spaced(
    "You are an expert in evaluating the quality of video captions.⟨17⟩Your task is to rate the predicted caption in "
    "terms of recall and precision of visual elements(appearance and shape) in the video with reference to the "
    "human-annotated caption.⟨17⟩Focus only on whether the predicted caption accurately and completely contains the "
    "information from the human-annotated caption.⟨17⟩Note you just need to focus on the visual elements.⟨17⟩"
    "Consider synonyms or paraphrases as valid matches.⟨16⟩Provide your evaluation as a matching score where the "
    "score is an integer value between 0 and 5. Here is the rating scale:⟨1⟩\n"
    "⟨17⟩Score 5: The predicted caption accurately identifies the object in the video, including its appearance and "
    "shape. The caption provides a precise and complete description of the object without missing any significant "
    "visual details.⟨1⟩\n"
    "⟨17⟩Score 4: The predicted caption mostly identifies the object accurately, with minor omissions or differences "
    "in the description of the appearance or shape. Paraphrases are acceptable, and the overall description is "
    "correct, though it may lack some finer details.⟨1⟩\n"
    "⟨17⟩Score 3: The caption identifies some key aspects of the object but misses or incorrectly describes certain "
    "visual elements, such as the appearance or shape. There are noticeable gaps, but the overall object is still "
    "somewhat recognizable in the caption.⟨1⟩\n"
    "⟨17⟩Score 2: The predicted caption contains several inaccuracies in describing the object’s appearance or "
    "shape. While some parts may be correct, the overall description is incomplete or misleading. Precision and "
    "recall of visual elements are low.⟨1⟩\n"
    "⟨17⟩Score 1: The caption provides an incorrect description of the object, with major inaccuracies in "
    "identifying the appearance and shape. The object is either misidentified or described in a way that does not "
    "match the video.⟨1⟩\n"
    "⟨17⟩Score 0: The caption is entirely incorrect, failing to identify the object or its appearance and shape. No "
    "valid matches to the human-annotated caption are present.⟨18⟩Here are some rating examples:⟨1⟩\n"
    "⟨17⟩Example 1:{ Human_Caption: 'A red wrecking ball with black chains swings into a big brown cube sitting on a "
    "metallic surface that scatters into smaller cubes after being hit'. Predicted Caption: 'a cube and ball "
    "connected by a chain'. Score: {'appearance_score': 1} }⟨1⟩\n"
    "⟨17⟩Example 2:{ Human_Caption: 'A woman wearing a pair of combat pants and a tank top throwing a punch'. "
    "Predicted Caption: 'a woman in a boxing outfit, wearing a hat, hoodie, and camouflage pants, holding a gun'. "
    "Score: {'appearance_score': 3} }⟨1⟩\n"
    "⟨17⟩Example 3:{ Human_Caption: 'Azerbaijan flag that moves with the wind'. Predicted Caption: 'the Azerbaijan "
    "flag waving in the wind and a colorful kite'. Score: {'appearance_score': 2} }⟨1⟩\n"
    "⟨17⟩Example 4:{ Human_Caption: '3D model of arms with gray sleeves carrying a gray pistol with brown grip and "
    "gray barrel that loads it, fires two bullets, then unloads it'. Predicted Caption: 'A pair of human-like arms in "
    "a dark grey sweater holding a handgun with a brown grip and black barrel'. Score: {'appearance_score': 4} }⟨1⟩\n"
    "⟨17⟩Example 5:{ Human_Caption: '3D model of a boy wearing glasses dancing dressed in a grey hood, black pants, "
    "gray shoes, he puts on a red cap and a blue backpack'. Predicted Caption: 'a person wearing a pink hat, holding "
    "a sword, and surrounded by a glider, bird, and windmill, all adorned with pink hats'. Score: "
    "{'appearance_score': 0} }⟨1⟩\n"
    "⟨17⟩Example 6:{ Human_Caption: 'A 3D model of a lightsaber which is emitting blue saber'. Predicted Caption: "
    "'light saber, and flashlight'. Score: {'appearance_score': 5} }⟨1⟩"
)

ACTION_SYSTEM = _spaced(
    "You are an expert in evaluating the quality of video captions.⟨25⟩Your task is to rate the predicted caption in "
    "terms of recall and precision of the object's actions in the video with reference to the human-annotated "
    "caption.⟨24⟩Note you just need to focus on the action descriptions in the captions.⟨25⟩Consider synonyms or "
    "paraphrases as valid matches.⟨25⟩Provide your evaluation as a matching score where the score is an integer "
    "value between 0 and 5. Here is the rating scale:⟨1⟩\n"
    "⟨25⟩Score 5: The predicted caption accurately identifies the actions of the object in the video, including the "
    "sequence, timing, and details of the actions. Synonyms or paraphrases are valid matches. The caption provides a "
    "precise and complete description of the actions without missing any significant aspects.\n"
    "⟨25⟩Score 4: The predicted caption mostly identifies the actions accurately, with minor omissions or "
    "differences in the description of the actions. Paraphrases are acceptable, and the overall description is "
    "correct, though it may lack some finer details.⟨1⟩\n"
    "⟨25⟩Score 3: The caption identifies some key actions but misses or incorrectly describes certain details, such "
    "as timing, order, or subtle movements. There are noticeable gaps, but the overall actions are still somewhat "
    "recognizable in the caption.⟨1⟩\n"
    "⟨25⟩Score 2: The predicted caption contains several inaccuracies in describing the object's actions. While some "
    "parts may be correct, the overall description is incomplete or misleading. Precision and recall of actions are "
    "low.⟨1⟩\n"
    "⟨25⟩Score 1: The caption provides an incorrect description of the object's actions, with major inaccuracies in "
    "identifying the actions or their sequence. The actions are either misidentified or described in a way that "
    "does not match the video.⟨1⟩\n"
    "⟨25⟩Score 0: The caption is entirely incorrect, failing to identify the object's actions. No valid matches to "
    "the human-annotated caption are present.⟨1⟩\n"
    "⟨25⟩Here are some rating examples:⟨1⟩\n"
    "⟨25⟩Example 1:{ Human_Caption: '3D model of a woman covered in white and purple mesh is warming up and shadow "
    "boxing'. Predicted Caption:' a figure with a purple and black grid-like texture is running in place, their arms "
    "swinging at their sides and their legs lifting up alternately.' Score: {'action_score': 1} }⟨1⟩\n"
    "⟨25⟩Example 2:{ Human_Caption: 'A white and yellow star wars sitting on his knees squatting,stretches his right "
    "arm and back'. Predicted Caption:' this is a 3d model of a clone trooper with yellow markings on his helmet, "
    "shoulders, knees, and shins. he is crouching down on one knee, wearing white armor with grey accents and a "
    "utility belt. the 327th star corps emblem is visible on his left shoulder.' Score: {'action_score': 3} }⟨1⟩\n"
    "⟨25⟩Example 3:{ Human_Caption: 'Black puppy with white nose wiggling its tail.' Predicted Caption: 'a low-poly "
    "dog with a black body and white paws and face stands still. its tail is black, and its ears are floppy. the dog "
    "is rendered in a minimalist style. it remains stationary throughout the scene.' Score: {'action_score': 2} }"
    "⟨1⟩\n"
    "⟨25⟩Example 4:{ Human_Caption: 'A ninja-looking robot in black and red armor with a shield and sword is jumping "
    "up, twisting and slashing the air with his sword before landing down.' Predicted Caption: 'a red and black "
    "armored warrior, adorned with a demonic mask, engages in a display of martial prowess, wielding both a gleaming "
    "sword and a circular shield with a blue emblem. they leap, twirl, and strike dynamic poses, their movements "
    "fluid and controlled.' Score: {'action_score': 4} }⟨1⟩\n"
    "⟨25⟩Example 5:{ Human_Caption: 'A 3D model of a green turtle with a brown shell swimming.' Predicted Caption: "
    "'a low-poly 3d model of a green sea turtle with a brown shell.' Score: {'action_score': 0} }⟨1⟩\n"
    "⟨25⟩Example 6:{ Human_Caption: 'An animated bearded man with brown hair, red beanie and a flannel shirt is "
    "wielding an axe in his right hand while running.' Predicted Caption: 'a cartoon lumberjack with a big black "
    "beard, wearing a red beanie hat, red and black plaid shirt, blue pants, brown boots, and brown gloves runs while "
    "carrying an axe.' Score: {'action_score': 5} }⟨1⟩"
)


def gpt_judge_messages(aspect: str, human_caption: str, predicted_caption: str) -> list[dict]:
    """The official chat messages of one GPT-Appearance or GPT-Action request, in OpenAI format."""
    if aspect not in GPT_ASPECTS:
        raise ValueError(f"unknown GPT aspect {aspect!r}; expected one of {', '.join(GPT_ASPECTS)}")
    system = APPEARANCE_SYSTEM if aspect == "appearance" else ACTION_SYSTEM
    label = "Human-annotated Caption" if aspect == "appearance" else "Human_Caption"
    key = f"{aspect}_score"
    user = (
        "Please evaluate the following video-based captions:\n\n"
        f"{label}: {human_caption}\n"
        f"Predicted Caption: {predicted_caption}\n\n"
        f"Please generate the response in the form of a dictionary string with keys '{key}', where its value is the "
        "factual accuracy score in INTEGER, not STRING."
        "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. You must follow this command!"
        f"For example, your response should look like this: {{'{key}': 4}}."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_FENCE = re.compile(r"^```[\w-]*\s*(.*?)\s*```$", re.S)


def parse_gpt_score(aspect: str, reply: str | None) -> tuple[float | None, str]:
    """The score in a judge's reply, or ``(None, why)``.

    As the official scripts: ``ast.literal_eval`` of the reply, then its ``'<aspect>_score'`` key. Unlike them, a
    Markdown code fence around the dictionary is removed first, and a value that is not a number in [0, 5] is
    refused; a refused reply is counted (``unparsed_rate``) instead of silently dropped.
    """
    if not isinstance(reply, str) or not reply.strip():
        return None, "empty reply"
    text = reply.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    key = f"{aspect}_score"
    try:
        value = ast.literal_eval(text)[key]
    except (ValueError, SyntaxError, TypeError, KeyError, IndexError, MemoryError, RecursionError) as exc:
        return None, f"not a dictionary with key {key!r} ({type(exc).__name__})"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 5:
        return None, f"{key} is {value!r}, not a number in [0, 5]"
    return float(value), ""
