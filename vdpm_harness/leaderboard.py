"""The leaderboard: every :class:`BenchmarkResult` of a results folder, and the tables that reporters draw from it.

The ``results.json`` records are the source of truth; the markdown and xlsx leaderboards are views regenerated from
them. Both reporters lay their tables out from the same column specs (:meth:`Leaderboard.overall_columns`,
:meth:`Leaderboard.benchmark_columns` and :meth:`Leaderboard.metric_columns`), so they always show the same numbers.

A pair that failed (no successful sample, or a share of errors above ``max_error_rate``) is never shown as a number:
its metric cells are :class:`Failed` markers, and it is left out of the mean. The mean averages only accuracy-type
metrics (percentages of samples scored correct: :meth:`Leaderboard.comparable`), never CIDEr or a judge's 1-5 score.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .records import BenchmarkResult, MetricValue

#: The command that regenerates the leaderboard files, quoted in them.
REGENERATE_COMMAND = "vdpm-harness leaderboard --results RESULTS_DIR"

#: Headers of the overall table's last two columns: what the mean is, and how many benchmarks it averages.
MEAN_HEADER = "Mean accuracy"
AVERAGED_HEADER = "Benchmarks averaged"
#: What the mean is, for the reports' notes.
MEAN_NOTE = (
    "Mean accuracy is the unweighted mean of the accuracy-type primary metrics (percentages of samples answered "
    "correctly, 0-100) over the benchmarks a model has and did not fail (Benchmarks averaged counts them); metrics "
    "on other scales (CIDEr, BLEU, judge scores) are not averaged"
)

#: Header of the column comparing a model with its benchmark's blind ceiling (shown when the benchmark has one).
ABOVE_BLIND_HEADER = "above blind"
#: What that column is, for the reports' notes.
BLIND_NOTE = (
    "The blind ceiling of a benchmark is the best primary score of a blind run on it (a blind baseline such as "
    "blind-prior, or a model run with blind=true: the same questions without the video; `vdpm-harness audit BENCH` "
    "runs them); 'above blind' is a model's score minus that ceiling, the part of the score the video explains at most"
)

#: The share of errors above which a pair counts as failed (``--max-error-rate``).
DEFAULT_MAX_ERROR_RATE = 0.5

#: How a column's cells are read and shown:
#: ``metric`` a :class:`MetricValue` (value with CI and n), ``count`` an int, ``rate`` a fraction in [0, 1],
#: ``number`` a float in the metrics' units (percent for accuracies), ``text`` a string. A ``metric`` cell of a failed
#: pair is a :class:`Failed` marker instead.
ColumnKind = Literal["metric", "count", "rate", "number", "text"]


@dataclass(frozen=True)
class Failed:
    """The metric cell of a pair that failed: ``reason`` (e.g. ``"failed: 36/36 errors"``) is shown instead of a
    number, so a run in which everything failed never reads as a score of 0."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Column:
    """One column of a leaderboard table whose rows are models: ``cell(model)`` is the cell, ``None`` when empty."""

    header: str
    kind: ColumnKind
    cell: Callable[[str], Any]


@dataclass(frozen=True)
class OverallRow:
    """One model's headline numbers.

    ``metrics`` maps every benchmark of the leaderboard (in order) to the model's primary metric, ``None`` where the
    model has no result; ``failed`` maps the benchmarks whose pair failed to the reason. ``mean`` is the unweighted
    mean of the accuracy-type primary values (:meth:`Leaderboard.comparable`) of the pairs that did not fail
    (``None`` if there are none): it compares models fairly only when they cover the same benchmarks.
    """

    model: str
    metrics: dict[str, MetricValue | None]
    mean: float | None
    failed: dict[str, str] = field(default_factory=dict)
    averaged: tuple[str, ...] = ()

    @property
    def n_benchmarks(self) -> int:
        """How many benchmarks ``mean`` averages over."""
        return len(self.averaged)


@dataclass
class Leaderboard:
    """Benchmark results of several models. Models and benchmarks are listed in order of first appearance.

    A pair whose share of errors exceeds ``max_error_rate``, or that has no successful sample, counts as failed
    (:meth:`failure`)."""

    results: list[BenchmarkResult] = field(default_factory=list)
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE

    def __post_init__(self):
        pairs = [(r.model, r.benchmark) for r in self.results]
        if len(set(pairs)) != len(pairs):
            raise ValueError("a leaderboard holds at most one result per (model, benchmark)")

    def models(self, benchmark: str | None = None) -> list[str]:
        """All models, or those with a result on ``benchmark``."""
        return list(dict.fromkeys(r.model for r in self.results if benchmark in (None, r.benchmark)))

    def benchmarks(self) -> list[str]:
        return list(dict.fromkeys(r.benchmark for r in self.results))

    def get(self, model: str, benchmark: str) -> BenchmarkResult | None:
        """The result of ``model`` on ``benchmark``, ``None`` if there is none."""
        return next((r for r in self.results if r.model == model and r.benchmark == benchmark), None)

    def primary_name(self, benchmark: str) -> str:
        """The primary metric's name of ``benchmark`` (from its first result)."""
        return next(r.primary for r in self.results if r.benchmark == benchmark)

    def categories(self, benchmark: str) -> list[str]:
        """The categories reported for ``benchmark`` by any model, in the results' ``category_order`` first."""
        results = [r for r in self.results if r.benchmark == benchmark]
        present = {c for r in results for c in r.categories}
        ordered = dict.fromkeys(c for r in results for c in [*r.category_order, *r.categories])
        return [c for c in ordered if c in present]

    def failure(self, result: BenchmarkResult) -> str | None:
        """Why a pair counts as failed (``"failed: 36/36 errors"``), or ``None``: no successful sample, or a share of
        errors above ``max_error_rate``."""
        if result.n_samples == 0 or result.n_errors >= result.n_samples:
            return f"failed: {result.n_errors}/{result.n_samples} errors"
        if result.n_errors / result.n_samples > self.max_error_rate:
            return (f"failed: {result.n_errors}/{result.n_samples} errors "
                    f"(over {self.max_error_rate:.0%})")  # fmt: skip
        return None

    @staticmethod
    def comparable(metric: MetricValue, name: str) -> bool:
        """Whether a metric is accuracy-type (the percentage of samples scored correct, 0-100) and may be averaged
        with those of other benchmarks: ``kind == "proportion"``; in results written before ``kind`` existed, the
        metric named ``accuracy`` (the core's accuracy)."""
        return metric.kind == "proportion" if metric.kind is not None else name == "accuracy"

    def overall_rows(self) -> list[OverallRow]:
        """Per model, each benchmark's primary metric and the unweighted mean of the accuracy-type ones of the pairs
        that did not fail (see :class:`OverallRow`)."""
        rows = []
        for model in self.models():
            metrics, failed, averaged = {}, {}, []
            for benchmark in self.benchmarks():
                result = self.get(model, benchmark)
                metrics[benchmark] = primary_metric(result) if result is not None else None
                if result is None:
                    continue
                reason = self.failure(result)
                if reason is not None:
                    failed[benchmark] = reason
                elif self.comparable(metrics[benchmark], result.primary):
                    averaged.append(benchmark)
            values = [metrics[b].value for b in averaged]
            mean = sum(values) / len(values) if values else None
            rows.append(OverallRow(model, metrics, mean, failed, tuple(averaged)))
        return rows

    @staticmethod
    def is_blind(result: BenchmarkResult) -> bool:
        """Whether the pair's model answered without the video (its run record says ``blind``)."""
        return bool(result.run is not None and result.run.model.get("blind"))

    def blind_ceiling(self, benchmark: str) -> tuple[str, MetricValue] | None:
        """``(model, primary metric)`` of the best blind run on ``benchmark`` that did not fail, or ``None``."""
        best = None
        for result in self.results:
            if result.benchmark == benchmark and self.is_blind(result) and self.failure(result) is None:
                metric = primary_metric(result)
                if best is None or metric.value > best[1].value:
                    best = (result.model, metric)
        return best

    def above_blind(self, benchmark: str) -> Callable[[str], float | None]:
        """A cell reader: a seeing model's primary value minus ``benchmark``'s blind ceiling (``None`` for blind
        runs, failed pairs and models without a result)."""
        ceiling = self.blind_ceiling(benchmark)

        def cell(model: str) -> float | None:
            result = self.get(model, benchmark)
            if ceiling is None or result is None or self.is_blind(result) or self.failure(result) is not None:
                return None
            return primary_metric(result).value - ceiling[1].value

        return cell

    def overall_columns(self) -> list[Column]:
        """Columns of the overall table: per benchmark its primary metric, unparsed rate and (when the benchmark has
        a blind run) the margin over its blind ceiling, then the mean accuracy and how many benchmarks it averages."""
        rows = {row.model: row for row in self.overall_rows()}
        columns = []
        for benchmark in self.benchmarks():
            header = f"{benchmark} {self.primary_name(benchmark)}"

            def primary(model: str, b: str = benchmark) -> MetricValue | Failed | None:
                return Failed(rows[model].failed[b]) if b in rows[model].failed else rows[model].metrics[b]

            columns.append(Column(header, "metric", primary))
            columns.append(Column(f"{benchmark} unparsed", "rate", self._field(benchmark, lambda r: r.unparsed_rate)))
            if self.blind_ceiling(benchmark) is not None:
                columns.append(Column(f"{benchmark} {ABOVE_BLIND_HEADER}", "number", self.above_blind(benchmark)))
        columns.append(Column(MEAN_HEADER, "number", lambda model: rows[model].mean))
        columns.append(Column(AVERAGED_HEADER, "count", lambda model: rows[model].n_benchmarks))
        return columns

    def benchmark_columns(self, benchmark: str) -> list[Column]:
        """Columns of one benchmark's table: version, scoring path, primary metric, counts, then each category."""
        primary = self.primary_name(benchmark)
        columns = [
            Column("Version", "text", self._field(benchmark, lambda r: r.benchmark_version)),
            Column("Scoring", "text", self._field(benchmark, lambda r: r.scoring)),
            Column(primary, "metric", self._metric(benchmark, primary_metric)),
            *self._blind_columns(benchmark),
            Column("Clusters", "count", self._field(benchmark, lambda r: primary_metric(r).n_clusters)),
            Column("Unparsed", "rate", self._field(benchmark, lambda r: r.unparsed_rate)),
            Column("Errors", "count", self._field(benchmark, lambda r: r.n_errors)),
        ]
        for category in self.categories(benchmark):
            read = self._metric(benchmark, lambda r, c=category: category_metric(r, c))
            columns.append(Column(category, "metric", read))
        return columns

    def _blind_columns(self, benchmark: str) -> list[Column]:
        """``Blind`` (which rows answered without the video) and ``above blind``, when the benchmark has a blind run."""
        if self.blind_ceiling(benchmark) is None:
            return []
        return [Column("Blind", "text", self._field(benchmark, lambda r: "blind" if self.is_blind(r) else None)),
                Column(ABOVE_BLIND_HEADER, "number", self.above_blind(benchmark))]  # fmt: skip

    def metric_names(self, benchmark: str) -> list[str]:
        """Every metric of ``benchmark``'s results besides the primary one, in order of first appearance: what
        ``results.json`` holds beyond the headline (DSR-Bench's VLMEvalKit and fork decisions, VLM4D's table cells,
        4D-Bench's BLEU-1..4, METEOR, ROUGE-L and CIDEr). A metric named as a category is left to the category's
        column (VLM4D reports each category's accuracy as a cell of its table as well)."""
        shown = {self.primary_name(benchmark), *self.categories(benchmark)}
        names = (name for r in self.results if r.benchmark == benchmark for name in r.metrics)
        return [name for name in dict.fromkeys(names) if name not in shown]

    def metric_columns(self, benchmark: str) -> list[Column]:
        """One metric column per :meth:`metric_names` entry (``None`` where a result lacks the metric)."""
        return [Column(name, "metric", self._metric(benchmark, lambda r, n=name: r.metrics.get(n)))
                for name in self.metric_names(benchmark)]  # fmt: skip

    def metrics_in(self, columns: list[Column], models: list[str]) -> list[MetricValue]:
        """Every metric cell of ``columns`` over ``models`` (for notes on how their intervals were computed)."""
        cells = (column.cell(model) for column in columns if column.kind == "metric" for model in models)
        return [cell for cell in cells if isinstance(cell, MetricValue)]

    def _field(self, benchmark: str, read: Callable[[BenchmarkResult], Any]) -> Callable[[str], Any]:
        """A cell reader: ``read`` applied to the model's result on ``benchmark``, ``None`` when it has none."""

        def cell(model: str) -> Any:
            result = self.get(model, benchmark)
            return read(result) if result is not None else None

        return cell

    def _metric(self, benchmark: str, read: Callable[[BenchmarkResult], Any]) -> Callable[[str], Any]:
        """A metric cell reader: as :meth:`_field`, with a :class:`Failed` marker for a failed pair's cells (an empty
        cell stays empty)."""

        def cell(model: str) -> Any:
            result = self.get(model, benchmark)
            if result is None:
                return None
            value = read(result)
            reason = self.failure(result)
            return Failed(reason) if reason is not None and value is not None else value

        return cell


def category_metric(result: BenchmarkResult, category: str) -> MetricValue | None:
    """A category's headline cell: the primary metric if the category reports it, else its accuracy."""
    cell = result.categories.get(category, {})
    return cell.get(result.primary) or cell.get("accuracy")


def primary_metric(result: BenchmarkResult) -> MetricValue:
    """The headline metric of a result."""
    return result.metrics[result.primary]


def collect(results_dir: Path | str, max_error_rate: float = DEFAULT_MAX_ERROR_RATE) -> Leaderboard:
    """Read every ``results.json`` under ``results_dir`` into a leaderboard sorted by (model, benchmark).

    The layout is ``<results_dir>/<model_label>/<benchmark_id>/results.json``, each file the JSON of a
    :class:`BenchmarkResult`. A file that cannot be read, does not validate, lacks its primary metric, or repeats a
    (model, benchmark) pair already read (files are read in path order) is skipped with a warning naming it.
    """
    results: dict[tuple[str, str], tuple[BenchmarkResult, Path]] = {}
    for path in sorted(Path(results_dir).rglob("results.json")):
        try:
            result = BenchmarkResult.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"skipping malformed results file {path}: {first_line}", stacklevel=2)
            continue
        if result.primary not in result.metrics:
            warnings.warn(f"skipping results file {path}: primary metric {result.primary!r} missing", stacklevel=2)
            continue
        key = (result.model, result.benchmark)
        if key in results:
            warnings.warn(f"skipping results file {path}: {key} already read from {results[key][1]}", stacklevel=2)
            continue
        results[key] = (result, path)
    return Leaderboard([results[key][0] for key in sorted(results)], max_error_rate)


def interval_note(metrics: list[MetricValue]) -> str:
    """How the intervals of ``metrics`` were computed, in words (for a report's notes and header comments)."""
    methods = {m.interval for m in metrics if m.ci_low is not None}
    parts = []
    if "wilson" in methods:
        parts.append("Wilson score interval on the effective sample size n/deff (deff: the design effect of "
                     "clustering by video, at least 1)")  # fmt: skip
    if "wald" in methods:
        parts.append("mean ± 1.96 SE clustered by video (Wald), clipped to the metric's range")
    if None in methods:
        parts.append("results written before the interval was recorded: mean ± 1.96 clustered SE (Wald); "
                     "`vdpm-harness rescore` recomputes them")  # fmt: skip
    return "; ".join(parts) or "no intervals"


def format_metric(metric: MetricValue | Failed, with_n: bool = False, compact: bool = False) -> str:
    """``"63.4 ± 2.1"``: the value and the half-width of its 95% CI, one decimal; ``" (n=120)"`` appended on request;
    ``compact``: the value alone. A :class:`Failed` cell shows its reason.

    The half-width is the larger distance from the value to a CI bound, i.e. the unclipped half-width when the CI
    was clipped on one side (at 0 or 100%) or is asymmetric (a Wilson interval: ``0.0 ± 20.4`` at 0 of 15). Without
    a CI only the value is shown.
    """
    if isinstance(metric, Failed):
        return metric.reason
    if compact:
        return f"{metric.value:.1f}"
    text = f"{metric.value:.1f}"
    if metric.ci_low is not None and metric.ci_high is not None:
        text += f" ± {max(metric.value - metric.ci_low, metric.ci_high - metric.value):.1f}"
    if with_n:
        text += f" (n={metric.n})"
    return text
