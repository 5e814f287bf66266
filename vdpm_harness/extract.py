"""Rule-based answer extraction for multiple-choice questions: one ladder of evidence, configurable by its settings.

The rules restrict matches to the valid option letters and prefer the *last* declared answer, after any reasoning
block (lmms-eval #1434 shows what goes wrong otherwise). An unparsed response stays unparsed: it is counted wrong and
reported in ``unparsed_rate``; there is never a random fallback.

The ladder, strongest evidence first; within one kind of evidence the last occurrence wins. The ``detail["rule"]``
of every extraction names the step that decided it (``empty``, ``unclosed_think``, ``bare_letter``, ``declared``,
``mentioned``, ``line``, ``unique_letter``, ``option_text``; unparsed: ``ambiguous_letters`` or ``no_letter``):

1. the last ``<answer>...</answer>`` block, if any, is the only text considered; otherwise the text after the last
   ``</think>`` (an unclosed ``<think>`` leaves nothing to read: unparsed). With ``ChoiceRules.spaced_tags`` the tags
   may hold whitespace (``< answer >``, ``< / answer >``); with ``drop_restated_options``, lines that repeat two or
   more different options verbatim (a restated option list) are removed;
2. a response that is a single letter in any case ("b", "(c)", "d.") is that letter (``bare_letter``; with
   ``bare_letter_is_final`` a lone letter that is not a valid one ends the ladder unparsed);
3. a declaration (``ChoiceRules.declaration``): "answer is (B)", "Answer: B", "I choose B", ...;
4. a mention of an option (``ChoiceRules.mention``, None to skip the step): "option B", "choice: C";
5. a line that is just a letter, "(B)", "B." or that starts with "B." / "B)" / "B:" / "(B)";
6. standalone capital letters among the valid ones, if exactly one distinct letter occurs ("A" used as an article,
   "A person ...", is not a letter answer; with ``articles_after_declarations`` the same holds for steps 3 and 4:
   "the answer is a person ..." declares nothing);
7. the response equal to exactly one option's text (case and punctuation ignored; an empty text equals none).

:data:`CORE_RULES` (the default of :func:`extract_choice`) is the harness's own configuration, ``rules:mcq@1``.
A benchmark with other conventions passes its own :class:`ChoiceRules` (``dataclasses.replace(CORE_RULES, ...)``).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .records import Extraction

METHOD = "rules:mcq@1"

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff"))
#: "A"/"a" used as an article: followed by a lower-case word that is not what follows a letter answer
_ARTICLE = re.compile(r"[Aa]\s+(?!(?:is|was|would|should|seems|fits|matches|because|since|as|and|or)\b)[a-z]")
#: (answer block, end of reasoning, start of reasoning): exact tags, or tags that may hold whitespace
_TAGS = {
    False: (re.compile(r"<answer>(.*?)</answer>", re.S | re.I), re.compile(r"</think>", re.I),
            re.compile(r"<think>", re.I)),
    True: (re.compile(r"<\s*answer\s*>(.*?)<\s*/\s*answer\s*>", re.S | re.I), re.compile(r"</\s*think\s*>", re.I),
           re.compile(r"<\s*think\s*>", re.I)),
}  # fmt: skip


def _naming(words: str) -> str:
    """The text before a letter named by one of ``words`` (a regex alternation): the word, then any of "is",
    "would be", ":", "=", "-", an optional "option" and brackets or emphasis (``answer is: (B``, ``choose **C``)."""
    return rf"(?:{words})(?:\s*(?:is|would be|:|=|-))*\s*(?:option\s*)?[\(\[\*\s]*"


#: a response that is one letter: ``b``, ``(c)``, ``d.``, ``**B**``; the letter is group ``x``
BARE_LETTER = r"[\s\*\(\[]*(?P<x>[A-Za-z])[\)\]\.\s\*]*"
#: the core's declarations: "the answer is", "Answer:", "I choose", "select", "pick"
DECLARATION = _naming("answer|choose|select|pick")
#: the core's mentions of an option: "option B", "choice: C"
MENTION = _naming("option|choice")


@dataclass(frozen=True)
class ChoiceRules:
    """The settings of :func:`extract_choice`'s ladder (see the module docstring); defaults are the core's rules.

    Patterns are regular expressions (strings): ``bare_letter`` must match a whole answer and name its letter
    ``x``; ``declaration`` and ``mention`` match the text right before a letter, case-insensitively.
    """

    #: ``Extraction.method`` of the results
    method: str = METHOD
    #: the answer and reasoning tags may hold whitespace (``< answer >``)
    spaced_tags: bool = False
    #: remove lines that restate two or more different options verbatim before reading the answer
    drop_restated_options: bool = False
    bare_letter: str = BARE_LETTER
    #: a lone letter that is not a valid one ends the ladder unparsed (else the later steps read the text)
    bare_letter_is_final: bool = False
    declaration: str = DECLARATION
    #: None: a mention of an option ("option A is wrong") is no evidence at all
    mention: str | None = MENTION
    #: a declared or mentioned "a"/"A" followed by a lower-case word is an article ("the answer is a person")
    articles_after_declarations: bool = False


CORE_RULES = ChoiceRules()


def visible_text(text: str, spaced_tags: bool = False) -> str | None:
    """The part of a response that holds the answer: the last ``<answer>`` block, else what follows the last
    ``</think>``; None when the response never closed its reasoning. ``spaced_tags``: tags may hold whitespace."""
    answer, think_end, think_start = _TAGS[spaced_tags]
    answers = answer.findall(text)
    if answers:
        return answers[-1]
    closes = list(think_end.finditer(text))  # a regex: lower() may change the string's length
    if closes:
        return text[closes[-1].end() :]
    if think_start.search(text):
        return None
    return text


def _normalise(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def option_text(option: str) -> str:
    """'A. Left' -> 'Left' (options may or may not carry their letter)."""
    return re.sub(r"^\s*\(?[A-Z]\)?[.:)]\s*", "", option)


def _drop_restated_options(text: str, options: list[str]) -> str:
    """``text`` without the lines that repeat an option verbatim, when two or more different ones are repeated."""
    known = {_normalise(o) for o in options}
    lines = text.splitlines()
    if len({_normalise(line) for line in lines} & known) < 2:
        return text
    return "\n".join(line for line in lines if _normalise(line) not in known)


def extract_choice(
    response: str | None, letters: list[str], options: list[str] | None = None, rules: ChoiceRules = CORE_RULES
) -> Extraction:
    """Read an option letter out of ``response``; ``letters`` are the valid ones, ``options`` their texts."""

    def decided(answer: str | None, rule: str) -> Extraction:
        return Extraction(answer=answer, parsed=answer is not None, method=rules.method, detail={"rule": rule})

    if not response or not response.strip():
        return decided(None, "empty")
    text = visible_text(response.translate(_ZERO_WIDTH), rules.spaced_tags)
    if text is None:
        return decided(None, "unclosed_think")
    if rules.drop_restated_options and options:
        text = _drop_restated_options(text, options)
    bare = re.fullmatch(rules.bare_letter, text)
    if bare:
        letter = bare.group("x").upper()
        if letter in letters:
            return decided(letter, "bare_letter")
        if rules.bare_letter_is_final:
            return decided(None, "bare_letter")
    cls = "[" + "".join(re.escape(x) for x in letters) + "]"

    def is_article(match: re.Match) -> bool:
        return _ARTICLE.match(text, match.start("x")) is not None

    # a declaration ("the answer is B", "I choose C") outranks a mere mention of an option ("option A is wrong")
    for rule, before in (("declared", rules.declaration), ("mentioned", rules.mention)):
        if before is None:
            continue
        found = [
            m.group("x").upper()
            for m in re.finditer(rf"(?:{before})(?P<x>{cls})(?![A-Za-z])", text, re.I)
            if not (rules.articles_after_declarations and is_article(m))
        ]
        if found:
            return decided(found[-1], rule)
    lines = re.findall(rf"^[\s\*\#>\-]*[\(\[]?({cls})[\)\]]?(?:[.:)\]]|\s*$)", text, re.M)
    if lines:
        return decided(lines[-1], "line")
    tokens = {m.group("x") for m in re.finditer(rf"(?<![A-Za-z])(?P<x>{cls})(?![A-Za-z])", text) if not is_article(m)}
    if len(tokens) == 1:
        return decided(tokens.pop(), "unique_letter")
    if options:
        target = _normalise(text)
        hits = [letter for letter, opt in zip(letters, options) if _normalise(option_text(opt)) == target]
        if len(hits) == 1 and target:
            return decided(hits[0], "option_text")
    return decided(None, "ambiguous_letters" if tokens else "no_letter")
