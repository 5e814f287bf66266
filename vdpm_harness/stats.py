"""Aggregate statistics: means with 95% intervals that respect the clustering by video, and the accuracy summary of a
benchmark.

Benchmarks such as DSR, VLM4D and 4D-Bench ask several questions about the same clip, so answers about one video are
not independent. Standard errors are therefore clustered by ``video_id`` (the CR1 sandwich estimator); with one
question per video they reduce to the usual standard error of a mean.

Intervals (:func:`clustered_mean`):

* a **proportion** (every value 0 or 1, e.g. accuracy) gets the Wilson score interval (Wilson, E. B. 1927,
  "Probable inference, the law of succession, and statistical inference", JASA 22(158):209-212) computed on the
  effective sample size ``n / deff``, where ``deff`` is the design effect of the clustering (Kish, L. 1965, *Survey
  Sampling*): the clustered (CR1) variance of the mean over the binomial variance ``p (1 - p) / n``. As in Korn, E. L.
  & Graubard, B. I. (1998), "Confidence intervals for proportions with small expected number of positive counts
  estimated from survey data", Survey Methodology 24(2):193-201, ``deff`` is taken as at least 1 (clustering never
  narrows the interval below the independent-sample one) and as 1 when ``p`` is 0 or 1 (no variance is observed
  there). Unlike the Wald interval, which collapses to ``0.0 ± 0.0`` at 0 of n, it stays inside [0, 1] and is
  honest at the boundaries and for small n: at 0 of 15 its upper bound is 20.4% (the exact Clopper-Pearson bound is
  21.8%).
* any **other mean** (BLEU, CIDEr, a judge's 1-5 score) gets the Wald interval ``mean ± 1.96 SE`` with the CR1
  standard error, clipped to the metric's bounds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from statistics import NormalDist

from .records import MetricValue, Score

#: Normal quantile of the 95% intervals, 1.959963984540054 (the 0.975 quantile of the standard normal).
Z_95 = NormalDist().inv_cdf(0.975)

#: Category key of the samples that have no category.
UNCATEGORIZED = "uncategorized"

#: What the report headers say about the intervals (markdown and xlsx).
INTERVAL_NOTE = (
    "95% intervals: for accuracy-type metrics (proportions) the Wilson score interval on the effective sample size "
    "n/deff, deff being the design effect of clustering by video (clustered CR1 variance over binomial variance, at "
    "least 1); for other means (BLEU, CIDEr, judge scores) mean ± 1.96 clustered SE (Wald)"
)


def wilson_interval(p: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` observed on ``n`` (possibly effective, non-integer) samples::

        (p + z²/2n ± z sqrt(p (1 - p)/n + z²/4n²)) / (1 + z²/n)

    Raises ``ValueError`` unless ``0 <= p <= 1`` and ``n > 0``.
    """
    if not 0.0 <= p <= 1.0 or not n > 0:
        raise ValueError(f"wilson_interval needs 0 <= p <= 1 and n > 0, got p={p}, n={n}")
    z2 = z * z
    denominator = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # at p = 0 (or 1) the bound is exactly 0 (or 1), which the formula gives only up to rounding
    low = 0.0 if p == 0.0 else max(0.0, center - half)
    high = 1.0 if p == 1.0 else min(1.0, center + half)
    return low, high


def design_effect(p: float, n: int, variance: float) -> float:
    """Kish's design effect of a proportion ``p`` from ``n`` samples whose clustered variance of the mean is
    ``variance``: ``variance / (p (1 - p) / n)``, at least 1, and 1 when ``p`` is 0 or 1 (see the module docstring)."""
    binomial = p * (1 - p) / n
    if binomial <= 0:
        return 1.0
    return max(1.0, variance / binomial)


def clustered_mean(
    values: Sequence[float],
    clusters: Sequence[Hashable],
    scale: float = 100.0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> MetricValue:
    """Mean of ``values`` times ``scale``, with its standard error clustered by ``clusters`` and a 95% interval.

    The standard error is the CR1 sandwich estimator for a mean::

        SE^2 = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2

    with ``n`` samples in ``G`` clusters. When every cluster holds one sample this is the textbook
    ``sqrt(sum (x_i - mean)^2 / (n (n - 1)))``.

    The interval (``interval`` in the result) depends on what the values are:

    * a proportion (``bounds`` is ``(0, 1)`` and every value is 0 or 1): the Wilson score interval on the effective
      sample size ``n / deff`` (:func:`wilson_interval`, :func:`design_effect`); the result's ``kind`` is
      ``"proportion"`` when ``scale`` is 100 (a percentage of samples: accuracy-type);
    * otherwise: ``mean ± Z_95 * SE``, clipped to ``bounds`` (given in the units of ``values``, before scaling;
      ``None`` for no clipping, which also marks the values as not a proportion).

    ``value``, ``se``, ``ci_low`` and ``ci_high`` are all scaled. With a single cluster the standard error is not
    defined: ``se``, ``ci_low`` and ``ci_high`` are ``None``.

    Raises ``ValueError`` when there are no values (callers omit empty groups), when the two sequences differ in
    length, or when a value is not finite.
    """
    n = len(values)
    if n == 0:
        raise ValueError("clustered_mean needs at least one value")
    if len(clusters) != n:
        raise ValueError(f"{n} values but {len(clusters)} cluster labels")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("clustered_mean needs finite values")

    mean = math.fsum(values) / n
    residual_sums: dict[Hashable, float] = {}
    for value, cluster in zip(values, clusters):
        residual_sums[cluster] = residual_sums.get(cluster, 0.0) + (value - mean)
    n_clusters = len(residual_sums)
    proportion = bounds == (0.0, 1.0) and all(v in (0.0, 1.0) for v in values)
    kind = "proportion" if proportion and scale == 100.0 else "mean"

    if n_clusters < 2:
        return MetricValue(value=mean * scale, n=n, n_clusters=n_clusters, kind=kind)
    variance = n_clusters / (n_clusters - 1) * math.fsum(s * s for s in residual_sums.values()) / (n * n)
    se = math.sqrt(variance)
    if proportion:
        low, high = wilson_interval(mean, n / design_effect(mean, n, variance))
    else:
        low, high = mean - Z_95 * se, mean + Z_95 * se
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
    return MetricValue(
        value=mean * scale, n=n, n_clusters=n_clusters, se=se * scale, ci_low=low * scale, ci_high=high * scale,
        interval="wilson" if proportion else "wald", kind=kind,
    )  # fmt: skip


def _correctness(score: Score) -> float:
    """A sample's correctness: an error or an unscored answer (``correct is None``) counts as wrong."""
    if score.status == "error" or score.correct is None:
        return 0.0
    return score.correct


def _accuracy(scores: list[Score]) -> MetricValue:
    return clustered_mean([_correctness(s) for s in scores], [s.video_id for s in scores])


def summarize_accuracy(
    scores: list[Score], category_order: list[str]
) -> tuple[dict[str, MetricValue], dict[str, dict[str, MetricValue]]]:
    """Accuracy in percent, overall and per category, with 95% CIs clustered by ``video_id``.

    Returns ``(metrics, categories)``: ``metrics = {"accuracy": MetricValue}`` over all scores and
    ``categories = {category: {"accuracy": MetricValue}}`` for every category present. Errors and unparsed or
    unscored answers count as wrong (never as a random guess).

    Categories are ordered as in ``category_order``, then categories missing from it in order of first appearance,
    then :data:`UNCATEGORIZED` (samples whose category is ``None``) if there are any. Categories without samples are
    omitted. Raises ``ValueError`` when ``scores`` is empty.
    """
    if not scores:
        raise ValueError("no scores to summarize")
    groups: dict[str, list[Score]] = {}
    for score in scores:
        groups.setdefault(score.category if score.category is not None else UNCATEGORIZED, []).append(score)

    rank = {category: i for i, category in enumerate(category_order)}

    def order(category: str) -> tuple[int, int]:
        # Known categories by rank; the rest keep their order of appearance (the sort is stable).
        if category in rank:
            return (0, rank[category])
        return (2 if category == UNCATEGORIZED else 1, 0)

    categories = {category: {"accuracy": _accuracy(groups[category])} for category in sorted(groups, key=order)}
    return {"accuracy": _accuracy(scores)}, categories


def unparsed_rate(scores: list[Score]) -> float:
    """Fraction of all samples without a parsed answer, in [0, 1].

    A sample has a parsed answer when its status is ``"ok"`` and its extraction exists with ``parsed=True``; errors
    and samples without an extraction therefore count as unparsed. Raises ``ValueError`` when ``scores`` is empty.
    """
    if not scores:
        raise ValueError("no scores to summarize")
    unparsed = sum(1 for s in scores if s.status == "error" or s.extraction is None or not s.extraction.parsed)
    return unparsed / len(scores)


#: A file path in an error message: absolute (``/data/v1.mp4``, ``C:\\data\\v1.mp4``) or relative with a file
#: extension (``data/v1.mp4``); not a sample id such as ``real/validation_3`` nor a URL's path. One cause on many files
#: counts as one reason.
_PATH = re.compile(
    r"(?<![\w.:/\\])(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\":,;()]+)+[\\/]?"
    r"|(?<![\w.:/\\-])[\w.~\-]+(?:[\\/][\w.\- ]*[\w.\-])*[\\/][\w\-][\w.\-]*\.[A-Za-z0-9]{1,5}\b"
)
#: Numbers of four digits or more (token counts, sizes, ids) in an error message; shorter ones (``HTTP 500``) stay.
_LONG_NUMBER = re.compile(r"\b\d{4,}\b")
#: The longest reason kept.
REASON_LENGTH = 200


def error_reason(message: str | None) -> str:
    """An error message reduced to its reason: the first line, file paths as ``<path>``, numbers of four or more
    digits as ``N``, at most :data:`REASON_LENGTH` characters."""
    lines = (message or "").strip().splitlines()
    reason = _LONG_NUMBER.sub("N", _PATH.sub("<path>", lines[0] if lines else "")) or "unknown error"
    return reason if len(reason) <= REASON_LENGTH else reason[: REASON_LENGTH - 1] + "…"


def error_reasons(scores: list[Score], top: int = 5) -> dict[str, int]:
    """The ``top`` most frequent reasons (:func:`error_reason`) of the samples that are errors, with their counts,
    most frequent first (ties in order of first appearance)."""
    counts = Counter(error_reason(s.error) for s in scores if s.status == "error")
    return dict(counts.most_common(top))
