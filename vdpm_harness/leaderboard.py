"""The leaderboard: every :class:`BenchmarkResult` of a results folder, and the tables that reporters draw from it.

The ``results.json`` records are the source of truth; the markdown and xlsx leaderboards are views regenerated from
them. Both reporters lay their tables out from the same column specs (:meth:`Leaderboard.overall_columns` and
:meth:`Leaderboard.benchmark_columns`), so they always show the same numbers.
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

#: How a column's cells are read and shown:
#: ``metric`` a :class:`MetricValue` (value with CI and n), ``count`` an int, ``rate`` a fraction in [0, 1],
#: ``number`` a float in the metrics' units (percent for accuracies), ``text`` a string.
ColumnKind = Literal["metric", "count", "rate", "number", "text"]


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
    model has no result. ``mean`` is the unweighted mean of the primary values over the benchmarks the model has
    (``None`` if it has none): it compares models fairly only when they cover the same benchmarks and the primary
    metrics share a scale.
    """

    model: str
    metrics: dict[str, MetricValue | None]
    mean: float | None

    @property
    def n_benchmarks(self) -> int:
        """How many benchmarks ``mean`` averages over."""
        return sum(m is not None for m in self.metrics.values())


@dataclass
class Leaderboard:
    """Benchmark results of several models. Models and benchmarks are listed in order of first appearance."""

    results: list[BenchmarkResult] = field(default_factory=list)

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

    def overall_rows(self) -> list[OverallRow]:
        """Per model, each benchmark's primary metric and their unweighted mean (see :class:`OverallRow`)."""
        rows = []
        for model in self.models():
            metrics = {}
            for benchmark in self.benchmarks():
                result = self.get(model, benchmark)
                metrics[benchmark] = primary_metric(result) if result is not None else None
            values = [m.value for m in metrics.values() if m is not None]
            rows.append(OverallRow(model, metrics, sum(values) / len(values) if values else None))
        return rows

    def overall_columns(self) -> list[Column]:
        """Columns of the overall table: per benchmark its primary metric and unparsed rate, then the mean."""
        rows = {row.model: row for row in self.overall_rows()}
        columns = []
        for benchmark in self.benchmarks():
            header = f"{benchmark} {self.primary_name(benchmark)}"
            columns.append(Column(header, "metric", lambda model, b=benchmark: rows[model].metrics[b]))
            columns.append(Column(f"{benchmark} unparsed", "rate", self._field(benchmark, lambda r: r.unparsed_rate)))
        columns.append(Column("Mean", "number", lambda model: rows[model].mean))
        columns.append(Column("Benchmarks", "count", lambda model: rows[model].n_benchmarks))
        return columns

    def benchmark_columns(self, benchmark: str) -> list[Column]:
        """Columns of one benchmark's table: version, scoring path, primary metric, counts, then each category."""
        primary = self.primary_name(benchmark)
        columns = [
            Column("Version", "text", self._field(benchmark, lambda r: r.benchmark_version)),
            Column("Scoring", "text", self._field(benchmark, lambda r: r.scoring)),
            Column(primary, "metric", self._field(benchmark, primary_metric)),
            Column("Clusters", "count", self._field(benchmark, lambda r: primary_metric(r).n_clusters)),
            Column("Unparsed", "rate", self._field(benchmark, lambda r: r.unparsed_rate)),
            Column("Errors", "count", self._field(benchmark, lambda r: r.n_errors)),
        ]
        for category in self.categories(benchmark):
            read = self._field(benchmark, lambda r, c=category: category_metric(r, c))
            columns.append(Column(category, "metric", read))
        return columns

    def _field(self, benchmark: str, read: Callable[[BenchmarkResult], Any]) -> Callable[[str], Any]:
        """A cell reader: ``read`` applied to the model's result on ``benchmark``, ``None`` when it has none."""

        def cell(model: str) -> Any:
            result = self.get(model, benchmark)
            return read(result) if result is not None else None

        return cell


def category_metric(result: BenchmarkResult, category: str) -> MetricValue | None:
    """A category's headline cell: the primary metric if the category reports it, else its accuracy."""
    cell = result.categories.get(category, {})
    return cell.get(result.primary) or cell.get("accuracy")


def primary_metric(result: BenchmarkResult) -> MetricValue:
    """The headline metric of a result."""
    return result.metrics[result.primary]


def collect(results_dir: Path | str) -> Leaderboard:
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
    return Leaderboard([results[key][0] for key in sorted(results)])


def format_metric(metric: MetricValue, with_n: bool = False) -> str:
    """``"63.4 ± 2.1"``: the value and the half-width of its 95% CI, one decimal; ``" (n=120)"`` appended on request.

    The half-width is the larger distance from the value to a CI bound, i.e. the unclipped half-width when the CI
    was clipped on one side (at 0 or 100%). Without a CI only the value is shown.
    """
    text = f"{metric.value:.1f}"
    if metric.ci_low is not None and metric.ci_high is not None:
        text += f" ± {max(metric.value - metric.ci_low, metric.ci_high - metric.value):.1f}"
    if with_n:
        text += f" (n={metric.n})"
    return text
