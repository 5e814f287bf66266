"""Reading an LLM's reply: the answer text without a reasoning block, its lines, and yes/no read as whole words.

The DSR Suite's scripts test ``"no" not in line and "yes" in line`` on raw substrings (TencentARC/DSR_Suite,
``data/deepseek_motion.py`` and ``data/gemini_motion.py``), so "not", "none", "know" or "cannot" read as *no* and
"eyes" as *yes*. Here a line is a yes when ``yes`` is its only answer word and a no when ``no`` is; a line with both or
neither is :class:`Unparseable`, which the caller retries and finally records, never guesses.
"""

from __future__ import annotations

import re

#: a reasoning model's thoughts, when the server leaves them in the content (DeepSeek-R1 without a reasoning parser)
THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
MARKUP = re.compile(r"[*_`#>]+")


class Unparseable(ValueError):
    """A reply that does not have the shape the prompt asked for: ``reason`` is a short code (counted in the
    statistics), the message ``"<reason>: <detail>"``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def answer_text(text: str) -> str:
    """The reply without its reasoning: ``<think>...</think>`` blocks removed, and everything up to a dangling
    ``</think>`` (a chat template that opens the block in the prompt) dropped."""
    text = THINK.sub("", text)
    if "</think>" in text.lower():
        text = text[text.lower().rindex("</think>") + len("</think>") :]
    return text


def content_lines(text: str) -> list[str]:
    """The non-empty lines of the answer, stripped (the original drops empty lines only, ``split_output`` of
    ``data/deepseek_agent.py``)."""
    return [line.strip() for line in answer_text(text).split("\n") if line.strip()]


def plain(line: str) -> str:
    """A line without markdown emphasis, code ticks, heading or quote marks."""
    return MARKUP.sub("", line).strip()


def yes_no(line: str) -> bool:
    """True for a line whose only answer word is ``yes``, False for ``no``; :class:`Unparseable` otherwise."""
    words = {word.lower() for word in YES_NO.findall(plain(line))}
    if words == {"yes"}:
        return True
    if words == {"no"}:
        return False
    if words:
        raise Unparseable("ambiguous_yes_no", f"both yes and no in {line[:120]!r}")
    raise Unparseable("no_yes_no", f"no yes/no answer in {line[:120]!r}")


def reason(problem: str | None) -> str | None:
    """The reason code of a recorded problem (``"<reason>: <detail>"``)."""
    return None if problem is None else problem.split(":", 1)[0]
