"""Rule-based answer extraction for multiple-choice questions.

The rules restrict matches to the valid option letters and prefer the *last* declared answer, after any reasoning
block (lmms-eval #1434 shows what goes wrong otherwise). An unparsed response stays unparsed: it is counted wrong and
reported in ``unparsed_rate``; there is never a random fallback.

Order of evidence, strongest first; within one kind of evidence the last occurrence wins:

1. the last ``<answer>...</answer>`` block, if any, is the only text considered;
2. otherwise the text after the last ``</think>`` (an unclosed ``<think>`` leaves nothing to read: unparsed);
   a response that is a single letter in any case ("b", "(c)", "d.") is that letter;
3. an explicit declaration: "answer is (B)", "Answer: B", "correct option: B", "I choose B", ...;
4. a line that is just a letter, "(B)", "B." or that starts with "B." / "B)" / "B:" / "(B)";
5. standalone capital letters among the valid ones, if exactly one distinct letter occurs ("A" used as an article,
   "A person ...", is not a letter answer);
6. the response equal to exactly one option's text (case and punctuation ignored).
"""

from __future__ import annotations

import re
import string

from .records import Extraction

METHOD = "rules:mcq@1"

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff"))
_ARTICLE_FOLLOWERS = re.compile(r"A\s+(?!(?:is|was|would|should|seems|fits|matches|because|since|as|and|or)\b)[a-z]")


def _letters_class(letters: list[str]) -> str:
    return "[" + "".join(re.escape(x) for x in letters) + "]"


def _last(pattern: re.Pattern, text: str, group: str = "x") -> str | None:
    found = [m.group(group) for m in pattern.finditer(text)]
    return found[-1].upper() if found else None


def visible_text(text: str) -> str | None:
    """The part of a response that holds the answer: the last ``<answer>`` block, else what follows the last
    ``</think>``; None when the response never closed its reasoning."""
    answers = re.findall(r"<answer>(.*?)</answer>", text, flags=re.S | re.I)
    if answers:
        return answers[-1]
    closes = list(re.finditer(r"</think>", text, flags=re.I))  # a regex: lower() may change the string's length
    if closes:
        return text[closes[-1].end() :]
    if re.search(r"<think>", text, flags=re.I):
        return None
    return text


def _normalise(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def option_text(option: str) -> str:
    """'A. Left' -> 'Left' (options may or may not carry their letter)."""
    return re.sub(r"^\s*\(?[A-Z]\)?[.:)]\s*", "", option)


def extract_choice(response: str | None, letters: list[str], options: list[str] | None = None) -> Extraction:
    """Read an option letter out of ``response``; ``letters`` are the valid ones, ``options`` their texts."""
    if not response or not response.strip():
        return Extraction(answer=None, parsed=False, method=METHOD, detail={"rule": "empty"})
    text = visible_text(response.translate(_ZERO_WIDTH))
    if text is None:
        return Extraction(answer=None, parsed=False, method=METHOD, detail={"rule": "unclosed_think"})
    bare = re.fullmatch(r"[\s\*\(\[]*([A-Za-z])[\)\]\.\s\*]*", text)  # "b", "(c)", "d." alone
    if bare and bare.group(1).upper() in letters:
        return Extraction(answer=bare.group(1).upper(), parsed=True, method=METHOD, detail={"rule": "bare_letter"})
    cls = _letters_class(letters)

    def naming(words: str) -> re.Pattern:
        return re.compile(
            rf"(?:{words})(?:\s*(?:is|would be|:|=|-))*\s*(?:option\s*)?[\(\[\*\s]*(?P<x>{cls})(?![A-Za-z])", re.I
        )

    # a declaration ("the answer is B", "I choose C") outranks a mere mention of an option ("option A is wrong")
    rules = [
        ("declared", naming("answer|choose|select|pick")),
        ("mentioned", naming("option|choice")),
        ("line", re.compile(rf"^[\s\*\#>\-]*[\(\[]?(?P<x>{cls})[\)\]]?(?:[.:)\]]|\s*$)", re.M)),
    ]
    for rule, pattern in rules:
        letter = _last(pattern, text)
        if letter is not None and letter in letters:
            return Extraction(answer=letter, parsed=True, method=METHOD, detail={"rule": rule})
    tokens = {
        m.group("x")
        for m in re.finditer(rf"(?<![A-Za-z])(?P<x>{cls})(?![A-Za-z])", text)
        if not (m.group("x") == "A" and _ARTICLE_FOLLOWERS.match(text, m.start()))
    }
    if len(tokens) == 1:
        return Extraction(answer=tokens.pop(), parsed=True, method=METHOD, detail={"rule": "unique_letter"})
    if options:
        target = _normalise(text)
        hits = [letter for letter, opt in zip(letters, options) if _normalise(option_text(opt)) == target]
        if len(hits) == 1:
            return Extraction(answer=hits[0], parsed=True, method=METHOD, detail={"rule": "option_text"})
    rule = "ambiguous_letters" if tokens else "no_letter"
    return Extraction(answer=None, parsed=False, method=METHOD, detail={"rule": rule})
