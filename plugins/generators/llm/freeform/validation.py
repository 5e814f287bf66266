"""Reading and validating the free-form question the LLM wrote, which the original never does.

The original (TencentARC/DSR_Suite, ``data/qa_nontemp.py``) splits the reply on newlines, drops empty strings and
re-posts until there are exactly six; then line 0 is the question, lines 1-4 the options and line 5 the "symbol of
the correct answer", all taken as they are: options may or may not carry letters, the last line may be anything,
options may repeat. Here the six lines must also make a well-formed question, else the reply is unparseable (asked
again, then recorded as such):

* ``line_count``: exactly six non-empty lines (the original's rule; a reasoning block is removed first);
* options: a leading ``A.``/``(A)``/``A)``/``A:`` letter is stripped, and when present it is the letter of the line's
  place (``option_order``); no option is empty (``empty_option``); the four are distinct ignoring case, spaces and a
  final full stop (``repeated_option``);
* ``bad_letter``: the last line is one letter A-D (``A``, ``(A)``, ``Answer: A``, ``**A**``, or the letter followed by
  exactly that option's text);
* boxes: the question names at least one object by its box (``no_box``); every ``[x1,y1,x2,y2]`` in the question or
  the options is the box of one of the trajectories' objects or of the observer (``unknown_box``); every mention of an
  object's class in the question is followed by its box (``unnamed_object``), as the prompt asks ("All objects must
  be refered with their bounding box coordinates given at the beginning");
* ``quantitative``: no number (times in seconds and boxes aside), unit or coordinate axis in the question or the
  options ("The question should not be quantitative and related to accurate 3D coordinates");
* ``perspective``: the question does not describe a perspective ("The question should not include description of
  perspective"); the record adds the observer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..replies import Unparseable, content_lines, plain

LETTERS = "ABCD"
BOX = re.compile(r"\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")
TIME = re.compile(r"\b\d+(?:\.\d+)?\s*(?:s|sec|secs|seconds?)\b", re.IGNORECASE)
OPTION_LETTER = re.compile(r"^\(?([A-Da-d])\s*[.):]\s*(.*)$")
BULLET = re.compile(r"^[-\u2022]\s+")
QUESTION_LABEL = re.compile(r"^(question|q)\s*\d*\s*[:.]\s*", re.IGNORECASE)
ANSWER_LABEL = re.compile(r"^(the\s+)?(correct\s+)?(answer|option|symbol)(\s+is)?\s*[:\-]?\s*", re.IGNORECASE)
UNITS = re.compile(r"\b(meters?|metres?|centimet(?:er|re)s?|cm|mm|km|m/s|units?|degrees?)\b", re.IGNORECASE)
AXES = re.compile(r"\b([xyz][- ]?(axis|axes|coordinates?|values?)|coordinates? \()", re.IGNORECASE)
#: how far after an object's class its box may start ("... with initial bounding box coordinates [")
BOX_REACH = 60


@dataclass
class FreeQuestion:
    """A validated question: the question line, the four option texts (no letters) and the correct letter."""

    question: str
    options: dict[str, str]
    correct: str


def _key(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".")


def box_key(numbers) -> str:
    return ",".join(str(int(n)) for n in numbers)


def option_text(line: str, letter: str) -> str:
    text = BULLET.sub("", plain(line))
    match = OPTION_LETTER.match(text)
    if match:
        if match.group(1).upper() != letter:
            raise Unparseable("option_order", f"option {letter} is labelled {match.group(1)!r}: {line[:80]!r}")
        text = match.group(2)
    if not text.strip():
        raise Unparseable("empty_option", f"option {letter} is empty")
    return text.strip()


def correct_letter(line: str, options: dict[str, str]) -> str:
    text = ANSWER_LABEL.sub("", plain(line)).strip()
    match = re.fullmatch(r"\(?([A-D])\)?(?:\s*[.):]?\s*(.*))?", text, flags=re.IGNORECASE)
    if match and (match.group(1).isupper() or not match.group(2)):
        letter, rest = match.group(1).upper(), (match.group(2) or "").strip()
        if not rest or _key(rest) == _key(options[letter]):
            return letter
    raise Unparseable("bad_letter", f"the last line is not one letter A-D: {line[:80]!r}")


def question_lines(text: str) -> tuple[str, dict[str, str], str]:
    """The question line, the option texts and the correct letter of a reply (shape only)."""
    lines = content_lines(text)
    if len(lines) != 6:
        raise Unparseable("line_count", f"{len(lines)} non-empty lines, expected 6 (question, 4 options, letter)")
    question = QUESTION_LABEL.sub("", plain(lines[0])).strip()
    options = {letter: option_text(line, letter) for letter, line in zip(LETTERS, lines[1:5])}
    if len({_key(t) for t in options.values()}) < 4:
        raise Unparseable("repeated_option", f"the options are not four distinct texts: {list(options.values())}")
    return question, options, correct_letter(lines[5], options)


def check_boxes(question: str, options: dict[str, str], boxes: set[str], labels: set[str]) -> None:
    mentioned = [box_key(m.groups()) for text in (question, *options.values()) for m in BOX.finditer(text)]
    unknown = [box for box in mentioned if box not in boxes]
    if unknown:
        raise Unparseable("unknown_box", f"[{unknown[0]}] is the box of none of the objects")
    if not any(box_key(m.groups()) in boxes for m in BOX.finditer(question)):
        raise Unparseable("no_box", "the question names no object by its bounding box")
    for label in sorted(labels, key=len, reverse=True):
        for match in re.finditer(rf"\b{re.escape(label)}\b", question, flags=re.IGNORECASE):
            after = question[match.end() : match.end() + BOX_REACH]
            if "[" not in after or "]" in after.split("[", 1)[0]:
                raise Unparseable("unnamed_object", f"'{label}' is named without its bounding box")


def check_quantities(question: str, options: dict[str, str]) -> None:
    for text in (question, *options.values()):
        bare = TIME.sub(" ", BOX.sub(" ", text))
        found = re.search(r"\d", bare) or UNITS.search(bare) or AXES.search(bare)
        if found:
            raise Unparseable("quantitative", f"{found.group(0)!r} in {text[:80]!r}")


def read_question(text: str, boxes: set[str], labels: set[str]) -> FreeQuestion:
    """Validate a reply against the rules of the module docstring; ``boxes`` are the known boxes as ``"x1,y1,x2,y2"``
    and ``labels`` the classes of the named objects."""
    question, options, correct = question_lines(text)
    check_boxes(question, options, boxes, labels)
    check_quantities(question, options)
    if "perspective" in question.lower():
        raise Unparseable("perspective", f"the question describes a perspective: {question[:80]!r}")
    return FreeQuestion(question, options, correct)


def read_letter(text: str) -> str:
    """The one letter A-D of a verification reply (its last non-empty line)."""
    lines = content_lines(text)
    if not lines:
        raise Unparseable("empty", "no text in the reply")
    match = re.fullmatch(r"\(?([A-D])\)?[.):]?", ANSWER_LABEL.sub("", plain(lines[-1])).strip())
    if not match:
        raise Unparseable("bad_letter", f"not one letter A-D: {lines[-1][:80]!r}")
    return match.group(1)
