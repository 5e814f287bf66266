"""The three curation replies, read strictly: the motion verdict, the agent and object classes, the video verdict.

The original's readings (TencentARC/DSR_Suite) and what is fixed here:

* caption motion filter (``data/deepseek_motion.py``): the last line of the content, accepted when
  ``"no" not in line and "yes" in line``. Here the last non-empty line, yes/no as whole words
  (:func:`~..replies.yes_no`), both or neither is unparseable.
* agent and object classes (``data/deepseek_agent.py``, ``split_output``): exactly two non-empty lines, kept raw;
  the generators later split them with ``lower().split('.')`` without strip or empty removal, so ``person. dog.``
  becomes ``["person", " dog", ""]``. Here each line is split on dots (and commas, which no class name contains),
  stripped, lower-cased, emptied of duplicates and blanks; ``None`` is no class. The raw lines are kept too.
* video filter (``data/gemini_motion.py``): ``split("\\n")`` must give exactly two lines (an empty line counts),
  ``"no" in line0`` skips, ``"yes" in line0`` files the video under ``line1`` used as a dict key, so a category
  written with other spacing or markup raises KeyError, which a bare ``except`` swallows. Here the verdict and the
  category are the last two non-empty lines, the category matched to the six names ignoring case, markup and
  ``and``/``&``; a *no* needs no category; a *yes* without one of the six is unparseable.
"""

from __future__ import annotations

import re

from ..replies import Unparseable, content_lines, plain, yes_no

LIST_LABEL = re.compile(r"^(agents?|objects?|classes|foreground objects?)\s*:\s*", re.IGNORECASE)
NONE_WORDS = {"none", "no agent", "no agents", "no object", "no objects", "n/a"}
CATEGORY_LABEL = re.compile(r"^(the\s+)?(video\s+)?category(\s+of the video)?(\s+is)?\s*[:\-]?\s*", re.IGNORECASE)


def motion_verdict(text: str) -> bool:
    """The caption motion filter's verdict: the last non-empty line, yes or no."""
    lines = content_lines(text)
    if not lines:
        raise Unparseable("empty", "no text in the reply")
    return yes_no(lines[-1])


def class_list(line: str) -> list[str]:
    """The classes of one line: split on dots and commas, stripped, lower-case, no blanks or repeats; ``None`` is
    an empty list."""
    text = LIST_LABEL.sub("", plain(line))
    if text.strip(" .").lower() in NONE_WORDS:
        return []
    names = (re.sub(r"\s+", " ", name).strip().lower() for name in re.split(r"[.,;]", text))
    return list(dict.fromkeys(name for name in names if name and name not in NONE_WORDS))


def classes_reply(text: str) -> dict:
    """Agent and object classes: exactly two non-empty lines (the original's rule), read by :func:`class_list`."""
    lines = content_lines(text)
    if len(lines) != 2:
        raise Unparseable("line_count", f"{len(lines)} non-empty lines, expected 2 (agents, objects)")
    return {"agent_line": lines[0], "object_line": lines[1], "agents": class_list(lines[0]),
            "objects": class_list(lines[1])}  # fmt: skip


def _normal(text: str) -> str:
    text = plain(text).lower().replace("&", " and ")
    return " ".join(re.sub(r"[^a-z]+", " ", text).split())


def match_category(line: str, categories: list[str]) -> str | None:
    """The category a line names: equal to one of ``categories`` ignoring case, markup, punctuation and
    ``and``/``&``, else the only one it contains; None otherwise."""
    text = _normal(CATEGORY_LABEL.sub("", plain(line)))
    normal = {_normal(c): c for c in categories}
    if text in normal:
        return normal[text]
    contained = [c for n, c in normal.items() if re.search(rf"\b{re.escape(n)}\b", text)]
    return contained[0] if len(contained) == 1 else None


def video_verdict(text: str, categories: list[str]) -> dict:
    """The video filter's verdict and category: ``{"keep": bool, "category": str | None}``."""
    lines = content_lines(text)
    if not lines:
        raise Unparseable("empty", "no text in the reply")
    category = match_category(lines[-1], categories) if len(lines) > 1 else None
    if category is not None:
        return {"keep": yes_no(lines[-2]), "category": category}
    try:
        keep, other = yes_no(lines[-1]), None  # the verdict is the last line: no category was written
    except Unparseable:
        if len(lines) == 1:
            raise
        keep, other = yes_no(lines[-2]), lines[-1]
    if keep and other is None:
        raise Unparseable("no_category", "yes, without a category line")
    if keep:
        raise Unparseable("unknown_category", f"{other[:120]!r} is none of {categories}")
    return {"keep": False, "category": None}


def class_text(agents: list[str], raw: str | None, style: str) -> str:
    """The classes as the video filter's prompt shows them: ``clean`` joins the parsed classes with ``", "``
    (``none`` for no class); ``original`` is the original's ``raw.lower().replace(".", ", ")`` of the raw line,
    and ``[]`` for a missing object line (``gemini_motion.py``)."""
    if style == "original":
        return (
            "[]" if raw is None or not raw.strip() or raw.strip().lower() == "none" else raw.lower().replace(".", ", ")
        )
    return ", ".join(agents) if agents else "none"
