"""The official VLM4D prompts, byte for byte: the question templates and the o4-mini judge's messages.

Source: ``ShijieZhou-UCLA/VLM4D`` at commit ``23f2680``. The question templates are ``MULTI_CHOICE_COT_PROMPT``
(``prompt="cot"``, 423 characters) and ``MULTI_CHOICE_DO_PROMPT`` (``"direct"``, the ``direct-output`` of ``main.py
--prompt``, 153 characters) of ``utils/constant.py``, ``string.Template`` sources in which ``$$LETTER`` renders as
``$LETTER``. Both start with a newline; only the direct one ends with one. The options are rendered as ``"A: text"``
lines (ints with ``str``). The official backends send one user message, the frames (or video) first, then this text,
and no system prompt.

The judge (``utils/eval_utils.py``, run by ``acc_evaluation.py``) is o4-mini with a system message (801 characters) and
a user message holding the question, the options, the ground-truth answer *text* and the model's response; its reply
is the structured output ``EvaluationOutput{extracted_answer: str, correct: bool}``.
"""

from __future__ import annotations

from string import Template

COT_TEMPLATE = (
    "\nQuestion: $question\n$optionized_str\n\nAnswer the given multiple-choice question step by step. Begin by "
    "explaining your reasoning process clearly. In the last sentence of your response, you must conclude by stating "
    "the final answer using the following format: 'Therefore, the final answer is: $$LETTER' (without quotes), where "
    "$$LETTER must be only one of the options (A or B or C or D). Think step by step before answering."
)
DIRECT_TEMPLATE = (
    "\nQuestion: $question\n$optionized_str\n\nDo not generate any intermediate reasoning process. Answer directly "
    "with the option letter from the given choices.\n"
)
#: The benchmark's ``prompt`` option -> template.
TEMPLATES = {"cot": COT_TEMPLATE, "direct": DIRECT_TEMPLATE}

JUDGE_SYSTEM_PROMPT = (
    "Your task is to evaluate whether the model's final answer is correct by comparing it to the ground-truth answer "
    "provided for the given question.\n\nYou should first extract the final answer from the model's response, and "
    "then compare the extracted answer with the choice that matches the ground-truth answer to determine its "
    "correctness.\nOutput your response in the following structured format:\n{\n"
    '    "extracted_answer": // str value "A" "B" "C" "D", followed by a colon and the corresponding answer text, '
    'e.g., "A: Answer A text". If the model\'s response does not contain a valid choice and reasoning, then '
    '"No Valid Answer".\n'
    '    "correct": // boolean value, True if the extracted answer matches the ground-truth answer (correct choice), '
    'False otherwise ("No Valid Answer" is also considered False).\n}\n'
)
JUDGE_USER_TEMPLATE = (
    "Question: {question}\n\nOptions:\n{optionized_str}\n\nGround Truth Answer: {answer}\n\n"
    "Model Response to the Question: {response}"
)
#: The official judge's structured output (pydantic ``EvaluationOutput``) as a JSON schema.
JUDGE_SCHEMA = {
    "title": "EvaluationOutput",
    "type": "object",
    "properties": {"extracted_answer": {"type": "string"}, "correct": {"type": "boolean"}},
    "required": ["extracted_answer", "correct"],
    "additionalProperties": False,
}


def optionize(letters: list[str], options: list[str]) -> str:
    """The official option block: ``"A: text"`` lines (ints already rendered with ``str``)."""
    return "\n".join(f"{letter}: {text}" for letter, text in zip(letters, options))


def render_prompt(template: str, question: str, letters: list[str], options: list[str]) -> str:
    """A question template filled in, as ``main.py`` does with ``string.Template.substitute``."""
    return Template(template).substitute(question=question, optionized_str=optionize(letters, options))


def judge_messages(question: str, letters: list[str], options: list[str], answer: object, response: str) -> list[dict]:
    """The official judge's system and user message (OpenAI format); ``answer`` is the ground-truth answer text."""
    user = JUDGE_USER_TEMPLATE.format(
        question=question, optionized_str=optionize(letters, options), answer=answer, response=response
    )
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]
