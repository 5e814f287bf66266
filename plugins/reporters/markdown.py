"""Built-in reporter: ``leaderboard.md``, GitHub-flavoured markdown tables regenerated from the JSON records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vdpm_harness import REGENERATE_COMMAND, Column, Leaderboard, Reporter, format_metric, hookimpl, write_atomic

EMPTY_CELL = "–"


@hookimpl
def register_reporters(register):
    register(
        "markdown",
        "vdpm_harness_plugins.reporters.markdown:MarkdownReporter",
        description="leaderboard.md: overall and per-category markdown tables with 95% CIs",
    )


def format_cell(kind: str, value: Any) -> str:
    """A cell as markdown text: metrics as ``value ± CI (n=N)``, rates in percent, numbers with one decimal."""
    if value is None:
        return EMPTY_CELL
    if kind == "metric":
        text = format_metric(value, with_n=True)
    elif kind == "rate":
        text = f"{100 * value:.1f}%"
    elif kind == "number":
        text = f"{value:.1f}"
    else:
        text = str(value)
    return text.replace("|", "\\|")


def table(models: list[str], columns: list[Column]) -> list[str]:
    """The lines of a table with one row per model."""
    lines = [
        "| " + " | ".join(["Model", *(c.header for c in columns)]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for model in models:
        cells = [format_cell("text", model), *(format_cell(c.kind, c.cell(model)) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
        (
            "Cells show the value ± the half-width of its 95% confidence interval (standard errors clustered by "
            "video) and n, the number of samples. Unparsed answers and errors count as wrong. The mean is the "
            "unweighted mean of the primary metrics over the benchmarks a model has (`Benchmarks` counts them)."
        ),
        "",
        "## Overall",
        "",
    ]
    if not leaderboard.results:
        return "\n".join([*lines, "No results.", ""])
    lines += table(leaderboard.models(), leaderboard.overall_columns())
    for benchmark in leaderboard.benchmarks():
        lines += ["", f"## {benchmark}", ""]
        lines += table(leaderboard.models(benchmark), leaderboard.benchmark_columns(benchmark))
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
