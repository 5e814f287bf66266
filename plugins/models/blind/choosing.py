"""How a blind baseline turns per-option scores into an answer: the best-scored letter, ties broken by a seeded draw.

A tie is broken uniformly at random with the sample's seed (``ties="random"``, the default), so that a baseline's
advantage over chance measures its signal alone and never the distribution of correct letters; ``ties="first"``
takes the first tied letter (it then also exploits a letter bias).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from vdpm_harness import PreparedRequest, Response

Ties = Literal["random", "first"]


def choose(prepared: PreparedRequest, scores: Sequence, ties: Ties = "random") -> Response:
    """The letter of the highest score (scores compare as Python values: numbers or tuples), one per option."""
    request = prepared.request
    letters = request.choices
    if not letters or len(letters) != len(request.options) or len(scores) != len(letters):
        return Response(sample_id=request.sample_id, error="a blind baseline needs the option texts of every choice")
    best = max(scores)
    tied = [letter for letter, score in zip(letters, scores) if score == best]
    letter = tied[0] if ties == "first" else random.Random(prepared.seed).choice(tied)
    return Response(sample_id=request.sample_id, text=letter)
