"""Tests of vdpm_harness.stats: clustered standard errors against statsmodels and hand computations; intervals of
proportions against statsmodels' Wilson (and Clopper-Pearson) intervals and hand computations with a design effect."""

import math

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from vdpm_harness.leaderboard import format_metric
from vdpm_harness.records import Extraction, Score
from vdpm_harness.stats import (
    Z_95,
    clustered_mean,
    design_effect,
    summarize_accuracy,
    unparsed_rate,
    wilson_interval,
)


def statsmodels_se(values, codes) -> float:
    """Cluster-robust SE of an intercept-only OLS fit. With one regressor (k = 1) statsmodels' default small-sample
    correction G/(G-1) * (n-1)/(n-k) reduces to G/(G-1): the CR1 estimator."""
    n = len(values)
    fit = sm.OLS(np.asarray(values, float), np.ones(n)).fit(
        cov_type="cluster", cov_kwds={"groups": np.asarray(codes), "use_correction": True}
    )
    return float(fit.bse[0])


def score(sample_id, video_id, correct, category=None, status="ok", parsed=True):
    extraction = Extraction(answer="A", parsed=parsed, method="rules:test") if status == "ok" else None
    return Score(
        sample_id=sample_id,
        video_id=video_id,
        category=category,
        status=status,
        correct=correct,
        extraction=extraction,
    )


@pytest.mark.parametrize("seed", range(5))
def test_clustered_se_matches_statsmodels_with_unequal_clusters(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, size=25)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.integers(0, 2, size=len(codes)).astype(float)
    clusters = [f"video-{c}" for c in codes]

    metric = clustered_mean(values.tolist(), clusters, scale=1.0, bounds=None)

    assert metric.n == len(values) and metric.n_clusters == len(sizes)
    assert metric.value == pytest.approx(values.mean(), abs=1e-12)
    assert metric.se == pytest.approx(statsmodels_se(values, codes), abs=1e-12)
    assert metric.ci_low == pytest.approx(metric.value - Z_95 * metric.se, abs=1e-12)
    assert metric.ci_high == pytest.approx(metric.value + Z_95 * metric.se, abs=1e-12)


def test_statsmodels_without_correction_does_not_match():
    # Guards the choice above: the uncorrected estimator differs by sqrt(G/(G-1)).
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    codes = [0, 0, 1, 1, 1, 2, 3]
    fit = sm.OLS(np.asarray(values), np.ones(7)).fit(
        cov_type="cluster", cov_kwds={"groups": np.asarray(codes), "use_correction": False}
    )
    se = clustered_mean(values, codes, scale=1.0).se
    assert se == pytest.approx(float(fit.bse[0]) * math.sqrt(4 / 3), abs=1e-12)


def test_hand_computed_small_case():
    """The clustered SE by hand, and the interval of a proportion: Wilson on the effective sample size n/deff."""
    # clusters a: (1, 1), b: (0,), c: (1, 0, 0); mean 1/2, residual sums 1, -1/2, -1/2.
    values = [1, 1, 0, 1, 0, 0]
    clusters = ["a", "a", "b", "c", "c", "c"]
    metric = clustered_mean(values, clusters)
    se = math.sqrt(3 / 2 * (1 + 0.25 + 0.25) / 36)  # = 0.25
    assert metric.value == pytest.approx(50.0)
    assert metric.se == pytest.approx(100 * se)
    assert metric.se == pytest.approx(25.0)
    # deff = SE^2 / (p (1 - p) / n) = 0.0625 / (0.25 / 6) = 1.5, so n_eff = 6 / 1.5 = 4 and the count is p n_eff = 2:
    # the interval is statsmodels' Wilson interval of 2 of 4, and the formula by hand
    z = Z_95
    center = (0.5 + z * z / 8) / (1 + z * z / 4)
    half = z * math.sqrt(0.25 / 4 + z * z / 64) / (1 + z * z / 4)
    assert (metric.ci_low, metric.ci_high) == pytest.approx((100 * (center - half), 100 * (center + half)), abs=1e-10)
    assert (metric.ci_low, metric.ci_high) == pytest.approx(
        [100 * b for b in proportion_confint(2, 4, alpha=0.05, method="wilson")], abs=1e-9
    )
    assert (metric.interval, metric.kind) == ("wilson", "proportion")
    assert (metric.n, metric.n_clusters) == (6, 3)


def test_wilson_with_design_effect_by_hand():
    """Pairs of identical answers in 6 videos: p = 1/2, residual sums ±1, SE^2 = 6/5 * 6 / 144 = 0.05, binomial
    variance 0.25 / 12, deff = 2.4, n_eff = 5; Wilson's formula (Wilson 1927) on n_eff by hand."""
    values = [1, 1, 0, 0] * 3
    clusters = ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e", "f", "f"]
    metric = clustered_mean(values, clusters, scale=1.0)
    assert metric.se**2 == pytest.approx(0.05, abs=1e-12)
    assert design_effect(0.5, 12, 0.05) == pytest.approx(2.4)
    z2 = Z_95**2
    n_eff = 5.0
    center = (0.5 + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = Z_95 * math.sqrt(0.25 / n_eff + z2 / (4 * n_eff**2)) / (1 + z2 / n_eff)
    assert (metric.ci_low, metric.ci_high) == pytest.approx((center - half, center + half), abs=1e-12)
    # clustering widens the interval over the one of 12 independent answers
    independent = proportion_confint(6, 12, alpha=0.05, method="wilson")
    assert metric.ci_low < independent[0] and metric.ci_high > independent[1]
    # design effects below 1 are taken as 1 (never narrower than independent samples)
    assert design_effect(0.5, 12, 0.001) == 1.0


@pytest.mark.parametrize("n", [2, 5, 15, 40, 200])
@pytest.mark.parametrize("per_video", [1, 3])
def test_interval_at_0_of_n_and_n_of_n_matches_statsmodels_wilson(n, per_video):
    """At 0/n and n/n (the issue's repro: ``0.0 ± 0.0 (n=15)`` from the Wald interval) the interval is statsmodels'
    Wilson interval of 0 (n) successes in n trials, whatever the clustering (no variance is observed there, so
    deff = 1), with the bound at the boundary exactly 0 (100)."""
    total = n * per_video
    clusters = [i // per_video for i in range(total)]
    for successes in (0, total):
        metric = clustered_mean([1.0 if successes else 0.0] * total, clusters)
        low, high = proportion_confint(successes, total, alpha=0.05, method="wilson")
        assert (metric.ci_low, metric.ci_high) == pytest.approx((100 * low, 100 * high), abs=1e-9)
        assert metric.value == (100.0 if successes else 0.0) and metric.interval == "wilson"
        if successes == 0:
            assert metric.ci_low == 0.0 and 0 < metric.ci_high < 100
        else:
            assert metric.ci_high == 100.0 and 0 < metric.ci_low < 100


def test_zero_of_fifteen_is_not_zero_plus_minus_zero():
    """The issue's example: 0 of 15 showed ``0.0 ± 0.0 (n=15)``; the exact 95% upper bound is 21.8%
    (statsmodels' Clopper-Pearson), Wilson's is 20.4%."""
    metric = clustered_mean([0] * 15, list(range(15)))
    assert format_metric(metric, with_n=True) == "0.0 ± 20.4 (n=15)"
    assert 100 * proportion_confint(0, 15, method="beta")[1] == pytest.approx(21.8, abs=0.05)


def test_means_that_are_not_proportions_keep_the_wald_interval():
    """Values other than 0/1 (a BLEU score, a 1-5 judge score) or no bounds: mean ± Z_95 SE, clipped to the bounds."""
    values, clusters = [0.2, 0.4, 0.9, 0.5], ["a", "b", "c", "d"]
    metric = clustered_mean(values, clusters)
    assert (metric.interval, metric.kind) == ("wald", "mean")
    assert metric.ci_low == pytest.approx(metric.value - Z_95 * metric.se)
    assert metric.ci_high == pytest.approx(metric.value + Z_95 * metric.se)
    assert clustered_mean([0, 1, 1], ["a", "b", "c"], bounds=None).interval == "wald"
    assert clustered_mean([0, 1, 1], ["a", "b", "c"], scale=1.0).kind == "mean"  # a proportion, but not in percent


def test_one_sample_per_cluster_is_the_textbook_standard_error():
    values = [1] * 7 + [0] * 3
    p, n = 0.7, 10
    metric = clustered_mean(values, list(range(n)), scale=1.0)
    assert metric.se == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)), abs=1e-12)


def test_ci_is_clipped_to_bounds_unless_disabled():
    values, clusters = [1, 1, 1, 0], ["a", "b", "c", "d"]
    # a proportion: Wilson on n_eff = 4 / deff, deff = (0.1875 / 3) / (0.1875 / 4) = 4/3, so n_eff = 3; inside [0, 100]
    clipped = clustered_mean(values, clusters)
    low, high = wilson_interval(0.75, 3.0)
    assert (clipped.ci_low, clipped.ci_high) == pytest.approx((100 * low, 100 * high), abs=1e-10)
    assert 0 < clipped.ci_low < 75 < clipped.ci_high < 100
    free = clustered_mean(values, clusters, bounds=None)
    assert free.ci_high == pytest.approx(75 + Z_95 * free.se) and free.ci_high > 100
    scaled = clustered_mean([4.0, 5.0, 3.0], ["a", "b", "c"], scale=1.0, bounds=(0.0, 5.0))
    assert scaled.ci_high == 5.0


def test_single_cluster_has_no_standard_error():
    metric = clustered_mean([1, 0, 1], ["v", "v", "v"])
    assert metric.value == pytest.approx(200 / 3)
    assert (metric.se, metric.ci_low, metric.ci_high, metric.n_clusters) == (None, None, None, 1)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        clustered_mean([], [])
    with pytest.raises(ValueError):
        clustered_mean([1.0], ["a", "b"])
    with pytest.raises(ValueError):
        clustered_mean([float("nan"), 1.0], ["a", "b"])
    with pytest.raises(ValueError):
        summarize_accuracy([], ["x"])


def test_errors_and_unscored_answers_count_as_wrong():
    scores = [
        score("1", "v1", 1.0),
        score("2", "v2", None, status="error"),
        score("3", "v3", None, parsed=False),
        score("4", "v4", 1.0),
    ]
    metrics, _ = summarize_accuracy(scores, [])
    assert metrics["accuracy"].value == pytest.approx(50.0)
    assert metrics["accuracy"].n == 4
    assert metrics["accuracy"].se == pytest.approx(100 * clustered_mean([1, 0, 0, 1], [1, 2, 3, 4], scale=1).se)


def test_category_order_then_appearance_then_uncategorized():
    scores = [
        score("1", "v1", 1.0, category="zeta"),
        score("2", "v1", 0.0, category=None),
        score("3", "v2", 1.0, category="speed"),
        score("4", "v2", 0.0, category="alpha"),
        score("5", "v3", 1.0, category="distance"),
        score("6", "v3", 1.0, category="speed"),
    ]
    metrics, categories = summarize_accuracy(scores, ["distance", "direction", "speed"])
    assert list(categories) == ["distance", "speed", "zeta", "alpha", "uncategorized"]
    assert categories["speed"]["accuracy"].value == pytest.approx(100.0)
    assert categories["speed"]["accuracy"].n == 2
    assert categories["speed"]["accuracy"].n_clusters == 2
    assert categories["uncategorized"]["accuracy"].value == 0.0
    assert metrics["accuracy"].n == 6 and metrics["accuracy"].n_clusters == 3


def test_no_uncategorized_key_without_uncategorized_samples():
    _, categories = summarize_accuracy([score("1", "v1", 1.0, category="a")], ["a", "b"])
    assert list(categories) == ["a"]


def test_unparsed_rate_counts_errors_and_unparsed():
    scores = [
        score("1", "v1", 1.0),
        score("2", "v2", 0.0, parsed=False),
        score("3", "v3", None, status="error"),
        Score(sample_id="4", video_id="v4", status="ok", correct=1.0),  # no extraction: not parsed
    ]
    assert unparsed_rate(scores) == pytest.approx(0.75)
    assert unparsed_rate(scores[:1]) == 0.0
