"""Built-in reporter: ``leaderboard.xlsx``, a spreadsheet view regenerated from the JSON records.

A sheet "Overall", then one sheet per benchmark. Rows are models; a metric column of the shared column specs
(:mod:`vdpm_harness.leaderboard`) becomes four columns: value, CI low, CI high and n. Numbers are stored as numbers; a
failed pair's metric shows its reason (``failed: 36/36 errors``) in the value column and leaves the others empty.
A benchmark's sheet lists, after the primary metric and the counts, every other metric of its results (DSR-Bench's
decisions, VLM4D's table cells, 4D-Bench's caption metrics), then the categories. The header cells carry notes:
how each column's intervals were computed, and what the mean is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from vdpm_harness import (
    MEAN_HEADER,
    MEAN_NOTE,
    REGENERATE_COMMAND,
    Column,
    Failed,
    Leaderboard,
    MetricValue,
    Reporter,
    hookimpl,
    interval_note,
    write_atomic,
)

#: Excel's limit on sheet names, and the characters it forbids in them.
MAX_SHEET_NAME = 31
FORBIDDEN_IN_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")

NUMBER_FORMATS = {"metric": "0.0", "number": "0.0", "rate": "0.0%", "count": "0"}
MAX_COLUMN_WIDTH = 60


@hookimpl
def register_reporters(register):
    register(
        "xlsx",
        "vdpm_harness_plugins.reporters.xlsx:XlsxReporter",
        description="leaderboard.xlsx: an overall sheet and one sheet per benchmark, numbers with CIs and counts",
    )


def sheet_name(name: str, taken: set[str]) -> str:
    """``name`` made a valid Excel sheet name (forbidden characters replaced, at most 31 characters, not starting or
    ending with an apostrophe) that differs from the names in ``taken`` ignoring case; it is added to ``taken``."""
    base = FORBIDDEN_IN_SHEET_NAME.sub("_", name).strip("'")[:MAX_SHEET_NAME] or "Sheet"
    candidate, counter = base, 1
    while candidate.lower() in taken:
        counter += 1
        suffix = f"~{counter}"
        candidate = base[: MAX_SHEET_NAME - len(suffix)] + suffix
    taken.add(candidate.lower())
    return candidate


def expand(column: Column) -> list[tuple[str, str, Any]]:
    """The spreadsheet columns of a spec column: ``(header, number kind, read(model))`` for each. A failed pair's
    metric puts its reason in the value column."""
    if column.kind != "metric":
        return [(column.header, column.kind, column.cell)]

    def part(attribute: str):
        def read(model: str):
            metric = column.cell(model)
            if isinstance(metric, Failed):
                return metric.reason if attribute == "value" else None
            return getattr(metric, attribute) if metric is not None else None

        return read

    return [
        (column.header, "metric", part("value")),
        (f"{column.header} CI low", "metric", part("ci_low")),
        (f"{column.header} CI high", "metric", part("ci_high")),
        (f"{column.header} n", "count", part("n")),
    ]


def shown(value: Any) -> str:
    """Roughly the text Excel shows for a cell value (floats with one decimal), for column widths."""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def header_notes(columns: list[Column], models: list[str]) -> dict[str, str]:
    """Notes for header cells: each metric's CI columns say how their intervals were computed; the mean says what
    it averages."""
    notes = {}
    for column in columns:
        if column.kind == "metric":
            cells = [column.cell(model) for model in models]
            note = "95% interval: " + interval_note([c for c in cells if isinstance(c, MetricValue)])
            notes[f"{column.header} CI low"] = notes[f"{column.header} CI high"] = note
        elif column.header == MEAN_HEADER:
            notes[column.header] = MEAN_NOTE
    return notes


def fill_sheet(sheet, models: list[str], columns: list[Column]) -> None:
    """One row per model under a bold, frozen header row (with notes: :func:`header_notes`); number formats by column
    kind; widths fit the text."""
    spreadsheet_columns = [("Model", "text", lambda model: model)]
    for column in columns:
        spreadsheet_columns += expand(column)

    sheet.append([header for header, _, _ in spreadsheet_columns])
    notes = header_notes(columns, models)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        if cell.value in notes:
            cell.comment = Comment(notes[cell.value], "vdpm-harness")
    sheet.freeze_panes = "B2"

    for model in models:
        sheet.append([read(model) for _, _, read in spreadsheet_columns])

    for index, (header, kind, _) in enumerate(spreadsheet_columns, start=1):
        cells = [row[0] for row in sheet.iter_rows(min_row=2, min_col=index, max_col=index)]
        for cell in cells:
            if kind in NUMBER_FORMATS:
                cell.number_format = NUMBER_FORMATS[kind]
        width = max([len(header), *(len(shown(c.value)) for c in cells if c.value is not None)]) + 2
        sheet.column_dimensions[get_column_letter(index)].width = min(width, MAX_COLUMN_WIDTH)


def build_workbook(leaderboard: Leaderboard) -> Workbook:
    """The workbook: sheet "Overall" with every model, then per benchmark a sheet of the models that have it."""
    workbook = Workbook()
    workbook.properties.description = (
        f"Generated from the results.json records (the source of truth) by `{REGENERATE_COMMAND}`; do not edit. "
        f"A pair with no successful sample or more than {leaderboard.max_error_rate:.0%} errors shows 'failed'. "
        f"{MEAN_NOTE}."
    )
    taken: set[str] = set()
    overall = workbook.active
    overall.title = sheet_name("Overall", taken)
    fill_sheet(overall, leaderboard.models(), leaderboard.overall_columns())
    for benchmark in leaderboard.benchmarks():
        sheet = workbook.create_sheet(sheet_name(benchmark, taken))
        columns = leaderboard.benchmark_columns(benchmark)
        at = next(i for i, c in enumerate(columns) if c.header == "Errors") + 1  # other metrics, then the categories
        columns[at:at] = leaderboard.metric_columns(benchmark)
        fill_sheet(sheet, leaderboard.models(benchmark), columns)
    return workbook


class XlsxReporter(Reporter):
    """Writes ``leaderboard.xlsx``: an "Overall" sheet and one sheet per benchmark with per-category columns."""

    def write(self, leaderboard: Leaderboard, out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        workbook = build_workbook(leaderboard)
        return [write_atomic(out_dir / "leaderboard.xlsx", workbook.save)]
