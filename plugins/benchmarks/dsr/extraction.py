"""The harness's rule extractor for DSR-Bench: the core ladder (:func:`vdpm_harness.extract_choice`) under
DSR-Bench's settings, :data:`DSR_RULES`.

What the settings change against the core's own rules (``rules:mcq@1``), each tested in ``tests/test_dsr.py``:

* lines restating two or more options verbatim are dropped: a response that repeats the option list declares
  nothing (VLMEvalKit's ``can_match_option`` takes the last restated line, so a restated list scores as D);
* only a declaration counts, never a bare mention: "option A is wrong" says nothing, while "the correct option is
  C", "option: C" and "I go with D" declare; the letter "a" after a declaration followed by a lower-case word is the
  article ("the answer is a person walking" declares nothing, where ``can_match_option`` reads A);
* a lone letter may carry markdown (backquotes, a list dash, a heading ``#``) or a colon (``- C``, ``# D:``); one
  that is not among the sample's letters (``E`` on a four-option question) is final and unparsed;
* the answer and reasoning tags may hold whitespace (``< answer >``).
"""

from __future__ import annotations

from vdpm_harness import ChoiceRules, Extraction, extract_choice

METHOD = "rules:dsr@1"

#: a lone letter, optionally bracketed, followed by "." or ":", in markdown emphasis, a list item or a heading
BARE_LETTER = r"[\s*_`#>\-]*[(\[]?\s*(?P<x>[A-Za-z])\s*[)\]]?[.:]?[\s*_`]*"
#: what declares the letter that follows: "answer", "answer is / would be / should be / will be", "option is",
#: "choice would be", "option:" / "choice =", "choose", "select", "pick", "go with"; then ":", "=" or "-", an
#: optional "option" / "choice", brackets or emphasis
DECLARATION = (
    r"(?:\banswer\b\s*(?:is|would\s+be|should\s+be|will\s+be)?"
    r"|\b(?:option|choice)\s*(?:is|would\s+be|should\s+be)\b|\b(?:option|choice)(?=\s*[:=])"
    r"|\b(?:choose|select|pick|go\s+with)\b)"
    r"\s*[:=\-]?\s*(?:option\s*|choice\s*)?[(\[*\s]*"
)
DSR_RULES = ChoiceRules(
    method=METHOD,
    spaced_tags=True,
    drop_restated_options=True,
    bare_letter=BARE_LETTER,
    bare_letter_is_final=True,
    declaration=DECLARATION,
    mention=None,
    articles_after_declarations=True,
)


def extract_dsr(response: str | None, letters: list[str], options: list[str]) -> Extraction:
    """Read an option letter (one of ``letters``) out of a DSR-Bench response; unparsed stays unparsed.

    Evidence, strongest first; within a kind the last occurrence wins:

    1. only the last ``<answer>...</answer>`` block counts, else the text after the last ``</think>`` (an unclosed
       ``<think>`` is unparsed); lines restating two or more options verbatim are dropped;
    2. the whole answer is one letter, any case, optionally bracketed or followed by "." (``b``, ``(C)``, ``d.``);
    3. a declaration: "answer is (B)", "Answer: b", "correct option is C", "I choose D" (the article in
       "the answer is a person ..." is not a letter; a bare mention such as "option A is wrong" is not a declaration);
    4. a line that is just a capital letter or starts with ``B.`` / ``B)`` / ``B:`` / ``(B)``;
    5. exactly one distinct standalone capital among ``letters`` ("A person ..." is an article, not an answer);
    6. the answer equal to exactly one option's text (case and punctuation ignored).
    """
    return extract_choice(response, letters, options, DSR_RULES)
