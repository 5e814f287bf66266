"""Reading a VLM4D answer: the rule extractor (offline scoring) and judge verdicts as extractions.

The official code has no rule extractor: ``acc_evaluation.py`` (``ShijieZhou-UCLA/VLM4D`` at ``23f2680``) has o4-mini
read every response, and the stored verdicts of the paper (``processed_outputs_paper_results/``) were, by the README,
also checked by hand. :func:`extract_vlm4d` is this harness's offline substitute, tuned on those stored outputs: on
the paper's judged outputs of 12 models, "the rule's letter is a gold letter" equals the stored verdict for 99.95% of
the direct-output and 99.10% of the CoT records. Free-text answers of models that ignore the requested format
(InternVideo2-Chat CoT: 97.2%) are what an LLM judge is still needed for.

A judge's verdict (``extracted_answer`` such as ``"B: left"`` or ``"No Valid Answer"``, and ``correct``) becomes an
extraction through :func:`verdict_extraction`; the verdict itself is kept in ``detail`` and scored as is.
"""

from __future__ import annotations

import json
import re

from vdpm_harness import Extraction, visible_text

LETTERS = ["A", "B", "C", "D"]

RULES_METHOD = "rules:vlm4d@1"
_OPENER = r"""[\s:：]*(?:\$\\boxed\{|\\boxed\{|\*\*|\(|\[|["'“‘`]|\$|_|\s)*"""
# a letter that starts a list of letters ("A or D", "A, B, C", "A(D)") is a hedge, not an answer
_NOT_A_LIST = r"(?![A-Za-z])(?![)\]$]?\s*(?:or\b|and\b|/|,|\()\s*\$?\(?[A-D](?![A-Za-z]))"
_DECLARED = [
    re.compile(r"(?i:final answer)(?:\s+(?:is|must be|would be|will be|should be))?" + _OPENER + r"(?P<x>[A-D])"
               + _NOT_A_LIST),
    re.compile(r"\\boxed\{\s*(?P<x>[A-D])\s*\}"),
    re.compile(r"(?i:answer)(?:\s+is)?:?" + _OPENER + r"(?P<x>[A-D])" + _NOT_A_LIST),
    re.compile(r"(?i:answer)(?:\s+is)?:?\s*\(?(?P<x>[a-d])\)?(?=\.?\s*$|[.)]\s)"),  # "the answer is b."
    re.compile(r"(?<![A-Za-z])(?P<x>[A-D])\)?:? is the (?:correct|best|right) (?:answer|option|choice)"),
    re.compile(r"答案是?[：:]\s*(?P<x>[A-D])(?![A-Za-z])"),
]  # fmt: skip
_LEADING = re.compile(r"^\s*(?:\*\*|\(|\[)*(?P<x>[A-D])(?:[)\].:,*\s]|$)")
_OPTION = re.compile(r"(?i:option|choice)(?:\s+is)?\s*[(\[]?(?P<x>[A-D])(?![A-Za-z])")
_TRAILING = re.compile(r"(?:^|(?<![\s,/]or)(?<![\s,/]and)(?<![,/])\s)[(\[]?(?P<x>[A-D])[)\]]?\.?\s*$")
_TAIL_LETTER = re.compile(r"(?<![A-Za-z])(?P<x>[A-D])[:.)]")
_NUMBER_WORDS = {0: ["zero", "none"], 1: ["one", "once"], 2: ["two", "twice"], 3: ["three", "thrice"], 4: ["four"],
                 5: ["five"], 6: ["six"], 7: ["seven"], 8: ["eight"], 9: ["nine"], 10: ["ten"]}  # fmt: skip


def _option_pattern(option: str) -> str:
    """A regex for an option's text in free prose: a final plural "s" is optional, counts also match number words."""
    text = option.strip().lower()
    alternatives = [re.escape(text[:-1]) + "s?" if text.endswith("s") and len(text) > 3 else re.escape(text)]
    if text.isdigit():
        alternatives += _NUMBER_WORDS.get(int(text), [])
    return r"(?<![a-z0-9-])(?:" + "|".join(alternatives) + r")(?![a-z0-9-])"


def extract_vlm4d(response: str | None, options: list[str]) -> Extraction:
    """Read the option letter (A-D) out of a VLM4D response; ``options`` are the four option texts.

    In order of evidence:

    1. a declared answer, the last one in the text: "final answer is: X" (with ``**``, brackets, quotes, ``$``,
       ``\\boxed{}`` around X), ``\\boxed{X}``, "answer: X", a lower-case "the answer is b.", "X is the correct
       answer", "答案是：X"; a letter that opens a list ("A or D") is a hedge and does not count;
    2. a response that starts with a letter ("B", "(B)", "**B**", "B. left");
    3. the last "option X" / "choice X";
    4. a response that ends with a lone letter;
    5. the option text that occurs last in the final 300 characters (counts also as number words: "twice" is 2;
       overlapping matches prefer the longer text, so "counter-clockwise" beats "clockwise");
    6. the last "X:" / "X." / "X)" in the final 200 characters.

    An empty response, or one that never closes its ``<think>`` block, is unparsed.
    """
    if not response or not response.strip():
        return Extraction(answer=None, parsed=False, method=RULES_METHOD, detail={"rule": "empty"})
    text = visible_text(response)
    if text is None:
        return Extraction(answer=None, parsed=False, method=RULES_METHOD, detail={"rule": "unclosed_think"})

    def found(letter: str | None, rule: str) -> Extraction:
        return Extraction(answer=letter, parsed=letter is not None, method=RULES_METHOD, detail={"rule": rule})

    declared = [(m.start(), m.group("x").upper()) for pattern in _DECLARED for m in pattern.finditer(text)]
    if declared:
        return found(max(declared)[1], "declared")
    for rule, match in (("leading", _LEADING.match(text)), ("option", _last(_OPTION, text)),
                        ("trailing", _TRAILING.search(text))):  # fmt: skip
        if match:
            return found(match.group("x"), rule)
    tail = text[-300:].lower()
    hits = [
        (m.end(), len(m.group()), letter)
        for letter, option in zip(LETTERS, options)
        for m in re.finditer(_option_pattern(option), tail)
    ]
    if hits:
        return found(max(hits)[2], "option_text")
    match = _last(_TAIL_LETTER, text[-200:])
    return found(match.group("x"), "tail_letter") if match else found(None, "no_letter")


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def verdict_extraction(extracted_answer: str, correct: bool, method: str) -> Extraction:
    """An official-style verdict as an extraction: the letter that ``extracted_answer`` starts with ("B: left" -> B),
    ``parsed`` when there is a letter or the verdict is correct (a correct free-text answer such as "not moving"),
    and the verdict itself in ``detail``."""
    match = re.match(r"\s*[(\[]?([A-D])(?![A-Za-z])", extracted_answer)
    letter = match.group(1) if match else None
    return Extraction(answer=letter, parsed=letter is not None or correct, method=method,
                      detail={"correct": correct, "extracted_answer": extracted_answer})  # fmt: skip


def parse_verdict(reply: str | None, method: str) -> Extraction:
    """A judge's JSON reply (``EvaluationOutput``; a Markdown code fence around it is removed) -> an extraction with
    the verdict in ``detail``. A malformed reply (not JSON, or without a string ``extracted_answer`` and a boolean
    ``correct``) is unparsed and wrong, as ``utils/eval_utils.py`` treats a failed parse."""
    text = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", reply or "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not (isinstance(data, dict) and isinstance(data.get("extracted_answer"), str)
            and isinstance(data.get("correct"), bool)):  # fmt: skip
        return Extraction(answer=None, parsed=False, method=method,
                          detail={"correct": False, "extracted_answer": "", "malformed": True})  # fmt: skip
    return verdict_extraction(data["extracted_answer"], data["correct"], method)
