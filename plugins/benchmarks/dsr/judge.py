"""VLMEvalKit's LLM scorer for DSR-Bench: its prompt and how it reads the judge's reply.

Upstream (open-compass/VLMEvalKit, ``vlmeval/dataset/utils/spatial_bench/llm_extract.py``, ms-vlmeval 0.0.20) runs
it by default whenever an OpenAI key is set: ``extract_ans_by_llm`` (mode ``mcq``) sends
``GENERIC_EXTRACT_JUDGE_PROMPT`` per response, ``call_llm_extract`` reads a grade ``A`` (CORRECT), ``B``
(INCORRECT) or ``C`` (INVALID) from the first line of the reply, and the response is correct iff the grade is ``A``.
Upstream's default judge model is ``gpt-4o-mini`` at temperature 0. ``tests/test_dsr.py`` compares the prompt, the
requests built from it and the reading of replies with the wheel's own functions.
"""

from __future__ import annotations

import re

from vdpm_harness import Extraction

#: ``GENERIC_EXTRACT_JUDGE_PROMPT``, character for character.
JUDGE_PROMPT = (
    "You are an expert grading assistant.\n"
    "Your job has TWO tasks:\n"
    "1) From the candidate's full response, EXTRACT the final answer in a concise, normalized form.\n"
    "2) Compare this extracted answer with the STANDARD ANSWER and grade it as:\n"
    "   - A: CORRECT\n"
    "   - B: INCORRECT\n"
    "   - C: INVALID\n"
    "\n"
    "Here are the detailed evaluation criteria:\n"
    "1. ALWAYS refer to the given STANDARD ANSWER. You do NOT need to re-solve the question; the "
    "standard answer has already been provided and is always correct. Your only job is to judge whether "
    "the candidate's final answer is consistent with the standard answer according to the form of the "
    "question. THE STANDARD ANSWER IS ALWAYS CORRECT AND THE QUESTION IS PERFECTLY VALID. NEVER QUESTION THEM.\n"
    "2. ONLY compare the FINAL ANSWER — COMPLETELY IGNORE any potential errors or issues in the "
    "REASONING PROCESS. Even if the reasoning is wrong, as long as the final answer matches the standard "
    "answer, grade it as CORRECT.\n"
    "3. Answers may be expressed in different ways (e.g., mathematical expressions, textual "
    "descriptions). As long as the meaning is the same as the standard answer, treat them as equivalent. "
    "If the standard answer does not specify a unit but the candidate's answer includes a correct unit "
    "for the given value, consider it CORRECT.\n"
    "4. Some answers may consist of multiple items, such as multiple-choice questions with multiple "
    "correct options, multi-select questions, or multi-blank fill-in-the-blank questions. Regardless of "
    "the question type, the final answer is considered CORRECT only if it matches the standard answer "
    "exactly at the level of all required items. For multi-select or multi-blank questions, ALL parts "
    "must be answered correctly and match the standard answer exactly to be deemed CORRECT.\n"
    "5. If the candidate's answer is wrapped in LaTeX-style markers like \\boxed{{...}}, IGNORE the "
    "\\boxed and only use the inner content as the candidate's final answer when comparing with the "
    "standard answer.\n"
    "6. If the candidate's answer is INVALID — for example, incomplete (cut off mid-response), "
    "containing a large amount of abnormal repetitive content, clearly irrelevant to the question, or "
    "explicitly refusing to answer due to ethical concerns, lack of information, or other external "
    "factors — then you MUST grade it as C: INVALID.\n"
    "7. This instruction applies to all problem types, including single-choice MCQ, multi-select MCQ, "
    "numeric problems, short-answer questions, and general VQA-style questions. In all cases, only the "
    "FINAL ANSWER and its consistency with the standard answer matter.\n"
    "8. The question or options may contain image placeholders such as '<image>', '<image id=1>', or "
    "similar tokens. You CANNOT see these images. Treat these placeholders as unknown content and DO NOT "
    "hallucinate or infer any specific visual details from them. If the standard answer or candidate's "
    "answer refers to an option associated with an image (e.g., 'choose A'), judge correctness only "
    "based on the stated answer, not by imagining the image.\n"
    "\n"
    "IMPORTANT – OUTPUT FORMAT:\n"
    "• You MUST return EXACTLY ONE line in the following format:\n"
    "  <GRADE>\\t<EXTRACTED_ANSWER>\n"
    "  where <GRADE> is one of A, B, or C.\n"
    "• <EXTRACTED_ANSWER> should be the final answer you extracted from the candidate's response, in a "
    "normalized, concise form (e.g., a number, a letter option, or a short phrase).\n"
    "• If you cannot extract any meaningful answer, or the response is INVALID, output:\n"
    "  C\\tN/A\n"
    "• Do NOT add any extra text, explanation, or additional lines.\n"
    "\n"
    "Now, judge the following question.\n"
    "<Original Question Begin>\n"
    "{question}\n"
    "{options_block}<Original Question End>\n"
    "<Standard Answer Begin>\n"
    "{gold_answer}\n"
    "<Standard Answer End>\n"
    "<Candidate's Answer Begin>\n"
    "{llm_response}\n"
    "<Candidate's Answer End>\n"
    "Your output:"
)


def judge_request(question: str, options: list[str], letters: list[str], answer: str, response: str) -> str:
    """The one user message upstream's ``extract_ans_by_llm`` (mode ``mcq``) sends for a response: the prompt
    filled with the question, an ``Options:`` block and the standard answer.

    Faithful to upstream, quirks included: the options are the table's ``options`` strings, which already carry
    their letters, and upstream prefixes the letter again (``"A. A. Left"``), in the block and in the standard
    answer; whitespace runs in an option collapse to one space."""
    choices = {letter: re.sub(r"\s+", " ", str(text)).strip() for letter, text in zip(letters, options)}
    block = "".join(f"{letter}. {text}\n" for letter, text in choices.items())
    gold = f"{answer}. {choices[answer]}" if answer in choices else str(answer)
    return JUDGE_PROMPT.format(question=question, options_block=f"Options:\n{block}\n" if block else "",
                               gold_answer=gold, llm_response=response)  # fmt: skip


def read_judgement(reply: str) -> Extraction:
    """The judge's reply as upstream's ``call_llm_extract`` reads it: the first line of the stripped reply must
    start with a grade ``A``, ``B`` or ``C`` as a word, optionally followed by the extracted answer (leading
    whitespace, ``|``, ``,``, ``:`` and literal ``\\t`` removed; ``N/A`` when empty). Anything else is unparsed and
    graded ``C``: upstream asks again up to three times and then gives ``C`` (and crashes on an empty reply); here
    the judge's own retries cover failed calls, and a malformed reply is final.

    The grade and extracted answer go into ``detail``; ``answer`` is the extracted answer's leading option letter,
    if any. ``method`` is a placeholder: the judge plugin sets its own tag."""
    text = (reply or "").strip()
    match = re.match(r"^\s*([ABC])\b(.*)$", text.splitlines()[0].strip()) if text else None
    if match is None:
        return Extraction(answer=None, parsed=False, method="judge:dsr-prompt",
                          detail={"grade": "C", "extracted_answer": "N/A", "malformed": True})  # fmt: skip
    rest = re.sub(r"^(?:\\[tnr])+", "", re.sub(r"^[\s|,:]+", "", match.group(2)))
    extracted = rest.strip() or "N/A"
    letter = re.match(r"\s*[(\[]?([A-F])(?![A-Za-z])", extracted)
    return Extraction(answer=letter.group(1) if letter else None, parsed=True, method="judge:dsr-prompt",
                      detail={"grade": match.group(1), "extracted_answer": extracted})  # fmt: skip
