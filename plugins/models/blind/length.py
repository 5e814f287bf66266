"""``blind-shortest`` and ``blind-longest``: the option with the fewest or the most items or characters.

Template distractors that describe random data are longer or shorter than true answers of smooth motion: in the
original DSR template generator (TencentARC/DSR_Suite, ``data/qa_temp.py``) a distractor keeps a random number of
items within 3 of the answer's, and exact geometry's answers are short, so the shortest option is often the answer.
These two baselines measure such a length signal on any multiple-choice benchmark.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from vdpm_harness import Model, PreparedRequest, Response, Strict, option_text

from .choosing import Ties, choose

_NUMBERED = re.compile(r"\(\d+\)")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def option_items(text: str) -> int:
    """Items of an option: its numbered ``(k)`` items, else its sentences (at least 1). ``"(1) Front. (2) Left."``
    has 2, ``"The latter is always faster."`` and ``"left"`` have 1."""
    numbered = len(_NUMBERED.findall(text))
    return numbered or max(1, len(_SENTENCE_END.findall(text.strip())))


def option_length(text: str, unit: str) -> int:
    """The length of an option's text (its letter prefix removed) in ``items`` or ``characters``."""
    text = option_text(text).strip()
    return option_items(text) if unit == "items" else len(text)


class LengthBaseline(Model):
    """Picks the option of extreme length; ``sign`` is -1 for the shortest, +1 for the longest."""

    needs_frames = False
    text_only = True
    sign = -1

    class Options(Strict):
        unit: Literal["items", "characters"] = Field(
            default="items", description="An option's length: numbered items (else sentences) or characters."
        )
        ties: Ties = Field(default="random", description="Equal lengths: a seeded draw among them, or the first.")
        batch_size: int = Field(default=256, ge=1)

    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        unit, ties = self.options.unit, self.options.ties
        return [choose(p, [self.sign * option_length(o, unit) for o in p.request.options], ties) for p in batch]


class BlindShortest(LengthBaseline):
    """The option with the fewest items (or characters)."""

    sign = -1


class BlindLongest(LengthBaseline):
    """The option with the most items (or characters)."""

    sign = 1
