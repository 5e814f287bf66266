"""Built-in reporter: ``leaderboard.md``, GitHub-flavoured markdown tables regenerated from the JSON records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vdpm_harness import (
    BLIND_NOTE,
    MEAN_NOTE,
    REGENERATE_COMMAND,
    Column,
    Leaderboard,
    Reporter,
    format_metric,
    hookimpl,
    interval_note,
    write_atomic,
)

EMPTY_CELL = "–"


@hookimpl
def register_reporters(register):
    register(
        "markdown",
        "vdpm_harness_plugins.reporters.markdown:MarkdownReporter",
        description="leaderboard.md: overall and per-category markdown tables with 95% CIs",
    )


def format_cell(kind: str, value: Any, compact: bool = False) -> str:
    """A cell as markdown text: metrics as ``value ± CI (n=N)`` (``compact``: the value alone; a failed pair's cell:
    its reason), rates in percent, numbers with one decimal."""
    if value is None:
        return EMPTY_CELL
    if kind == "metric":
        text = format_metric(value, with_n=not compact, compact=compact)
    elif kind == "rate":
        text = f"{100 * value:.1f}%"
    elif kind == "number":
        text = f"{value:.1f}"
    else:
        text = str(value)
    return text.replace("|", "\\|")


def table(models: list[str], columns: list[Column], compact: bool = False) -> list[str]:
    """The lines of a table with one row per model (``compact``: metrics as their values alone)."""
    lines = [
        "| " + " | ".join(["Model", *(c.header for c in columns)]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for model in models:
        cells = [format_cell("text", model), *(format_cell(c.kind, c.cell(model), compact) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def notes(leaderboard: Leaderboard) -> str:
    """What the cells mean: the intervals (as the results record them), errors, failed pairs and the mean."""
    metrics = [m for r in leaderboard.results for m in [*r.metrics.values(), *(v for c in r.categories.values()
                                                                                for v in c.values())]]  # fmt: skip
    return (
        "Cells show the value ± the larger distance from it to a bound of its 95% interval, and n, the number of "
        f"samples. Intervals: {interval_note(metrics)}. Unparsed answers and errors (of the model or of a judge) count "
        f"as wrong. A pair with no successful sample, or with more than {leaderboard.max_error_rate:.0%} errors, shows "
        f"`failed` instead of its numbers and is left out of the mean. {MEAN_NOTE}."
        + (f" {BLIND_NOTE}." if any(leaderboard.blind_ceiling(b) for b in leaderboard.benchmarks()) else "")
    )


def render(leaderboard: Leaderboard) -> str:
    """The whole ``leaderboard.md`` document."""
    lines = [
        "# Leaderboard",
        "",
        (
            "Generated from the `results.json` records (the source of truth), which this file only summarizes: "
            f"do not edit it, regenerate it with `{REGENERATE_COMMAND}`."
        ),
        "",
        notes(leaderboard),
        "",
        "## Overall",
        "",
    ]
    if not leaderboard.results:
        return "\n".join([*lines, "No results.", ""])
    lines += table(leaderboard.models(), leaderboard.overall_columns())
    for benchmark in leaderboard.benchmarks():
        models = leaderboard.models(benchmark)
        lines += ["", f"## {benchmark}", ""]
        ceiling = leaderboard.blind_ceiling(benchmark)
        if ceiling is not None:
            lines += [f"Blind ceiling: {format_metric(ceiling[1])} ({ceiling[0]}, without the video).", ""]
        lines += table(models, leaderboard.benchmark_columns(benchmark))
        others = leaderboard.metric_columns(benchmark)
        if others:
            lines += ["", "Every other metric of the results (values; intervals in `leaderboard.xlsx`):", ""]
            lines += table(models, others, compact=True)
    lines.append("")
    return "\n".join(lines)


class MarkdownReporter(Reporter):
    """Writes ``leaderboard.md``: an overall table of every model, then per benchmark a table of the models that have
    it, with a column per category."""

    def write(self, leaderboard: Leaderboard, out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        text = render(leaderboard)
        path = write_atomic(out_dir / "leaderboard.md", text)
        return [path]
