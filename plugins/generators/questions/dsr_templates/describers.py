"""The answer describers of the DSR templates and the random distractor texts (TencentARC/DSR_Suite, ``data/qa_temp.py``
and ``data/template.py``; the paper, arXiv 2512.20557).

Every answer is a run of numbered items ``"(k) <text>."`` joined by single spaces:

* :func:`describe_dist_runs` turns a series of distances or scalar speeds into runs of "Keep nearly constant",
  "Become larger" and "Become smaller";
* :func:`describe_spd_comp` compares two speed series sample by sample ("The former is faster", ...);
* :func:`describe_dir` codes each 3-vector of an x-forward, y-left, z-up frame as a combination of
  {Front, Behind} x {Left, Right} x {Above, Below} and merges equal consecutive codes.

The outputs are byte-exact reproductions of the original functions with their default thresholds (the released
options are made of them), with two repairs listed in ``docs/dsr_templates.md``: a zero denominator is a ratio of
infinity instead of a crash (the original dies on ``0/0`` in the very case its "both near zero" test handles), and a
vector shorter than :data:`ZERO_NORM` has no direction (:class:`DescriberError`) instead of a division by zero or a
direction made of rounding noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Default thresholds of the original: +-20 % ratios, 0.1 "near zero" (Pi3 units), 0.3 direction dead zone.
RATIO_EPSILON = 0.2
SMALL = 0.1
DIRECTION_EPSILON = 0.3
#: Vectors shorter than this have no direction (numerical zero: a static point seen from a static camera).
ZERO_NORM = 1e-9

_AXIS_WORDS = (("Front", "Behind"), ("Left", "Right"), ("Above", "Below"))


class DescriberError(ValueError):
    """The series has no description (the original's RuntimeWarning, which drops the question)."""


def _ratio(a: float, b: float) -> float:
    """``a / b`` with a zero denominator read as +infinity (or 1 for ``0 / 0``), never an exception."""
    if b == 0:
        return 1.0 if a == 0 else math.copysign(math.inf, a)
    return a / b


def describe_dist_runs(values: Sequence[float], epsilon: float = RATIO_EPSILON, small: float = SMALL) -> str:
    """Runs of a distance or speed series (``describe_dist_runs`` of the original).

    A "constant" run is measured against its first sample (ratio within ``1 +- epsilon``, or both below ``small``)
    and the next run starts at the sample that breaks it; increasing and decreasing runs use consecutive ratios and
    hand their last sample to the next run (a decreasing run that falls below ``small`` does not).
    """
    d = [float(v) for v in values]
    n = len(d)
    low, high = 1 - epsilon, 1 + epsilon

    def steady(end: int, start: int) -> bool:
        return low <= _ratio(d[end], d[start]) <= high or (d[end] < small and d[start] < small)

    items: list[str] = []
    start = 0
    while start < n - 1:
        end = start + 1
        if steady(end, start):
            while end < n and steady(end, start):
                end += 1
            if end == n:
                text = "Keep nearly constant."
            elif _ratio(d[end], d[start]) < low:
                text = "Keep nearly constant and then become smaller."
            else:
                text = "Keep nearly constant and then become larger."
        elif _ratio(d[end], d[end - 1]) > high:
            while end < n and _ratio(d[end], d[end - 1]) > high:
                end += 1
            text = "Become larger."
            if end != n:
                end -= 1
        else:
            while end < n and _ratio(d[end], d[end - 1]) < low and d[end] >= small:
                end += 1
            text = "Become smaller."
            if end != n and d[end] >= small:
                end -= 1
        items.append(f"({len(items) + 1}) {text}")
        start = end
    return " ".join(items)


def speed_sign(s1: float, s2: float, epsilon: float = RATIO_EPSILON, small: float = SMALL) -> int:
    """``_sign`` of the original: 0 if both are below ``small``, +1 if ``s1/s2 > 1+eps``, -1 if below its inverse."""
    if s1 < small and s2 < small:
        return 0
    ratio = _ratio(s1, s2)
    if ratio > 1 + epsilon:
        return 1
    if ratio < 1 / (1 + epsilon):
        return -1
    return 0


def describe_spd_comp(
    speeds_1: Sequence[float],
    speeds_2: Sequence[float],
    epsilon: float = RATIO_EPSILON,
    small: float = SMALL,
    number_every_item: bool = False,
) -> str:
    """Runs of equal speed-comparison signs (``describe_spd_comp`` of the original).

    One run over everything says "always"; the original writes ``The latter is always faster.`` without its
    ``(1)`` prefix, which ``number_every_item=True`` adds.
    """
    signs = [speed_sign(float(a), float(b), epsilon, small) for a, b in zip(speeds_1, speeds_2, strict=True)]
    n = len(signs)
    items: list[str] = []
    i = 0
    while i < n:
        j = i + 1
        while j < n and signs[j] == signs[i]:
            j += 1
        k = len(items) + 1
        if i == 0 and j == n:
            text = {1: "The former is always faster.", 0: "Their speed is nearly the same.",
                    -1: "The latter is always faster."}[signs[i]]  # fmt: skip
            items.append(text if signs[i] == -1 and not number_every_item else f"({k}) {text}")
        else:
            text = {1: "The former is faster.", 0: "Nearly the same.", -1: "The latter is faster."}[signs[i]]
            items.append(f"({k}) {text}")
        i = j
    return " ".join(items)


def direction_code(vector: Sequence[float], epsilon: float = DIRECTION_EPSILON) -> str:
    """``_direction``: per axis of the unit vector, ``"2"`` above ``epsilon``, ``"0"`` below ``-epsilon``, else
    ``"1"``; a vector shorter than :data:`ZERO_NORM` raises :class:`DescriberError`."""
    v = np.asarray(vector, float)
    norm = float(np.sqrt(np.sum(v**2)))
    if not math.isfinite(norm) or norm < ZERO_NORM:
        raise DescriberError(f"the vector {v.tolist()} has no direction (zero length)")
    return "".join("2" if c > epsilon else "0" if c < -epsilon else "1" for c in v / norm)


def direction_text(code: str) -> str:
    """``_direction_trans``: ``"210"`` -> ``"Front|Below"`` (labels of the axes that are not neutral)."""
    return "|".join(words[0] if c == "2" else words[1] for c, words in zip(code, _AXIS_WORDS) if c != "1")


def describe_dir(vectors: Sequence[Sequence[float]], epsilon: float = DIRECTION_EPSILON) -> str:
    """Runs of equal direction codes of x-forward, y-left, z-up vectors (``describe_dir`` of the original)."""
    codes = [direction_code(v, epsilon) for v in vectors]
    items: list[str] = []
    i = 0
    while i < len(codes):
        j = i + 1
        while j < len(codes) and codes[j] == codes[i]:
            j += 1
        items.append(f"({len(items) + 1}) {direction_text(codes[i])}.")
        i = j
    return " ".join(items)


def n_items(answer: str) -> int:
    """``len_answer`` of the original: ``len(answer.split(".")) - 1``."""
    return len(answer.split(".")) - 1


def truncate_items(description: str, answer_items: int, rng: np.random.Generator) -> str:
    """A distractor's text: the first ``len_tmp`` items of a random description (the original's distractor rule).

    With ``W`` items in the description and ``L`` in the answer, ``len_tmp`` is uniform over
    ``[1 if W <= L-3 else max(1, L-3), min(L+3, W)]``.
    """
    parts = description.split(".")
    available = len(parts) - 1
    low = 1 if available <= answer_items - 3 else max(1, answer_items - 3)
    high = min(answer_items + 3, available)
    keep = int(rng.integers(low, high + 1))
    return ".".join(parts[:keep]) + "."
