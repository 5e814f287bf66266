"""Aggregate statistics: means with standard errors clustered by video, and the accuracy summary of a benchmark.

Benchmarks such as DSR, VLM4D and 4D-Bench ask several questions about the same clip, so answers about one video are
not independent. Standard errors are therefore clustered by ``video_id`` (the CR1 sandwich estimator); with one
question per video they reduce to the usual standard error of a mean.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from .records import MetricValue, Score

#: Normal quantile of the 95% confidence intervals.
Z_95 = 1.96

#: Category key of the samples that have no category.
UNCATEGORIZED = "uncategorized"


def clustered_mean(
    values: Sequence[float],
    clusters: Sequence[Hashable],
    scale: float = 100.0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> MetricValue:
    """Mean of ``values`` times ``scale``, with its standard error clustered by ``clusters`` and a 95% CI.

    The standard error is the CR1 sandwich estimator for a mean::

        SE^2 = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2

    with ``n`` samples in ``G`` clusters. When every cluster holds one sample this is the textbook
    ``sqrt(sum (x_i - mean)^2 / (n (n - 1)))``. The CI is ``value ± 1.96 SE``, clipped to ``bounds`` (given in the
    units of ``values``, before scaling: ``(0, 1)`` for accuracies; ``None`` for no clipping).

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

    if n_clusters < 2:
        return MetricValue(value=mean * scale, n=n, n_clusters=n_clusters)
    variance = n_clusters / (n_clusters - 1) * math.fsum(s * s for s in residual_sums.values()) / (n * n)
    se = math.sqrt(variance)
    low, high = mean - Z_95 * se, mean + Z_95 * se
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return MetricValue(
        value=mean * scale, n=n, n_clusters=n_clusters, se=se * scale, ci_low=low * scale, ci_high=high * scale
    )


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
